//! The file as serde sees it: every value `Spanned` so that semantic errors can point at it.
//! Shapes are checked here (unknown keys, wrong types); meanings in `build`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
use toml::Spanned;

use crate::duration::RawDuration;

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub interface: Option<Spanned<StringOrList>>,
    pub hosts_allow: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub log: Option<Spanned<String>>,
    pub backup: Option<bool>,
    pub max_sources: Option<Spanned<i64>>,
    pub max_leases: Option<Spanned<i64>>,
    pub max_waiting_grants: Option<Spanned<i64>>,
    pub metrics_file: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub firewall: Option<Spanned<RawFirewall>>,
    #[serde(default)]
    pub door: Vec<Spanned<RawDoor>>,
}

#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDoor {
    pub name: Spanned<String>,
    pub sequence: Option<Spanned<Vec<Spanned<StepSpec>>>>,
    pub one_time_sequences: Option<Spanned<String>>,
    pub totp_secret_file: Option<Spanned<String>>,
    pub totp_length: Option<Spanned<i64>>,
    pub totp_ports: Option<Spanned<String>>,
    pub totp_step: Option<Spanned<RawDuration>>,
    pub seq_timeout: Option<Spanned<RawDuration>>,
    pub tcp_flags: Option<Spanned<StringOrList>>,
    pub action: Option<Spanned<String>>,
    pub service: Spanned<String>,
    pub lease: Option<Spanned<RawDuration>>,
    pub target: Option<Spanned<String>>,
    pub link_local_sources: Option<bool>,
    pub open_ports: Option<Spanned<Vec<Spanned<StepSpec>>>>,
    pub hosts_allow: Option<Spanned<bool>>,
    pub knock_from: Option<Spanned<Vec<Spanned<String>>>>,
}

/// The `[firewall]` table.
#[derive(Debug, DeriveDeserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFirewall {
    pub table: Option<Spanned<String>>,
    pub always_allow: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A value written as one string or as an array of strings (`interface`, `tcp_flags`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StringOrList {
    One(String),
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringOrList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOrList, E> {
                Ok(StringOrList::One(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringOrList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(StringOrList::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// One `sequence` element: `"7000"`, `"7000:udp"` or the integer `7000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StepSpec {
    Text(String),
    Number(i64),
}

impl<'de> Deserialize<'de> for StepSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = StepSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a step: \"port\", \"port:tcp\", \"port:udp\" or an integer port")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StepSpec, E> {
                Ok(StepSpec::Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<StepSpec, E> {
                Ok(StepSpec::Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<StepSpec, E> {
                Ok(StepSpec::Number(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}

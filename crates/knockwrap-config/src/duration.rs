//! Durations as the configuration writes them: an integer number of seconds, or a string of
//! one or more `<number><unit>` parts with units `s`, `m`, `h`, `d` (`"10s"`, `"5m"`,
//! `"1h30m"`); a bare number in a string is seconds too.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Parses the string form. `None` when it is not a duration.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<u64>().ok().map(Duration::from_secs);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let factor = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(n.checked_mul(factor)?)?;
    }
    Some(Duration::from_secs(total))
}

/// A duration value from TOML; `Err` keeps the reason for the diagnostic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawDuration(pub Result<Duration, String>);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a duration: integer seconds or a string such as \"10s\", \"5m\", \"1h\"",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration(if v < 0 {
                    Err(format!("negative duration {v}"))
                } else {
                    Ok(Duration::from_secs(v as u64))
                }))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(Ok(Duration::from_secs(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration(parse_duration(v).ok_or_else(|| {
                    format!("`{v}` is not a duration (use integer seconds or e.g. \"10s\", \"5m\", \"1h\")")
                })))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let cases = [
            ("10s", Some(10)),
            ("5m", Some(300)),
            ("1h", Some(3600)),
            ("1h30m", Some(5400)),
            ("2d", Some(172_800)),
            ("45", Some(45)),
            (" 7s ", Some(7)),
            ("0s", Some(0)),
            ("", None),
            ("s", None),
            ("10", Some(10)),
            ("10x", None),
            ("1.5h", None),
            ("-5s", None),
            ("10 s", None),
            ("99999999999999999999h", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_duration(text),
                want.map(Duration::from_secs),
                "{text:?}"
            );
        }
    }
}

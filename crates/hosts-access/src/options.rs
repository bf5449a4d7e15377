//! The hosts_options(5) language as `process_options` runs it when a rule matches: option
//! table, argument rules, value checks, and what each option does to the verdict.

use std::ops::Range;

use crate::syntax::{chop, option_fields, option_name_value};

/// How an option treats its argument and position (`flags` in options.c).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    None,
    Optional,
    Required,
}

/// A known option.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    pub name: &'static str,
    pub arg: Arg,
    /// Must be the last option of the rule.
    pub last: bool,
    pub value: ValueCheck,
}

/// What libwrap checks in a value (beyond presence).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ValueCheck {
    Any,
    /// `%o`, within 0777.
    Umask,
    /// `%d`, >= 0.
    Linger,
    /// `%d`, > 0.
    Rfc931,
    /// `%d`.
    Nice,
    /// `facility.level` or `level`, from syslog's names.
    Severity,
    /// A user or group name (`user` takes `user.group`): libwrap looks it up on the machine,
    /// which knockwrap cannot do, but a name with a blank or a control byte exists nowhere
    /// (tcpdmatch denies `user root # x`: "unknown user").
    Name,
}

const SPECS: &[Spec] = &[
    spec("user", Arg::Required, false, ValueCheck::Name),
    spec("group", Arg::Required, false, ValueCheck::Name),
    spec("umask", Arg::Required, false, ValueCheck::Umask),
    spec("linger", Arg::Required, false, ValueCheck::Linger),
    spec("keepalive", Arg::None, false, ValueCheck::Any),
    spec("spawn", Arg::Required, false, ValueCheck::Any),
    spec("twist", Arg::Required, true, ValueCheck::Any),
    spec("rfc931", Arg::Optional, false, ValueCheck::Rfc931),
    spec("setenv", Arg::Required, false, ValueCheck::Any),
    spec("nice", Arg::Optional, false, ValueCheck::Nice),
    spec("severity", Arg::Required, false, ValueCheck::Severity),
    spec("allow", Arg::None, true, ValueCheck::Any),
    spec("deny", Arg::None, true, ValueCheck::Any),
    spec("banners", Arg::Required, false, ValueCheck::Any),
    spec("aclexec", Arg::Required, false, ValueCheck::Any),
];

const fn spec(name: &'static str, arg: Arg, last: bool, value: ValueCheck) -> Spec {
    Spec {
        name,
        arg,
        last,
        value,
    }
}

const FACILITIES: &[&str] = &[
    "kern", "user", "mail", "daemon", "auth", "lpr", "news", "uucp", "cron", "local0", "local1",
    "local2", "local3", "local4", "local5", "local6", "local7",
];
const LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    SPECS
        .iter()
        .find(|s| s.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Why `process_options` gives up (and, on a matching rule, denies).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Empty field: `::`, or a trailing `:` before the newline.
    MissingName,
    Unknown,
    NeedsValue,
    TakesNoValue,
    /// `twist`, `allow` or `deny` followed by another field.
    NotLast,
    BadValue,
}

/// One option field, positions in logical-text offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    /// The field without its separating colon.
    pub raw: Range<usize>,
    /// Name and value as `process_options` splits them (value None when empty).
    pub name: Range<usize>,
    pub value: Option<Range<usize>>,
    /// The field contains `\:` escapes (the value differs from the raw bytes).
    pub escaped: bool,
    pub spec: Option<&'static Spec>,
    /// The first problem with this field, if any.
    pub problem: Option<Problem>,
}

/// Every option field of the options part `part` of `text`, checked as libwrap checks it.
pub(crate) fn fields(text: &[u8], part: Range<usize>) -> Vec<Field> {
    let raw: Vec<_> = option_fields(text, part).collect();
    let n = raw.len();
    raw.into_iter()
        .enumerate()
        .map(|(i, f)| {
            let chopped = chop(text, f.range.clone());
            let (name, value) = option_name_value(text, chopped);
            let spec = lookup(&text[name.clone()]);
            let problem = if name.is_empty() {
                Some(Problem::MissingName)
            } else {
                match spec {
                    None => Some(Problem::Unknown),
                    Some(s) => check(s, value.as_ref().map(|v| &text[v.clone()]), i + 1 < n),
                }
            };
            Field {
                raw: f.range,
                name,
                value,
                escaped: f.escaped,
                spec,
                problem,
            }
        })
        .collect()
}

fn check(s: &Spec, value: Option<&[u8]>, more: bool) -> Option<Problem> {
    match (s.arg, value) {
        (Arg::Required, None) => return Some(Problem::NeedsValue),
        (Arg::None, Some(_)) => return Some(Problem::TakesNoValue),
        _ => {}
    }
    if more && s.last {
        return Some(Problem::NotLast);
    }
    let ok = match (s.value, value) {
        (_, None) | (ValueCheck::Any, _) => true,
        (ValueCheck::Umask, Some(v)) => scan_int(v, 8).is_some_and(|m| (0..=0o777).contains(&m)),
        (ValueCheck::Linger, Some(v)) => scan_int(v, 10).is_some_and(|x| x >= 0),
        (ValueCheck::Rfc931, Some(v)) => scan_int(v, 10).is_some_and(|x| x > 0),
        (ValueCheck::Nice, Some(v)) => scan_int(v, 10).is_some(),
        (ValueCheck::Severity, Some(v)) => severity_ok(v),
        (ValueCheck::Name, Some(v)) => !v
            .iter()
            .any(|&b| crate::syntax::is_space(b) || b < 0x20 || b == 0x7f),
    };
    (!ok).then_some(Problem::BadValue)
}

/// `sscanf(v, "%d%c") == 1` (or `%o`): leading `isspace` bytes skipped (VT and FF too: the
/// value is only cut at blanks, tabs, CR and LF), optional sign, digits, nothing after.
fn scan_int(v: &[u8], radix: u32) -> Option<i64> {
    let v = &v[v
        .iter()
        .take_while(|&&b| crate::syntax::is_space(b))
        .count()..];
    let (neg, digits) = match v.first() {
        Some(b'-') => (true, &v[1..]),
        Some(b'+') => (false, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let mut x: i64 = 0;
    for &d in digits {
        x = x * i64::from(radix) + i64::from((d as char).to_digit(radix)?);
    }
    Some(if neg { -x } else { x })
}

fn severity_ok(v: &[u8]) -> bool {
    let known = |list: &[&str], s: &[u8]| list.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(s));
    match crate::syntax::split_at(v, b'.') {
        Some(dot) => known(FACILITIES, &v[..dot]) && known(LEVELS, &v[dot + 1..]),
        None => known(LEVELS, v),
    }
}

/// What running a rule's options does to the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No option decided: the table's own verdict stands.
    TableVerdict,
    Allow,
    Deny,
    Twist,
    /// `process_options` hit a problem at this field: libwrap denies.
    Failed(usize, Problem),
}

/// Runs the options in order, as `process_options` does in verification mode.
pub(crate) fn outcome(fields: &[Field]) -> Outcome {
    for (i, f) in fields.iter().enumerate() {
        if let Some(p) = f.problem {
            return Outcome::Failed(i, p);
        }
        match f.spec.map(|s| s.name) {
            Some("allow") => return Outcome::Allow,
            Some("deny") => return Outcome::Deny,
            Some("twist") => return Outcome::Twist,
            _ => {}
        }
    }
    Outcome::TableVerdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(opts: &str) -> Outcome {
        let t = opts.as_bytes();
        outcome(&fields(t, 0..t.len()))
    }

    #[test]
    fn known_options() {
        assert_eq!(run(" allow\n"), Outcome::Allow);
        assert_eq!(run(" DENY\n"), Outcome::Deny);
        assert_eq!(run(" spawn echo %a : allow\n"), Outcome::Allow);
        assert_eq!(run(" twist /bin/echo no\n"), Outcome::Twist);
        assert_eq!(
            run(" severity auth.info : keepalive\n"),
            Outcome::TableVerdict
        );
        assert_eq!(run(" setenv A b\\:c\n"), Outcome::TableVerdict);
        assert_eq!(run(" rfc931\n"), Outcome::TableVerdict);
        assert_eq!(run(" nice -5\n"), Outcome::TableVerdict);
        assert_eq!(run(" umask 022\n"), Outcome::TableVerdict);
        assert_eq!(run(" allow=\n"), Outcome::Allow);
    }

    #[test]
    fn numbers_after_vertical_tab_or_form_feed() {
        // The value is cut only at blank, tab, CR, LF; sscanf's %d then skips VT and FF
        // (tcpdmatch grants `linger <VT>0`), and the trailing ones are chopped.
        assert_eq!(run(" linger \x0b0\n"), Outcome::TableVerdict);
        assert_eq!(run(" linger=\x0b0\n"), Outcome::TableVerdict);
        assert_eq!(run(" linger 0\x0b\n"), Outcome::TableVerdict);
        assert_eq!(run(" nice \x0c-5\n"), Outcome::TableVerdict);
        assert_eq!(run(" umask \x0b022\n"), Outcome::TableVerdict);
        assert_eq!(run(" rfc931 \x0b5\n"), Outcome::TableVerdict);
        assert_eq!(run(" keepalive\x0b\n"), Outcome::TableVerdict);
        // Not a blank to the name/value split, and severity names are not skipped over.
        assert_eq!(run(" linger\x0b0\n"), Outcome::Failed(0, Problem::Unknown));
        assert_eq!(
            run(" severity \x0bauth.info\n"),
            Outcome::Failed(0, Problem::BadValue)
        );
    }

    #[test]
    fn user_and_group_names_that_exist_nowhere() {
        // tcpdmatch: "unknown user" / "unknown group", and the rule denies.
        assert_eq!(
            run(" user root # x\n"),
            Outcome::Failed(0, Problem::BadValue)
        );
        assert_eq!(
            run(" user ro\x01ot\n"),
            Outcome::Failed(0, Problem::BadValue)
        );
        assert_eq!(
            run(" group root x\n"),
            Outcome::Failed(0, Problem::BadValue)
        );
        assert_eq!(run(" user root.root\n"), Outcome::TableVerdict);
        assert_eq!(run(" user root\x0b\n"), Outcome::TableVerdict);
    }

    #[test]
    fn problems_fail_closed() {
        assert_eq!(run(" bogus\n"), Outcome::Failed(0, Problem::Unknown));
        assert_eq!(run(" /bin/echo hi\n"), Outcome::Failed(0, Problem::Unknown));
        assert_eq!(run(" spawn\n"), Outcome::Failed(0, Problem::NeedsValue));
        assert_eq!(
            run(" allow yes\n"),
            Outcome::Failed(0, Problem::TakesNoValue)
        );
        assert_eq!(
            run(" twist x : allow\n"),
            Outcome::Failed(0, Problem::NotLast)
        );
        assert_eq!(
            run(" allow : spawn x\n"),
            Outcome::Failed(0, Problem::NotLast)
        );
        assert_eq!(run(" allow:\n"), Outcome::Failed(0, Problem::NotLast));
        assert_eq!(run("\n"), Outcome::Failed(0, Problem::MissingName));
        assert_eq!(
            run(" spawn x : : allow\n"),
            Outcome::Failed(1, Problem::MissingName)
        );
        assert_eq!(run(" umask 0999\n"), Outcome::Failed(0, Problem::BadValue));
        assert_eq!(run(" umask 1777\n"), Outcome::Failed(0, Problem::BadValue));
        assert_eq!(run(" linger -1\n"), Outcome::Failed(0, Problem::BadValue));
        assert_eq!(run(" rfc931 0\n"), Outcome::Failed(0, Problem::BadValue));
        assert_eq!(run(" nice x\n"), Outcome::Failed(0, Problem::BadValue));
        assert_eq!(
            run(" severity loud\n"),
            Outcome::Failed(0, Problem::BadValue)
        );
        assert_eq!(
            run(" severity auth.loud\n"),
            Outcome::Failed(0, Problem::BadValue)
        );
    }
}

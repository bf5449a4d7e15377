//! Lease lengths: an integer (seconds) or a number with one unit, `90s`, `15m`, `1h`, `2d`.
//! (knockwrap-config parses the same syntax for config files; this copy serves `--for`.)

use std::time::Duration;

/// Parse a duration; the error says what was wrong.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        return Err(format!(
            "invalid duration {text:?}: expected seconds or a number with s, m, h or d"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
    let mult: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ))
        }
    };
    let secs = n
        .checked_mul(mult)
        .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    if secs == 0 {
        return Err(format!("invalid duration {text:?}: must be at least 1s"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("3600").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
    }

    #[test]
    fn rejects_the_rest() {
        for bad in [
            "",
            "h",
            "1x",
            "-5",
            "1.5h",
            "1h30m",
            "0",
            "0s",
            "99999999999999999999",
            "18446744073709551615d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}

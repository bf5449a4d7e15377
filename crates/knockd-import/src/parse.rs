//! knockd.conf as knockd 0.8 reads it (`parseconfig` in knockd.c): lines trimmed of blanks,
//! blank lines and lines starting with `#` skipped, `[name]` starts a section (`[options]` or
//! a door), `KEY = VALUE` split at the first `=` with the key compared case-insensitively, and
//! a bare `UseSyslog`. Values are kept verbatim (a `#` inside a value is part of it, as in
//! knockd). Structural errors knockd refuses the file for are [`ParseError`]s; a key knockd
//! 0.8 does not know is kept, with its line, for the importer to report.

use crate::ParseError;

/// knockd reads lines with `fgets(line, PATH_MAX)`: longer lines are split.
const MAX_LINE: usize = 4095;

/// A value and the line it was on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct At {
    pub value: String,
    pub line: usize,
}

/// The `[options]` section(s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub use_syslog: Option<usize>,
    pub log_file: Option<At>,
    pub pid_file: Option<At>,
    pub interface: Option<At>,
    /// Keys knockd 0.8 does not know (knockd refuses the file for them).
    pub unknown: Vec<At>,
}

/// One door section. Later keys replace earlier ones, as in knockd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DoorSpec {
    pub name: String,
    pub line: usize,
    pub sequence: Option<At>,
    pub one_time_sequences: Option<At>,
    pub seq_timeout: Option<At>,
    pub tcp_flags: Option<At>,
    pub start_command: Option<At>,
    pub start_command_6: Option<At>,
    pub stop_command: Option<At>,
    pub stop_command_6: Option<At>,
    pub cmd_timeout: Option<At>,
    pub target: Option<At>,
    /// Keys knockd 0.8 does not know, with the key's spelling as written.
    pub unknown: Vec<At>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KnockdConf {
    pub options: Options,
    pub doors: Vec<DoorSpec>,
}

enum Section {
    None,
    Options,
    Door,
}

pub(crate) fn parse(text: &str) -> Result<KnockdConf, ParseError> {
    let mut conf = KnockdConf::default();
    let mut section = Section::None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        if raw.len() > MAX_LINE {
            return Err(ParseError {
                line,
                message: format!(
                    "the line is {} bytes long; knockd reads at most {MAX_LINE} per line",
                    raw.len()
                ),
            });
        }
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t.len() >= 2 && t.starts_with('[') && t.ends_with(']') {
            let name = &t[1..t.len() - 1];
            if name.is_empty() {
                return Err(ParseError {
                    line,
                    message: "bad section name `[]`".into(),
                });
            }
            if name.eq_ignore_ascii_case("options") {
                section = Section::Options;
            } else {
                conf.doors.push(DoorSpec {
                    name: name.to_string(),
                    line,
                    ..DoorSpec::default()
                });
                section = Section::Door;
            }
            continue;
        }
        let (key, value) = match t.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (t, None),
        };
        if matches!(section, Section::None) {
            return Err(ParseError {
                line,
                message: format!(
                    "`{key}` is outside any section: knockd 0.8 requires every directive to be \
                     in [options] or in a door's section (this is not a knockd 0.8 file)"
                ),
            });
        }
        let upper = key.to_ascii_uppercase();
        let Some(value) = value else {
            if upper == "USESYSLOG" {
                conf.options.use_syslog = Some(line);
                continue;
            }
            return Err(ParseError {
                line,
                message: format!(
                    "syntax error: `{t}` is not `KEY = VALUE` (only UseSyslog stands alone)"
                ),
            });
        };
        let at = At {
            value: value.to_string(),
            line,
        };
        match section {
            Section::None => unreachable!("checked above"),
            Section::Options => {
                let o = &mut conf.options;
                match upper.as_str() {
                    "LOGFILE" => o.log_file = Some(at),
                    "PIDFILE" => o.pid_file = Some(at),
                    "INTERFACE" => o.interface = Some(at),
                    // knockd accepts UseSyslog only bare; the intent is plain.
                    "USESYSLOG" => o.use_syslog = Some(line),
                    _ => o.unknown.push(At {
                        value: key.to_string(),
                        line,
                    }),
                }
            }
            Section::Door => {
                let d = conf.doors.last_mut().expect("a door section is open");
                let slot = match upper.as_str() {
                    "SEQUENCE" => &mut d.sequence,
                    "ONE_TIME_SEQUENCES" => &mut d.one_time_sequences,
                    "SEQ_TIMEOUT" | "TIMEOUT" => &mut d.seq_timeout,
                    "TCPFLAGS" => &mut d.tcp_flags,
                    "START_COMMAND" | "COMMAND" => &mut d.start_command,
                    "START_COMMAND_6" | "COMMAND_6" => &mut d.start_command_6,
                    "STOP_COMMAND" => &mut d.stop_command,
                    "STOP_COMMAND_6" => &mut d.stop_command_6,
                    "CMD_TIMEOUT" => &mut d.cmd_timeout,
                    "TARGET" => &mut d.target,
                    _ => {
                        d.unknown.push(At {
                            value: key.to_string(),
                            line,
                        });
                        continue;
                    }
                };
                *slot = Some(at);
            }
        }
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_aliases_and_case() {
        let c = parse(
            "# c\n[options]\n\tUseSyslog\n  LogFile = /var/log/k.log\nINTERFACE=eth1\r\n\
             [open SSH]\n Sequence = 7000,8000\nTimeout = 9\nCommand = a # b\n\
             start_command_6 = c\nStop_Command= d\nSTOP_COMMAND_6 = e\ncmd_timeout = 5\n\
             tcpflags = syn\ntarget = 10.0.0.1\none_time_sequences = /x\nacl = 1.2.3.4\n",
        )
        .unwrap();
        assert_eq!(c.options.use_syslog, Some(3));
        assert_eq!(c.options.log_file.as_ref().unwrap().value, "/var/log/k.log");
        assert_eq!(c.options.interface.as_ref().unwrap().value, "eth1");
        let d = &c.doors[0];
        assert_eq!((d.name.as_str(), d.line), ("open SSH", 6));
        assert_eq!(d.sequence.as_ref().unwrap().value, "7000,8000");
        assert_eq!(d.seq_timeout.as_ref().unwrap().value, "9");
        assert_eq!(d.start_command.as_ref().unwrap().value, "a # b");
        assert_eq!(d.start_command_6.as_ref().unwrap().value, "c");
        assert_eq!(d.stop_command.as_ref().unwrap().value, "d");
        assert_eq!(d.stop_command_6.as_ref().unwrap().value, "e");
        assert_eq!(d.cmd_timeout.as_ref().unwrap().line, 13);
        assert_eq!(d.unknown[0].value, "acl");
    }

    #[test]
    fn structural_errors_have_lines() {
        let e = parse("\n\ninterface=eth0\n[a]\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("outside any section"));
        let e = parse("[a]\nsequence = 1,2\nbogus\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("syntax error"));
        assert_eq!(parse("[]\n").unwrap_err().line, 1);
        assert_eq!(
            parse(&format!("[a]\n{}\n", "x".repeat(5000)))
                .unwrap_err()
                .line,
            2
        );
    }
}

//! Fuzz target: `knockwrap_config::Config::from_toml_str` on arbitrary text (the input bytes,
//! lossily converted to UTF-8).
//!
//! No panic; every error names the given path at a line and column inside the text (1-based,
//! the column at most one past the end of its line); an accepted configuration gives doors
//! the matcher accepts once their files are read (a stand-in sequence or key is filled in).
#![no_main]

use knock_match::{DoorKind, Matcher, MatcherOptions, Step};
use knockwrap_config::Config;
use libfuzzer_sys::fuzz_target;

const PATH: &str = "/etc/knockwrap/knockwrap.toml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    match Config::from_toml_str(&text, PATH) {
        Err(errors) => {
            assert!(!errors.is_empty(), "error without a diagnostic");
            for e in errors.iter() {
                assert_eq!(e.path.to_str(), Some(PATH), "{e}");
                assert!(
                    e.line >= 1 && e.line <= lines.len(),
                    "line outside the text: {e}"
                );
                let width = lines[e.line - 1].chars().count();
                assert!(
                    e.column >= 1 && e.column <= width + 1,
                    "column outside line {width}: {e}"
                );
                assert!(!e.message.is_empty(), "{e}");
            }
        }
        Ok(config) => {
            assert!(config.max_sources >= 1);
            assert!(config.hosts_allow.is_absolute() && config.state_dir.is_absolute());
            let mut doors = Vec::new();
            for (i, d) in config.doors.iter().enumerate() {
                assert!(d.line >= 1 && d.line <= lines.len(), "door line {}", d.line);
                assert!(
                    config.doors[..i].iter().all(|o| o.door.name != d.door.name),
                    "duplicate door name accepted: {}",
                    d.door.name
                );
                let mut door = d.door.clone();
                match &mut door.kind {
                    DoorKind::Static { .. } => assert!(!d.needs_files()),
                    DoorKind::OneTime { sequences, .. } => {
                        assert!(d.needs_files() && d.one_time_file.is_some());
                        *sequences = vec![vec![Step::tcp(1)]];
                    }
                    DoorKind::Totp(p) => {
                        assert!(d.needs_files() && d.totp_secret_file.is_some());
                        p.secret = vec![7; 20];
                    }
                }
                if let Err(e) = door.validate() {
                    panic!("accepted door the matcher refuses: {e}");
                }
                doors.push(door);
            }
            let options = MatcherOptions {
                max_sources: config.max_sources.min(16),
                ..MatcherOptions::default()
            };
            let mut m = Matcher::new(doors, options).expect("matcher refused validated doors");
            m.tick(1_700_000_000_000);
        }
    }
});

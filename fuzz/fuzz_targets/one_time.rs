//! Fuzz target: `knock_match::parse_one_time` on arbitrary text (the input bytes, lossily
//! converted to UTF-8).
//!
//! No panic; an error sits at a line and column inside the text (1-based, the column at most
//! one past the end of its line); every parsed sequence has 1 to `MAX_STEPS` steps with
//! ports from 1; rendering the sequences back as `port:proto,...` lines and parsing them
//! again gives the same sequences.
#![no_main]

use knock_match::{parse_one_time, MAX_STEPS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match parse_one_time(&text) {
        Err(e) => {
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                e.line >= 1 && e.line <= lines.len(),
                "line outside the text: {e}"
            );
            let width = lines[e.line - 1].chars().count();
            assert!(
                e.column >= 1 && e.column <= width + 1,
                "column outside line {width}: {e}"
            );
            assert!(!e.message.is_empty());
        }
        Ok(sequences) => {
            for s in &sequences {
                assert!(!s.is_empty() && s.len() <= MAX_STEPS, "{s:?}");
                assert!(s.iter().all(|step| step.port >= 1), "{s:?}");
            }
            let rendered: String = sequences
                .iter()
                .map(|s| {
                    let steps: Vec<String> = s.iter().map(|step| step.to_string()).collect();
                    steps.join(",") + "\n"
                })
                .collect();
            match parse_one_time(&rendered) {
                Ok(again) => assert_eq!(again, sequences, "round trip of {rendered:?}"),
                Err(e) => panic!("rendered sequences do not parse: {e} in {rendered:?}"),
            }
        }
    }
});

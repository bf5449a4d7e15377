//! No input makes the configuration parser panic, and every error it reports points inside
//! the text.

use knockwrap_config::Config;
use proptest::prelude::*;

const BASE: &str = "interface = [\"eth0\"]\nstate_dir = \"s\"\n[[door]]\nname = \"d\"\nsequence = [\"7000\", 8000, \"9000:udp\"]\nseq_timeout = \"10s\"\ntcp_flags = [\"syn\", \"!ack\"]\nservice = \"SSHD\"\nlease = \"1h\"\ntarget = \"198.18.0.1\"\nopen_ports = [\"22/tcp\", \"53/udp\"]\nknock_from = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n[[door]]\nname = \"t\"\ntotp_secret_file = \"k\"\ntotp_ports = \"2-9\"\nservice = \"S\"\nopen_ports = [\"2222/tcp\"]\nhosts_allow = false\n[firewall]\ntable = \"kw\"\nalways_allow = [\"192.0.2.0/24\", \"::1\"]\n";

fn check_positions(text: &str) -> Result<(), TestCaseError> {
    if let Err(errs) = Config::from_toml_str(text, "c.toml") {
        prop_assert!(!errs.is_empty());
        let lines = text.split('\n').count();
        for e in errs.iter() {
            prop_assert!(e.line >= 1 && e.line <= lines, "{e} beyond {lines} lines");
            prop_assert!(e.column >= 1);
            prop_assert!(!e.message.is_empty(), "{e} has no message");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in "\\PC{0,200}") {
        check_positions(&text)?;
    }

    #[test]
    fn mutated_valid_config(pos in 0usize..BASE.len(), len in 0usize..8, insert in "[ -~\n]{0,6}") {
        let mut bytes = BASE.as_bytes().to_vec();
        let end = (pos + len).min(bytes.len());
        bytes.splice(pos..end, insert.bytes());
        if let Ok(text) = String::from_utf8(bytes) {
            check_positions(&text)?;
        }
    }
}

#[test]
fn base_is_valid() {
    Config::from_toml_str(BASE, "c.toml").unwrap();
}

//! The README's first command on the shipped quick-start configuration, as a new user runs it:
//! a fresh directory (no `run/` yet), the daemon on `lo`, knocks to 127.0.0.1, the line in
//! `run/hosts.allow`, and the closing knock removing it. In a network namespace of its own (its
//! `lo`), so nothing on the host is touched. Needs root.

use std::path::Path;
use std::time::Duration;

use test_support::daemon::knockwrap_bin;
use test_support::net::Netns;
use test_support::{lines_of, run_ok, wait_until, Proc};

#[test]
fn the_quick_start_opens_and_closes_on_a_fresh_checkout() {
    test_support::skip_unless_root!();
    let ns = Netns::new("quick");
    let top = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(top.path().join("config")).expect("mkdir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/quickstart.toml");
    std::fs::copy(&shipped, top.path().join("config/quickstart.toml")).expect("copy config");
    assert!(!top.path().join("run").exists());

    let mut cmd = ns.cmd(knockwrap_bin());
    cmd.args(["run", "--config"])
        .arg("config/quickstart.toml")
        .current_dir(top.path());
    let mut daemon = Proc::spawn(
        "knockwrap (quick start)",
        &mut cmd,
        &top.path().join("d.log"),
    );
    let ready = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        daemon.log().contains("ready")
    });
    assert!(ready, "not ready\n{}", daemon.log());
    let knock = |ports: &[&str]| {
        run_ok(
            ns.cmd(knockwrap_bin())
                .args(["knock", "127.0.0.1"])
                .args(ports),
        );
    };
    let hosts_allow = top.path().join("run/hosts.allow");
    knock(&["7000", "8000", "9000"]);
    let opened = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        lines_of(&hosts_allow)
            .iter()
            .any(|l| l == "SSHD: 127.0.0.1")
    });
    assert!(opened, "no line\n{}", daemon.log());
    knock(&["9000", "8000", "7000"]);
    let closed = wait_until(Duration::from_secs(5), Duration::from_millis(10), || {
        !lines_of(&hosts_allow)
            .iter()
            .any(|l| l == "SSHD: 127.0.0.1")
    });
    assert!(closed, "the closing knock did not close\n{}", daemon.log());
    daemon.stop(Duration::from_secs(5));
}

//! One daemon per state directory (issue 19, point 5): a second `knockwrap run` on the same
//! state refuses at once and names the running one; the lock it refuses on is held for the
//! first daemon's life, not a pid file, so a daemon killed with SIGKILL blocks no restart.

use std::time::{Duration, Instant};

use test_support::daemon::Daemon;
use test_support::process::children_of;
use test_support::rig::Rig;
use test_support::{serial, wait_until, Door};

const OPEN: [&str; 3] = ["7000", "8000", "9000"];

#[test]
fn a_second_daemon_on_the_same_state_refuses_and_a_killed_one_blocks_no_restart() {
    test_support::skip_unless_root!();
    let _serial = serial();
    let mut rig = Rig::builder("onedaemon")
        .door(Door::allow("openSSH", &OPEN))
        .start();
    let first = rig.daemon.pid();
    let config = rig.daemon.config.clone();

    // The same configuration again, as an operator starting one by hand would.
    let mut second = Daemon::spawn(&rig.root, &config, "2");
    let started = Instant::now();
    let mut status = None;
    wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        status = second.exited();
        status.is_some()
    });
    let took = started.elapsed();
    let log = second.log();
    let Some(status) = status else {
        let children = children_of(second.pid());
        second.kill9();
        panic!(
            "a second daemon on the same state is still running after 5 s (capture \
             processes {children:?}):\n{log}"
        );
    };
    assert_eq!(status.code(), Some(1), "exit status {status}:\n{log}");
    assert!(
        took < Duration::from_secs(1),
        "the refusal took {took:?}:\n{log}"
    );
    assert!(
        log.contains(&format!("pid {first}")),
        "the refusal does not name the running daemon (pid {first}):\n{log}"
    );
    assert!(
        rig.daemon.exited().is_none(),
        "the first daemon went away:\n{}",
        rig.daemon.log()
    );

    // A crash (SIGKILL: no clean-up, the lock file stays with the dead pid in it) blocks no
    // restart. The capture process dies with its parent, and it never held the lock.
    let child = children_of(first);
    rig.daemon.kill9();
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
            child.iter().all(|&c| dead(c))
        }),
        "capture processes {child:?} outlived their parent"
    );
    let third = Daemon::start(&rig.root, &config, "3");
    let log = third.log();
    assert!(
        !log.contains("another knockwrap daemon"),
        "the restart was refused:\n{log}"
    );
    rig.daemon = third;
    let line = format!("SSHD: {}", rig.client());
    rig.knock_and_expect(&["7000", "8000", "9000"], &line);
}

/// Gone, or a zombie waiting to be reaped.
fn dead(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

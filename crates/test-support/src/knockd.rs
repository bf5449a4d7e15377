//! The real knockd (Debian package) in the server's private root, as the baseline the
//! harness is proven against before knockwrap's daemon exists.

use std::time::Duration;

use crate::net::SERVER_IF;
use crate::process::Proc;
use crate::server::ServerRoot;
use crate::wait_until;

pub struct Knockd {
    proc: Proc,
}

impl Knockd {
    /// Starts knockd on the server veth with `doors` (knockd.conf door sections) and waits
    /// for it to report that it listens.
    pub fn start(root: &ServerRoot, doors: &str) -> Knockd {
        let dir = root.dir();
        let conf = dir.join("knockd.conf");
        std::fs::write(
            &conf,
            format!(
                "[options]\n  LogFile = {}\n  Interface = {SERVER_IF}\n\n{doors}",
                dir.join("knockd.events").display()
            ),
        )
        .expect("writing knockd.conf");
        let mut cmd = root.command("knockd");
        cmd.arg("-c")
            .arg(&conf)
            .args(["-i", SERVER_IF, "-v", "-p"])
            .arg(dir.join("knockd.pid"));
        let mut proc = Proc::spawn("knockd", &mut cmd, &dir.join("knockd.log"));
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
            proc.log().contains(&format!("listening on {SERVER_IF}"))
        });
        if !up || proc.exited().is_some() {
            panic!("knockd did not start:\n{}", proc.log());
        }
        Knockd { proc }
    }

    pub fn log(&self) -> String {
        self.proc.log()
    }
}

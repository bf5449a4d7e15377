//! The client side of the knock-and-connect tests: a private `/etc/hosts` bind-mounted in a
//! fresh mount namespace inside the client's network namespace (names resolve to the rig's
//! addresses, the host's own /etc/hosts is never touched), an ssh client key whose public
//! half the server's sshd accepts, and commands run there under a `timeout` so that a hang
//! fails the test instead of stalling it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

use crate::net::NetPair;
use crate::process::run_ok;

pub struct ClientSide {
    dir: TempDir,
    /// The file the client side sees as /etc/hosts.
    pub hosts: PathBuf,
    /// The ssh client's private key (ed25519, no passphrase).
    pub key: PathBuf,
}

impl ClientSide {
    /// `names` are the lines of the private /etc/hosts (besides localhost).
    pub fn new(names: &[(IpAddr, &str)]) -> ClientSide {
        let dir = tempfile::Builder::new()
            .prefix("kw-client-")
            .tempdir()
            .expect("creating a temp dir");
        let hosts = dir.path().join("hosts");
        write_hosts(&hosts, names);
        let key = dir.path().join("id_ed25519");
        run_ok(
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "knockwrap-test",
                    "-f",
                ])
                .arg(&key),
        );
        ClientSide { dir, hosts, key }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites the private /etc/hosts with `names` (besides localhost), for names whose
    /// addresses are known only once the client's key has been made.
    pub fn set_hosts(&self, names: &[(IpAddr, &str)]) {
        write_hosts(&self.hosts, names);
    }

    /// sshd_config lines that let this client's key in as root (the file lives in a
    /// world-traversable temp tree, hence StrictModes no).
    pub fn sshd_extra(&self) -> String {
        let pubkey = std::fs::read_to_string(self.key.with_extension("pub")).expect("pubkey");
        let auth = self.dir.path().join("authorized_keys");
        std::fs::write(&auth, pubkey).expect("writing authorized_keys");
        format!(
            "AuthorizedKeysFile {}\nStrictModes no\nPermitRootLogin prohibit-password\n",
            auth.display()
        )
    }

    /// An ssh_config: `body` first (e.g. a `Match host` block), then the options every test
    /// needs (this key, root, no prompts, no known_hosts of the machine's).
    pub fn ssh_config(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let known = self.dir.path().join("known_hosts");
        std::fs::write(
            &path,
            format!(
                "{body}\nHost *\n    User root\n    IdentityFile {}\n    IdentitiesOnly yes\n    \
                 BatchMode yes\n    StrictHostKeyChecking no\n    UserKnownHostsFile {}\n    \
                 LogLevel ERROR\n",
                self.key.display(),
                known.display()
            ),
        )
        .expect("writing ssh_config");
        path
    }

    /// `program` run in the client's network namespace with the private /etc/hosts, killed
    /// after 60 s.
    pub fn command(&self, net: &NetPair, program: &str) -> Command {
        let mut cmd = net.client_cmd("timeout");
        cmd.args([
            "60",
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg("mount --bind \"$1\" /etc/hosts && shift && exec \"$@\"")
        .arg("sh")
        .arg(&self.hosts)
        .arg(program);
        cmd
    }

    /// Runs to completion (stdin empty) and returns the output, whatever the status.
    pub fn output(&self, cmd: &mut Command) -> Output {
        cmd.stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
    }
}

fn write_hosts(path: &Path, names: &[(IpAddr, &str)]) {
    let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for (ip, name) in names {
        text += &format!("{ip} {name}\n");
    }
    std::fs::write(path, text).expect("writing the private hosts file");
}

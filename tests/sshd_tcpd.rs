//! The documented alternative for an sshd without libwrap (docs/install.md, "sshd without
//! libwrap, hosts.allow kept"): sshd started per connection by a systemd socket unit through
//! `tcpd`, so that hosts.allow still decides. The two units are read out of that section of the
//! doc, so the doc and the test cannot drift.
//!
//! - `the_doc_holds_the_two_units` (no root): the section has both units with the settings the
//!   privileged tests rely on.
//! - `the_documented_units_let_tcpd_gate_sshd_by_the_managed_line` (root): a real systemd
//!   (PID 1 of a `systemd-nspawn` container, crates/test-support/src/container.rs) in the server
//!   namespace of a veth pair runs the units as written, with the real tcpd and sshd, under
//!   `hosts.deny` = `ALL: ALL`. From the client namespace: a connection is accepted by systemd
//!   and closed without a banner, and tcpd logs the refusal; after `knockwrap allow` (the real
//!   CLI, in the container) the client gets the `SSH-2.0-` banner and a real `ssh` reaches
//!   authentication; after `knockwrap revoke` it is refused again. Debian's sshd links libwrap
//!   itself, so the same lines would gate it without tcpd: a stand-in that greets every client
//!   and never reads the hosts files runs behind the same units' tcpd, and is refused and
//!   allowed by the same lines, while the same stand-in without tcpd greets the denied client.
//! - `max_connections_per_source_bounds_one_sources_parallel_connections` (root): with the
//!   doc's socket at `MaxConnectionsPerSource=2`, a third connection held in parallel from one
//!   address is closed by systemd at once (MaxStartups no longer applies), while another
//!   address is still served and a freed slot is given again.
//!
//! Nothing on the host is written: the units, the hosts files and the binaries land in the
//! container's overlay, and the namespaces and the container go away on drop.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use test_support::container::{can_boot, have, output, text, Container};
use test_support::daemon::knockwrap_bin;
use test_support::skip_or_fail;
use test_support::{lines_of, serial, wait_until, NetPair};

/// The heading of the doc's section.
const SECTION: &str = "### sshd without libwrap, hosts.allow kept";
const SOCKET: &str = "sshd-tcpd.socket";
const SERVICE: &str = "sshd-tcpd@.service";

/// A program that stands in for sshd behind tcpd: it greets every client and never reads
/// /etc/hosts.allow or /etc/hosts.deny (a shell script links no libwrap). It is named `sshd`
/// because tcpd checks the rules for the name of the program it runs.
const STANDIN: &str = "/usr/local/libexec/kw-standin/sshd";
const STANDIN_BANNER: &str = "SSH-2.0-standin";
/// The stand-in behind the doc's units (tcpd in front), and the same stand-in without tcpd.
const STANDIN_TCPD_PORT: u16 = 2022;
const STANDIN_BARE_PORT: u16 = 2023;

/// The fenced `ini` blocks of the doc's section, each as (the unit's name from the block's
/// `# /etc/systemd/system/NAME` first line, the whole block).
fn doc_units() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/install.md");
    let doc = std::fs::read_to_string(&path).expect("reading docs/install.md");
    let start = doc
        .find(&format!("\n{SECTION}\n"))
        .unwrap_or_else(|| panic!("no {SECTION:?} section in docs/install.md"));
    let mut units = Vec::new();
    let mut block: Option<String> = None;
    for line in doc[start + 1..].lines().skip(1) {
        match block.as_mut() {
            Some(b) if line == "```" => {
                let first = b.lines().next().unwrap_or_default();
                let name = first
                    .strip_prefix("# /etc/systemd/system/")
                    .unwrap_or_else(|| panic!("a unit block that does not name its file: {b}"));
                units.push((name.to_owned(), b.clone()));
                block = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None if line == "```ini" => block = Some(String::new()),
            None if line.starts_with("## ") || line.starts_with("### ") => break,
            None => {}
        }
    }
    units
}

fn doc_unit(name: &str) -> String {
    doc_units()
        .into_iter()
        .find_map(|(n, text)| (n == name).then_some(text))
        .unwrap_or_else(|| panic!("no {name} in the doc's section"))
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} is not in the unit exactly once:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// The `Key=Value` settings of a unit's text, in order.
fn settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("Key=Value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn the_doc_holds_the_two_units() {
    let names: Vec<String> = doc_units().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [SOCKET, SERVICE]);
    let socket = settings(&doc_unit(SOCKET));
    for want in [
        ("ListenStream", "22"),
        ("Accept", "yes"),
        ("MaxConnections", "64"),
        ("MaxConnectionsPerSource", "8"),
        ("WantedBy", "sockets.target"),
    ] {
        assert!(
            socket.iter().any(|(k, v)| (k.as_str(), v.as_str()) == want),
            "{want:?} missing from {socket:?}"
        );
    }
    let service = settings(&doc_unit(SERVICE));
    let exec: Vec<&str> = service
        .iter()
        .filter(|(k, _)| k == "ExecStart")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(exec.len(), 1, "one ExecStart: {service:?}");
    // The stand-in is put in place of exactly this command line.
    assert!(
        exec[0].ends_with("/usr/sbin/tcpd /usr/sbin/sshd -i"),
        "{exec:?}"
    );
    assert!(
        service
            .iter()
            .any(|(k, v)| k == "StandardInput" && v == "socket"),
        "{service:?}"
    );
}

/// What a client got on connecting.
#[derive(Debug, PartialEq, Eq)]
enum Greeting {
    /// The first line the server sent (without its line end).
    Banner(String),
    /// Closed (or reset) without a byte, `after` the connect.
    Closed { after: Duration },
    /// Neither a line nor the close within the time given; what had come.
    Nothing(String),
}

impl Greeting {
    fn closed(&self) -> bool {
        matches!(self, Greeting::Closed { .. })
    }

    fn banner_starts(&self, prefix: &str) -> bool {
        matches!(self, Greeting::Banner(b) if b.starts_with(prefix))
    }
}

/// A TCP connection from the client namespace (the socket stays in it wherever it is used).
fn connect(net: &NetPair, addr: IpAddr, port: u16) -> TcpStream {
    net.in_client(|| {
        let target = SocketAddr::new(addr, port);
        TcpStream::connect_timeout(&target, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("TCP connect to {target}: {e}"))
    })
}

/// Reads the first line, or the close, for up to `wait`.
fn greeting(stream: &mut TcpStream, wait: Duration) -> Greeting {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&got[..end]);
            return Greeting::Banner(line.trim_end_matches('\r').to_owned());
        }
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Greeting::Nothing(String::from_utf8_lossy(&got).into_owned());
        }
        stream
            .set_read_timeout(Some(left))
            .expect("set_read_timeout");
        match stream.read(&mut buf) {
            Ok(0) if got.is_empty() => {
                return Greeting::Closed {
                    after: start.elapsed(),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && got.is_empty() => {
                return Greeting::Closed {
                    after: start.elapsed(),
                }
            }
            Ok(0) | Err(_) => {
                return Greeting::Nothing(String::from_utf8_lossy(&got).into_owned());
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Connects to each target at once and returns what each got (up to 10 s: a tcpd refusal
/// closes after its 5 s pause).
fn greetings(net: &NetPair, targets: &[(IpAddr, u16)]) -> Vec<Greeting> {
    std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|&(addr, port)| {
                s.spawn(move || {
                    let mut stream = connect(net, addr, port);
                    greeting(&mut stream, Duration::from_secs(10))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a probe thread"))
            .collect()
    })
}

/// Writes `text` to `inside` in the container, making its directory.
fn put(c: &Container, inside: &str, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let path = c.path(inside);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir in the container");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {inside}: {e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {inside}: {e}"));
}

/// Whether test `name` can run here: a container, and the doc's tcpd and sshd.
fn can_run(name: &str) -> bool {
    if !can_boot(name) {
        return false;
    }
    for (path, package) in [
        ("/usr/sbin/tcpd", "tcpd"),
        ("/usr/sbin/sshd", "openssh-server"),
    ] {
        if !Path::new(path).exists() && !skip_or_fail(name, &format!("{path} (Debian: {package})"))
        {
            return false;
        }
    }
    true
}

/// A booted container in the server namespace of `net` with the knockwrap binary, hosts.deny
/// `ALL: ALL`, a hosts.allow without a line for the client, and the doc's units (with
/// `socket` in place of the doc's socket unit) enabled and started the way the doc says.
struct Bastion {
    c: Container,
    _tmp: tempfile::TempDir,
}

impl Bastion {
    fn boot(net: &NetPair, socket: &str) -> Bastion {
        let tmp = tempfile::Builder::new()
            .prefix("kw-tcpd-")
            .tempdir()
            .expect("tempdir");
        let c = Container::boot(net.server.name(), tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let bin = c.path("/usr/local/bin/knockwrap");
        std::fs::create_dir_all(bin.parent().expect("a parent")).expect("mkdir /usr/local/bin");
        std::fs::copy(knockwrap_bin(), &bin).expect("copying the binary into the container");
        put(&c, "/etc/hosts.deny", "ALL: ALL\n", 0o644);
        put(&c, "/etc/hosts.allow", "# the operator's file\n", 0o644);
        put(&c, &format!("/etc/systemd/system/{SOCKET}"), socket, 0o644);
        put(
            &c,
            &format!("/etc/systemd/system/{SERVICE}"),
            &doc_unit(SERVICE),
            0o644,
        );
        // The doc's steps (its sshd service is not running here: the container boots to
        // basic.target).
        c.run_ok(&["systemctl", "daemon-reload"]);
        c.run_ok(&["systemctl", "disable", "--now", "ssh.service"]);
        c.run_ok(&["systemctl", "enable", "--now", SOCKET]);
        assert_eq!(
            c.show(SOCKET, "ActiveState"),
            "active",
            "{}",
            c.journal(SOCKET)
        );
        Bastion { c, _tmp: tmp }
    }

    fn hosts_allow(&self) -> Vec<String> {
        lines_of(&self.c.path("/etc/hosts.allow"))
    }

    /// The real `knockwrap allow|revoke ADDR` in the container, on its /etc/hosts.allow.
    fn knockwrap(&self, verb: &str, addr: IpAddr) {
        self.c.run_ok(&[
            "/usr/local/bin/knockwrap",
            verb,
            &addr.to_string(),
            "--hosts-allow",
            "/etc/hosts.allow",
            "--state-dir",
            "/var/lib/knockwrap",
        ]);
    }

    fn count(&self, unit: &str, property: &str) -> u64 {
        let v = self.c.show(unit, property);
        v.parse()
            .unwrap_or_else(|_| panic!("{unit} {property}={v:?}"))
    }

    /// The container's last journal lines, for failure messages.
    fn log(&self) -> String {
        text(&self.c.run(&["journalctl", "--no-pager", "-n", "200"]))
    }
}

#[test]
fn the_documented_units_let_tcpd_gate_sshd_by_the_managed_line() {
    let name = test_support::test_name!();
    if !can_run(name) {
        return;
    }
    let real_ssh = have("ssh") || skip_or_fail(name, "ssh (Debian: openssh-client)");
    let _serial = serial();
    let net = NetPair::new("tcpd");
    let b = Bastion::boot(&net, &doc_unit(SOCKET));
    let c = &b.c;

    // The stand-in twice: behind the doc's units (tcpd in front), and without tcpd.
    put(
        c,
        STANDIN,
        &format!(
            "#!/bin/sh\n# Greets every client; never reads the hosts files.\n\
             printf '{STANDIN_BANNER}\\r\\n'\n"
        ),
        0o755,
    );
    let socket = doc_unit(SOCKET);
    let service = doc_unit(SERVICE);
    let standin_tcpd = replace_once(&service, "/usr/sbin/sshd -i", STANDIN);
    let exec = settings(&service)
        .into_iter()
        .find_map(|(k, v)| (k == "ExecStart").then_some(v))
        .expect("an ExecStart");
    let standin_bare = replace_once(
        &service,
        &format!("ExecStart={exec}"),
        &format!("ExecStart=-{STANDIN}"),
    );
    for (unit, port, service) in [
        ("standin-tcpd", STANDIN_TCPD_PORT, standin_tcpd),
        ("standin-bare", STANDIN_BARE_PORT, standin_bare),
    ] {
        let socket = replace_once(
            &socket,
            "ListenStream=22\n",
            &format!("ListenStream={port}\n"),
        );
        put(
            c,
            &format!("/etc/systemd/system/{unit}.socket"),
            &socket,
            0o644,
        );
        put(
            c,
            &format!("/etc/systemd/system/{unit}@.service"),
            &service,
            0o644,
        );
    }
    c.run_ok(&["systemctl", "daemon-reload"]);
    c.run_ok(&[
        "systemctl",
        "start",
        "standin-tcpd.socket",
        "standin-bare.socket",
    ]);

    net.warm_neighbours();
    let (v4, v6) = (IpAddr::V4(net.server_v4()), IpAddr::V6(net.server_v6()));
    let (client4, client6) = (IpAddr::V4(net.client_v4()), IpAddr::V6(net.client_v6()));
    let failing = |why: String| -> ! {
        panic!(
            "{why}\nhosts.allow: {:?}\njournal:\n{}",
            b.hosts_allow(),
            b.log()
        )
    };
    let targets = [
        (v4, 22),
        (v6, 22),
        (v4, STANDIN_TCPD_PORT),
        (v4, STANDIN_BARE_PORT),
    ];

    // 1. Denied: systemd accepts, tcpd closes without a banner and says so in the journal.
    let accepted = b.count(SOCKET, "NAccepted");
    let got = greetings(&net, &targets);
    if !(got[0].closed() && got[1].closed()) {
        failing(format!("sshd answered a denied client: {got:?}"));
    }
    if b.count(SOCKET, "NAccepted") != accepted + 2 {
        failing(format!(
            "systemd did not accept both connections: NAccepted {accepted} -> {}",
            b.count(SOCKET, "NAccepted")
        ));
    }
    // The refusal is tcpd's own log line (the process that logged it runs /usr/sbin/tcpd),
    // with the client's address: v4 on the dual-stack socket as ::ffff:a.b.c.d.
    let tcpd_log = || {
        text(&c.run(&[
            "journalctl",
            "--no-pager",
            "-o",
            "cat",
            "_EXE=/usr/sbin/tcpd",
        ]))
    };
    for client in [format!("::ffff:{client4}"), client6.to_string()] {
        let want = format!("refused connect from {client}");
        if !wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            tcpd_log().contains(&want)
        }) {
            failing(format!("no {want:?} from tcpd:\n{}", tcpd_log()));
        }
    }
    // 3. The same units' tcpd refuses a program that never reads the hosts files, which
    // greets the very same client when tcpd is not in front of it.
    if !got[2].closed() {
        failing(format!(
            "the stand-in behind the doc's tcpd answered a denied client: {:?}",
            got[2]
        ));
    }
    if got[3] != Greeting::Banner(STANDIN_BANNER.into()) {
        failing(format!(
            "the stand-in without tcpd did not greet the denied client (so it proves \
             nothing about tcpd): {:?}",
            got[3]
        ));
    }

    // 2. The managed line for the client's v4 address opens sshd (and the stand-in behind
    // tcpd) to that address only.
    b.knockwrap("allow", client4);
    let line = format!("SSHD: {client4}");
    if !b.hosts_allow().contains(&line) {
        failing(format!("no {line:?} after knockwrap allow"));
    }
    let got = greetings(&net, &targets);
    if !got[0].banner_starts("SSH-2.0-OpenSSH") {
        failing(format!(
            "no sshd banner for the allowed client: {:?}",
            got[0]
        ));
    }
    if !got[1].closed() {
        failing(format!(
            "the v4 line let the client's v6 address in: {:?}",
            got[1]
        ));
    }
    if got[2] != Greeting::Banner(STANDIN_BANNER.into()) {
        failing(format!(
            "tcpd did not let the allowed client through to the stand-in: {:?}",
            got[2]
        ));
    }
    if real_ssh {
        // A real client gets through the key exchange to authentication: sshd -i serves
        // behind tcpd, not just its banner.
        let out = output(net.client_cmd("ssh").args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
            &format!("kw-nobody@{}", net.server_v4()),
            "true",
        ]));
        let said = text(&out);
        if !said.contains("Permission denied") {
            failing(format!(
                "ssh did not reach authentication through tcpd:\n{said}"
            ));
        }
    }
    b.knockwrap("allow", client6);
    let got = greetings(&net, &[(v6, 22)]);
    if !got[0].banner_starts("SSH-2.0-OpenSSH") {
        failing(format!(
            "no sshd banner over IPv6 after its line: {:?}",
            got[0]
        ));
    }

    // Revoked: refused again.
    b.knockwrap("revoke", client4);
    b.knockwrap("revoke", client6);
    if b.hosts_allow().iter().any(|l| l.starts_with("SSHD:")) {
        failing("a managed line is left after knockwrap revoke".into());
    }
    let got = greetings(&net, &targets);
    if !(got[0].closed() && got[1].closed() && got[2].closed()) {
        failing(format!("answered after knockwrap revoke: {got:?}"));
    }
    if got[3] != Greeting::Banner(STANDIN_BANNER.into()) {
        failing(format!("the stand-in without tcpd: {:?}", got[3]));
    }
}

#[test]
fn max_connections_per_source_bounds_one_sources_parallel_connections() {
    let name = test_support::test_name!();
    if !can_run(name) {
        return;
    }
    let _serial = serial();
    let net = NetPair::new("tcpdmax");
    let socket = replace_once(
        &doc_unit(SOCKET),
        "MaxConnectionsPerSource=8\n",
        "MaxConnectionsPerSource=2\n",
    );
    let b = Bastion::boot(&net, &socket);
    let c = &b.c;
    assert_eq!(c.show(SOCKET, "MaxConnectionsPerSource"), "2");
    let (client4, client6) = (IpAddr::V4(net.client_v4()), IpAddr::V6(net.client_v6()));
    b.knockwrap("allow", client4);
    b.knockwrap("allow", client6);
    net.warm_neighbours();
    let (v4, v6) = (IpAddr::V4(net.server_v4()), IpAddr::V6(net.server_v6()));
    let failing = |why: String| -> ! {
        panic!(
            "{why}\nNConnections={} NAccepted={} NRefused={}\njournal:\n{}",
            c.show(SOCKET, "NConnections"),
            c.show(SOCKET, "NAccepted"),
            c.show(SOCKET, "NRefused"),
            b.log()
        )
    };
    let wait = Duration::from_secs(10);

    // Two from one source, held open (sshd waits for the client's identification).
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&net, v4, 22);
        let g = greeting(&mut s, wait);
        if !g.banner_starts("SSH-2.0-OpenSSH") {
            failing(format!("no banner within the limit: {g:?}"));
        }
        held.push(s);
    }
    if !wait_until(wait, Duration::from_millis(20), || {
        b.count(SOCKET, "NConnections") == 2
    }) {
        failing("the two held connections are not both running".into());
    }
    let (accepted, refused) = (b.count(SOCKET, "NAccepted"), b.count(SOCKET, "NRefused"));

    // The third from the same source: closed by systemd at once, without starting a service
    // (tcpd's refusal would take its 5 s pause).
    let mut third = connect(&net, v4, 22);
    let g = greeting(&mut third, wait);
    match g {
        Greeting::Closed { after } if after < Duration::from_secs(2) => {}
        other => failing(format!(
            "the third parallel connection from one source got {other:?}"
        )),
    }
    if b.count(SOCKET, "NRefused") != refused + 1 || b.count(SOCKET, "NAccepted") != accepted {
        failing("the third connection was not refused by the socket".into());
    }
    let want = format!("Too many incoming connections (3) from source {client4}");
    if !wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        c.journal(SOCKET).contains(&want)
    }) {
        failing(format!("no {want:?} in the socket's journal"));
    }

    // Another source (the client's v6 address) is still served meanwhile: the bound is per
    // source.
    let mut other = connect(&net, v6, 22);
    let g = greeting(&mut other, wait);
    if !g.banner_starts("SSH-2.0-OpenSSH") {
        failing(format!("another source was not served: {g:?}"));
    }
    drop(other);

    // A slot freed is given again.
    drop(held.pop());
    if !wait_until(wait, Duration::from_millis(20), || {
        b.count(SOCKET, "NConnections") == 1
    }) {
        failing("the closed connection's sshd did not end".into());
    }
    let mut again = connect(&net, v4, 22);
    let g = greeting(&mut again, wait);
    if !g.banner_starts("SSH-2.0-OpenSSH") {
        failing(format!("no banner once a slot was free: {g:?}"));
    }
    drop(held);
    drop(again);
    drop(third);
}

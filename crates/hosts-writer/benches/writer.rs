//! allow + revoke of one managed line on a 10,000-line hosts.allow: knockwrap's locked,
//! validated, atomic writer with and without fsync, beside the article's shell pair
//! (`echo "SSHD: ip" >> file` then `perl -ni -e 'print unless /SSHD: ip/' file`) on the same
//! file in the same run. Set KNOCKWRAP_BIN to a built `knockwrap` to also time the CLI
//! (one process per operation, like the shell pair).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hosts_access::edit::ManagedLine;
use hosts_writer::{allow, revoke, Options, PolicyOptions};

const LINES: usize = 10_000;

fn ten_thousand_lines(dir: &Path) -> PathBuf {
    let p = dir.join("hosts.allow");
    let mut text = String::from("# 10,000 foreign rules\n");
    for k in 0..LINES - 1 {
        text.push_str(&format!(
            "sshd: 10.{}.{}.{}\n",
            k >> 16 & 255,
            k >> 8 & 255,
            k & 255
        ));
    }
    fs::write(&p, text).unwrap();
    // An empty deny table beside it, so the grant check reads a real file.
    fs::write(dir.join("hosts.deny"), b"ALL: ALL\n").unwrap();
    p
}

fn opts(durable: bool) -> PolicyOptions {
    PolicyOptions {
        write: Options {
            durable,
            backup: true,
            ..Options::default()
        },
        ..PolicyOptions::default()
    }
}

fn bench(c: &mut Criterion) {
    let dir =
        tempfile::tempdir_in(std::env::var_os("KNOCKWRAP_BENCH_DIR").unwrap_or_else(|| ".".into()))
            .unwrap();
    let file = ten_thousand_lines(dir.path());
    let original = fs::read(&file).unwrap();
    let line = ManagedLine::new("SSHD", "203.0.113.7".parse().unwrap()).unwrap();
    let mut g = c.benchmark_group("allow+revoke, 10,000-line hosts.allow");
    g.sample_size(20).measurement_time(Duration::from_secs(8));

    for (name, durable) in [
        ("knockwrap library, fsync", true),
        ("knockwrap library, no fsync", false),
    ] {
        let o = opts(durable);
        g.bench_function(name, |b| {
            b.iter(|| {
                assert!(allow(&file, &line, &o).unwrap().changed);
                assert!(revoke(&file, &line, &o).unwrap().changed);
            })
        });
        assert_eq!(fs::read(&file).unwrap(), original);
    }

    // The writer alone (lock, temp, fsync, backup, re-check, rename) without the engine's
    // validation and grant check: what the machinery itself costs.
    let w = opts(true).write;
    g.bench_function("atomic update only (no validate/grant check), fsync", |b| {
        b.iter(|| {
            let add = |x: &[u8]| Ok::<_, ()>(hosts_access::edit::add(x, &line));
            let remove = |x: &[u8]| Ok::<_, ()>(hosts_access::edit::remove(x, &line));
            assert!(hosts_writer::update(&file, &w, add).unwrap().written);
            assert!(hosts_writer::update(&file, &w, remove).unwrap().written);
        })
    });
    assert_eq!(fs::read(&file).unwrap(), original);

    if let Some(bin) = std::env::var_os("KNOCKWRAP_BIN") {
        g.bench_function("knockwrap CLI (2 processes), fsync", |b| {
            b.iter(|| {
                for verb in ["allow", "revoke"] {
                    let st = Command::new(&bin)
                        .args([verb, "203.0.113.7", "--hosts-allow"])
                        .arg(&file)
                        .output()
                        .unwrap();
                    assert!(st.status.success());
                }
            })
        });
        assert_eq!(fs::read(&file).unwrap(), original);
    }

    let f = file.to_str().unwrap().to_string();
    g.bench_function("article: echo >> + perl -ni (2 processes)", |b| {
        b.iter(|| {
            let st = Command::new("sh")
                .args(["-c", &format!("echo \"SSHD: 203.0.113.7\" >> '{f}'")])
                .status()
                .unwrap();
            assert!(st.success());
            let st = Command::new("perl")
                .args(["-ni", "-e", "print unless /SSHD: 203.0.113.7/", &f])
                .status()
                .unwrap();
            assert!(st.success());
        })
    });
    assert_eq!(fs::read(&file).unwrap(), original);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

#!/usr/bin/env bash
# allow + revoke of one managed line on a 10,000-line hosts.allow (`sshd: 10.a.b.c` lines,
# hosts.deny `ALL: ALL`, the state directory beside it), two processes per pair, beside the
# article's shell pair (`echo >>` then `perl -ni`) on the same file in the same run. Each pair is
# one `sh -c`, so all pay the same shell start. The pairs alternate round by round so that they
# meet the same machine load; each round checks the file is back to its original bytes. Prints
# the median and quartiles per pair (wall time, python's perf_counter around the `sh -c`).
#
#   cargo build --release --locked --bin knockwrap
#   bash tests/bench/allow_revoke.sh [BIN...]      # default BIN: target/release/knockwrap
#
# Several BINs (e.g. a build of the previous commit, then this one) are timed in the same run.
# ROUNDS (default 21) sets the number of timed rounds; KNOCKWRAP_BENCH_DIR the directory the
# temp dir is made in (default /tmp). Needs python3 and perl. Prints figures only: no pass/fail.
# With libeatmydata installed (Debian: eatmydata), the first BIN is also timed with it
# preloaded, which turns fsync and fdatasync into no-ops: the difference is what durability
# costs on this disk (knockwrap never runs that way; the article's pair never fsyncs). The
# article's pair is also timed with `sync FILE` after each command, the nearest it comes to
# durable (still neither atomic nor locked).
set -euo pipefail
[ $# -gt 0 ] || set -- target/release/knockwrap
bins=()
for b in "$@"; do
    [ -x "$b" ] || { echo "no $b: cargo build --release --locked --bin knockwrap" >&2; exit 2; }
    bins+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")")
done
work=$(mktemp -d "${KNOCKWRAP_BENCH_DIR:-/tmp}/allow-revoke.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 - "$work" "${ROUNDS:-21}" "${bins[@]}" <<'PY'
import os, statistics, subprocess, sys, time

work, rounds, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
allow = os.path.join(work, "hosts.allow")
lines = [f"sshd: 10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}\n" for k in range(10_000)]
original = "".join(lines).encode()
with open(allow, "wb") as f:
    f.write(original)
with open(os.path.join(work, "hosts.deny"), "w") as f:
    f.write("ALL: ALL\n")
ip = "203.0.113.7"
pairs = {
    "article: echo >> ; perl -ni": [
        "sh", "-c", f'echo "SSHD: {ip}" >> "$0"; perl -ni -e "print unless /SSHD: {ip}/" "$0"', allow,
    ],
}
# The same pair made as durable as `sync FILE` can (coreutils: fsync of the file, then of the
# file system's journal); still not atomic and not locked. For comparison only.
pairs["article + sync: echo >> ; sync ; perl -ni ; sync"] = [
    "sh", "-c",
    f'echo "SSHD: {ip}" >> "$0"; sync "$0"; perl -ni -e "print unless /SSHD: {ip}/" "$0"; sync "$0"',
    allow,
]
for n, b in enumerate(bins):
    state = os.path.join(work, f"state{n}")
    pairs[f"{b}: allow && revoke"] = [
        "sh", "-c",
        '"$0" allow "$1" --hosts-allow "$2" --state-dir "$3" && '
        '"$0" revoke "$1" --hosts-allow "$2" --state-dir "$3"',
        b, ip, allow, state,
    ]
emd = "/usr/lib/x86_64-linux-gnu/libeatmydata.so"
if os.path.exists(emd):
    pairs[f"{bins[0]}: allow && revoke, fsync a no-op (eatmydata)"] = [
        "sh", "-c",
        'export LD_PRELOAD="$4"; "$0" allow "$1" --hosts-allow "$2" --state-dir "$3" && '
        '"$0" revoke "$1" --hosts-allow "$2" --state-dir "$3"',
        bins[0], ip, allow, os.path.join(work, "state-nosync"), emd,
    ]
pairs[f"{bins[0]}: --version; --version"] = ["sh", "-c", '"$0" --version; "$0" --version', bins[0]]
times = {name: [] for name in pairs}
for r in range(rounds + 1):  # round 0 warms the page cache and creates the state directories
    for name, cmd in pairs.items():
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        dt = (time.perf_counter() - t0) * 1000
        with open(allow, "rb") as f:
            assert f.read() == original, f"{name}: file not restored"
        if r:
            times[name].append(dt)
for name, ts in times.items():
    q = statistics.quantiles(ts, n=4)
    print(f"median {statistics.median(ts):6.2f} ms (q1 {q[0]:6.2f}, q3 {q[2]:6.2f}, n={len(ts)})  {name}")
PY

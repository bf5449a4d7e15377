#!/usr/bin/env bash
# What one admission through the nft program costs, on its own: `nft add element` as a command
# line, the same through `/bin/sh -c` (what knockd's start_command does), and `nft -j -f -`
# with the element as JSON on standard input (what knockwrap runs, one per batch of grants).
# Each is run ROUNDS times (default 60) from python3 (subprocess, perf_counter around each run)
# in a network namespace of its own that holds one table `inet kd`; the namespace is deleted
# at the end, also on failure. nft runs only inside that namespace: the host's ruleset is
# never read or changed. Addresses come from 198.18.0.0/15. Needs root, ip, nft, python3.
# Prints figures only: no pass/fail. The figures go to docs/benchmarks.md ("The firewall door").
#
#   bash tests/bench/nft_exec.sh
set -euo pipefail
nft=$(command -v nft || true)
[ -n "$nft" ] || nft=/usr/sbin/nft
[ -x "$nft" ] || { echo "no nft (Debian package nftables)" >&2; exit 2; }
ns=kw-nft-exec-$$
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns add "$ns"
ip netns exec "$ns" "$nft" -f - <<'NFT'
table inet kd {
    set admitted { type ipv4_addr . inet_proto . inet_service; flags timeout; }
}
NFT
ip netns exec "$ns" python3 - "$nft" "${ROUNDS:-60}" <<'PY'
import statistics, subprocess, sys, time

nft, rounds = sys.argv[1], int(sys.argv[2])


serial = 0


def timed(make):
    global serial
    ts = []
    for _ in range(rounds):
        # A new address every run, across all rows (198.18.0.1 onwards).
        serial += 1
        argv, stdin = make(f"198.18.{serial // 250}.{serial % 250 + 1}")
        t0 = time.perf_counter()
        subprocess.run(argv, input=stdin, check=True)
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    p90 = ts[round(0.9 * (len(ts) - 1))]
    return f"median {statistics.median(ts):.2f} ms, p90 {p90:.2f} ms"


element = "{{ {} . tcp . 22 timeout 60s }}"
json = (
    '{{"nftables":[{{"add":{{"element":{{"family":"inet","table":"kd","name":"admitted",'
    '"elem":[{{"elem":{{"val":{{"concat":["{}","tcp",22]}},"timeout":60}}}}]}}}}}}]}}'
)
rows = {
    "nft add element (command line)": lambda ip: (
        [nft, "add", "element", "inet", "kd", "admitted", *element.format(ip).split()],
        None,
    ),
    "/bin/sh -c 'nft add element ...' (knockd's start_command)": lambda ip: (
        ["/bin/sh", "-c", f"{nft} add element inet kd admitted " + element.format(ip)],
        None,
    ),
    "nft -j -f - (JSON on standard input, as knockwrap)": lambda ip: (
        [nft, "-j", "-f", "-"],
        json.format(ip).encode(),
    ),
}
print(f"{rounds} runs each, one new element per run")
for name, make in rows.items():
    print(f"{name}: {timed(make)}")
PY

#!/usr/bin/env bash
# The whole test suite: installs the system packages the tests need (when run as root on
# Debian and something is missing), then runs every test in the workspace.
# Privileged tests (network namespaces, AF_PACKET, sshd) need root; without it they print
# SKIPPED loudly, and with KNOCKWRAP_REQUIRE_PRIVILEGED=1 they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in tcpdmatch:tcpd knock:knockd sshd:openssh-server ssh:openssh-client ssh-keygen:openssh-client ip:iproute2 unshare:util-linux python3:python3 systemd-analyze:systemd systemd-nspawn:systemd-container nft:nftables; do
    bin=${pair%%:*} pkg=${pair##*:}
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
# A library, not a command: the clock-jump test preloads it into the daemon.
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || need+=(libfaketime)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y "${need[@]}"
    else
        echo "tests/run-all.sh: missing packages: ${need[*]} (run as root to install them)" >&2
    fi
fi

cargo build --locked --release --bins

# Keep cargo's own output, and close with one total over every test binary (cargo's last
# line is otherwise the doc-test summary of whichever crate ran last).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --workspace --release 2>&1 | tee "$log" || status=$?
skipped=$(grep -c 'SKIPPED (needs ' "$log" || true)
# A privileged test skipped without root returns early, so cargo counts it as passed.
awk -v s="$skipped" '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p - s, f, i + s }' "$log"
exit "$status"

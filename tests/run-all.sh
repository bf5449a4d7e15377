#!/usr/bin/env bash
# The whole test suite: installs the system packages the tests need (when run as root on
# Debian and something is missing), then runs every test in the workspace.
# Privileged tests (network namespaces, AF_PACKET, sshd) need root; without it they print
# SKIPPED loudly, and with KNOCKWRAP_REQUIRE_PRIVILEGED=1 they fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in tcpdmatch:tcpd knock:knockd sshd:openssh-server ip:iproute2 unshare:util-linux python3:python3; do
    bin=${pair%%:*} pkg=${pair##*:}
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y "${need[@]}"
    else
        echo "tests/run-all.sh: missing packages: ${need[*]} (run as root to install them)" >&2
    fi
fi

cargo build --release --bins
cargo test --workspace --release

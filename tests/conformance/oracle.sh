#!/usr/bin/env bash
# Regenerates tests/conformance/cases/*/expected.json from the REAL Debian tools (package tcpd:
# tcpdmatch, tcpdchk). Usage: bash tests/conformance/oracle.sh [CASE_DIR_NAME...]
#        bash tests/conformance/oracle.sh --fuzz --seed N --cases N ...  (the differential fuzzer,
#          fuzz.py; see tests/conformance/README.md)
#        bash tests/conformance/oracle.sh --exec CMD [ARG...]   (run CMD in the same sandbox,
#        e.g. to time tcpdchk while its syslog output is really being delivered)
#
# Debian's libwrap reports through syslog(3) and tcpdchk prints nothing without a syslog daemon,
# so this script re-runs itself inside `unshare --net --mount`: no network (so no DNS answer can
# change a verdict) and a private /dev (a tmpfs with the usual device nodes bind-mounted in) where
# oracle.py listens on /dev/log and collects every message. Needs root. Idempotent: the output
# depends only on the case files and the installed tcpd version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ "${KNOCKWRAP_ORACLE_INSIDE:-}" != 1 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "oracle.sh: needs root (unshare --net --mount)" >&2
        exit 2
    fi
    for tool in tcpdmatch tcpdchk unshare python3; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || {
            echo "oracle.sh: $tool not found (apt-get install tcpd util-linux python3)" >&2
            exit 2
        }
    done
    work=$(mktemp -d /tmp/knockwrap-oracle.XXXXXX)
    mkdir "$work/olddev"
    status=0
    KNOCKWRAP_ORACLE_INSIDE=1 KNOCKWRAP_ORACLE_WORK="$work" \
        unshare --net --mount --propagation private -- bash "$here/oracle.sh" "$@" || status=$?
    # The bind mounts died with the namespace; only empty directories are left.
    rmdir "$work/olddev" "$work" 2>/dev/null || true
    exit "$status"
fi

# Inside the namespace: a private /dev whose /dev/log nobody else can see.
work=$KNOCKWRAP_ORACLE_WORK
mount --rbind /dev "$work/olddev"
mount -t tmpfs -o mode=755 knockwrap-oracle-dev /dev
for node in null zero full random urandom tty; do
    touch "/dev/$node"
    mount --bind "$work/olddev/$node" "/dev/$node"
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
export PATH="$PATH:/usr/sbin:/sbin"
exec python3 "$here/oracle.py" "$@"

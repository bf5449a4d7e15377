#!/usr/bin/env bash
# The daemon's end-to-end figures for two builds side by side, in one run: knock-to-open
# latency, the 200-knocker burst, the 4,000-knock storm and the CPU per million flood
# packets. Each round runs every measure once per build, alternating which build goes first,
# so both see the same machine. Needs root (network namespaces; see crates/test-support).
# Prints the figures' own lines, tagged with the build; no pass/fail. The figures go to
# docs/benchmarks.md.
#
#   cargo build --release --locked --bin knockwrap
#   ROUNDS=3 bash tests/bench/before_after.sh /path/to/old/knockwrap target/release/knockwrap
set -euo pipefail
cd "$(dirname "$0")/../.."
before=$(realpath "${1:?usage: before_after.sh BEFORE_BIN AFTER_BIN}")
after=$(realpath "${2:?usage: before_after.sh BEFORE_BIN AFTER_BIN}")
rounds=${ROUNDS:-3}

# Build the test binaries once, so that no round measures a compile.
cargo test --locked --release --test e2e --test side_by_side --test adversary \
    --test background_cost --no-run 2>&1 | tail -1

measure() { # label bin
    local label=$1 bin=$2
    KNOCKWRAP_BIN=$bin cargo test -q --locked --release --test e2e -- knock_to_open_latency \
        --nocapture 2>&1 | grep -E '^LATENCY knockwrap' | sed "s/^/$label: /"
    KNOCKWRAP_BIN=$bin cargo test -q --locked --release --test side_by_side -- --nocapture \
        2>&1 | grep -E '^SIDE-BY-SIDE' | sed "s/^/$label: /"
    KNOCKWRAP_BIN=$bin cargo test -q --locked --release --test adversary -- \
        a_storm_of_spoofed_grants --nocapture 2>&1 | grep -E '^storm' | sed "s/^/$label: /"
}

for r in $(seq 1 "$rounds"); do
    echo "== round $r"
    if [ $((r % 2)) = 1 ]; then
        measure before "$before"; measure after "$after"
    else
        measure after "$after"; measure before "$before"
    fi
done

echo "== CPU per million flood packets (both builds, same run)"
KNOCKWRAP_BEFORE_BIN=$before KNOCKWRAP_BIN=$after cargo test -q --locked --release \
    --test background_cost -- --ignored --nocapture 2>&1 | grep -E '^\|'

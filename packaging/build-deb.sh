#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (`cargo install --locked cargo-deb`): the release
# binary, the man page and the bash/zsh/fish completions generated from it now, the systemd
# unit (systemd/knockwrap.service with the packaged binary's path; installed neither enabled
# nor started), and /etc/knockwrap/knockwrap.toml as a conffile that listens on nothing.
# The package lands in target/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --release --bin knockwrap
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets"
target/release/knockwrap man | gzip -9n > "$assets/knockwrap.1.gz"
target/release/knockwrap completions bash > "$assets/knockwrap.bash"
target/release/knockwrap completions zsh > "$assets/_knockwrap"
target/release/knockwrap completions fish > "$assets/knockwrap.fish"
# One unit, systemd/knockwrap.service; the package's binary lives in /usr/bin.
sed 's#/usr/local/bin/knockwrap#/usr/bin/knockwrap#g' systemd/knockwrap.service \
    > "$assets/knockwrap.service"
cargo deb --no-build

#!/usr/bin/env bash
# Builds the Debian package: target/debian/rostersync_VERSION_ARCH.deb (or
# under $CARGO_TARGET_DIR/debian/), and prints its path on the last line.
#
# Before `cargo deb` it writes into target/assets/ (always the repository's
# own target/ folder, whatever CARGO_TARGET_DIR says: Cargo.toml's deb assets
# name it so):
#   man/*.1.gz         the man pages, from the clap definitions (examples/gen_assets/)
#   completions/       bash, zsh and fish completions, from the same
#   config.toml        config.example.toml with the demo's relative paths
#                      replaced by the system's (/var/lib, /var/log, /srv/rostersync);
#                      installed as the conffile /etc/rostersync/config.toml
# Needs cargo-deb: cargo install cargo-deb --version 3.8.0 --locked
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || {
    echo "cargo-deb is missing: cargo install cargo-deb --version 3.8.0 --locked" >&2
    exit 1
}

assets=target/assets
rm -rf "$assets"
mkdir -p "$assets"
cargo run --locked --quiet --example gen_assets -- "$assets" >/dev/null
gzip -9nf "$assets"/man/*.1

sed -e 's|"example/state"|"/var/lib/rostersync"|' \
    -e 's|"example/log"|"/var/log/rostersync"|' \
    -e 's|"example/inbox/|"/srv/rostersync/inbox/|' \
    -e 's|"example/wbt-out"|"/srv/rostersync/wbt-out"|' \
    config.example.toml > "$assets/config.toml"
if grep -n '"example/' "$assets/config.toml" >&2; then
    echo "build-deb.sh: the lines above still point into example/: add them to the sed list" >&2
    exit 1
fi

cargo deb --locked "$@" | tail -n 1

#!/usr/bin/env bash
# Daemon benchmarks: latency from a file's completion to the first request,
# idle cost with 2 sources and 5 targets, and a 100,000-user first import
# through `rostersync run` to the Collaborator fake (tests/daemon_bench.rs).
#   scripts/bench-daemon.sh [TEST_NAME_FILTER]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --bin rostersync
# A private copy: a shared target folder may be rebuilt meanwhile.
bin="$(mktemp -d)/rostersync"
cp "$target/release/rostersync" "$bin"
ROSTERSYNC_BIN="$bin" cargo test --release --quiet --test daemon_bench -- \
    --ignored --nocapture --test-threads=1 "${1:-}"

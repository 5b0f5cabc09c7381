#!/usr/bin/env bash
# Push benchmark (issue 4): 10,000 changes queued in a real sled store, then
# drained to the stateful fakes with 5 ms added to every request: a batch
# target (Collaborator, 500 per batch) and one-request-per-record targets
# (Collaborator's single endpoint, Maarch, SCIM; concurrency 16, no rate limit).
#   scripts/bench-push.sh [CHANGES] [LATENCY_MS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
changes="${1:-10000}"
latency="${2:-5}"
runs="${3:-3}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet --example bench_push
for kind in store collaborator collaborator-single maarch scim; do
    for _ in $(seq "$runs"); do
        "$target/release/examples/bench_push" "$kind" "$changes" "$latency"
    done
done

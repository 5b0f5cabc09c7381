#!/usr/bin/env bash
# Sync engine benchmark: a 1,000,000-user full export planned against a
# 1,000,000-record state for two targets, with 4 % of the rows changed.
# Each step is its own process (its own peak RSS):
#   1. first import into an empty store (plan, commit, acknowledge everything);
#   2. the same export again (nothing to do);
#   3. a later export with 4 % of the users changed.
#   scripts/bench-plan.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
dir="${BENCH_DIR:-/tmp}"
first="$dir/rostersync-bench-users-${rows}.csv"
later="$dir/rostersync-bench-users-${rows}-4pc.csv"
state="$dir/rostersync-bench-state-${rows}"

cargo build --release --quiet --example gen_wbt --example bench_plan
[ -s "$first" ] || target/release/examples/gen_wbt "$rows" "$first"
[ -s "$later" ] || target/release/examples/gen_wbt "$rows" "$later" 4
rm -rf "$state"
echo "--- 1. first import into an empty store"
target/release/examples/bench_plan setup "$state" "$first"
echo "--- 2. the same export again"
target/release/examples/bench_plan plan "$state" "$first"
echo "--- 3. 4 % of the users changed"
target/release/examples/bench_plan plan "$state" "$later"
du -sh "$state" | awk '{ print "state on disk: " $1 }'

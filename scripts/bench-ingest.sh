#!/usr/bin/env bash
# Ingest benchmark: generates a WBT users export (default 1,000,000 rows,
# about 240 MB), then times ingest on it and reports rows/s and peak memory,
# in-process (examples/bench_ingest.rs) and through the real binary
# (`rostersync validate`, peak RSS from /usr/bin/time when it is installed).
#   scripts/bench-ingest.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
file="${BENCH_DIR:-/tmp}/rostersync-bench-users-${rows}.csv"

cargo build --release --quiet --bin rostersync --example gen_wbt --example bench_ingest
if [ ! -s "$file" ]; then
  echo "generating $rows users into $file"
  target/release/examples/gen_wbt "$rows" "$file"
fi
target/release/examples/bench_ingest "$file" 5

echo "--- rostersync validate (end to end: read, ingest, report)"
start=$(date +%s.%N)
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f "peak RSS %M KiB, %e s" target/release/rostersync validate "$file" | tail -1
else
  target/release/rostersync validate "$file" | tail -1
fi
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$rows" 'BEGIN { printf "%.2f s, %.0f rows/s\n", e - s, n / (e - s) }'

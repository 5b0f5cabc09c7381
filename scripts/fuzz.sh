#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/, cargo-fuzz on the nightly toolchain) one
# after the other, SECONDS each (600 unless given), niced; TARGET... limits
# the run to those. Each works on fuzz/corpus/TARGET (git-ignored), seeded
# from fuzz/seeds/TARGET, and ends with libFuzzer's final line: runs, time,
# coverage, features, corpus. A crash stops the script; its input is in
# fuzz/artifacts/TARGET/ (`cargo +nightly fuzz tmin TARGET FILE` shrinks it).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-600}
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(ingest collaborator gestimum pleasanter maarch scim)
fi
mkdir -p logs
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="logs/$target.log"
    # Crash, leak, timeout and out-of-memory inputs; slow-unit files only say
    # an input took over 10 s of wall time (a loaded machine does that).
    found() { find "artifacts/$target" -type f ! -name 'slow-unit-*' | wc -l; }
    before=$(found)
    echo "== $target: ${seconds}s (libFuzzer's output: fuzz/$log)"
    # With -jobs, libFuzzer's worker writes its output to fuzz-0.log.
    rm -f fuzz-0.log
    status=0
    nice -n 10 cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -jobs=1 -print_final_stats=1 >"logs/$target.run.log" 2>&1 || status=$?
    if [ -f fuzz-0.log ]; then mv fuzz-0.log "$log"; else cp "logs/$target.run.log" "$log"; fi
    after=$(found)
    if [ "$status" -ne 0 ] || [ "$after" -gt "$before" ]; then
        echo "$target: crashed or failed (status $status), see fuzz/$log and fuzz/artifacts/$target/"
        tail -n 30 "$log"
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)" "$log" || true
    echo "corpus: $(find "corpus/$target" -type f | wc -l) files"
done

#!/usr/bin/env bash
# Store benchmark of issue 12: rostersync at 1,000,000 users against the
# csv-diff crate diffing the same two files in the same run (this machine's
# absolute times drift; the ratios are the figures).
#   scripts/bench-store.sh [ROWS] [--peer-runs N] [--plan-rows N]
# Files (in ${BENCH_DIR:-/tmp}, kept between runs): the ROWS-user WBT export
# of examples/gen_wbt.rs and the same population later with 4 % changed, 1 %
# leavers and 1 % hires. Steps, each its own process, timed with
# /usr/bin/time (wall time, peak RSS):
#   (a) bench/csv-diff-peer on FIRST vs LATER, N times (default 2), best kept;
#   (b) `rostersync sync FIRST` into an empty state: first import to two
#       wbt-file targets, acknowledgements included;
#   (c) `rostersync sync LATER` on that state;
#   (d) `rostersync plan --json FIRST` against a fresh empty state (output to
#       /dev/null); --plan-rows N plans an N-user first file instead;
#   (e) the state on disk after (b) and (c) against FIRST's size.
# Each step runs under `ulimit -v ${BENCH_MEM_CAP_KIB:-20971520}` (20 GiB of
# address space, so that a step that would take the whole machine fails
# instead); a step that fails is reported with its exit code.
# Logs (ROSTERSYNC_LOG, default info), the configs and the time files stay in
# the work folder printed at the start; the states and WBT outputs are removed
# at the end unless BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=1000000
peer_runs=2
plan_rows=
while [ $# -gt 0 ]; do
    case "$1" in
    --peer-runs) peer_runs="$2"; shift 2 ;;
    --plan-rows) plan_rows="$2"; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) rows="$1"; shift ;;
    esac
done
plan_rows="${plan_rows:-$rows}"
dir="${BENCH_DIR:-/tmp}"
cap_kib="${BENCH_MEM_CAP_KIB:-20971520}"
export ROSTERSYNC_LOG="${ROSTERSYNC_LOG:-info}"
mkdir -p "$dir"
first="$dir/rostersync-bench-users-${rows}.csv"
later="$dir/rostersync-bench-users-${rows}-4-1-1.csv"
plan_file="$dir/rostersync-bench-users-${plan_rows}.csv"

echo "--- build (release): rostersync, gen_wbt, bench/csv-diff-peer"
cargo build --release --quiet --bin rostersync --example gen_wbt
cargo build --release --quiet --locked --manifest-path bench/csv-diff-peer/Cargo.toml
bin="$PWD/target/release/rostersync"
gen="$PWD/target/release/examples/gen_wbt"
peer="$PWD/bench/csv-diff-peer/target/release/csv-diff-peer"

echo "--- files"
[ -s "$first" ] || "$gen" "$rows" "$first"
[ -s "$later" ] || "$gen" "$rows" "$later" 4 1 1
[ -s "$plan_file" ] || "$gen" "$plan_rows" "$plan_file"
size() { stat -c %s "$1"; }
for f in $(printf '%s\n' "$first" "$later" "$plan_file" | awk '!seen[$0]++'); do
    printf '%s: %s bytes, %s rows\n' "$f" "$(size "$f")" "$(($(wc -l <"$f") - 1))"
done

work="$(mktemp -d "$dir/rostersync-bench-store.XXXXXX")"
echo "work folder: $work"

# A config with one users source (full, WBT format) feeding two wbt-file
# targets, the state in $1. Safety limits are lifted: the later file blocks
# its 1 % of leavers (over the default 500), which an administrator would
# approve; the benchmark measures the sync, not the hold.
config() {
    local name="$1"
    mkdir -p "$work/$name/inbox/users" "$work/$name/wbt-a" "$work/$name/wbt-b"
    cat >"$work/$name/config.toml" <<EOF
[daemon]
state_dir = "state"
log_dir = "log"

[safety]
max_block_percent = 100.0
max_block_count = 100000000
max_shrink_percent = 100.0

[[source]]
name = "hr-users"
kind = "users"
inbox = "inbox/users"
mode = "full"
format = "wbt"
delimiter = ";"
targets = ["wbt-a", "wbt-b"]

[[target]]
name = "wbt-a"
kind = "wbt-file"
dir = "wbt-a"

[[target]]
name = "wbt-b"
kind = "wbt-file"
dir = "wbt-b"
EOF
    "$bin" check -c "$work/$name/config.toml" >/dev/null
    echo "$work/$name/config.toml"
}
sync_config="$(config sync)"
plan_config="$(config plan)"

have_time=1
[ -x /usr/bin/time ] || have_time=0
if [ "$have_time" = 0 ]; then
    echo "note: /usr/bin/time is missing: wall time from bash's EPOCHREALTIME and peak RSS"
    echo "      from VmHWM sampled every 0.1 s (a peak in the last 0.1 s can be missed)"
fi

# sample PID NAME STATE WBT...: every 2 s while PID runs, one line to
# NAME.samples: seconds, the process's RSS and peak (MiB), the state folder on
# disk (MB) and how many files the wbt-file targets have (the phases show:
# read and plan grow the RSS, the commit the state, the push the files, the
# acknowledgements the state again; `rostersync sync` logs nothing on them).
sample() {
    local pid="$1" name="$2" state="$3"
    shift 3
    local start="$EPOCHREALTIME" child rss hwm disk files
    echo "     s   RSS MiB  peak MiB  state MB  wbt files" >"$work/$name.samples"
    while kill -0 "$pid" 2>/dev/null; do
        # Under /usr/bin/time the measured process is time's child.
        child="$pid"
        if [ "$have_time" = 1 ]; then
            child="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null | awk '{ print $1 }')"
        fi
        if [ -n "$child" ] && [ -r "/proc/$child/status" ]; then
            read -r rss hwm < <(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { print r + 0, h + 0 }' "/proc/$child/status" 2>/dev/null || echo "0 0")
            disk=0
            [ -d "$state" ] && disk="$(du -sk "$state" 2>/dev/null | cut -f1)"
            files=0
            [ $# -eq 0 ] || files="$(find "$@" -maxdepth 1 -type f 2>/dev/null | wc -l)"
            awk -v s="$start" -v n="$EPOCHREALTIME" -v r="$rss" -v h="$hwm" -v d="${disk:-0}" -v f="$files" \
                'BEGIN { printf "%6.0f %9.0f %9.0f %9.0f %10d\n", n - s, r / 1024, h / 1024, d * 1024 / 1e6, f }' \
                >>"$work/$name.samples"
        fi
        sleep 2
    done
}

# measure NAME OUT [--sample STATE WBT...] -- CMD...: runs CMD (stdout to
# OUT, stderr to NAME.log) under the address-space cap; sets $secs, $kib and
# $code.
measure() {
    local name="$1" out="$2"
    shift 2
    local sampling=()
    if [ "$1" = --sample ]; then
        shift
        while [ "$1" != -- ]; do
            sampling+=("$1")
            shift
        done
    fi
    shift
    local log="$work/$name.log" timing="$work/$name.time" pid sampler=
    code=0
    if [ "$have_time" = 1 ]; then
        (ulimit -v "$cap_kib" && exec /usr/bin/time -f '%e s %M KiB' -o "$timing" "$@") \
            >"$out" 2>"$log" &
        pid=$!
        if [ ${#sampling[@]} -gt 0 ]; then
            sample "$pid" "$name" "${sampling[@]}" &
            sampler=$!
        fi
        wait "$pid" || code=$?
        read -r secs _ kib _ < <(tail -n 1 "$timing")
    else
        local start end hwm=0 now
        start="$EPOCHREALTIME"
        (ulimit -v "$cap_kib" && exec "$@") >"$out" 2>"$log" &
        pid=$!
        if [ ${#sampling[@]} -gt 0 ]; then
            sample "$pid" "$name" "${sampling[@]}" &
            sampler=$!
        fi
        while kill -0 "$pid" 2>/dev/null; do
            now="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)"
            [ -n "$now" ] && [ "$now" -gt "$hwm" ] && hwm="$now"
            sleep 0.1
        done
        wait "$pid" || code=$?
        end="$EPOCHREALTIME"
        secs="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"
        kib="$hwm"
        echo "$secs s $kib KiB (sampled)" >"$timing"
    fi
    [ -z "$sampler" ] || wait "$sampler" || true
    printf '%-16s %8s s %10s KiB  exit %s\n' "$name" "$secs" "$kib" "$code"
    if [ -s "$work/$name.samples" ]; then
        # At most 16 of the samples, evenly spread, and the last.
        awk 'NR == 1 { print; next } { line[NR] = $0 } END {
                step = int((NR - 1) / 16) + 1
                for (i = 2; i <= NR; i += step) print line[i]
                if ((NR - 2) % step) print line[NR] }' "$work/$name.samples" | sed 's/^/    /'
    fi
}

# The state on disk, in bytes (blocks used, as du counts them).
disk() { echo $(($(du -sk "$1" | cut -f1) * 1024)); }

echo "--- (a) csv-diff peer, FIRST vs LATER, $peer_runs run(s)"
peer_secs=
peer_kib=
for run in $(seq 1 "$peer_runs"); do
    measure "a-peer-$run" "$work/a-peer-$run.out" -- "$peer" "$first" "$later"
    sed 's/^/    /' "$work/a-peer-$run.out"
    if [ "$code" = 0 ] && { [ -z "$peer_secs" ] || awk -v a="$secs" -v b="$peer_secs" 'BEGIN { exit !(a < b) }'; }; then
        peer_secs="$secs"
        peer_kib="$kib"
    fi
done
[ -n "$peer_secs" ] || { echo "the csv-diff peer failed"; exit 1; }

echo "--- (b) rostersync sync FIRST, empty state (first import, acknowledgements included)"
measure b-sync-first "$work/b-sync-first.out" \
    --sample "$work/sync/state" "$work/sync/wbt-a" "$work/sync/wbt-b" -- "$bin" sync -c "$sync_config" "$first"
b_secs="$secs" b_kib="$kib" b_code="$code"
state_b="$(disk "$work/sync/state")"

echo "--- (c) rostersync sync LATER (4 % changed, 1 % leavers, 1 % hires)"
measure c-sync-later "$work/c-sync-later.out" \
    --sample "$work/sync/state" "$work/sync/wbt-a" "$work/sync/wbt-b" -- "$bin" sync -c "$sync_config" "$later"
c_secs="$secs" c_kib="$kib" c_code="$code"
state_c="$(disk "$work/sync/state")"

echo "--- (d) rostersync plan --json FILE (${plan_rows} users), fresh empty state"
measure d-plan-json /dev/null --sample "$work/plan/state" -- "$bin" plan --json -c "$plan_config" "$plan_file"
d_secs="$secs" d_kib="$kib" d_code="$code"

for step in b-sync-first c-sync-later; do
    echo "    $step:"
    grep -E '^(plan for|target )' "$work/$step.out" | sed 's/^/      /'
done

export_bytes="$(size "$first")"
gib=1073741824
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v m="$2" 'BEGIN { print (v <= m) ? "ok" : "over" }'; }
failed() { [ "$1" = 0 ] || echo " (exit $1)"; }

echo
echo "=== issue 12, ${rows} users ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD)); targets: ≤ 3 ×, ≤ 0.6 ×, ≤ 1 GiB, ≤ 3 ×"
echo "| step | wall time | × csv-diff | peak RSS | target |"
echo "|---|---|---|---|---|"
echo "| (a) csv-diff peer, first vs later (best of $peer_runs) | ${peer_secs} s | 1 | $(mib "$peer_kib") | reference |"
echo "| (b) sync first file, empty state$(failed "$b_code") | ${b_secs} s | $(ratio "$b_secs" "$peer_secs") | $(mib "$b_kib") | ≤ 3 × $(verdict "$(ratio "$b_secs" "$peer_secs")" 3), ≤ 1 GiB $(verdict "$b_kib" $((gib / 1024))) |"
echo "| (c) sync later file$(failed "$c_code") | ${c_secs} s | $(ratio "$c_secs" "$peer_secs") | $(mib "$c_kib") | ≤ 0.6 × $(verdict "$(ratio "$c_secs" "$peer_secs")" 0.6), ≤ 1 GiB $(verdict "$c_kib" $((gib / 1024))) |"
echo "| (d) plan --json, ${plan_rows} users, empty state$(failed "$d_code") | ${d_secs} s | $(ratio "$d_secs" "$peer_secs") | $(mib "$d_kib") | ≤ 1 GiB $(verdict "$d_kib" $((gib / 1024))) |"
echo "| (e) state on disk after (b) / after (c) | $(awk -v b="$state_b" 'BEGIN { printf "%.0f MB", b / 1e6 }') / $(awk -v b="$state_c" 'BEGIN { printf "%.0f MB", b / 1e6 }') | $(ratio "$state_b" "$export_bytes") / $(ratio "$state_c" "$export_bytes") × the export ($(awk -v b="$export_bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }')) | | ≤ 3 × $(verdict "$(ratio "$((state_b > state_c ? state_b : state_c))" "$export_bytes")" 3) |"

if [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$work"/{sync,plan}/{state,wbt-a,wbt-b}
fi
echo "logs and timings: $work"

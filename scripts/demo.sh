#!/usr/bin/env bash
# The README's demo: `rostersync run` on the bundled example, no server needed.
#
# It runs on a copy, so that the tracked sample exports in example/inbox/
# are never moved and `git status` stays clean: example/run/ (ignored by git)
# is emptied, then seeded with the sample exports and with a config.toml made
# from config.example.toml, its example/ paths moved inside example/run/
# (relative paths are taken from the config's folder). The daemon then
# watches example/run/inbox/orgs and example/run/inbox/users until Ctrl-C.
# Each run starts again from the samples, with a new state: it first puts
# the example back as a fresh clone has it (see reset below).
#
#   scripts/demo.sh              reset, seed example/run/, then run the daemon on it
#   scripts/demo.sh --reset      only reset: `git status --ignored` shows nothing of the demo
#   scripts/demo.sh --seed DIR   only seed DIR (missing or empty), e.g. a test's temp folder
set -euo pipefail
called_from=$PWD
cd "$(dirname "$0")/.."

# Removes example/run/ and what a daemon run on config.example.toml in place
# leaves (its state, logs and WBT files, each inbox's archive/, rejected/ and
# held/), and brings back from git the sample exports such a run moved away
# (only those deleted: a sample edited on purpose stays as it is).
reset() {
    local inbox
    rm -rf example/run example/state example/log example/wbt-out
    for inbox in example/inbox/*/; do
        rm -rf "${inbox}archive" "${inbox}rejected" "${inbox}held"
    done
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --deleted -- example/inbox | xargs -0 -r git checkout --
    fi
}

# Seeds the folder $1: inbox/NAME/*.csv from example/inbox/NAME/, config.toml.
seed() {
    local run=$1 inbox name samples
    for inbox in example/inbox/*/; do
        name=$(basename "$inbox")
        samples=("$inbox"*.csv)
        if [ ! -e "${samples[0]}" ]; then
            echo "demo.sh: no sample export in $inbox: git checkout -- example/inbox" >&2
            exit 1
        fi
        mkdir -p "$run/inbox/$name"
        cp "${samples[@]}" "$run/inbox/$name/"
    done
    sed -e 's|"example/|"|' config.example.toml >"$run/config.toml"
    if grep -n '"example/' "$run/config.toml" >&2; then
        echo "demo.sh: the lines above still point into example/: add them to the sed" >&2
        exit 1
    fi
}

case "${1:-}" in
--seed)
    dir=${2:?usage: scripts/demo.sh --seed DIR}
    case $dir in /*) ;; *) dir=$called_from/$dir ;; esac
    if [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ]; then
        echo "demo.sh: $dir is not empty" >&2
        exit 1
    fi
    mkdir -p "$dir"
    seed "$dir"
    ;;
--reset)
    reset
    ;;
"")
    reset
    seed example/run
    exec cargo run -- run -c example/run/config.toml
    ;;
*)
    echo "usage: scripts/demo.sh [--reset | --seed DIR]" >&2
    exit 2
    ;;
esac

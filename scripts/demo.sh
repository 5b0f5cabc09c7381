#!/usr/bin/env bash
# The README's demo: `rostersync run` on the bundled example, no server needed.
#
# It runs on a copy, so that the tracked sample exports in example/inbox/
# are never moved and `git status` stays clean: example/run/ (ignored by git)
# is emptied, then seeded with the sample exports and with a config.toml made
# from config.example.toml, its example/ paths moved inside example/run/
# (relative paths are taken from the config's folder). The daemon then
# watches example/run/inbox/orgs and example/run/inbox/users until Ctrl-C.
# Each run starts again from the samples, with a new state.
#
#   scripts/demo.sh              seed example/run/, then run the daemon on it
#   scripts/demo.sh --seed DIR   only seed DIR (missing or empty), e.g. a test's temp folder
set -euo pipefail
called_from=$PWD
cd "$(dirname "$0")/.."

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
"")
    rm -rf example/run
    seed example/run
    exec cargo run -- run -c example/run/config.toml
    ;;
*)
    echo "usage: scripts/demo.sh [--seed DIR]" >&2
    exit 2
    ;;
esac

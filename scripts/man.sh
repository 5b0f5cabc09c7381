#!/usr/bin/env bash
# The man pages from the sources, without building the package
# (examples/gen_assets: the same pages scripts/build-deb.sh packages).
#
#   scripts/man.sh              writes target/man/man/*.1 and prints their paths
#   scripts/man.sh run          then shows rostersync-run(1) (any command: check, plan...)
#   scripts/man.sh rostersync   then shows rostersync(1)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${CARGO_TARGET_DIR:-target}/man
pages=$(cargo run --locked --quiet --example gen_assets -- "$out" | grep '\.1$')
case "${1:-}" in
"") echo "$pages" ;;
rostersync) exec man -l "$out/man/rostersync.1" ;;
*)
    page=$out/man/rostersync-$1.1
    [ -f "$page" ] || { echo "man.sh: no page for the command '$1'" >&2; exit 2; }
    exec man -l "$page"
    ;;
esac

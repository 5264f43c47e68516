#!/usr/bin/env bash
# Runs the product: builds, then starts cmo-worker and cmo-api on the same database
# (default: SQLite file ./cmo.db, migrated at start). Ctrl-C or SIGTERM stops both
# gracefully. Arguments go to cmo-api, e.g. --bind 0.0.0.0:8080.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${CMO_PROFILE:-dev}"
cargo build --profile "$profile" --bin cmo-api --bin cmo-worker
dir="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

"$dir/cmo-worker" &
worker=$!
"$dir/cmo-api" "$@" &
api=$!
trap 'kill -TERM "$api" "$worker" 2>/dev/null || true' TERM INT

status=0
wait "$api" || status=$?
# The api may have been stopped by a signal (the trap ran) or failed on its own.
kill -TERM "$worker" 2>/dev/null || true
wait "$api" 2>/dev/null || true
wait "$worker" 2>/dev/null || true
exit "$status"

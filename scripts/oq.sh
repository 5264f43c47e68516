#!/usr/bin/env bash
# The operational qualification (OQ) against a freshly started installation: cmo-api and
# cmo-worker on a new database (a SQLite file, or the empty database named by
# OQ_DATABASE_URL), then `cmo-api qualify` against the running api. The dated report
# (Markdown and JSON) is written to OQ_REPORT_DIR (default: the current directory).
#
# Usage: scripts/oq.sh
# Needs: a built cmo-api and cmo-worker (cargo build --bins).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CMO_API_BIN:-$root/target/debug/cmo-api}"
report_dir="${OQ_REPORT_DIR:-$PWD}"
mkdir -p "$report_dir"
source "$root/scripts/api-process.sh"
api_workdir

export DATABASE_URL="${OQ_DATABASE_URL:-sqlite://$work/oq.db?mode=rwc}"
echo "oq: database ${DATABASE_URL%%\?*}"
case "$DATABASE_URL" in
  postgres*) CMO_AUDIT_KEY="$("$bin" audit-key generate)"; export CMO_AUDIT_KEY ;;
esac
start_api "$work/api.log"
start_worker "$work/worker.log" "$work/mail"
# The installation check (IQ) of the same installation, kept with the OQ report.
iq="$report_dir/verify-install-$(date -u +%Y%m%dT%H%M%SZ).json"
"$bin" verify-install --json > "$iq" || { cat "$iq"; exit 1; }
if ! "$bin" qualify --base-url "$base" --report-dir "$report_dir"; then
  echo "oq: failed; the api's log:" >&2
  tail -n 40 "$work/api.log" >&2
  exit 1
fi

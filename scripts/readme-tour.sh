#!/usr/bin/env bash
# Runs the README's API tour, as written, against a live cmo-api on a fresh SQLite
# database: every ```sh block between "## API tour" and the next "## " heading, in order.
# Only what a reader would fill in is filled in: the base URL, the bootstrap token, and
# each `NAME=cmo_…` token from the answer just before it. Every curl must answer 2xx;
# the first that does not stops the run and is shown with its answer.
#
# REQ: API-TOUR
# Usage: scripts/readme-tour.sh   (needs a built cmo-api: cargo build --bin cmo-api)
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CMO_API_BIN:-$root/target/debug/cmo-api}"
source "$root/scripts/api-process.sh"
api_workdir
tour="$work"

export DATABASE_URL="sqlite://$tour/tour.db?mode=rwc"
# The tour's dates are written for a reader on Monday 30 November 2026: the api runs at
# that instant (the test-only clock), so the tour means the same whenever CI runs it.
at="${TOUR_AT:-2026-11-30T09:00:00Z}"
boot_token="$(CMO_ALLOW_TEST_CLOCK=1 CMO_TEST_CLOCK_START="$at" "$bin" bootstrap --org "Acme Bio" \
  --email admin@acme.test --name "Ada Admin" --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
start_api "$tour/api.log" CMO_ALLOW_TEST_CLOCK=1 CMO_TEST_CLOCK_START="$at"

# The tour's shell blocks, with the reader's blanks filled in.
python3 - "$root/README.md" "$tour/tour.sh" <<'PY'
import re, sys
readme, out = sys.argv[1], sys.argv[2]
text = open(readme, encoding="utf-8").read()
start = text.index("\n## API tour")
end = text.index("\n## ", start + 1)
blocks = re.findall(r"```sh\n(.*?)```", text[start:end], re.S)
lines = []
for block in blocks:
    for line in block.splitlines():
        line = re.sub(r"^API=http://127\.0\.0\.1:8080\b.*$", 'API="$TOUR_BASE"', line)
        line = re.sub(r"^TOKEN=cmo_….*$", 'TOKEN="$TOUR_TOKEN"', line)
        line = re.sub(r"^([A-Z_]+)=cmo_….*$", r'\1="$(last_secret)"', line)
        lines.append(line)
open(out, "w", encoding="utf-8").write("\n".join(lines) + "\n")
print(f"readme-tour: {len(blocks)} blocks, {sum(l.lstrip().startswith('curl ') for l in lines)} curl commands")
PY

TOUR_BASE="$base" TOUR_TOKEN="$boot_token" TOUR_DIR="$tour" bash -euo pipefail -c '
curl() {
  local status
  status=$(command curl -sS -o "$TOUR_DIR/last" -w "%{http_code}" "$@") || {
    echo "readme-tour: curl failed: curl $*" >&2; return 1; }
  case "$status" in
    2??) cat "$TOUR_DIR/last"; echo ;;
    *) echo "readme-tour: HTTP $status from: curl $*" >&2; cat "$TOUR_DIR/last" >&2; echo >&2; return 1 ;;
  esac
}
last_secret() {
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"secret\"])" "$TOUR_DIR/last"
}
uuidgen() { python3 -c "import uuid; print(uuid.uuid4())"; }
source "$TOUR_DIR/tour.sh"
' >"$tour/out.log" 2>&1 || {
  status=$?
  tail -n 30 "$tour/out.log"
  echo "readme-tour: FAILED (the README's tour no longer runs as written)" >&2
  exit "$status"
}
echo "readme-tour: every command of the tour answered 2xx"

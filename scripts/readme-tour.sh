#!/usr/bin/env bash
# Runs the README's API tour, as written, against a live cmo-api on a fresh SQLite
# database: every ```sh block between "## API tour" and the next "## " heading, in order.
# Only what a reader would fill in is filled in: the base URL, the bootstrap token, each
# `NAME=cmo_…` token from the answer just before it, and each `NAME=…  # the token=… of the
# link in …'s email` from the next email the worker wrote (as .eml files, the product's
# default without SMTP). Every curl must answer 2xx; the first that does not stops the
# run and is shown with its answer.
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
start_worker "$tour/worker.log" "$tour/mail" CMO_ALLOW_TEST_CLOCK=1 CMO_TEST_CLOCK_START="$at"

# The token of the oldest emailed invitation link not yet used: what the reader copies
# from the invitation their last command caused (other emails, such as a password reset
# the tour forces but does not follow, are passed over).
cat >"$tour/next_link.py" <<'PY'
import email, glob, os, re, sys
maildir, consumed_file = sys.argv[1:3]
consumed = set(open(consumed_file).read().split()) if os.path.exists(consumed_file) else set()
for name in sorted(glob.glob(os.path.join(maildir, "*.eml")), key=os.path.getmtime):
    if name in consumed:
        continue
    with open(name, "rb") as f:
        message = email.message_from_binary_file(f)
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode("utf-8", "replace")
            found = re.search(r"/invitations/accept\?token=([0-9a-f]{64})", text)
            if found:
                open(consumed_file, "a").write(name + "\n")
                print(found.group(1))
                sys.exit(0)
PY

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
        line = re.sub(r"^([A-Z_]+)=…\s+# the token=… of the link in .*$", r'\1="$(next_link_token)"', line)
        lines.append(line)
open(out, "w", encoding="utf-8").write("\n".join(lines) + "\n")
print(f"readme-tour: {len(blocks)} blocks, {sum(l.lstrip().startswith('curl ') for l in lines)} curl commands")
PY

TOUR_BASE="$base" TOUR_TOKEN="$boot_token" TOUR_DIR="$tour" TOUR_BIN="$bin" TOUR_AT="$at" \
  bash -euo pipefail -c '
next_link_token() {
  local token
  for _ in $(seq 1 200); do
    token="$(python3 "$TOUR_DIR/next_link.py" "$TOUR_DIR/mail" "$TOUR_DIR/consumed")"
    [ -n "$token" ] && { echo "$token"; return 0; }
    sleep 0.1
  done
  echo "readme-tour: no emailed link arrived in $TOUR_DIR/mail" >&2
  return 1
}
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
# The operator commands, on the tour'"'"'s database and clock, linking to the tour'"'"'s api.
cmo-api() {
  CMO_ALLOW_TEST_CLOCK=1 CMO_TEST_CLOCK_START="$TOUR_AT" CMO_PUBLIC_BASE_URL="$TOUR_BASE" \
    "$TOUR_BIN" "$@"
}
source "$TOUR_DIR/tour.sh"
' >"$tour/out.log" 2>&1 || {
  status=$?
  tail -n 30 "$tour/out.log"
  echo "readme-tour: FAILED (the README's tour no longer runs as written)" >&2
  exit "$status"
}
echo "readme-tour: every command of the tour answered 2xx"

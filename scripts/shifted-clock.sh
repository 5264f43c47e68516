#!/usr/bin/env bash
# The test suite (SQLite half) with the machine clock moved to an instant where time
# bugs show: a daylight-saving Monday, a switch night, year end, early Monday, or any
# hour of today. The built test binaries run under libfaketime (the monotonic clock is
# left alone, so timeouts and sleeps behave); PostgreSQL tests are skipped here because
# a server started under the faked clock would be faked too, and so are the browser
# tests (a browser under LD_PRELOAD faketime is not what people run).
#
#   scripts/shifted-clock.sh            # rotates the instant per run (printed)
#   scripts/shifted-clock.sh 3          # the fourth instant of the list
#   CMO_SHIFTED_AT="2027-03-29 07:30:00" scripts/shifted-clock.sh   # replay one
set -euo pipefail
cd "$(dirname "$0")/.."

lib="$(ls /usr/lib/*-linux-gnu/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1 || true)"
if [ -z "$lib" ]; then
  echo "shifted-clock: libfaketime is missing (apt-get install libfaketime)" >&2
  exit 1
fi

next_monday="$(date -u -d "next monday" +%F)"
instants=(
  "2027-03-29 07:30:00"          # first Monday of European summer time
  "2027-10-31 00:30:00"          # the night Europe falls back
  "2026-12-31 23:30:00"          # year end: already 1 January east of UTC+1
  "$next_monday 06:10:00"        # Monday before the 07:00 digest in Europe
  "$(date -u +%F) $(printf '%02d' $((RANDOM % 24))):$(printf '%02d' $((RANDOM % 60))):00"  # any hour of today
)
if [ -n "${CMO_SHIFTED_AT:-}" ]; then
  at="$CMO_SHIFTED_AT"
elif [ $# -gt 0 ]; then
  at="${instants[$1]}"
else
  at="${instants[$(( $(date +%s) / 60 % ${#instants[@]} ))]}"
fi
echo "shifted-clock: machine clock at $at UTC (replay: CMO_SHIFTED_AT=\"$at\" $0)"

# Build (a no-op after the normal run), then list the test binaries and their packages.
mapfile -t binaries < <(
  cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
'
)
[ ${#binaries[@]} -gt 0 ] || { echo "shifted-clock: no test binaries" >&2; exit 1; }

status=0
for entry in "${binaries[@]}"; do
  dir="${entry%%$'\t'*}"
  exe="${entry#*$'\t'}"
  echo "shifted-clock: $(basename "$exe")"
  (
    cd "$dir"
    env -u CMO_REQUIRE_POSTGRES -u CMO_REQUIRE_BROWSER TZ=UTC \
      FAKETIME="@$at" FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_DONT_RESET=1 \
      LD_PRELOAD="$lib" \
      "$exe" --skip postgres --skip browser:: -q
  ) || status=$?
done
if [ "$status" -ne 0 ]; then
  echo "shifted-clock: FAILED at $at UTC (replay: CMO_SHIFTED_AT=\"$at\" $0)" >&2
fi
exit "$status"

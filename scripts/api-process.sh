# Sourced by scripts that run cmo-api (conformance, README tour).
#
# api_workdir: a temporary folder in $work, removed (and the api stopped) on exit.
api_workdir() {
  work="$(mktemp -d)"
  api_pid=""
  trap 'if [ -n "$api_pid" ]; then kill "$api_pid" 2>/dev/null || true; wait "$api_pid" 2>/dev/null || true; fi; rm -rf "$work"' EXIT
}

# start_api LOG [VAR=value...]
# starts "$bin" in the background on 127.0.0.1 port 0 (the system picks a free port and
# keeps it: no free-port-then-bind race), sets api_pid, reads the bound address from the
# "cmo-api listening" log line into base, and waits until /readyz answers.
start_api() {
  local log="$1"
  shift
  env "$@" CMO_BIND=127.0.0.1:0 CMO_LOG_FORMAT=json CMO_LOG="${CMO_LOG:-warn},cmo_api=info" \
    "$bin" >"$log" 2>&1 &
  api_pid=$!
  local address=""
  for _ in $(seq 1 200); do
    address="$(python3 - "$log" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    fields = v.get("fields", v)
    if fields.get("message") == "cmo-api listening":
        print(fields.get("address") or v.get("address", ""))
        break
PY
)"
    [ -n "$address" ] && break
    kill -0 "$api_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$address" ]; then
    echo "cmo-api did not come up:" >&2
    cat "$log" >&2
    return 1
  fi
  base="http://$address"
  for _ in $(seq 1 100); do
    if curl -fsS "$base/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  curl -fsS "$base/readyz" >/dev/null
}

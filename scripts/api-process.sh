# Sourced by scripts that run cmo-api (conformance, README tour).
#
# api_workdir: a temporary folder in $work, removed (and the api and worker stopped) on
# exit.
api_workdir() {
  work="$(mktemp -d)"
  api_pid=""
  worker_pid=""
  trap 'for p in $api_pid $worker_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
}

# start_worker LOG MAILDIR [VAR=value...]
# starts cmo-worker (beside "$bin") on the same database, writing the emails it sends
# as .eml files into MAILDIR (no SMTP server: the product's default), links to $base.
start_worker() {
  local log="$1" maildir="$2"
  shift 2
  mkdir -p "$maildir"
  env "$@" CMO_OUTBOX_DIR="$maildir" CMO_PUBLIC_BASE_URL="$base" CMO_DISPATCH_CRON="* * * * * *" \
    CMO_LOG_FORMAT=json CMO_LOG="${CMO_LOG:-warn}" "$(dirname "$bin")/cmo-worker" >"$log" 2>&1 &
  worker_pid=$!
}

# stop_worker: stops the worker started by start_worker.
stop_worker() {
  if [ -n "$worker_pid" ]; then
    kill "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
    worker_pid=""
  fi
}

# emailed_token MAILDIR TO PATH: the token of the newest emailed link to PATH for TO, as
# the person would click it (waits up to 20 s for the worker to send it).
emailed_token() {
  local maildir="$1" to="$2" path="$3" token=""
  for _ in $(seq 1 200); do
    token="$(python3 - "$maildir" "$to" "$path" <<'PY'
import email, glob, os, re, sys
maildir, to, path = sys.argv[1:4]
for name in sorted(glob.glob(os.path.join(maildir, "*.eml")), key=os.path.getmtime, reverse=True):
    with open(name, "rb") as f:
        message = email.message_from_binary_file(f)
    if to not in message.get("To", ""):
        continue
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            text = part.get_payload(decode=True).decode("utf-8", "replace")
            found = re.search(re.escape(path) + r"\?token=([0-9a-f]+)", text)
            if found:
                print(found.group(1))
                sys.exit(0)
PY
)"
    [ -n "$token" ] && { echo "$token"; return 0; }
    kill -0 "$worker_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "no email to $to with a link to $path in $maildir" >&2
  return 1
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

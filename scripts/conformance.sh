#!/usr/bin/env bash
# API conformance run: start cmo-api on loopback against a fresh database (a SQLite file,
# or the empty database named by CONFORMANCE_DATABASE_URL), bootstrap a
# token, and let schemathesis exercise every operation of the served OpenAPI document.
# Any 5xx, undocumented status, wrong content type or schema violation fails the run.
#
# Usage: scripts/conformance.sh [extra schemathesis args]
# Needs: schemathesis (pip install schemathesis), a built cmo-api (cargo build --bin cmo-api).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${CMO_API_BIN:-$root/target/debug/cmo-api}"
max_examples="${CONFORMANCE_MAX_EXAMPLES:-50}"
# A new seed every run (printed), so each CI run explores other cases; replay a failure
# with CONFORMANCE_SEED=<seed>.
seed="${CONFORMANCE_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
echo "conformance: seed $seed (replay: CONFORMANCE_SEED=$seed $0)"
extra=("$@")
source "$root/scripts/api-process.sh"
api_workdir

export DATABASE_URL="${CONFORMANCE_DATABASE_URL:-sqlite://$work/conformance.db?mode=rwc}"
echo "conformance: database ${DATABASE_URL%%\?*}"
# PostgreSQL needs the audit chain key configured (a SQLite file gets one beside it).
case "$DATABASE_URL" in
  postgres*) CMO_AUDIT_KEY="$("$bin" audit-key generate)"; export CMO_AUDIT_KEY ;;
esac
token="$("$bin" bootstrap --org "Conformance Sponsor" --email admin@conformance.test --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

start_api "$work/api.log"
start_worker "$work/worker.log" "$work/mail"

# Operations that take ids hit low numbers often (0, 1, ...): spread the ids so the token
# schemathesis uses is unlikely to be the one a generated DELETE /tokens/{id} revokes.
for i in $(seq 1 40); do
  curl -fsS -o /dev/null -X POST "$base/api/v1/tokens" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "{\"name\": \"filler $i\"}"
done
# Seed a CMO, a program with the standard plan and some action items, so that generated
# ids hit real records and the happy paths are exercised, not only the 404s.
api() { curl -fsS -o /dev/null -X POST "$base$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$2"; }
api /api/v1/organizations \
  '{"name": "Conformance CMO", "kind": "cmo", "admin": {"email": "pm@cmo.test", "display_name": "CMO PM"}}'
api /api/v1/cmos/2/qualification '{"event": "start_evaluation"}'
api /api/v1/cmos/2/qualification '{"event": "qualify"}'
api /api/v1/cmos/2/sites '{"name": "Seed site", "country": "CH", "region": "other_europe"}'
api /api/v1/programs '{"name": "Seed program", "product_name": "SEED-1", "cmo_org_id": 2, "modality": "biologic", "stage": "clinical", "time_zone": "Europe/Zurich"}'
api /api/v1/programs/1/plan '{"template": "cdmo_standard", "start_date": "2027-01-04"}'
api /api/v1/programs/1/team '{"user_id": 1, "governance_tier": "core_team", "program_role": "QA on call", "expertise_tags": ["equipment"]}'
api /api/v1/escalations '{"program_id": 1, "title": "Seed escalation", "reason": "conformance seed", "urgency": "major", "category": "equipment"}'
for i in 1 2 3; do
  api /api/v1/programs/1/action-items "{\"title\": \"Seed action $i\", \"owner_user_id\": 1, \"due_date\": \"2027-0$i-15\"}"
done

# People join by invitation: they choose their password from the emailed link, sign in
# and create their own token, as a person would.
own_token() { # EMAIL INVITATION_TOKEN
  curl -fsS -o /dev/null -X POST "$base/api/v1/invitations/accept" -H 'Content-Type: application/json' \
    -d "{\"token\": \"$2\", \"password\": \"conformance password\", \"certify_signature\": true}"
  local session
  session="$(curl -fsS -X POST "$base/api/v1/sign-in" -H 'Content-Type: application/json' \
    -d "{\"email\": \"$1\", \"password\": \"conformance password\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
  curl -fsS -X POST "$base/api/v1/tokens" -H "Authorization: Bearer $session" \
    -H 'Content-Type: application/json' -d '{"name": "conformance"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])'
}
# The CMO's first admin, invited when the CMO was registered.
cmo_token="$(own_token pm@cmo.test "$(emailed_token "$work/mail" pm@cmo.test /invitations/accept)")"
# A viewer of the sponsor: role-based refusals (403) are fuzzed too.
api /api/v1/invitations '{"email": "viewer@conformance.test", "display_name": "Viewer", "role": "viewer"}'
viewer_token="$(own_token viewer@conformance.test \
  "$(emailed_token "$work/mail" viewer@conformance.test /invitations/accept)")"
# No worker while fuzzing: generated webhook subscriptions must not be delivered anywhere.
stop_worker

fuzz_token="$(curl -fsS -X POST "$base/api/v1/tokens" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' -d '{"name": "schemathesis"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"

# positive_data_acceptance is left out: run with it (CONFORMANCE_EXCLUDE_CHECKS= and seed
# 1234, 2026-11-30), 74 of 111 operations answered 422 to a schema-valid request, because
# the schema does not state rules the api enforces: list limits (1-200), date order
# (from <= to), IANA zone names, expiries in the future, unique emails, fields a PATCH
# needs together (a reason). Excluding it per operation would list most operations; the
# fix is to document those rules in the schema, then enable the check.
# ensure_resource_availability runs: the fuzzer's generated Idempotency-Keys (which made
# POSTs replays of earlier ones) are stripped by scripts/conformance_hooks.py.
# filter_too_much is a health check of the generator, not of the API: with an example
# database carried over from earlier runs it occasionally trips on POST /unsubscribe
# (one optional query parameter), failing a run in which every request passed.
exclude=()
[ -n "${CONFORMANCE_EXCLUDE_CHECKS-positive_data_acceptance}" ] &&
  exclude=(--exclude-checks "${CONFORMANCE_EXCLUDE_CHECKS-positive_data_acceptance}")
export SCHEMATHESIS_HOOKS=conformance_hooks
export PYTHONPATH="$root/scripts${PYTHONPATH:+:$PYTHONPATH}"
run() {
  run_as "$fuzz_token" "$@"
}
run_as() {
  local as="$1"
  shift
  schemathesis run "$base/openapi.json" \
    --header "Authorization: Bearer $as" \
    --checks all \
    "${exclude[@]}" \
    --max-examples "$max_examples" \
    --request-timeout 10 \
    --seed "$seed" \
    --generation-database none \
    --suppress-health-check filter_too_much \
    --no-color \
    "$@"
}
status=0
# Schema-valid requests must be accepted by the operations whose rules the schema states
# in full (scripts/positive-data-operations.txt): schemathesis's positive_data_acceptance
# check on them, first (on the seeded database) and with a fixed seed, so the list means
# the same run after run. The other operations still have rules the schema cannot say
# (a referenced record of this program, a version, a reused Idempotency-Key).
if [ -z "${CONFORMANCE_SKIP_POSITIVE-}" ]; then
  positive=()
  while IFS= read -r op; do
    [ -n "$op" ] && [ "${op:0:1}" != "#" ] && positive+=(--include-name "$op")
  done < "$root/scripts/positive-data-operations.txt"
  echo "conformance: positive data on $(( ${#positive[@]} / 2 )) operations"
  # A token of its own: what this pass changes never locks the main runs out.
  positive_token="$(curl -fsS -X POST "$base/api/v1/tokens" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d '{"name": "schemathesis positive data"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')"
  # Without the coverage phase: its cases skip the hooks, so their generated
  # Idempotency-Keys repeat and answer 422 key_reused (a rule no schema can state).
  schemathesis run "$base/openapi.json" \
    --header "Authorization: Bearer $positive_token" \
    --checks positive_data_acceptance \
    --phases examples,fuzzing \
    --max-examples 15 \
    --request-timeout 10 \
    --seed 1234 \
    --generation-database none \
    --suppress-health-check filter_too_much \
    --no-color \
    "${positive[@]}" || status=$?
fi
# Revoking tokens would revoke the fuzzer's own sooner or later: that operation gets a
# run of its own, last.
run --exclude-operation-id revoke_token "${extra[@]}" || status=$?
run --include-operation-id revoke_token "${extra[@]}" || status=$?
# The same operations as a viewer and as the CMO's admin (fewer examples: what differs
# is the role and the side, not the bodies). Token revocation stays with the admin run.
echo "conformance: as a sponsor viewer"
run_as "$viewer_token" --exclude-operation-id revoke_token --max-examples 10 "${extra[@]}" || status=$?
if [ -n "$cmo_token" ]; then
  echo "conformance: as the CMO's admin"
  run_as "$cmo_token" --exclude-operation-id revoke_token --max-examples 10 "${extra[@]}" || status=$?
else
  echo "conformance: registering the CMO returned no token" >&2
  status=1
fi

if [ "$status" -ne 0 ]; then
  echo "--- last api log lines ---"
  tail -n 50 "$work/api.log" || true
fi
exit "$status"

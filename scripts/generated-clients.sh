#!/usr/bin/env bash
# Generated clients from the committed OpenAPI document, one mainstream generator per
# language, with zero warnings: openapi-python-client (fails on any warning; then every
# event type parses into its own model) and openapi-typescript (then a use of the types
# compiles under tsc --strict, narrowing the event union by `type`).
set -euo pipefail
cd "$(dirname "$0")/.."
doc="$PWD/openapi/openapi.json"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip install -q --disable-pip-version-check "openapi-python-client==0.29.1"
openapi-python-client generate --path "$doc" --meta none --fail-on-warning \
  --output-path "$work/cmo_client" 2>&1 | tee "$work/python.log"
if grep -qi "warning" "$work/python.log"; then
  echo "generated-clients: openapi-python-client warned" >&2
  exit 1
fi
PYTHONPATH="$work" python3 clients/check.py "$doc" cmo_client

cd clients
npm ci --silent --no-audit --no-fund
rm -rf generated
npx openapi-typescript "$doc" -o generated/api.d.ts 2>&1 | tee "$work/ts.log"
if grep -qiE "warn|error" "$work/ts.log"; then
  echo "generated-clients: openapi-typescript warned" >&2
  exit 1
fi
npx tsc -p tsconfig.json
echo "generated-clients: typescript types compile under tsc --strict"

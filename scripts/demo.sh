#!/usr/bin/env bash
# The README walkthrough as a script: against a running node (default http://127.0.0.1:8080,
# or $CONFLUX_URL), create a tenant, app, environment and config, push two versions, release
# the second as a canary, and fetch as a canary and as an ordinary client.
set -euo pipefail
URL="${CONFLUX_URL:-http://127.0.0.1:8080}"
MGT="$URL/api/v1/mgt"
json() { curl -sS --fail-with-body -H 'Content-Type: application/json' "$@"; echo; }

echo "== create tenant, app, environment, config"
json -X POST "$MGT/tenants" -d '{"name": "acme", "display_name": "ACME Corp"}'
json -X POST "$MGT/tenants/acme/apps" -d '{"name": "checkout"}'
json -X POST "$MGT/tenants/acme/apps/checkout/envs" -d '{"name": "prod"}'
CONFIG=$(json -X POST "$MGT/tenants/acme/apps/checkout/envs/prod/configs" \
    -d '{"name": "app.yaml", "format": "yaml"}')
echo "$CONFIG"
ID=$(echo "$CONFIG" | sed -E 's/.*"id":([0-9]+).*/\1/')

echo "== push two versions"
curl -sS --fail-with-body -X POST "$MGT/configs/$ID/versions?description=first" \
    -H 'Content-Type: application/yaml' --data-binary $'timeout_ms: 500\nretries: 3\n'; echo
curl -sS --fail-with-body -X POST "$MGT/configs/$ID/versions?description=faster" \
    -H 'Content-Type: application/yaml' --data-binary $'timeout_ms: 200\nretries: 5\n'; echo

echo "== release: everyone gets version 1, canaries get version 2"
json -X PUT "$MGT/configs/$ID/releases" -d '{
  "releases": [
    {"version_id": 1},
    {"labels": {"canary": "true"}, "version_id": 2, "priority": 100}
  ],
  "comment": "canary for the faster timeout"
}'

echo "== fetch as an ordinary client"
curl -sS --fail-with-body -D - "$URL/api/v1/fetch/config/acme/checkout/prod/app.yaml" \
    -H 'X-Client-Label-Region: eu-west'
echo "== fetch as a canary"
curl -sS --fail-with-body -D - "$URL/api/v1/fetch/config/acme/checkout/prod/app.yaml" \
    -H 'X-Client-Label-Canary: true'

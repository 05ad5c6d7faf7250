#!/usr/bin/env bash
# The README walkthrough as a script: against a running node (default http://127.0.0.1:8080,
# or $CONFLUX_URL), create a tenant, app, environment and config, push two versions, release
# the second as a canary, make a reader service token for the checkout service, and fetch
# with it as a canary and as an ordinary client.
#
# Management calls use the node's bootstrap token: $CONFLUX_TOKEN, else the content of
# ${CONFLUX_DATA_DIR:-./conflux-data}/admin.token. Tokens are never printed.
#
# A node with its API on TLS: CONFLUX_URL=https://127.0.0.1:8080 and CONFLUX_CACERT=ca.pem
# (the CA that signed --api-tls-cert); when the node requires client certificates
# (--api-tls-client-ca), also CONFLUX_CLIENT_CERT and CONFLUX_CLIENT_KEY.
set -euo pipefail
URL="${CONFLUX_URL:-http://127.0.0.1:8080}"
MGT="$URL/api/v1/mgt"
TLS=()
[ -n "${CONFLUX_CACERT:-}" ] && TLS+=(--cacert "$CONFLUX_CACERT")
[ -n "${CONFLUX_CLIENT_CERT:-}" ] && TLS+=(--cert "$CONFLUX_CLIENT_CERT" --key "${CONFLUX_CLIENT_KEY:?CONFLUX_CLIENT_KEY goes with CONFLUX_CLIENT_CERT}")
# Every curl below gets the TLS options (none over plain http).
curl() { command curl ${TLS[@]+"${TLS[@]}"} "$@"; }

TOKEN="${CONFLUX_TOKEN:-}"
if [ -z "$TOKEN" ]; then
    TOKEN_FILE="${CONFLUX_DATA_DIR:-./conflux-data}/admin.token"
    if [ ! -r "$TOKEN_FILE" ]; then
        echo "demo: no token: set CONFLUX_TOKEN, or CONFLUX_DATA_DIR to the node's data directory (it holds admin.token)" >&2
        exit 1
    fi
    TOKEN=$(tr -d '[:space:]' < "$TOKEN_FILE")
fi
# Headers go through a file read by curl (-H @file), so no token shows in the process list.
HEADERS=$(mktemp)
trap 'rm -f "$HEADERS"' EXIT
chmod 600 "$HEADERS"
printf 'Authorization: Bearer %s\n' "$TOKEN" > "$HEADERS"
json() { curl -sS --fail-with-body -H @"$HEADERS" -H 'Content-Type: application/json' "$@"; echo; }

echo "== create tenant, app, environment, config"
json -X POST "$MGT/tenants" -d '{"name": "acme", "display_name": "ACME Corp"}'
json -X POST "$MGT/tenants/acme/apps" -d '{"name": "checkout"}'
json -X POST "$MGT/tenants/acme/apps/checkout/envs" -d '{"name": "prod"}'
CONFIG=$(json -X POST "$MGT/tenants/acme/apps/checkout/envs/prod/configs" \
    -d '{"name": "app.yaml", "format": "yaml"}')
echo "$CONFIG"
ID=$(echo "$CONFIG" | sed -E 's/.*"id":([0-9]+).*/\1/')

echo "== push two versions"
curl -sS --fail-with-body -X POST "$MGT/configs/$ID/versions?description=first" -H @"$HEADERS" \
    -H 'Content-Type: application/yaml' --data-binary $'timeout_ms: 500\nretries: 3\n'; echo
curl -sS --fail-with-body -X POST "$MGT/configs/$ID/versions?description=faster" -H @"$HEADERS" \
    -H 'Content-Type: application/yaml' --data-binary $'timeout_ms: 200\nretries: 5\n'; echo

echo "== release: everyone gets version 1, canaries get version 2"
json -X PUT "$MGT/configs/$ID/releases" -d '{
  "releases": [
    {"version_id": 1},
    {"labels": {"canary": "true"}, "version_id": 2, "priority": 100}
  ],
  "comment": "canary for the faster timeout"
}'

echo "== a reader token for the checkout service (fetch and watch acme/checkout/prod only)"
CREATED=$(json -X POST "$URL/api/v1/tokens" \
    -d '{"name": "checkout-prod", "bindings": [{"role": "reader", "scope": "acme/checkout/prod"}]}')
READER=$(echo "$CREATED" | sed -E 's/.*"token":"([^"]+)".*/\1/')
echo "$CREATED" | sed -E 's/"token":"[^"]+"/"token":"<shown once; not printed here>"/'
READER_HEADERS=$(mktemp)
trap 'rm -f "$HEADERS" "$READER_HEADERS"' EXIT
chmod 600 "$READER_HEADERS"
printf 'Authorization: Bearer %s\n' "$READER" > "$READER_HEADERS"

echo "== fetch as an ordinary client"
curl -sS --fail-with-body -D - "$URL/api/v1/fetch/config/acme/checkout/prod/app.yaml" \
    -H @"$READER_HEADERS" -H 'X-Client-Label-Region: eu-west'
echo "== fetch as a canary"
curl -sS --fail-with-body -D - "$URL/api/v1/fetch/config/acme/checkout/prod/app.yaml" \
    -H @"$READER_HEADERS" -H 'X-Client-Label-Canary: true'

#!/usr/bin/env bash
# Fetch of an encrypted config against a plain one with the same 1 KiB content, on one
# release node, alternating rounds of wrk (README, Security: "What encryption costs").
# Usage: BIN=target/release/conflux benches/scripts/encrypted_fetch.sh
set -euo pipefail
BIN=${BIN:-/var/cache/conflux-release/release/conflux}
D=$(mktemp -d); PORT=${PORT:-18555}
$BIN server --data-dir $D/data --api-addr 127.0.0.1:$PORT --raft-addr 127.0.0.1:$((PORT + 1)) > $D/log 2>&1 &
PID=$!; trap "kill $PID; rm -rf $D" EXIT
for i in $(seq 50); do [ -f $D/data/admin.token ] && curl -sf http://127.0.0.1:$PORT/ready >/dev/null && break; sleep 0.2; done
TOKEN=$(cat $D/data/admin.token); H="Authorization: Bearer $TOKEN"; U=http://127.0.0.1:$PORT
curl -sf -H "$H" -X POST $U/api/v1/mgt/tenants -d '{"name":"acme"}' -H 'content-type: application/json' >/dev/null
curl -sf -H "$H" -X POST $U/api/v1/mgt/tenants/acme/apps -d '{"name":"shop"}' -H 'content-type: application/json' >/dev/null
curl -sf -H "$H" -X POST $U/api/v1/mgt/tenants/acme/apps/shop/envs -d '{"name":"prod"}' -H 'content-type: application/json' >/dev/null
CONTENT=$(head -c 768 /dev/urandom | base64 -w0 | head -c 1024)
for name in plain secret; do
  enc=false; [ $name = secret ] && enc=true
  ID=$(curl -sf -H "$H" -X POST $U/api/v1/mgt/tenants/acme/apps/shop/envs/prod/configs -H 'content-type: application/json' -d "{\"name\":\"$name.txt\",\"format\":\"text\",\"encrypted\":$enc}" | python3 -c 'import sys,json;print(json.load(sys.stdin)["id"])')
  curl -sf -H "$H" -X POST $U/api/v1/mgt/configs/$ID/publish -H 'content-type: application/json' -d "{\"content\":\"$CONTENT\",\"strategy\":{\"type\":\"stable\"}}" >/dev/null
done
curl -sf -H "$H" $U/api/v1/fetch/config/acme/shop/prod/secret.txt | head -c 40; echo
for round in 1 2; do
  for name in plain secret; do
    r=$(wrk -t2 -c64 -d8s -H "$H" $U/api/v1/fetch/config/acme/shop/prod/$name.txt | awk '/Requests\/sec/{print $2}')
    echo "round $round $name $r"
  done
done

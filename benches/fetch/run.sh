#!/usr/bin/env bash
# Fetch throughput of one Conflux node against nginx serving the same 1 KiB as a static file
# (the HTTP ceiling of this machine), measured with wrk in the same run, alternating.
#   benches/fetch/run.sh [duration_secs=10] [connections=64] [rounds=2]
# Needs: a release build (cargo build --release --bin conflux), wrk, nginx (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-10}"; CONNS="${2:-64}"; ROUNDS="${3:-2}"
BIN="${CONFLUX_BIN:-${CARGO_TARGET_DIR:-target}/release/conflux}"
WORK=$(mktemp -d)
cleanup() { kill "${CONFLUX_PID:-}" 2>/dev/null || true; [[ -f $WORK/nginx.pid ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# 1 KiB JSON document.
python3 - "$WORK/config.json" <<'PY'
import json, sys
doc = {f"key_{i:03}": f"value-{i:08}-abcdefghij" for i in range(24)}
s = json.dumps(doc)
s = s[:-1] + ', "pad": "' + "x" * (1024 - len(s) - 11) + '"}'
open(sys.argv[1], "w").write(s)
assert len(s) == 1024, len(s)
PY

"$BIN" server --data-dir "$WORK/data" --api-addr 127.0.0.1:0 > "$WORK/conflux.out" 2> "$WORK/conflux.err" &
CONFLUX_PID=$!
for _ in $(seq 100); do grep -q "serving the API" "$WORK/conflux.out" && break; sleep 0.1; done
URL="http://$(grep -o '127.0.0.1:[0-9]*' "$WORK/conflux.out" | head -1)"
M="$URL/api/v1/mgt"
j() { curl -sS --fail-with-body -H 'Content-Type: application/json' "$@" > /dev/null; }
j -X POST "$M/tenants" -d '{"name": "bench"}'
j -X POST "$M/tenants/bench/apps" -d '{"name": "svc"}'
j -X POST "$M/tenants/bench/apps/svc/envs" -d '{"name": "prod"}'
j -X POST "$M/tenants/bench/apps/svc/envs/prod/configs" -d '{"name": "app.json", "format": "json"}'
for v in 1 2 3; do j -X POST "$M/configs/1/versions" --data-binary @"$WORK/config.json"; done
j -X PUT "$M/configs/1/releases" -d '{"releases": [
  {"version_id": 1},
  {"labels": {"canary": "true"}, "version_id": 2, "priority": 100},
  {"percent": 10, "version_id": 3, "priority": 50}]}'

NGINX_PORT=$(free_port)
mkdir -p "$WORK/www"; cp "$WORK/config.json" "$WORK/www/app.json"
cat > "$WORK/nginx.conf" <<NG
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$NGINX_PORT; root $WORK/www; default_type application/json; }
}
NG
nginx -c "$WORK/nginx.conf" -p "$WORK"
sleep 0.5

run() { # name url
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s benches/fetch/labels.lua "$2" > "$WORK/$1.txt"
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt")
  p50=$(awk '$1=="50%" {print $2}' "$WORK/$1.txt")
  p99=$(awk '$1=="99%" {print $2}' "$WORK/$1.txt")
  echo "| $1 | $rps | $p50 | $p99 |"
}
echo "wrk -t2 -c$CONNS -d${DURATION}s, 1 KiB body, labels varied per request ($(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo "| target | requests/s | p50 | p99 |"
echo "|---|---|---|---|"
curl -sf "$URL/api/v1/fetch/config/bench/svc/prod/app.json" > /dev/null
for r in $(seq "$ROUNDS"); do
  run "conflux-$r" "$URL/api/v1/fetch/config/bench/svc/prod/app.json"
  run "nginx-$r" "http://127.0.0.1:$NGINX_PORT/app.json"
done

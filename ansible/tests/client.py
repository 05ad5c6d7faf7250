#!/usr/bin/env python3
"""A client that keeps writing and fetching while run.sh upgrades the cluster.

Like an SDK configured with every node's address: each request goes to the next node in turn
and, when that node does not answer (connection refused while it restarts) or answers 503,
to the one after it. A fetch counts as failed only if no node served it; a write counts as
acknowledged when a node answered 201 (the same X-Idempotency-Key is reused on retries).
Runs until the file named by --stop exists, then prints a JSON summary on stdout.

  client.py --nodes http://10.0.0.1:8080,... --token-file F --config-id N --stop FILE
"""
import argparse
import json
import os
import time
import urllib.error
import urllib.request
import uuid

p = argparse.ArgumentParser()
p.add_argument("--nodes", required=True)
p.add_argument("--token-file", required=True)
p.add_argument("--config-id", required=True, type=int)
p.add_argument("--fetch-path", required=True)
p.add_argument("--stop", required=True)
a = p.parse_args()
nodes = a.nodes.split(",")
token = open(a.token_file).read().strip()
turn = 0


def call(method, path, body=None, headers=None, timeout=5):
    """Tries every node once, starting with the next in turn; returns (status, body) or None."""
    global turn
    turn += 1
    for k in range(len(nodes)):
        url = nodes[(turn + k) % len(nodes)] + path
        req = urllib.request.Request(url, data=body, method=method)
        req.add_header("Authorization", "Bearer " + token)
        for h, v in (headers or {}).items():
            req.add_header(h, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            if e.code == 503:
                continue
            return e.code, e.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            continue
    return None


stats = {"fetches": 0, "failed_fetches": 0, "writes_acked": 0, "writes_failed": 0, "errors": []}
acked = []
n = 0
while not os.path.exists(a.stop):
    n += 1
    content = f"seq: {n}\nat: {time.time():.3f}\n".encode()
    key = str(uuid.uuid4())
    res = None
    for _attempt in range(20):  # a write is retried (same key) while no node takes it
        res = call("POST", f"/api/v1/mgt/configs/{a.config_id}/versions?description=load-{n}", content,
                   {"Content-Type": "application/yaml", "X-Idempotency-Key": key})
        if res is not None:
            break
        time.sleep(0.25)
    if res is not None and res[0] == 201:
        stats["writes_acked"] += 1
        acked.append({"version_id": json.loads(res[1])["version_id"], "content": content.decode()})
    else:
        stats["writes_failed"] += 1
        if len(stats["errors"]) < 5:
            stats["errors"].append(f"write {n}: {res}")
    for _ in range(3):
        stats["fetches"] += 1
        res = call("GET", a.fetch_path)
        if res is None or res[0] != 200:
            stats["failed_fetches"] += 1
            if len(stats["errors"]) < 10:
                stats["errors"].append(f"fetch: {res if res is None else res[0]}")
    time.sleep(0.05)
stats["acked"] = acked
print(json.dumps(stats))

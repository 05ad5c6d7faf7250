#!/bin/bash
# Proves ansible/ with real ansible-playbook runs against "hosts" made on this machine.
#
# Each host is a process tree in its own network, mount, UTS, IPC and PID namespaces, with a
# private /etc (a copy: /etc/conflux, users and the hostname are its own), /var/lib/conflux,
# /var/log, /run, /opt and /usr/local/sbin, and an address on a bridge. Ansible reaches it
# with the community.docker.nsenter connection (no sshd). PostgreSQL (the metadata DB) runs
# beside them, listening on the bridge. Everything is named cfxans-* and removed on exit
# (trap), failures included: the hosts' PID-1 processes are killed (which ends everything in
# their PID namespaces), the veths and the bridge deleted, PostgreSQL stopped.
#
#   ansible/tests/run.sh            # every step below; the last line says PASS or FAIL
#   CFXANS_KEEP=1 ansible/tests/run.sh   # keep the work directory (logs) after the run
#
# Needs root, iproute2, util-linux (unshare, nsenter), PostgreSQL server binaries
# (/usr/lib/postgresql/*/bin), curl, the venv of tests/install-ansible.sh, and two conflux
# builds that print different versions: CFXANS_OLD_BIN (deployed first) and CFXANS_NEW_BIN
# (the upgrade target). Without them, the harness builds both from this checkout with cargo
# (debug profile, CARGO_TARGET_DIR as set): the new one is the same source labelled
# `CONFLUX_BUILD_LABEL=ansible-upgrade-test` (`conflux --version`: 0.1.0+ansible-upgrade-test).
# Relabelling recompiles only the binary's main.rs, a few seconds.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ANS=$(cd "$HERE/.." && pwd)
VENV=${CONFLUX_ANSIBLE_VENV:-/var/cache/conflux-tools/ansible-venv}
OLD_BIN=${CFXANS_OLD_BIN:-}
NEW_BIN=${CFXANS_NEW_BIN:-}
NET=${CFXANS_NET:-10.231.77}
BR=cfxans-br0
HOSTS=4            # h1-h3 form the cluster, h4 is added and removed
PG_PORT=${CFXANS_PG_PORT:-55432}

WORK=$(mktemp -d /tmp/cfxans-XXXXXX)
chmod 755 "$WORK"
declare -A PID           # host number -> PID (in our namespace) of its PID-1 process
CREATED_DIRS=()
PASSED=0
FAILED=0
STEP_LOG="$WORK/steps.log"

log() { printf '%s %s\n' "$(date +%T)" "$*" | tee -a "$STEP_LOG" >&2; }
pass() { PASSED=$((PASSED + 1)); log "ok: $*"; }
fail() { FAILED=$((FAILED + 1)); log "FAILED: $*"; }

cleanup() {
    local rc=$?
    set +e
    [ -n "${CLIENT_PID:-}" ] && kill "$CLIENT_PID" 2>/dev/null
    for i in "${!PID[@]}"; do
        kill -KILL "${PID[$i]}" 2>/dev/null
    done
    for i in $(seq 1 $HOSTS); do ip link del "cfxans-v$i" 2>/dev/null; done
    ip link del "$BR" 2>/dev/null
    if [ -f "$WORK/pg/data/postmaster.pid" ]; then
        runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m immediate -w stop >/dev/null 2>&1
    fi
    for d in "${CREATED_DIRS[@]}"; do rmdir "$d" 2>/dev/null; done
    if [ -n "${CFXANS_KEEP:-}" ]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || { echo "run.sh needs root (namespaces)" >&2; exit 1; }
[ -x "$VENV/bin/ansible-playbook" ] || { echo "no Ansible venv at $VENV: run ansible/tests/install-ansible.sh" >&2; exit 1; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql" >&2; exit 1; }

# Our own copies: other work on this machine may rebuild the originals while we run.
mkdir -p "$WORK/bin"
if [ -z "$OLD_BIN" ] && [ -z "$NEW_BIN" ]; then
    REPO=$(cd "$ANS/.." && pwd)
    TARGET=${CARGO_TARGET_DIR:-$REPO/target}
    build() { (cd "$REPO" && CONFLUX_BUILD_LABEL=$1 cargo build --locked -q -p conflux-server --bin conflux); }
    # The labelled build first, then the unlabelled one, which leaves the target directory
    # as the test suite built it.
    build ansible-upgrade-test && cp "$TARGET/debug/conflux" "$WORK/bin/conflux-new"
    build "" && cp "$TARGET/debug/conflux" "$WORK/bin/conflux-old"
else
    for b in "$OLD_BIN" "$NEW_BIN"; do [ -x "$b" ] || { echo "no conflux build at '$b' (set both CFXANS_OLD_BIN and CFXANS_NEW_BIN, or neither)" >&2; exit 1; }; done
    cp "$OLD_BIN" "$WORK/bin/conflux-old"
    cp "$NEW_BIN" "$WORK/bin/conflux-new"
fi
OLD_VERSION=$("$WORK/bin/conflux-old" --version)
NEW_VERSION=$("$WORK/bin/conflux-new" --version)
if [ "$OLD_VERSION" = "$NEW_VERSION" ]; then
    echo "the old and the new build both print '$OLD_VERSION': the upgrade needs two builds told apart by version" >&2
    exit 1
fi
OLD_SHA=$(sha256sum <"$WORK/bin/conflux-old" | cut -c1-64)
NEW_SHA=$(sha256sum <"$WORK/bin/conflux-new" | cut -c1-64)
CLI="$WORK/bin/conflux-new"
log "work dir $WORK; old build $OLD_SHA ($OLD_VERSION), new build $NEW_SHA ($NEW_VERSION)"

# ---------------------------------------------------------------------------------------
# 0. ansible-lint (production profile) and the systemd unit (the test hosts have no systemd)
# ---------------------------------------------------------------------------------------
if (cd "$ANS" && PATH="$VENV/bin:$PATH" "$VENV/bin/ansible-lint" --profile production --offline --nocolor) >"$WORK/lint.log" 2>&1; then
    pass "ansible-lint --profile production: $(grep -E '^Passed' "$WORK/lint.log")"
else
    fail "ansible-lint --profile production: $(grep -E '^(Failed|Passed)' "$WORK/lint.log")"
fi
if command -v systemd-analyze >/dev/null; then
    "$VENV/bin/ansible-playbook" -c local -i localhost, "$HERE/render_unit.yml" -e conflux_unit_out="$WORK/conflux.service" \
        -e conflux_binary_path="$WORK/bin/conflux-new" >"$WORK/render-unit.log" 2>&1 \
        && systemd-analyze verify "$WORK/conflux.service" >"$WORK/unit-verify.log" 2>&1 \
        && pass "systemd-analyze verify on the rendered unit: clean ($(wc -c <"$WORK/unit-verify.log") bytes of output)" \
        || fail "rendered unit: $(cat "$WORK/render-unit.log" "$WORK/unit-verify.log" | tail -5)"
else
    log "systemd-analyze not installed: the unit is not verified"
fi

# ---------------------------------------------------------------------------------------
# Hosts
# ---------------------------------------------------------------------------------------
for d in /var/lib/conflux; do
    if [ ! -e "$d" ]; then mkdir -p "$d"; CREATED_DIRS+=("$d"); fi
done

cat >"$WORK/hostinit.sh" <<'EOF'
#!/bin/bash
# PID 1 of a test host: private mounts and hostname, then wait (reaping orphans) until killed.
set -e
i=$1 W=$2
H=$W/h$i
mount --bind "$H/etc" /etc
mount --bind "$H/data" /var/lib/conflux
mount --bind "$H/log" /var/log
mount --bind "$H/opt" /opt
mount -t tmpfs cfxans-run /run
mount -t tmpfs cfxans-sbin /usr/local/sbin
hostname "cfxans-h$i"
echo "cfxans-h$i" >/etc/hostname
ip link set lo up
touch "$H/up"
trap 'exit 0' TERM
while :; do sleep 3600 & wait $! || true; done
EOF
chmod 755 "$WORK/hostinit.sh"

ip link add "$BR" type bridge
ip addr add "$NET.1/24" dev "$BR"
ip link set "$BR" up

start_host() {
    local i=$1 upid child
    mkdir -p "$WORK/h$i"/{data,log,opt}
    cp -a /etc "$WORK/h$i/etc"
    unshare --net --mount --uts --ipc --pid --fork --mount-proc \
        "$WORK/hostinit.sh" "$i" "$WORK" </dev/null >"$WORK/h$i.init.log" 2>&1 &
    upid=$!
    for _ in $(seq 100); do
        child=$(cat "/proc/$upid/task/$upid/children" 2>/dev/null | awk '{print $1}')
        [ -n "$child" ] && [ -e "$WORK/h$i/up" ] && break
        sleep 0.1
    done
    [ -n "$child" ] && [ -e "$WORK/h$i/up" ] || { cat "$WORK/h$i.init.log" >&2; echo "host $i did not start" >&2; exit 1; }
    PID[$i]=$child
    ip link add "cfxans-v$i" type veth peer name "cfxans-p$i"
    ip link set "cfxans-p$i" netns "$child"
    ip link set "cfxans-v$i" master "$BR" up
    nsenter --target "$child" --net sh -c "
        ip link set cfxans-p$i name eth0 &&
        ip addr add $NET.1$i/24 dev eth0 &&
        ip link set eth0 up &&
        ip route add default via $NET.1"
}
for i in $(seq 1 $HOSTS); do start_host "$i"; done
log "hosts up: $(for i in $(seq 1 $HOSTS); do printf 'h%s=pid %s (%s.1%s) ' "$i" "${PID[$i]}" "$NET" "$i"; done)"

# ---------------------------------------------------------------------------------------
# PostgreSQL beside them, on the bridge
# ---------------------------------------------------------------------------------------
mkdir -p "$WORK/pg"
chown postgres:postgres "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -A trust -U postgres --no-sync -E UTF8 --locale=C >"$WORK/pg/initdb.log" 2>&1
echo "host all all $NET.0/24 trust" >>"$WORK/pg/data/pg_hba.conf"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
    -o "-c listen_addresses=$NET.1 -c port=$PG_PORT -c unix_socket_directories=$WORK/pg -c fsync=off -c max_connections=200" \
    start >/dev/null
runuser -u postgres -- "$PG_BIN/createdb" -h "$WORK/pg" -p "$PG_PORT" conflux
runuser -u postgres -- "$PG_BIN/createdb" -h "$WORK/pg" -p "$PG_PORT" conflux_restored
log "PostgreSQL on $NET.1:$PG_PORT"

# ---------------------------------------------------------------------------------------
# Inventory
# ---------------------------------------------------------------------------------------
write_inventory() { # $1: directory, $2: number of hosts in group conflux, $3..: extra host lines
    local dir=$1 n=$2 i
    shift 2
    mkdir -p "$dir/group_vars"
    {
        echo "all:"
        echo "  children:"
        echo "    conflux:"
        echo "      hosts:"
        for i in $(seq 1 "$n"); do
            echo "        h$i:"
            echo "          ansible_nsenter_pid: ${PID[$i]}"
            echo "          conflux_node_id: $i"
            echo "          conflux_advertise_address: $NET.1$i"
            [ "$i" -ge 4 ] && echo "          conflux_bootstrap_mode: join"
        done
        for line in "$@"; do echo "$line"; done
    } >"$dir/hosts.yml"
    cat >"$dir/group_vars/conflux.yml" <<EOF
ansible_connection: community.docker.nsenter
ansible_become: false
ansible_python_interpreter: /usr/bin/python3
conflux_cluster_name: cfxans
conflux_service_manager: none
conflux_binary_src: $WORK/bin/conflux-current
conflux_binary_path: /opt/conflux/bin/conflux
conflux_metadata_url: postgres://postgres@$NET.1:$PG_PORT/conflux
conflux_controller_secrets_dir: $WORK/secrets
conflux_ready_timeout: 90
EOF
}
INV="$WORK/inventory"
write_inventory "$INV" 3
cp "$WORK/bin/conflux-old" "$WORK/bin/conflux-current"

export ANSIBLE_CONFIG="$ANS/ansible.cfg"
export ANSIBLE_ROLES_PATH="$ANS/roles"
export ANSIBLE_FORCE_COLOR=0
export ANSIBLE_NOCOLOR=1
export ANSIBLE_LOCAL_TEMP="$WORK/ansible-tmp"
RUN_N=0
playbook() { # $1: name for the log, then ansible-playbook arguments; output in $WORK/<n>-<name>.log
    local name=$1 rc
    shift
    RUN_N=$((RUN_N + 1))
    LAST_LOG="$WORK/$(printf %02d $RUN_N)-$name.log"
    set +e
    "$VENV/bin/ansible-playbook" "$@" >"$LAST_LOG" 2>&1
    rc=$?
    set -e
    log "ansible-playbook $name: exit $rc; recap: $(recap "$LAST_LOG")"
    return $rc
}
recap() { sed -n '/PLAY RECAP/,$p' "$1" | grep -E '^(h[0-9]|localhost)' | sed -E 's/ +/ /g; s/ : /: /' | tr '\n' ';'; }
changed_total() { sed -n '/PLAY RECAP/,$p' "$1" | grep -oE 'changed=[0-9]+' | cut -d= -f2 | awk '{s+=$1} END {print s+0}'; }

TOKEN_FILE="$WORK/secrets/bootstrap.token"
api() { # $1: host number, then curl arguments (path first)
    local i=$1 path=$2
    shift 2
    curl -sS --max-time 10 -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "http://$NET.1$i:8080$path" "$@"
}
voters() { # the voters in host $1's /_cluster/status, e.g. "1,2,3"
    api "$1" /_cluster/status | python3 -c 'import json,sys; s=json.load(sys.stdin); print(",".join(str(m["id"]) for m in s["members"] if m["voter"] and m["reachable"]) + " leader=" + str(s["leader_id"]))'
}
node_binaries() { # sha256 of the installed binary on hosts 1..$1
    local i
    for i in $(seq 1 "$1"); do
        nsenter --target "${PID[$i]}" --mount sha256sum /opt/conflux/bin/conflux 2>/dev/null | cut -c1-64 || echo none
    done | sort | uniq -c | sed -E 's/^ +//' | tr '\n' ' '
}
host_has() { nsenter --target "${PID[$1]}" --mount test -e "$2"; }

# ---------------------------------------------------------------------------------------
# 1. Bad input fails before anything changes
# ---------------------------------------------------------------------------------------
nothing_installed() {
    local i
    for i in 1 2 3; do
        if host_has "$i" /etc/conflux || host_has "$i" /opt/conflux; then return 1; fi
    done
}
BAD="$WORK/inv-bad"
# a missing required variable
write_inventory "$BAD" 3
sed -i '/conflux_metadata_url/d' "$BAD/group_vars/conflux.yml"
if playbook bad-missing-var -i "$BAD" "$ANS/playbooks/site.yml"; then
    fail "site.yml without conflux_metadata_url succeeded"
elif grep -q "conflux_metadata_url" "$LAST_LOG" && nothing_installed; then
    pass "missing conflux_metadata_url: refused, names the variable, nothing installed"
else
    fail "missing conflux_metadata_url: message or state wrong (see $LAST_LOG)"
fi
# a node id reused by two hosts
rm -rf "$BAD" && write_inventory "$BAD" 3
sed -i '0,/conflux_node_id: 3/s//conflux_node_id: 2/' "$BAD/hosts.yml"
if playbook bad-duplicate-id -i "$BAD" "$ANS/playbooks/site.yml"; then
    fail "site.yml with a reused node id succeeded"
elif grep -q "conflux_node_id is reused: 2 by h2 and h3" "$LAST_LOG" && nothing_installed; then
    pass "node id 2 on h2 and h3: refused, names both hosts, nothing installed"
else
    fail "reused node id: message or state wrong (see $LAST_LOG)"
fi
# an unreachable peer: a member whose namespace does not exist (pid 999999 is no process)
rm -rf "$BAD" && write_inventory "$BAD" 3 \
    "        h9:" "          ansible_nsenter_pid: 999999" "          conflux_node_id: 9" "          conflux_advertise_address: $NET.19"
if playbook bad-unreachable -i "$BAD" "$ANS/playbooks/site.yml"; then
    fail "site.yml with an unreachable member succeeded"
elif grep -qE "h9" "$LAST_LOG" && grep -qiE "unreachable|cannot reach|failed" "$LAST_LOG" && nothing_installed; then
    pass "unreachable member h9: refused, names it, nothing installed"
else
    fail "unreachable member: message or state wrong (see $LAST_LOG)"
fi

# a peer whose address answers nothing: h9 is reachable by Ansible (it is h4's namespace) but
# advertises an address no host has, so the others' TCP probes of its Raft port time out
rm -rf "$BAD" && write_inventory "$BAD" 3 \
    "        h9:" "          ansible_nsenter_pid: ${PID[4]}" "          conflux_node_id: 9" "          conflux_advertise_address: $NET.99"
if playbook bad-peer-address -i "$BAD" "$ANS/playbooks/site.yml"; then
    fail "site.yml with a peer address nobody answers succeeded"
elif grep -q "cannot reach peer(s): h9" "$LAST_LOG" && nothing_installed && ! host_has 4 /etc/conflux; then
    pass "peer h9 at an address nobody answers: refused ($(grep -o 'h[0-9] cannot reach peer(s): h9' "$LAST_LOG" | head -1)), nothing installed"
else
    fail "peer at a dead address: message or state wrong (see $LAST_LOG)"
fi

# ---------------------------------------------------------------------------------------
# 2. site.yml forms a 3-node cluster; a write on one node is fetched on the others
# ---------------------------------------------------------------------------------------
if playbook site -i "$INV" "$ANS/playbooks/site.yml"; then
    pass "site.yml (first run) succeeded"
else
    fail "site.yml (first run) failed: $(grep -E 'fatal|FAILED|msg' "$LAST_LOG" | head -5)"
    exit 1
fi
v=$(voters 2)
if [[ "$v" == 1,2,3\ leader=[123] ]]; then pass "status on h2: voters $v"; else fail "status on h2: $v"; fi
for i in 1 2 3; do
    mode=$(nsenter --target "${PID[$i]}" --mount stat -c '%a %U' /etc/conflux/bootstrap.token /etc/conflux/kek.key | tr '\n' ' ')
    [ "$mode" = "600 conflux 600 conflux " ] || fail "h$i secret modes: $mode"
done
pass "bootstrap token and KEK are 0600 conflux on every node"

MGT=/api/v1/mgt
J=(-H 'Content-Type: application/json')
api 1 "$MGT/tenants" -X POST "${J[@]}" -d '{"name": "acme"}' >/dev/null
api 1 "$MGT/tenants/acme/apps" -X POST "${J[@]}" -d '{"name": "checkout"}' >/dev/null
api 1 "$MGT/tenants/acme/apps/checkout/envs" -X POST "${J[@]}" -d '{"name": "prod"}' >/dev/null
CFG_ID=$(api 1 "$MGT/tenants/acme/apps/checkout/envs/prod/configs" -X POST "${J[@]}" \
    -d '{"name": "app.yaml", "format": "yaml"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
VID=$(api 1 "$MGT/configs/$CFG_ID/versions?description=first" -X POST -H 'Content-Type: application/yaml' \
    --data-binary $'timeout_ms: 500\n' | python3 -c 'import json,sys; print(json.load(sys.stdin)["version_id"])')
api 1 "$MGT/configs/$CFG_ID/releases" -X PUT "${J[@]}" -d "{\"releases\": [{\"version_id\": $VID}]}" >/dev/null
R=$(api 1 "$MGT/configs/$CFG_ID" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("revision", 0))')
FETCH=/api/v1/fetch/config/acme/checkout/prod/app.yaml
ok=1
for i in 2 3; do
    body=$(api "$i" "$FETCH?min_revision=$R")
    [ "$body" = "timeout_ms: 500" ] || { ok=0; fail "fetch on h$i after a write on h1: '$body'"; }
done
[ $ok = 1 ] && pass "a version written on h1 is fetched on h2 and h3"

# ---------------------------------------------------------------------------------------
# 3. A second site.yml run changes nothing
# ---------------------------------------------------------------------------------------
if playbook site-again -i "$INV" "$ANS/playbooks/site.yml"; then
    c=$(changed_total "$LAST_LOG")
    if [ "$c" = 0 ]; then pass "second site.yml run: changed=0 on every host"; else fail "second site.yml run: changed=$c"; fi
else
    fail "second site.yml run failed"
fi

# ---------------------------------------------------------------------------------------
# 4. An upgrade with one node stopped refuses to start
# ---------------------------------------------------------------------------------------
ctl() { nsenter --target "${PID[$1]}" --mount --uts --ipc --net --pid /usr/local/sbin/conflux-ctl "$2"; }
wait_ready() { # host number
    local _
    for _ in $(seq 60); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$NET.1$1:8080/ready")" = 200 ] && return 0
        sleep 1
    done
    return 1
}
cp "$WORK/bin/conflux-new" "$WORK/bin/conflux-current"
ctl 3 stop >/dev/null
if playbook upgrade-one-down -i "$INV" "$ANS/playbooks/upgrade.yml"; then
    fail "upgrade.yml with h3 stopped succeeded"
else
    b=$(node_binaries 3)
    if grep -q "h3 (node 3" "$LAST_LOG" && [ "$b" = "3 $OLD_SHA " ]; then
        pass "upgrade.yml with h3 stopped: refused before any node ($(grep -o 'cluster unhealthy[^"]*' "$LAST_LOG" | head -1)); binaries untouched"
    else
        fail "upgrade.yml with h3 stopped: message or state wrong (binaries: $b; see $LAST_LOG)"
    fi
fi
ctl 3 start >/dev/null
wait_ready 3 || fail "h3 did not come back"
sleep 2

# ---------------------------------------------------------------------------------------
# 5. upgrade.yml to the other build while a client writes and fetches
# ---------------------------------------------------------------------------------------
NODES="http://$NET.11:8080,http://$NET.12:8080,http://$NET.13:8080"
python3 "$HERE/client.py" --nodes "$NODES" --token-file "$TOKEN_FILE" --config-id "$CFG_ID" \
    --fetch-path "$FETCH" --stop "$WORK/client.stop" >"$WORK/client.json" 2>"$WORK/client.err" &
CLIENT_PID=$!
sleep 3
if playbook upgrade -i "$INV" "$ANS/playbooks/upgrade.yml"; then
    pass "upgrade.yml succeeded"
else
    fail "upgrade.yml failed: $(grep -E 'msg' "$LAST_LOG" | head -3)"
fi
sleep 3
touch "$WORK/client.stop"
wait "$CLIENT_PID" || true
CLIENT_PID=
b=$(node_binaries 3)
if [ "$b" = "3 $NEW_SHA " ]; then pass "every node runs the new build ($NEW_VERSION, $NEW_SHA)"; else fail "binaries after the upgrade: $b"; fi
for i in 1 2 3; do
    exe=$(nsenter --target "${PID[$i]}" --mount --pid sh -c 'sha256sum /proc/$(cat /run/conflux/conflux.pid)/exe' | cut -c1-64)
    [ "$exe" = "$NEW_SHA" ] || fail "h$i's running process is not the new build ($exe)"
    v=$(nsenter --target "${PID[$i]}" --mount --pid sh -c '/proc/$(cat /run/conflux/conflux.pid)/exe --version')
    [ "$v" = "$NEW_VERSION" ] || fail "h$i's running process prints '$v', not '$NEW_VERSION'"
done
python3 - "$WORK/client.json" "$TOKEN_FILE" "$NET" "$CFG_ID" <<'PY' && pass "client during the upgrade: $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["fetches"], "fetches,", s["failed_fetches"], "failed;", s["writes_acked"], "writes acknowledged,", s["writes_failed"], "not; every acknowledged write present on every node")' "$WORK/client.json")" || fail "client during the upgrade (see $WORK/client.json)"
import json, sys, urllib.request
stats = json.load(open(sys.argv[1]))
token = open(sys.argv[2]).read().strip()
net, cfg = sys.argv[3], sys.argv[4]
ok = stats["failed_fetches"] == 0 and stats["writes_acked"] > 0 and stats["fetches"] > 0
if not ok:
    print("client stats:", {k: v for k, v in stats.items() if k != "acked"}, file=sys.stderr)
for node in (1, 2, 3):
    for w in stats["acked"]:
        req = urllib.request.Request(f"http://{net}.1{node}:8080/api/v1/mgt/configs/{cfg}/versions/{w['version_id']}/content")
        req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                body = r.read().decode()
        except Exception as e:  # noqa: BLE001
            body = f"<{e}>"
        if body != w["content"]:
            print(f"node {node}: version {w['version_id']} is {body!r}, acknowledged {w['content']!r}", file=sys.stderr)
            ok = False
            break
sys.exit(0 if ok else 1)
PY
v=$(voters 1)
if [[ "$v" == 1,2,3\ leader=[123] ]]; then pass "after the upgrade: voters $v"; else fail "after the upgrade: $v"; fi
if playbook upgrade-again -i "$INV" "$ANS/playbooks/upgrade.yml" && [ "$(changed_total "$LAST_LOG")" = 0 ]; then
    pass "upgrade.yml again: nothing to do, changed=0"
else
    fail "upgrade.yml again: $(recap "$LAST_LOG")"
fi

# ---------------------------------------------------------------------------------------
# 6. A changed setting: the handler restarts the nodes one at a time, fetches never fail
# ---------------------------------------------------------------------------------------
rm -f "$WORK/client.stop"
python3 "$HERE/client.py" --nodes "$NODES" --token-file "$TOKEN_FILE" --config-id "$CFG_ID" \
    --fetch-path "$FETCH" --stop "$WORK/client.stop" >"$WORK/client2.json" 2>"$WORK/client2.err" &
CLIENT_PID=$!
sleep 2
if playbook site-changed-setting -i "$INV" "$ANS/playbooks/site.yml" -e conflux_kms_cache_ttl=4m; then
    order=$(grep -A1 'Service | script restarted\]' "$LAST_LOG" | grep -E '^changed' | sed -E 's/.*(h[0-9])\]$/\1/' | tr '\n' ' ' || true)
    pass "site.yml with a changed setting: rolling restart by the handler, in turn: $order"
else
    fail "site.yml with a changed setting failed: $(grep -E 'msg' "$LAST_LOG" | head -3)"
fi
touch "$WORK/client.stop"
wait "$CLIENT_PID" || true
CLIENT_PID=
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["fetches"], s["failed_fetches"], s["writes_acked"]); sys.exit(0 if s["failed_fetches"] == 0 and s["fetches"] > 0 else 1)' "$WORK/client2.json" >"$WORK/client2.sum" \
    && pass "client during the rolling restart: $(cat "$WORK/client2.sum") (fetches, failed, writes acknowledged)" \
    || fail "client during the rolling restart: $(cat "$WORK/client2.sum")"
for i in 1 2 3; do
    nsenter --target "${PID[$i]}" --mount grep -q 'kms_cache_ttl = "4m"' /etc/conflux/conflux.toml || fail "h$i config lacks the new setting"
done

# ---------------------------------------------------------------------------------------
# 7. add_node.yml grows the cluster to 4 voters; remove_node.yml shrinks it back
# ---------------------------------------------------------------------------------------
INV4="$WORK/inventory4"
write_inventory "$INV4" 4
if playbook add-node -i "$INV4" "$ANS/playbooks/add_node.yml" -e conflux_kms_cache_ttl=4m; then
    v=$(voters 4)
    body=$(api 4 "$FETCH")
    if [[ "$v" == 1,2,3,4\ leader=[1234] ]] && [ -n "$body" ]; then
        pass "add_node.yml: voters $v; h4 serves the config"
    else
        fail "add_node.yml: voters '$v', fetch on h4 '$body'"
    fi
    c=$(sed -n '/PLAY RECAP/,$p' "$LAST_LOG" | grep -E '^h[123] ' | grep -oE 'changed=[0-9]+' | cut -d= -f2 | awk '{s+=$1} END {print s+0}')
    [ "$c" = 0 ] && pass "add_node.yml changed nothing on h1-h3" || fail "add_node.yml changed $c things on h1-h3"
else
    fail "add_node.yml failed: $(grep -E 'msg' "$LAST_LOG" | head -3)"
fi
if playbook remove-node -i "$INV4" "$ANS/playbooks/remove_node.yml" -e conflux_remove_host=h4 -e conflux_remove_wipe_data=true; then
    v=$(voters 1)
    if [[ "$v" == 1,2,3\ leader=[123] ]] && ! ctl 4 status >/dev/null; then
        pass "remove_node.yml h4: voters $v, h4 stopped"
    else
        fail "remove_node.yml: voters '$v'"
    fi
else
    fail "remove_node.yml failed: $(grep -E 'msg' "$LAST_LOG" | head -3)"
fi

# ---------------------------------------------------------------------------------------
# 8. backup.yml, then restore.yml builds a new cluster with the same configs
# ---------------------------------------------------------------------------------------
digest_counts() { api "$1" /_cluster/digest | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["tenants"], d["configs"], d["versions"])'; }
BEFORE=$(digest_counts 1)
BEFORE_BODY=$(api 1 "$FETCH")
BEFORE_VERSIONS=$(api 1 "$MGT/configs/$CFG_ID/versions?limit=1000" | sha256sum | cut -c1-16)
if playbook backup -i "$INV" "$ANS/playbooks/backup.yml" -e conflux_backup_dir="$WORK/backups" -e conflux_backup_keep=2 \
    && playbook backup-2 -i "$INV" "$ANS/playbooks/backup.yml" -e conflux_backup_dir="$WORK/backups" -e conflux_backup_keep=2 \
    && sleep 1 && playbook backup-3 -i "$INV" "$ANS/playbooks/backup.yml" -e conflux_backup_dir="$WORK/backups" -e conflux_backup_keep=2; then
    n=$(ls "$WORK/backups" | wc -l)
    SNAP=$(ls -d "$WORK"/backups/cfxans-*.snap | sort | tail -1)
    [ "$n" = 2 ] && [ -s "$SNAP" ] && pass "backup.yml x3 with keep=2: $n files kept, newest $(basename "$SNAP") ($(stat -c %s "$SNAP") bytes, mode $(stat -c %a "$SNAP"))" \
        || fail "backup.yml: $n files in $WORK/backups"
else
    fail "backup.yml failed: $(grep -E 'msg' "$LAST_LOG" | head -3)"
fi
if [ -n "${SNAP:-}" ] && playbook restore -i "$INV" "$ANS/playbooks/restore.yml" -e conflux_restore_from="$SNAP" \
    -e conflux_restore_confirm=true -e conflux_restore_wipe=true -e conflux_kms_cache_ttl=4m; then
    AFTER=$(digest_counts 2)
    AFTER_BODY=$(api 3 "$FETCH")
    AFTER_VERSIONS=$(api 2 "$MGT/configs/$CFG_ID/versions?limit=1000" | sha256sum | cut -c1-16)
    v=$(voters 1)
    if [ "$AFTER" = "$BEFORE" ] && [ "$AFTER_BODY" = "$BEFORE_BODY" ] && [ "$AFTER_VERSIONS" = "$BEFORE_VERSIONS" ] && [[ "$v" == 1,2,3\ leader=[123] ]]; then
        pass "restore.yml: new cluster (voters $v) with the same configs (tenants/configs/versions $AFTER, same version list, same fetch)"
    else
        fail "restore.yml: counts $BEFORE -> $AFTER, versions $BEFORE_VERSIONS -> $AFTER_VERSIONS, fetch '$BEFORE_BODY' -> '$AFTER_BODY', voters $v"
    fi
else
    fail "restore.yml failed: $(grep -E 'msg' "$LAST_LOG" | head -3)"
fi

# ---------------------------------------------------------------------------------------
# 9. A TLS cluster: Raft mutual TLS and API TLS, CA and certificates generated by the role
# ---------------------------------------------------------------------------------------
for i in 1 2 3; do
    ctl "$i" stop >/dev/null
    nsenter --target "${PID[$i]}" --mount sh -c 'find /var/lib/conflux -mindepth 1 -delete; rm -rf /etc/conflux'
done
TLS_ARGS=(-e '{"conflux_tls_enabled": true, "conflux_api_tls_enabled": true}'
    -e conflux_metadata_url="postgres://postgres@$NET.1:$PG_PORT/conflux_tls")
runuser -u postgres -- "$PG_BIN/createdb" -h "$WORK/pg" -p "$PG_PORT" conflux_tls
if playbook site-tls -i "$INV" "$ANS/playbooks/site.yml" "${TLS_ARGS[@]}"; then
    CA="$WORK/secrets/tls/ca.pem"
    v=$(curl -sS --max-time 10 --cacert "$CA" -H "Authorization: Bearer $(cat "$TOKEN_FILE")" "https://$NET.12:8080/_cluster/status" \
        | python3 -c 'import json,sys; s=json.load(sys.stdin); print(",".join(str(m["id"]) for m in s["members"] if m["voter"] and m["reachable"]) + " leader=" + str(s["leader_id"]))')
    plain=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$NET.12:8080/ready" || true)
    raft_plain=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$CA" "https://$NET.12:8081/" || true)
    if [[ "$v" == 1,2,3\ leader=[123] ]] && [ "$plain" != 200 ]; then
        pass "TLS cluster: https status (CA-pinned) shows voters $v; plain http refused ($plain); Raft port without a client certificate: $raft_plain"
    else
        fail "TLS cluster: voters '$v', plain http '$plain'"
    fi
    if playbook site-tls-again -i "$INV" "$ANS/playbooks/site.yml" "${TLS_ARGS[@]}" && [ "$(changed_total "$LAST_LOG")" = 0 ]; then
        pass "TLS cluster: second site.yml run changed=0"
    else
        fail "TLS cluster second run: $(recap "$LAST_LOG")"
    fi
else
    fail "site.yml with TLS failed: $(grep -E 'msg' "$LAST_LOG" | head -3)"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ] && echo PASS || { echo FAIL; exit 1; }

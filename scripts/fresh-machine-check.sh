#!/usr/bin/env bash
# Fresh-machine check: proves that the README's commands work on a brand-new Debian 12 machine
# that has nothing but the Rust toolchain. A machine that has been used for a while always has
# some package that setup.sh forgot (libprotobuf-dev once hid that way: CI passed, a new machine
# failed in etcd-client's build script), so this builds a minimal Debian bookworm root with
# debootstrap, copies the committed tree (HEAD) into it, and inside a chroot runs
# scripts/setup.sh, scripts/check-tools.sh and `cargo build --workspace --all-targets --locked`.
#
#   scripts/fresh-machine-check.sh [--force] [--keep]
#
#   --force  run even when this key already passed (see below)
#   --keep   keep the throwaway root afterwards (for debugging; delete it by hand)
#
# Cheap to skip: the key is a sha256 over what decides what setup installs and what the build
# needs (scripts/, Cargo.lock, every Cargo.toml, build.rs and .proto file, .cargo/config.toml,
# rust-toolchain*, all as committed in HEAD) and the Rust toolchain's version. A PASS leaves
# the stamp $CONFLUX_TOOLS_DIR/fresh-machine/passed-<key> (default /var/cache/conflux-tools);
# with a stamp for the current key the check says so and exits 0 at once.
#
# Exit status: 0 PASS (or skipped: already passed), 1 FAIL, 2 usage, 77 cannot run on this
# machine (not root, no debootstrap, no chroot): the reason is printed.
#
# Needs root, a Debian/Ubuntu host (apt; debootstrap is installed when missing), the Rust
# toolchain under $CARGO_HOME/$RUSTUP_HOME (default ~/.cargo, ~/.rustup) and 15 GB free disk.
set -euo pipefail

# The whole body is one { } block, which bash reads completely before running it: a run takes
# a quarter of an hour, and bash otherwise reads a script as it goes, so editing this file or
# checking out another commit meanwhile would change what the running check executes.
{
SUITE=bookworm
INCLUDE=ca-certificates,build-essential,python3,git,curl
MIN_FREE_GB=15
BASE_MAX_AGE_DAYS=30   # an older base root is rebuilt, so it stays close to what a new machine gets
SKIP_RC=77

FORCE=0
KEEP=0
for arg in "$@"; do
    case $arg in
        --force) FORCE=1 ;;
        --keep) KEEP=1 ;;
        -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "usage: $0 [--force] [--keep]" >&2; exit 2 ;;
    esac
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_DIR=${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}
CACHE=$TOOLS_DIR/fresh-machine
START=$SECONDS

log() { printf '[fresh-machine %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
skip() {
    echo "fresh-machine check: SKIPPED: $*"
    exit "$SKIP_RC"
}
FINAL_PRINTED=0
final() {   # final PASS|FAIL MESSAGE: the one line a reader of a CI log looks for
    FINAL_PRINTED=1
    echo "fresh-machine check: $1: $2 ($((SECONDS - START)) s)"
}
die() {
    final FAIL "$*"
    exit 1
}

# Root first: without it nothing below can run (and git may refuse another user's checkout).
[[ $(id -u) -eq 0 ]] || skip "needs root (debootstrap, mount and chroot)"

# --- the key: what decides whether an earlier PASS still holds --------------------------------
git -C "$REPO" rev-parse --verify -q HEAD >/dev/null || die "$REPO is not a git checkout with a commit"
COMMIT=$(git -C "$REPO" rev-parse HEAD)
key_inputs() {
    # Blob ids of the committed files (what the check copies in), not the work tree.
    git -C "$REPO" ls-tree -r --full-tree HEAD | awk -F '\t' '
        $2 ~ /^scripts\// || $2 == "Cargo.lock" || $2 == ".cargo/config.toml" ||
        $2 ~ /(^|\/)(Cargo\.toml|build\.rs)$/ || $2 ~ /\.proto$/ || $2 ~ /^rust-toolchain/'
    # The bind-mounted toolchain is part of what is tested (a newer rustc can break the build).
    (cd "$REPO" && rustc -V && cargo -V)
}
KEY=$(key_inputs | sha256sum | cut -c1-32)
STAMP=$CACHE/passed-$KEY
if ((!FORCE)) && [[ -e $STAMP ]]; then
    echo "fresh-machine check: skipped: key $KEY already passed ($(head -1 "$STAMP"));"
    echo "  nothing it covers changed (scripts/, Cargo.lock, Cargo.toml, build.rs, .proto, .cargo/config.toml, toolchain)."
    echo "  Run scripts/fresh-machine-check.sh --force to check anyway."
    exit 0
fi

# --- can it run here? ----------------------------------------------------------------------------
command -v apt-get >/dev/null || skip "not a Debian/Ubuntu host (no apt-get)"
command -v dpkg-query >/dev/null || skip "not a Debian/Ubuntu host (no dpkg-query)"
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    "$REPO/scripts/apt-install-missing.sh" debootstrap || skip "debootstrap is not installable"
fi
command -v chroot >/dev/null || skip "no chroot command"
CARGO_HOME_HOST=$(realpath -m "${CARGO_HOME:-$HOME/.cargo}")
RUSTUP_HOME_HOST=$(realpath -m "${RUSTUP_HOME:-$HOME/.rustup}")
[[ -x $CARGO_HOME_HOST/bin/cargo ]] || die "no cargo in $CARGO_HOME_HOST/bin (set CARGO_HOME)"
[[ -d $RUSTUP_HOME_HOST ]] || die "no rustup home at $RUSTUP_HOME_HOST (set RUSTUP_HOME)"

mkdir -p "$CACHE/work" "$CACHE/logs"
CACHE=$(realpath "$CACHE")   # mountinfo shows real paths
WORK=$CACHE/work

# One check at a time: a second one would take the first one's mounts for leftovers. Every
# long-running child gets `9>&-`: one left behind by a crashed run must not keep the lock.
exec 9>"$CACHE/lock"
flock -n 9 || die "another fresh-machine check holds $CACHE/lock"

# --- mounts and leftovers --------------------------------------------------------------------------
mounts_under() {   # mount points at or below $1, one a line
    awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}
kill_procs_in() {   # ends the processes whose root is $1 (started by this check inside its chroot)
    local p
    for p in /proc/[0-9]*; do
        if [[ $(readlink "$p/root" 2>/dev/null) == "$1" ]]; then kill -KILL "${p#/proc/}" 2>/dev/null || true; fi
    done
}
unmount_under() {   # unmounts everything at or below $1; false if something stays mounted
    local round m
    for round in 1 2 3 4 5; do
        # (Tested through a variable: `| grep -q` can kill awk with SIGPIPE, which pipefail
        # would turn into "nothing mounted", and then rm -rf would go through the binds.)
        [[ -n $(mounts_under "$1") ]] || return 0
        # Reverse path order unmounts children before their parents.
        while read -r m; do
            umount "$m" 2>/dev/null || { sleep "$round"; umount -l "$m" 2>/dev/null; } || true
        done < <(mounts_under "$1" | sort -r)
    done
    [[ -z $(mounts_under "$1") ]]
}
remove_tree() {   # deletes $1 only once nothing is mounted below it: rm -rf through a bind
                  # mount would delete the host's ~/.cargo
    kill_procs_in "$1"
    if ! unmount_under "$1"; then
        echo "fresh-machine check: still mounted below $1, NOT deleting it:" >&2
        mounts_under "$1" >&2
        return 1
    fi
    rm -rf --one-file-system "$1"
}

for old in "$WORK"/*; do
    [[ -e $old ]] || continue
    log "cleaning up after an earlier run that did not finish: $old"
    remove_tree "$old" || die "cannot clean up $old (see above)"
done

find "$CACHE/logs" -type f -mtime +30 -delete   # logs of old runs
ROOT=""
LOG=$CACHE/logs/$(date +%Y%m%d-%H%M%S)-${COMMIT:0:12}.log
# shellcheck disable=SC2317  # runs from the EXIT trap (shellcheck cannot see that inside { })
on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $ROOT && -e $ROOT ]]; then
        if ((KEEP)); then
            kill_procs_in "$ROOT"
            unmount_under "$ROOT" || echo "fresh-machine check: could not unmount everything below $ROOT" >&2
            log "kept the root at $ROOT (--keep); delete it with: rm -rf --one-file-system $ROOT"
        else
            log "removing the throwaway root"
            remove_tree "$ROOT" || rc=1
        fi
    fi
    if ((rc == 130 || rc == 143)); then
        final FAIL "interrupted (exit status $rc); log in $LOG"
    elif ((rc != 0 && rc != SKIP_RC && !FINAL_PRINTED)); then
        final FAIL "exit status $rc; log in $LOG"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- disk ------------------------------------------------------------------------------------------
free_kb=$(df -Pk "$CACHE" | awk 'NR == 2 { print $4 }')
if ((free_kb < MIN_FREE_GB * 1024 * 1024)); then
    die "only $((free_kb / 1024 / 1024)) GB free on the disk of $CACHE; the check needs ${MIN_FREE_GB} GB \
(the root, the packages setup.sh installs, a cold debug build). Free some space or point CONFLUX_TOOLS_DIR elsewhere"
fi

log "checking commit ${COMMIT:0:12} (key $KEY) on a fresh Debian $SUITE root"
if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no) ]]; then
    log "note: uncommitted changes in $REPO are not part of the check (it copies HEAD)"
fi

# --- the pristine base root (cached) ----------------------------------------------------------------
# The mirror this machine's apt uses: deb822 .sources stanzas and one-line .list entries.
host_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e $f ]] || continue
        awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
            { types = uris = suites = enabled = ""
              for (i = 1; i <= NF; i++) {
                  if ($i ~ /^Types:/) types = substr($i, 7)
                  if ($i ~ /^URIs:/) uris = substr($i, 6)
                  if ($i ~ /^Suites:/) suites = substr($i, 8)
                  if ($i ~ /^Enabled:/) enabled = substr($i, 9)
              }
              if ((" " types " ") ~ / deb / && enabled !~ /no/ && (" " suites " ") ~ (" " suite " ")) {
                  split(uris, u, " "); print u[1]
              } }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e $f ]] || continue
        awk -v suite="$SUITE" '$1 == "deb" { sub(/\[[^]]*\]/, ""); if ($3 == suite) print $2 }' "$f"
    done
}
MIRROR=$(host_mirror | head -1)
[[ -n $MIRROR ]] || die "no deb source for $SUITE in /etc/apt/sources.list*: cannot tell which mirror to use"

BASE=$CACHE/base-$(printf '%s\n' "$SUITE" minbase "$INCLUDE" "$MIRROR" | sha256sum | cut -c1-16).tar
if [[ -e $BASE ]] && [[ -n $(find "$BASE" -mtime +"$BASE_MAX_AGE_DAYS") ]]; then
    log "base root $BASE is older than $BASE_MAX_AGE_DAYS days: rebuilding it"
    rm -f "$BASE"
fi
if [[ ! -e $BASE ]]; then
    log "debootstrap $SUITE (minbase + $INCLUDE) from $MIRROR"
    tmp=$WORK/base.$$
    mkdir -p "$tmp"
    t0=$SECONDS
    if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp" "$MIRROR" >"$LOG.debootstrap" 2>&1 9>&-; then
        tail -n 30 "$LOG.debootstrap"
        remove_tree "$tmp" || true
        die "debootstrap failed (full output in $LOG.debootstrap)"
    fi
    tar -C "$tmp" --numeric-owner -cf "$BASE.tmp" .
    mv "$BASE.tmp" "$BASE"
    remove_tree "$tmp"
    log "base root cached in $BASE ($((SECONDS - t0)) s)"
else
    log "using the cached base root $BASE"
fi

# --- the throwaway root for this run ---------------------------------------------------------------
# Each run unpacks the pristine base anew: what one run installs never helps the next one.
ROOT=$WORK/root.$$
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner -xf "$BASE"

# Network and trust settings of this machine, without which apt, pip and cargo cannot reach their
# registries from inside (a TLS-inspecting egress proxy's CA, pip's cert setting, apt's
# Check-Valid-Until for a snapshot mirror). They are the machine's, not packages a fresh
# machine would lack, so copying them hides nothing setup.sh should install.
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp -L /etc/hosts "$ROOT/etc/hosts"
rm -f "$ROOT/etc/apt/sources.list"
if [[ -e /etc/apt/sources.list ]]; then cp /etc/apt/sources.list "$ROOT/etc/apt/"; fi
find /etc/apt/sources.list.d -maxdepth 1 \( -name '*.list' -o -name '*.sources' \) \
    -exec cp -t "$ROOT/etc/apt/sources.list.d/" {} +
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
    # Only the machine's own apt settings: files that no package owns.
    if [[ -f $f ]] && ! dpkg-query -S "$f" >/dev/null 2>&1; then cp "$f" "$ROOT$f"; fi
done
if [[ -d /usr/local/share/ca-certificates ]]; then
    cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
fi
for f in /etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
    if [[ -f $f ]]; then mkdir -p "$ROOT$(dirname "$f")"; cp "$f" "$ROOT$f"; fi
done
# No init system runs in a chroot: keep the postinst scripts of nginx and etcd from starting
# daemons on the host's network (Debian's policy-rc.d convention; container images do the same).
printf '#!/bin/sh\n# fresh-machine check: no daemons in the chroot\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"

# The only thing a fresh machine has beyond Debian: the Rust toolchain, bind-mounted at the same
# paths. ~/.cargo stays writable (cargo downloads into its registry cache and reads its config
# from there); ~/.rustup is read-only so nothing inside can change the host's toolchains.
mkdir -p "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT$CARGO_HOME_HOST" "$ROOT$RUSTUP_HOME_HOST"
mount -t proc proc "$ROOT/proc" || skip "cannot mount /proc in a chroot here"
mount -t sysfs sysfs "$ROOT/sys" 2>/dev/null || mount --rbind /sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
for m in /dev/pts /dev/shm; do
    if mountpoint -q "$m"; then mount --bind "$m" "$ROOT$m"; fi
done
mount --bind "$CARGO_HOME_HOST" "$ROOT$CARGO_HOME_HOST"
mount --bind "$RUSTUP_HOME_HOST" "$ROOT$RUSTUP_HOME_HOST"
mount -o remount,bind,ro "$RUSTUP_HOME_HOST" "$ROOT$RUSTUP_HOME_HOST" 2>/dev/null ||
    log "note: could not make $RUSTUP_HOME_HOST read-only inside"
chroot "$ROOT" /bin/true || skip "chroot does not work here"
chroot "$ROOT" update-ca-certificates >>"$LOG" 2>&1   # adds the copied CAs to the bundle

# The repository as committed: uncommitted or ignored files on this machine cannot hide a problem.
mkdir -p "$ROOT/src/conflux"
git -C "$REPO" archive --format=tar HEAD | tar -C "$ROOT/src/conflux" -xf -

# A clean environment inside: only what a fresh machine's shell would have, the toolchain on
# PATH, a target dir inside the root (never the host's CARGO_TARGET_DIR, which .ci/run sets),
# and this machine's trust and registry settings (CA bundle variables, PIP_*, cargo's network
# settings, proxies). Credentials are not carried.
CHROOT_ENV=(
    HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive
    "PATH=$CARGO_HOME_HOST/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    "CARGO_HOME=$CARGO_HOME_HOST" "RUSTUP_HOME=$RUSTUP_HOME_HOST"
    CARGO_TARGET_DIR=/build/target CARGO_TERM_COLOR=never
)
while IFS= read -r name; do
    case $name in
        *TOKEN* | *PASSWORD* | *SECRET* | *_KEY | RUSTUP_HOME | CARGO_HOME | CARGO_TARGET_DIR) continue ;;
        SSL_CERT_FILE | SSL_CERT_DIR | *_CA_BUNDLE | *_CAINFO | *_CA_CERTS* | PIP_* | \
            CARGO_HTTP_* | CARGO_NET_* | CARGO_REGISTRIES_* | CARGO_REGISTRY_* | RUSTUP_* | \
            http_proxy | https_proxy | no_proxy | all_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY | ALL_PROXY) ;;
        *) continue ;;
    esac
    value=${!name}
    CHROOT_ENV+=("$name=$value")
    if [[ $value == /* && -e $value && ! -e $ROOT$value ]]; then
        log "note: $name=$value exists on this machine but not in the fresh root"
    fi
done < <(compgen -e)

in_root() {   # in_root TITLE COMMAND...: runs COMMAND in the chroot, output to the console and $LOG
    local title=$1 t0=$SECONDS rc=0 pid
    shift
    log "== $title"
    echo "== $title" >>"$LOG"
    # In the background with `wait`, so INT/TERM reach the trap at once (bash delays traps
    # until a foreground child exits); the trap then ends everything inside the root.
    chroot "$ROOT" /usr/bin/env -i "${CHROOT_ENV[@]}" /bin/bash -c 'cd /src/conflux && "$@"' in_root "$@" \
        > >(tee -a "$LOG" 9>&-) 2>&1 9>&- &
    pid=$!
    wait "$pid" || rc=$?
    log "$title: exit $rc after $((SECONDS - t0)) s"
    return "$rc"
}

in_root "scripts/setup.sh (installs what a fresh machine lacks)" ./scripts/setup.sh ||
    die "scripts/setup.sh failed on a fresh machine (log: $LOG)"
in_root "scripts/check-tools.sh (every program the tests run is there)" ./scripts/check-tools.sh ||
    die "scripts/setup.sh left programs the tests run uninstalled (log: $LOG)"
in_root "cargo build --workspace --all-targets --locked" \
    cargo build --workspace --all-targets --locked ||
    die "cargo build failed on a fresh machine after scripts/setup.sh: a package setup.sh should install? (log: $LOG)"

{
    echo "commit ${COMMIT:0:12}, $(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - START)) s"
    echo "key $KEY"
    key_inputs
} >"$STAMP"
final PASS "commit ${COMMIT:0:12} builds on a fresh Debian $SUITE after scripts/setup.sh (stamp $STAMP)"
exit 0
}

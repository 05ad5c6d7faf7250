#!/usr/bin/env bash
# Installs etcd, the baseline `conflux-bench compare --against etcd` measures Conflux against:
# Debian's etcd-server (the `etcd` binary) and etcd-client (`etcdctl`), with apt, when they
# are missing. conflux-bench itself installs nothing; it starts the `etcd` it finds on PATH.
# Idempotent and fast when already installed. Debian/Ubuntu.
set -euo pipefail

PACKAGES=(etcd-server etcd-client)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "setup-etcd: installing ${missing[*]}" >&2
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v etcd >/dev/null || { echo "setup-etcd: etcd is not on PATH after installing" >&2; exit 1; }

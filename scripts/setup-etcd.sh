#!/usr/bin/env bash
# Installs etcd, the baseline `conflux-bench compare --against etcd` measures Conflux against:
# Debian's etcd-server (the `etcd` binary) and etcd-client (`etcdctl`), with apt, when they
# are missing. conflux-bench itself installs nothing; it starts the `etcd` it finds on PATH.
# Idempotent and fast when already installed. Debian/Ubuntu.
set -euo pipefail

PACKAGES=(etcd-server etcd-client)

"$(dirname "$0")/apt-install-missing.sh" "${PACKAGES[@]}"

command -v etcd >/dev/null || { echo "setup-etcd: etcd is not on PATH after installing" >&2; exit 1; }

#!/usr/bin/env bash
# Checks that every program the test suite runs is installed, and names what is missing (with
# the script meant to install it). Run by scripts/test.sh before building, and by the
# fresh-machine check right after scripts/setup.sh: a missing program then fails with its name
# instead of as a test failure much later.
set -euo pipefail

TOOLS_DIR="${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}"
missing=()
need() {   # need WHAT INSTALLED-BY: WHAT is a command on PATH or an executable path
    if [[ $1 == /* ]]; then [[ -x $1 ]] || missing+=("$1 ($2)"); else command -v "$1" >/dev/null || missing+=("$1 ($2)"); fi
}
for c in protoc mold wrk nginx nft ip tc curl nsenter unshare systemd-analyze python3; do
    need "$c" "scripts/setup.sh"
done
need etcd "scripts/setup-etcd.sh"
need "${TERRAFORM:-$TOOLS_DIR/terraform-venv/bin/terraform}" "scripts/setup-terraform.sh"
need "${MOTO_SERVER:-$TOOLS_DIR/moto-venv/bin/moto_server}" "scripts/setup-moto.sh"
need "${CONFLUX_ANSIBLE_VENV:-$TOOLS_DIR/ansible-venv}/bin/ansible-playbook" "ansible/tests/install-ansible.sh"
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
need "${pg_bin:-/usr/lib/postgresql/VERSION/bin}/initdb" "scripts/setup.sh: postgresql"

if ((${#missing[@]})); then
    printf 'check-tools: missing: %s\n' "${missing[@]}" >&2
    exit 1
fi
echo "check-tools: every program the tests run is installed"

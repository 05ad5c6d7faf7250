#!/usr/bin/env bash
# Installs Ansible for ansible/ (ansible-core, the `ansible` collections bundle, ansible-lint)
# at the exact versions of ansible/requirements.txt into a private venv,
# ${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}/ansible-venv, never into the global Python
# or the repo. Idempotent: a venv that already holds exactly those versions is left alone.
# Needs python3 >= 3.11 (ansible-core 2.19) and PyPI; installs python3-venv with apt when
# Python cannot make a venv. Prints the venv's path on its last line. (Called by
# scripts/setup.sh.)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REQ="$HERE/../requirements.txt"
TOOLS_DIR="${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}"
VENV="${CONFLUX_ANSIBLE_VENV:-$TOOLS_DIR/ansible-venv}"
PYTHON="${PYTHON:-python3}"

wanted=$(grep -E '^[A-Za-z0-9_.-]+==' "$REQ" | tr 'A-Z_' 'a-z-' | sort)
installed() {
    "$VENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | tr 'A-Z_' 'a-z-' | sort
}
if [[ -x "$VENV/bin/ansible-playbook" ]] && [[ -z "$(comm -23 <(echo "$wanted") <(installed))" ]]; then
    echo "$VENV"
    exit 0
fi

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "install-ansible: $PYTHON is $("$PYTHON" --version 2>&1); ansible-core 2.19 needs 3.11 or newer" >&2
    exit 1
fi
mkdir -p "$TOOLS_DIR"
rm -rf "$VENV"
echo "install-ansible: installing $(echo $wanted) into $VENV" >&2
if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) to create venvs.
    rm -rf "$VENV"
    "$HERE/../../scripts/apt-install-missing.sh" python3-venv
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" >&2
"$VENV/bin/ansible-playbook" --version >/dev/null
"$VENV/bin/ansible-doc" -t connection community.docker.nsenter >/dev/null
echo "$VENV"

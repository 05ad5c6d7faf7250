#!/usr/bin/env bash
# Installs moto's server (a local AWS-compatible endpoint; the KMS tests run the aws provider
# against it) from PyPI into its own venv under
# ${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}/moto-venv. Idempotent and fast when already
# installed. Prints the path of the moto_server binary on its last line.
#
# The KMS tests look for it in this order: $MOTO_SERVER, then
# ${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}/moto-venv/bin/moto_server.
set -euo pipefail

TOOLS_DIR="${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}"
VENV="$TOOLS_DIR/moto-venv"
PACKAGE="moto[server]==5.2.5"
MOTO="$VENV/bin/moto_server"

if [[ -x "$MOTO" ]] && "$VENV/bin/pip" show moto 2>/dev/null | grep -q '^Version: 5\.2\.5$'; then
    echo "$MOTO"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
mkdir -p "$TOOLS_DIR"
rm -rf "$VENV"
echo "setup-moto: installing $PACKAGE into $VENV" >&2
if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) to create venvs.
    rm -rf "$VENV"
    "$(dirname "$0")/apt-install-missing.sh" python3-venv
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE" >&2
if ! "$MOTO" --help >/dev/null 2>&1; then
    echo "setup-moto: $MOTO does not run" >&2
    exit 1
fi
echo "$MOTO"

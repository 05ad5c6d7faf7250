#!/usr/bin/env bash
# Installs what is missing, builds the release binary and starts the embedded single node:
# data in ./conflux-data, API on 127.0.0.1:8080. Extra arguments go to `conflux server`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec cargo run --release --locked --bin conflux -- server "$@"

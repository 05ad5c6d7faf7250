#!/usr/bin/env bash
# Installs what is missing, builds every target once and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# One cargo invocation builds all targets (tests, benches, binaries) so nothing is
# compiled twice; the tests then run without rebuilding. Benchmarks run once each, as tests.
cargo build --locked --workspace --all-targets
cargo test --locked --workspace --all-targets

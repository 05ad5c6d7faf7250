#!/usr/bin/env bash
# Installs what is missing, builds every target once and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/check-tools.sh
# One cargo invocation builds all targets (tests, benches, binaries) so nothing is
# compiled twice; the tests then run without rebuilding. Benchmarks run once each, as tests.
cargo build --locked --workspace --all-targets
cargo test --locked --workspace --all-targets
# Smoke run of the benchmark tool (never a timed test): every scenario for a second against
# one debug-build node, light load, thresholds off; fails only if the tool itself fails.
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
CONFLUX_BIN="$TARGET_DIR/debug/conflux" "$TARGET_DIR/debug/conflux-bench" check --quick \
    --results "$(mktemp -d -t conflux-bench-smoke.XXXXXX)"
# The same with the node's API on TLS: the tool's raw workers and watchers over tokio-rustls.
CONFLUX_BIN="$TARGET_DIR/debug/conflux" "$TARGET_DIR/debug/conflux-bench" check --quick --api-tls \
    --results "$(mktemp -d -t conflux-bench-smoke-tls.XXXXXX)"
# Chaos smoke campaign: a few seeded fault-injection runs against debug-build clusters in
# network namespaces; any anomaly fails the build. The seed base moves with the clock, so
# successive CI runs cover every scenario; a failing run prints the command that repeats it.
# The full campaign (README in chaos/) is not part of CI.
CHAOS_SEED_BASE="${CHAOS_SEED_BASE:-$(( $(date +%s) / 600 ))}"
echo "chaos smoke campaign, seed base $CHAOS_SEED_BASE"
CONFLUX_BIN="$TARGET_DIR/debug/conflux" "$TARGET_DIR/debug/conflux-chaos" campaign \
    --runs 4 --seed-base "$CHAOS_SEED_BASE" --duration 15s \
    --out "$(mktemp -d -t conflux-chaos-smoke.XXXXXX)"
# The Ansible role and playbooks, run for real by ansible-playbook against hosts made of
# namespaces on this machine (ansible/tests/run.sh; about 8 minutes). It builds its upgrade
# target from this checkout: the same source with a different version label.
./ansible/tests/run.sh

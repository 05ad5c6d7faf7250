#!/usr/bin/env bash
# Installs the system packages Conflux needs to build and test, skipping what is present.
# Debian/Ubuntu (apt). Safe to run repeatedly.
set -euo pipefail

# librocksdb-dev: RocksDB linked from the system (see .cargo/config.toml); libclang-dev: bindgen
# for the RocksDB bindings; protobuf-compiler: gRPC code generation; libprotobuf-dev: the
# well-known types (google/protobuf/*.proto) that Debian's protoc does not ship and etcd-client's
# build includes; mold: fast linking; wrk and nginx-light: the fetch benchmark; nftables:
# the packet drops of the network-partition tests and the chaos harness; iproute2: the chaos
# harness's network namespaces, veth pairs and tbf rate limits (ip, tc); postgresql: the
# metadata DB tests start throwaway PostgreSQL servers from its binaries (conflux-testkit's
# TestPostgres); curl and systemd (systemd-analyze): the Ansible harness (ansible/tests/run.sh)
# probes nodes with curl and verifies the role's systemd unit.
PACKAGES=(librocksdb-dev libclang-dev protobuf-compiler libprotobuf-dev mold wrk nginx-light nftables iproute2 postgresql curl systemd)

"$(dirname "$0")/apt-install-missing.sh" "${PACKAGES[@]}"
"$(dirname "$0")/setup-terraform.sh" >/dev/null   # terraform for the provider tests
"$(dirname "$0")/setup-moto.sh" >/dev/null        # moto_server, the KMS of the aws provider tests
"$(dirname "$0")/setup-etcd.sh"                    # etcd, the baseline of conflux-bench compare
"$(dirname "$0")/../ansible/tests/install-ansible.sh" >/dev/null  # Ansible for ansible/ and its harness

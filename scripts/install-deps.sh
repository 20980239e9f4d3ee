#!/usr/bin/env bash
# Installs what building and testing the load balancer needs on Debian 12, as root, and only
# what is missing: DPDK 22.11 with its headers and drivers, clang for bindgen, the lab's tools,
# and cargo-fuzz; with --bench also HAProxy, wrk and matplotlib for the benchmarks. Safe to
# run again.
set -euo pipefail

packages=(dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config iproute2 iputils-ping ethtool nftables iperf3 curl python3 python3-scapy tcpdump bird2)
# --bench: also what bench/e2e.sh compares against and bench/plot.py draws with.
[ "${1:-}" = --bench ] && packages+=(haproxy wrk python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: missing packages (${missing[*]}); run as root" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found; install Rust (rustup) first" >&2
    exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
    echo "install-deps: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
echo "install-deps: ok ($(pkg-config --modversion libdpdk 2>/dev/null | sed 's/^/DPDK /'))"

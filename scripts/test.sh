#!/usr/bin/env bash
# The whole test suite, from a fresh clone on Debian 12 as root: installs what is missing,
# checks formatting and lints, runs a bounded fuzz run of the packet pipeline, then every test
# of the workspace (unit, property, fixture, DPDK golden pcap, memif with testpmd and lbgen,
# the namespace lab). Ends with one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The memif test runs testpmd in memory on hugepages; without them (both processes --no-huge)
# no traffic crosses the memif pair, for a reason not yet found. Reserve some if none are free.
if [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -lt 256 ] && [ "$(id -u)" -eq 0 ]; then
    echo 512 > /proc/sys/vm/nr_hugepages || true
    echo "== hugepages: $(awk '/HugePages_Free/ {print $2}' /proc/meminfo) free"
fi
# Pages reserved by someone else still need the mount for DPDK's EAL.
if [ "$(id -u)" -eq 0 ]; then
    mountpoint -q /dev/hugepages || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } || true
fi
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== fuzz (bounded)"
scripts/fuzz.sh "${LB_FUZZ_SECONDS:-60}"
echo "== cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace 2>&1 | tee "$log" || status=$?
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
echo "tests: $passed passed, $failed failed"
exit "$status"

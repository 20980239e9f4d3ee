#!/usr/bin/env bash
# The quick start: on a fresh Debian 12 machine, as root, installs what is missing, reserves
# hugepages, builds, brings up the demo lab (client, LB, two backends in network namespaces),
# starts lbd from configs/demo.toml, adds a service with lbctl, sends real traffic through the
# VIP, prints the per-backend distribution and the throughput, and cleans everything up.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-deps.sh
if [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -lt 256 ]; then
    echo 512 > /proc/sys/vm/nr_hugepages || true
fi
mountpoint -q /dev/hugepages || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } || true
echo "== building (release)"
cargo build --release --workspace --quiet

export LBD=$root/target/release/lbd LAB_CONFIG=$root/configs/demo.toml
lbctl() { "$root/target/release/lbctl" -S "$LAB_DIR/lbd.sock" "$@"; }
source tests/lab/lab.sh
echo "== lab: client 10.0.0.2 -- [LB 10.0.0.1 | 10.1.0.1] -- backends 10.1.0.11, 10.1.0.12"
lab_setup two-armed
lab_start_lbd ''
grep "^lbd:" "$LAB_DIR/lbd.log"

echo "== lbctl: VIP 10.0.0.100:80 (round robin) and 10.0.0.100:5201 (Maglev), NAT to both backends"
lbctl add-service -t 10.0.0.100:80 -s rr
lbctl add-backend -t 10.0.0.100:80 -r 10.1.0.11:8080 -m nat
lbctl add-backend -t 10.0.0.100:80 -r 10.1.0.12:8080 -m nat
lbctl add-service -t 10.0.0.100:5201 -s mh
lbctl add-backend -t 10.0.0.100:5201 -r 10.1.0.11 -m nat
lbctl add-backend -t 10.0.0.100:5201 -r 10.1.0.12 -m nat
lbctl list -n

echo "== ping the VIP (answered by lbd itself)"
in_ns "$NS_C" ping -c 3 -i 0.2 10.0.0.100 | tail -2
echo "== 20 HTTP requests through the VIP: which backend answered"
lab_curl http://10.0.0.100/ 20 | sort | uniq -c
echo "== iperf3 through the VIP (3 s, 1 stream)"
in_ns "$NS_C" iperf3 -c 10.0.0.100 -p 5201 -t 3 | grep -E "sender|receiver"
echo "== lbctl list --stats"
lbctl list -n --stats
echo "== lbctl stats"
lbctl stats
echo "== done; the lab is removed on exit"

#!/usr/bin/env bash
# What the adaptive poll mode costs (issue 13): the same lbd (nat, AF_PACKET, worker on core
# 1) on the netns lab, once with `workers.poll = "busy"` (the reference) and once "adaptive",
# measuring in the same script:
#   - latency: 300 pings of the VIP at 20 ms intervals (lbd answers them itself, so the round
#     trip is the worker's wake-up plus the veths), an idle worker between each;
#   - throughput: iperf3, 1 stream, through the VIP to a backend;
#   - CPU: the worker thread's CPU time while the lab is idle for 5 s.
# Prints a markdown table with the adaptive figures as ratios to busy. Needs root; ~1 minute.
#   bench/poll.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lbd
export LBD=$PWD/target/release/lbd
source tests/lab/lab.sh
lab_setup two-armed

services='[[service]]
vip = "10.0.0.100"
port = 5201
scheduler = "sh"
backend = [{ address = "10.1.0.11" }]'

# CPU seconds the worker thread (lbd-worker-0) used so far.
worker_cpu() {
    local tid
    tid=$(grep -l "lbd-worker-0" /proc/"$LBD_PID"/task/*/comm | head -1 | xargs dirname)
    awk '{printf "%.2f\n", ($14 + $15) / 100}' "$tid/stat"
}

run() {
    local mode=$1
    LAB_POLL=$mode lab_start_lbd "$services" >/dev/null
    in_ns "$NS_C" ping -c 5 -i 0.2 10.0.0.100 >/dev/null || true
    local rtt
    rtt=$(in_ns "$NS_C" ping -q -c 300 -i 0.02 10.0.0.100 | sed -nE 's|.* = ([0-9.]+)/([0-9.]+)/([0-9.]+)/.*|\2 \3|p')
    local bps
    bps=$(in_ns "$NS_C" iperf3 -c 10.0.0.100 -p 5201 -t 5 -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9)')
    local c0 c1
    c0=$(worker_cpu); sleep 5; c1=$(worker_cpu)
    lab_stop_lbd >/dev/null
    echo "$mode $rtt $bps $(echo "$c0 $c1" | awk '{printf "%.2f", ($2 - $1) / 5}')"
}

read -r _ busy_avg busy_max busy_gbps busy_cpu < <(run busy)
read -r _ ad_avg ad_max ad_gbps ad_cpu < <(run adaptive)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "| poll mode | ping RTT avg / max (ms) | iperf3 1 stream (Gbit/s) | worker CPU when idle (cores) |"
echo "|---|---|---|---|"
echo "| busy (reference) | $busy_avg / $busy_max | $(printf '%.2f' "$busy_gbps") | $busy_cpu |"
echo "| adaptive | $ad_avg / $ad_max | $(printf '%.2f' "$ad_gbps") | $ad_cpu |"
echo "| adaptive / busy | $(ratio "$ad_avg" "$busy_avg") / $(ratio "$ad_max" "$busy_max") | $(ratio "$ad_gbps" "$busy_gbps") | $(ratio "$ad_cpu" "$busy_cpu") |"

#!/usr/bin/env bash
# perf.md #3, end to end on the netns lab (tests/lab/lab.sh): iperf3 with 1 and 4 streams and
# wrk with `Connection: close` (new connections per second, p99 latency) from the client to
# two backends, through
#   - no LB: the LB namespace's kernel routes, the client talks to a backend directly;
#   - nftables DNAT in the LB namespace (`numgen inc` for HTTP, `jhash ip saddr` for iperf3,
#     whose control and data connections must meet on one server);
#   - HAProxy in TCP mode pinned to core 1;
#   - lbd (AF_PACKET ports, worker pinned to core 1) in nat, fnat and dr, and nat on AF_XDP.
# The backends serve HTTP with HAProxy (`http-request return`: a C server, so Python is not the
# bottleneck) and iperf3. Every row runs in the same script on the same lab shape. Needs root,
# haproxy and wrk (scripts/install-deps.sh --bench); ~3 minutes.
#   bench/e2e.sh                 a markdown table on stdout
#   LB_BENCH_SECONDS=3 bench/e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${LB_BENCH_SECONDS:-5}
for tool in haproxy wrk iperf3 nft; do
    command -v "$tool" >/dev/null || { echo "e2e: $tool is missing (scripts/install-deps.sh --bench)" >&2; exit 1; }
done
cargo build --release -q -p lbd
export LBD=$PWD/target/release/lbd

# Fixed HTTP answers from each backend on :8081, one HAProxy thread each.
backend_http() {
    for i in 1 2; do
        cat > "$LAB_DIR/be$i.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout client 5s
    timeout server 5s
    timeout connect 2s
frontend www
    bind :::8081 v4v6
    http-request return status 200 content-type text/plain string "backend-$i"
EOF
        ip netns exec "$(ns_b "$i")" haproxy -db -f "$LAB_DIR/be$i.cfg" >/dev/null 2>&1 &
        LAB_PIDS+=($!)
    done
    sleep 0.5
}

# The LB namespace's kernel as a router with the lab's addresses.
kernel_router() {
    in_ns "$NS_L" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$NS_L" ip addr add 10.0.0.1/24 dev "l0$LAB_ID"
    in_ns "$NS_L" ip addr add 10.1.0.1/24 dev "l1$LAB_ID"
    in_ns "$NS_C" ip route add 10.1.0.0/24 via 10.0.0.1
}

# measure NAME HOST IPERF_PORT HTTP_URL: one table row.
measure() {
    local name=$1 host=$2 port=$3 url=$4
    local one four wrk rps p99
    # Warm the path (ARP, the LB's neighbour table) before measuring.
    in_ns "$NS_C" curl -s -m 5 -o /dev/null "$url" || true
    # A failed run prints JSON with an error and no totals (or nothing): "failed" in the row.
    one=$({ in_ns "$NS_C" timeout -k 5 $((SECS + 20)) iperf3 -c "$host" -p "$port" -t "$SECS" -J || true; } | iperf_result)
    four=$({ in_ns "$NS_C" timeout -k 5 $((SECS + 20)) iperf3 -c "$host" -p "$port" -t "$SECS" -P 4 -J || true; } | iperf_result)
    wrk=$(in_ns "$NS_C" timeout -k 5 $((SECS + 20)) wrk -t1 -c32 -d"${SECS}s" --latency -H 'Connection: close' "$url" 2>&1 || true)
    rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<< "$wrk")
    p99=$(awk '$1 == "99%" {print $2}' <<< "$wrk")
    local errors
    errors=$(awk '/Socket errors|Non-2xx|unable to connect/ {print}' <<< "$wrk" | tr '\n' ' ')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$one" "$four" "$rps" "$p99" "${errors:-none}"
}

# iperf3's JSON -> "Gbit/s received (segments the sender retransmitted, the kernel's count)";
# a failed run (JSON with an error and no totals, or none) -> "failed".
iperf_result() {
    python3 -c 'import json,sys
try: end = json.load(sys.stdin).get("end", {})
except ValueError: end = {}
got = end.get("sum_received")
print("%.2f (%s)" % (got["bits_per_second"] / 1e9, end.get("sum_sent", {}).get("retransmits", "-")) if got else "failed")'
}

# lbd_counters ROW: stops lbd and keeps what it printed as it stopped (its drops by reason,
# packets its ports refused to send, each port's DPDK statistics) for after the table.
COUNTERS=$(mktemp)
trap 'rm -f "$COUNTERS"' EXIT
lbd_counters() {
    lab_stop_lbd > /dev/null
    { echo "- $1:"; grep -E '^lbd: (stopped|port)' "$LAB_DIR/lbd.log" | sed 's/^/  - /'; } >> "$COUNTERS"
}

echo "| path | iperf3 1 stream Gbit/s (retransmits) | iperf3 4 streams Gbit/s (retransmits) | wrk new conn/s | wrk p99 | errors |"
echo "|---|---|---|---|---|---|"

( # no LB: the kernel routes between the client and backend 1.
    LAB_ID=$(printf "%04x" $(( ($$ * 8 + 1) & 0xffff )))
    source tests/lab/lab.sh
    lab_setup two-armed; backend_http; kernel_router
    measure "no LB (kernel router)" 10.1.0.11 5201 http://10.1.0.11:8081/
)

( # nftables DNAT
    LAB_ID=$(printf "%04x" $(( ($$ * 8 + 2) & 0xffff )))
    source tests/lab/lab.sh
    lab_setup two-armed; backend_http; kernel_router
    in_ns "$NS_L" ip addr add 10.0.0.100/32 dev "l0$LAB_ID"
    in_ns "$NS_L" nft -f - <<'EOF'
table ip lbbench {
    chain prerouting {
        type nat hook prerouting priority dstnat;
        ip daddr 10.0.0.100 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 10.1.0.11, 1 : 10.1.0.12 } : 8081
        ip daddr 10.0.0.100 tcp dport 5201 dnat to jhash ip saddr mod 2 map { 0 : 10.1.0.11, 1 : 10.1.0.12 }
    }
}
EOF
    measure "nftables DNAT (numgen)" 10.0.0.100 5201 http://10.0.0.100/
)

( # HAProxy in TCP mode, one thread pinned to core 1
    LAB_ID=$(printf "%04x" $(( ($$ * 8 + 3) & 0xffff )))
    source tests/lab/lab.sh
    lab_setup two-armed; backend_http; kernel_router
    in_ns "$NS_L" ip addr add 10.0.0.100/32 dev "l0$LAB_ID"
    cat > "$LAB_DIR/lb.cfg" <<'EOF'
global
    nbthread 1
    cpu-map 1/1 1
    maxconn 4000
defaults
    mode tcp
    timeout client 30s
    timeout server 30s
    timeout connect 2s
listen http
    bind 10.0.0.100:80
    balance roundrobin
    server b1 10.1.0.11:8081
    server b2 10.1.0.12:8081
listen iperf
    bind 10.0.0.100:5201
    balance source
    server b1 10.1.0.11:5201
    server b2 10.1.0.12:5201
EOF
    ip netns exec "$NS_L" taskset -c 1 haproxy -db -f "$LAB_DIR/lb.cfg" >/dev/null 2>&1 &
    LAB_PIDS+=($!)
    sleep 0.5
    measure "HAProxy TCP mode, 1 core" 10.0.0.100 5201 http://10.0.0.100/
)

for run in nat:af_packet fnat:af_packet nat:af_xdp; do
    mode=${run%%:*}
    ( # lbd two-armed
        LAB_ID=$(printf "%04x" $(( ($$ * 8 + 4 + ${#run}) & 0xffff )))
        LAB_DRIVER=${run#*:}
        source tests/lab/lab.sh
        lab_setup two-armed; backend_http
        lab_start_lbd "[[service]]
vip = \"10.0.0.100\"
port = 80
scheduler = \"rr\"
backend = [{ address = \"10.1.0.11\", port = 8081, mode = \"$mode\" }, { address = \"10.1.0.12\", port = 8081, mode = \"$mode\" }]
[[service]]
vip = \"10.0.0.100\"
port = 5201
scheduler = \"sh\"
backend = [{ address = \"10.1.0.11\", mode = \"$mode\" }, { address = \"10.1.0.12\", mode = \"$mode\" }]" >/dev/null
        measure "lbd $mode ($LAB_DRIVER)" 10.0.0.100 5201 http://10.0.0.100/
        lbd_counters "lbd $mode ($LAB_DRIVER)"
    )
done

( # lbd direct routing: one segment, the backends hold the VIP
    LAB_ID=$(printf "%04x" $(( ($$ * 8 + 5) & 0xffff )))
    source tests/lab/lab.sh
    lab_setup one-armed; backend_http
    for i in 1 2; do backend_holds_vip "$(ns_b "$i")" 10.0.0.100; done
    lab_start_lbd '[[service]]
vip = "10.0.0.100"
port = 8081
scheduler = "rr"
backend = [{ address = "10.0.0.11", mode = "dr" }, { address = "10.0.0.12", mode = "dr" }]
[[service]]
vip = "10.0.0.100"
port = 5201
scheduler = "sh"
backend = [{ address = "10.0.0.11", mode = "dr" }, { address = "10.0.0.12", mode = "dr" }]' >/dev/null
    measure "lbd dr (af_packet)" 10.0.0.100 5201 http://10.0.0.100:8081/
    lbd_counters "lbd dr (af_packet)"
)

echo
echo "What each lbd counted, printed as it stopped:"
cat "$COUNTERS"

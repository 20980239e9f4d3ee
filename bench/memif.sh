#!/usr/bin/env bash
# perf.md #2, the worker's cost on real DPDK ports. A generator polls on core 0 and sends over
# net_memif to lbd, whose one worker polls on core 1; lbd forwards to a backend whose MAC is the
# generator's, so everything comes back and is counted. For every run it prints offered and
# forwarded Mpps, loss, the worker's busy fraction and cycles/packet (from lbd's TSC counters)
# and the capacity they imply (forwarded / busy fraction). References in the same script:
# testpmd flowgen -> testpmd macswap (DPDK's own loop on the same ports) and lbgen -> macswap
# (the generator's own ceiling). Generators are the memif servers and start first; lbd (and
# macswap in its place) is the client: DPDK 22.11's memif server can crash when its client
# leaves mid-burst, a client survives its server leaving. Needs root (hugepages); ~3 minutes.
# The full-NAT flow sweep is also written to bench/results/memif-fnat-flows.csv (bench/plot.py).
#   bench/memif.sh            all runs, a markdown table on stdout
#   LB_BENCH_SECONDS=2 bench/memif.sh
#   LB_BENCH_ONLY=fnat-1m LBD=/path/to/other/lbd bench/memif.sh   (references + fnat at 1M flows)
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_SECONDS=${LB_BENCH_SECONDS:-5}
ID="lbm$$"
WORK=$(mktemp -d "/tmp/lb-memif-bench.XXXXXX")
SOCK="$WORK/memif.sock"
METRICS_PORT=$((20000 + $$ % 20000))
LBD_MAC="00:01:02:03:04:01"   # testpmd flowgen's fixed destination MAC
GEN_MAC="00:01:02:03:04:00"   # and its source MAC; lbgen's port takes it too
pids=()

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
    # EAL runtime directories of this run's DPDK processes (testpmd leaves its own when stopped).
    rm -rf /var/run/dpdk/"$ID"{fg,gen,ref,lbd}
}
trap cleanup EXIT INT TERM

if [ "$(id -u)" -eq 0 ] && [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -lt 256 ]; then
    echo 512 > /proc/sys/vm/nr_hugepages || true
fi
# lbd's EAL maps its hugepages from the mount (testpmd and lbgen run --in-memory).
if [ "$(id -u)" -eq 0 ]; then
    mountpoint -q /dev/hugepages || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } || true
fi
HUGE_ARGS=(--in-memory -m 256)
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || HUGE_ARGS=(--no-huge -m 1024)

cargo build --release -q -p lbd -p lb-bench --bin lbd --bin lbgen
# LBD=path runs another build of lbd (a before/after comparison in one script).
LBD=${LBD:-target/release/lbd}
LBGEN=target/release/lbgen
SERVER_DEV="net_memif0,role=server,socket=$SOCK,socket-abstract=no,id=0"
CLIENT_DEV="net_memif0,role=client,socket=$SOCK,socket-abstract=no,id=0"

# Full-NAT needs a local address per ~60k concurrent connections to one backend.
LOCALS=$(seq -s, -f '"10.253.254.%g"' 1 100)

# lbd with one service per mode on 10.253.0.{0..4} port 1001, UDP and TCP, one backend each.
# ZERO_COPY=1 makes lbd's port memif zero-copy (its mbufs are the shared buffers; needs
# --single-file-segments).
start_lbd() { # CAPACITY
    local cap=$1 zc="" eal_extra="[]"
    if [ "${ZERO_COPY:-0}" = 1 ]; then zc=",zero-copy=yes"; eal_extra='["--single-file-segments"]'; fi
    cat > "$WORK/lbd.toml" <<EOF
[eal]
file_prefix = "${ID}lbd"
main_core = 0
extra = $eal_extra
[workers]
cores = [1]
mbufs = 16383
[conntrack]
capacity = $cap
embryonic_limit = $cap
[control]
socket = "$WORK/lbd.sock"
metrics = "127.0.0.1:$METRICS_PORT"
[network]
local_addresses = [$LOCALS]
[[network.interface]]
name = "gen"
device = "$CLIENT_DEV$zc,mac=$LBD_MAC"
addresses = ["10.253.255.1/16"]
[[network.neighbour]]
address = "10.253.1.1"
mac = "$GEN_MAC"
interface = "gen"
EOF
    local i=0
    for mode in nat fnat dr tun gue; do
        for proto in udp tcp; do
            local port=2001
            case $mode in dr|tun|gue) port=0 ;; esac
            local extra=""
            [ "$mode" = gue ] && extra=", gue_port = 6080"
            printf '[[service]]\nvip = "10.253.0.%d"\nport = 1001\nprotocol = "%s"\nbackend = [{ address = "10.253.1.1", port = %d, mode = "%s"%s }]\n' \
                "$i" "$proto" "$port" "$mode" "$extra" >> "$WORK/lbd.toml"
        done
        i=$((i + 1))
    done
    "$LBD" --config "$WORK/lbd.toml" > "$WORK/lbd.out" 2>&1 &
    LBD_PID=$!
    pids+=("$LBD_PID")
    for _ in $(seq 100); do
        metric lbd_rx_packets_total > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "lbd did not start:" >&2
    cat "$WORK/lbd.out" >&2
    exit 1
}

# A memif server's socket exists from its EAL init, but it refuses clients until its port has
# started, and a refused DPDK 22.11 client never retries: wait for the line that says started.
wait_for_server() { # OUTPUT-FILE PATTERN
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "the memif server did not start its port ($1):" >&2
    cat "$1" >&2
    exit 1
}

stop_lbd() {
    kill "$LBD_PID" 2>/dev/null || true
    wait "$LBD_PID" 2>/dev/null || true
}

metric() { # NAME -> the sum over workers
    curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {if (NR == 0) exit 1; printf "%.0f\n", s}'
}

counters() { # -> "rx busy drops refused hz" of the running (fresh) lbd
    echo "$(metric lbd_rx_packets_total) $(metric lbd_busy_cycles_total) $(metric lbd_drops_total) \
$(metric lbd_tx_refused_total) $(metric lbd_tsc_hz)"
}

kv() { # KEY LINE -> value of KEY=... in LINE
    tr ' ' '\n' <<< "$2" | awk -F= -v k="$1" '$1 == k {print $2}'
}

echo "| run | generator | offered Mpps | forwarded Mpps | loss | lbd busy | cycles/packet | capacity Mpps | latency p50/p99 us |"
echo "|---|---|---|---|---|---|---|---|---|"

# One lbd run: NAME CAPACITY LBGEN-ARGS... lbd is fresh, so its counters are the run's.
lbd_run() {
    local name=$1 cap=$2
    shift 2
    rm -f "$SOCK" "$WORK/gen.out"
    "$LBGEN" --device "$SERVER_DEV,mac=$GEN_MAC" --file-prefix "${ID}gen" --core 0 --dst-mac "$LBD_MAC" \
        --seconds "$RUN_SECONDS" "$@" > "$WORK/gen.out" 2> "$WORK/gen.err" &
    local gen=$!
    pids+=("$gen")
    wait_for_server "$WORK/gen.out" "^lbgen: .* started"
    start_lbd "$cap"
    wait "$gen" || { cat "$WORK/gen.err" >&2; exit 1; }
    local after line
    after=$(counters)
    line=$(tail -1 "$WORK/gen.out")
    stop_lbd
    python3 - "$name" "$line" "$after" "$WORK/runs.csv" <<'EOF'
import sys
name, line, after, csv = sys.argv[1:]
g = dict(kv.split("=") for kv in line.split()[1:])
a = [int(x) for x in after.split()]
rx, busy, drops, refused, hz = a
if rx == 0:
    # lbd's worker never polled a packet while the generator sent (it started too late).
    print(f"| {name} | lbgen | {float(g['offered_mpps']):.2f} | 0 | all | - | - | - | lbd received nothing |")
    sys.exit(0)
# Busy fraction over the sending time only (lbd idles while the generator starts and drains).
frac = min(1.0, busy / (float(g["seconds"]) * hz))
cpp = busy / max(rx, 1)
fwd = float(g["received_mpps"])
lost = int(g["sent"]) - int(g["received"])
with open(csv, "a") as f:
    f.write(f"{name},{fwd:.3f},{cpp:.0f},{hz / cpp / 1e6:.3f}\n")
print(f"| {name} | lbgen | {float(g['offered_mpps']):.2f} | {fwd:.2f} | {lost} ({drops} dropped, {refused} TX-refused by lbd) "
      f"| {100 * frac:.0f}% | {cpp:.0f} | {fwd / max(frac, 1e-9):.2f} | {float(g['lat_p50_us']):.0f}/{float(g['lat_p99_us']):.0f} |")
EOF
}

# testpmd in macswap (lbd's place), interactive: it forwards SECONDS, prints its counters, quits.
testpmd() { # DEV CORE PREFIX SECONDS ARGS...
    local dev=$1 core=$2 prefix=$3 secs=$4
    shift 4
    local main=$((1 - core))
    (sleep "$secs"; echo "show port stats all"; sleep 0.5; echo quit) |
        dpdk-testpmd -l 0,1 --main-lcore "$main" "${HUGE_ARGS[@]}" --file-prefix "$prefix" --vdev "$dev" -- -i \
            --auto-start --total-num-mbufs=16384 "$@" 2>&1
}

# testpmd flowgen (4 flows to 4 VIPs) on core 0 for SECONDS, printing its rates every second.
flowgen() { # DEV PREFIX SECONDS
    timeout -s INT "$3" stdbuf -oL dpdk-testpmd -l 0,1 --main-lcore 1 "${HUGE_ARGS[@]}" --file-prefix "$2" --vdev "$1" -- \
        --auto-start --stats-period=1 --total-num-mbufs=16384 --forward-mode=flowgen --flowgen-flows=4 --txpkts=64 2>&1
}

median_pps() { # FIELD (Tx-pps or Rx-pps) < testpmd output -> median of the non-zero per-second rates, in Mpps
    awk -v f="$1:" '$1 == f && $2 > 0 {print $2}' | sort -n | awk '{v[NR] = $1} END {if (NR) printf "%.2f", v[int((NR + 1) / 2)] / 1e6; else print "0"}'
}

# Reference 1: testpmd flowgen -> testpmd macswap.
rm -f "$SOCK" "$WORK/fg.out"
flowgen "$SERVER_DEV" "${ID}fg" $((RUN_SECONDS + 3)) > "$WORK/fg.out" &
pids+=($!)
wait_for_server "$WORK/fg.out" "^Port 0: "
testpmd "$CLIENT_DEV" 1 "${ID}ref" $((RUN_SECONDS + 4)) --forward-mode=macswap > /dev/null || true
wait "${pids[-1]}" 2>/dev/null || true
echo "| reference: macswap | testpmd flowgen | $(median_pps Tx-pps < "$WORK/fg.out") | $(median_pps Rx-pps < "$WORK/fg.out") | - | 100% | - | - | - |"

# Reference 2: lbgen -> testpmd macswap (the generator's own ceiling).
rm -f "$SOCK" "$WORK/gen.out"
"$LBGEN" --device "$SERVER_DEV,mac=$GEN_MAC" --file-prefix "${ID}gen" --core 0 --seconds "$RUN_SECONDS" --flows 1000 \
    > "$WORK/gen.out" 2> "$WORK/gen.err" &
pids+=($!)
wait_for_server "$WORK/gen.out" "^lbgen: .* started"
testpmd "$CLIENT_DEV,mac=$LBD_MAC" 1 "${ID}ref" $((RUN_SECONDS + 4)) --forward-mode=macswap > /dev/null || true
wait "${pids[-1]}" 2>/dev/null || true
line=$(tail -1 "$WORK/gen.out")
echo "| reference: macswap | lbgen | $(kv offered_mpps "$line") | $(kv received_mpps "$line") | $(kv lost "$line") | 100% | - | - | $(kv lat_p50_us "$line")/$(kv lat_p99_us "$line") |"

NAT=10.253.0.0 FNAT=10.253.0.1 DR=10.253.0.2 TUN=10.253.0.3
# LB_BENCH_ONLY=fnat-1m: after the references, only full-NAT at 1M flows, three rounds.
if [ "${LB_BENCH_ONLY:-}" = fnat-1m ]; then
    for round in 1 2 3; do
        lbd_run "lbd fnat tcp 1000000 flows (round $round)" 1501024 --flows 1000000 --proto tcp --vip $FNAT
    done
    exit 0
fi

# lbd with testpmd flowgen as the generator (cycles per packet from lbd's counters).
rm -f "$SOCK" "$WORK/fg.out"
flowgen "$SERVER_DEV" "${ID}fg" $((RUN_SECONDS + 3)) > "$WORK/fg.out" &
fg=$!
pids+=("$fg")
wait_for_server "$WORK/fg.out" "^Port 0: "
start_lbd 65536
wait "$fg" || true
after=$(counters)
stop_lbd
python3 - "$(median_pps Tx-pps < "$WORK/fg.out")" "$(median_pps Rx-pps < "$WORK/fg.out")" "$after" <<'EOF'
import sys
offered, fwd = float(sys.argv[1]), float(sys.argv[2])
a = [int(x) for x in sys.argv[3].split()]
rx, busy, hz = a[0], a[1], a[4]
cpp = busy / max(rx, 1)
frac = fwd * 1e6 * cpp / hz
print(f"| lbd udp 4 flows nat/fnat/dr/tun | testpmd flowgen | {offered:.2f} | {fwd:.2f} | back-pressure | {100 * min(frac, 1):.0f}% "
      f"| {cpp:.0f} | {hz / cpp / 1e6:.2f} | - |")
EOF

lbd_run "lbd nat udp 1k flows" 65536 --flows 1000 --vip $NAT
lbd_run "lbd fnat udp 1k flows" 65536 --flows 1000 --vip $FNAT
lbd_run "lbd dr udp 1k flows" 65536 --flows 1000 --vip $DR
lbd_run "lbd tun udp 1k flows" 65536 --flows 1000 --vip $TUN
# The flow sweep, three rounds (this VM's speed drifts within minutes; the plot takes the best).
for round in 1 2 3; do
    for flows in 1000 10000 100000 1000000; do
        lbd_run "lbd fnat tcp $flows flows (round $round)" $((flows + flows / 2 + 1024)) --flows "$flows" --proto tcp --vip $FNAT
    done
done
lbd_run "lbd nat tcp 1M flows" 2097152 --flows 1000000 --proto tcp --vip $NAT
lbd_run "lbd fnat tcp SYN, every packet a new flow (4M)" 4194304 --flows 4000000 --count 4000000 --proto tcp --syn --vip $FNAT
lbd_run "lbd nat udp 1k flows, 1500 B" 65536 --flows 1000 --size 1500 --vip $NAT
lbd_run "lbd nat udp 1k flows, paced 1 Mpps" 65536 --flows 1000 --rate 1 --vip $NAT
ZERO_COPY=1 lbd_run "lbd nat udp 1k flows, memif zero-copy" 65536 --flows 1000 --vip $NAT
ZERO_COPY=1 lbd_run "lbd fnat tcp 1M flows, memif zero-copy" 2097152 --flows 1000000 --proto tcp --vip $FNAT

# The flow sweep for bench/plot.py.
mkdir -p bench/results
{
    echo "flows,forwarded_mpps,cycles_per_packet,capacity_mpps"
    # Per flow count, the round with the fewest cycles per packet (the least disturbed).
    grep '^lbd fnat tcp [0-9]* flows (round' "$WORK/runs.csv" | sed -E 's/^lbd fnat tcp ([0-9]+) flows \(round [0-9]\),/\1,/' |
        sort -t, -k1,1n -k3,3n | awk -F, '!seen[$1]++'
} > bench/results/memif-fnat-flows.csv

#!/usr/bin/env bash
# Network-namespace lab for lbd: a client, the LB, and backends behind a bridge, joined by veth
# pairs; real servers in the backends (an HTTP server whose body names the backend, iperf3),
# lbd on AF_XDP (or AF_PACKET) ports in the LB namespace. Every name carries the run's id, so
# runs never collide, and everything is removed on exit, also after a failure.
#
# Source it, then: lab_setup two-armed|one-armed; lab_start_lbd CONFIG_SNIPPET; ...; the EXIT
# trap calls lab_cleanup. Only processes started here are ended, by PID.

set -euo pipefail
LAB_ID=${LAB_ID:-$(printf '%04x' $((RANDOM ^ $$)))}
LAB_DIR=$(mktemp -d "/tmp/lblab-$LAB_ID.XXXX")
NS_C=lbc$LAB_ID NS_L=lbl$LAB_ID NS_BR=lbr$LAB_ID
LAB_BACKENDS=${LAB_BACKENDS:-2}
# AF_PACKET by default: AF_XDP on veth loses part of bulk backend-to-client traffic in the
# kernel (xsk rx_dropped) on these machines; the `xdp` scenario still runs lbd on AF_XDP.
LAB_DRIVER=${LAB_DRIVER:-af_packet}
LAB_PIDS=()
# The HTTP server of each backend, by backend number (lab_http_kill / lab_http_start).
declare -A LAB_HTTP_PIDS=()
LBD_PID=
LBD=${LBD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/target/debug/lbd}

ns_b() { echo "lbb$1$LAB_ID"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

lab_cleanup() {
    set +e
    [ -n "$LBD_PID" ] && kill -TERM "$LBD_PID" 2>/dev/null && wait "$LBD_PID" 2>/dev/null
    for p in "${LAB_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${LAB_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "$NS_C" "$NS_L" "$NS_BR" $(for i in $(seq 1 "$LAB_BACKENDS"); do ns_b "$i"; done); do
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$LAB_DIR" "/var/run/dpdk/lblab$LAB_ID"
}
trap lab_cleanup EXIT
trap 'exit 130' INT TERM

# Remove what a killed run of the same id left behind (namespaces and EAL files).
for ns in "$NS_C" "$NS_L" "$NS_BR"; do ip netns del "$ns" 2>/dev/null || true; done

quiet_link() {
    # No offloads: a real NIC never hands a packet-level LB 64 KB super-frames.
    local ns=$1 dev=$2
    in_ns "$ns" ethtool -K "$dev" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    in_ns "$ns" ip link set "$dev" up
}

# two-armed: client -- [l0 LB l1] -- bridge -- backends (nat, fnat; backends route via the LB)
# one-armed: client and backends on one bridge with the LB's l0 (dr, tun, gue)
lab_setup() {
    local shape=$1
    for ns in "$NS_C" "$NS_L" "$NS_BR" $(for i in $(seq 1 "$LAB_BACKENDS"); do ns_b "$i"; done); do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
    done
    in_ns "$NS_BR" ip link add br0 type bridge
    in_ns "$NS_BR" ip link set br0 up
    # A plain switch: with br_netfilter, bridged IPv4 would be validated (header checksum,
    # lengths), defragmented and dropped by the bridge's netfilter hooks, hiding what the LB
    # passes on to the backends.
    for t in iptables ip6tables arptables; do
        in_ns "$NS_BR" sysctl -qw "net.bridge.bridge-nf-call-$t=0" 2>/dev/null || true
    done
    ip link add "l0$LAB_ID" type veth peer name "c$LAB_ID"
    ip link set "l0$LAB_ID" netns "$NS_L"
    if [ "$shape" = two-armed ]; then
        ip link set "c$LAB_ID" netns "$NS_C"
        ip link add "l1$LAB_ID" type veth peer name "p1$LAB_ID"
        ip link set "l1$LAB_ID" netns "$NS_L"
        ip link set "p1$LAB_ID" netns "$NS_BR"
        in_ns "$NS_BR" ip link set "p1$LAB_ID" master br0
        quiet_link "$NS_BR" "p1$LAB_ID"
        quiet_link "$NS_L" "l1$LAB_ID"
        in_ns "$NS_C" ip addr add 10.0.0.2/24 dev "c$LAB_ID"
        in_ns "$NS_C" ip -6 addr add fd00::2/64 dev "c$LAB_ID" nodad
        quiet_link "$NS_C" "c$LAB_ID"
    else
        # One segment: the client hangs off the bridge too.
        ip link set "c$LAB_ID" netns "$NS_BR"
        in_ns "$NS_BR" ip link set "c$LAB_ID" master br0
        quiet_link "$NS_BR" "c$LAB_ID"
        ip link add "cl$LAB_ID" type veth peer name "pc$LAB_ID"
        ip link set "cl$LAB_ID" netns "$NS_C"
        ip link set "pc$LAB_ID" netns "$NS_BR"
        in_ns "$NS_BR" ip link set "pc$LAB_ID" master br0
        quiet_link "$NS_BR" "pc$LAB_ID"
        in_ns "$NS_C" ip addr add 10.0.0.2/24 dev "cl$LAB_ID"
        in_ns "$NS_C" ip -6 addr add fd00::2/64 dev "cl$LAB_ID" nodad
        quiet_link "$NS_C" "cl$LAB_ID"
    fi
    quiet_link "$NS_L" "l0$LAB_ID"
    for i in $(seq 1 "$LAB_BACKENDS"); do
        local ns; ns=$(ns_b "$i")
        ip link add "b$i$LAB_ID" type veth peer name "pb$i$LAB_ID"
        ip link set "b$i$LAB_ID" netns "$ns"
        ip link set "pb$i$LAB_ID" netns "$NS_BR"
        in_ns "$NS_BR" ip link set "pb$i$LAB_ID" master br0
        quiet_link "$NS_BR" "pb$i$LAB_ID"
        if [ "$shape" = two-armed ]; then
            in_ns "$ns" ip addr add "10.1.0.1$i/24" dev "b$i$LAB_ID"
            in_ns "$ns" ip -6 addr add "fd01::1$i/64" dev "b$i$LAB_ID" nodad
            quiet_link "$ns" "b$i$LAB_ID"
            in_ns "$ns" ip route add default via 10.1.0.1
            in_ns "$ns" ip -6 route add default via fd01::1
        else
            in_ns "$ns" ip addr add "10.0.0.1$i/24" dev "b$i$LAB_ID"
            in_ns "$ns" ip -6 addr add "fd00::1$i/64" dev "b$i$LAB_ID" nodad
            quiet_link "$ns" "b$i$LAB_ID"
        fi
        mkdir -p "$LAB_DIR/www$i"
        echo "backend-$i" > "$LAB_DIR/www$i/index.html"
        # `ip netns exec` execs the program, so $! is the server's own PID (a function run
        # with & would give a subshell's).
        lab_http_start "$i"
        ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 &
        LAB_PIDS+=($!)
    done
    # The LB's kernel stays quiet on its data interfaces: no addresses, no forwarding.
    in_ns "$NS_L" sysctl -qw net.ipv4.ip_forward=0
    in_ns "$NS_L" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    LAB_SHAPE=$shape
}

# Starts backend I's HTTP server (its body names the backend) on port 8080.
lab_http_start() {
    local i=$1
    ip netns exec "$(ns_b "$i")" python3 -m http.server 8080 --bind :: --directory "$LAB_DIR/www$i" >/dev/null 2>&1 &
    LAB_PIDS+=($!)
    LAB_HTTP_PIDS[$i]=$!
}

# Ends backend I's HTTP server (its kernel then answers SYNs to 8080 with RSTs).
lab_http_kill() {
    local i=$1
    kill "${LAB_HTTP_PIDS[$i]}" 2>/dev/null || true
    wait "${LAB_HTTP_PIDS[$i]}" 2>/dev/null || true
}

# Backends of the one-armed modes hold the VIP themselves and must not answer ARP for it.
backend_holds_vip() {
    local ns=$1 vip=$2
    in_ns "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    in_ns "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    case $vip in
        *:*) in_ns "$ns" ip -6 addr add "$vip/128" dev lo ;;
        *) in_ns "$ns" ip addr add "$vip/32" dev lo ;;
    esac
}

# Starts lbd in the LB namespace with the lab's interfaces and the given [[service]] TOML.
lab_start_lbd() {
    local services=$1 metrics=${2:-19$((RANDOM % 900 + 100))}
    local dev0 dev1
    if [ "$LAB_DRIVER" = af_packet ]; then
        # DPDK's default AF_PACKET ring (512 frames) overflows under a few TCP streams, and the
        # kernel drops into a full ring silently: 4096 frames took iperf3's retransmissions
        # through lbd from ~40,000 to 0 (bench/RESULTS.md).
        local ring=${LAB_PACKET_ARGS-,framecnt=4096}
        dev0="net_af_packet0,iface=l0$LAB_ID$ring"; dev1="net_af_packet1,iface=l1$LAB_ID$ring"
    else
        dev0="net_af_xdp0,iface=l0$LAB_ID${LAB_XDP_ARGS:-}"; dev1="net_af_xdp1,iface=l1$LAB_ID${LAB_XDP_ARGS:-}"
    fi
    LAB_METRICS=127.0.0.1:$metrics
    if [ -n "${LAB_CONFIG:-}" ]; then
        # A config file of the user's, with the run's names filled in.
        sed -e "s|@PREFIX@|lblab$LAB_ID|" -e "s|@SOCKET@|$LAB_DIR/lbd.sock|" -e "s|@METRICS@|$LAB_METRICS|" \
            -e "s|@DEV0@|$dev0|" -e "s|@DEV1@|$dev1|" "$LAB_CONFIG" > "$LAB_DIR/lbd.toml"
        echo "$services" >> "$LAB_DIR/lbd.toml"
    else
    {
        echo "[eal]"; echo "file_prefix = \"lblab$LAB_ID\""; echo "no_huge = true"; echo "memory_mb = 512"
        echo "[workers]"; echo "cores = [1]"; echo "mbufs = ${LAB_MBUFS:-8191}"; echo "descriptors = ${LAB_DESCRIPTORS:-1024}"; echo "poll = \"${LAB_POLL:-busy}\""
        echo "[conntrack]"; echo "capacity = ${LAB_CAPACITY:-65536}"; echo "embryonic_limit = ${LAB_EMBRYONIC:-32768}"
        echo "[control]"; echo "metrics = \"$LAB_METRICS\""; echo "socket = \"$LAB_DIR/lbd.sock\""
        # LAB_EXCEPTION=1: every port gets its kernel interface (the exception path).
        local exc=""
        if [ "${LAB_EXCEPTION:-0}" = 1 ]; then
            exc="exception = true"
            echo "[exception]"; echo "rate = ${LAB_EXCEPTION_RATE:-20000}"; echo "burst = ${LAB_EXCEPTION_BURST:-512}"
        fi
        echo "[network]"; echo "local_addresses = [\"10.1.0.254\", \"fd01::fe\"]"
        echo "[[network.interface]]"; echo "name = \"client\""; echo "device = \"$dev0\""; echo "$exc"
        if [ "$LAB_SHAPE" = two-armed ]; then
            echo "addresses = [\"10.0.0.1/24\", \"fd00::1/64\"]"
            echo "[[network.interface]]"; echo "name = \"backend\""; echo "device = \"$dev1\""; echo "$exc"
            echo "addresses = [\"10.1.0.1/24\", \"fd01::1/64\"]"
        else
            echo "addresses = [\"10.0.0.1/24\", \"fd00::1/64\"]"
        fi
        echo "$services"
    } > "$LAB_DIR/lbd.toml"
    fi
    ip netns exec "$NS_L" "$LBD" --config "$LAB_DIR/lbd.toml" > "$LAB_DIR/lbd.log" 2>&1 &
    LBD_PID=$!
    for _ in $(seq 1 100); do
        grep -q "lbd: running" "$LAB_DIR/lbd.log" && return 0
        kill -0 "$LBD_PID" 2>/dev/null || { cat "$LAB_DIR/lbd.log" >&2; LBD_PID=; return 1; }
        sleep 0.1
    done
    cat "$LAB_DIR/lbd.log" >&2
    return 1
}

lab_stop_lbd() {
    kill -TERM "$LBD_PID"; wait "$LBD_PID" || true; LBD_PID=
    cat "$LAB_DIR/lbd.log"
}

# curl from the client N times; prints the backend names, one per line.
# Prometheus metrics of the running lbd (served on the LB namespace's loopback).
lab_metrics() {
    in_ns "$NS_L" curl -s -m 3 "http://$LAB_METRICS/metrics"
}

lab_curl() {
    local url=$1 n=$2
    for _ in $(seq 1 "$n"); do
        in_ns "$NS_C" curl -s --max-time 5 -g "$url" || echo "curl-failed"
    done
}

# ---- Helpers of the hostile-network scenarios (spoof, arpflood, cksum, storm).

# Debian's python3, which has python3-scapy (a pyenv or venv python3 on PATH may not).
LAB_PY=${LAB_PY:-/usr/bin/python3}
LAB_HOSTILE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/hostile.py"

# The MAC of interface IF in namespace NS.
lab_mac() { in_ns "$1" cat "/sys/class/net/$2/address"; }

# The LB's MAC on DPDK port N, from lbd's start-up log.
lab_lb_mac() { sed -nE "/^lbd: port $1 .* mac /{s/.* mac ([0-9a-fA-F:]{17}) .*/\1/p;q}" "$LAB_DIR/lbd.log"; }

# Runs `hostile.py ARGS...` in namespace NS in the background, output to OUT; sets LAB_BG_PID
# (the helper's own PID: `ip netns exec` execs it) and records it for the cleanup.
lab_bg_hostile() {
    local ns=$1 out=$2; shift 2
    ip netns exec "$ns" "$LAB_PY" "$LAB_HOSTILE" "$@" > "$out" 2>&1 &
    LAB_BG_PID=$!
    LAB_PIDS+=("$LAB_BG_PID")
}

# A TCP echo server (hostile.py echo-server) on PORT in every backend.
lab_echo_servers() {
    local port=$1 i
    for i in $(seq 1 "$LAB_BACKENDS"); do
        lab_bg_hostile "$(ns_b "$i")" "$LAB_DIR/echo-server$i.log" echo-server --port "$port"
    done
}

# Waits up to SECONDS for FILE to contain PATTERN (a helper's "ready" line).
lab_wait_for() {
    local file=$1 pattern=$2 secs=${3:-10} _
    for _ in $(seq 1 $((secs * 10))); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Ends a background helper started here (by PID) and waits for it; returns its exit status.
lab_end() {
    local pid=$1 rc=0
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || rc=$?
    return "$rc"
}

# Sum of the samples of Prometheus metric NAME whose labels contain FILTER (every sample
# without one); prints nothing when lbd exports no such metric.
lab_metric_sum() {
    local name=$1 filter=${2:-}
    lab_metrics | awk -v n="$name" -v f="$filter" '
        /^#/ { next }
        { m = $1; sub(/\{.*/, "", m) }
        m == n && index($1, f) { s += $NF; found = 1 }
        END { if (found) printf "%d\n", s }'
}

# lbd's drop counters, summed over workers: "reason count" lines, non-zero ones only.
lab_drops_by_reason() {
    lab_metrics | awk '
        /^lbd_drops_total\{/ && match($1, /reason="[^"]*"/) {
            r = substr($1, RSTART + 8, RLENGTH - 9); s[r] += $NF
        }
        END { for (r in s) if (s[r] > 0) print r, s[r] }' | sort -k2,2nr
}

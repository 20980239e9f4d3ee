#!/usr/bin/env bash
# Scale-out demo and test (issue 13): N lbd nodes behind a router that spreads a VIP's packets
# by ECMP; each node announces the VIP by BGP (BIRD) while a service of it is up, through its
# exception path, with BFD; every node holds the same Maglev table (same maglev_seed), so a
# flow that ECMP moves to another node still reaches its backend.
#
#   scripts/scale-out-demo.sh            the whole story: spread, kill -9 a node, a fourth node
#                                        joins, drain a node, restart a node with --takeover,
#                                        every backend fails; prints what happens and exits
#                                        non-zero if a check fails
#   SCALE_CONNS=1000 SCALE_MODE=dr|tun|nat|fnat
#                                        connections held through the kill, forwarding mode (tun
#                                        decapsulates in user space, tests/lab/ipipd.py, where
#                                        the kernel has no ipip module)
#
# nat and fnat keep their flows through connection sync ([sync]: every node sends its
# connections to the others), since the echo service uses round robin, which no other node
# could repeat. fnat: node i's local address 10.9.8.i is announced by node i and, with a longer
# AS path, by every other node as its backup; backends reach it through the router. nat: the
# backends' replies to clients go through the router, which sends them (policy routing, table
# 100) to the nodes by ECMP over a 10.8.0.0/24 route every node announces; any node un-NATs
# them, from its synced entry or statelessly.
#
# Topology (network namespaces, every name carries the run's id; all removed on exit):
#   client (10.8.0.2 + 10.8.0.100-199) -- router (BIRD, ECMP, L4 hash) -- bridge 10.9.0.0/24
#   bridge: lbd nodes 10.9.0.11-14 (AF_PACKET ports, adaptive polling), backends 10.9.0.21-23
#   VIP 10.9.9.9 (echo on 7000, iperf3 on 5201), VIP 10.9.9.10 (HTTP on 8080, tcp checked).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LBD=${LBD:-$ROOT/target/debug/lbd}
LBCTL=${LBCTL:-$ROOT/target/debug/lbctl}
ID=${SCALE_ID:-$(printf '%04x' $((RANDOM ^ $$)))}
DIR=$(mktemp -d "/tmp/lbscale-$ID.XXXX")
CONNS=${SCALE_CONNS:-1000}
MODE=${SCALE_MODE:-dr}
PY=${LAB_PY:-/usr/bin/python3}
NS_C=soc$ID NS_R=sor$ID NS_BR=sob$ID
node_ns() { echo "son$1$ID"; }
back_ns() { echo "sok$1$ID"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
PIDS=()
declare -A LBD_PIDS=() BIRD_PIDS=()

fail() { echo "FAIL [scale-out]: $*" >&2; for f in "$DIR"/lbd*.log; do echo "--- $f" >&2; tail -20 "$f" >&2; done; exit 1; }
check() { echo "ok [scale-out]: $*"; }
say() { echo; echo "== $*"; }

cleanup() {
    set +e
    for i in "${!LBD_PIDS[@]}"; do kill -TERM "${LBD_PIDS[$i]}" 2>/dev/null; done
    for i in "${!BIRD_PIDS[@]}"; do kill -TERM "${BIRD_PIDS[$i]}" 2>/dev/null; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for i in "${!LBD_PIDS[@]}"; do wait "${LBD_PIDS[$i]}" 2>/dev/null; done
    for p in "${PIDS[@]}" "${BIRD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    for ns in "$NS_C" "$NS_R" "$NS_BR" $(for i in 1 2 3 4; do node_ns "$i"; done) $(for i in 1 2 3; do back_ns "$i"; done); do
        ip netns del "$ns" 2>/dev/null
    done
    for i in 1 2 3 4; do rm -rf "/var/run/dpdk/so$ID-n$i"; done
    [ -n "${SCALE_KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

quiet_link() {
    in_ns "$1" ethtool -K "$2" tso off gso off gro off tx off rx off >/dev/null 2>&1 || true
    in_ns "$1" ip link set "$2" up
}

# A veth from namespace NS (interface IF) into the bridge.
to_bridge() {
    local ns=$1 itf=$2 peer=$3
    ip link add "$itf" type veth peer name "$peer"
    ip link set "$itf" netns "$ns"
    ip link set "$peer" netns "$NS_BR"
    in_ns "$NS_BR" ip link set "$peer" master br0
    quiet_link "$NS_BR" "$peer"
    quiet_link "$ns" "$itf"
}

setup() {
    for ns in "$NS_C" "$NS_R" "$NS_BR" $(for i in 1 2 3 4; do node_ns "$i"; done) $(for i in 1 2 3; do back_ns "$i"; done); do
        ip netns add "$ns"
        in_ns "$ns" ip link set lo up
    done
    in_ns "$NS_BR" ip link add br0 type bridge
    in_ns "$NS_BR" ip link set br0 up
    for t in iptables ip6tables arptables; do in_ns "$NS_BR" sysctl -qw "net.bridge.bridge-nf-call-$t=0" 2>/dev/null || true; done
    # Client and router.
    ip link add "c$ID" type veth peer name "rc$ID"
    ip link set "c$ID" netns "$NS_C"; ip link set "rc$ID" netns "$NS_R"
    quiet_link "$NS_C" "c$ID"; quiet_link "$NS_R" "rc$ID"
    in_ns "$NS_C" ip addr add 10.8.0.2/24 dev "c$ID"
    for x in $(seq 100 199); do in_ns "$NS_C" ip addr add "10.8.0.$x/24" dev "c$ID"; done
    in_ns "$NS_C" ip route add default via 10.8.0.1
    in_ns "$NS_R" ip addr add 10.8.0.1/24 dev "rc$ID"
    to_bridge "$NS_R" "rb$ID" "brr$ID"
    in_ns "$NS_R" ip addr add 10.9.0.1/24 dev "rb$ID"
    in_ns "$NS_R" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    # ECMP over the nodes by the L4 hash, so one client's connections spread too.
    in_ns "$NS_R" sysctl -qw net.ipv4.fib_multipath_hash_policy=1
    # The router forwards backends' replies back onto the segment they came from: no redirect.
    in_ns "$NS_R" sysctl -qw net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
        "net.ipv4.conf.rb$ID.send_redirects=0"
    # nat: backends' replies to clients go to the nodes (table 100, from BGP).
    [ "$MODE" = nat ] && in_ns "$NS_R" ip rule add iif "rb$ID" from 10.9.0.20/30 to 10.8.0.0/24 lookup 100 pref 100
    # Nodes: one port each into the bridge. AF_PACKET does not take the frames from the kernel,
    # and the node's kernel holds the VIPs (on lbd's exception interface, for BIRD): it must not
    # answer what arrives on the port lbd drives (a real NIC bound to DPDK, or AF_XDP, never
    # shows it the frames).
    for i in 1 2 3 4; do
        local ns; ns=$(node_ns "$i")
        to_bridge "$ns" "u$i$ID" "bu$i$ID"
        in_ns "$ns" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.disable_ipv6=1 \
            net.ipv4.conf.all.arp_ignore=1 "net.ipv4.conf.u$i$ID.arp_ignore=8"
        echo "table inet lbport { chain input { type filter hook input priority -300; iifname \"u$i$ID\" drop; }; }" |
            in_ns "$ns" nft -f -
    done
    # Backends: the VIPs on lo (dr: they answer for them; tun: they decapsulate), replies
    # straight to the router.
    for i in 1 2 3; do
        local ns; ns=$(back_ns "$i")
        to_bridge "$ns" "k$i$ID" "bk$i$ID"
        in_ns "$ns" ip addr add "10.9.0.2$i/24" dev "k$i$ID"
        in_ns "$ns" ip route add default via 10.9.0.1
        in_ns "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
            net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
        in_ns "$ns" ip addr add 10.9.9.9/32 dev lo
        in_ns "$ns" ip addr add 10.9.9.10/32 dev lo
        # Replies go through the router, to the node it chooses now, never a remembered one.
        in_ns "$ns" sysctl -qw net.ipv4.conf.all.accept_redirects=0 "net.ipv4.conf.k$i$ID.accept_redirects=0"
        if [ "$MODE" = tun ]; then
            if in_ns "$ns" ip link set tunl0 up 2>/dev/null; then
                in_ns "$ns" sysctl -qw net.ipv4.conf.tunl0.rp_filter=0
            else
                # No ipip module in this kernel: decapsulate in user space, and keep the
                # kernel's "protocol unreachable" for the IPIP packets from the LB.
                ip netns exec "$ns" "$PY" "$ROOT/tests/lab/ipipd.py" >/dev/null 2>&1 &
                PIDS+=($!)
                echo "table ip noproto { chain out { type filter hook output priority 0; icmp type destination-unreachable icmp code 2 drop; }; }" |
                    in_ns "$ns" nft -f -
            fi
        elif [ "$MODE" != dr ] && [ "$MODE" != nat ] && [ "$MODE" != fnat ]; then
            fail "SCALE_MODE=$MODE: the demo runs dr, tun, nat or fnat"
        fi
        ip netns exec "$ns" "$PY" "$ROOT/tests/lab/hostile.py" echo-server --port 7000 >/dev/null 2>&1 &
        PIDS+=($!)
        ip netns exec "$ns" iperf3 -s -p 5201 >/dev/null 2>&1 &
        PIDS+=($!)
        start_http "$i"
    done
}

declare -A HTTP_PIDS=()
start_http() {
    mkdir -p "$DIR/www$1"; echo "backend-$1" > "$DIR/www$1/index.html"
    ip netns exec "$(back_ns "$1")" python3 -m http.server 8080 --bind 0.0.0.0 --directory "$DIR/www$1" >/dev/null 2>&1 &
    PIDS+=($!)
    HTTP_PIDS[$1]=$!
}

router_bird() {
    cat > "$DIR/bird-router.conf" <<EOF
log "$DIR/bird-router.log" all;
router id 10.9.0.1;
protocol device { scan time 1; }
# Equal BGP paths from the nodes become one multipath route in the kernel (ECMP).
protocol kernel { ipv4 { import none; export where net != 10.8.0.0/24; }; merge paths on; }
# nat: the nodes' route to the clients, for the backends' replies only (ip rule, table 100).
ipv4 table lbreturn;
protocol pipe { table master4; peer table lbreturn; import none; export where net = 10.8.0.0/24; }
protocol kernel { ipv4 { table lbreturn; import none; export all; }; kernel table 100; merge paths on; }
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
template bgp lbnode {
    local 10.9.0.1 as 65000;
    bfd on;
    hold time 3; keepalive time 1; connect retry time 1;
    # After a session error (BFD down), try again within seconds, not BIRD's default minute.
    error wait time 1, 10;
    ipv4 { import where net ~ [ 10.9.9.0/24{32,32}, 10.9.8.0/24{32,32}, 10.8.0.0/24 ]; export none; };
}
protocol bgp node1 from lbnode { neighbor 10.9.0.11 as 65001; }
protocol bgp node2 from lbnode { neighbor 10.9.0.12 as 65001; }
protocol bgp node3 from lbnode { neighbor 10.9.0.13 as 65001; }
protocol bgp node4 from lbnode { neighbor 10.9.0.14 as 65001; }
EOF
    ip netns exec "$NS_R" bird -f -c "$DIR/bird-router.conf" -s "$DIR/bird-router.ctl" &
    PIDS+=($!)
}

# nat and fnat sync connections (SCALE_SYNC=0 turns it off, to see what it saves).
synced() { { [ "$MODE" = nat ] || [ "$MODE" = fnat ]; } && [ "${SCALE_SYNC:-1}" = 1 ]; }

# Node i's sync peers (every other node, node 4 included before it joins) and, for fnat, the
# other nodes' local addresses it backs up.
others() { local i=$1 fmt=$2 j out=(); for j in 1 2 3 4; do [ "$j" = "$i" ] || out+=("\"$(printf "$fmt" "$j")\""); done; local IFS=,; echo "${out[*]}"; }

start_node() {
    local i=$1 ns; ns=$(node_ns "$i")
    # rr for the echo service in nat and fnat: no other node could repeat its choice, so only
    # connection sync keeps those flows on a node loss.
    local echo_sched=mh network_extra="" announce_extra="" sync=""
    [ "$MODE" = nat ] || [ "$MODE" = fnat ] && echo_sched=rr
    if synced; then
        sync="[sync]
address = \"10.9.0.1$i\"
peers = [$(others "$i" 10.9.0.1%s)]
key = \"scale-out lab $ID shared sync key\""
    fi
    if [ "$MODE" = fnat ]; then
        network_extra="local_addresses = [\"10.9.8.$i\"]
peer_local_addresses = [$(others "$i" 10.9.8.%s)]"
        announce_extra="local_addresses = true"
    fi
    local backends="backend = [{ address = \"10.9.0.21\", mode = \"$MODE\" }, { address = \"10.9.0.22\", mode = \"$MODE\" }, { address = \"10.9.0.23\", mode = \"$MODE\" }]"
    cat > "$DIR/lbd$i.toml" <<EOF
[eal]
file_prefix = "so$ID-n$i"
no_huge = true
memory_mb = 128
[workers]
cores = [1]
mbufs = 8191
poll = "adaptive"
[conntrack]
capacity = 65536
[control]
socket = "$DIR/lbd$i.sock"
metrics = "127.0.0.1:9100"
maglev_seed = 7
[announce]
interface = "up"
$announce_extra
$sync
[network]
$network_extra
[[network.interface]]
name = "up"
device = "net_af_packet0,iface=u$i$ID,framecnt=4096"
addresses = ["10.9.0.1$i/24"]
gateway = "10.9.0.1"
exception = true
[[service]]
vip = "10.9.9.9"
port = 7000
scheduler = "$echo_sched"
hash_ports = true
$backends
[[service]]
vip = "10.9.9.9"
port = 5201
scheduler = "mh"
# iperf3's control and data connections must meet at one backend: hash the client address only.
hash_ports = false
$backends
[[service]]
vip = "10.9.9.10"
port = 8080
scheduler = "mh"
hash_ports = true
check = { type = "tcp", interval_ms = 300, timeout_ms = 250, rise = 2, fall = 2 }
$backends
EOF
    ip netns exec "$ns" "$LBD" --config "$DIR/lbd$i.toml" > "$DIR/lbd$i.log" 2>&1 &
    LBD_PIDS[$i]=$!
    for _ in $(seq 1 100); do
        grep -q "lbd: running" "$DIR/lbd$i.log" && break
        kill -0 "${LBD_PIDS[$i]}" 2>/dev/null || fail "lbd on node $i did not start"
        sleep 0.1
    done
    cat > "$DIR/bird$i.conf" <<EOF
log "$DIR/bird$i.log" all;
router id 10.9.0.1$i;
protocol device { scan time 1; }
# The VIPs lbd keeps as /32 addresses on its exception interface, while a service is up.
protocol direct vips { ipv4; interface "up"; }
# nat: this node takes the backends' replies to the clients.
protocol static ret { ipv4; route 10.8.0.0/24 via 10.9.0.1; }
protocol bfd { interface "up" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol bgp upstream {
    local 10.9.0.1$i as 65001;
    neighbor 10.9.0.1 as 65000;
    bfd on;
    hold time 3; keepalive time 1; connect retry time 1;
    error wait time 1, 10;
    ipv4 {
        import none;
        export filter {
            if proto = "ret" then $([ "$MODE" = nat ] && echo accept || echo reject);
            if proto != "vips" || net.len != 32 then reject;
            # fnat: another node's local address, announced as its backup.
            if net ~ [ 10.9.8.0/24{32,32} ] && net != 10.9.8.$i/32 then bgp_path.prepend(65001);
            accept;
        };
        next hop self;
    };
}
EOF
    ip netns exec "$ns" bird -f -c "$DIR/bird$i.conf" -s "$DIR/bird$i.ctl" &
    BIRD_PIDS[$i]=$!
}

# Next hops the router's kernel has for PREFIX (one per line).
nexthops() { in_ns "$NS_R" ip -4 route show "$1" 2>/dev/null | grep -oE "via 10\.9\.0\.[0-9]+" | awk '{print $2}' | sort; }
wait_nexthops() {
    local prefix=$1 want=$2 secs=${3:-20} _
    for _ in $(seq 1 $((secs * 20))); do
        [ "$(nexthops "$prefix" | wc -l)" = "$want" ] && return 0
        sleep 0.05
    done
    return 1
}
metric() { in_ns "$(node_ns "$1")" curl -s -m 2 http://127.0.0.1:9100/metrics | awk -v n="$2" '$1 ~ "^"n"(\\{|$)" {s += $NF} END {printf "%d\n", s}'; }
sources() { seq -s, -f '10.8.0.%g' 100 199; }

main() {
    command -v bird >/dev/null || fail "bird (BIRD 2) is not installed: apt-get install bird2"
    say "lab: client, router, 4 node namespaces, 3 backends ($MODE mode, id $ID)"
    setup
    router_bird
    for i in 1 2 3; do start_node "$i"; done
    wait_nexthops 10.9.9.9 3 30 || fail "the router did not learn 10.9.9.9 from 3 nodes: $(in_ns "$NS_R" ip route)"
    wait_nexthops 10.9.9.10 3 10 || fail "the router did not learn 10.9.9.10 from 3 nodes"
    say "routes the router learned (BGP, merged into ECMP)"
    in_ns "$NS_R" ip route show | grep -E "10\.9\.9\." -A3
    in_ns "$NS_R" birdc -s "$DIR/bird-router.ctl" show protocols | grep -E "node|bfd" || true
    check "10.9.9.9 and 10.9.9.10 have 3 next hops"

    say "spread: 300 HTTP requests from 100 client addresses"
    for n in 1 2 3; do echo "$(metric "$n" lbd_conns_created_total)" > "$DIR/created0.$n"; done
    for k in $(seq 0 299); do
        in_ns "$NS_C" curl -s -m 2 --interface "10.8.0.$((100 + k % 100))" http://10.9.9.10:8080/ || echo fail
    done | sort | uniq -c | tee "$DIR/spread" | sed 's/^/   /'
    grep -q fail "$DIR/spread" && fail "requests failed: $(cat "$DIR/spread")"
    for n in 1 2 3; do echo "   node $n: $(( $(metric "$n" lbd_conns_created_total) - $(cat "$DIR/created0.$n") )) new connections"; done
    check "every request answered, spread over the backends and nodes"

    if synced; then
        say "hostile sync: datagrams to node 1's sync port from the client, not a peer"
        # From the client's own address; then with a peer's address forged (the router does
        # no reverse-path check here): garbage, a well-formed header under a wrong MAC, and a
        # datagram of another version. Each is refused and counted; none installs anything.
        local before; before=$(metric 1 lbd_connections)
        ip netns exec "$NS_C" "$PY" - <<'PYEOF'
import socket, struct, time
from scapy.all import IP, UDP, Raw, send
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.8.0.2", 8848))
header = b"LBSY" + bytes([1, 0]) + struct.pack(">HQIQ", 1, int(time.time() * 1000), 7, int(time.time() * 1000))
record = bytes([1, 0, 6, 1, 1, 0, 0, 0]) + struct.pack(">I", 900000) + bytes([10, 8, 0, 77, 10, 9, 9, 9]) + struct.pack(">HH", 4444, 7000) + bytes([10, 9, 0, 21, 10, 9, 8, 1]) + struct.pack(">HH", 7000, 5555)
s.sendto(header + record + b"\0" * 16, ("10.9.0.11", 8848))
for payload in [b"garbage from nowhere", header + record + b"\0" * 16, b"LBSY" + bytes([9]) + b"\0" * 60]:
    send(IP(src="10.9.0.12", dst="10.9.0.11") / UDP(sport=8848, dport=8848) / Raw(payload), verbose=False)
PYEOF
        sleep 1
        local refused; refused=$(in_ns "$(node_ns 1)" curl -s -m 2 http://127.0.0.1:9100/metrics | grep '^lbd_sync_refused_total' | awk '$NF > 0 {printf "%s ", $0}')
        echo "   node 1: $refused"
        for reason in unknown_peer malformed bad_mac unknown_version; do
            echo "$refused" | grep -q "reason=\"$reason\"} [1-9]" || fail "node 1 did not count a '$reason' sync datagram: $refused"
        done
        [ "$(metric 1 lbd_connections)" -le "$before" ] || fail "a forged sync datagram installed a connection"
        check "forged and foreign sync datagrams refused and counted by reason; nothing installed"
    fi

    say "kill: $CONNS held connections and an iperf3 stream through 10.9.9.9, then kill -9 node 2"
    ip netns exec "$NS_C" "$PY" "$ROOT/tests/lab/conns.py" --target 10.9.9.9:7000 --count "$CONNS" --sources "$(sources)" \
        --interval 0.2 --duration 600 --ready "$DIR/conns.ready" > "$DIR/conns.json" 2> "$DIR/conns.err" &
    local conns_pid=$!
    PIDS+=("$conns_pid")
    for _ in $(seq 1 300); do [ -f "$DIR/conns.ready" ] && break; kill -0 "$conns_pid" 2>/dev/null || fail "conns.py: $(cat "$DIR/conns.err")"; sleep 0.1; done
    [ -f "$DIR/conns.ready" ] || fail "the connections did not open"
    # In tun mode the backends decapsulate in Python: a capped stream leaves them room.
    local rate=0
    [ "$MODE" != dr ] && rate=100M
    ip netns exec "$NS_C" iperf3 -c 10.9.9.9 -p 5201 -t 10 -b "$rate" -B 10.8.0.150 > "$DIR/iperf.log" 2>&1 &
    local iperf_pid=$!
    PIDS+=("$iperf_pid")
    sleep 3
    for n in 1 2 3; do echo "   node $n holds $(metric "$n" lbd_connections) connections (with sync: its peers' too)"; done
    if synced; then
        for n in 1 2 3; do
            echo "   node $n: sync sent $(metric "$n" lbd_sync_records_total) records in $(metric "$n" lbd_sync_datagrams_total) datagrams (both ways, all peers), $(metric "$n" lbd_sync_bytes_total) bytes"
        done
    fi
    local t0; t0=$(date +%s%3N)
    kill -9 "${LBD_PIDS[2]}"; unset 'LBD_PIDS[2]'
    wait_nexthops 10.9.9.9 2 10 || fail "the router still has $(nexthops 10.9.9.9 | wc -l) next hops for 10.9.9.9"
    local withdraw=$(( $(date +%s%3N) - t0 ))
    echo "   router withdrew node 2 after $withdraw ms (BFD 3 x 100 ms); next hops now: $(nexthops 10.9.9.9 | tr '\n' ' ')"
    # Survivors are counted once the stream is over: a connection that still echoes then
    # survived (one in TCP's retransmission back-off is late, not lost).
    if ! wait "$iperf_pid"; then
        [ "${SCALE_SYNC:-1}" = 1 ] || [ "$MODE" = dr ] || [ "$MODE" = tun ] || fail "iperf3 through 10.9.9.9 failed: $(tail -3 "$DIR/iperf.log")"
        echo "   iperf3 failed (SCALE_SYNC=0): $(tail -1 "$DIR/iperf.log")"
    fi
    sleep 4
    kill -TERM "$conns_pid"; wait "$conns_pid" || true
    cat "$DIR/conns.json"
    read -r opened alive < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["opened"], d["alive"])' "$DIR/conns.json")
    local moved; moved=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); g=d["gap_ms"]; print("longest silence per connection p50 %d p99 %d max %d ms, %d over 800 ms" % (g["p50"], g["p99"], g["max"], d["over_800ms"]))' "$DIR/conns.json")
    echo "   iperf3: $(grep -E "receiver" "$DIR/iperf.log" | tail -1 | awk '{print $7, $8}')"
    [ $((alive * 1000)) -ge $((opened * 999)) ] || fail "only $alive of $opened connections survived the kill"
    check "kill -9 of node 2: $alive of $opened connections still echo; $moved; router withdraw $withdraw ms; iperf3 completed"

    say "join: node 4 starts; held connections must survive, new flows must use it"
    ip netns exec "$NS_C" "$PY" "$ROOT/tests/lab/conns.py" --target 10.9.9.9:7000 --count "$CONNS" --sources "$(sources)" \
        --interval 0.2 --duration 600 --ready "$DIR/conns2.ready" > "$DIR/conns2.json" 2> "$DIR/conns2.err" &
    conns_pid=$!
    PIDS+=("$conns_pid")
    for _ in $(seq 1 300); do [ -f "$DIR/conns2.ready" ] && break; sleep 0.1; done
    sleep 1
    start_node 4
    wait_nexthops 10.9.9.9 3 30 || fail "the router did not add node 4"
    echo "   next hops now: $(nexthops 10.9.9.9 | tr '\n' ' ')"
    sleep 4
    local adopted; adopted=$(metric 4 lbd_connections)
    local created4; created4=$(metric 4 lbd_conns_created_total)
    kill -TERM "$conns_pid"; wait "$conns_pid" || true
    cat "$DIR/conns2.json"
    read -r opened alive < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["opened"], d["alive"])' "$DIR/conns2.json")
    [ "$alive" = "$opened" ] || fail "the join lost connections: $alive of $opened survive"
    [ "$adopted" -gt 0 ] || fail "node 4 carries no connection after joining"
    for k in $(seq 0 99); do in_ns "$NS_C" curl -s -m 2 --interface "10.8.0.$((100 + k))" http://10.9.9.10:8080/ >/dev/null || true; done
    local new4=$(( $(metric 4 lbd_conns_created_total) - created4 ))
    [ "$new4" -gt 0 ] || fail "no new flow went to node 4"
    local how="$adopted of them moved to node 4 (adopted mid-flow; Maglev: same backend, or they would not echo)"
    synced && how="node 4 holds $adopted connections (its peers sent theirs when it started)"
    check "node 4 joined: $alive of $opened held connections survive; $how; $new4 of 100 new flows went to node 4"

    say "drain: lbctl drain on node 1 under held connections"
    ip netns exec "$NS_C" "$PY" "$ROOT/tests/lab/conns.py" --target 10.9.9.9:7000 --count "$CONNS" --sources "$(sources)" \
        --interval 0.2 --duration 600 --ready "$DIR/conns3.ready" > "$DIR/conns3.json" 2> "$DIR/conns3.err" &
    conns_pid=$!
    PIDS+=("$conns_pid")
    for _ in $(seq 1 300); do [ -f "$DIR/conns3.ready" ] && break; sleep 0.1; done
    sleep 1
    in_ns "$(node_ns 1)" "$LBCTL" -S "$DIR/lbd1.sock" drain --timeout 3 | sed 's/^/   /'
    wait_nexthops 10.9.9.9 2 10 || fail "drain did not withdraw node 1's route"
    echo "   next hops now: $(nexthops 10.9.9.9 | tr '\n' ' ')"
    local created1; created1=$(metric 1 lbd_conns_created_total)
    for k in $(seq 0 99); do in_ns "$NS_C" curl -s -m 2 --interface "10.8.0.$((100 + k))" http://10.9.9.10:8080/ >/dev/null || true; done
    local new1=$(( $(metric 1 lbd_conns_created_total) - created1 ))
    sleep 2
    kill -TERM "$conns_pid"; wait "$conns_pid" || true
    cat "$DIR/conns3.json"
    read -r opened alive < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["opened"], d["alive"])' "$DIR/conns3.json")
    [ "$alive" = "$opened" ] || fail "the drain lost connections: $alive of $opened survive"
    [ "$new1" = 0 ] || fail "$new1 new flows reached node 1 after its withdrawal"
    check "drain of node 1: $alive of $opened connections survive; 0 of 100 new flows reached it"
    in_ns "$(node_ns 1)" "$LBCTL" -S "$DIR/lbd1.sock" undrain >/dev/null
    wait_nexthops 10.9.9.9 3 10 || fail "undrain did not announce node 1 again"
    check "undrain: node 1 announced again"

    say "restart: a new lbd takes node 3 over (lbd --takeover) under held connections"
    ip netns exec "$NS_C" "$PY" "$ROOT/tests/lab/conns.py" --target 10.9.9.9:7000 --count "$CONNS" --sources "$(sources)" \
        --interval 0.2 --duration 600 --ready "$DIR/conns4.ready" > "$DIR/conns4.json" 2> "$DIR/conns4.err" &
    conns_pid=$!
    PIDS+=("$conns_pid")
    for _ in $(seq 1 300); do [ -f "$DIR/conns4.ready" ] && break; sleep 0.1; done
    sleep 1
    local old=${LBD_PIDS[3]}
    ip netns exec "$(node_ns 3)" "$LBD" --config "$DIR/lbd3.toml" --takeover "$DIR/lbd3.sock" > "$DIR/lbd3b.log" 2>&1 &
    LBD_PIDS[3]=$!
    for _ in $(seq 1 200); do grep -q "lbd: running" "$DIR/lbd3b.log" && break; sleep 0.05; done
    grep -q "lbd: running" "$DIR/lbd3b.log" || fail "the new lbd of node 3 did not start: $(tail -5 "$DIR/lbd3b.log")"
    wait "$old" 2>/dev/null || true
    grep "takeover:" "$DIR/lbd3b.log" | sed 's/^/   /'
    wait_nexthops 10.9.9.9 3 10 || fail "node 3's route did not come back after the takeover"
    sleep 3
    kill -TERM "$conns_pid"; wait "$conns_pid" || true
    cat "$DIR/conns4.json"
    read -r opened alive < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["opened"], d["alive"])' "$DIR/conns4.json")
    [ "$alive" = "$opened" ] || fail "the takeover lost connections: $alive of $opened survive"
    check "node 3 restarted with --takeover (its exception interface and BGP session re-created): $alive of $opened connections survive"

    say "health: every backend's HTTP server dies; 10.9.9.10 must be withdrawn, 10.9.9.9 stay"
    for i in 1 2 3; do kill "${HTTP_PIDS[$i]}"; done
    t0=$(date +%s%3N)
    wait_nexthops 10.9.9.10 0 15 || fail "10.9.9.10 still has $(nexthops 10.9.9.10 | wc -l) next hops"
    echo "   10.9.9.10 withdrawn by every node $(( $(date +%s%3N) - t0 )) ms after the servers died"
    [ "$(nexthops 10.9.9.9 | wc -l)" = 3 ] || fail "10.9.9.9 lost next hops: $(nexthops 10.9.9.9)"
    for i in 1 2 3; do start_http "$i"; done
    wait_nexthops 10.9.9.10 3 15 || fail "10.9.9.10 was not announced again"
    check "10.9.9.10 withdrawn while no backend was up, announced again after; 10.9.9.9 untouched"
    echo; echo "PASS [scale-out]"
}

[ -n "${SCALE_SOURCE_ONLY:-}" ] || main "$@"

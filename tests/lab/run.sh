#!/usr/bin/env bash
# One lab scenario end to end: `tests/lab/run.sh SCENARIO`. Exits non-zero, saying why, when a
# check fails. Scenarios: nat, fnat, dr, tun, gue, nat6, dr6 (AF_PACKET ports), xdp (AF_XDP),
# ctl (every lbctl verb against live traffic), sched (sh/mh stickiness, mh across processes),
# churn (100 updates/s under a UDP stream, update latency, restore of 10,000 services).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lab.sh"
scenario=${1:?usage: run.sh SCENARIO}

fail() { echo "FAIL [$scenario]: $*" >&2; echo "--- lbd log" >&2; cat "$LAB_DIR/lbd.log" >&2 || true; exit 1; }
check() { echo "ok [$scenario]: $*"; }

# Counts each line of stdin; prints "name count" sorted by name.
tally() { sort | uniq -c | awk '{print $2, $1}'; }

expect_spread() {
    local got=$1 want=$2 what=$3
    [ "$got" = "$want" ] || fail "$what: got [$(echo "$got" | tr '\n' ' ')], want [$(echo "$want" | tr '\n' ' ')]"
    check "$what"
}

ping_vip() {
    local vip=$1
    in_ns "$NS_C" ping -c 2 -i 0.2 -W 2 "$vip" >/dev/null || fail "ping $vip is not answered"
    check "ping $vip answered by the LB"
}

iperf_through() {
    local vip=$1 port=$2
    local out
    out=$(in_ns "$NS_C" iperf3 -c "$vip" -p "$port" -t 2 -J 2>&1) || fail "iperf3 to $vip:$port failed: $(echo "$out" | tail -3)"
    local bps
    bps=$(echo "$out" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))')
    [ "$bps" -gt 10000000 ] || fail "iperf3 through $vip:$port: only $bps bit/s"
    check "iperf3 through $vip:$port: $((bps / 1000000)) Mbit/s"
}

case $scenario in
xdp)
    LAB_DRIVER=af_xdp
    lab_setup two-armed
    lab_start_lbd '[[service]]
vip = "10.0.0.100"
port = 80
scheduler = "rr"
backend = [{ address = "10.1.0.11", port = 8080 }, { address = "10.1.0.12", port = 8080 }]' || fail "lbd did not start"
    grep -q "net_af_xdp0 (net_af_xdp)" "$LAB_DIR/lbd.log" || fail "lbd is not on AF_XDP"
    ping_vip 10.0.0.100
    lab_curl http://10.0.0.100/ 1 >/dev/null
    expect_spread "$(lab_curl http://10.0.0.100/ 10 | tally)" "$(printf 'backend-1 5\nbackend-2 5')" "nat over AF_XDP: rr spreads 10 TCP connections 5/5"
    ;;
nat)
    lab_setup two-armed
    lab_start_lbd '[[service]]
vip = "10.0.0.100"
port = 80
scheduler = "rr"
backend = [{ address = "10.1.0.11", port = 8080 }, { address = "10.1.0.12", port = 8080 }]
[[service]]
vip = "10.0.0.100"
port = 5201
scheduler = "sh"
backend = [{ address = "10.1.0.11" }, { address = "10.1.0.12" }]' || fail "lbd did not start"
    ping_vip 10.0.0.100
    lab_curl http://10.0.0.100/ 1 >/dev/null   # the LB resolves the backends' MACs
    expect_spread "$(lab_curl http://10.0.0.100/ 10 | tally)" "$(printf 'backend-1 5\nbackend-2 5')" "nat rr spreads 10 connections 5/5"
    iperf_through 10.0.0.100 5201
    ;;
fnat)
    lab_setup two-armed
    # Backends route nothing through the LB here: full-NAT replies go to the local address.
    for i in 1 2; do in_ns "$(ns_b $i)" ip route del default; done
    lab_start_lbd '[[service]]
vip = "10.0.0.100"
port = 80
scheduler = "wrr"
backend = [{ address = "10.1.0.11", port = 8080, mode = "fnat", weight = 1 }, { address = "10.1.0.12", port = 8080, mode = "fnat", weight = 3 }]
[[service]]
vip = "10.0.0.100"
port = 5201
scheduler = "mh"
backend = [{ address = "10.1.0.11", mode = "fnat" }, { address = "10.1.0.12", mode = "fnat" }]' || fail "lbd did not start"
    lab_curl http://10.0.0.100/ 1 >/dev/null
    expect_spread "$(lab_curl http://10.0.0.100/ 8 | tally)" "$(printf 'backend-1 2\nbackend-2 6')" "fnat wrr spreads 8 connections 1:3"
    iperf_through 10.0.0.100 5201
    ;;
dr)
    lab_setup one-armed
    for i in 1 2; do backend_holds_vip "$(ns_b $i)" 10.0.0.100; done
    lab_start_lbd '[[service]]
vip = "10.0.0.100"
port = 8080
scheduler = "rr"
backend = [{ address = "10.0.0.11", mode = "dr" }, { address = "10.0.0.12", mode = "dr" }]
[[service]]
vip = "10.0.0.100"
port = 5201
scheduler = "sh"
backend = [{ address = "10.0.0.11", mode = "dr" }, { address = "10.0.0.12", mode = "dr" }]' || fail "lbd did not start"
    ping_vip 10.0.0.100
    lab_curl http://10.0.0.100:8080/ 1 >/dev/null
    expect_spread "$(lab_curl http://10.0.0.100:8080/ 10 | tally)" "$(printf 'backend-1 5\nbackend-2 5')" "dr rr spreads 10 connections 5/5"
    iperf_through 10.0.0.100 5201
    ;;
tun | gue)
    # This kernel has neither IPIP nor FOU (CONFIG_NET_IPIP, CONFIG_NET_FOU unset), so the
    # backends cannot decapsulate: check instead that each backend receives the client's SYN
    # inside the right tunnel, from the LB, addressed to it.
    lab_setup one-armed
    lab_start_lbd "[[service]]
vip = \"10.0.0.100\"
port = 8080
scheduler = \"rr\"
backend = [{ address = \"10.0.0.11\", mode = \"$scenario\" }, { address = \"10.0.0.12\", mode = \"$scenario\" }]" || fail "lbd did not start"
    ping_vip 10.0.0.100
    filter='ip proto 4'
    [ "$scenario" = gue ] && filter='udp dst port 6080'
    caps=()
    for i in 1 2; do
        ip netns exec "$(ns_b $i)" timeout 20 tcpdump -ni "b$i$LAB_ID" -c 1 -v "$filter" > "$LAB_DIR/cap$i" 2>/dev/null &
        caps+=($!)
    done
    sleep 1
    # rr sends the first connection to one backend, the second to the other; nothing answers
    # (no decapsulation), so each curl gives up after the SYN and its retransmissions.
    for _ in 1 2; do in_ns "$NS_C" curl -s --max-time 3 http://10.0.0.100:8080/ >/dev/null || true; done
    for c in "${caps[@]}"; do wait "$c" 2>/dev/null || true; done
    for i in 1 2; do
        if [ "$scenario" = tun ]; then
            grep -q "10.0.0.1 > 10.0.0.1$i: IP" "$LAB_DIR/cap$i" || fail "backend $i got no IPIP packet from the LB: $(cat "$LAB_DIR/cap$i")"
            grep -q "10.0.0.2\.[0-9]* > 10.0.0.100.8080: Flags \[S\]" "$LAB_DIR/cap$i" || fail "backend $i: the tunnel does not carry the client's SYN to the VIP: $(cat "$LAB_DIR/cap$i")"
        else
            grep -qE "10.0.0.1\.[0-9]+ > 10.0.0.1$i.6080: UDP" "$LAB_DIR/cap$i" || fail "backend $i got no GUE packet from the LB: $(cat "$LAB_DIR/cap$i")"
        fi
    done
    check "$scenario: each backend receives the client's SYN to the VIP inside $scenario from the LB (rr)"
    ;;
ctl)
    LBCTL=${LBCTL:-$(cd "$here/../.." && pwd)/target/debug/lbctl}
    ctl() { "$LBCTL" -S "$LAB_DIR/lbd.sock" "$@"; }
    lab_setup two-armed
    lab_start_lbd '' || fail "lbd did not start"
    ctl add-service -t 10.0.0.100:80 -s rr || fail "add-service"
    ctl add-backend -t 10.0.0.100:80 -r 10.1.0.11:8080 -m nat || fail "add-backend 1"
    ctl add-backend -t 10.0.0.100:80 -r 10.1.0.12:8080 -m nat -w 1 || fail "add-backend 2"
    ctl add-service -t 10.0.0.100:5201 -s sh || fail "add-service 5201"
    ctl add-backend -t 10.0.0.100:5201 -r 10.1.0.11 -m nat || fail "add-backend 5201"
    ctl add-backend -t 10.0.0.100:5201 -r 10.1.0.12 -m nat || fail "add-backend 5201"
    lab_curl http://10.0.0.100/ 2 >/dev/null
    expect_spread "$(lab_curl http://10.0.0.100/ 10 | tally)" "$(printf 'backend-1 5\nbackend-2 5')" "services added with lbctl spread 5/5"
    ctl list -n | grep -q "TCP  10.0.0.100:80 rr" || fail "list: $(ctl list -n)"
    ctl list -n | grep -qE "10.1.0.12:8080 +Masq +1 " || fail "list backend line: $(ctl list -n)"
    check "lbctl list shows the services like ipvsadm -Ln"
    # A refused command changes nothing and says why.
    if out=$(ctl add-backend -t 10.0.0.100:80 -r 10.1.0.13:8080 -w 70000 2>&1); then fail "weight 70000 accepted"; fi
    echo "$out" | grep -q "weight: 70000 exceeds 65535" || fail "refusal does not name the field: $out"
    if ctl add-backend -t 10.0.0.100:81 -r 10.1.0.13 2>/dev/null; then fail "backend for an unknown service accepted"; fi
    [ "$(ctl list -n | grep -c ' Masq ')" = 4 ] || fail "a refused command changed the table: $(ctl list -n)"
    check "refused commands exit non-zero, name the problem and change nothing"
    # Drain every backend of 5201 while an iperf3 stream runs: it must finish; new ones fail.
    in_ns "$NS_C" iperf3 -c 10.0.0.100 -p 5201 -t 4 -J > "$LAB_DIR/long.json" 2>&1 &
    long=$!
    sleep 1.5
    ctl edit-backend -t 10.0.0.100:5201 -r 10.1.0.11 -w 0 || fail "drain 1"
    ctl edit-backend -t 10.0.0.100:5201 -r 10.1.0.12 -w 0 || fail "drain 2"
    wait "$long" || fail "the running iperf3 stream broke when its backend was drained: $(tail -5 "$LAB_DIR/long.json")"
    bps=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$LAB_DIR/long.json")
    [ "$bps" -gt 10000000 ] || fail "drained stream too slow: $bps"
    check "a running iperf3 stream survives draining (weight 0) of its backend: $((bps / 1000000)) Mbit/s"
    if in_ns "$NS_C" timeout 5 iperf3 -c 10.0.0.100 -p 5201 -t 1 >/dev/null 2>&1; then fail "a new connection reached a drained service"; fi
    check "new connections avoid drained backends"
    ctl edit-backend -t 10.0.0.100:80 -r 10.1.0.12:8080 -w 0 || fail "drain web 2"
    expect_spread "$(lab_curl http://10.0.0.100/ 6 | tally)" "backend-1 6" "after draining backend-2, new connections all go to backend-1"
    ctl edit-backend -t 10.0.0.100:80 -r 10.1.0.12:8080 -w 1 || fail "undrain"
    ctl del-backend -t 10.0.0.100:80 -r 10.1.0.11:8080 || fail "del-backend"
    expect_spread "$(lab_curl http://10.0.0.100/ 6 | tally)" "backend-2 6" "a deleted backend receives no new connections"
    # save, flush, restore: the same tables back.
    ctl save > "$LAB_DIR/saved.toml" || fail "save"
    ctl flush || fail "flush"
    [ "$(ctl list -n | grep -c TCP || true)" = 0 ] || fail "flush left services"
    ctl restore "$LAB_DIR/saved.toml" > /dev/null || fail "restore"
    ctl save | diff - "$LAB_DIR/saved.toml" >/dev/null || fail "save after restore differs: $(ctl save | diff - "$LAB_DIR/saved.toml")"
    expect_spread "$(lab_curl http://10.0.0.100/ 4 | tally)" "backend-2 4" "traffic flows again after save, flush, restore"
    # IPVS users' rules.
    printf -- '-A -t 10.0.0.100:80 -s rr\n-a -t 10.0.0.100:80 -r 10.1.0.11:8080 -m -w 1\n-a -t 10.0.0.100:80 -r 10.1.0.12:8080 -m -w 1\n' > "$LAB_DIR/ipvsadm.rules"
    ctl apply --dry-run "$LAB_DIR/saved.toml" > /dev/null || fail "dry run"
    ctl restore --format ipvsadm "$LAB_DIR/ipvsadm.rules" || fail "restore --format ipvsadm"
    lab_curl http://10.0.0.100/ 2 >/dev/null
    expect_spread "$(lab_curl http://10.0.0.100/ 10 | tally)" "$(printf 'backend-1 5\nbackend-2 5')" "rules restored from ipvsadm-save format spread 5/5"
    # The remaining verbs and error cases.
    ctl edit-service -t 10.0.0.100:80 -s wrr || fail "edit-service"
    ctl list -n | grep -q "TCP  10.0.0.100:80 wrr" || fail "edit-service did not change the scheduler"
    for bad in "add-service -t 10.0.0.100:80 -s rr" "add-service -t 10.0.0.300:80" "add-service -t 10.0.0.100:99999" \
               "add-service -t 10.0.0.101:80 -s xx" "del-service -t 10.0.0.199:80" "edit-backend -t 10.0.0.100:80 -r 10.1.0.99:8080 -w 2" \
               "add-backend -t 10.0.0.100:80 -r 10.1.0.11:8080 -m dr" "set-timeouts 0 0 0 x"; do
        # shellcheck disable=SC2086
        if out=$(ctl $bad 2>&1); then fail "'lbctl $bad' was accepted"; fi
        [ -n "$out" ] || fail "'lbctl $bad' refused without a message"
    done
    [ "$(ctl list -n | grep -c ' Masq ')" = 2 ] || fail "a refused command changed the table: $(ctl list -n)"
    check "refusals: duplicate service, bad address, bad port, unknown scheduler, unknown service or backend, dr port change"
    ctl --json set-timeouts 600 60 120 | grep -q '"tcp_established":600' || fail "set-timeouts"
    ctl zero || fail "zero"
    ctl list -n --stats | grep -qE "^TCP  10.0.0.100:80 +0 +0 +0" || fail "zero did not clear the counters: $(ctl list -n --stats)"
    lab_curl http://10.0.0.100/ 4 >/dev/null
    ctl list -n --rate | grep -q "CPS" || fail "list --rate"
    ctl del-service -t 10.0.0.100:80 || fail "del-service"
    [ "$(ctl list -n | grep -c '^TCP')" = 0 ] || fail "del-service left the service"
    [ "$(lab_curl http://10.0.0.100/ 1)" = curl-failed ] || fail "a deleted service still answers"
    check "edit-service, set-timeouts, zero, list --rate, del-service"
    ctl completions bash | grep -q "_lbctl()" || fail "completions"
    ctl man | grep -q "^.TH lbctl" || fail "man page"
    check "shell completions and man page"
    ctl stats | grep -qE "^0 +1 " || fail "stats: $(ctl stats)"
    ctl conns | grep -q "10.0.0.2:" || fail "conns: $(ctl conns)"
    check "lbctl stats and conns report the workers and connections"
    ;;
churn)
    # 100 table updates per second for 10 s (add, weight, drain, delete a backend) while a UDP
    # stream runs to a backend that stays: not one datagram may be lost. Also measures the
    # time from command to every worker on the new table, and restoring 10,000 services.
    LBCTL=${LBCTL:-$(cd "$here/../.." && pwd)/target/debug/lbctl}
    ctl() { "$LBCTL" -S "$LAB_DIR/lbd.sock" "$@"; }
    lab_setup two-armed
    lab_start_lbd '[[service]]
vip = "10.0.0.100"
port = 5201
scheduler = "mh"
backend = [{ address = "10.1.0.11" }, { address = "10.1.0.12" }]
[[service]]
vip = "10.0.0.100"
port = 5201
protocol = "udp"
scheduler = "mh"
backend = [{ address = "10.1.0.11" }, { address = "10.1.0.12" }]' || fail "lbd did not start"
    in_ns "$NS_C" iperf3 -c 10.0.0.100 -p 5201 -u -b 20M -l 1200 -t 1 >/dev/null 2>&1 || true  # resolve MACs
    in_ns "$NS_C" iperf3 -c 10.0.0.100 -p 5201 -u -b 20M -l 1200 -t 12 -J > "$LAB_DIR/udp.json" 2>&1 &
    stream=$!
    sleep 1
    start_us=${EPOCHREALTIME/./}
    # One client speaking the control protocol directly (one connection per request, as lbctl
    # does) so that 100 updates per second are paced exactly on this 2-core machine.
    python3 - "$LAB_DIR/lbd.sock" "$LAB_DIR/answers" <<'PY' || fail "an update was refused: $(tail -1 "$LAB_DIR/answers")"
import json, socket, sys, time
path, out = sys.argv[1], open(sys.argv[2], "w")
svc = {"vip": "10.0.0.100", "port": 5201, "protocol": "udp"}
def call(cmd):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall((json.dumps({"version": 1, "command": cmd}) + "\n").encode())
    line = s.makefile().readline()
    s.close()
    out.write(line)
    if not json.loads(line)["ok"]:
        sys.exit(1)
start = time.monotonic()
for n in range(1000):
    rip = "10.1.0.13" if n % 2 else "10.1.0.14"
    step = (n // 2) % 4
    if step == 0:
        call({"cmd": "add-backend", "id": svc, "backend": {"address": rip, "weight": 2, "mode": "nat"}})
    elif step in (1, 2):
        call({"cmd": "edit-backend", "id": svc, "address": rip, "port": 5201, "edit": {"weight": 5 if step == 1 else 0}})
    else:
        call({"cmd": "del-backend", "id": svc, "address": rip, "port": 5201})
    time.sleep(max(0.0, start + (n + 1) * 0.01 - time.monotonic()))
PY
    elapsed_ms=$(((${EPOCHREALTIME/./} - start_us) / 1000))
    [ "$elapsed_ms" -lt 11000 ] || fail "1000 updates took ${elapsed_ms} ms: they did not all overlap the 12 s stream"
    sed -nE 's/.*"all_workers_us":([0-9]+).*/\1/p' "$LAB_DIR/answers" > "$LAB_DIR/latency"
    [ "$(wc -l < "$LAB_DIR/latency")" = 1000 ] || fail "not every update reported its latency"
    wait "$stream" || fail "the UDP stream failed: $(tail -5 "$LAB_DIR/udp.json")"
    read -r lost total < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["end"]["sum"]; print(s["lost_packets"], s["packets"])' "$LAB_DIR/udp.json")
    [ "$lost" = 0 ] || fail "$lost of $total datagrams lost during the updates"
    check "1000 updates in ${elapsed_ms} ms while a 20 Mbit/s UDP stream ran: 0 of $total datagrams lost"
    read -r p50 p99 pmax < <(sort -n "$LAB_DIR/latency" | awk '{a[NR]=$1} END {print a[int(NR*0.5)], a[int(NR*0.99)], a[NR]}')
    check "command to every worker on the new table: median ${p50} us, p99 ${p99} us, max ${pmax} us"
    python3 - "$LAB_DIR/10k.toml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(10000):
        f.write(f'[[service]]\nvip = "10.9.{i // 250}.{i % 250 + 1}"\nport = 80\nscheduler = "rr"\n')
        f.write(f'backend = [{{ address = "10.1.0.11" }}, {{ address = "10.1.0.12" }}]\n')
PY
    t0=$(date +%s%N)
    ctl restore "$LAB_DIR/10k.toml" > /dev/null || fail "restore of 10,000 services"
    restore_ms=$((($(date +%s%N) - t0) / 1000000))
    [ "$(ctl list -n | grep -c '^TCP')" = 10000 ] || fail "restore did not give 10,000 services"
    check "lbctl restore of 10,000 services (20,000 backends): ${restore_ms} ms"
    ;;
sched)
    # sh and mh keep each client on one backend; mh gives the same answer in a second lbd
    # process built from the same configuration (what two LB nodes of a cluster need).
    lab_setup two-armed
    for i in $(seq 21 28); do in_ns "$NS_C" ip addr add "10.0.0.$i/24" dev "c$LAB_ID"; done
    services='[[service]]
vip = "10.0.0.100"
port = 80
scheduler = "sh"
backend = [{ address = "10.1.0.11", port = 8080 }, { address = "10.1.0.12", port = 8080 }]
[[service]]
vip = "10.0.0.100"
port = 81
scheduler = "mh"
backend = [{ address = "10.1.0.11", port = 8080 }, { address = "10.1.0.12", port = 8080 }]'
    lab_start_lbd "$services" || fail "lbd did not start"
    from() { in_ns "$NS_C" curl -s --max-time 5 --interface "10.0.0.$1" "http://10.0.0.100:$2/" || echo curl-failed; }
    from 21 80 >/dev/null; from 21 81 >/dev/null   # the LB resolves the backends' MACs
    for port in 80 81; do
        seen=""
        for i in $(seq 21 28); do
            first=$(from "$i" "$port")
            for _ in 1 2 3; do
                again=$(from "$i" "$port")
                [ "$again" = "$first" ] || fail "port $port: client 10.0.0.$i moved from $first to $again"
            done
            seen="$seen$first\n"
        done
        [ "$(printf "$seen" | sort -u | wc -l)" = 2 ] || fail "port $port: clients do not reach both backends: $(printf "$seen" | sort | uniq -c)"
        check "$([ $port = 80 ] && echo sh || echo mh): every client keeps its backend over 4 connections; both backends serve"
    done
    map1=$(for i in $(seq 21 28); do echo "$i $(from "$i" 81)"; done)
    lab_stop_lbd > /dev/null
    lab_start_lbd "$services" || fail "second lbd did not start"
    from 21 81 >/dev/null
    map2=$(for i in $(seq 21 28); do echo "$i $(from "$i" 81)"; done)
    [ "$map1" = "$map2" ] || fail "mh differs between two lbd processes: $(diff <(echo "$map1") <(echo "$map2"))"
    check "mh maps every client to the same backend in a second lbd process with the same config"
    ;;
nat6)
    lab_setup two-armed
    lab_start_lbd '[[service]]
vip = "fd00::100"
port = 80
scheduler = "rr"
backend = [{ address = "fd01::11", port = 8080 }, { address = "fd01::12", port = 8080 }]' || fail "lbd did not start"
    ping_vip fd00::100
    lab_curl "http://[fd00::100]/" 1 >/dev/null
    expect_spread "$(lab_curl "http://[fd00::100]/" 10 | tally)" "$(printf 'backend-1 5\nbackend-2 5')" "IPv6 nat rr spreads 10 connections 5/5"
    ;;
dr6)
    lab_setup one-armed
    for i in 1 2; do backend_holds_vip "$(ns_b $i)" fd00::100; done
    lab_start_lbd '[[service]]
vip = "fd00::100"
port = 8080
scheduler = "rr"
backend = [{ address = "fd00::11", mode = "dr" }, { address = "fd00::12", mode = "dr" }]' || fail "lbd did not start"
    ping_vip fd00::100
    lab_curl "http://[fd00::100]:8080/" 1 >/dev/null
    expect_spread "$(lab_curl "http://[fd00::100]:8080/" 10 | tally)" "$(printf 'backend-1 5\nbackend-2 5')" "IPv6 dr rr spreads 10 connections 5/5"
    ;;
*)
    echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
echo "PASS [$scenario]"

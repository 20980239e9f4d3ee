#!/usr/bin/env python3
"""Long-lived TCP connections through a VIP, for the scale-out lab: opens COUNT connections to
TARGET (an echo service), spread over the client addresses SOURCES, then sends a short line
on every connection every INTERVAL seconds and checks that it comes back. Runs until SIGTERM
or DURATION, then prints one JSON line: how many connections opened, how many still echo (a
reply within the last SURVIVE_S seconds, none lost), and the longest silence each saw, with
the silences longer than two intervals listed apart (the moved ones).
Writes READY once every connection is open."""
import argparse
import json
import selectors
import signal
import socket
import time


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", required=True, help="HOST:PORT")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--sources", default="", help="comma-separated client addresses to bind to")
    p.add_argument("--interval", type=float, default=0.2)
    p.add_argument("--duration", type=float, default=600)
    p.add_argument("--survive-s", type=float, default=2.0)
    p.add_argument("--ready", required=True)
    a = p.parse_args()
    host, port = a.target.rsplit(":", 1)
    sources = [s for s in a.sources.split(",") if s] or [None]
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(a.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        src = sources[i % len(sources)]
        if src:
            s.bind((src, 0))
        s.settimeout(10)
        s.connect((host, int(port)))
        s.setblocking(False)
        c = {"sock": s, "id": i, "sent": 0, "got": 0, "buf": b"", "last_ok": time.monotonic(), "max_gap": 0.0,
             "broken": None}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    with open(a.ready, "w") as f:
        f.write("ready\n")
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    t_end = time.monotonic() + a.duration
    next_send = time.monotonic()
    while not stop and time.monotonic() < t_end:
        now = time.monotonic()
        if now >= next_send:
            next_send = now + a.interval
            for c in conns:
                if c["broken"]:
                    continue
                line = f"{c['id']}:{c['sent']}\n".encode()
                try:
                    c["sock"].send(line)
                    c["sent"] += 1
                except BlockingIOError:
                    pass
                except OSError as e:
                    c["broken"] = f"send: {e.__class__.__name__}"
        for key, _ in sel.select(timeout=max(0.0, min(0.05, next_send - time.monotonic()))):
            c = key.data
            try:
                d = c["sock"].recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                c["broken"] = f"recv: {e.__class__.__name__}"
                sel.unregister(c["sock"])
                continue
            if not d:
                c["broken"] = "closed"
                sel.unregister(c["sock"])
                continue
            c["buf"] += d
            while b"\n" in c["buf"]:
                line, c["buf"] = c["buf"].split(b"\n", 1)
                want = f"{c['id']}:{c['got']}".encode()
                if line != want:
                    c["broken"] = f"echo mismatch: {line[:40]!r} != {want!r}"
                    break
                c["got"] += 1
                t = time.monotonic()
                c["max_gap"] = max(c["max_gap"], t - c["last_ok"])
                c["last_ok"] = t
    now = time.monotonic()
    for c in conns:
        if not c["broken"]:
            c["max_gap"] = max(c["max_gap"], now - c["last_ok"])
    alive = [c for c in conns if not c["broken"] and now - c["last_ok"] <= a.survive_s]
    gaps = sorted(round(c["max_gap"] * 1000) for c in alive)
    pct = lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))] if gaps else 0
    reasons = {}
    for c in conns:
        if c["broken"]:
            reasons[c["broken"]] = reasons.get(c["broken"], 0) + 1
        elif c not in alive:
            reasons["silent"] = reasons.get("silent", 0) + 1
    print(json.dumps({
        "opened": len(conns),
        "alive": len(alive),
        "lost": len(conns) - len(alive),
        "why_lost": reasons,
        # Each connection's longest silence: its median and tail over the connections, and how
        # many were silent for over 800 ms (a flow moved by the routers waits for them and for
        # its TCP retransmission; an undisturbed one only for this client's own loop).
        "gap_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": gaps[-1] if gaps else 0},
        "over_800ms": sum(1 for g in gaps if g > 800),
    }), flush=True)


if __name__ == "__main__":
    main()

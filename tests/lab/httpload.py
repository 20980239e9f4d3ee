#!/usr/bin/env python3
"""Steady HTTP load for the health-check lab: WORKERS threads each open a new connection per
request (HTTP/1.0 GET) to TARGET for DURATION seconds, and log every request as
"start_ms end_ms result" (epoch milliseconds; result is the body's first line, such as
backend-2, or FAIL:reason). SIGTERM ends the run early."""
import argparse
import signal
import socket
import threading
import time


def get(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or head[9:12] != b"200":
            return "FAIL:status"
        return body.decode(errors="replace").strip().splitlines()[0] if body.strip() else "FAIL:empty"
    except ConnectionRefusedError:
        return "FAIL:refused"
    except socket.timeout:
        return "FAIL:timeout"
    except OSError as e:
        return f"FAIL:{e.__class__.__name__}"


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", required=True, help="HOST:PORT")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--pause", type=float, default=0.02, help="seconds between a worker's requests")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    host, port = a.target.rsplit(":", 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lines, lock = [], threading.Lock()
    end = time.time() + a.duration

    def worker():
        while not stop.is_set() and time.time() < end:
            t0 = time.time()
            r = get(host, int(port), a.timeout)
            with lock:
                lines.append(f"{int(t0 * 1000)} {int(time.time() * 1000)} {r}")
            stop.wait(a.pause)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.workers)]
    for t in threads:
        t.start()
    with open(a.out + ".ready", "w") as f:
        f.write("ready\n")
    for t in threads:
        t.join()
    with open(a.out, "w") as f:
        f.write("\n".join(sorted(lines, key=lambda l: int(l.split()[0]))) + "\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""IPIP decapsulation in user space, for lab backends whose kernel lacks the ipip module
(CONFIG_NET_IPIP unset, as on the machines this lab runs on): receives IP-in-IP packets
(protocol 4) on a raw socket and writes each inner packet to a TUN interface, which the
kernel then receives as if it had arrived decapsulated. The backend answers from the VIP by
its own routes, as with a real tunl0. Run as root in the backend's namespace; SIGTERM ends it.
"""
import argparse
import fcntl
import os
import signal
import socket
import struct
import subprocess

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--name", default="ipipd0", help="the TUN interface")
    a = p.parse_args()
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", a.name.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "link", "set", a.name, "up"], check=True)
    subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{a.name}.rp_filter=0"], check=True)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_IPIP)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        pkt = raw.recv(65535)
        ihl = (pkt[0] & 0x0F) * 4
        inner = pkt[ihl:]
        if len(inner) >= 20 and inner[0] >> 4 == 4:
            os.write(tun, inner)


if __name__ == "__main__":
    main()

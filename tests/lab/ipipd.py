#!/usr/bin/env python3
"""IPIP and GRE decapsulation in user space, for lab backends whose kernel lacks the ipip and
ip_gre modules (CONFIG_NET_IPIP, CONFIG_NET_IPGRE unset, as on the machines this lab runs on):
receives IP-in-IP (protocol 4) or, with --gre, GRE (protocol 47, RFC 2784/2890 headers) packets
on a raw socket and writes each inner IPv4 packet to a TUN interface, which the kernel then
receives as if it had arrived decapsulated. The backend answers from the VIP by its own
routes, as with a real tunl0 or gre0. Run as root in the backend's namespace; SIGTERM ends it.
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
    p.add_argument("--gre", action="store_true", help="decapsulate GRE instead of IPIP")
    a = p.parse_args()
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", a.name.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "link", "set", a.name, "up"], check=True)
    subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{a.name}.rp_filter=0"], check=True)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47 if a.gre else socket.IPPROTO_IPIP)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        pkt = raw.recv(65535)
        ihl = (pkt[0] & 0x0F) * 4
        inner = pkt[ihl:]
        if a.gre:
            if len(inner) < 4:
                continue
            flags, ethertype = inner[0], (inner[2] << 8) | inner[3]
            if inner[1] & 0x07 != 0 or ethertype != 0x0800:
                continue  # GRE version 0 carrying IPv4 only
            # Checksum (C), key (K) and sequence number (S) add 4 bytes each.
            skip = 4 + 4 * sum(1 for bit in (0x80, 0x20, 0x10) if flags & bit)
            inner = inner[skip:]
        if len(inner) >= 20 and inner[0] >> 4 == 4:
            os.write(tun, inner)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""802.1Q VLAN interfaces in user space, for lab hosts whose kernel lacks the 8021q module
(CONFIG_VLAN_8021Q unset, as on the machines this lab runs on): for each --vlan ID:NAME it
creates a TAP interface NAME and bridges it to the trunk interface --trunk, pushing tag ID on
the frames the TAP's kernel side sends and delivering to it (untagged) the frames of the trunk
that carry tag ID. Frames of other VLANs and untagged ones are not delivered. Turn the trunk's
VLAN offloads off if it can (ethtool -K TRUNK rxvlan off txvlan off); a tag the kernel took
off anyway is read back from the packet socket's auxiliary data (PACKET_AUXDATA).
Run as root in the host's namespace; SIGTERM ends it.
"""
import argparse
import fcntl
import os
import select
import signal
import socket
import struct

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trunk", required=True)
    p.add_argument("--vlan", action="append", required=True, help="ID:NAME")
    a = p.parse_args()
    trunk = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    trunk.bind((a.trunk, 0))
    trunk.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    taps = {}
    for spec in a.vlan:
        vid, name = spec.split(":", 1)
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
        taps[int(vid)] = fd
    by_fd = {fd: vid for vid, fd in taps.items()}
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([trunk.fileno(), *by_fd], [], [])
        for fd in ready:
            if fd == trunk.fileno():
                frame, anc, _, addr = trunk.recvmsg(65535, socket.CMSG_SPACE(20))
                # Only what arrives from the wire (not our own transmissions).
                if addr[2] == socket.PACKET_OUTGOING or len(frame) < 14:
                    continue
                vid = None
                for level, kind, data in anc:
                    if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= 20:
                        status, _, _, _, _, tci, _ = struct.unpack("IIIHHHH", data[:20])
                        if status & TP_STATUS_VLAN_VALID:
                            vid = tci & 0x0FFF
                if vid is None and frame[12:14] == b"\x81\x00" and len(frame) >= 18:
                    vid = struct.unpack("!H", frame[14:16])[0] & 0x0FFF
                    frame = frame[:12] + frame[16:]
                if vid in taps:
                    os.write(taps[vid], frame)
            else:
                frame = os.read(fd, 65535)
                if len(frame) >= 14:
                    trunk.send(frame[:12] + struct.pack("!HH", 0x8100, by_fd[fd]) + frame[12:])


if __name__ == "__main__":
    main()

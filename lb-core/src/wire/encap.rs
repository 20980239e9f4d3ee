//! Builders for the tunnel headers the `tun`, `gue` and `gre` forwarding modes put in front of a
//! client packet: IP-in-IP (RFC 2003), IPv6-in-IPv6 / IPv4-in-IPv6 / IPv6-in-IPv4 (RFC 2473,
//! RFC 4213), Generic UDP Encapsulation (GUE, draft-ietf-intarea-gue) version 0 with no
//! extension fields, and GRE (RFC 2784) without checksum, key or sequence number, as IPVS's
//! `--tun-type gre` sends it by default.

use super::{checksum, ip_proto, ipv4, ipv6, udp};

/// GUE base header length (version 0, no optional fields).
pub const GUE_HEADER_LEN: usize = 4;
/// GRE base header length (RFC 2784, no checksum).
pub const GRE_HEADER_LEN: usize = 4;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;

/// Outer addresses of a tunnel; the outer family is the backend's family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoints {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

impl Endpoints {
    /// Length of the outer IP header.
    pub fn ip_header_len(&self) -> usize {
        match self {
            Endpoints::V4 { .. } => ipv4::HEADER_LEN,
            Endpoints::V6 { .. } => ipv6::HEADER_LEN,
        }
    }
}

/// The protocol number naming the inner packet's family in the outer header.
pub fn inner_protocol(inner_is_v6: bool) -> u8 {
    if inner_is_v6 { ip_proto::IPV6 } else { ip_proto::IPIP }
}

/// Bytes an IP-in-IP header adds.
pub fn ipip_overhead(outer: &Endpoints) -> usize {
    outer.ip_header_len()
}

/// Bytes a GUE encapsulation adds (outer IP, UDP, GUE header).
pub fn gue_overhead(outer: &Endpoints) -> usize {
    outer.ip_header_len() + udp::HEADER_LEN + GUE_HEADER_LEN
}

/// Bytes a GRE encapsulation adds (outer IP, GRE header, and its checksum words when asked).
pub fn gre_overhead(outer: &Endpoints, checksum: bool) -> usize {
    outer.ip_header_len() + GRE_HEADER_LEN + if checksum { GRE_CHECKSUM_LEN } else { 0 }
}

/// The checksum and reserved words a GRE header with the C bit carries.
pub const GRE_CHECKSUM_LEN: usize = 4;

/// GUE's UDP ports, and whether its UDP checksum is computed over IPv4 too.
#[derive(Debug, Clone, Copy)]
pub struct GuePorts {
    pub src: u16,
    pub dst: u16,
    pub checksum: bool,
}

/// Per-packet values of the outer header.
#[derive(Debug, Clone, Copy)]
pub struct OuterFields {
    pub ttl: u8,
    pub dscp_ecn: u8,
    /// Copied from the inner IPv4 header's DF bit; always set for an IPv6 inner packet.
    pub dont_frag: bool,
    /// Outer IPv4 identification or IPv6 flow label (entropy for ECMP between LB and backend).
    pub entropy: u32,
}

fn emit_outer_ip(buf: &mut [u8], outer: &Endpoints, next: u8, payload_len: usize, f: &OuterFields) {
    let payload_len = u16::try_from(payload_len).unwrap_or(u16::MAX);
    match *outer {
        Endpoints::V4 { src, dst } => ipv4::emit(
            buf,
            &ipv4::Repr {
                src,
                dst,
                protocol: next,
                payload_len,
                ttl: f.ttl,
                dscp_ecn: f.dscp_ecn,
                ident: (f.entropy & 0xffff) as u16,
                dont_frag: f.dont_frag,
            },
        ),
        Endpoints::V6 { src, dst } => ipv6::emit(
            buf,
            &ipv6::Repr {
                src,
                dst,
                next_header: next,
                payload_len,
                hop_limit: f.ttl,
                traffic_class: f.dscp_ecn,
                flow_label: f.entropy & 0x000f_ffff,
            },
        ),
    }
}

/// Writes an IP-in-IP header at the start of `buf`; the inner packet of `inner_len` bytes follows.
pub fn emit_ipip(buf: &mut [u8], outer: &Endpoints, inner_is_v6: bool, inner_len: usize, f: &OuterFields) {
    emit_outer_ip(buf, outer, inner_protocol(inner_is_v6), inner_len, f);
}

/// Writes outer IP, UDP (source port carries the flow's entropy) and GUE header at the start of
/// `buf`, which holds the whole packet (the inner packet follows). Over IPv4 the UDP checksum is
/// zero (allowed for tunnels) unless `ports.checksum`; over IPv6 it is always computed, because
/// receivers drop zero checksums.
pub fn emit_gue(
    buf: &mut [u8],
    outer: &Endpoints,
    inner_is_v6: bool,
    inner_len: usize,
    ports: GuePorts,
    f: &OuterFields,
) {
    let (src_port, dst_port) = (ports.src, ports.dst);
    let ip_len = outer.ip_header_len();
    let udp_len = udp::HEADER_LEN + GUE_HEADER_LEN + inner_len;
    emit_outer_ip(buf, outer, ip_proto::UDP, udp_len, f);
    let gue = &mut buf[ip_len + udp::HEADER_LEN..ip_len + udp::HEADER_LEN + GUE_HEADER_LEN];
    gue.copy_from_slice(&[0, inner_protocol(inner_is_v6), 0, 0]);
    let mut u = udp::Packet::new_unchecked(&mut buf[ip_len..ip_len + udp_len]);
    u.set_src_port(src_port);
    u.set_dst_port(dst_port);
    u.set_len(u16::try_from(udp_len).unwrap_or(u16::MAX));
    u.set_checksum(0);
    match *outer {
        Endpoints::V6 { src, dst } => {
            // udp_len fits u32: it is at most a jumbo frame.
            let pseudo = checksum::pseudo_v6(src, dst, ip_proto::UDP, u32::try_from(udp_len).unwrap_or(u32::MAX));
            u.fill_checksum(pseudo);
        }
        Endpoints::V4 { src, dst } if ports.checksum => {
            let pseudo = checksum::pseudo_v4(src, dst, ip_proto::UDP, u16::try_from(udp_len).unwrap_or(u16::MAX));
            u.fill_checksum(pseudo);
        }
        Endpoints::V4 { .. } => {}
    }
}

/// Writes outer IP and a GRE header (version 0, the inner packet's EtherType; with `checksum`
/// the C bit and the checksum of the GRE header and payload) at the start of `buf`; the inner
/// packet of `inner_len` bytes follows.
pub fn emit_gre(
    buf: &mut [u8],
    outer: &Endpoints,
    inner_is_v6: bool,
    inner_len: usize,
    checksum: bool,
    f: &OuterFields,
) {
    let ip_len = outer.ip_header_len();
    let gre_len = GRE_HEADER_LEN + if checksum { GRE_CHECKSUM_LEN } else { 0 };
    emit_outer_ip(buf, outer, IPPROTO_GRE, gre_len + inner_len, f);
    let ethertype: u16 = if inner_is_v6 { 0x86dd } else { 0x0800 };
    buf[ip_len..ip_len + 2].copy_from_slice(&[if checksum { 0x80 } else { 0 }, 0]);
    buf[ip_len + 2..ip_len + GRE_HEADER_LEN].copy_from_slice(&ethertype.to_be_bytes());
    if checksum {
        let gre = &mut buf[ip_len..ip_len + gre_len + inner_len];
        gre[GRE_HEADER_LEN..gre_len].fill(0);
        let sum = checksum::finish(0, gre);
        gre[GRE_HEADER_LEN..GRE_HEADER_LEN + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_v4_header() {
        let outer = Endpoints::V4 { src: [10, 1, 0, 1], dst: [10, 1, 0, 2] };
        let mut buf = vec![0xa5u8; gre_overhead(&outer, false) + 40];
        emit_gre(&mut buf, &outer, true, 40, false, &F);
        let p = ipv4::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!((p.protocol(), p.total_len(), p.ident()), (47, 64, 0x1234));
        assert!(p.verify_checksum());
        assert_eq!(&buf[20..24], &[0, 0, 0x86, 0xdd], "no flags, version 0, IPv6 inside");
    }

    const F: OuterFields = OuterFields { ttl: 64, dscp_ecn: 0, dont_frag: true, entropy: 0x1234 };

    #[test]
    fn ipip_v4_header() {
        let mut buf = vec![0xa5u8; 20 + 28];
        let outer = Endpoints::V4 { src: [10, 1, 0, 1], dst: [10, 1, 0, 2] };
        emit_ipip(&mut buf, &outer, false, 28, &F);
        let p = ipv4::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(
            (p.protocol(), p.total_len(), p.ident(), p.src(), p.dst()),
            (4, 48, 0x1234, [10, 1, 0, 1], [10, 1, 0, 2])
        );
        assert!(p.verify_checksum() && p.dont_frag());
    }

    #[test]
    fn gue_v6_header_has_valid_udp_checksum() {
        let outer = Endpoints::V6 { src: [0xfd; 16], dst: [0xfe; 16] };
        let mut buf = vec![0u8; gue_overhead(&outer) + 20];
        let inner_len = 20;
        buf[gue_overhead(&outer)..].copy_from_slice(&[0x45; 20]);
        emit_gue(&mut buf, &outer, false, inner_len, GuePorts { src: 40000, dst: 6080, checksum: false }, &F);
        let p = ipv6::Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(p.next_header(), ip_proto::UDP);
        assert_eq!(p.flow_label(), 0x1234);
        let u = udp::Packet::new_checked(p.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (40000, 6080, 32));
        assert!(u.verify_checksum(checksum::pseudo_v6(p.src(), p.dst(), 17, 32)));
        assert_eq!(&u.payload()[..4], &[0, 4, 0, 0]);
    }
}

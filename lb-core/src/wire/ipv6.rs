//! IPv6 headers (RFC 8200) and the walk over hop-by-hop, routing, destination-options and
//! fragment extension headers down to the upper-layer protocol.

use super::{Error, Result, get_array, get_u16, get_u32, ip_proto, set_u16};

mod field {
    use crate::wire::Field;
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Most extension headers walked; a longer chain is treated as malformed (an attack, in practice).
pub const MAX_EXT_HEADERS: usize = 8;

/// What the extension-header walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upper {
    /// Upper-layer protocol (the last Next Header).
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// Fragment header, when present.
    pub fragment: Option<FragmentInfo>,
}

/// The fields of a fragment extension header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Fragment offset in bytes.
    pub offset: u16,
    pub more: bool,
    pub ident: u32,
}

/// A view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after `check_len`.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks version 6 and that the payload length fits in the buffer.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if b.len() < HEADER_LEN + usize::from(get_u16(b, field::PAYLOAD_LEN)) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version field.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Traffic class.
    pub fn traffic_class(&self) -> u8 {
        let v = get_u32(self.buffer.as_ref(), field::VER_TC_FLOW);
        ((v >> 20) & 0xff) as u8
    }
    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }
    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }
    /// First Next Header field.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }
    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        get_array(self.buffer.as_ref(), field::SRC.start)
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        get_array(self.buffer.as_ref(), field::DST.start)
    }
    /// Payload after the fixed header, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }
    /// Total length of header and payload.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// Walks the extension headers to the upper layer. Hop-by-hop anywhere but first, a header
    /// running past the payload, or more than `MAX_EXT_HEADERS` headers is an error.
    pub fn upper_layer(&self) -> Result<Upper> {
        let b = &self.buffer.as_ref()[..self.total_len()];
        let mut next = self.next_header();
        let mut at = HEADER_LEN;
        let mut fragment = None;
        for i in 0..=MAX_EXT_HEADERS {
            match next {
                ip_proto::HOPOPT | ip_proto::IPV6_ROUTE | ip_proto::IPV6_OPTS => {
                    if next == ip_proto::HOPOPT && i != 0 {
                        return Err(Error::Malformed);
                    }
                    if b.len() < at + 8 {
                        return Err(Error::Truncated);
                    }
                    let len = (usize::from(b[at + 1]) + 1) * 8;
                    if b.len() < at + len {
                        return Err(Error::Truncated);
                    }
                    // A routing header with segments left asks this node to route the packet
                    // on (RFC 8200 4.4; type 0 is deprecated by RFC 5095): never for a VIP.
                    if next == ip_proto::IPV6_ROUTE && b[at + 3] != 0 {
                        return Err(Error::Malformed);
                    }
                    next = b[at];
                    at += len;
                }
                ip_proto::IPV6_FRAG => {
                    if b.len() < at + 8 {
                        return Err(Error::Truncated);
                    }
                    let off_flags = get_u16(b, at + 2);
                    fragment = Some(FragmentInfo {
                        offset: off_flags & 0xfff8,
                        more: off_flags & 1 == 1,
                        ident: get_u32(b, at + 4),
                    });
                    next = b[at];
                    at += 8;
                }
                protocol => return Ok(Upper { protocol, offset: at, fragment }),
            }
        }
        Err(Error::Malformed)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::PAYLOAD_LEN, len);
    }
    /// Sets the first Next Header.
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NEXT_HEADER] = nh;
    }
    /// Sets the hop limit.
    pub fn set_hop_limit(&mut self, hl: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hl;
    }
    /// Sets the source address.
    pub fn set_src(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr);
    }
    /// Sets the destination address.
    pub fn set_dst(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr);
    }
}

/// Fields of a header written by `emit`.
#[derive(Debug, Clone, Copy)]
pub struct Repr {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub next_header: u8,
    pub payload_len: u16,
    pub hop_limit: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
}

/// Writes a 40-byte header at the start of `buf`.
pub fn emit(buf: &mut [u8], r: &Repr) {
    let vtf = (6u32 << 28) | (u32::from(r.traffic_class) << 20) | (r.flow_label & 0x000f_ffff);
    buf[..4].copy_from_slice(&vtf.to_be_bytes());
    let mut p = Packet::new_unchecked(&mut buf[..HEADER_LEN]);
    p.set_payload_len(r.payload_len);
    p.set_next_header(r.next_header);
    p.set_hop_limit(r.hop_limit);
    p.set_src(r.src);
    p.set_dst(r.dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn with_payload(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        emit(
            &mut b,
            &Repr {
                src: SRC,
                dst: DST,
                next_header: next,
                payload_len: u16::try_from(payload.len()).unwrap(),
                hop_limit: 64,
                traffic_class: 0xb8,
                flow_label: 0x12345,
            },
        );
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn reads_every_field() {
        let b = with_payload(ip_proto::UDP, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), ip_proto::UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src(), SRC);
        assert_eq!(p.dst(), DST);
        assert_eq!(p.upper_layer().unwrap(), Upper { protocol: ip_proto::UDP, offset: 40, fragment: None });
    }

    #[test]
    fn walks_every_extension_header() {
        let mut payload = vec![];
        payload.extend_from_slice(&[ip_proto::IPV6_ROUTE, 0, 1, 4, 0, 0, 0, 0]); // hop-by-hop, padn
        payload.extend_from_slice(&[ip_proto::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]); // routing type 0, 0 left
        payload.extend_from_slice(&[ip_proto::IPV6_FRAG, 1, 1, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // dest opts, 16 bytes
        payload.extend_from_slice(&[ip_proto::TCP, 0, 0x05, 0x39, 0xca, 0xfe, 0xba, 0xbe]); // frag: offset 0x538 (1336), MF
        let b = with_payload(ip_proto::HOPOPT, &payload);
        let up = Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert_eq!(up.protocol, ip_proto::TCP);
        assert_eq!(up.offset, 40 + 8 + 8 + 16 + 8);
        assert_eq!(up.fragment, Some(FragmentInfo { offset: 0x538, more: true, ident: 0xcafe_babe }));
    }

    #[test]
    fn rejects_bad_chains() {
        let b = with_payload(ip_proto::UDP, &[0; 8]);
        assert_eq!(Packet::new_checked(&b[..39]).unwrap_err(), Error::Truncated);
        assert_eq!(Packet::new_checked(&b[..47]).unwrap_err(), Error::Truncated);
        let mut v4 = b.clone();
        v4[0] = 0x45;
        assert_eq!(Packet::new_checked(&v4[..]).unwrap_err(), Error::Malformed);
        // Hop-by-hop after a destination-options header.
        let late_hbh = with_payload(
            ip_proto::IPV6_OPTS,
            &[ip_proto::HOPOPT, 0, 0, 0, 0, 0, 0, 0, ip_proto::TCP, 0, 0, 0, 0, 0, 0, 0],
        );
        assert_eq!(Packet::new_checked(&late_hbh[..]).unwrap().upper_layer().unwrap_err(), Error::Malformed);
        // A routing header with segments left: lbd would have to route the packet on.
        let routed = with_payload(ip_proto::IPV6_ROUTE, &[ip_proto::TCP, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(Packet::new_checked(&routed[..]).unwrap().upper_layer().unwrap_err(), Error::Malformed);
        // An options header that claims more than the payload holds.
        let long = with_payload(ip_proto::IPV6_OPTS, &[ip_proto::TCP, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Packet::new_checked(&long[..]).unwrap().upper_layer().unwrap_err(), Error::Truncated);
        // A chain longer than MAX_EXT_HEADERS.
        let mut chain = vec![];
        for _ in 0..=MAX_EXT_HEADERS {
            chain.extend_from_slice(&[ip_proto::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let deep = with_payload(ip_proto::IPV6_OPTS, &chain);
        assert_eq!(Packet::new_checked(&deep[..]).unwrap().upper_layer().unwrap_err(), Error::Malformed);
    }
}

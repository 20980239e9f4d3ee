//! ICMPv6 (RFC 4443) and the neighbour discovery messages the load balancer answers (RFC 4861):
//! echo, destination unreachable, packet too big, time exceeded, neighbour solicitation and
//! advertisement with their link-layer address options.

use super::checksum;
use super::ethernet::MacAddr;
use super::{Error, Result, get_array, get_u16, get_u32, set_u16, set_u32};

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const MTU: usize = 4;
    pub const ND_FLAGS: usize = 4;
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}

/// Length of the header (type, code, checksum and the 4-byte rest of header).
pub const HEADER_LEN: usize = 8;
/// Length of a neighbour solicitation or advertisement without options.
pub const ND_LEN: usize = field::ND_OPTIONS;
/// Length of one link-layer address option for Ethernet.
pub const LLADDR_OPT_LEN: usize = 8;

pub const TYPE_DEST_UNREACHABLE: u8 = 1;
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
pub const TYPE_TIME_EXCEEDED: u8 = 3;
pub const TYPE_ECHO_REQUEST: u8 = 128;
pub const TYPE_ECHO_REPLY: u8 = 129;
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
pub const OPT_SOURCE_LLADDR: u8 = 1;
pub const OPT_TARGET_LLADDR: u8 = 2;
pub const NA_FLAG_ROUTER: u32 = 0x8000_0000;
pub const NA_FLAG_SOLICITED: u32 = 0x4000_0000;
pub const NA_FLAG_OVERRIDE: u32 = 0x2000_0000;

/// A view of an ICMPv6 message.
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

    /// Checks the header, and for NS/NA the target address, are present.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if matches!(b[field::TYPE], TYPE_NEIGHBOR_SOLICIT | TYPE_NEIGHBOR_ADVERT) && b.len() < ND_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }
    /// Echo sequence number.
    pub fn echo_seq(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQ)
    }
    /// MTU of a packet-too-big message.
    pub fn mtu(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::MTU)
    }
    /// True for the error types that quote an offending packet.
    pub fn is_error(&self) -> bool {
        matches!(self.msg_type(), TYPE_DEST_UNREACHABLE | TYPE_PACKET_TOO_BIG | TYPE_TIME_EXCEEDED)
    }
    /// NA flags word (router, solicited, override).
    pub fn nd_flags(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ND_FLAGS)
    }
    /// Target address of a neighbour solicitation or advertisement.
    pub fn nd_target(&self) -> [u8; 16] {
        get_array(self.buffer.as_ref(), field::ND_TARGET)
    }
    /// The Ethernet address carried in the first option of `kind`, if present and well formed.
    /// A zero-length option makes the message invalid (RFC 4861 §4.6), reported as an error.
    pub fn nd_lladdr_option(&self, kind: u8) -> Result<Option<MacAddr>> {
        let b = self.buffer.as_ref();
        let mut at = ND_LEN;
        while at + 2 <= b.len() {
            let len = usize::from(b[at + 1]) * 8;
            if len == 0 {
                return Err(Error::Malformed);
            }
            if at + len > b.len() {
                return Err(Error::Truncated);
            }
            if b[at] == kind && len >= LLADDR_OPT_LEN {
                return Ok(Some(MacAddr(get_array(b, at + 2))));
            }
            at += len;
        }
        Ok(None)
    }
    /// Bytes after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// True when the checksum over the pseudo-header sum and the message holds.
    pub fn verify_checksum(&self, pseudo: u32) -> bool {
        checksum::finish(pseudo, self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    /// Sets the code.
    pub fn set_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT, v);
    }
    /// Sets the echo sequence number.
    pub fn set_echo_seq(&mut self, v: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_SEQ, v);
    }
    /// Sets the MTU of a packet-too-big message.
    pub fn set_mtu(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::MTU, v);
    }
    /// Sets the NA flags word.
    pub fn set_nd_flags(&mut self, v: u32) {
        set_u32(self.buffer.as_mut(), field::ND_FLAGS, v);
    }
    /// Sets the target address of NS/NA.
    pub fn set_nd_target(&mut self, addr: [u8; 16]) {
        self.buffer.as_mut()[field::ND_TARGET..field::ND_TARGET + 16].copy_from_slice(&addr);
    }
    /// Writes one Ethernet link-layer option right after the NS/NA body (needs 32 bytes).
    pub fn set_nd_lladdr_option(&mut self, kind: u8, mac: MacAddr) {
        let b = self.buffer.as_mut();
        b[ND_LEN] = kind;
        b[ND_LEN + 1] = 1;
        b[ND_LEN + 2..ND_LEN + 8].copy_from_slice(&mac.0);
    }
    /// Recomputes the checksum over the pseudo-header sum and the whole message.
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish(pseudo, self.buffer.as_ref());
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];

    fn solicitation() -> Vec<u8> {
        let mut b = vec![0xa5u8; 32];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_NEIGHBOR_SOLICIT);
        p.set_code(0);
        p.set_nd_flags(0);
        p.set_nd_target(TARGET);
        p.set_nd_lladdr_option(OPT_SOURCE_LLADDR, MacAddr([2, 0, 0, 0, 0, 9]));
        p.fill_checksum(0);
        b
    }

    #[test]
    fn nd_fields_round_trip() {
        let b = solicitation();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.msg_type(), TYPE_NEIGHBOR_SOLICIT);
        assert_eq!(p.nd_target(), TARGET);
        assert_eq!(p.nd_flags(), 0);
        assert_eq!(p.nd_lladdr_option(OPT_SOURCE_LLADDR).unwrap(), Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(p.nd_lladdr_option(OPT_TARGET_LLADDR).unwrap(), None);
        assert!(p.verify_checksum(0));
    }

    #[test]
    fn echo_and_too_big_fields() {
        let mut b = [0xa5u8; 8];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_msg_type(TYPE_ECHO_REQUEST);
        p.set_echo_ident(9);
        p.set_echo_seq(10);
        assert_eq!((p.echo_ident(), p.echo_seq()), (9, 10));
        p.set_msg_type(TYPE_PACKET_TOO_BIG);
        p.set_mtu(1280);
        assert_eq!(p.mtu(), 1280);
        assert!(p.is_error());
    }

    #[test]
    fn rejects_bad_nd() {
        let b = solicitation();
        assert_eq!(Packet::new_checked(&b[..23]).unwrap_err(), Error::Truncated);
        let mut zero_len_opt = b.clone();
        zero_len_opt[25] = 0;
        assert_eq!(Packet::new_checked(&zero_len_opt[..]).unwrap().nd_lladdr_option(1).unwrap_err(), Error::Malformed);
        let mut long_opt = b;
        long_opt[25] = 2;
        assert_eq!(Packet::new_checked(&long_opt[..]).unwrap().nd_lladdr_option(1).unwrap_err(), Error::Truncated);
    }
}

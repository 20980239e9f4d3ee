//! Ethernet II frames with up to two 802.1Q / 802.1ad VLAN tags.

use super::{Error, Result, get_u16, set_u16};
use core::fmt;

/// A 48-bit MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// True for group (multicast and broadcast) addresses.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// The IPv6 multicast MAC (33:33 + low 32 bits of the group, RFC 2464 §7).
    pub fn ipv6_multicast(group: [u8; 16]) -> MacAddr {
        MacAddr([0x33, 0x33, group[12], group[13], group[14], group[15]])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl core::str::FromStr for MacAddr {
    type Err = &'static str;
    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or("a MAC address has six colon-separated bytes")?;
            *byte = u8::from_str_radix(p, 16).map_err(|_| "a MAC address byte is two hex digits")?;
        }
        if parts.next().is_some() {
            return Err("a MAC address has six colon-separated bytes");
        }
        Ok(MacAddr(out))
    }
}

/// EtherType values the load balancer understands.
pub struct EtherType;
impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
}

mod field {
    use crate::wire::Field;
    pub const DST: Field = 0..6;
    pub const SRC: Field = 6..12;
    pub const TYPE: usize = 12;
    pub const HEADER_LEN: usize = 14;
    pub const TAG_LEN: usize = 4;
}

/// Most VLAN tags walked before the EtherType (802.1ad outer plus 802.1Q inner).
pub const MAX_TAGS: usize = 2;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checks; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer after `check_len` proved the header and every VLAN tag are present.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Checks that the header, including VLAN tags, fits; more than `MAX_TAGS` tags is malformed.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        let mut at = field::TYPE;
        for _ in 0..=MAX_TAGS {
            if b.len() < at + 2 {
                return Err(Error::Truncated);
            }
            match get_u16(b, at) {
                EtherType::VLAN | EtherType::QINQ => at += field::TAG_LEN,
                _ => return Ok(()),
            }
        }
        Err(Error::Malformed)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination MAC address.
    pub fn dst(&self) -> MacAddr {
        MacAddr(super::get_array(self.buffer.as_ref(), field::DST.start))
    }

    /// Source MAC address.
    pub fn src(&self) -> MacAddr {
        MacAddr(super::get_array(self.buffer.as_ref(), field::SRC.start))
    }

    /// Number of VLAN tags in front of the EtherType.
    pub fn tag_count(&self) -> usize {
        let b = self.buffer.as_ref();
        let mut n = 0;
        while n < MAX_TAGS && matches!(get_u16(b, field::TYPE + n * field::TAG_LEN), EtherType::VLAN | EtherType::QINQ)
        {
            n += 1;
        }
        n
    }

    /// VLAN id of the outermost tag, if any.
    pub fn vlan_id(&self) -> Option<u16> {
        if self.tag_count() == 0 {
            return None;
        }
        Some(get_u16(self.buffer.as_ref(), field::TYPE + 2) & 0x0fff)
    }

    /// EtherType of the payload (after the tags).
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buffer.as_ref(), self.ethertype_offset())
    }

    fn ethertype_offset(&self) -> usize {
        field::TYPE + self.tag_count() * field::TAG_LEN
    }

    /// Length of the header including VLAN tags.
    pub fn header_len(&self) -> usize {
        field::HEADER_LEN + self.tag_count() * field::TAG_LEN
    }

    /// The payload after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&mac.0);
    }

    /// Sets the source MAC address.
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&mac.0);
    }

    /// Sets the payload EtherType (after the tags).
    pub fn set_ethertype(&mut self, ethertype: u16) {
        let at = self.ethertype_offset();
        set_u16(self.buffer.as_mut(), at, ethertype);
    }

    /// Mutable payload after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// Writes a plain (untagged) Ethernet header at the start of `buf`, which must hold 14 bytes.
pub fn emit(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) {
    buf[field::DST].copy_from_slice(&dst.0);
    buf[field::SRC].copy_from_slice(&src.0);
    set_u16(buf, field::TYPE, ethertype);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGGED: [u8; 20] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x81, 0x00, 0x20, 0x64, 0x08, 0x00, 0x45, 0x00];

    #[test]
    fn reads_every_field_of_a_tagged_frame() {
        let f = Frame::new_checked(&TAGGED[..]).unwrap();
        assert_eq!(f.dst(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.src(), MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.tag_count(), 1);
        assert_eq!(f.vlan_id(), Some(100));
        assert_eq!(f.ethertype(), EtherType::IPV4);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn writes_every_field() {
        let mut buf = [0xa5u8; 18];
        buf[12..16].copy_from_slice(&[0x81, 0x00, 0x20, 0x64]);
        let mut f = Frame::new_unchecked(&mut buf[..]);
        f.set_dst(MacAddr([2, 0, 0, 0, 0, 1]));
        f.set_src(MacAddr([2, 0, 0, 0, 0, 2]));
        f.set_ethertype(EtherType::IPV4);
        assert_eq!(&buf[..], &TAGGED[..18]);
    }

    #[test]
    fn rejects_short_and_over_tagged_frames() {
        assert_eq!(Frame::new_checked(&TAGGED[..13]).unwrap_err(), Error::Truncated);
        assert_eq!(Frame::new_checked(&TAGGED[..16]).unwrap_err(), Error::Truncated);
        let mut triple = vec![0u8; 12];
        triple.extend_from_slice(&[0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0]);
        assert_eq!(Frame::new_checked(&triple[..]).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn parses_mac_text() {
        assert_eq!("02:00:00:aa:bb:0c".parse::<MacAddr>().unwrap(), MacAddr([2, 0, 0, 0xaa, 0xbb, 0x0c]));
        assert!("02:00:00:aa:bb".parse::<MacAddr>().is_err());
        assert!("02:00:00:aa:bb:0c:01".parse::<MacAddr>().is_err());
        assert!("zz:00:00:aa:bb:0c".parse::<MacAddr>().is_err());
    }
}

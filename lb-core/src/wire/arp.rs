//! ARP for IPv4 over Ethernet (RFC 826). Other hardware or protocol types are malformed here.

use super::ethernet::MacAddr;
use super::{Error, Result, get_array, get_u16, set_u16};

mod field {
    use crate::wire::Field;
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = 28;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A view of an ARP packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer holding a complete Ethernet/IPv4 ARP packet.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks length and that hardware/protocol types are Ethernet/IPv4.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < LEN {
            return Err(Error::Truncated);
        }
        if get_u16(b, field::HTYPE) != 1
            || get_u16(b, field::PTYPE) != 0x0800
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    /// Operation (1 request, 2 reply).
    pub fn operation(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::OPER)
    }
    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), field::SHA.start))
    }
    /// Sender protocol address.
    pub fn sender_ip(&self) -> [u8; 4] {
        get_array(self.buffer.as_ref(), field::SPA.start)
    }
    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        MacAddr(get_array(self.buffer.as_ref(), field::THA.start))
    }
    /// Target protocol address.
    pub fn target_ip(&self) -> [u8; 4] {
        get_array(self.buffer.as_ref(), field::TPA.start)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the operation.
    pub fn set_operation(&mut self, op: u16) {
        set_u16(self.buffer.as_mut(), field::OPER, op);
    }
    /// Sets the sender hardware address.
    pub fn set_sender_mac(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&mac.0);
    }
    /// Sets the sender protocol address.
    pub fn set_sender_ip(&mut self, ip: [u8; 4]) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&ip);
    }
    /// Sets the target hardware address.
    pub fn set_target_mac(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&mac.0);
    }
    /// Sets the target protocol address.
    pub fn set_target_ip(&mut self, ip: [u8; 4]) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&ip);
    }
}

/// Writes a complete Ethernet/IPv4 ARP packet into `buf` (at least `LEN` bytes).
pub fn emit(buf: &mut [u8], op: u16, sender: (MacAddr, [u8; 4]), target: (MacAddr, [u8; 4])) {
    set_u16(buf, field::HTYPE, 1);
    set_u16(buf, field::PTYPE, 0x0800);
    buf[field::HLEN] = 6;
    buf[field::PLEN] = 4;
    let mut p = Packet::new_unchecked(buf);
    p.set_operation(op);
    p.set_sender_mac(sender.0);
    p.set_sender_ip(sender.1);
    p.set_target_mac(target.0);
    p.set_target_ip(target.1);
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: [u8; 28] = [0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 100];

    #[test]
    fn reads_every_field() {
        let p = Packet::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.operation(), OP_REQUEST);
        assert_eq!(p.sender_mac(), MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(p.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(p.target_mac(), MacAddr::ZERO);
        assert_eq!(p.target_ip(), [10, 0, 0, 100]);
    }

    #[test]
    fn emit_writes_every_field() {
        let mut buf = [0xa5u8; 28];
        emit(&mut buf, OP_REQUEST, (MacAddr([2, 0, 0, 0, 0, 1]), [10, 0, 0, 1]), (MacAddr::ZERO, [10, 0, 0, 100]));
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn rejects_short_and_foreign() {
        assert_eq!(Packet::new_checked(&REQUEST[..27]).unwrap_err(), Error::Truncated);
        let mut other = REQUEST;
        other[1] = 6; // IEEE 802 hardware type
        assert_eq!(Packet::new_checked(&other[..]).unwrap_err(), Error::Malformed);
    }
}

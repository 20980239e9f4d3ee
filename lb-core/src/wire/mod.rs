//! Zero-copy views over packet bytes, one module per protocol.
//!
//! Every view is `Packet<T: AsRef<[u8]>>` (or a protocol-named alias) with two constructors:
//! `new_unchecked` wraps any buffer, `new_checked` wraps it only after `check_len` proved that
//! every fixed field and every length the header claims lies inside the buffer. **Contract: once
//! `new_checked` (or `check_len`) succeeded, no accessor and no setter of that view panics.**
//! Setters exist only when `T: AsMut<[u8]>`, so the same code reads a `Vec<u8>` in tests and an
//! mbuf's data in production. Fields are read at byte offsets (never by casting to packed
//! structs, which would create unaligned references).

pub mod arp;
pub mod checksum;
pub mod encap;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

use core::fmt;

/// Why a buffer is not a valid packet of the expected protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header or than a length the header claims.
    Truncated,
    /// A field holds a value the protocol forbids (bad version, IHL below 5, ...).
    Malformed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated packet"),
            Error::Malformed => f.write_str("malformed packet"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// A byte range inside a header.
pub(crate) type Field = core::ops::Range<usize>;

/// IP protocol numbers used by the load balancer.
pub mod ip_proto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
}

// The readers take their bytes as one range, one bounds check: byte by byte, each byte was
// checked on its own and loaded on its own (22 instructions for a u32).
#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(get_array(b, at))
}

#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(get_array(b, at))
}

#[inline]
pub(crate) fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn get_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// The `N` bytes of `b` from `at` in place, or `None` when `b` is shorter.
#[inline]
pub(crate) fn array_at<const N: usize>(b: &[u8], at: usize) -> Option<&[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

pub use ethernet::{EtherType, Frame as EthernetFrame, MacAddr};
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::Packet as Ipv6Packet;
pub use tcp::Packet as TcpPacket;
pub use udp::Packet as UdpPacket;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_at_borrows_in_place_or_refuses_a_short_buffer() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(array_at::<2>(&b, 3), Some(&[4, 5]));
        assert_eq!(array_at::<5>(&b, 0), Some(&b));
        assert_eq!(array_at::<2>(&b, 4), None);
        assert_eq!(array_at::<1>(&b, usize::MAX), None);
    }
}

//! Flow keys (the 5-tuple for IPv4 and IPv6), the Toeplitz hash NICs use for RSS, and a fast
//! non-cryptographic hash for indexing the connection and neighbour tables.

use std::net::IpAddr;

/// The 5-tuple of a packet as seen on the wire. IPv4 addresses occupy the first four bytes of
/// `src`/`dst` with the rest zero; `v6` tells the families apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct FlowKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub v6: bool,
}

impl FlowKey {
    /// Key of an IPv4 flow.
    pub fn v4(src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16, proto: u8) -> Self {
        FlowKey { src: widen(src), dst: widen(dst), src_port, dst_port, proto, v6: false }
    }

    /// Key of an IPv6 flow.
    pub fn v6(src: [u8; 16], dst: [u8; 16], src_port: u16, dst_port: u16, proto: u8) -> Self {
        FlowKey { src, dst, src_port, dst_port, proto, v6: true }
    }

    /// The key of the opposite direction.
    pub fn reversed(&self) -> Self {
        FlowKey { src: self.dst, dst: self.src, src_port: self.dst_port, dst_port: self.src_port, ..*self }
    }

    /// Source address as a standard type (control plane and display only).
    pub fn src_ip(&self) -> IpAddr {
        to_ip(self.src, self.v6)
    }

    /// Destination address as a standard type (control plane and display only).
    pub fn dst_ip(&self) -> IpAddr {
        to_ip(self.dst, self.v6)
    }
}

/// What a frame's IP header says of its flow, read without validation: for decisions that only
/// need a good guess before (or instead of) the checked parse, such as warming the connection
/// table for a burst or steering a packet to the worker that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub v6: bool,
    /// IPv4 protocol, or the IPv6 next header (an extension header's number when there is one).
    pub proto: u8,
    /// TCP/UDP ports, when the transport header follows the IP header and is there: never for a
    /// later fragment.
    pub ports: Option<(u16, u16)>,
}

impl Peek {
    /// The 5-tuple of a TCP or UDP packet whose ports are known.
    pub fn key(&self) -> Option<FlowKey> {
        let (src_port, dst_port) = self.ports?;
        Some(FlowKey { src: self.src, dst: self.dst, src_port, dst_port, proto: self.proto, v6: self.v6 })
    }
}

/// Reads addresses, protocol and ports of an Ethernet (optionally VLAN-tagged) frame carrying
/// IPv4 or IPv6; `None` for anything else or a frame too short for its IP header. Bounds are
/// checked, nothing else is: lengths, checksums and versions are the pipeline's job.
pub fn peek(frame: &[u8]) -> Option<Peek> {
    use crate::wire::{EtherType, EthernetFrame, ip_proto};
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let l3 = eth.header_len();
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let (v6, proto, l4) = match eth.ethertype() {
        EtherType::IPV4 => {
            let ip = frame.get(l3..l3 + 20)?;
            src[..4].copy_from_slice(&ip[12..16]);
            dst[..4].copy_from_slice(&ip[16..20]);
            // Only an unfragmented packet or a first fragment carries the transport header.
            let first = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            (false, ip[9], first.then(|| l3 + usize::from(ip[0] & 0x0f) * 4))
        }
        EtherType::IPV6 => {
            let ip = frame.get(l3..l3 + 40)?;
            src.copy_from_slice(&ip[8..24]);
            dst.copy_from_slice(&ip[24..40]);
            (true, ip[6], Some(l3 + 40))
        }
        _ => return None,
    };
    let ports = l4
        .filter(|_| matches!(proto, ip_proto::TCP | ip_proto::UDP))
        .and_then(|at| frame.get(at..at + 4))
        .map(|p| (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]])));
    Some(Peek { src, dst, v6, proto, ports })
}

/// Pads an IPv4 address to the 16-byte form used in keys.
///
/// Built as one 16-byte value, not by copying four bytes into zeros: the copy became three
/// stores of 4, 8 and 4 bytes, and the packet path's next 8- or 16-byte read of the address
/// spanned two of them, which the CPU cannot forward from its store buffer. It waited instead
/// for the stores to reach the cache, on every packet (bench/RESULTS.md §1).
#[inline(always)]
pub fn widen(a: [u8; 4]) -> [u8; 16] {
    u128::from(u32::from_le_bytes(a)).to_le_bytes()
}

/// The first four bytes of a widened IPv4 address.
pub fn narrow(a: &[u8; 16]) -> [u8; 4] {
    [a[0], a[1], a[2], a[3]]
}

/// Converts a standard address to the key form: bytes and an IPv6 flag.
pub fn from_ip(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(a) => (widen(a.octets()), false),
        IpAddr::V6(a) => (a.octets(), true),
    }
}

/// Converts the key form back to a standard address.
pub fn to_ip(a: [u8; 16], v6: bool) -> IpAddr {
    if v6 { IpAddr::from(a) } else { IpAddr::from(narrow(&a)) }
}

/// The Microsoft RSS verification key, used by most NICs as their default.
pub const RSS_KEY_DEFAULT: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// A key of repeated 0x6d5a: its hash is the same for both directions of a flow.
pub const RSS_KEY_SYMMETRIC: [u8; 40] = {
    let mut k = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
};

/// Longest hash input: IPv6 source, destination and both ports.
pub const MAX_INPUT: usize = 36;

/// The Toeplitz hash with a fixed key, table-driven: for every input byte position and byte
/// value the 32-bit contribution is precomputed, so hashing is one lookup and XOR per byte.
#[derive(Clone)]
pub struct Toeplitz {
    key: Vec<u8>,
    table: Vec<[u32; 256]>,
}

impl std::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toeplitz").field("key", &self.key).finish()
    }
}

impl Toeplitz {
    /// Builds the tables for `key`, which must be at least `MAX_INPUT + 4` bytes long.
    pub fn new(key: &[u8]) -> Result<Self, String> {
        if key.len() < MAX_INPUT + 4 {
            return Err(format!("an RSS key must be at least {} bytes, got {}", MAX_INPUT + 4, key.len()));
        }
        let mut table = vec![[0u32; 256]; MAX_INPUT];
        for (pos, row) in table.iter_mut().enumerate() {
            for bit in 0..8 {
                // The 32-bit window of the key that starts at input bit (pos * 8 + bit).
                let start = pos * 8 + bit;
                let window = key_window(key, start);
                for (value, slot) in row.iter_mut().enumerate() {
                    if value & (0x80 >> bit) != 0 {
                        *slot ^= window;
                    }
                }
            }
        }
        Ok(Toeplitz { key: key.to_vec(), table })
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Hash of `input` (at most `MAX_INPUT` bytes; longer input is hashed up to that length).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        input.iter().zip(&self.table).fold(0, |h, (b, row)| h ^ row[usize::from(*b)])
    }

    /// Hash of one input byte at `pos`, for linear decompositions (`hash(a ^ b) == hash(a) ^ hash(b)`).
    #[inline]
    pub fn byte_contribution(&self, pos: usize, value: u8) -> u32 {
        self.table.get(pos).map_or(0, |row| row[usize::from(value)])
    }

    /// Hash of a flow as a NIC computes it: addresses, then ports when `with_ports`.
    pub fn hash_flow(&self, key: &FlowKey, with_ports: bool) -> u32 {
        let (buf, len) = rss_input(key, with_ports);
        self.hash(&buf[..len])
    }
}

fn key_window(key: &[u8], bit: usize) -> u32 {
    let mut w = 0u32;
    for i in 0..32 {
        let b = bit + i;
        let set = key.get(b / 8).is_some_and(|byte| byte & (0x80 >> (b % 8)) != 0);
        w = (w << 1) | u32::from(set);
    }
    w
}

/// The RSS hash input for a flow: source and destination address, then source and destination
/// port; returns the buffer and the number of bytes used.
pub fn rss_input(key: &FlowKey, with_ports: bool) -> ([u8; MAX_INPUT], usize) {
    let mut buf = [0u8; MAX_INPUT];
    let alen = if key.v6 { 16 } else { 4 };
    buf[..alen].copy_from_slice(&key.src[..alen]);
    buf[alen..2 * alen].copy_from_slice(&key.dst[..alen]);
    if !with_ports {
        return (buf, 2 * alen);
    }
    buf[2 * alen..2 * alen + 2].copy_from_slice(&key.src_port.to_be_bytes());
    buf[2 * alen + 2..2 * alen + 4].copy_from_slice(&key.dst_port.to_be_bytes());
    (buf, 2 * alen + 4)
}

const K0: u64 = 0x9e37_79b9_7f4a_7c15;
const K1: u64 = 0xbf58_476d_1ce4_e5b9;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let p = u128::from(a ^ K0).wrapping_mul(u128::from(b ^ K1));
    // Folding the 128-bit product keeps every input bit's influence (wyhash's mum).
    #[allow(clippy::cast_possible_truncation)]
    let folded = (p as u64) ^ ((p >> 64) as u64);
    folded
}

#[inline]
fn word(b: &[u8; 16], half: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[half * 8..half * 8 + 8]);
    u64::from_le_bytes(w)
}

/// A fast, well-mixed 64-bit hash of a flow key for table indexing (not for RSS).
#[inline]
pub fn fast_hash(key: &FlowKey, seed: u64) -> u64 {
    let meta = (u64::from(key.src_port) << 32)
        | (u64::from(key.dst_port) << 16)
        | (u64::from(key.proto) << 8)
        | u64::from(key.v6);
    let a = mix(word(&key.src, 0) ^ seed, word(&key.dst, 0));
    let b = mix(word(&key.src, 1) ^ meta, word(&key.dst, 1) ^ seed.rotate_left(17));
    mix(a, b)
}

/// 64 random bits, for hash keys and secrets: std keys each thread's `RandomState` from
/// getrandom once, and every new one differs.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A fast hash of one address (the neighbour table's index): a single 128-bit multiply.
#[inline]
pub fn hash_addr(addr: &[u8; 16], v6: bool, seed: u64) -> u64 {
    mix(word(addr, 0) ^ seed, word(addr, 1) ^ u64::from(v6))
}

/// A fast hash of arbitrary bytes (addresses for the source-hash scheduler, Maglev names).
pub fn hash_bytes(data: &[u8], seed: u64) -> u64 {
    let mut h = mix(seed, data.len() as u64);
    for chunk in data.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        h = mix(h, u64::from_le_bytes(w));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(b: etherparse::PacketBuilderStep<etherparse::UdpHeader>) -> Vec<u8> {
        let mut out = Vec::new();
        b.write(&mut out, b"payload").unwrap();
        out
    }

    fn key_of(frame: &[u8]) -> Option<FlowKey> {
        peek(frame).and_then(|p| p.key())
    }

    #[test]
    fn widen_puts_the_address_first_and_zeros_after() {
        let a = [192, 0, 2, 0xfe];
        assert_eq!(widen(a), [192, 0, 2, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(narrow(&widen(a)), a);
        assert_eq!(from_ip(IpAddr::from(a)), (widen(a), false));
    }

    #[test]
    fn peek_reads_the_five_tuple_the_pipeline_looks_up() {
        use etherparse::{IpNumber, Ipv4Header, PacketBuilder};
        let (m1, m2) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let v4 = frame(PacketBuilder::ethernet2(m1, m2).ipv4([10, 0, 0, 2], [10, 0, 0, 100], 64).udp(5353, 53));
        assert_eq!(key_of(&v4), Some(FlowKey::v4([10, 0, 0, 2], [10, 0, 0, 100], 5353, 53, 17)));
        let (a, b) = ([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], [0xfd; 16]);
        let v6 = frame(PacketBuilder::ethernet2(m1, m2).ipv6(a, b, 64).udp(40000, 443));
        let want = FlowKey { src: a, dst: b, src_port: 40000, dst_port: 443, proto: 17, v6: true };
        assert_eq!(key_of(&v6), Some(want));

        // Options move the ports: a 24-byte IPv4 header.
        let mut ip = Ipv4Header::new(8 + 7, 64, IpNumber::UDP, [10, 0, 0, 2], [10, 0, 0, 100]).unwrap();
        ip.options = [1, 1, 1, 1][..].try_into().unwrap();
        let opts =
            frame(PacketBuilder::ethernet2(m1, m2).ip(etherparse::IpHeaders::Ipv4(ip, Default::default())).udp(7, 9));
        assert_eq!(key_of(&opts), Some(FlowKey::v4([10, 0, 0, 2], [10, 0, 0, 100], 7, 9, 17)));

        // A later fragment has no ports; ARP and truncated frames are not guessed at.
        let mut later = v4.clone();
        later[14 + 6..14 + 8].copy_from_slice(&0x0010u16.to_be_bytes());
        assert_eq!(key_of(&later), None);
        let mut arp = v4.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(key_of(&arp), None);
        assert_eq!(key_of(&v4[..14 + 20 + 2]), None);
    }

    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
        let s: Ipv4Addr = src.parse().unwrap();
        let d: Ipv4Addr = dst.parse().unwrap();
        FlowKey::v4(s.octets(), d.octets(), sport, dport, 6)
    }

    fn v6(src: &str, sport: u16, dst: &str, dport: u16) -> FlowKey {
        let s: Ipv6Addr = src.parse().unwrap();
        let d: Ipv6Addr = dst.parse().unwrap();
        FlowKey::v6(s.octets(), d.octets(), sport, dport, 6)
    }

    /// Microsoft's "Verifying the RSS Hash Calculation" table (also DPDK app/test/test_thash.c):
    /// (destination, source, hash of IPv4/IPv6 only, hash with TCP ports).
    #[test]
    fn toeplitz_matches_published_ipv4_vectors() {
        let t = Toeplitz::new(&RSS_KEY_DEFAULT).unwrap();
        let vectors = [
            ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323e_8fc2u32, 0x51cc_c178u32),
            ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xd718_262a, 0xc626_b0ea),
            ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xd2d0_a5de, 0x5c2b_394a),
            ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x8298_9176, 0xafc7_327f),
            ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5d18_09c5, 0x10e8_28a2),
        ];
        for (dst, dport, src, sport, ip_only, with_ports) in vectors {
            let k = v4(src, sport, dst, dport);
            assert_eq!(t.hash_flow(&k, false), ip_only, "{src} -> {dst}");
            assert_eq!(t.hash_flow(&k, true), with_ports, "{src}:{sport} -> {dst}:{dport}");
        }
    }

    #[test]
    fn toeplitz_matches_published_ipv6_vectors() {
        let t = Toeplitz::new(&RSS_KEY_DEFAULT).unwrap();
        let vectors = [
            ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2cc1_8cd5u32, 0x4020_7d3du32),
            ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0f0c_461c, 0xdde5_1bbf),
            ("fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251, 0x4b61_e985, 0x02d1_feef),
        ];
        for (dst, dport, src, sport, ip_only, with_ports) in vectors {
            let k = v6(src, sport, dst, dport);
            assert_eq!(t.hash_flow(&k, false), ip_only, "{src} -> {dst}");
            assert_eq!(t.hash_flow(&k, true), with_ports, "{src}:{sport} -> {dst}:{dport}");
        }
    }

    #[test]
    fn symmetric_key_hashes_both_directions_alike() {
        let t = Toeplitz::new(&RSS_KEY_SYMMETRIC).unwrap();
        for k in [v4("10.0.0.1", 40000, "10.0.0.100", 80), v6("fd00::1", 5, "fd00::9:1", 443)] {
            assert_eq!(t.hash_flow(&k, true), t.hash_flow(&k.reversed(), true));
        }
    }

    #[test]
    fn toeplitz_is_linear_in_its_input() {
        let t = Toeplitz::new(&RSS_KEY_DEFAULT).unwrap();
        let a = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let b = [0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34];
        let x: Vec<u8> = a.iter().zip(&b).map(|(p, q)| p ^ q).collect();
        assert_eq!(t.hash(&x), t.hash(&a) ^ t.hash(&b));
        assert_eq!(t.hash(&b), t.byte_contribution(10, 0x12) ^ t.byte_contribution(11, 0x34));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Toeplitz::new(&[0u8; 39]).unwrap_err().contains("40 bytes"));
    }

    #[test]
    fn fast_hash_separates_directions_and_families() {
        let k = v4("10.0.0.1", 1, "10.0.0.2", 2);
        assert_ne!(fast_hash(&k, 0), fast_hash(&k.reversed(), 0));
        let mut k6 = k;
        k6.v6 = true;
        assert_ne!(fast_hash(&k, 0), fast_hash(&k6, 0));
        assert_ne!(fast_hash(&k, 0), fast_hash(&k, 1));
    }
}

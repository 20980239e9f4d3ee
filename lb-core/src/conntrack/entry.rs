//! A connection as the table stores it: one cache line.
//!
//! At a million flows every lookup misses the caches, and the second line of a 128-byte
//! connection cost 8-10 ns per packet even with the misses overlapped (bench/RESULTS.md §1).
//! So the entry holds what forwarding reads and writes in 64 bytes: both keys with their
//! addresses cut to four bytes, the ids, mode, state, timers, forward progress and the SYN
//! proxy's sequence offset. What does not fit lives in side arrays that stay untouched (their
//! pages never written) until a connection needs them: the whole addresses of keys that are
//! not plain IPv4 (`Wide`), and the SYN proxy's client ISN and SYN time (`Handshake`).
//! The rest of lb-core sees whole `Conn`s, assembled by `ConnTable::get`; the established
//! path reads its IPv4 entries in place (`conntrack::ConnView`).

use super::state::TcpState;
use super::table::{Conn, SynProxy};
use crate::flow::FlowKey;
use crate::service::Mode;

/// The whole addresses of a connection whose keys are not plain IPv4: the orig key's src and
/// dst, then the reply key's.
pub type Wide = [[[u8; 16]; 2]; 2];

/// The SYN proxy's client ISN and the time the SYN last went to the backend.
pub(super) type Handshake = [u32; 2];

/// A key's addresses are in the side array (IPv6, or IPv4 with stray bytes past the fourth).
const ORIG_WIDE: u8 = 1;
const REPLY_WIDE: u8 = 2;
const ORIG_V6: u8 = 4;
const REPLY_V6: u8 = 8;
const REPLY_INDEXED: u8 = 16;
const LIVE: u8 = 32;
const TUNNEL_CSUM: u8 = 64;
/// The SYN proxy's fields are in the side array (they are not both zero).
const HANDSHAKE: u8 = 128;

/// One connection in one cache line (`entry_is_one_cache_line` holds it there).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
pub struct Entry {
    pub expires_ms: u64,
    /// Highest TCP acknowledgement seen per direction (`Dir as usize`).
    pub acked: [u32; 2],
    pub backend_id: u32,
    pub service_id: u32,
    pub synced_ms: u32,
    pub seq_delta: u32,
    /// The first four bytes of each address: orig src, orig dst, reply src, reply dst.
    addr4: [[u8; 4]; 4],
    /// Orig src and dst port, reply src and dst port.
    ports: [u16; 4],
    pub tunnel_port: u16,
    /// Both keys' protocol (a reply key is always of its connection's protocol).
    pub proto: u8,
    flags: u8,
    pub mode: Mode,
    pub state: TcpState,
    /// `PROGRESS_*` bits.
    pub progress: u8,
    pub synproxy: SynProxy,
}

/// `b` when `on`, else no bit.
const fn bit(on: bool, b: u8) -> u8 {
    if on { b } else { 0 }
}

/// Whether `c` has SYN proxy fields to keep in the side array.
fn has_handshake(c: &Conn) -> bool {
    c.client_isn != 0 || c.syn_sent_ms != 0
}

/// Whether `a` is an IPv4 address as `widen` makes it: four bytes, then zeros.
#[inline(always)]
fn narrow_exactly(a: &[u8; 16]) -> bool {
    u32::from_ne_bytes([a[4], a[5], a[6], a[7]]) == 0 && u64::from_ne_bytes(crate::wire::get_array(a, 8)) == 0
}

impl Entry {
    /// The entry for `c`, and its whole addresses when a key needs them.
    pub(super) fn pack(c: &Conn) -> (Entry, Option<Wide>) {
        let orig_wide = c.orig.v6 || !narrow_exactly(&c.orig.src) || !narrow_exactly(&c.orig.dst);
        let reply_wide = c.reply.v6 || !narrow_exactly(&c.reply.src) || !narrow_exactly(&c.reply.dst);
        let four = crate::flow::narrow;
        let e = Entry {
            expires_ms: c.expires_ms,
            acked: c.acked,
            backend_id: c.backend_id,
            service_id: c.service_id,
            synced_ms: c.synced_ms,
            seq_delta: c.seq_delta,
            addr4: [four(&c.orig.src), four(&c.orig.dst), four(&c.reply.src), four(&c.reply.dst)],
            ports: [c.orig.src_port, c.orig.dst_port, c.reply.src_port, c.reply.dst_port],
            tunnel_port: c.tunnel_port,
            proto: c.orig.proto,
            flags: bit(orig_wide, ORIG_WIDE)
                | bit(reply_wide, REPLY_WIDE)
                | bit(c.orig.v6, ORIG_V6)
                | bit(c.reply.v6, REPLY_V6)
                | bit(c.reply_indexed, REPLY_INDEXED)
                | bit(c.live, LIVE)
                | bit(c.tunnel_csum, TUNNEL_CSUM)
                | bit(has_handshake(c), HANDSHAKE),
            mode: c.mode,
            state: c.state,
            progress: c.progress,
            synproxy: c.synproxy,
        };
        let wide = (orig_wide || reply_wide).then_some([[c.orig.src, c.orig.dst], [c.reply.src, c.reply.dst]]);
        (e, wide)
    }

    /// The whole connection, with its side arrays' parts.
    pub(super) fn unpack(&self, wide: &Wide, handshake: Handshake) -> Conn {
        let key = |i: usize, wide_bit: u8, v6_bit: u8| {
            let (src, dst) = if self.flags & wide_bit != 0 {
                (wide[i / 2][0], wide[i / 2][1])
            } else {
                (crate::flow::widen(self.addr4[i]), crate::flow::widen(self.addr4[i + 1]))
            };
            let v6 = self.flags & v6_bit != 0;
            FlowKey { src, dst, src_port: self.ports[i], dst_port: self.ports[i + 1], proto: self.proto, v6 }
        };
        Conn {
            orig: key(0, ORIG_WIDE, ORIG_V6),
            reply: key(2, REPLY_WIDE, REPLY_V6),
            backend_id: self.backend_id,
            service_id: self.service_id,
            mode: self.mode,
            state: self.state,
            reply_indexed: self.reply_indexed(),
            live: self.live(),
            tunnel_port: self.tunnel_port,
            tunnel_csum: self.tunnel_csum(),
            expires_ms: self.expires_ms,
            acked: self.acked,
            progress: self.progress,
            synproxy: self.synproxy,
            seq_delta: self.seq_delta,
            client_isn: handshake[0],
            syn_sent_ms: handshake[1],
            synced_ms: self.synced_ms,
        }
    }

    /// Copies what may change over a connection's life from `c`: everything but its keys and
    /// whether the reply key is indexed, which the index depends on.
    pub(super) fn update_from(&mut self, c: &Conn) {
        self.expires_ms = c.expires_ms;
        self.acked = c.acked;
        self.backend_id = c.backend_id;
        self.service_id = c.service_id;
        self.synced_ms = c.synced_ms;
        self.seq_delta = c.seq_delta;
        self.tunnel_port = c.tunnel_port;
        self.flags = (self.flags & !(TUNNEL_CSUM | HANDSHAKE))
            | bit(c.tunnel_csum, TUNNEL_CSUM)
            | bit(has_handshake(c), HANDSHAKE);
        self.mode = c.mode;
        self.state = c.state;
        self.progress = c.progress;
        self.synproxy = c.synproxy;
    }

    /// Whether the key the entry holds in direction `reply` is `key`; `wide` is read only for
    /// a key whose addresses the entry does not hold whole.
    #[inline(always)]
    pub(super) fn holds<'a>(&self, reply: bool, key: &FlowKey, wide: impl FnOnce() -> &'a [[u8; 16]; 2]) -> bool {
        let i = if reply { 2 } else { 0 };
        let (wide_bit, v6_bit) = if reply { (REPLY_WIDE, REPLY_V6) } else { (ORIG_WIDE, ORIG_V6) };
        if self.addr4[i] != crate::flow::narrow(&key.src)
            || self.addr4[i + 1] != crate::flow::narrow(&key.dst)
            || [self.ports[i], self.ports[i + 1]] != [key.src_port, key.dst_port]
            || self.proto != key.proto
            || (self.flags & v6_bit != 0) != key.v6
        {
            return false;
        }
        if self.flags & wide_bit != 0 {
            let [src, dst] = wide();
            *src == key.src && *dst == key.dst
        } else {
            narrow_exactly(&key.src) && narrow_exactly(&key.dst)
        }
    }

    /// Whether the key of direction `reply` is IPv6.
    #[inline(always)]
    pub fn key_is_v6(&self, reply: bool) -> bool {
        self.flags & if reply { REPLY_V6 } else { ORIG_V6 } != 0
    }

    /// Whether the SYN proxy's fields are in the side array.
    pub(super) fn has_handshake(&self) -> bool {
        self.flags & HANDSHAKE != 0
    }

    /// Whether a key's addresses are in the side array.
    pub(super) fn is_wide(&self) -> bool {
        self.flags & (ORIG_WIDE | REPLY_WIDE) != 0
    }

    pub fn live(&self) -> bool {
        self.flags & LIVE != 0
    }

    pub(super) fn set_live(&mut self, live: bool) {
        self.flags = (self.flags & !LIVE) | bit(live, LIVE);
    }

    /// Whether the entry is live and its key of direction `reply` is in the index.
    #[inline(always)]
    pub(super) fn indexes(&self, reply: bool) -> bool {
        let needed = LIVE | bit(reply, REPLY_INDEXED);
        self.flags & needed == needed
    }

    pub fn reply_indexed(&self) -> bool {
        self.flags & REPLY_INDEXED != 0
    }

    pub fn tunnel_csum(&self) -> bool {
        self.flags & TUNNEL_CSUM != 0
    }

    /// Both keys are plain IPv4, so the entry holds every address whole.
    #[inline(always)]
    pub fn is_narrow(&self) -> bool {
        self.flags & (ORIG_WIDE | REPLY_WIDE | ORIG_V6 | REPLY_V6) == 0
    }

    /// The four-byte addresses (meaningful whole when `is_narrow`): orig src, orig dst, reply
    /// src, reply dst.
    #[inline(always)]
    pub fn addr4(&self, i: usize) -> [u8; 4] {
        self.addr4[i & 3]
    }

    /// Orig src and dst port, reply src and dst port.
    #[inline(always)]
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i & 3]
    }

    /// True for a TCP connection that has not completed its handshake.
    pub fn is_embryonic(&self) -> bool {
        self.proto == crate::wire::ip_proto::TCP && self.state.is_embryonic()
    }
}

/// A connection with every field set, for tests.
#[cfg(test)]
pub(super) fn sample() -> Conn {
    use crate::wire::ip_proto;
    Conn {
        orig: FlowKey::v4([10, 0, 0, 7], [192, 168, 0, 1], 40000, 80, ip_proto::TCP),
        reply: FlowKey::v4([172, 16, 0, 10], [172, 16, 0, 250], 8080, 1025, ip_proto::TCP),
        backend_id: 3,
        service_id: 2,
        mode: Mode::Fnat,
        state: TcpState::Established,
        reply_indexed: true,
        live: true,
        tunnel_port: 6080,
        tunnel_csum: true,
        expires_ms: 123_456_789_012,
        acked: [5, 6],
        progress: 3,
        synproxy: SynProxy::Active,
        seq_delta: 0xdead_beef,
        client_isn: 77,
        syn_sent_ms: 88,
        synced_ms: 99,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip_proto;

    #[test]
    fn entry_is_one_cache_line() {
        assert_eq!((std::mem::size_of::<Entry>(), std::mem::align_of::<Entry>()), (64, 64));
    }

    #[test]
    fn every_field_comes_back() {
        let c = sample();
        let (e, wide) = Entry::pack(&c);
        assert!(wide.is_none() && e.is_narrow());
        assert_eq!(e.unpack(&[[[0; 16]; 2]; 2], [77, 88]), c);

        let mut v6 = sample();
        v6.orig = FlowKey::v6([0x20; 16], [0x21; 16], 1, 2, ip_proto::UDP);
        v6.reply = FlowKey::v4([172, 16, 0, 10], [172, 16, 0, 250], 3, 4, ip_proto::UDP);
        let (e, wide) = Entry::pack(&v6);
        assert!(!e.is_narrow());
        assert_eq!(e.unpack(&wide.unwrap(), [77, 88]), v6);
    }

    #[test]
    fn keys_match_only_whole() {
        let mut c = sample();
        c.orig = FlowKey::v6([0x20; 16], [0x21; 16], 1, 2, ip_proto::TCP);
        let (e, wide) = Entry::pack(&c);
        let wide = wide.unwrap();
        let orig = || &wide[0];
        assert!(e.holds(false, &c.orig, orig));
        // The same first four bytes, another address: only the side array tells them apart.
        let mut other = c.orig;
        other.src[15] ^= 1;
        assert!(!e.holds(false, &other, orig));
        // An IPv4 key with the same bytes is another key.
        let mut v4 = c.orig;
        v4.v6 = false;
        assert!(!e.holds(false, &v4, orig));

        // IPv4 keys: stray bytes past the fourth make another key, both ways round.
        let plain = sample();
        let (e, wide) = Entry::pack(&plain);
        assert!(wide.is_none());
        let never = || -> &[[u8; 16]; 2] { unreachable!("a plain IPv4 key reads no side array") };
        assert!(e.holds(false, &plain.orig, never) && e.holds(true, &plain.reply, never));
        let mut stray = plain.orig;
        stray.dst[9] = 1;
        assert!(!e.holds(false, &stray, never));
        let mut c = plain;
        c.orig = stray;
        let (e, wide) = Entry::pack(&c);
        let wide = wide.unwrap();
        assert!(e.holds(false, &stray, || &wide[0]));
        assert!(!e.holds(false, &plain.orig, || &wide[0]));
        assert_eq!(e.unpack(&wide, [77, 88]), c);
    }
}

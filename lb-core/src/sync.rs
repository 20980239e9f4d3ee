//! Connection sync between lbd nodes: the events a worker emits, their wire format, and how a
//! peer's datagram is authenticated and checked before anything in it is believed.
//!
//! Every node tells its peers about the connections it forwards, so that a node that receives
//! a flow after ECMP moved it (a node died, drained, joined) forwards it exactly as the owner
//! did: same backend, same full-NAT local address and port, same SYN proxy sequence offset.
//! As IPVS's sync daemon, only what a peer needs is sent, and only when it changes:
//!
//! - `Conn` when a connection becomes established (TCP) or is created (UDP), and again when
//!   half its idle timeout has passed since the last time (a refresh, so the peer's copy
//!   outlives a long connection);
//! - `State` when it closes (TIME_WAIT, CLOSE): the peer keeps it for the closing timeout;
//! - `Remove` when lbd drops it before its time (its backend failed, `expire_on_down`).
//!
//! Handshakes are never sent: a SYN flood costs the peers nothing.
//!
//! ## Wire format, version 1 (all integers big-endian)
//!
//! ```text
//! datagram: header (28) | records | HMAC-SHA-256 of all before it, first 16 bytes
//! header:   "LBSY" | version u8 = 1 | 0 u8 | record count u16 | epoch u64 | seq u32 | sent u64
//! record:   kind u8 | flags u8 | proto u8 | state u8 | then by kind:
//!   Conn:   mode u8 | synproxy u8 | tunnel port u16 | ttl ms u32 | orig key | reply key
//!           | (synproxy only) seq delta u32 | client isn u32
//!   State:  ttl ms u32 | orig key
//!   Remove: orig key
//! key:      src | dst (4 bytes each, or 16 with the family's flag) | src port u16 | dst port u16
//! flags:    1 orig is IPv6 | 2 reply is IPv6 | 4 reply is indexed | 8 tunnel checksum
//! ```
//!
//! `epoch` is the sender's start time (Unix ms) and `seq` counts its datagrams: with the
//! receiver's window (`ReplayWindow`) a recorded datagram cannot be played again, and `sent`
//! (Unix ms) bounds how old a datagram from a new epoch may be. An IPv4 connection costs 36
//! bytes when it opens and 20 when it closes.

use crate::conntrack::{Conn, SynProxy, TcpState};
use crate::flow::FlowKey;
use crate::service::Mode;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The wire format this lbd writes and reads.
pub const VERSION: u8 = 1;
const MAGIC: [u8; 4] = *b"LBSY";
/// Bytes before the first record.
pub const HEADER_LEN: usize = 28;
/// Bytes of the truncated HMAC-SHA-256 that ends a datagram (RFC 4868's 128-bit truncation).
pub const MAC_LEN: usize = 16;
/// Largest datagram the encoder writes: one frame on a 1500-byte link, with IPv6 and UDP.
pub const MAX_DATAGRAM: usize = 1400;

/// What a record says about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum SyncKind {
    /// The whole connection: install it, or update the copy.
    #[default]
    Conn = 1,
    /// Its TCP state changed (it is closing): the copy keeps its backend, with a new timeout.
    State = 2,
    /// lbd dropped it before its time.
    Remove = 3,
}

/// One event, as a worker emits it and a peer applies it. `conn`'s ids are the sender's and
/// never travel: a receiver finds the service by the original destination and the backend by
/// the reply source. For `State` and `Remove` only `conn.orig` and `conn.state` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncEvent {
    pub kind: SyncKind,
    pub conn: Conn,
    /// Time left until the connection expires, in ms.
    pub ttl_ms: u32,
}

/// Why a datagram was refused (each reason is counted apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncError {
    /// Shorter than a header and its MAC, or not starting with the magic.
    Malformed,
    /// A version this lbd does not read.
    UnknownVersion,
    /// The HMAC does not match: another key, or altered on the way.
    BadMac,
    /// Authentic, but its records do not parse.
    BadRecord,
    /// Already received (or older than the window), or from an earlier epoch of its sender.
    Replay,
    /// Sent too long ago (or in the future) by the receiver's clock.
    Stale,
}

impl SyncError {
    pub const ALL: [SyncError; 6] = [
        SyncError::Malformed,
        SyncError::UnknownVersion,
        SyncError::BadMac,
        SyncError::BadRecord,
        SyncError::Replay,
        SyncError::Stale,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SyncError::Malformed => "malformed",
            SyncError::UnknownVersion => "unknown_version",
            SyncError::BadMac => "bad_mac",
            SyncError::BadRecord => "bad_record",
            SyncError::Replay => "replay",
            SyncError::Stale => "stale",
        }
    }
}

/// The key every node of a cluster shares.
#[derive(Clone)]
pub struct SyncKey(Hmac<Sha256>);

impl SyncKey {
    /// Refuses keys shorter than 16 bytes: a guessable key would let anyone on the segment
    /// install connections.
    pub fn new(secret: &[u8]) -> Result<SyncKey, String> {
        if secret.len() < 16 {
            return Err(format!("the key has {} bytes; at least 16 are needed", secret.len()));
        }
        Hmac::<Sha256>::new_from_slice(secret).map(SyncKey).map_err(|e| e.to_string())
    }

    fn tag(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.0.clone();
        m.update(data);
        let full = m.finalize().into_bytes();
        let mut t = [0u8; MAC_LEN];
        t.copy_from_slice(&full[..MAC_LEN]);
        t
    }

    fn verify(&self, data: &[u8], tag: &[u8]) -> bool {
        let mut m = self.0.clone();
        m.update(data);
        m.verify_truncated_left(tag).is_ok()
    }
}

/// Bytes a record of `ev` takes on the wire.
pub fn record_len(ev: &SyncEvent) -> usize {
    let key = |v6: bool| if v6 { 36 } else { 12 };
    let c = &ev.conn;
    match ev.kind {
        SyncKind::Conn => 12 + key(c.orig.v6) + key(c.reply.v6) + if c.synproxy == SynProxy::Off { 0 } else { 8 },
        SyncKind::State => 8 + key(c.orig.v6),
        SyncKind::Remove => 4 + key(c.orig.v6),
    }
}

/// Builds datagrams of records.
pub struct Encoder {
    buf: Vec<u8>,
    count: u16,
    epoch: u64,
    seq: u32,
    /// `buf` holds a sealed datagram, cleared by the next `push`.
    sealed: bool,
}

impl Encoder {
    /// An encoder for a sender that started at `epoch` (Unix ms).
    pub fn new(epoch: u64) -> Encoder {
        let mut buf = Vec::with_capacity(MAX_DATAGRAM);
        buf.resize(HEADER_LEN, 0);
        Encoder { buf, count: 0, epoch, seq: 0, sealed: false }
    }

    /// Records waiting in the datagram being built.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a record; false (and nothing appended) when it does not fit: seal first.
    pub fn push(&mut self, ev: &SyncEvent) -> bool {
        let used = if self.sealed { HEADER_LEN } else { self.buf.len() };
        if used + record_len(ev) + MAC_LEN > MAX_DATAGRAM || self.count == u16::MAX {
            return false;
        }
        if std::mem::take(&mut self.sealed) {
            self.buf.truncate(HEADER_LEN);
        }
        let c = &ev.conn;
        let flags = u8::from(c.orig.v6)
            | u8::from(c.reply.v6) << 1
            | u8::from(c.reply_indexed) << 2
            | u8::from(c.tunnel_csum) << 3;
        self.buf.extend_from_slice(&[ev.kind as u8, flags, c.orig.proto, c.state as u8]);
        match ev.kind {
            SyncKind::Conn => {
                self.buf.extend_from_slice(&[c.mode as u8, c.synproxy as u8]);
                self.buf.extend_from_slice(&c.tunnel_port.to_be_bytes());
                self.buf.extend_from_slice(&ev.ttl_ms.to_be_bytes());
                put_key(&mut self.buf, &c.orig);
                put_key(&mut self.buf, &c.reply);
                if c.synproxy != SynProxy::Off {
                    self.buf.extend_from_slice(&c.seq_delta.to_be_bytes());
                    self.buf.extend_from_slice(&c.client_isn.to_be_bytes());
                }
            }
            SyncKind::State => {
                self.buf.extend_from_slice(&ev.ttl_ms.to_be_bytes());
                put_key(&mut self.buf, &c.orig);
            }
            SyncKind::Remove => put_key(&mut self.buf, &c.orig),
        }
        self.count += 1;
        true
    }

    /// Finishes the datagram (header, sequence number, time `sent_ms`, MAC) and returns it; the
    /// next `push` starts a new one.
    pub fn seal(&mut self, key: &SyncKey, sent_ms: u64) -> &[u8] {
        self.seq = self.seq.wrapping_add(1);
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = VERSION;
        h[6..8].copy_from_slice(&self.count.to_be_bytes());
        h[8..16].copy_from_slice(&self.epoch.to_be_bytes());
        h[16..20].copy_from_slice(&self.seq.to_be_bytes());
        h[20..28].copy_from_slice(&sent_ms.to_be_bytes());
        if std::mem::take(&mut self.sealed) {
            self.buf.truncate(HEADER_LEN);
        }
        let body_end = self.buf.len();
        self.buf[..HEADER_LEN].copy_from_slice(&h);
        let tag = key.tag(&self.buf[..body_end]);
        self.buf.extend_from_slice(&tag);
        self.count = 0;
        self.sealed = true;
        &self.buf
    }
}

fn put_key(buf: &mut Vec<u8>, k: &FlowKey) {
    let n = if k.v6 { 16 } else { 4 };
    buf.extend_from_slice(&k.src[..n]);
    buf.extend_from_slice(&k.dst[..n]);
    buf.extend_from_slice(&k.src_port.to_be_bytes());
    buf.extend_from_slice(&k.dst_port.to_be_bytes());
}

/// An authenticated datagram's header and records.
#[derive(Debug)]
pub struct Datagram<'a> {
    pub epoch: u64,
    pub seq: u32,
    pub sent_ms: u64,
    count: u16,
    records: &'a [u8],
}

/// Checks a datagram's form, version and MAC; nothing of it is read before the MAC holds.
pub fn open<'a>(d: &'a [u8], key: &SyncKey) -> Result<Datagram<'a>, SyncError> {
    if d.len() < HEADER_LEN + MAC_LEN || d[..4] != MAGIC {
        return Err(SyncError::Malformed);
    }
    if d[4] != VERSION {
        return Err(SyncError::UnknownVersion);
    }
    let (body, tag) = d.split_at(d.len() - MAC_LEN);
    if !key.verify(body, tag) {
        return Err(SyncError::BadMac);
    }
    let u64_at = |i: usize| u64::from_be_bytes(body[i..i + 8].try_into().unwrap_or_default());
    Ok(Datagram {
        count: u16::from_be_bytes([body[6], body[7]]),
        epoch: u64_at(8),
        seq: u32::from_be_bytes([body[16], body[17], body[18], body[19]]),
        sent_ms: u64_at(20),
        records: &body[HEADER_LEN..],
    })
}

impl Datagram<'_> {
    /// Every record, or `BadRecord` if any does not parse (then none is applied: an
    /// authentic datagram that does not parse comes from a broken or newer peer).
    pub fn records(&self, out: &mut Vec<SyncEvent>) -> Result<(), SyncError> {
        let start = out.len();
        let mut r = Reader { d: self.records, at: 0 };
        for _ in 0..self.count {
            match r.record() {
                Some(ev) => out.push(ev),
                None => {
                    out.truncate(start);
                    return Err(SyncError::BadRecord);
                }
            }
        }
        if r.at != self.records.len() {
            out.truncate(start);
            return Err(SyncError::BadRecord);
        }
        Ok(())
    }
}

struct Reader<'a> {
    d: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.d.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn key(&mut self, v6: bool, proto: u8) -> Option<FlowKey> {
        let n = if v6 { 16 } else { 4 };
        let mut k = FlowKey { proto, v6, ..Default::default() };
        k.src[..n].copy_from_slice(self.take(n)?);
        k.dst[..n].copy_from_slice(self.take(n)?);
        k.src_port = self.u16()?;
        k.dst_port = self.u16()?;
        Some(k)
    }

    fn record(&mut self) -> Option<SyncEvent> {
        let kind = match self.u8()? {
            1 => SyncKind::Conn,
            2 => SyncKind::State,
            3 => SyncKind::Remove,
            _ => return None,
        };
        let flags = self.u8()?;
        let proto = self.u8()?;
        if flags & !15 != 0 || !matches!(proto, crate::wire::ip_proto::TCP | crate::wire::ip_proto::UDP) {
            return None;
        }
        let mut c = Conn { state: tcp_state(self.u8()?)?, ..Default::default() };
        let mut ttl_ms = 0;
        match kind {
            SyncKind::Conn => {
                c.mode = mode(self.u8()?)?;
                c.synproxy = match self.u8()? {
                    0 => SynProxy::Off,
                    1 => SynProxy::Pending,
                    2 => SynProxy::Active,
                    _ => return None,
                };
                c.tunnel_port = self.u16()?;
                ttl_ms = self.u32()?;
                c.orig = self.key(flags & 1 != 0, proto)?;
                c.reply = self.key(flags & 2 != 0, proto)?;
                c.reply_indexed = flags & 4 != 0;
                c.tunnel_csum = flags & 8 != 0;
                if c.synproxy != SynProxy::Off {
                    c.seq_delta = self.u32()?;
                    c.client_isn = self.u32()?;
                }
            }
            SyncKind::State => {
                ttl_ms = self.u32()?;
                c.orig = self.key(flags & 1 != 0, proto)?;
            }
            SyncKind::Remove => c.orig = self.key(flags & 1 != 0, proto)?,
        }
        Some(SyncEvent { kind, conn: c, ttl_ms })
    }
}

fn tcp_state(b: u8) -> Option<TcpState> {
    use TcpState::*;
    [None, Established, SynSent, SynRecv, FinWait, TimeWait, Close, CloseWait, LastAck, Listen, SynAck]
        .into_iter()
        .find(|s| *s as u8 == b)
}

fn mode(b: u8) -> Option<Mode> {
    [Mode::Nat, Mode::Fnat, Mode::Dr, Mode::Tun, Mode::Gue, Mode::Gre].into_iter().find(|m| *m as u8 == b)
}

/// What a receiver remembers of one peer: its epoch and which of its recent sequence numbers
/// arrived (IPsec's anti-replay window, RFC 4303 3.4.3).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayWindow {
    epoch: u64,
    top: u32,
    seen: u64,
}

impl ReplayWindow {
    /// The newest epoch seen of the peer (0 before its first datagram).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Accepts (and records) `seq` of `epoch`, or refuses a datagram seen before, one older
    /// than the 64 before the newest, or one from an epoch older than the peer's newest.
    pub fn accept(&mut self, epoch: u64, seq: u32) -> bool {
        if epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch {
            *self = ReplayWindow { epoch, top: seq, seen: 1 };
            return true;
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.seen = if shift >= 64 { 1 } else { self.seen << shift | 1 };
            self.top = seq;
            return true;
        }
        let back = self.top - seq;
        if back >= 64 || self.seen & (1 << back) != 0 {
            return false;
        }
        self.seen |= 1 << back;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SyncKey {
        SyncKey::new(b"0123456789abcdef0123").unwrap()
    }

    fn conn() -> Conn {
        Conn {
            orig: FlowKey::v4([10, 8, 0, 100], [10, 9, 9, 9], 40000, 7000, 6),
            reply: FlowKey::v4([10, 9, 0, 21], [10, 9, 8, 1], 7000, 1025, 6),
            mode: Mode::Fnat,
            state: TcpState::Established,
            reply_indexed: true,
            ..Default::default()
        }
    }

    fn roundtrip(evs: &[SyncEvent]) -> Vec<SyncEvent> {
        let mut e = Encoder::new(7);
        for ev in evs {
            assert!(e.push(ev));
        }
        let d = e.seal(&key(), 99).to_vec();
        let g = open(&d, &key()).unwrap();
        assert_eq!((g.epoch, g.seq, g.sent_ms), (7, 1, 99));
        let mut out = Vec::new();
        g.records(&mut out).unwrap();
        out
    }

    #[test]
    fn every_kind_survives_the_wire() {
        let mut proxied = conn();
        proxied.synproxy = SynProxy::Active;
        proxied.seq_delta = 0xdead_beef;
        proxied.client_isn = 12345;
        let mut v6 = conn();
        v6.orig = FlowKey { src: [0x20; 16], dst: [0xfd; 16], src_port: 1, dst_port: 80, proto: 17, v6: true };
        v6.reply = FlowKey { src: [0xfe; 16], src_port: 8080, proto: 17, v6: true, ..Default::default() };
        v6.mode = Mode::Gue;
        v6.tunnel_port = 6080;
        v6.tunnel_csum = true;
        v6.reply_indexed = false;
        let closing = Conn { orig: conn().orig, state: TcpState::TimeWait, ..Default::default() };
        let removed = Conn { orig: conn().orig, ..Default::default() };
        let evs = [
            SyncEvent { kind: SyncKind::Conn, conn: conn(), ttl_ms: 900_000 },
            SyncEvent { kind: SyncKind::Conn, conn: proxied, ttl_ms: 1 },
            SyncEvent { kind: SyncKind::Conn, conn: v6, ttl_ms: 300_000 },
            SyncEvent { kind: SyncKind::State, conn: closing, ttl_ms: 120_000 },
            SyncEvent { kind: SyncKind::Remove, conn: removed, ttl_ms: 0 },
        ];
        let out = roundtrip(&evs);
        assert_eq!(out, evs);
    }

    #[test]
    fn an_ipv4_connection_costs_36_bytes_to_open_and_20_to_close() {
        assert_eq!(record_len(&SyncEvent { kind: SyncKind::Conn, conn: conn(), ttl_ms: 0 }), 36);
        assert_eq!(record_len(&SyncEvent { kind: SyncKind::State, conn: conn(), ttl_ms: 0 }), 20);
    }

    #[test]
    fn a_full_datagram_refuses_the_next_record_and_stays_under_the_limit() {
        let mut e = Encoder::new(1);
        let ev = SyncEvent { kind: SyncKind::Conn, conn: conn(), ttl_ms: 5 };
        let mut n = 0;
        while e.push(&ev) {
            n += 1;
        }
        assert_eq!(n, (MAX_DATAGRAM - HEADER_LEN - MAC_LEN) / 36);
        let len = e.seal(&key(), 0).len();
        assert!(len <= MAX_DATAGRAM);
        assert!(e.is_empty());
        // The next datagram starts afresh and has the next sequence number.
        assert!(e.push(&ev));
        let d = e.seal(&key(), 0).to_vec();
        let g = open(&d, &key()).unwrap();
        assert_eq!(g.seq, 2);
        let mut out = Vec::new();
        g.records(&mut out).unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn wrong_key_altered_byte_other_version_and_garbage_are_refused() {
        let mut e = Encoder::new(1);
        e.push(&SyncEvent { kind: SyncKind::Conn, conn: conn(), ttl_ms: 5 });
        let d = e.seal(&key(), 0).to_vec();
        let other = SyncKey::new(b"another key of 16+ bytes").unwrap();
        assert_eq!(open(&d, &other).unwrap_err(), SyncError::BadMac);
        for i in [5, 6, 9, 17, 30, d.len() - 1] {
            let mut bad = d.clone();
            bad[i] ^= 1;
            assert_eq!(open(&bad, &key()).unwrap_err(), SyncError::BadMac, "byte {i}");
        }
        let mut v2 = d.clone();
        v2[4] = 2;
        assert_eq!(open(&v2, &key()).unwrap_err(), SyncError::UnknownVersion);
        assert_eq!(open(&d[..20], &key()).unwrap_err(), SyncError::Malformed);
        assert_eq!(
            open(b"GET / HTTP/1.0\r\n\r\n0123456789abcdef0123456789", &key()).unwrap_err(),
            SyncError::Malformed
        );
        assert!(SyncKey::new(b"short").is_err());
    }

    /// A peer holding the key but writing records this version cannot read: nothing of the
    /// datagram is applied.
    #[test]
    fn an_authentic_datagram_with_a_bad_record_yields_nothing() {
        let mut e = Encoder::new(1);
        e.push(&SyncEvent { kind: SyncKind::Conn, conn: conn(), ttl_ms: 5 });
        e.push(&SyncEvent { kind: SyncKind::Conn, conn: conn(), ttl_ms: 5 });
        let d = e.seal(&key(), 0).to_vec();
        // Re-sign with a corrupted second record's kind, and with a count one too high.
        for (at, val) in [(HEADER_LEN + 36, 9u8), (7, 3)] {
            let mut body = d[..d.len() - MAC_LEN].to_vec();
            body[at] = val;
            let tag = key().tag(&body);
            body.extend_from_slice(&tag);
            let g = open(&body, &key()).unwrap();
            let mut out = Vec::new();
            assert_eq!(g.records(&mut out), Err(SyncError::BadRecord));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn the_replay_window_takes_each_datagram_once() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(100, 1));
        assert!(!w.accept(100, 1));
        assert!(w.accept(100, 3));
        assert!(w.accept(100, 2), "late but in the window");
        assert!(!w.accept(100, 2));
        assert!(w.accept(100, 80));
        assert!(!w.accept(100, 3), "fell out of the window");
        assert!(!w.accept(99, 500), "an earlier epoch of the sender");
        assert!(w.accept(101, 1), "the sender restarted");
        assert!(!w.accept(100, 81));
    }
}

//! The SYN proxy (DPVS's synproxy, Linux's SYN cookies): for a service with `synproxy`, lbd
//! answers a client's SYN itself with a SYN-ACK whose sequence number is a cookie, and keeps no
//! state for it. Only an ACK that returns a valid cookie opens a connection: lbd then sends the
//! backend a SYN with the client's sequence number, answers the backend's SYN-ACK with the ACK
//! the client already sent, and from then on translates the backend's sequence numbers (and the
//! client's acknowledgements) by the difference between the backend's initial sequence number
//! and the cookie. A flood of spoofed SYNs therefore costs one answer each and never reaches the
//! connection table or the backends.
//!
//! The cookie (RFC 4987 §3.6): 28 bits of a keyed hash of the flow, the client's initial
//! sequence number and the minute, then 2 bits of the minute and 2 bits indexing the MSS table.
//! It is valid for the minute it was made and the next. Like Linux's cookies without TCP
//! timestamps, the handshake carries only the MSS: window scaling, SACK and timestamps are not
//! negotiated on proxied connections (their windows stay within 64 KiB).
//!
//! Client segments that arrive between the ACK and the backend's SYN-ACK are parked by the
//! runtime (`Verdict::Park`) and processed again once the connection is released.

use super::forward::{Ip, l4_checksum_ok};
use super::send::send_for_conn;
use super::{DropReason, Frame, Verdict, Worker, l2};
use crate::conntrack::{Conn, ConnId, Dir, SynProxy, TcpState};
use crate::flow::{FlowKey, hash_bytes};
use crate::rewrite::Layout;
use crate::wire::{checksum, get_u16, get_u32, ip_proto, ipv4, ipv6, set_u16, set_u32, tcp};

/// MSS values a cookie can carry (Linux's `msstab`), smallest first.
const MSS_V4: [u16; 4] = [536, 1300, 1440, 1460];
const MSS_V6: [u16; 4] = [1220, 1420, 1440, 8940];
const MINUTE_MS: u64 = 60_000;
/// The window lbd offers in its SYN-ACK and its ACK to the backend (unscaled).
const WINDOW: u16 = 64_240;
const TCP_FLAGS_AT: usize = 13;

fn mss_table(v6: bool) -> &'static [u16; 4] {
    if v6 { &MSS_V6 } else { &MSS_V4 }
}

fn cookie_hash(secret: u64, key: &FlowKey, isn: u32, minute: u64) -> u32 {
    let mut b = [0u8; 16 + 16 + 2 + 2 + 4 + 8];
    b[..16].copy_from_slice(&key.src);
    b[16..32].copy_from_slice(&key.dst);
    b[32..34].copy_from_slice(&key.src_port.to_be_bytes());
    b[34..36].copy_from_slice(&key.dst_port.to_be_bytes());
    b[36..40].copy_from_slice(&isn.to_be_bytes());
    b[40..48].copy_from_slice(&minute.to_be_bytes());
    // The low half of the keyed hash is the cookie's body.
    #[allow(clippy::cast_possible_truncation)]
    let h = hash_bytes(&b, secret ^ u64::from(key.v6)) as u32;
    h
}

/// The cookie for a client's SYN (`isn` is its sequence number) carrying MSS table entry `mss`.
pub fn make_cookie(secret: u64, key: &FlowKey, isn: u32, mss: usize, now_ms: u64) -> u32 {
    let minute = now_ms / MINUTE_MS;
    #[allow(clippy::cast_possible_truncation)]
    let low = ((minute & 3) as u32) << 2 | (mss as u32 & 3);
    (cookie_hash(secret, key, isn, minute) & !0xf) | low
}

/// The MSS index a valid cookie carries; `None` for a forged or expired one.
pub fn check_cookie(secret: u64, key: &FlowKey, isn: u32, cookie: u32, now_ms: u64) -> Option<usize> {
    let now = now_ms / MINUTE_MS;
    let tag = u64::from(cookie >> 2) & 3;
    // Minutes since the latest minute that carries this tag: 0 or 1 is valid.
    let age = now.wrapping_sub(tag) & 3;
    if age > 1 {
        return None;
    }
    let minute = now.checked_sub(age)?;
    (cookie_hash(secret, key, isn, minute) & !0xf == cookie & !0xf).then_some((cookie & 3) as usize)
}

/// The MSS option of a SYN's options, if well formed.
fn mss_option(opts: &[u8]) -> Option<u16> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return None,
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == 2 && len == 4 {
                    return Some(get_u16(opts, i + 2));
                }
                i += len;
            }
        }
    }
    None
}

/// What a rebuilt segment carries.
struct Segment {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    mss: Option<u16>,
}

/// Rewrites the frame's IP and TCP headers into a fresh segment without payload, IP options or
/// extension headers; `swap` reverses addresses and ports. Returns what the IP layer and the
/// rewrite now see of the frame, or `None` without room.
fn rebuild(f: &mut impl Frame, ip: &Ip, swap: bool, seg: &Segment) -> Option<(Ip, Layout)> {
    let d = f.data();
    let (l3, v6) = (ip.l3, ip.v6);
    let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
    let alen = if v6 { 16 } else { 4 };
    let (sa, da) = if v6 { (l3 + 8, l3 + 24) } else { (l3 + 12, l3 + 16) };
    src[..alen].copy_from_slice(&d[sa..sa + alen]);
    dst[..alen].copy_from_slice(&d[da..da + alen]);
    let (mut sport, mut dport) = (get_u16(d, ip.l4), get_u16(d, ip.l4 + 2));
    if swap {
        std::mem::swap(&mut src, &mut dst);
        std::mem::swap(&mut sport, &mut dport);
    }
    let ip_len = if v6 { ipv6::HEADER_LEN } else { ipv4::HEADER_LEN };
    let tcp_len = tcp::HEADER_LEN + if seg.mss.is_some() { 4 } else { 0 };
    if !f.set_len(l3 + ip_len + tcp_len) {
        return None;
    }
    let d = f.data_mut();
    let l4 = l3 + ip_len;
    let tcp_len16 = u16::try_from(tcp_len).unwrap_or(0);
    let pseudo = if v6 {
        ipv6::emit(
            &mut d[l3..],
            &ipv6::Repr {
                src,
                dst,
                next_header: ip_proto::TCP,
                payload_len: tcp_len16,
                hop_limit: 64,
                traffic_class: 0,
                flow_label: 0,
            },
        );
        checksum::pseudo_v6(src, dst, ip_proto::TCP, u32::from(tcp_len16))
    } else {
        let (s4, d4) = (crate::flow::narrow(&src), crate::flow::narrow(&dst));
        ipv4::emit(
            &mut d[l3..],
            &ipv4::Repr {
                src: s4,
                dst: d4,
                protocol: ip_proto::TCP,
                payload_len: tcp_len16,
                ttl: 64,
                dscp_ecn: 0,
                ident: 0,
                dont_frag: true,
            },
        );
        checksum::pseudo_v4(s4, d4, ip_proto::TCP, tcp_len16)
    };
    let t = &mut d[l4..l4 + tcp_len];
    set_u16(t, 0, sport);
    set_u16(t, 2, dport);
    set_u32(t, 4, seg.seq);
    set_u32(t, 8, seg.ack);
    t[12] = u8::try_from(tcp_len / 4).unwrap_or(5) << 4;
    t[TCP_FLAGS_AT] = seg.flags;
    set_u16(t, 14, seg.window);
    set_u16(t, 16, 0);
    set_u16(t, 18, 0);
    if let Some(mss) = seg.mss {
        t[20] = 2;
        t[21] = 4;
        set_u16(t, 22, mss);
    }
    let mut p = tcp::Packet::new_unchecked(t);
    p.fill_checksum(pseudo);
    let rebuilt = Ip { l4, total: ip_len + tcp_len, fragment: None, dont_frag: true, ..*ip };
    Some((rebuilt, Layout { l3, l4, v6, proto: ip_proto::TCP, l4_present: true }))
}

/// A SYN for a synproxy service: answer it with a cookie, keep nothing.
pub(super) fn answer_syn(
    w: &mut Worker,
    t: &crate::service::Table,
    f: &mut impl Frame,
    ip: &Ip,
    key: &FlowKey,
    now_ms: u64,
) -> Verdict {
    if !l4_checksum_ok(f, ip, true) {
        return Verdict::Drop(DropReason::L4BadChecksum);
    }
    let d = f.data();
    let isn = get_u32(d, ip.l4 + 4);
    let hl = usize::from(d[ip.l4 + 12] >> 4) * 4;
    let client_mss = mss_option(&d[ip.l4 + tcp::HEADER_LEN..ip.l4 + hl]).unwrap_or(536);
    let table = mss_table(key.v6);
    let mss = table.iter().rposition(|m| *m <= client_mss).unwrap_or(0);
    let cookie = make_cookie(w.synproxy_secret, key, isn, mss, now_ms);
    let port_mtu = t.network.ports.get(usize::from(f.in_port())).map_or(1500, |p| p.mtu);
    let own_mss = port_mtu.saturating_sub(if key.v6 { 60 } else { 40 });
    let seg = Segment {
        seq: cookie,
        ack: isn.wrapping_add(1),
        flags: tcp::flags::SYN | tcp::flags::ACK,
        window: WINDOW,
        mss: Some(own_mss),
    };
    if rebuild(f, ip, true, &seg).is_none() {
        return Verdict::Drop(DropReason::NoRoom);
    }
    w.counters.synproxy_cookies += 1;
    l2::back_to_sender(t, f)
}

/// The client's ACK to a cookie: checks it, opens the connection (`open` picks the backend and
/// inserts it, or says why not), and turns the ACK into the SYN for the backend.
pub(super) fn accept_ack(
    w: &mut Worker,
    f: &mut impl Frame,
    ip: &Ip,
    key: &FlowKey,
    now_ms: u64,
    open: impl FnOnce(&mut Worker, &mut Conn) -> Result<ConnId, Verdict>,
) -> Result<(Conn, Ip, Layout), Verdict> {
    let d = f.data();
    let (seq, ack) = (get_u32(d, ip.l4 + 4), get_u32(d, ip.l4 + 8));
    let window = get_u16(d, ip.l4 + 14);
    let (isn, cookie) = (seq.wrapping_sub(1), ack.wrapping_sub(1));
    let Some(mss) = check_cookie(w.synproxy_secret, key, isn, cookie, now_ms) else {
        return Err(Verdict::Drop(DropReason::SynproxyBadCookie));
    };
    if !l4_checksum_ok(f, ip, true) {
        return Err(Verdict::Drop(DropReason::L4BadChecksum));
    }
    let mut c = Conn {
        synproxy: SynProxy::Pending,
        seq_delta: cookie,
        client_isn: isn,
        syn_sent_ms: clock32(now_ms),
        ..Default::default()
    };
    open(w, &mut c)?;
    let seg = Segment { seq: isn, ack: 0, flags: tcp::flags::SYN, window, mss: Some(mss_table(key.v6)[mss]) };
    let Some((ip, lay)) = rebuild(f, ip, false, &seg) else { return Err(Verdict::Drop(DropReason::NoRoom)) };
    w.counters.synproxy_accepted += 1;
    Ok((c, ip, lay))
}

/// A client segment arrived while the backend's SYN-ACK is awaited for longer than this: the
/// SYN (or its answer) was lost, for instance while the backend's MAC was being resolved.
const SYN_RETRY_MS: u32 = 200;

fn clock32(now_ms: u64) -> u32 {
    // The low half of the millisecond clock: compared with wrapping arithmetic.
    #[allow(clippy::cast_possible_truncation)]
    let low = now_ms as u32;
    low
}

/// Whether a pending connection's SYN to the backend is overdue (send it again).
pub(super) fn syn_due(c: &Conn, now_ms: u64) -> bool {
    clock32(now_ms).wrapping_sub(c.syn_sent_ms) >= SYN_RETRY_MS
}

/// Turns a client segment of pending connection `id` into the backend's SYN again (the segment
/// is lost; the client sends it again). Returns the frame's new headers for delivery.
pub(super) fn resend_syn(w: &mut Worker, f: &mut impl Frame, ip: &Ip, id: ConnId, now_ms: u64) -> Option<(Ip, Layout)> {
    w.conns.update(id, |c| c.syn_sent_ms = clock32(now_ms));
    let c = w.conns.get(id);
    // While pending, seq_delta is the cookie, whose low bits index the MSS table.
    let mss = mss_table(ip.v6)[(c.seq_delta & 3) as usize];
    let seg = Segment { seq: c.client_isn, ack: 0, flags: tcp::flags::SYN, window: WINDOW, mss: Some(mss) };
    let rebuilt = rebuild(f, ip, false, &seg)?;
    w.counters.synproxy_syn_retries += 1;
    Some(rebuilt)
}

/// The backend's SYN-ACK (first or retransmitted): record the sequence offset, release the
/// connection, and answer the backend with the ACK completing its handshake.
pub(super) fn backend_synack(
    w: &mut Worker,
    t: &crate::service::Table,
    f: &mut impl Frame,
    ip: &Ip,
    id: ConnId,
    now_ms: u64,
) -> Verdict {
    let backend_isn = get_u32(f.data(), ip.l4 + 4);
    let mut c = w.conns.get(id);
    if c.synproxy == SynProxy::Pending {
        // While pending, seq_delta holds the cookie (lbd's initial sequence number).
        let cookie = c.seq_delta;
        c.seq_delta = backend_isn.wrapping_sub(cookie);
        c.synproxy = SynProxy::Active;
        let e = w.conns.entry_mut(id);
        e.seq_delta = c.seq_delta;
        e.synproxy = SynProxy::Active;
        super::forward::move_state(w, id, &mut c, TcpState::Established, now_ms);
        w.release(id);
    }
    let seg = Segment {
        seq: c.client_isn.wrapping_add(1),
        ack: backend_isn.wrapping_add(1),
        flags: tcp::flags::ACK,
        window: WINDOW,
        mss: None,
    };
    if rebuild(f, ip, true, &seg).is_none() {
        return Verdict::Drop(DropReason::NoRoom);
    }
    send_for_conn(w, t, f, ip.l3, ip.v6, &c, Dir::Orig, None, false, now_ms, |_| {})
}

/// A backend's RST before its SYN-ACK: sent on to the client in lbd's sequence space.
pub(super) fn pending_reset(d: &mut [u8], lay: &Layout, c: &Conn) {
    let at = lay.l4 + 4;
    let old = get_u32(d, at);
    set_u32(d, at, c.seq_delta.wrapping_add(1));
    patch_checksum(d, lay, old, c.seq_delta.wrapping_add(1));
}

fn patch_checksum(d: &mut [u8], lay: &Layout, old: u32, new: u32) {
    let at = lay.l4 + tcp::CHECKSUM_OFFSET;
    let c = checksum::update_bytes(get_u16(d, at), &old.to_be_bytes(), &new.to_be_bytes());
    set_u16(d, at, c);
}

/// Translates an established proxied connection's sequence space: the backend's sequence
/// numbers toward the client, the client's acknowledgements toward the backend.
#[inline]
pub(super) fn translate_seq(d: &mut [u8], lay: &Layout, seq_delta: u32, dir: Dir) {
    if !lay.l4_present {
        return;
    }
    let (at, new) = match dir {
        Dir::Reply => (lay.l4 + 4, get_u32(d, lay.l4 + 4).wrapping_sub(seq_delta)),
        Dir::Orig if d[lay.l4 + TCP_FLAGS_AT] & tcp::flags::ACK != 0 => {
            (lay.l4 + 8, get_u32(d, lay.l4 + 8).wrapping_add(seq_delta))
        }
        Dir::Orig => return,
    };
    let old = get_u32(d, at);
    set_u32(d, at, new);
    patch_checksum(d, lay, old, new);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> FlowKey {
        FlowKey::v4([10, 0, 0, 2], [10, 0, 0, 100], 40000, 80, 6)
    }

    #[test]
    fn cookies_check_for_two_minutes_and_only_for_their_flow() {
        let k = key();
        let c = make_cookie(7, &k, 1000, 2, 125_000);
        assert_eq!(check_cookie(7, &k, 1000, c, 125_000), Some(2));
        assert_eq!(check_cookie(7, &k, 1000, c, 179_999), Some(2), "same minute");
        assert_eq!(check_cookie(7, &k, 1000, c, 239_999), Some(2), "the next minute");
        assert_eq!(check_cookie(7, &k, 1000, c, 240_000), None, "two minutes later");
        assert_eq!(check_cookie(7, &k, 1000, c, 60_000), None, "before it was made");
        assert_eq!(check_cookie(7, &k, 1001, c, 125_000), None, "another ISN");
        assert_eq!(check_cookie(8, &k, 1000, c, 125_000), None, "another secret");
        let other = FlowKey { src_port: 40001, ..k };
        assert_eq!(check_cookie(7, &other, 1000, c, 125_000), None, "another flow");
        for bit in 4..32 {
            assert_eq!(check_cookie(7, &k, 1000, c ^ (1 << bit), 125_000), None, "bit {bit} flipped");
        }
    }

    #[test]
    fn mss_options_are_parsed_defensively() {
        assert_eq!(mss_option(&[2, 4, 5, 0xb4]), Some(1460));
        assert_eq!(mss_option(&[1, 1, 3, 3, 7, 2, 4, 2, 0x18]), Some(536));
        assert_eq!(mss_option(&[3, 0, 2, 4, 5, 0xb4]), None, "a zero length stops parsing");
        assert_eq!(mss_option(&[2, 4, 5]), None, "cut short");
        assert_eq!(mss_option(&[0, 2, 4, 5, 0xb4]), None, "after end of options");
        assert_eq!(mss_option(&[8, 10, 0, 0]), None);
    }
}

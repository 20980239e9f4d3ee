//! TCP and UDP: validation, connection lookup and state, scheduling of new flows (and the SYN
//! proxy's), then delivery through `send`.

use super::send::deliver;
use super::{DropReason, Frame, L4Checksum, Verdict, Worker, not_served, synproxy};
use crate::conntrack::{
    Conn, ConnId, ConnView, Dir, Entry, InsertError, PROGRESS_BACKEND, PROGRESS_CLIENT, SynProxy, TcpEvent, TcpState,
    tcp_transition,
};
use crate::flow::{FlowKey, fast_hash, hash_bytes, widen};
use crate::frag::FragKey;
use crate::rewrite::Layout;
use crate::sched::{self, Load};
use crate::service::{Mode, Service, Table};
use crate::wire::{Error as WireError, array_at, checksum, get_array, get_u16, get_u32, ip_proto, tcp, udp};

/// What the IP layer found.
#[derive(Clone, Copy)]
pub(super) struct Ip {
    pub l3: usize,
    pub l4: usize,
    pub v6: bool,
    pub proto: u8,
    /// IP header plus payload length.
    pub total: usize,
    pub dont_frag: bool,
    /// The datagram's fragment key and whether this is its first fragment.
    pub fragment: Option<(FragKey, bool)>,
}

fn is_active(c: &Conn) -> bool {
    c.orig.proto != ip_proto::TCP || c.state == TcpState::Established
}

fn load_slot<'a>(load: &'a mut [Load], c: &Conn) -> Option<&'a mut Load> {
    load.get_mut(c.backend_id as usize)
}

/// Removes a connection's weight from its backend's load (on expiry or removal).
pub(super) fn unload(load: &mut [Load], c: &Conn) {
    let active = is_active(c);
    if let Some(l) = load_slot(load, c) {
        if active {
            l.active = l.active.saturating_sub(1);
        } else {
            l.inactive = l.inactive.saturating_sub(1);
        }
        l.unbound();
    }
}

/// A connection of the same backend changed state (`before` -> `after`): it moves between the
/// active and inactive counts; the total, and so the overload state, stays.
pub(super) fn recount(load: &mut [Load], before: &Conn, after: &Conn) {
    let (was, is) = (is_active(before), is_active(after));
    if was != is
        && let Some(l) = load_slot(load, after)
    {
        if is {
            l.inactive = l.inactive.saturating_sub(1);
            l.active += 1;
        } else {
            l.active = l.active.saturating_sub(1);
            l.inactive += 1;
        }
    }
}

pub(super) fn add_load(load: &mut [Load], c: &Conn) {
    let active = is_active(c);
    if let Some(l) = load_slot(load, c) {
        if active {
            l.active += 1;
        } else {
            l.inactive += 1;
        }
        l.bound();
    }
}

pub(super) fn timeout_ms(w: &Worker, c: &Conn) -> u64 {
    timeout_for(w, c.orig.proto, c.state)
}

/// The timeout of a connection of protocol `proto` in `state`.
#[inline(always)]
pub(super) fn timeout_for(w: &Worker, proto: u8, state: TcpState) -> u64 {
    let secs = if proto == ip_proto::TCP { w.timeouts.tcp(state) } else { w.timeouts.udp };
    u64::from(secs) * 1000
}

/// TCP flag combinations a real stack sends (Linux conntrack's `tcp_valid_flags`, ECE/CWR
/// aside): SYN+FIN, SYN+RST, no flags, FIN without ACK and the like are dropped.
fn valid_tcp_flags(flags: u8) -> bool {
    use tcp::flags::{ACK, FIN, PSH, RST, SYN};
    const URG: u8 = 0x20;
    matches!(
        flags & 0x3f,
        SYN | 0x22 // SYN, SYN|URG
            | 0x12 // SYN|ACK
            | RST
            | 0x14 // RST|ACK
            | 0x1c // RST|ACK|PSH
            | 0x11 // FIN|ACK
            | 0x31 // FIN|ACK|URG
            | ACK
            | 0x30 // ACK|URG
            | 0x18 // ACK|PSH
            | 0x38 // ACK|PSH|URG
            | 0x19 // FIN|ACK|PSH
            | 0x39 // FIN|ACK|PSH|URG
    ) && (flags & (ACK | FIN | PSH | RST | SYN | URG)) != 0
}

/// True when the TCP/UDP checksum holds, or cannot be checked here (a fragment: the checksum
/// covers the whole datagram), or the port checked it, or verification is off. A UDP/IPv4
/// checksum of zero means none was computed; in UDP/IPv6 it is invalid (RFC 8200 8.1).
#[inline(always)]
pub(super) fn l4_checksum_ok(f: &impl Frame, ip: &Ip, verify: bool) -> bool {
    if ip.fragment.is_some() {
        return true;
    }
    match f.l4_checksum() {
        L4Checksum::Good => return true,
        L4Checksum::Bad => return false,
        L4Checksum::Unknown if !verify => return true,
        L4Checksum::Unknown => {}
    }
    let d = f.data();
    let seg = &d[ip.l4..ip.l3 + ip.total];
    let len = u32::try_from(seg.len()).unwrap_or(u32::MAX);
    let pseudo = if ip.v6 {
        let Some(addrs) = array_at(d, ip.l3 + 8) else {
            return false;
        };
        checksum::pseudo_v6_in_place(addrs, ip.proto, len)
    } else {
        if ip.proto == ip_proto::UDP && get_u16(seg, udp::CHECKSUM_OFFSET) == 0 {
            return true;
        }
        checksum::pseudo_v4(
            get_array(d, ip.l3 + 12),
            get_array(d, ip.l3 + 16),
            ip.proto,
            u16::try_from(len).unwrap_or(0),
        )
    };
    // A segment of up to 32 bytes (a TCP ACK, with or without timestamps) is summed without a
    // loop; longer ones as every other checksum is.
    match checksum::sum_short(d, ip.l4, ip.l3 + ip.total) {
        Some(seg_sum) => !checksum::fold(pseudo + u32::from(seg_sum)) == 0,
        None => checksum::finish(pseudo, seg) == 0,
    }
}

/// Whether packets of `mode` have their transport header rewritten (and so their checksum
/// patched: a bad one would be laundered).
fn rewrites_l4(mode: Mode) -> bool {
    matches!(mode, Mode::Nat | Mode::Fnat)
}

/// Handles a TCP or UDP packet (or a fragment of one).
pub(super) fn transport(w: &mut Worker, t: &Table, f: &mut impl Frame, ip: &Ip, now_ms: u64) -> Verdict {
    let d = f.data();
    let l4_present = ip.fragment.is_none_or(|(_, first)| first);
    let (src, dst) = if ip.v6 {
        (get_array(d, ip.l3 + 8), get_array(d, ip.l3 + 24))
    } else {
        (widen(get_array(d, ip.l3 + 12)), widen(get_array(d, ip.l3 + 16)))
    };
    let (key, flags) = if l4_present {
        let seg = &d[ip.l4..ip.l3 + ip.total];
        let checked = match ip.proto {
            ip_proto::TCP => tcp::Packet::new_checked(seg).map(|p| (p.src_port(), p.dst_port(), p.flags())),
            // A first fragment's UDP length covers the whole datagram, beyond this fragment.
            _ if ip.fragment.is_some() => match seg.len() >= udp::HEADER_LEN {
                true => Ok((get_u16(seg, 0), get_u16(seg, 2), 0)),
                false => Err(WireError::Truncated),
            },
            // The UDP length must match the IP payload: anything else is a malformed datagram.
            _ => udp::Packet::new_checked(seg).and_then(|p| match usize::from(p.len()) == seg.len() {
                true => Ok((p.src_port(), p.dst_port(), 0)),
                false => Err(WireError::Malformed),
            }),
        };
        match checked {
            Ok((sp, dp, flags)) => {
                (FlowKey { src, dst, src_port: sp, dst_port: dp, proto: ip.proto, v6: ip.v6 }, flags)
            }
            Err(WireError::Truncated) => return Verdict::Drop(DropReason::L4Truncated),
            Err(WireError::Malformed) => return Verdict::Drop(DropReason::L4Malformed),
        }
    } else {
        let Some((fk, _)) = ip.fragment else { return Verdict::Drop(DropReason::FragmentWithoutFirst) };
        match w.frags.recall(&fk, now_ms) {
            Some(k) => (k, 0),
            None => return Verdict::Drop(DropReason::FragmentWithoutFirst),
        }
    };
    if ip.proto == ip_proto::TCP && l4_present && !valid_tcp_flags(flags) {
        return Verdict::Drop(DropReason::TcpBadFlags);
    }
    if let Some((fk, true)) = ip.fragment {
        w.frags.remember(fk, key, now_ms);
    }
    let lay = Layout { l3: ip.l3, l4: ip.l4, v6: ip.v6, proto: ip.proto, l4_present };
    if let Some((id, dir)) = w.conns.lookup(&key) {
        let c = w.conns.get(id);
        if c.expires_ms > now_ms && !(dir == Dir::Orig && reopens(&c, flags)) {
            return established(w, t, f, ip, &lay, id, dir, flags, now_ms);
        }
        forget(w, id);
    }
    if !l4_present {
        // The first fragment was forwarded without an entry; later ones cannot follow it.
        return Verdict::Drop(DropReason::FragmentWithoutFirst);
    }
    new_flow(w, t, f, ip, &lay, &key, flags, now_ms)
}

#[allow(clippy::too_many_arguments)]
fn established(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    ip: &Ip,
    lay: &Layout,
    id: ConnId,
    dir: Dir,
    flags: u8,
    now_ms: u64,
) -> Verdict {
    let mut c = w.conns.get(id);
    if t.expires_on_down(c.backend_id) {
        // IPVS's expire_nodest_conn: the backend failed its checks; the client's next attempt
        // is scheduled afresh.
        let gone = forget(w, id);
        if w.sync_on {
            super::sync::removed(w, &gone);
        }
        return Verdict::Drop(DropReason::BackendDown);
    }
    if rewrites_l4(c.mode) && !l4_checksum_ok(f, ip, w.verify_l4) {
        return Verdict::Drop(DropReason::L4BadChecksum);
    }
    if lay.l4_present && backend_silent(&c) {
        // Seen from here, a backend that refuses a SYN, or leaves it unanswered until the client
        // sends it again, is failing (the passive health check). Neither may be a client's
        // say-so: a SYN sent twice at once is no retransmission (a client's first one waits
        // about a second, Linux's initial RTO), and a RST counts only from the port the
        // backend is reached by (a reverse-path check).
        let last_packet_ms = c.expires_ms.saturating_sub(timeout_ms(w, &c));
        let refused = dir == Dir::Reply
            && flags & tcp::flags::RST != 0
            && t.route_to(c.backend_id, &c.reply.src, c.reply.v6).is_some_and(|(port, _)| port == f.in_port());
        let resent = dir == Dir::Orig
            && flags & tcp::flags::SYN != 0
            && now_ms.saturating_sub(last_packet_ms) >= SYN_RETRANSMIT_MS;
        if refused || resent {
            syn_failed(&mut w.counters, &c);
        }
    }
    if c.synproxy != SynProxy::Off && ip.proto == ip_proto::TCP && lay.l4_present {
        let syn_ack = tcp::flags::SYN | tcp::flags::ACK;
        match (c.synproxy, dir) {
            // The client's segments wait for the backend's handshake.
            (SynProxy::Pending, Dir::Orig) if !synproxy::syn_due(&c, now_ms) => return Verdict::Park(id),
            (SynProxy::Pending, Dir::Orig) => {
                return match synproxy::resend_syn(w, f, ip, id, now_ms) {
                    Some((ip2, lay2)) => deliver(w, t, f, &ip2, &lay2, &c, Dir::Orig, false, now_ms),
                    None => Verdict::Drop(DropReason::NoRoom),
                };
            }
            (_, Dir::Reply) if flags & syn_ack == syn_ack => return synproxy::backend_synack(w, t, f, ip, id, now_ms),
            (SynProxy::Pending, Dir::Reply) if flags & tcp::flags::RST != 0 => {
                synproxy::pending_reset(f.data_mut(), lay, &c);
            }
            (SynProxy::Pending, Dir::Reply) => return Verdict::Drop(DropReason::NoConnection),
            _ => {}
        }
    }
    // The neighbour this packet goes to is confirmed when the connection saw it acknowledge
    // new data (forward progress, as TCP confirms Linux's neighbours). Updated in the table
    // entry itself: a repeated acknowledgement costs one compare.
    let confirm = progress(w.conns.entry_mut(id), f.data(), ip, lay, dir, flags);
    if ip.proto == ip_proto::TCP
        && lay.l4_present
        && let Some(ev) = TcpEvent::from_flags(flags)
    {
        let next = tcp_transition(c.state, ev, dir, c.mode);
        move_state(w, id, &mut c, next, now_ms);
    }
    deliver_tracked(w, t, f, ip, lay, id, &c, dir, confirm, now_ms)
}

/// The end of `established` (and of the fast path): refreshes connection `id`'s timer, tells
/// the peers, counts the packet, and delivers it. `c` is the connection after any state change.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn deliver_tracked(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    ip: &Ip,
    lay: &Layout,
    id: ConnId,
    c: &impl ConnView,
    dir: Dir,
    confirm: bool,
    now_ms: u64,
) -> Verdict {
    w.conns.set_expiry(id, now_ms + timeout_for(w, c.proto(), c.state()));
    if w.sync_on {
        super::sync::refreshed(w, id, now_ms);
    }
    count(w, c, dir, f.data().len());
    deliver(w, t, f, ip, lay, c, dir, confirm, now_ms)
}

/// Records forward progress on `e` from this packet (a TCP acknowledgement that moved forward
/// shows the neighbour it came from got what the LB sent it), and returns whether the
/// neighbour this packet goes to saw progress since the LB last sent toward it.
#[inline(always)]
pub(super) fn progress(e: &mut Entry, d: &[u8], ip: &Ip, lay: &Layout, dir: Dir, flags: u8) -> bool {
    let toward = if dir == Dir::Orig { PROGRESS_BACKEND } else { PROGRESS_CLIENT };
    let confirm = e.progress & toward != 0;
    e.progress &= !toward;
    if ip.proto == ip_proto::TCP && lay.l4_present && flags & tcp::flags::ACK != 0 {
        let ack = get_u32(d, ip.l4 + 8);
        let seen = e.acked[dir as usize];
        // Serial-number arithmetic (RFC 1982): the acknowledgement moved forward.
        if ack != seen && (ack.wrapping_sub(seen).cast_signed() > 0 || seen == 0) {
            e.acked[dir as usize] = ack;
            // Without replies through the LB (dr, tun, gue) the client acknowledging the
            // backend's data shows the backend got what the LB forwarded.
            e.progress |= if dir == Dir::Reply || !e.mode.sees_replies() { PROGRESS_BACKEND } else { PROGRESS_CLIENT };
        }
    }
    confirm
}

/// Moves connection `id` (whose copy is `c`) to TCP state `next`, keeping its backend's
/// active/inactive load right, and tells the peers what they need to know of it.
pub(super) fn move_state(w: &mut Worker, id: ConnId, c: &mut Conn, next: TcpState, now_ms: u64) {
    if next != c.state {
        let prev = c.state;
        let before = *c;
        w.conns.set_state(id, next);
        c.state = next;
        recount(&mut w.load, &before, c);
        if w.sync_on {
            super::sync::state_changed(w, id, prev, now_ms);
        }
    }
}

/// Removes connection `id` before its time (expired, re-opened, or its backend failed) and
/// takes it off its backend's load.
fn forget(w: &mut Worker, id: ConnId) -> Conn {
    let c = w.conns.remove(id);
    unload(&mut w.load, &c);
    w.counters.conns_expired += 1;
    c
}

/// A client's new SYN on a connection that has closed (TIME_WAIT, CLOSE): the client reuses
/// its port for a new connection, which is scheduled afresh, as IPVS's conn_reuse_mode does,
/// rather than sent to the old backend (which may have failed since).
fn reopens(c: &Conn, flags: u8) -> bool {
    c.orig.proto == ip_proto::TCP
        && flags & (tcp::flags::SYN | tcp::flags::ACK) == tcp::flags::SYN
        && matches!(c.state, TcpState::TimeWait | TcpState::Close)
}

/// The least time between a SYN and its retransmission that the passive check believes (a
/// client's first retransmission waits about 1 s: RFC 6298's initial RTO).
const SYN_RETRANSMIT_MS: u64 = 800;

/// A TCP connection whose client sent its SYN and whose backend has not answered it yet (no
/// acknowledgement came back). Only nat and fnat show the backend's side: for dr, tun and gue
/// a silent backend and a client that never completes look the same, so they never count.
pub(super) fn backend_silent(c: &impl ConnView) -> bool {
    c.proto() == ip_proto::TCP && c.state() == TcpState::SynRecv && c.mode().sees_replies() && c.acked(Dir::Reply) == 0
}

/// Counts a failed SYN against the connection's backend and service.
pub(super) fn syn_failed(counters: &mut super::Counters, c: &Conn) {
    if let Some(b) = counters.backends.get_mut(c.backend_id as usize) {
        b.syn_failures += 1;
    }
    if let Some(s) = counters.services.get_mut(c.service_id as usize) {
        s.syn_failures += 1;
    }
}

#[inline]
fn count(w: &mut Worker, c: &impl ConnView, dir: Dir, bytes: usize) {
    let bytes = bytes as u64;
    let add = |s: &mut super::counters::ServiceCounters| {
        if dir == Dir::Orig {
            s.in_packets += 1;
            s.in_bytes += bytes;
        } else {
            s.out_packets += 1;
            s.out_bytes += bytes;
        }
    };
    if let Some(s) = w.counters.services.get_mut(c.service_id() as usize) {
        add(s);
    }
    if let Some(s) = w.counters.backends.get_mut(c.backend_id() as usize) {
        add(s);
    }
}

/// Hash of the client for sh and mh: its address, and its port when the service asks.
fn source_hash(svc: &Service, key: &FlowKey) -> u64 {
    let alen = if key.v6 { 16 } else { 4 };
    let mut b = [0u8; 18];
    b[..alen].copy_from_slice(&key.src[..alen]);
    let n = if svc.hash_ports {
        b[alen..alen + 2].copy_from_slice(&key.src_port.to_be_bytes());
        alen + 2
    } else {
        alen
    };
    hash_bytes(&b[..n], 0x7372_6368)
}

/// The client address under the service's persistence mask (ipvsadm -M).
fn persistence_client(svc: &Service, key: &FlowKey) -> [u8; 16] {
    let mut a = key.src;
    for (b, m) in a.iter_mut().zip(svc.persistence_mask) {
        *b &= m;
    }
    a
}

/// Picks a backend for a new connection: the persistence template first, then the scheduler.
fn choose(w: &mut Worker, svc: &Service, key: &FlowKey, now_ms: u64) -> Option<usize> {
    let client = persistence_client(svc, key);
    if svc.persistence_ms > 0
        && let Some(bid) = w.persist.get(svc.id, &client, key.v6, now_ms)
        && let Some(i) = svc.backends.iter().position(|b| b.id == bid && b.weight > 0)
    {
        w.persist.put(svc.id, client, key.v6, bid, now_ms + svc.persistence_ms);
        return Some(i);
    }
    let Worker { cursors, load, .. } = w;
    let cursor = cursors.get_mut(svc.id as usize)?;
    let request = sched::Client {
        src: key.src,
        dst: key.dst,
        v6: key.v6,
        port: if svc.hash_ports { key.src_port } else { 0 },
        hash: if matches!(svc.plan, sched::Plan::Mh(_)) { source_hash(svc, key) } else { 0 },
        fallback: svc.fallback,
        now_ms,
    };
    let i = sched::pick(
        &svc.plan,
        &svc.weights,
        cursor,
        |i| load.get(svc.backends[i].id as usize).copied().unwrap_or_default(),
        &request,
    )?;
    if svc.persistence_ms > 0 {
        w.persist.put(svc.id, client, key.v6, svc.backends[i].id, now_ms + svc.persistence_ms);
    }
    Some(i)
}

#[allow(clippy::too_many_arguments)]
fn new_flow(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    ip: &Ip,
    lay: &Layout,
    key: &FlowKey,
    flags: u8,
    now_ms: u64,
) -> Verdict {
    let Some(svc) = t.lookup(key.dst, key.v6, key.dst_port, key.proto) else {
        if t.network.is_interface_address(&key.dst, key.v6) {
            // The host's own connection (a health check to a NAT backend, say): never un-NATed.
            return not_served(t, &key.dst, key.v6);
        }
        return stateless_nat_reply(w, t, f, ip, lay, key, now_ms).unwrap_or_else(|| not_served(t, &key.dst, key.v6));
    };
    let event = TcpEvent::from_flags(flags);
    if svc.synproxy && key.proto == ip_proto::TCP {
        return match flags & (tcp::flags::SYN | tcp::flags::ACK | tcp::flags::RST) {
            tcp::flags::SYN => synproxy::answer_syn(w, t, f, ip, key, now_ms),
            tcp::flags::ACK => proxied_flow(w, t, svc, f, ip, key, now_ms),
            _ => Verdict::Drop(DropReason::NoConnection),
        };
    }
    if key.proto == ip_proto::TCP
        && (flags & tcp::flags::RST != 0 || (event != Some(TcpEvent::Syn) && !svc.kind.is_hashing()))
    {
        // IPVS drops mid-stream segments it has no connection for; a hashing scheduler
        // (sh, mh) picks the same backend any LB node would, so it adopts the flow instead.
        return Verdict::Drop(DropReason::NoConnection);
    }
    let Some(bi) = choose(w, svc, key, now_ms) else {
        return Verdict::Drop(DropReason::NoBackend);
    };
    if rewrites_l4(svc.backends[bi].mode) && !l4_checksum_ok(f, ip, w.verify_l4) {
        return Verdict::Drop(DropReason::L4BadChecksum);
    }
    let mut c = Conn::default();
    if key.proto == ip_proto::TCP {
        c.state = tcp_transition(TcpState::None, event.unwrap_or(TcpEvent::Ack), Dir::Orig, svc.backends[bi].mode);
    }
    if svc.one_packet {
        // IPVS's one-packet scheduling: this datagram alone; the next is scheduled afresh.
        describe(&mut c, svc, &svc.backends[bi], key);
        w.counters.one_packet += 1;
        count_new(&mut w.counters, &c);
    } else if let Err(v) = open(w, t, svc, bi, key, &mut c, now_ms, true) {
        return v;
    }
    count(w, &c, Dir::Orig, f.data().len());
    deliver(w, t, f, ip, lay, &c, Dir::Orig, false, now_ms)
}

/// Fills in what connection `c` of `svc` to backend `b` is: its keys, ids, mode and tunnel.
/// The reply key is the backend's answer to the client (nat), or to lbd with the local port
/// still to choose (fnat, see `open`), or only the backend (dr and the tunnels).
fn describe(c: &mut Conn, svc: &Service, b: &crate::service::Backend, key: &FlowKey) {
    c.orig = *key;
    c.backend_id = b.id;
    c.service_id = svc.id;
    c.mode = b.mode;
    c.tunnel_port = b.tunnel_port;
    c.tunnel_csum = b.tunnel_checksum;
    c.reply_indexed = b.mode.sees_replies();
    // A port-zero service forwards every port unchanged.
    let src_port = if svc.key.port == 0 { key.dst_port } else { b.port };
    c.reply = FlowKey { src: b.addr, src_port, proto: key.proto, v6: b.v6, ..Default::default() };
    if b.mode == Mode::Nat {
        (c.reply.dst, c.reply.dst_port) = (key.src, key.src_port);
    }
}

/// Counts a new connection (or one-packet datagram) of its service and backend.
fn count_new(counters: &mut super::Counters, c: &Conn) {
    if let Some(s) = counters.services.get_mut(c.service_id as usize) {
        s.conns += 1;
    }
    if let Some(s) = counters.backends.get_mut(c.backend_id as usize) {
        s.conns += 1;
    }
}

/// Fills in a new connection `c` of `svc` to backend `bi` (reply key, full-NAT local address
/// and port, timeout) and tracks it. A full table turns into a stateless decision when
/// `stateless_ok` and the mode allows it (nat, dr, tun, gue), else into a drop.
#[allow(clippy::too_many_arguments)]
fn open(
    w: &mut Worker,
    t: &Table,
    svc: &Service,
    bi: usize,
    key: &FlowKey,
    c: &mut Conn,
    now_ms: u64,
    stateless_ok: bool,
) -> Result<Option<ConnId>, Verdict> {
    let b = svc.backends[bi];
    describe(c, svc, &b, key);
    if b.mode == Mode::Fnat {
        let locals = t.network.local_addresses(b.v6);
        let Some(local) = locals.get(usize::try_from(fast_hash(key, 0) % locals.len().max(1) as u64).unwrap_or(0))
        else {
            return Err(Verdict::Drop(DropReason::NoSourceAddress));
        };
        c.reply.dst = *local;
        match w.lports.choose(&c.reply, &w.conns) {
            Some(p) => c.reply.dst_port = p,
            None => return Err(Verdict::Drop(DropReason::LocalPortsExhausted)),
        }
    }
    c.expires_ms = now_ms + timeout_ms(w, c);
    match w.conns.insert(*c) {
        Ok(id) => {
            if w.sync_on {
                super::sync::opened(w, id, now_ms);
            }
            w.counters.conns_created += 1;
            add_load(&mut w.load, c);
            count_new(&mut w.counters, c);
            Ok(Some(id))
        }
        Err(InsertError::Exists) => Err(Verdict::Drop(DropReason::ConntrackCollision)),
        Err(InsertError::Full | InsertError::EmbryonicLimit) => {
            if b.mode == Mode::Fnat || !stateless_ok {
                // Without an entry a full-NAT reply cannot find its client (nor a proxied one
                // its sequence offset).
                return Err(Verdict::Drop(DropReason::ConntrackFull));
            }
            w.counters.stateless += 1;
            Ok(None)
        }
    }
}

/// The ACK that completes a SYN proxy handshake: a valid cookie opens the connection and
/// becomes the backend's SYN.
fn proxied_flow(
    w: &mut Worker,
    t: &Table,
    svc: &Service,
    f: &mut impl Frame,
    ip: &Ip,
    key: &FlowKey,
    now_ms: u64,
) -> Verdict {
    let opened = synproxy::accept_ack(w, f, ip, key, now_ms, |w, c| {
        let Some(bi) = choose(w, svc, key, now_ms) else {
            return Err(Verdict::Drop(DropReason::NoBackend));
        };
        c.state = TcpState::SynRecv;
        open(w, t, svc, bi, key, c, now_ms, false)?.ok_or(Verdict::Drop(DropReason::ConntrackFull))
    });
    match opened {
        Ok((c, ip2, lay2)) => {
            count(w, &c, Dir::Orig, f.data().len());
            deliver(w, t, f, &ip2, &lay2, &c, Dir::Orig, false, now_ms)
        }
        Err(v) => v,
    }
}

/// A NAT reply with no entry (table was full, or the LB restarted): when the source is a
/// backend of exactly one NAT service, un-NAT it statelessly.
fn stateless_nat_reply(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    ip: &Ip,
    lay: &Layout,
    key: &FlowKey,
    now_ms: u64,
) -> Option<Verdict> {
    let svc = t.nat_service_of(key.src, key.v6, key.src_port, key.proto)?;
    if !l4_checksum_ok(f, ip, w.verify_l4) {
        return Some(Verdict::Drop(DropReason::L4BadChecksum));
    }
    let vport = if svc.key.port == 0 { key.src_port } else { svc.key.port };
    let c = Conn {
        orig: FlowKey {
            src: key.dst,
            dst: svc.key.addr,
            src_port: key.dst_port,
            dst_port: vport,
            proto: key.proto,
            v6: key.v6,
        },
        reply: *key,
        mode: Mode::Nat,
        service_id: svc.id,
        ..Default::default()
    };
    w.counters.stateless += 1;
    Some(deliver(w, t, f, ip, lay, &c, Dir::Reply, false, now_ms))
}

//! The fast path for packets of established connections, as DPDK's l3fwd and VPP split theirs.
//!
//! `parse` reads a whole burst's headers first: a frame qualifies when it is the plainest case
//! the full pipeline handles (untagged, to the port's own MAC, IPv4 without options and not a
//! fragment or IPv6 without extension headers, with a whole TCP or UDP header) and passes
//! every check the full pipeline would make of it. Its key is hashed there, so the burst can
//! start its connection table misses together. `established` then forwards a qualifying
//! packet of a tracked connection whose packet changes nothing but its timers, counters and
//! forward progress (a TCP ACK without SYN, FIN or RST in the established state, or UDP), with
//! the very steps `forward::established` takes. Anything else, or anything in doubt, returns
//! `None` before a single byte or counter changed, and the full pipeline takes the packet from
//! the start. `fast_path_matches_the_full_pipeline` holds the two to the same verdicts, bytes
//! and counters.

use super::forward::{self, Ip};
use super::{Frame, LOOPBACK6, Verdict, Worker, martian_v4};
use crate::conntrack::{ConnId, ConnTable, ConnView, Dir, SynProxy, TcpEvent, tcp_transition};
use crate::flow::FlowKey;
use crate::rewrite::Layout;
use crate::service::{Mode, Table};
use crate::wire::{EtherType, array_at, checksum, get_array, get_u16, ip_proto, tcp};

/// What `parse` found in a qualifying frame.
#[derive(Clone, Copy)]
pub(super) struct Parsed {
    pub key: FlowKey,
    /// The key's hash in the connection table. The fields are kept narrow: a burst's worth
    /// is written and read back on every packet.
    pub hash: u32,
    /// IP header plus payload length (the frame may be longer: Ethernet padding).
    pub total: u32,
    /// Offset of the transport header.
    pub l4: u8,
    /// TCP flags (0 for UDP).
    pub flags: u8,
    /// IPv4's DF bit (always set for IPv6).
    pub dont_frag: bool,
}

/// Length of the (untagged) Ethernet header.
const L3: usize = 14;

/// Reads and checks a frame's headers, as `process_one`, `ipv4`/`ipv6` and `transport` would
/// (`None`: the full pipeline decides).
#[inline]
pub(super) fn parse<F: Frame>(t: &Table, conns: &ConnTable, f: &F) -> Option<Parsed> {
    let d = f.data();
    let port = t.network.ports.get(usize::from(f.in_port()))?;
    // Multicast and broadcast destinations, VLAN tags and other ethertypes: the full pipeline.
    if d.len() < L3 || get_array::<6>(d, 0) != port.mac.0 {
        return None;
    }
    let (src, dst, proto, total, l4, v6, dont_frag) = match get_u16(d, 12) {
        EtherType::IPV4 => {
            let ip: &[u8; 20] = array_at(d, L3)?;
            let total = usize::from(get_u16(ip, 2));
            // Version 4, no options, not a fragment, a whole datagram, a good header checksum.
            if ip[0] != 0x45 || total < 20 || d.len() < L3 + total || get_u16(ip, 6) & 0x3fff != 0 {
                return None;
            }
            if checksum::sum_words(ip) != 0xffff || martian_v4(get_array(ip, 12)) {
                return None;
            }
            let (src, dst) = (crate::flow::widen(get_array(ip, 12)), crate::flow::widen(get_array(ip, 16)));
            (src, dst, ip[9], total, L3 + 20, false, ip[6] & 0x40 != 0)
        }
        EtherType::IPV6 => {
            let ip = d.get(L3..L3 + 40)?;
            let total = 40 + usize::from(get_u16(ip, 4));
            if ip[0] >> 4 != 6 || d.len() < L3 + total {
                return None;
            }
            let src: [u8; 16] = get_array(ip, 8);
            // Unspecified, multicast and loopback sources are the full pipeline's to drop.
            if src == [0; 16] || src[0] == 0xff || src == LOOPBACK6 {
                return None;
            }
            (src, get_array(ip, 24), ip[6], total, L3 + 40, true, true)
        }
        _ => return None,
    };
    let seg = &d[l4..L3 + total];
    let (src_port, dst_port, flags) = match proto {
        ip_proto::TCP => {
            let hl = usize::from(*seg.get(12)? >> 4) * 4;
            if seg.len() < tcp::HEADER_LEN || hl < tcp::HEADER_LEN || seg.len() < hl {
                return None;
            }
            (get_u16(seg, 0), get_u16(seg, 2), seg[13])
        }
        ip_proto::UDP => {
            // The UDP length must be the IP payload's.
            if seg.len() < 8 || usize::from(get_u16(seg, 4)) != seg.len() {
                return None;
            }
            (get_u16(seg, 0), get_u16(seg, 2), 0)
        }
        _ => return None,
    };
    let key = FlowKey { src, dst, src_port, dst_port, proto, v6 };
    let hash = conns.hash(&key);
    let (total, l4) = (u32::try_from(total).ok()?, u8::try_from(l4).ok()?);
    Some(Parsed { key, hash, total, l4, flags, dont_frag })
}

/// Forwards a parsed packet of an established connection whose packet changes no state; `None`
/// (with nothing changed) for everything else. `hint` is the entry reference the burst's
/// warm-up found for the packet's hash (see `ConnTable::lookup_hinted`).
#[inline]
pub(super) fn established<F: Frame>(
    w: &mut Worker,
    t: &Table,
    f: &mut F,
    p: &Parsed,
    hint: u32,
    now_ms: u64,
) -> Option<Verdict> {
    use tcp::flags::{ACK, FIN, RST, SYN};
    let tcp = p.key.proto == ip_proto::TCP;
    // An ACK without SYN, FIN or RST (any such flags are valid ones), or UDP.
    if tcp && p.flags & (ACK | SYN | FIN | RST) != ACK {
        return None;
    }
    let (id, dir) = w.conns.lookup_hinted(&p.key, p.hash, hint)?;
    // A connection of plain IPv4 keys is read from its entry alone; others with their side
    // array's addresses. Both inlined: the wide case out of line cost IPv6 packets more than
    // it saved IPv4 ones (bench/RESULTS.md §1).
    let e = w.conns.entry(id);
    if e.is_narrow() {
        let c = e.narrow();
        forward(w, t, f, p, id, dir, &c, now_ms)
    } else {
        let c = w.conns.wide_view(id);
        forward(w, t, f, p, id, dir, &c, now_ms)
    }
}

/// `established` once its connection is found: `c` is connection `id`, which `p` travels
/// `dir`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward<F: Frame>(
    w: &mut Worker,
    t: &Table,
    f: &mut F,
    p: &Parsed,
    id: ConnId,
    dir: Dir,
    c: &impl ConnView,
    now_ms: u64,
) -> Option<Verdict> {
    let tcp = p.key.proto == ip_proto::TCP;
    // Expired (the full pipeline forgets it), proxied, reset on a down backend, or its backend
    // never answered (the passive health check's case).
    if c.expires_ms() <= now_ms
        || c.synproxy() != SynProxy::Off
        || t.expires_on_down(c.backend_id())
        || forward::backend_silent(c)
    {
        return None;
    }
    if tcp && tcp_transition(c.state(), TcpEvent::Ack, dir, c.mode()) != c.state() {
        return None;
    }
    let ip = Ip {
        l3: L3,
        l4: usize::from(p.l4),
        v6: p.key.v6,
        proto: p.key.proto,
        total: p.total as usize,
        dont_frag: p.dont_frag,
        fragment: None,
    };
    if matches!(c.mode(), Mode::Nat | Mode::Fnat) && !forward::l4_checksum_ok(f, &ip, w.verify_l4) {
        return None;
    }
    // From here on, what the full pipeline does to this packet, in its order.
    if f.data().len() > L3 + ip.total {
        f.set_len(L3 + ip.total);
    }
    let lay = Layout { l3: L3, l4: ip.l4, v6: p.key.v6, proto: p.key.proto, l4_present: true };
    let confirm = forward::progress(w.conns.entry_mut(id), f.data(), &ip, &lay, dir, p.flags);
    Some(forward::deliver_tracked(w, t, f, &ip, &lay, id, c, dir, confirm, now_ms))
}

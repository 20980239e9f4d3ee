//! Sending a packet of a tracked connection: the per-mode rewrite, route, MTU and TTL checks
//! (with the ICMP errors a router sends: fragmentation needed, time exceeded), tunnels toward
//! the backend, then layer 2.

use super::forward::Ip;
use super::{DropReason, Frame, Verdict, Worker, l2, synproxy};
use crate::conntrack::{ConnView, Dir, SynProxy};
use crate::flow::fast_hash;
use crate::rewrite::{
    IcmpError, Layout, Tunnel, decrement_ttl, encapsulate, make_icmp_error, translate, tunnel_overhead,
};
use crate::service::{Mode, Table};
use crate::wire::encap::{Endpoints, OuterFields};
use crate::wire::get_u16;

/// Rewrites the packet for its connection and direction and sends it on.
#[allow(clippy::too_many_arguments)]
pub(super) fn deliver(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    ip: &Ip,
    lay: &Layout,
    c: &impl ConnView,
    dir: Dir,
    confirm: bool,
    now_ms: u64,
) -> Verdict {
    let size = Some((ip.total, ip.dont_frag));
    send_for_conn(w, t, f, lay.l3, ip.v6, c, dir, size, confirm, now_ms, |d| {
        match (dir, c.mode()) {
            (Dir::Orig, Mode::Nat) => {
                let (to, port) = c.reply_src();
                translate(d, lay, None, Some((&to, port)));
            }
            (Dir::Orig, Mode::Fnat) => {
                let ((from, from_port), (to, to_port)) = (c.reply_dst(), c.reply_src());
                translate(d, lay, Some((&from, from_port)), Some((&to, to_port)));
            }
            (Dir::Reply, Mode::Nat) => {
                let (from, port) = c.orig_dst();
                translate(d, lay, Some((&from, port)), None);
            }
            (Dir::Reply, Mode::Fnat) => {
                let ((from, from_port), (to, to_port)) = (c.orig_dst(), c.orig_src());
                translate(d, lay, Some((&from, from_port)), Some((&to, to_port)));
            }
            _ => {}
        }
        if c.synproxy() == SynProxy::Active {
            synproxy::translate_seq(d, lay, c.seq_delta(), dir);
        }
    })
}

/// Sends a packet of connection `c` travelling `dir`: route, MTU check (when `size` gives the
/// IP length and DF bit), TTL, `rewrite`, tunnel for tun/gue toward the backend, then L2.
/// Shared by forwarded packets and relayed ICMP errors.
// Always inlined: a call passing eleven arguments spilled them on every packet.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn send_for_conn(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    l3: usize,
    inner_v6: bool,
    c: &impl ConnView,
    dir: Dir,
    size: Option<(usize, bool)>,
    confirm: bool,
    now_ms: u64,
    rewrite: impl FnOnce(&mut [u8]),
) -> Verdict {
    let (target, out_v6) = match dir {
        Dir::Orig => (c.reply_src().0, c.reply_v6()),
        Dir::Reply => (c.orig_src().0, c.orig_v6()),
    };
    let Some((port, hop)) = t.route_to(c.backend_id(), &target, out_v6) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    if dir == Dir::Orig && c.mode() == Mode::Dr && hop != target {
        // Direct routing only reaches backends on a connected segment.
        return Verdict::Drop(DropReason::NoRoute);
    }
    let tunnel = match (dir, c.mode()) {
        (Dir::Orig, Mode::Tun | Mode::Gre | Mode::Gue) => match outer_headers(t, c, port, &target, out_v6) {
            Some(tunnel) => Some(tunnel),
            None => return Verdict::Drop(DropReason::NoSourceAddress),
        },
        _ => None,
    };
    let overhead = tunnel.as_ref().map_or(0, |(tn, o, _)| tunnel_overhead(*tn, o));
    let mtu = usize::from(t.network.ports.get(usize::from(port)).map_or(1500, |p| p.mtu));
    if let Some((total, dont_frag)) = size
        && total + overhead > mtu
    {
        return too_big(w, t, f, l3, inner_v6, dont_frag, c, dir, mtu - overhead);
    }
    if !decrement_ttl(f.data_mut(), l3, inner_v6) {
        return time_exceeded(w, t, f, l3, inner_v6, size.is_some(), now_ms);
    }
    rewrite(f.data_mut());
    if let Some((tn, o, entropy)) = tunnel {
        // The rewrites leave the inner header's TOS and DF bit as they were.
        let d = f.data();
        let (dscp_ecn, df) = if inner_v6 { (0, true) } else { (d[l3 + 1], d[l3 + 6] & 0x40 != 0) };
        let fields = OuterFields { ttl: 64, dscp_ecn, dont_frag: df, entropy: (entropy >> 32) as u32 };
        if !encapsulate(f, l3, inner_v6, &o, tn, &fields) {
            return Verdict::Drop(DropReason::NoRoom);
        }
    }
    l2::send_via(w, t, f, port, &hop, out_v6, confirm, now_ms)
}

/// The tunnel toward a tun, gre or gue backend, its outer addresses (from the LB's address on
/// `port`), and the flow's hash that the outer headers carry (outer IPv4 id or flow label, GUE
/// source port); `None` when the port has no address of the family. Only tunnels pay for the
/// hash.
#[inline(never)]
fn outer_headers(
    t: &Table,
    c: &impl ConnView,
    port: u16,
    target: &[u8; 16],
    out_v6: bool,
) -> Option<(Tunnel, Endpoints, u64)> {
    let entropy = fast_hash(&c.orig(), 0);
    let tunnel = match c.mode() {
        Mode::Gre => Tunnel::Gre { checksum: c.tunnel_csum() },
        Mode::Gue => {
            let src_port = 0xc000 | (entropy & 0x3fff) as u16;
            Tunnel::Gue { src_port, dst_port: c.tunnel_port(), checksum: c.tunnel_csum() }
        }
        _ => Tunnel::Ipip,
    };
    let src = t.network.address_on(port, out_v6)?;
    let outer = if out_v6 {
        Endpoints::V6 { src, dst: *target }
    } else {
        Endpoints::V4 { src: crate::flow::narrow(&src), dst: crate::flow::narrow(target) }
    };
    Some((tunnel, outer, entropy))
}

/// The TTL or hop limit ran out here: answer the sender with ICMP time exceeded from the LB's
/// address on the port it came in by, as a router would (RFC 1812 5.3.1), rate-limited so that
/// spoofed packets cannot make lbd a reflector. Never for a relayed ICMP error (`forwarded`
/// false) nor a non-first fragment.
fn time_exceeded(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    l3: usize,
    v6: bool,
    forwarded: bool,
    now_ms: u64,
) -> Verdict {
    let d = f.data();
    let later_fragment = !v6 && get_u16(d, l3 + 6) & 0x1fff != 0;
    let from = t.network.address_on(f.in_port(), v6);
    let Some(from) = from.filter(|_| forwarded && !later_fragment && w.icmp_allowed(now_ms)) else {
        return Verdict::Drop(DropReason::TtlExceeded);
    };
    if !make_icmp_error(f, l3, v6, &from, IcmpError::TimeExceeded) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    w.counters.time_exceeded_sent += 1;
    l2::back_to_sender(t, f)
}

/// The packet does not fit the egress MTU: answer its sender with fragmentation needed / packet
/// too big (from the VIP when the client sent it), or drop it when IPv4 DF is clear.
#[allow(clippy::too_many_arguments)]
fn too_big(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    l3: usize,
    v6: bool,
    dont_frag: bool,
    c: &impl ConnView,
    dir: Dir,
    mtu: usize,
) -> Verdict {
    if !v6 && !dont_frag {
        return Verdict::Drop(DropReason::TooBigNoDf);
    }
    let from = match dir {
        Dir::Orig => c.orig_dst().0,
        Dir::Reply => t.network.address_on(f.in_port(), v6).unwrap_or(c.orig_dst().0),
    };
    if !make_icmp_error(f, l3, v6, &from, IcmpError::TooBig(u16::try_from(mtu).unwrap_or(u16::MAX))) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    w.counters.too_big_sent += 1;
    l2::back_to_sender(t, f)
}

/// The (source, destination) ports of the transport header at `at`, if 4 bytes are there.
pub(super) fn ports_at(d: &[u8], at: usize) -> Option<(u16, u16)> {
    (d.len() >= at + 4).then(|| (get_u16(d, at), get_u16(d, at + 2)))
}

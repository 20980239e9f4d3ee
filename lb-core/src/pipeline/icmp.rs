//! ICMP for VIPs and own addresses: echo replies, and relaying ICMP errors about tracked flows
//! to the party that sent the offending packet, with inner and outer headers rewritten for NAT
//! modes (so path MTU discovery works through the LB), and forwarded as is (tunnelled for
//! tun/gue) to direct-routing backends, which sent the quoted packet with the VIP as source.

use super::send::{ports_at, send_for_conn};
use super::{DropReason, Frame, L3, Verdict, Worker, l2};
use crate::conntrack::Dir;
use crate::flow::{FlowKey, widen};
use crate::rewrite::{Layout, translate};
use crate::service::{Mode, Table};
use crate::wire::{checksum, get_array, icmpv4, icmpv6, ip_proto, ipv4, ipv6};

/// Handles an ICMPv4 message at `at`.
pub(super) fn v4(w: &mut Worker, t: &Table, f: &mut impl Frame, at: usize, now_ms: u64) -> Verdict {
    let d = f.data();
    let ip = ipv4::Packet::new_unchecked(&d[L3..]);
    let dst = widen(ip.dst());
    let Ok(m) = icmpv4::Packet::new_checked(&d[at..]) else {
        return Verdict::Drop(DropReason::IcmpMalformed);
    };
    let own = t.network.is_own(&dst, false);
    if m.msg_type() == icmpv4::TYPE_ECHO_REQUEST && (own || t.is_vip(dst, false)) {
        if !m.verify_checksum() {
            return Verdict::Drop(DropReason::IcmpBadChecksum);
        }
        let d = f.data_mut();
        let (src, dst) = (get_array::<4>(d, L3 + 12), get_array::<4>(d, L3 + 16));
        let mut ip = ipv4::Packet::new_unchecked(&mut d[L3..]);
        ip.set_src(dst);
        ip.set_dst(src);
        ip.set_ttl(64);
        ip.fill_checksum();
        let mut m = icmpv4::Packet::new_unchecked(&mut d[at..]);
        let c = checksum::update16(
            m.checksum(),
            u16::from(icmpv4::TYPE_ECHO_REQUEST) << 8,
            u16::from(icmpv4::TYPE_ECHO_REPLY) << 8,
        );
        m.set_msg_type(icmpv4::TYPE_ECHO_REPLY);
        m.set_code(0);
        m.set_checksum(c);
        w.counters.echo_replies += 1;
        return l2::back_to_sender(t, f);
    }
    if m.is_error() {
        return for_host_if_unrelated(t, &dst, false, relay_error(w, t, f, at, false, now_ms));
    }
    unanswered(t, own, &dst, false)
}

/// Handles an ICMPv6 message at `at`.
pub(super) fn v6(w: &mut Worker, t: &Table, f: &mut impl Frame, at: usize, now_ms: u64) -> Verdict {
    let d = f.data();
    let ip = ipv6::Packet::new_unchecked(&d[L3..]);
    let (src, dst, end) = (ip.src(), ip.dst(), L3 + ip.total_len());
    let Ok(m) = icmpv6::Packet::new_checked(&d[at..end]) else {
        return Verdict::Drop(DropReason::IcmpMalformed);
    };
    let ty = m.msg_type();
    if matches!(ty, icmpv6::TYPE_NEIGHBOR_SOLICIT | icmpv6::TYPE_NEIGHBOR_ADVERT) {
        return l2::nd(w, t, f, at, now_ms);
    }
    let own = t.network.is_own(&dst, true);
    if ty == icmpv6::TYPE_ECHO_REQUEST && (own || t.is_vip(dst, true)) {
        let len = u32::try_from(end - at).unwrap_or(0);
        if !m.verify_checksum(checksum::pseudo_v6(src, dst, ip_proto::ICMPV6, len)) {
            return Verdict::Drop(DropReason::IcmpBadChecksum);
        }
        let d = f.data_mut();
        let mut ip = ipv6::Packet::new_unchecked(&mut d[L3..]);
        ip.set_src(dst);
        ip.set_dst(src);
        ip.set_hop_limit(64);
        // Swapping addresses leaves the pseudo-header sum as it was; only the type changes.
        let mut m = icmpv6::Packet::new_unchecked(&mut d[at..end]);
        let c = checksum::update16(
            m.checksum(),
            u16::from(icmpv6::TYPE_ECHO_REQUEST) << 8,
            u16::from(icmpv6::TYPE_ECHO_REPLY) << 8,
        );
        m.set_msg_type(icmpv6::TYPE_ECHO_REPLY);
        m.set_code(0);
        m.set_checksum(c);
        w.counters.echo_replies += 1;
        return l2::back_to_sender(t, f);
    }
    if m.is_error() {
        return for_host_if_unrelated(t, &dst, true, relay_error(w, t, f, at, true, now_ms));
    }
    unanswered(t, own, &dst, true)
}

/// An ICMP error about no flow of the LB's, sent to an interface address, is the host's: it
/// concerns the kernel's own connections (a health check's port unreachable, a BGP session's
/// fragmentation needed).
fn for_host_if_unrelated(t: &Table, dst: &[u8; 16], v6: bool, v: Verdict) -> Verdict {
    match v {
        Verdict::Drop(DropReason::IcmpUnrelated) if t.network.is_interface_address(dst, v6) => Verdict::Host,
        v => v,
    }
}

/// ICMP the LB does not answer: the host stack gets it for interface addresses; for a VIP it
/// is unsupported; anything else is not for this LB.
fn unanswered(t: &Table, own: bool, dst: &[u8; 16], v6: bool) -> Verdict {
    if own && t.network.is_interface_address(dst, v6) {
        Verdict::Host
    } else if t.is_vip(*dst, v6) {
        Verdict::Drop(DropReason::IcmpUnsupported)
    } else {
        Verdict::Drop(DropReason::UnknownDestination)
    }
}

/// Finds the flow an ICMP error quotes and sends the error to whoever sent the quoted packet.
fn relay_error(w: &mut Worker, t: &Table, f: &mut impl Frame, at: usize, v6: bool, now_ms: u64) -> Verdict {
    let d = f.data();
    let inner = at + icmpv4::HEADER_LEN;
    // The quoted header: IPv4 with options, or IPv6 directly followed by TCP/UDP.
    let parsed = if v6 {
        (d.len() >= inner + ipv6::HEADER_LEN && d[inner] >> 4 == 6)
            .then(|| (ipv6::HEADER_LEN, d[inner + 6], get_array::<16>(d, inner + 8), get_array::<16>(d, inner + 24)))
    } else {
        let ihl = d.get(inner).map_or(0, |b| usize::from(b & 0x0f) * 4);
        (d.len() >= inner + ihl.max(ipv4::HEADER_LEN) && d[inner] >> 4 == 4 && ihl >= ipv4::HEADER_LEN)
            .then(|| (ihl, d[inner + 9], widen(get_array(d, inner + 12)), widen(get_array(d, inner + 16))))
    };
    let Some((ihl, proto, isrc, idst)) = parsed else {
        return Verdict::Drop(DropReason::IcmpMalformed);
    };
    if !matches!(proto, ip_proto::TCP | ip_proto::UDP) {
        return Verdict::Drop(DropReason::IcmpUnrelated);
    }
    let Some((sport, dport)) = ports_at(d, inner + ihl) else {
        return Verdict::Drop(DropReason::IcmpMalformed);
    };
    // The quoted packet travelled away from the LB; its reverse is a key the LB tracks.
    let quoted = FlowKey { src: isrc, dst: idst, src_port: sport, dst_port: dport, proto, v6 };
    let Some((id, dir)) = w.conns.lookup(&quoted.reversed()) else {
        return Verdict::Drop(DropReason::IcmpUnrelated);
    };
    let c = w.conns.get(id);
    if c.expires_ms <= now_ms || (dir == Dir::Reply && !c.mode.sees_replies()) {
        return Verdict::Drop(DropReason::IcmpUnrelated);
    }
    let inner_lay = Layout { l3: inner, l4: inner + ihl, v6, proto, l4_present: true };
    let outer_lay =
        Layout { l3: L3, l4: at, v6, proto: if v6 { ip_proto::ICMPV6 } else { ip_proto::ICMP }, l4_present: false };
    // The error goes to the backend (Dir::Orig: it quotes a packet bound to the client) or to
    // the client (Dir::Reply: it quotes a packet the LB sent to a backend). Address it to the
    // target as the target sent the quoted packet.
    let (inner_src, inner_dst, outer_src, outer_dst) = match (dir, c.mode) {
        (Dir::Orig, Mode::Nat) => (Some((c.reply.src, c.reply.src_port)), None, None, Some(c.reply.src)),
        (Dir::Orig, Mode::Fnat) => (
            Some((c.reply.src, c.reply.src_port)),
            Some((c.reply.dst, c.reply.dst_port)),
            Some(c.reply.dst),
            Some(c.reply.src),
        ),
        (Dir::Orig, _) => (None, None, None, None),
        (Dir::Reply, Mode::Nat) => (None, Some((c.orig.dst, c.orig.dst_port)), Some(c.orig.dst), Some(c.orig.src)),
        (Dir::Reply, _) => (
            Some((c.orig.src, c.orig.src_port)),
            Some((c.orig.dst, c.orig.dst_port)),
            Some(c.orig.dst),
            Some(c.orig.src),
        ),
    };
    w.counters.icmp_errors_relayed += 1;
    send_for_conn(w, t, f, L3, v6, &c, dir, None, false, now_ms, |d| {
        translate(d, &inner_lay, inner_src.as_ref().map(|(a, p)| (a, *p)), inner_dst.as_ref().map(|(a, p)| (a, *p)));
        translate(d, &outer_lay, outer_src.as_ref().map(|a| (a, 0)), outer_dst.as_ref().map(|a| (a, 0)));
        let end = d.len();
        if v6 {
            let (s, t) = (get_array::<16>(d, L3 + 8), get_array::<16>(d, L3 + 24));
            let len = u32::try_from(end - at).unwrap_or(0);
            icmpv6::Packet::new_unchecked(&mut d[at..end]).fill_checksum(checksum::pseudo_v6(
                s,
                t,
                ip_proto::ICMPV6,
                len,
            ));
        } else {
            icmpv4::Packet::new_unchecked(&mut d[at..end]).fill_checksum();
        }
    })
}

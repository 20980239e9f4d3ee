//! Layer 2 duties: answering ARP and neighbour solicitations for VIPs and own addresses,
//! learning neighbours, addressing forwarded frames to their next hop, and turning a frame
//! whose next hop is unknown into a rate-limited ARP or ND request.

use super::{DropReason, Frame, L3, Verdict, Worker};
use crate::flow::{narrow, widen};
use crate::service::Table;
use crate::wire::{EtherType, MacAddr, arp, checksum, ethernet, icmpv6, ip_proto, ipv6};

const UNSPECIFIED: [u8; 16] = [0; 16];
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

fn set_macs(d: &mut [u8], dst: MacAddr, src: MacAddr) {
    d[0..6].copy_from_slice(&dst.0);
    d[6..12].copy_from_slice(&src.0);
}

fn port_mac(t: &Table, port: u16) -> MacAddr {
    t.network.ports.get(usize::from(port)).map_or(MacAddr::ZERO, |p| p.mac)
}

/// Sends a frame back where it came from: the sender's MAC becomes the destination.
pub(super) fn back_to_sender(t: &Table, f: &mut impl Frame) -> Verdict {
    let port = f.in_port();
    let d = f.data_mut();
    let sender = MacAddr(crate::wire::get_array(d, 6));
    set_macs(d, sender, port_mac(t, port));
    Verdict::Tx(port)
}

/// Handles an ARP packet: learn the sender, answer requests for our addresses.
pub(super) fn arp(w: &mut Worker, t: &Table, f: &mut impl Frame, now_ms: u64) -> Verdict {
    let in_port = f.in_port();
    let Ok(a) = arp::Packet::new_checked(&f.data()[L3..]) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    let (op, smac, sip, tip) = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip());
    let sender = widen(sip);
    if sip != [0; 4] && !smac.is_multicast() && t.network.on_link(in_port, &sender, false) {
        w.neigh.insert(&sender, false, smac, in_port, now_ms, false);
    }
    let target = widen(tip);
    if op != arp::OP_REQUEST || !(t.is_vip(target, false) || t.network.is_own(&target, false)) {
        return Verdict::Consumed;
    }
    let mac = port_mac(t, in_port);
    let d = f.data_mut();
    set_macs(d, smac, mac);
    let mut reply = arp::Packet::new_unchecked(&mut d[L3..]);
    reply.set_operation(arp::OP_REPLY);
    reply.set_sender_mac(mac);
    reply.set_sender_ip(tip);
    reply.set_target_mac(smac);
    reply.set_target_ip(sip);
    w.counters.arp_replies += 1;
    Verdict::Tx(in_port)
}

/// Handles a neighbour solicitation or advertisement at `icmp_at`.
pub(super) fn nd(w: &mut Worker, t: &Table, f: &mut impl Frame, icmp_at: usize, now_ms: u64) -> Verdict {
    let in_port = f.in_port();
    let d = f.data();
    let ip = ipv6::Packet::new_unchecked(&d[L3..]);
    let (src, hop_limit, end) = (ip.src(), ip.hop_limit(), L3 + ip.total_len());
    let Ok(m) = icmpv6::Packet::new_checked(&d[icmp_at..end]) else {
        return Verdict::Drop(DropReason::NdInvalid);
    };
    if hop_limit != 255 || m.code() != 0 {
        return Verdict::Drop(DropReason::NdInvalid);
    }
    if !m.verify_checksum(checksum::pseudo_v6(
        src,
        ip.dst(),
        ip_proto::ICMPV6,
        u32::try_from(end - icmp_at).unwrap_or(0),
    )) {
        return Verdict::Drop(DropReason::IcmpBadChecksum);
    }
    let target = m.nd_target();
    if m.msg_type() == icmpv6::TYPE_NEIGHBOR_ADVERT {
        return match m.nd_lladdr_option(icmpv6::OPT_TARGET_LLADDR) {
            Ok(Some(mac)) => {
                if t.network.on_link(in_port, &target, true) {
                    w.neigh.insert(&target, true, mac, in_port, now_ms, false);
                }
                Verdict::Consumed
            }
            Ok(None) => Verdict::Consumed,
            Err(_) => Verdict::Drop(DropReason::NdInvalid),
        };
    }
    let source_mac = match m.nd_lladdr_option(icmpv6::OPT_SOURCE_LLADDR) {
        Ok(mac) => mac,
        Err(_) => return Verdict::Drop(DropReason::NdInvalid),
    };
    if let Some(mac) = source_mac.filter(|_| src != UNSPECIFIED) {
        w.neigh.insert(&src, true, mac, in_port, now_ms, false);
    }
    if !(t.is_vip(target, true) || t.network.is_own(&target, true)) {
        return Verdict::Consumed;
    }
    // Duplicate address detection (unspecified source) is answered to all nodes, unsolicited.
    let (dst, flags) = if src == UNSPECIFIED {
        (ALL_NODES, icmpv6::NA_FLAG_OVERRIDE)
    } else {
        (src, icmpv6::NA_FLAG_SOLICITED | icmpv6::NA_FLAG_OVERRIDE)
    };
    let eth_dst = if src == UNSPECIFIED {
        MacAddr::ipv6_multicast(ALL_NODES)
    } else {
        source_mac.unwrap_or(MacAddr(crate::wire::get_array(d, 6)))
    };
    let len = icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;
    if !f.set_len(L3 + ipv6::HEADER_LEN + len) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    let mac = port_mac(t, in_port);
    let d = f.data_mut();
    set_macs(d, eth_dst, mac);
    emit_nd(&mut d[L3..], icmpv6::TYPE_NEIGHBOR_ADVERT, flags, target, dst, target, (icmpv6::OPT_TARGET_LLADDR, mac));
    w.counters.nd_replies += 1;
    Verdict::Tx(in_port)
}

/// Writes an IPv6 header and an NS/NA with one link-layer option into `b`.
fn emit_nd(b: &mut [u8], kind: u8, flags: u32, src: [u8; 16], dst: [u8; 16], target: [u8; 16], opt: (u8, MacAddr)) {
    let len = icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;
    ipv6::emit(
        b,
        &ipv6::Repr {
            src,
            dst,
            next_header: ip_proto::ICMPV6,
            payload_len: u16::try_from(len).unwrap_or(0),
            hop_limit: 255,
            traffic_class: 0,
            flow_label: 0,
        },
    );
    let mut m = icmpv6::Packet::new_unchecked(&mut b[ipv6::HEADER_LEN..ipv6::HEADER_LEN + len]);
    m.set_msg_type(kind);
    m.set_code(0);
    m.set_nd_flags(flags);
    m.set_nd_target(target);
    m.set_nd_lladdr_option(opt.0, opt.1);
    m.fill_checksum(checksum::pseudo_v6(src, dst, ip_proto::ICMPV6, u32::try_from(len).unwrap_or(0)));
}

/// Addresses the frame to `hop` on `port` and transmits it, or, when the hop's MAC is not
/// known, turns the frame into an ARP/ND request for it (the original packet is dropped and
/// counted; requests for one address are rate-limited).
pub(super) fn send_via(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    port: u16,
    hop: &[u8; 16],
    v6: bool,
    now_ms: u64,
) -> Verdict {
    let mac = port_mac(t, port);
    if let Some(n) = w.neigh.lookup(hop, v6, now_ms) {
        set_macs(f.data_mut(), n.mac, mac);
        return Verdict::Tx(port);
    }
    let slot = usize::from(hop[15] ^ hop[3] ^ hop[14].rotate_left(3)) % w.solicits.len();
    let (last_hop, last_ms) = w.solicits[slot];
    if last_hop == *hop && last_ms != 0 && now_ms.saturating_sub(last_ms) < w.solicit_interval_ms {
        return Verdict::Drop(DropReason::NeighbourUnresolved);
    }
    let Some(src) = t.network.address_on(port, v6) else {
        return Verdict::Drop(DropReason::NoSourceAddress);
    };
    let len = if v6 { L3 + ipv6::HEADER_LEN + icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN } else { L3 + arp::LEN };
    if !f.set_len(len) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    let d = f.data_mut();
    if v6 {
        let snm = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, hop[13], hop[14], hop[15]];
        ethernet::emit(d, MacAddr::ipv6_multicast(snm), mac, EtherType::IPV6);
        emit_nd(&mut d[L3..], icmpv6::TYPE_NEIGHBOR_SOLICIT, 0, src, snm, *hop, (icmpv6::OPT_SOURCE_LLADDR, mac));
    } else {
        ethernet::emit(d, MacAddr::BROADCAST, mac, EtherType::ARP);
        arp::emit(&mut d[L3..], arp::OP_REQUEST, (mac, narrow(&src)), (MacAddr::ZERO, narrow(hop)));
    }
    w.solicits[slot] = (*hop, now_ms.max(1));
    w.counters.neighbour_requests += 1;
    // The frame leaves as a request, but the packet it carried is lost: count that.
    w.counters.drops[DropReason::NeighbourUnresolved as usize] += 1;
    Verdict::Tx(port)
}

//! Layer 2 duties: answering ARP and neighbour solicitations for VIPs and own addresses,
//! learning neighbours, addressing forwarded frames to their next hop, and turning a frame
//! whose next hop is unknown into a rate-limited ARP or ND request.

use super::{DropReason, Frame, L3, Verdict, Worker};
use crate::flow::{narrow, widen};
use crate::neigh::{Claim, Resolution};
use crate::service::Table;
use crate::wire::{EtherType, MacAddr, arp, checksum, ethernet, icmpv6, ip_proto, ipv6};

const UNSPECIFIED: [u8; 16] = [0; 16];
const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

// Always inlined, as every forwarded packet calls it (LLVM had kept it out of line).
#[inline(always)]
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

/// Whether `addr` is one of the LB's own addresses or VIPs. A peer's full-NAT local address is
/// not: its owner answers for it, and routers bring it here only when the owner fails.
fn ours(t: &Table, addr: &[u8; 16], v6: bool) -> bool {
    t.is_vip(*addr, v6) || (t.network.is_own(addr, v6) && !t.network.is_peer_local(addr, v6))
}

/// Whether an ARP or ND answer addressed to `addr` on `port` also goes to the host: `addr` is
/// an interface address of a port with an exception path, so the host's kernel asked.
fn to_host(t: &Table, port: u16, addr: &[u8; 16], v6: bool) -> bool {
    t.network.has_exception(port) && t.network.is_interface_address(addr, v6)
}

/// A frame the host's kernel sent out of the exception interface of port `f.in_port()`: it
/// leaves by that port as it is. When it asks for a neighbour (an ARP request, a neighbour
/// solicitation), the shared table starts resolving that neighbour as if lbd had asked, so
/// the answer counts as solicited for lbd too and both tables learn the same MAC by the same
/// rules.
pub fn from_host(w: &mut Worker, t: &Table, f: &mut impl Frame, now_ms: u64) -> Verdict {
    let port = f.in_port();
    if !t.network.has_exception(port) {
        return Verdict::Drop(DropReason::UnknownPort);
    }
    let d = f.data();
    let Ok(eth) = ethernet::Frame::new_checked(d) else {
        return Verdict::Drop(DropReason::L2Truncated);
    };
    let asked = match eth.ethertype() {
        EtherType::ARP => arp::Packet::new_checked(&d[L3..])
            .ok()
            .filter(|a| a.operation() == arp::OP_REQUEST && a.sender_ip() != a.target_ip())
            .map(|a| (widen(a.target_ip()), false)),
        EtherType::IPV6 => ipv6::Packet::new_checked(&d[L3..])
            .ok()
            .filter(|ip| ip.next_header() == ip_proto::ICMPV6 && ip.src() != UNSPECIFIED)
            .and_then(|_| icmpv6::Packet::new_checked(&d[L3 + ipv6::HEADER_LEN..]).ok())
            .filter(|m| m.msg_type() == icmpv6::TYPE_NEIGHBOR_SOLICIT)
            .map(|m| (m.nd_target(), true)),
        _ => None,
    };
    if let Some((addr, v6)) = asked
        && t.network.on_link(port, &addr, v6)
    {
        w.neigh.resolve(&addr, v6, now_ms);
    }
    Verdict::Tx(port)
}

/// Handles an ARP packet: answer requests for our addresses, and learn the sender only as the
/// neighbour table's rules allow (see `neigh`).
pub(super) fn arp(w: &mut Worker, t: &Table, f: &mut impl Frame, now_ms: u64) -> Verdict {
    let in_port = f.in_port();
    let Ok(a) = arp::Packet::new_checked(&f.data()[L3..]) else {
        return Verdict::Drop(DropReason::ArpMalformed);
    };
    let (op, smac, sip, tip, tmac) = (a.operation(), a.sender_mac(), a.sender_ip(), a.target_ip(), a.target_mac());
    if op != arp::OP_REQUEST && op != arp::OP_REPLY {
        return Verdict::Drop(DropReason::ArpMalformed);
    }
    let eth_src = MacAddr(crate::wire::get_array(f.data(), 6));
    let (sender, target) = (widen(sip), widen(tip));
    let for_us = ours(t, &target, false);
    // A sender that claims our own address, hides behind another Ethernet source, or is not on
    // this port's link is never learned from.
    let plausible = sip != [0; 4]
        && smac == eth_src
        && !smac.is_multicast()
        && smac != MacAddr::ZERO
        && t.network.on_link(in_port, &sender, false)
        && !ours(t, &sender, false);
    if plausible {
        let kind = match op {
            _ if sip == tip => Claim::Unsolicited,
            arp::OP_REPLY if for_us && tmac == port_mac(t, in_port) => Claim::Solicited,
            arp::OP_REQUEST if for_us => Claim::Request,
            _ => Claim::Unsolicited,
        };
        w.neigh.claim(&sender, false, smac, in_port, kind, now_ms);
    } else if sip != [0; 4] {
        w.neigh.refuse();
    }
    if op == arp::OP_REPLY
        && tmac == port_mac(t, in_port)
        && to_host(t, in_port, &target, false)
        && w.neigh.holds(&sender, false, smac, in_port)
    {
        // The answer to the host's own request (see `from_host`), which lbd believed: the
        // kernel learns the same. One lbd refused never reaches the kernel, whose own rules
        // would let a reply move an existing entry.
        return Verdict::Host;
    }
    if op != arp::OP_REQUEST || !for_us || sip == tip {
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
    let (src, dst, hop_limit, end) = (ip.src(), ip.dst(), ip.hop_limit(), L3 + ip.total_len());
    let Ok(m) = icmpv6::Packet::new_checked(&d[icmp_at..end]) else {
        return Verdict::Drop(DropReason::NdInvalid);
    };
    if hop_limit != 255 || m.code() != 0 {
        return Verdict::Drop(DropReason::NdInvalid);
    }
    if !m.verify_checksum(checksum::pseudo_v6(src, dst, ip_proto::ICMPV6, u32::try_from(end - icmp_at).unwrap_or(0))) {
        return Verdict::Drop(DropReason::IcmpBadChecksum);
    }
    let target = m.nd_target();
    let eth_src = MacAddr(crate::wire::get_array(d, 6));
    if m.msg_type() == icmpv6::TYPE_NEIGHBOR_ADVERT {
        return match m.nd_lladdr_option(icmpv6::OPT_TARGET_LLADDR) {
            Ok(Some(mac)) => {
                // RFC 4861 7.1.2: a solicited advertisement is never multicast.
                let solicited = m.nd_flags() & icmpv6::NA_FLAG_SOLICITED != 0 && ours(t, &dst, true);
                let kind = if solicited { Claim::Solicited } else { Claim::Unsolicited };
                if t.network.on_link(in_port, &target, true) && !ours(t, &target, true) && !mac.is_multicast() {
                    w.neigh.claim(&target, true, mac, in_port, kind, now_ms);
                }
                // As for ARP: the host gets only an answer lbd believed.
                if to_host(t, in_port, &dst, true) && w.neigh.holds(&target, true, mac, in_port) {
                    Verdict::Host
                } else {
                    Verdict::Consumed
                }
            }
            Ok(None) => Verdict::Consumed,
            Err(_) => Verdict::Drop(DropReason::NdInvalid),
        };
    }
    let source_mac = match m.nd_lladdr_option(icmpv6::OPT_SOURCE_LLADDR) {
        Ok(mac) => mac,
        Err(_) => return Verdict::Drop(DropReason::NdInvalid),
    };
    if !ours(t, &target, true) {
        return Verdict::Consumed;
    }
    if let Some(mac) = source_mac.filter(|m| src != UNSPECIFIED && *m == eth_src && !m.is_multicast())
        && t.network.on_link(in_port, &src, true)
        && !ours(t, &src, true)
    {
        w.neigh.claim(&src, true, mac, in_port, Claim::Request, now_ms);
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

/// A neighbour probe a worker asks its runtime to send beside the burst it processed: the frame
/// that triggered it is forwarded, so the probe needs a buffer of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub port: u16,
    pub target: [u8; 16],
    pub v6: bool,
    /// Unicast to the MAC in use, or `None` for a broadcast (multicast) request.
    pub unicast: Option<MacAddr>,
}

/// Writes `p` as an ARP request or neighbour solicitation into `f` (any buffer with room for
/// 86 bytes); false when the port has no address of the family to ask from, or no room.
pub fn write_probe(t: &Table, p: &Probe, f: &mut impl Frame) -> bool {
    let Some(src) = t.network.address_on(p.port, p.v6) else { return false };
    write_request(f, port_mac(t, p.port), &src, &p.target, p.v6, p.unicast)
}

/// Turns `f` into a request for `hop`, from `src` and `mac`: broadcast (solicited-node
/// multicast) unless `unicast` names the MAC to ask.
fn write_request(
    f: &mut impl Frame,
    mac: MacAddr,
    src: &[u8; 16],
    hop: &[u8; 16],
    v6: bool,
    unicast: Option<MacAddr>,
) -> bool {
    let len = if v6 { L3 + ipv6::HEADER_LEN + icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN } else { L3 + arp::LEN };
    if !f.set_len(len) {
        return false;
    }
    let d = f.data_mut();
    if v6 {
        let snm = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, hop[13], hop[14], hop[15]];
        // RFC 4861 7.2.2: a unicast probe goes to the target address itself.
        let (eth_dst, ip_dst) = match unicast {
            Some(m) => (m, *hop),
            None => (MacAddr::ipv6_multicast(snm), snm),
        };
        ethernet::emit(d, eth_dst, mac, EtherType::IPV6);
        emit_nd(&mut d[L3..], icmpv6::TYPE_NEIGHBOR_SOLICIT, 0, *src, ip_dst, *hop, (icmpv6::OPT_SOURCE_LLADDR, mac));
    } else {
        ethernet::emit(d, unicast.unwrap_or(MacAddr::BROADCAST), mac, EtherType::ARP);
        arp::emit(&mut d[L3..], arp::OP_REQUEST, (mac, narrow(src)), (unicast.unwrap_or(MacAddr::ZERO), narrow(hop)));
    }
    true
}

/// Addresses the frame to `hop` on `port` and transmits it. A stale entry is used while it is
/// probed (the probe is queued beside the frame). When the hop's MAC is not known, the frame
/// becomes a broadcast request for it (the packet it carried is dropped and counted; requests
/// for one address are rate-limited by its INCOMPLETE entry). `confirm` says the connection saw
/// forward progress from this hop: the entry is confirmed reachable.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn send_via(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    port: u16,
    hop: &[u8; 16],
    v6: bool,
    confirm: bool,
    now_ms: u64,
) -> Verdict {
    // Nearly every packet: a remembered hop whose entry needs nothing done. The rest, out of
    // line, so that the packet path does not carry the state machine's registers.
    if let Some(to) = w.neigh.ready_unchanged(&w.neigh_memo, hop, v6, confirm, now_ms) {
        set_macs(f.data_mut(), to, port_mac(t, port));
        return Verdict::Tx(port);
    }
    resolve_and_send(w, t, f, port, hop, v6, confirm, now_ms)
}

/// `send_via` when the next hop's entry may need something done: resolution, a state change,
/// a confirmation, a probe or a request.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn resolve_and_send(
    w: &mut Worker,
    t: &Table,
    f: &mut impl Frame,
    port: u16,
    hop: &[u8; 16],
    v6: bool,
    confirm: bool,
    now_ms: u64,
) -> Verdict {
    let mac = port_mac(t, port);
    let request = match w.neigh.resolve_memo(&mut w.neigh_memo, hop, v6, now_ms) {
        Resolution::Ready { mac: to, slot, .. } => {
            if confirm {
                w.neigh.confirm(slot, to, now_ms);
            }
            set_macs(f.data_mut(), to, mac);
            return Verdict::Tx(port);
        }
        Resolution::Probe { mac: to, unicast, .. } => {
            w.queue_probe(Probe { port, target: *hop, v6, unicast: unicast.then_some(to) });
            set_macs(f.data_mut(), to, mac);
            return Verdict::Tx(port);
        }
        Resolution::Unresolved { request } => request,
    };
    if !request {
        return Verdict::Drop(DropReason::NeighbourUnresolved);
    }
    let Some(src) = t.network.address_on(port, v6) else {
        return Verdict::Drop(DropReason::NoSourceAddress);
    };
    if !write_request(f, mac, &src, hop, v6, None) {
        return Verdict::Drop(DropReason::NoRoom);
    }
    w.counters.neighbour_requests += 1;
    // The frame leaves as a request, but the packet it carried is lost: count that.
    w.counters.drops[DropReason::NeighbourUnresolved as usize] += 1;
    Verdict::Tx(port)
}

//! Software steering for ports without RSS (memif, af_packet, pcap, ring): every packet of a
//! connection, both directions and every fragment, must reach the worker that owns its
//! connection table entry, whatever queue it arrived on.
//!
//! The rule needs no lookup: a connection belongs to the worker chosen by its client address.
//! A packet to a VIP comes from the client (its source); a full-NAT reply is addressed to a
//! local address and port, and full-NAT ports are partitioned by worker (`port % workers`),
//! so the destination port names the owner; anything else (a NAT reply, an ICMP error, ARP)
//! goes by its destination address, which for a NAT reply is the client. Hashing the address
//! alone keeps fragments, which carry no ports, with their flow.

use lb_core::flow::{Peek, hash_bytes, peek};
use lb_core::service::Table;

/// The worker (0..workers) that owns the packet in `frame`.
pub fn owner(table: &Table, frame: &[u8], workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let Some(Peek { src, dst, v6, ports, .. }) = peek(frame) else { return 0 };
    // Ports are known only for TCP and UDP, the protocols full-NAT translates.
    if let Some((_, dst_port)) = ports
        && table.network.is_local_address(&dst, v6)
    {
        return usize::from(dst_port) % workers;
    }
    let client = if table.is_vip(dst, v6) { &src } else { &dst };
    client_owner(client, v6, workers)
}

/// The worker that owns the connections of client `client` under software steering.
pub fn client_owner(client: &[u8; 16], v6: bool, workers: usize) -> usize {
    if workers <= 1 {
        return 0;
    }
    let alen = if v6 { 16 } else { 4 };
    usize::try_from(hash_bytes(&client[..alen], 0x7374_6565) % workers as u64).unwrap_or(0)
}

/// The worker a connection with original direction `orig` belongs to, whichever steering the
/// ports use: where a peer's synced connection must be installed for its packets to find it.
/// Under RSS a full-NAT local port was chosen so that replies reach the same queue.
pub fn flow_owner(steering: &lb_core::Steering, orig: &lb_core::FlowKey, workers: usize) -> usize {
    match steering {
        lb_core::Steering::Rss { toeplitz, reta, .. } => {
            let h = toeplitz.hash_flow(orig, true) as usize;
            reta.get(h & (reta.len().max(1) - 1)).map_or(0, |q| usize::from(*q))
        }
        _ => client_owner(&orig.src, orig.v6, workers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_core::net::{Network, NetworkModel};
    use lb_core::pipeline::{Frame, VecFrame, Verdict};
    use lb_core::service::{Limits, ServicesModel};
    use lb_core::wire::{EtherType, MacAddr};
    use lb_core::wire::{checksum, ethernet, ipv4, tcp};
    use lb_core::{NeighTable, Steering, Worker, WorkerConfig, process_burst};
    use std::sync::Arc;

    const LB0: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const LB1: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn table() -> Table {
        let net: NetworkModel = toml::from_str(
            "local_addresses = [\"10.1.0.254\"]\n[[interface]]\nname = \"c\"\naddresses = [\"10.0.0.1/24\"]\n[[interface]]\nname = \"b\"\naddresses = [\"10.1.0.1/24\"]\n",
        )
        .unwrap();
        let services: ServicesModel = toml::from_str(
            "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nbackend = [{ address = \"10.1.0.11\", port = 8080 }]\n\
             [[service]]\nvip = \"10.0.0.101\"\nport = 80\nbackend = [{ address = \"10.1.0.12\", port = 8080, mode = \"fnat\" }]\n",
        )
        .unwrap();
        Table::build(&services, Network::build(&net, &[LB0, LB1]).unwrap(), Limits::default(), None, 0).unwrap()
    }

    fn packet(dst_mac: MacAddr, src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut b = vec![0u8; 54];
        ethernet::emit(&mut b, dst_mac, MacAddr([2, 0, 0, 0, 9, 9]), EtherType::IPV4);
        ipv4::emit(
            &mut b[14..],
            &ipv4::Repr { src, dst, protocol: 6, payload_len: 20, ttl: 64, dscp_ecn: 0, ident: 1, dont_frag: true },
        );
        let mut t = tcp::Packet::new_unchecked(&mut b[34..]);
        t.set_src_port(sport);
        t.set_dst_port(dport);
        t.set_header_len(20);
        t.set_flags(flags);
        t.fill_checksum(checksum::pseudo_v4(src, dst, 6, 20));
        b
    }

    /// Workers without RSS each receive a random share of one flow's packets, in both
    /// directions, for nat and fnat; steering must hand each packet to the flow's owner, and the
    /// owner must forward every one of them (no miss of the connection table).
    #[test]
    fn scattered_packets_of_one_flow_all_reach_the_owner() {
        let t = table();
        let workers = 4usize;
        let workers16 = 4u16;
        let neigh = Arc::new(NeighTable::new(lb_core::neigh::NeighParams { capacity: 64, ..Default::default() }));
        neigh.insert_static(&lb_core::flow::widen([10, 1, 0, 11]), false, MacAddr([2, 0, 0, 0, 0xb, 11]), 1);
        neigh.insert_static(&lb_core::flow::widen([10, 1, 0, 12]), false, MacAddr([2, 0, 0, 0, 0xb, 12]), 1);
        neigh.insert_static(&lb_core::flow::widen([10, 0, 0, 2]), false, MacAddr([2, 0, 0, 0, 0xc, 2]), 0);
        let cfg = WorkerConfig { conn_capacity: 1024, ..Default::default() };
        let mut ws: Vec<Worker> = (0..workers)
            .map(|i| {
                Worker::new(
                    &cfg,
                    Arc::clone(&neigh),
                    Steering::Partition { workers: workers16, index: u16::try_from(i).unwrap() },
                )
            })
            .collect();
        let mut seed = 0x1234_5678u64;
        for client_port in 40000..40020u16 {
            for (vip, mode_fnat) in [([10, 0, 0, 100], false), ([10, 0, 0, 101], true)] {
                let syn = packet(LB0, [10, 0, 0, 2], vip, client_port, 80, tcp::flags::SYN);
                let owner_syn = owner(&t, &syn, workers);
                let mut f = [VecFrame::new(&syn, 0)];
                let mut v = [Verdict::Consumed];
                process_burst(&mut ws[owner_syn], &t, &mut f, &mut v, 1);
                assert_eq!(v[0], Verdict::Tx(1));
                // The reply the backend sends back to what the LB forwarded.
                let fwd = f[0].data();
                let (bsrc, bdst) = ([fwd[30], fwd[31], fwd[32], fwd[33]], [fwd[26], fwd[27], fwd[28], fwd[29]]);
                let (bsport, bdport) = (u16::from_be_bytes([fwd[36], fwd[37]]), u16::from_be_bytes([fwd[34], fwd[35]]));
                let replies = (0..5).map(|_| packet(LB1, bsrc, bdst, bsport, bdport, tcp::flags::ACK));
                let requests = (0..5).map(|_| packet(LB0, [10, 0, 0, 2], vip, client_port, 80, tcp::flags::ACK));
                for (i, p) in replies.chain(requests).enumerate() {
                    // The packet arrives on a random queue; steering names its owner.
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let arrived_on = seed % u64::from(workers16);
                    let to = owner(&t, &p, workers);
                    assert_eq!(
                        to,
                        owner_syn,
                        "packet {i} of {} flow {client_port} (arrived on {arrived_on})",
                        if mode_fnat { "fnat" } else { "nat" }
                    );
                    let port = if i < 5 { 1 } else { 0 };
                    let mut f = [VecFrame::new(&p, port)];
                    process_burst(&mut ws[to], &t, &mut f, &mut v, 2);
                    assert_eq!(v[0], Verdict::Tx(1 - port), "packet {i} forwarded by its owner");
                }
            }
        }
    }
}

//! Shared setup for the benchmarks: a two-armed LB with one service per forwarding mode and
//! prebuilt client packets for many flows, so the timed loops only copy and process.
#![forbid(unsafe_code)]

use lb_core::flow::widen;
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::VecFrame;
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::wire::{EtherType, MacAddr, checksum, ethernet, ipv4, tcp};
use lb_core::{NeighTable, Steering, Worker, WorkerConfig};
use std::sync::Arc;

pub const LB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const LB_MAC1: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
pub const BACKENDS: u8 = 16;

/// The forwarding modes benchmarked, with the last byte of their VIP.
pub const MODES: [(&str, u8); 5] = [("nat", 100), ("fnat", 101), ("dr", 102), ("tun", 103), ("gue", 104)];

/// Network: client side 10.0.0.0/8 on port 0 (clients are everywhere in it), backends on
/// 172.16.0.0/24 on port 1, four full-NAT local addresses.
pub fn table() -> Table {
    let net: NetworkModel = toml::from_str(
        r#"
        local_addresses = ["172.16.0.250", "172.16.0.251", "172.16.0.252", "172.16.0.253"]
        [[interface]]
        name = "client"
        addresses = ["10.0.0.1/8"]
        [[interface]]
        name = "backend"
        addresses = ["172.16.0.1/24"]
        "#,
    )
    .expect("bench network");
    let network = Network::build(&net, &[LB_MAC, LB_MAC1]).expect("bench network");
    let mut services = String::new();
    for (mode, vip) in MODES {
        services.push_str(&format!("[[service]]\nvip = \"192.168.0.{vip}\"\nport = 80\nscheduler = \"mh\"\n"));
        for b in 0..BACKENDS {
            services.push_str(&format!("[[service.backend]]\naddress = \"172.16.0.{}\"\nmode = \"{mode}\"\n", 10 + b));
        }
    }
    let model: ServicesModel = toml::from_str(&services).expect("bench services");
    Table::build(&model, network, Limits::default(), None, 0).expect("bench table")
}

/// A worker with room for `flows` connections (plus headroom) and every backend's MAC known.
/// Only the client-to-backend direction is benchmarked, so no client MAC is needed.
pub fn worker(flows: usize) -> Worker {
    let neigh = Arc::new(NeighTable::new(lb_core::neigh::NeighParams { capacity: 256, ..Default::default() }));
    for b in 0..BACKENDS {
        neigh.insert_static(&widen([172, 16, 0, 10 + b]), false, MacAddr([2, 0, 0, 0, 0xb, b]), 1);
    }
    let cfg =
        WorkerConfig { conn_capacity: flows + flows / 4 + 1024, embryonic_limit: flows + 1024, ..Default::default() };
    Worker::new(&cfg, neigh, Steering::Any)
}

/// The client address of flow `i`: spread over 10.0.0.0/8 so a million flows are distinct.
pub fn client_of(i: u32) -> [u8; 4] {
    let [_, a, b, c] = (i + 2).to_be_bytes();
    [10, a, b, c]
}

/// An Ethernet/IPv4/TCP frame from flow `i`'s client to the VIP, 64 bytes on the wire.
pub fn client_packet(i: u32, vip: u8, flags: u8) -> Vec<u8> {
    let mut b = vec![0u8; 14 + 20 + 20 + 6];
    ethernet::emit(&mut b, LB_MAC, MacAddr([2, 0, 0, 0, 0xc, 1]), EtherType::IPV4);
    let src = client_of(i);
    let dst = [192, 168, 0, vip];
    ipv4::emit(
        &mut b[14..],
        &ipv4::Repr { src, dst, protocol: 6, payload_len: 26, ttl: 64, dscp_ecn: 0, ident: 1, dont_frag: true },
    );
    let mut t = tcp::Packet::new_unchecked(&mut b[34..]);
    t.set_src_port(1024 + u16::try_from(i % 60000).unwrap_or(0));
    t.set_dst_port(80);
    t.set_seq(i);
    t.set_header_len(20);
    t.set_flags(flags);
    t.set_window(65535);
    t.fill_checksum(checksum::pseudo_v4(src, dst, 6, 26));
    b
}

/// Fills `frames` from the templates `packets[order[at..]]`, wrapping around.
pub fn refill(frames: &mut [VecFrame], packets: &[Vec<u8>], order: &[u32], at: &mut usize) {
    for f in frames.iter_mut() {
        f.reset(&packets[order[*at] as usize]);
        *at = if *at + 1 == order.len() { 0 } else { *at + 1 };
    }
}

/// A fixed-seed permutation of 0..n (xorshift), so every run visits flows in the same order.
pub fn shuffled(n: u32, seed: u64) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n).collect();
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, usize::try_from(s % (i as u64 + 1)).unwrap_or(0));
    }
    v
}

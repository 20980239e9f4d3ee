//! Shared setup for the benchmarks: a two-armed LB with one service per forwarding mode and
//! prebuilt client packets for many flows, so the timed loops only copy and process.
#![forbid(unsafe_code)]

use lb_core::flow::widen;
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::VecFrame;
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::wire::{EtherType, MacAddr, checksum, ethernet, ipv4, ipv6, tcp};
use lb_core::{NeighTable, Steering, Worker, WorkerConfig};
use std::sync::Arc;

pub const LB_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
pub const LB_MAC1: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
pub const BACKENDS: u8 = 16;

/// The forwarding modes benchmarked, with the last byte of their VIP.
pub const MODES: [(&str, u8); 5] = [("nat", 100), ("fnat", 101), ("dr", 102), ("tun", 103), ("gue", 104)];

/// Last byte of the VIP of the nat service with the SYN proxy on.
pub const SYNPROXY_VIP: u8 = 105;

/// Network: client side 10.0.0.0/8 on port 0 (clients are everywhere in it), backends on
/// 172.16.0.0/24 on port 1, four full-NAT local addresses.
pub fn table() -> Table {
    let net = r#"
        local_addresses = ["172.16.0.250", "172.16.0.251", "172.16.0.252", "172.16.0.253"]
        [[interface]]
        name = "client"
        addresses = ["10.0.0.1/8"]
        [[interface]]
        name = "backend"
        addresses = ["172.16.0.1/24"]
        "#;
    let mut services = String::new();
    for (mode, vip) in MODES {
        services.push_str(&format!("[[service]]\nvip = \"192.168.0.{vip}\"\nport = 80\nscheduler = \"mh\"\n"));
        for b in 0..BACKENDS {
            services.push_str(&format!("[[service.backend]]\naddress = \"172.16.0.{}\"\nmode = \"{mode}\"\n", 10 + b));
        }
    }
    // The nat service again, behind the SYN proxy.
    services.push_str(&format!(
        "[[service]]\nvip = \"192.168.0.{SYNPROXY_VIP}\"\nport = 80\nscheduler = \"mh\"\nsynproxy = true\n"
    ));
    for b in 0..BACKENDS {
        services.push_str(&format!("[[service.backend]]\naddress = \"172.16.0.{}\"\nmode = \"nat\"\n", 10 + b));
    }
    table_of(net, &services)
}

/// The table of the network and services configured by `net` and `services` (TOML), with the
/// LB's two ports at `LB_MAC` and `LB_MAC1`.
fn table_of(net: &str, services: &str) -> Table {
    let net: NetworkModel = toml::from_str(net).expect("bench network");
    let network = Network::build(&net, &[LB_MAC, LB_MAC1]).expect("bench network");
    let model: ServicesModel = toml::from_str(services).expect("bench services");
    Table::build(&model, network, Limits::default(), None, 0).expect("bench table")
}

/// A worker with room for `flows` connections (plus headroom) and every backend's MAC known.
/// Only the client-to-backend direction is benchmarked, so no client MAC is needed.
pub fn worker(flows: usize) -> Worker {
    worker_with(flows, true)
}

/// `worker`, with TCP/UDP checksum verification on or off.
pub fn worker_with(flows: usize, verify_l4_checksums: bool) -> Worker {
    worker_of(flows, verify_l4_checksums, |b| (widen([172, 16, 0, 10 + b]), false))
}

/// A worker as `worker_with`, with backend `b` at address `backend(b)` (bytes, IPv6).
fn worker_of(flows: usize, verify_l4_checksums: bool, backend: impl Fn(u8) -> ([u8; 16], bool)) -> Worker {
    let neigh = Arc::new(NeighTable::new(lb_core::neigh::NeighParams { capacity: 256, ..Default::default() }));
    for b in 0..BACKENDS {
        let (addr, v6) = backend(b);
        neigh.insert_static(&addr, v6, MacAddr([2, 0, 0, 0, 0xb, b]), 1);
    }
    let cfg = WorkerConfig {
        conn_capacity: flows + flows / 4 + 1024,
        embryonic_limit: flows + 1024,
        verify_l4_checksums,
        ..Default::default()
    };
    Worker::new(&cfg, neigh, Steering::Any)
}

/// The client address of flow `i`: spread over 10.0.0.0/8 so a million flows are distinct.
pub fn client_of(i: u32) -> [u8; 4] {
    let [_, a, b, c] = (i + 2).to_be_bytes();
    [10, a, b, c]
}

/// An Ethernet/IPv4/TCP frame from flow `i`'s client to the VIP, 64 bytes on the wire.
pub fn client_packet(i: u32, vip: u8, flags: u8) -> Vec<u8> {
    client_packet_sized(i, vip, flags, 60)
}

/// `client_packet` of `size` bytes without the FCS (at least 60): TCP payload fills the rest.
pub fn client_packet_sized(i: u32, vip: u8, flags: u8, size: usize) -> Vec<u8> {
    let port = 1024 + u16::try_from(i % 60000).unwrap_or(0);
    let s = Segment { src: client_of(i), dst: [192, 168, 0, vip], ports: (port, 80), seq: i, ack: 0, flags };
    segment(LB_MAC, &s, size)
}

/// A TCP segment's addresses, ports, numbers and flags.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ports: (u16, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
}

/// An Ethernet/IPv4/TCP frame of `size` bytes (at least 60) to `eth_dst` carrying `s`.
pub fn segment(eth_dst: MacAddr, s: &Segment, size: usize) -> Vec<u8> {
    let size = size.max(60);
    let mut b = vec![0u8; size];
    ethernet::emit(&mut b, eth_dst, MacAddr([2, 0, 0, 0, 0xc, 1]), EtherType::IPV4);
    let payload_len = u16::try_from(size - 34).unwrap_or(0);
    ipv4::emit(
        &mut b[14..],
        &ipv4::Repr {
            src: s.src,
            dst: s.dst,
            protocol: 6,
            payload_len,
            ttl: 64,
            dscp_ecn: 0,
            ident: 1,
            dont_frag: true,
        },
    );
    let mut t = tcp::Packet::new_unchecked(&mut b[34..]);
    t.set_src_port(s.ports.0);
    t.set_dst_port(s.ports.1);
    t.set_seq(s.seq);
    t.set_ack_number(s.ack);
    t.set_header_len(20);
    t.set_flags(s.flags);
    t.set_window(65535);
    t.fill_checksum(checksum::pseudo_v4(s.src, s.dst, 6, payload_len));
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

/// Frames per burst, as DPDK's usual `rx_burst` size.
pub const BURST: usize = 32;

/// A burst's worth of frames to refill.
pub fn frames() -> Vec<VecFrame> {
    (0..BURST).map(|_| VecFrame::new(&[0u8; 64], 0)).collect()
}

/// Times `work` over `iters` bursts that `fill` prepared untimed.
pub fn timed(
    iters: u64,
    mut fill: impl FnMut(&mut [VecFrame]),
    mut work: impl FnMut(&mut [VecFrame]),
) -> std::time::Duration {
    let mut fs = frames();
    let mut total = std::time::Duration::ZERO;
    for _ in 0..iters {
        fill(&mut fs);
        let t = std::time::Instant::now();
        work(&mut fs);
        total += t.elapsed();
    }
    total
}

/// Sends one SYN per flow through the worker so the flows exist before timing.
pub fn populate(w: &mut Worker, t: &Table, flows: u32, vip: u8) {
    populate_with(w, t, flows, |i| client_packet(i, vip, tcp::flags::SYN));
}

/// `populate` with flow `i`'s SYN from `syn(i)`.
pub fn populate_with(w: &mut Worker, t: &Table, flows: u32, syn: impl Fn(u32) -> Vec<u8>) {
    let mut fs = frames();
    let mut vs = [lb_core::pipeline::Verdict::Consumed; BURST];
    for start in (0..flows).step_by(BURST) {
        for (k, f) in fs.iter_mut().enumerate() {
            f.reset(&syn((start + u32::try_from(k).unwrap_or(0)) % flows));
        }
        forward_burst(w, t, &mut fs, &mut vs, 1);
    }
}

/// The IPv6 workload's VIP (fnat6): fd02::101, with backends fd01::10 to fd01::1f.
pub const VIP6: [u8; 16] = [0xfd, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1];

/// `table` with IPv6 on both sides and a full-NAT IPv6 service at `VIP6` (a table of its own,
/// so that the IPv4 modes' figures stay comparable with earlier runs).
pub fn table_v6() -> Table {
    let net = r#"
        local_addresses = ["fd01::fa", "fd01::fb", "fd01::fc", "fd01::fd"]
        [[interface]]
        name = "client"
        addresses = ["fd00::1/64"]
        [[interface]]
        name = "backend"
        addresses = ["fd01::1/64"]
        "#;
    let mut services = "[[service]]\nvip = \"fd02::101\"\nport = 80\nscheduler = \"mh\"\n".to_string();
    for b in 0..BACKENDS {
        services.push_str(&format!("[[service.backend]]\naddress = \"fd01::{:x}\"\nmode = \"fnat\"\n", 0x10 + b));
    }
    table_of(net, &services)
}

/// The address of IPv6 backend `b` (fd01::10 + b).
fn backend6(b: u8) -> [u8; 16] {
    [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10 + b]
}

/// An Ethernet/IPv6/TCP frame from flow `i`'s client (fd00::i+2) to `VIP6`, 80 bytes.
pub fn client_packet6(i: u32, flags: u8) -> Vec<u8> {
    let mut src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    src[12..].copy_from_slice(&(i + 2).to_be_bytes());
    let port = 1024 + u16::try_from(i % 60000).unwrap_or(0);
    let mut b = vec![0u8; 14 + 40 + 26];
    ethernet::emit(&mut b, LB_MAC, MacAddr([2, 0, 0, 0, 0xc, 1]), EtherType::IPV6);
    let repr =
        ipv6::Repr { src, dst: VIP6, next_header: 6, payload_len: 26, hop_limit: 64, traffic_class: 0, flow_label: 0 };
    ipv6::emit(&mut b[14..], &repr);
    let mut t = tcp::Packet::new_unchecked(&mut b[54..]);
    t.set_src_port(port);
    t.set_dst_port(80);
    t.set_seq(i);
    t.set_header_len(20);
    t.set_flags(flags);
    t.set_window(65535);
    t.fill_checksum(checksum::pseudo_v6(src, VIP6, 6, 26));
    b
}

/// The reference: check the Ethernet, IPv4 and TCP headers and swap the MAC addresses.
pub fn parse_and_swap(fs: &mut [VecFrame]) {
    use lb_core::pipeline::Frame;
    use lb_core::wire::{EthernetFrame, Ipv4Packet, TcpPacket};
    for f in fs.iter_mut() {
        let d = f.data_mut();
        let ok = EthernetFrame::new_checked(&d[..]).is_ok()
            && Ipv4Packet::new_checked(&d[14..])
                .is_ok_and(|ip| ip.verify_checksum() && TcpPacket::new_checked(ip.payload()).is_ok());
        if ok {
            let mut e = EthernetFrame::new_unchecked(&mut d[..]);
            let (s, t) = (e.src(), e.dst());
            e.set_src(t);
            e.set_dst(s);
        }
        std::hint::black_box(ok);
    }
}

/// A worker whose table holds `flows` established connections of one mode's service, and the
/// ACKs those flows send next, for the examples that replay them.
pub struct Established {
    pub table: Table,
    pub worker: Worker,
    pub acks: Vec<Vec<u8>>,
    /// The order the flows send in: shuffled, as in the pipeline bench, so that entries are
    /// reached at random, never in the order they were allocated.
    pub order: Vec<u32>,
}

/// Opens `flows` connections of `mode` (a name in `MODES`) with one SYN each, in their own
/// order; `None` for an unknown mode.
pub fn established(mode: &str, flows: u32) -> Option<Established> {
    if mode == "fnat6" {
        return Some(established_v6(flows));
    }
    let &(_, vip) = MODES.iter().find(|(m, _)| *m == mode)?;
    let table = table();
    let mut worker = worker(flows as usize);
    populate(&mut worker, &table, flows, vip);
    let acks = (0..flows).map(|i| client_packet(i, vip, tcp::flags::ACK)).collect();
    Some(Established { table, worker, acks, order: shuffled(flows, 7) })
}

/// `established` for the IPv6 full-NAT service of `table_v6`.
fn established_v6(flows: u32) -> Established {
    let table = table_v6();
    let mut worker = worker_of(flows as usize, true, |b| (backend6(b), true));
    populate_with(&mut worker, &table, flows, |i| client_packet6(i, tcp::flags::SYN));
    let acks = (0..flows).map(|i| client_packet6(i, tcp::flags::ACK)).collect();
    Established { table, worker, acks, order: shuffled(flows, 7) }
}

/// `lb_core::process_burst_with` and lb-dpdk's prefetch, as lbd's workers run it, for the
/// examples, kept out of line so that `valgrind
/// --toggle-collect='lb_bench::forward_burst'` can count its instructions (inlined into an
/// example's `main`, it would have no name of its own).
#[inline(never)]
pub fn forward_burst(
    worker: &mut Worker,
    table: &Table,
    frames: &mut [VecFrame],
    verdicts: &mut [lb_core::pipeline::Verdict],
    now_ms: u64,
) {
    lb_core::process_burst_with::<lb_dpdk::prefetch::CpuPrefetch, _>(worker, table, frames, verdicts, now_ms);
}

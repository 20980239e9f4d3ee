//! Packet construction for the fixture tests, with etherparse as the independent oracle: every
//! checksum in an input or an expected output is computed by etherparse, never by lb-core.
#![allow(dead_code, clippy::cast_possible_truncation)]

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Ethernet2Header, Icmpv4Header, Icmpv4Type, Icmpv6Header,
    Icmpv6Type, IpFragOffset, IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header, TcpHeader, UdpHeader, icmpv4,
};
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::{VecFrame, Verdict};
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::{Steering, Worker, WorkerConfig, process_burst};
use std::sync::Arc;

pub const LB0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const LB1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const ROUTER: [u8; 6] = [0x02, 0, 0, 0, 0x0c, 0x09];

/// MAC of a client host 10.0.0.x / fd00::x.
pub const fn client_mac(x: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x0c, x]
}
/// MAC of a backend 10.1.0.x / fd01::x.
pub const fn backend_mac(x: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x0b, x]
}
pub const fn c4(x: u8) -> [u8; 4] {
    [10, 0, 0, x]
}
pub const fn b4(x: u8) -> [u8; 4] {
    [10, 1, 0, x]
}
pub const fn c6(x: u8) -> [u8; 16] {
    [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, x]
}
pub const fn b6(x: u8) -> [u8; 16] {
    [0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, x]
}

pub const NETWORK: &str = include_str!("../data/network.toml");

pub const SERVICES: &str = include_str!("../data/services.toml");

/// A worker and table on the two-armed fixture network, with backends' MACs known (as if
/// resolved earlier) and clients learned from their own ARP/ND.
pub struct Lab {
    pub table: Table,
    pub worker: Worker,
    pub now_ms: u64,
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        Lab::with_config(&WorkerConfig { conn_capacity: 4096, embryonic_limit: 4096, ..Default::default() })
    }

    pub fn with_config(cfg: &WorkerConfig) -> Lab {
        let net_model: NetworkModel = toml::from_str(NETWORK).unwrap();
        let network = Network::build(&net_model, &[lb_core::wire::MacAddr(LB0), lb_core::wire::MacAddr(LB1)]).unwrap();
        let services: ServicesModel = toml::from_str(SERVICES).unwrap();
        let table = Table::build(&services, network, Limits::default(), None, 0).unwrap();
        let neigh =
            Arc::new(lb_core::NeighTable::new(lb_core::neigh::NeighParams { capacity: 1024, ..Default::default() }));
        for x in 11..=16 {
            neigh.insert_static(&lb_core::flow::widen(b4(x)), false, lb_core::wire::MacAddr(backend_mac(x)), 1);
        }
        for x in 0x11..=0x16 {
            neigh.insert_static(&b6(x), true, lb_core::wire::MacAddr(backend_mac(x)), 1);
        }
        neigh.insert_static(&lb_core::flow::widen(c4(2)), false, lb_core::wire::MacAddr(client_mac(2)), 0);
        neigh.insert_static(&c6(2), true, lb_core::wire::MacAddr(client_mac(2)), 0);
        let worker = Worker::new(cfg, neigh, Steering::Any);
        Lab { table, worker, now_ms: 1_000_000 }
    }

    /// Runs one frame through `process_burst`; returns the verdict and the frame's bytes.
    pub fn run(&mut self, port: u16, input: &[u8]) -> (Verdict, Vec<u8>) {
        let mut frames = [VecFrame::new(input, port)];
        let mut verdicts = [Verdict::Consumed];
        process_burst(&mut self.worker, &self.table, &mut frames, &mut verdicts, self.now_ms);
        use lb_core::Frame;
        (verdicts[0], frames[0].data().to_vec())
    }
}

/// The two-armed network of `NETWORK` with the LB's MACs.
pub fn network() -> Network {
    let m: NetworkModel = toml::from_str(NETWORK).unwrap();
    Network::build(&m, &[lb_core::wire::MacAddr(LB0), lb_core::wire::MacAddr(LB1)]).unwrap()
}

/// A worker whose neighbour table knows backends and clients 1..=60 (static entries).
pub fn worker_with(cfg: &WorkerConfig, steering: Steering) -> Worker {
    let neigh =
        Arc::new(lb_core::NeighTable::new(lb_core::neigh::NeighParams { capacity: 1024, ..Default::default() }));
    for x in 1..=60 {
        neigh.insert_static(&lb_core::flow::widen(b4(x)), false, lb_core::wire::MacAddr(backend_mac(x)), 1);
        neigh.insert_static(&lb_core::flow::widen(c4(x)), false, lb_core::wire::MacAddr(client_mac(x)), 0);
    }
    Worker::new(cfg, neigh, steering)
}

/// A table of `services` (TOML) on the fixture network.
pub fn table_of(services: &str) -> Table {
    let s: ServicesModel = toml::from_str(services).unwrap();
    Table::build(&s, network(), Limits::default(), None, 0).unwrap()
}

/// A worker with room for 1024 connections and the static neighbours of `worker_with`.
pub fn small_worker() -> Worker {
    worker_with(&WorkerConfig { conn_capacity: 1024, ..Default::default() }, Steering::Any)
}

/// Runs one frame through `process_burst` on worker `w`; returns the verdict and the bytes.
pub fn run_on(w: &mut Worker, t: &Table, port: u16, input: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
    let mut frames = [VecFrame::new(input, port)];
    let mut verdicts = [Verdict::Consumed];
    process_burst(w, t, &mut frames, &mut verdicts, now_ms);
    use lb_core::Frame;
    (verdicts[0], frames[0].data().to_vec())
}

pub fn eth(dst: [u8; 6], src: [u8; 6], ether_type: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut out = Ethernet2Header { destination: dst, source: src, ether_type }.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// IPv4 header fields a fixture sets.
#[derive(Clone, Copy)]
pub struct V4 {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    pub ident: u16,
    pub df: bool,
    pub mf: bool,
    /// Fragment offset in 8-byte units.
    pub offset: u16,
}

impl V4 {
    pub fn new(src: [u8; 4], dst: [u8; 4]) -> V4 {
        V4 { src, dst, ttl: 64, ident: 0x1234, df: true, mf: false, offset: 0 }
    }
    pub fn ttl(self, ttl: u8) -> V4 {
        V4 { ttl, ..self }
    }
    pub fn header(&self, proto: IpNumber, payload_len: usize) -> Ipv4Header {
        let mut h = Ipv4Header::new(payload_len as u16, self.ttl, proto, self.src, self.dst).unwrap();
        h.identification = self.ident;
        h.dont_fragment = self.df;
        h.more_fragments = self.mf;
        h.fragment_offset = IpFragOffset::try_new(self.offset).unwrap();
        h.header_checksum = h.calc_header_checksum();
        h
    }
    /// The IP packet with `payload` (already a complete transport segment).
    pub fn packet(&self, proto: IpNumber, payload: &[u8]) -> Vec<u8> {
        let mut out = self.header(proto, payload.len()).to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }
}

/// TCP segment flags for fixtures.
#[derive(Clone, Copy, Default)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}
pub const SYN: Flags = Flags { syn: true, ack: false, fin: false, rst: false };
pub const SYN_ACK: Flags = Flags { syn: true, ack: true, fin: false, rst: false };
pub const ACK: Flags = Flags { syn: false, ack: true, fin: false, rst: false };

fn tcp_header(sport: u16, dport: u16, f: Flags) -> TcpHeader {
    let mut t = TcpHeader::new(sport, dport, 1000, 64240);
    t.syn = f.syn;
    t.ack = f.ack;
    t.fin = f.fin;
    t.rst = f.rst;
    if f.ack {
        t.acknowledgment_number = 2000;
    }
    t
}

/// A TCP segment over IPv4, checksummed for `ip`'s addresses.
pub fn tcp4(ip: &V4, sport: u16, dport: u16, f: Flags, payload: &[u8]) -> Vec<u8> {
    let mut t = tcp_header(sport, dport, f);
    t.checksum = t.calc_checksum_ipv4_raw(ip.src, ip.dst, payload).unwrap();
    let mut seg = t.to_bytes().to_vec();
    seg.extend_from_slice(payload);
    ip.packet(IpNumber::TCP, &seg)
}

/// A UDP datagram (header and payload, not yet in IP) checksummed for IPv4 addresses.
pub fn udp4_segment(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u =
        UdpHeader { source_port: sport, destination_port: dport, length: (8 + payload.len()) as u16, checksum: 0 };
    u.checksum = u.calc_checksum_ipv4_raw(src, dst, payload).unwrap();
    let mut seg = u.to_bytes().to_vec();
    seg.extend_from_slice(payload);
    seg
}

pub fn udp4(ip: &V4, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ip.packet(IpNumber::UDP, &udp4_segment(ip.src, ip.dst, sport, dport, payload))
}

/// IPv6 header fields a fixture sets.
#[derive(Clone, Copy)]
pub struct V6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub hop: u8,
}

impl V6 {
    pub fn new(src: [u8; 16], dst: [u8; 16]) -> V6 {
        V6 { src, dst, hop: 64 }
    }
    pub fn hop(self, hop: u8) -> V6 {
        V6 { hop, ..self }
    }
    pub fn packet(&self, next: IpNumber, payload: &[u8]) -> Vec<u8> {
        let h = Ipv6Header {
            traffic_class: 0,
            flow_label: Ipv6FlowLabel::ZERO,
            payload_length: payload.len() as u16,
            next_header: next,
            hop_limit: self.hop,
            source: self.src,
            destination: self.dst,
        };
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }
}

pub fn tcp6(ip: &V6, sport: u16, dport: u16, f: Flags, payload: &[u8]) -> Vec<u8> {
    let mut t = tcp_header(sport, dport, f);
    t.checksum = t.calc_checksum_ipv6_raw(ip.src, ip.dst, payload).unwrap();
    let mut seg = t.to_bytes().to_vec();
    seg.extend_from_slice(payload);
    ip.packet(IpNumber::TCP, &seg)
}

pub fn icmp4(ip: &V4, ty: Icmpv4Type, payload: &[u8]) -> Vec<u8> {
    let mut h = Icmpv4Header::new(ty);
    h.update_checksum(payload);
    let mut m = h.to_bytes().to_vec();
    m.extend_from_slice(payload);
    ip.packet(IpNumber::ICMP, &m)
}

pub fn frag_needed(mtu: u16) -> Icmpv4Type {
    Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: mtu })
}

pub fn icmp6(ip: &V6, ty: Icmpv6Type, payload: &[u8]) -> Vec<u8> {
    let h = Icmpv6Header::with_checksum(ty, ip.src, ip.dst, payload).unwrap();
    let mut m = h.to_bytes().to_vec();
    m.extend_from_slice(payload);
    ip.packet(IpNumber::IPV6_ICMP, &m)
}

/// A neighbour solicitation or advertisement body (after the 4-byte flags word) with one
/// link-layer option, as raw ICMPv6 message bytes after the type/code/checksum.
pub fn nd_body(target: [u8; 16], opt_kind: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut b = target.to_vec();
    b.extend_from_slice(&[opt_kind, 1]);
    b.extend_from_slice(&mac);
    b
}

pub fn arp(op: ArpOperation, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    ArpPacket::new(ArpHardwareId::ETHERNET, EtherType::IPV4, op, &sha, &spa, &tha, &tpa).unwrap().to_bytes().to_vec()
}

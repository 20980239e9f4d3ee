//! Pipeline behaviour that needs its own worker or table state: scheduling through the real
//! pipeline, table updates under live connections, the conntrack limits, and the drop reasons
//! the shared fixture table cannot reach.
// Test packets are small: their length casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::{EtherType, IpNumber};
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::{DropReason, Frame, VecFrame, Verdict};
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::{Steering, Worker, WorkerConfig, process_burst};
use std::collections::HashMap;

fn table(services: &str, previous: Option<&Table>) -> Table {
    let m: ServicesModel = toml::from_str(services).unwrap();
    Table::build(&m, network(), Limits::default(), previous, 0).unwrap()
}

fn worker(cfg: WorkerConfig, steering: Steering) -> Worker {
    worker_with(&cfg, steering)
}

fn run(w: &mut Worker, t: &Table, port: u16, input: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
    run_on(w, t, port, input, now_ms)
}

fn syn(client: u8, sport: u16, vip: [u8; 4], dport: u16) -> Vec<u8> {
    eth(LB0, client_mac(client), EtherType::IPV4, &tcp4(&V4::new(c4(client), vip), sport, dport, SYN, b""))
}

fn ack(client: u8, sport: u16, vip: [u8; 4], dport: u16) -> Vec<u8> {
    eth(LB0, client_mac(client), EtherType::IPV4, &tcp4(&V4::new(c4(client), vip), sport, dport, ACK, b"data"))
}

/// The backend (last byte of its IPv4 address) a forwarded NAT frame went to.
fn backend_of(out: &[u8]) -> u8 {
    out[14 + 19]
}

fn services_with(scheduler: &str, backends: &[(u8, u32)], extra: &str) -> String {
    let mut s = format!("[[service]]\nvip = \"10.0.0.100\"\nport = 80\nscheduler = \"{scheduler}\"\n{extra}\n");
    for (b, w) in backends {
        s.push_str(&format!("[[service.backend]]\naddress = \"10.1.0.{b}\"\nweight = {w}\n"));
    }
    s
}

#[test]
fn rr_spreads_new_connections_exactly() {
    let t = table(&services_with("rr", &[(11, 1), (12, 1), (13, 1)], ""), None);
    let mut w = worker(WorkerConfig { conn_capacity: 1024, ..Default::default() }, Steering::Any);
    let mut hits: HashMap<u8, usize> = HashMap::new();
    for i in 0..30 {
        let (v, out) = run(&mut w, &t, 0, &syn(2, 10000 + i, c4(100), 80), 1000);
        assert_eq!(v, Verdict::Tx(1));
        *hits.entry(backend_of(&out)).or_default() += 1;
    }
    assert_eq!(hits, HashMap::from([(11, 10), (12, 10), (13, 10)]));
}

#[test]
fn wrr_spreads_by_weight() {
    let t = table(&services_with("wrr", &[(11, 1), (12, 3)], ""), None);
    let mut w = worker(WorkerConfig { conn_capacity: 1024, ..Default::default() }, Steering::Any);
    let mut hits: HashMap<u8, usize> = HashMap::new();
    for i in 0..40 {
        let (_, out) = run(&mut w, &t, 0, &syn(2, 10000 + i, c4(100), 80), 1000);
        *hits.entry(backend_of(&out)).or_default() += 1;
    }
    assert_eq!(hits, HashMap::from([(11, 10), (12, 30)]));
}

#[test]
fn sh_and_mh_are_sticky_per_source_and_mh_agrees_across_lb_nodes() {
    for sched in ["sh", "mh"] {
        let services = services_with(sched, &[(11, 1), (12, 1), (13, 1), (14, 1)], "");
        let t = table(&services, None);
        // A second LB node: its own table built from the same configuration, its own worker.
        let t2 = table(&services, None);
        let mut w = worker(WorkerConfig { conn_capacity: 4096, ..Default::default() }, Steering::Any);
        let mut w2 = worker(WorkerConfig { conn_capacity: 4096, ..Default::default() }, Steering::Any);
        let mut seen = std::collections::HashSet::new();
        for client in 2..40u8 {
            let (_, first) = run(&mut w, &t, 0, &syn(client, 20000, c4(100), 80), 1000);
            for sport in 20001..20005 {
                let (_, again) = run(&mut w, &t, 0, &syn(client, sport, c4(100), 80), 1000);
                assert_eq!(backend_of(&first), backend_of(&again), "{sched}: client {client} moved");
            }
            let (_, other_node) = run(&mut w2, &t2, 0, &syn(client, 20000, c4(100), 80), 1000);
            if sched == "mh" {
                assert_eq!(backend_of(&first), backend_of(&other_node), "mh: LB nodes disagree for client {client}");
            }
            seen.insert(backend_of(&first));
        }
        assert_eq!(seen.len(), 4, "{sched}: every backend gets clients");
    }
}

#[test]
fn mh_adopts_mid_stream_flows_consistently() {
    // A flow that started on another LB node arrives here with no SYN: Maglev picks the same
    // backend, so it is adopted instead of dropped.
    let services = services_with("mh", &[(11, 1), (12, 1), (13, 1)], "");
    let t = table(&services, None);
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    let (_, by_syn) = run(&mut w, &t, 0, &syn(5, 30000, c4(100), 80), 1000);
    let mut w_other = worker(WorkerConfig::default(), Steering::Any);
    let (v, by_ack) = run(&mut w_other, &t, 0, &ack(5, 30000, c4(100), 80), 1000);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(backend_of(&by_syn), backend_of(&by_ack));
}

#[test]
fn persistence_keeps_a_client_on_its_backend() {
    let t = table(&services_with("rr", &[(11, 1), (12, 1), (13, 1)], "persistence = 300"), None);
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    let (_, first) = run(&mut w, &t, 0, &syn(7, 1000, c4(100), 80), 1000);
    for sport in 1001..1010 {
        let (_, out) = run(&mut w, &t, 0, &syn(7, sport, c4(100), 80), 2000);
        assert_eq!(backend_of(&out), backend_of(&first));
    }
    // Another client is still spread.
    let (_, other) = run(&mut w, &t, 0, &syn(8, 1000, c4(100), 80), 2000);
    assert_ne!(backend_of(&other), backend_of(&first));
    // After the timeout, the template is gone and rr moves on.
    let (_, late) = run(&mut w, &t, 0, &syn(7, 2000, c4(100), 80), 1000 + 301_000);
    assert_ne!(backend_of(&late), backend_of(&first));
}

#[test]
fn draining_and_deleting_keep_existing_connections() {
    let services = services_with("rr", &[(11, 1), (12, 1)], "");
    let t1 = table(&services, None);
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    let (_, a) = run(&mut w, &t1, 0, &syn(2, 1000, c4(100), 80), 1000);
    let (_, b) = run(&mut w, &t1, 0, &syn(2, 1001, c4(100), 80), 1000);
    assert_eq!((backend_of(&a), backend_of(&b)), (11, 12));
    // Drain 12 (weight 0): its connection keeps flowing, new ones all go to 11.
    let t2 = table(&services_with("rr", &[(11, 1), (12, 0)], ""), Some(&t1));
    let (v, cont) = run(&mut w, &t2, 0, &ack(2, 1001, c4(100), 80), 2000);
    assert_eq!((v, backend_of(&cont)), (Verdict::Tx(1), 12));
    for sport in 2000..2010 {
        let (_, out) = run(&mut w, &t2, 0, &syn(2, sport, c4(100), 80), 2000);
        assert_eq!(backend_of(&out), 11);
    }
    // Delete 12: as IPVS (expire_nodest_conn=0), the live connection continues until it ends.
    let t3 = table(&services_with("rr", &[(11, 1)], ""), Some(&t2));
    let (v, cont) = run(&mut w, &t3, 0, &ack(2, 1001, c4(100), 80), 3000);
    assert_eq!((v, backend_of(&cont)), (Verdict::Tx(1), 12));
    for sport in 3000..3005 {
        let (_, out) = run(&mut w, &t3, 0, &syn(2, sport, c4(100), 80), 3000);
        assert_eq!(backend_of(&out), 11);
    }
}

#[test]
fn lc_prefers_the_backend_with_fewer_connections() {
    let t = table(&services_with("lc", &[(11, 1), (12, 1)], ""), None);
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    // Each new connection is established (SYN, then ACK) and lands on the less loaded backend.
    let mut on = HashMap::<u8, u32>::new();
    for sport in 0..6u16 {
        let (_, out) = run(&mut w, &t, 0, &syn(2, 4000 + sport, c4(100), 80), 1000);
        run(&mut w, &t, 0, &ack(2, 4000 + sport, c4(100), 80), 1000);
        *on.entry(backend_of(&out)).or_default() += 1;
    }
    assert_eq!(on, HashMap::from([(11, 3), (12, 3)]));
}

#[test]
fn syn_flood_cannot_displace_established_connections() {
    let t = table(&services_with("rr", &[(11, 1), (12, 1)], ""), None);
    let cfg = WorkerConfig { conn_capacity: 64, embryonic_limit: 32, ..Default::default() };
    let mut w = worker(cfg, Steering::Any);
    for sport in 0..16u16 {
        run(&mut w, &t, 0, &syn(2, 5000 + sport, c4(100), 80), 1000);
        run(&mut w, &t, 0, &ack(2, 5000 + sport, c4(100), 80), 1000);
    }
    // A flood of SYNs from many sources: they are still forwarded (statelessly, counted).
    for i in 0..500u16 {
        let (v, _) = run(&mut w, &t, 0, &syn(3 + (i % 50) as u8, 6000 + i, c4(100), 80), 1001);
        assert_eq!(v, Verdict::Tx(1));
    }
    assert!(w.counters.stateless > 400, "stateless decisions: {}", w.counters.stateless);
    assert_eq!(w.conns.embryonic(), 32);
    // Every established connection still reaches its backend.
    for sport in 0..16u16 {
        let (v, out) = run(&mut w, &t, 0, &ack(2, 5000 + sport, c4(100), 80), 1002);
        assert_eq!(v, Verdict::Tx(1));
        assert_eq!(backend_of(&out), if sport % 2 == 0 { 11 } else { 12 });
    }
}

#[test]
fn full_table_refuses_full_nat_but_forwards_nat_statelessly() {
    let services = "[[service]]\nvip = \"10.0.0.101\"\nport = 80\nbackend = [{ address = \"10.1.0.12\", mode = \"fnat\" }]\n\
                    [[service]]\nvip = \"10.0.0.100\"\nport = 80\nbackend = [{ address = \"10.1.0.11\", mode = \"nat\" }]\n";
    let t = table(services, None);
    let mut w = worker(WorkerConfig { conn_capacity: 1, embryonic_limit: 1, ..Default::default() }, Steering::Any);
    assert_eq!(run(&mut w, &t, 0, &syn(2, 1, c4(100), 80), 1000).0, Verdict::Tx(1));
    assert_eq!(run(&mut w, &t, 0, &syn(2, 2, c4(101), 80), 1000).0, Verdict::Drop(DropReason::ConntrackFull));
    assert_eq!(run(&mut w, &t, 0, &syn(2, 3, c4(100), 80), 1000).0, Verdict::Tx(1));
    // The untracked NAT flow's reply is un-NATed statelessly: 10.1.0.11:80 serves one service.
    let reply = eth(LB1, backend_mac(11), EtherType::IPV4, &tcp4(&V4::new(b4(11), c4(2)), 80, 3, SYN_ACK, b""));
    let (v, out) = run(&mut w, &t, 1, &reply, 1000);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(
        out,
        eth(client_mac(2), LB0, EtherType::IPV4, &tcp4(&V4::new(c4(100), c4(2)).ttl(63), 80, 3, SYN_ACK, b""))
    );
    assert_eq!(w.counters.stateless, 2);
}

#[test]
fn nat_reply_key_collision_is_refused() {
    // Two VIPs NAT to the same backend port; one client port to both collides on the reply key.
    let services = "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nbackend = [{ address = \"10.1.0.11\", port = 8080 }]\n\
                    [[service]]\nvip = \"10.0.0.101\"\nport = 80\nbackend = [{ address = \"10.1.0.11\", port = 8080 }]\n";
    let t = table(services, None);
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    assert_eq!(run(&mut w, &t, 0, &syn(2, 7, c4(100), 80), 1000).0, Verdict::Tx(1));
    assert_eq!(run(&mut w, &t, 0, &syn(2, 7, c4(101), 80), 1000).0, Verdict::Drop(DropReason::ConntrackCollision));
}

#[test]
fn local_ports_exhausted() {
    let services =
        "[[service]]\nvip = \"10.0.0.101\"\nport = 80\nbackend = [{ address = \"10.1.0.12\", mode = \"fnat\" }]\n";
    let t = table(services, None);
    // A partition that owns no port at or above 1024.
    let mut w = worker(WorkerConfig::default(), Steering::Partition { workers: 65535, index: 7 });
    assert_eq!(run(&mut w, &t, 0, &syn(2, 7, c4(101), 80), 1000).0, Verdict::Drop(DropReason::LocalPortsExhausted));
}

#[test]
fn full_nat_ports_follow_the_partition() {
    let services =
        "[[service]]\nvip = \"10.0.0.101\"\nport = 80\nbackend = [{ address = \"10.1.0.12\", mode = \"fnat\" }]\n";
    let t = table(services, None);
    let mut w = worker(WorkerConfig::default(), Steering::Partition { workers: 4, index: 3 });
    for sport in 0..20 {
        let (_, out) = run(&mut w, &t, 0, &syn(2, 100 + sport, c4(101), 80), 1000);
        let lport = u16::from_be_bytes([out[34], out[35]]);
        assert_eq!(lport % 4, 3);
    }
}

#[test]
fn no_route_and_no_df() {
    let services = "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nbackend = [{ address = \"192.0.2.9\" }]\n\
                    [[service]]\nvip = \"10.0.0.103\"\nport = 80\nbackend = [{ address = \"10.1.0.14\", mode = \"tun\" }]\n";
    let t = table(services, None);
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    assert_eq!(run(&mut w, &t, 0, &syn(2, 1, c4(100), 80), 1000).0, Verdict::Drop(DropReason::NoRoute));
    let mut ip = V4::new(c4(2), c4(103));
    ip.df = false;
    let big = eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&ip, 9, 80, SYN, &[0u8; 1460]));
    assert_eq!(run(&mut w, &t, 0, &big, 1000).0, Verdict::Drop(DropReason::TooBigNoDf));
}

#[test]
fn tunnel_without_source_address_of_the_backend_family() {
    // An IPv4 VIP tunnelled to an IPv6 backend reachable only via a gateway, on a port that has
    // no IPv6 address to source the tunnel from.
    let m: NetworkModel =
        toml::from_str("[[interface]]\nname = \"p\"\naddresses = [\"10.0.0.1/24\"]\ngateway6 = \"fd09::1\"\n").unwrap();
    let net = Network::build(&m, &[lb_core::wire::MacAddr(LB0)]).unwrap();
    let s: ServicesModel = toml::from_str(
        "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nbackend = [{ address = \"fd01::9\", mode = \"tun\" }]\n",
    )
    .unwrap();
    let t = Table::build(&s, net, Limits::default(), None, 0).unwrap();
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    assert_eq!(run(&mut w, &t, 0, &syn(2, 1, c4(100), 80), 1000).0, Verdict::Drop(DropReason::NoSourceAddress));
}

/// A frame with no headroom, as an mbuf whose headroom was used up.
struct Tight(Vec<u8>);
impl Frame for Tight {
    fn data(&self) -> &[u8] {
        &self.0
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn prepend(&mut self, _: usize) -> bool {
        false
    }
    fn set_len(&mut self, len: usize) -> bool {
        len <= self.0.len() && {
            self.0.truncate(len);
            true
        }
    }
    fn in_port(&self) -> u16 {
        0
    }
    fn adj(&mut self, n: usize) -> bool {
        n <= self.0.len() && {
            self.0.drain(..n);
            true
        }
    }
    fn set_in_port(&mut self, _: u16) {}
}

#[test]
fn no_headroom_for_a_tunnel_header() {
    let t = table(
        "[[service]]\nvip = \"10.0.0.103\"\nport = 80\nbackend = [{ address = \"10.1.0.14\", mode = \"tun\" }]\n",
        None,
    );
    let mut w = worker(WorkerConfig::default(), Steering::Any);
    let mut frames = [Tight(syn(2, 1, c4(103), 80))];
    let mut verdicts = [Verdict::Consumed];
    process_burst(&mut w, &t, &mut frames, &mut verdicts, 1000);
    assert_eq!(verdicts[0], Verdict::Drop(DropReason::NoRoom));
}

#[test]
fn idle_connections_expire_and_release_their_load() {
    let t = table(&services_with("lc", &[(11, 1)], ""), None);
    let mut w = worker(WorkerConfig { conn_capacity: 64, sweep_budget: 64, ..Default::default() }, Steering::Any);
    run(&mut w, &t, 0, &syn(2, 1, c4(100), 80), 1000);
    let id = t.services()[0].backends[0].id;
    assert_eq!(w.load(id).inactive, 1);
    // SYN_RECV times out after 60 s (IPVS's default).
    w.expire(1000 + 59_000);
    assert_eq!(w.conns.len(), 1);
    w.expire(1000 + 61_000);
    assert_eq!((w.conns.len(), w.load(id).inactive, w.counters.conns_expired), (0, 0, 1));
}

#[test]
fn a_burst_gets_one_verdict_per_frame_in_order() {
    let mut lab = Lab::new();
    let frames_in = [syn(2, 1, c4(100), 80), vec![0u8; 5], syn(2, 2, c4(77), 80)];
    let mut frames: Vec<VecFrame> = frames_in.iter().map(|b| VecFrame::new(b, 0)).collect();
    let mut verdicts = vec![Verdict::Consumed; 3];
    process_burst(&mut lab.worker, &lab.table, &mut frames, &mut verdicts, 1000);
    assert_eq!(
        verdicts,
        [Verdict::Tx(1), Verdict::Drop(DropReason::L2Truncated), Verdict::Drop(DropReason::UnknownDestination)]
    );
    assert_eq!((lab.worker.counters.rx_packets, lab.worker.counters.tx_packets), (3, 1));
    let _ = IpNumber::TCP;
}

#[test]
fn time_exceeded_is_rate_limited() {
    let t = table(&services_with("rr", &[(11, 1)], ""), None);
    let mut w = worker(WorkerConfig { conn_capacity: 4096, ..Default::default() }, Steering::Any);
    let expiring = |i: u16| {
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(100)).ttl(1), 20000 + i, 80, SYN, b""))
    };
    // A burst of 50 is answered at once; the rest of the same millisecond is dropped and counted.
    let answered = (0..200).filter(|i| run(&mut w, &t, 0, &expiring(*i), 5_000).0 == Verdict::Tx(0)).count();
    assert_eq!(answered, 50);
    assert_eq!(w.counters.drop_count(DropReason::TtlExceeded), 150);
    // Then 1000 a second.
    let later = (0..200).filter(|i| run(&mut w, &t, 0, &expiring(300 + i), 5_010).0 == Verdict::Tx(0)).count();
    assert_eq!(later, 10);
    assert_eq!(w.counters.time_exceeded_sent, 60);
}

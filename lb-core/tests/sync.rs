//! Connection sync between nodes: what a worker tells its peers, through the wire format, and
//! how a peer that receives the flow afterwards forwards it exactly as its owner did.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::EtherType;
use lb_core::conntrack::TcpState;
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::{DropReason, Verdict};
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::sync::{Encoder, SyncEvent, SyncKey, SyncKind, open};
use lb_core::wire::MacAddr;
use lb_core::{Steering, Worker, WorkerConfig};

const SERVICES: &str = "[[service]]\nvip = \"10.0.0.101\"\nport = 80\nscheduler = \"rr\"\n\
    backend = [{ address = \"10.1.0.11\", port = 8080, mode = \"fnat\" }, { address = \"10.1.0.12\", port = 8080, mode = \"fnat\" }]\n\
    [[service]]\nvip = \"10.0.0.100\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"rr\"\n\
    backend = [{ address = \"10.1.0.13\", mode = \"nat\" }]\n";

/// Node A owns local address 10.1.0.254; node B owns 10.1.0.253 and backs A's up.
fn node(local: &str, peer: Option<&str>) -> Table {
    let peers = peer.map(|p| format!("peer_local_addresses = [\"{p}\"]\n")).unwrap_or_default();
    let net: NetworkModel = toml::from_str(&format!(
        "local_addresses = [\"{local}\"]\n{peers}[[interface]]\nname = \"client\"\naddresses = [\"10.0.0.1/24\"]\n\
         [[interface]]\nname = \"backend\"\naddresses = [\"10.1.0.1/24\"]\n"
    ))
    .unwrap();
    let network = Network::build(&net, &[MacAddr(LB0), MacAddr(LB1)]).unwrap();
    let s: ServicesModel = toml::from_str(SERVICES).unwrap();
    Table::build(&s, network, Limits::default(), None, 0).unwrap()
}

fn worker(sync: bool) -> Worker {
    let mut w = worker_with(&WorkerConfig { conn_capacity: 1024, ..Default::default() }, Steering::Any);
    w.set_sync(sync);
    w
}

fn client(sport: u16, f: Flags, payload: &[u8]) -> Vec<u8> {
    eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(101)), sport, 80, f, payload))
}

/// The backend's segment to the local address and port that `to_backend` (a frame lbd sent
/// the backend) came from.
fn backend_reply(to_backend: &[u8], f: Flags, payload: &[u8]) -> Vec<u8> {
    let (src, dst): ([u8; 4], [u8; 4]) =
        (to_backend[30..34].try_into().unwrap(), to_backend[26..30].try_into().unwrap());
    let (sport, dport) =
        (u16::from_be_bytes([to_backend[36], to_backend[37]]), u16::from_be_bytes([to_backend[34], to_backend[35]]));
    eth(LB1, backend_mac(src[3]), EtherType::IPV4, &tcp4(&V4::new(src, dst), sport, dport, f, payload))
}

/// Through the wire: encoded, sealed, authenticated and decoded, as lbd's sync thread does.
fn over_the_wire(events: &[SyncEvent]) -> Vec<SyncEvent> {
    let key = SyncKey::new(b"a shared key of the cluster").unwrap();
    let mut e = Encoder::new(1);
    for ev in events {
        assert!(e.push(ev));
    }
    let d = e.seal(&key, 5).to_vec();
    let mut out = Vec::new();
    open(&d, &key).unwrap().records(&mut out).unwrap();
    out
}

/// Opens connection `sport` through `a` (SYN, the backend's SYN-ACK, the client's ACK) and
/// returns the frame lbd sent the backend with the ACK.
fn handshake(a: &mut Worker, t: &Table, sport: u16, now: u64) -> Vec<u8> {
    let (v, syn) = run_on(a, t, 0, &client(sport, SYN, b""), now);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(run_on(a, t, 1, &backend_reply(&syn, SYN_ACK, b""), now + 1).0, Verdict::Tx(0));
    let (v, ack) = run_on(a, t, 0, &client(sport, ACK, b""), now + 2);
    assert_eq!(v, Verdict::Tx(1));
    ack
}

#[test]
fn a_peer_forwards_a_synced_full_nat_connection_exactly_as_its_owner() {
    let (ta, tb) = (node("10.1.0.254", None), node("10.1.0.253", Some("10.1.0.254")));
    let mut a = worker(true);
    // A first connection moves A's round robin on: the synced one goes to the second backend.
    handshake(&mut a, &ta, 30000, 1000);
    a.take_sync_events().count();
    let to_backend = handshake(&mut a, &ta, 40000, 2000);
    let events: Vec<SyncEvent> = a.take_sync_events().collect();
    assert_eq!(events.len(), 1, "one event: the connection became established");
    assert_eq!(events[0].kind, SyncKind::Conn);
    assert_eq!(events[0].conn.state, TcpState::Established);

    let mut b = worker(true);
    let data = client(40000, ACK, b"hello");
    assert_eq!(run_on(&mut b, &tb, 0, &data, 3000).0, Verdict::Drop(DropReason::NoConnection), "without sync");
    for ev in over_the_wire(&events) {
        assert!(b.apply_sync(&tb, &ev, 3000));
    }
    assert_eq!(b.take_sync_events().count(), 0, "applying a peer's event is never echoed");
    // The client's next segment, through A and through B: the same bytes leave for the backend
    // (backend, local address and port: A's).
    let (va, out_a) = run_on(&mut a, &ta, 0, &data, 3000);
    let (vb, out_b) = run_on(&mut b, &tb, 0, &data, 3000);
    assert_eq!((va, vb), (Verdict::Tx(1), Verdict::Tx(1)));
    assert_eq!(out_a, out_b);
    assert_eq!(out_b[26..30], [10, 1, 0, 254], "A's local address");
    assert_eq!(out_b[30..34], to_backend[30..34], "A's backend");
    // The backend's answer to A's local address, once routers send it to B.
    let reply = backend_reply(&out_b, ACK, b"world");
    let (va, out_a) = run_on(&mut a, &ta, 1, &reply, 3001);
    let (vb, out_b) = run_on(&mut b, &tb, 1, &reply, 3001);
    assert_eq!((va, vb), (Verdict::Tx(0), Verdict::Tx(0)));
    assert_eq!(out_a, out_b);
    assert_eq!(b.counters.sync_applied, 1);
    assert_eq!(b.take_sync_events().count(), 0, "forwarding a fresh copy sends nothing back");
}

#[test]
fn handshakes_are_never_sent_so_a_syn_flood_costs_the_peers_nothing() {
    let t = node("10.1.0.254", None);
    let mut a = worker(true);
    for sport in 1000..1500 {
        assert_eq!(run_on(&mut a, &t, 0, &client(sport, SYN, b""), 1000).0, Verdict::Tx(1));
    }
    assert_eq!(a.take_sync_events().count(), 0);
    assert_eq!(a.counters.sync_emitted, 0);
}

#[test]
fn closing_is_sent_as_a_state_and_the_peer_follows_it() {
    let (ta, tb) = (node("10.1.0.254", None), node("10.1.0.253", Some("10.1.0.254")));
    let mut a = worker(true);
    let mut b = worker(true);
    handshake(&mut a, &ta, 40000, 1000);
    for ev in a.take_sync_events().collect::<Vec<_>>() {
        assert!(b.apply_sync(&tb, &ev, 1000));
    }
    let rst = Flags { rst: true, ..Default::default() };
    assert_eq!(run_on(&mut a, &ta, 0, &client(40000, rst, b""), 2000).0, Verdict::Tx(1));
    let events = over_the_wire(&a.take_sync_events().collect::<Vec<_>>());
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind, events[0].conn.state), (SyncKind::State, TcpState::Close));
    assert!(b.apply_sync(&tb, &events[0], 2000));
    let c = b.conns.iter().next().unwrap();
    assert_eq!(c.state, TcpState::Close);
    assert_eq!(c.expires_ms, 2000 + u64::from(events[0].ttl_ms));
    // A Remove takes it away.
    let remove = SyncEvent { kind: SyncKind::Remove, ..events[0] };
    assert!(b.apply_sync(&tb, &remove, 2001));
    assert!(b.conns.is_empty());
    assert!(!b.apply_sync(&tb, &remove, 2002), "nothing left to remove");
    assert_eq!(b.counters.sync_refused, 1);
}

#[test]
fn udp_is_sent_when_created_and_refreshed_at_half_its_timeout() {
    let t = node("10.1.0.254", None);
    let mut a = worker(true);
    let dns =
        |payload: &[u8]| eth(LB0, client_mac(2), EtherType::IPV4, &udp4(&V4::new(c4(2), c4(100)), 5353, 53, payload));
    assert_eq!(run_on(&mut a, &t, 0, &dns(b"q1"), 1000).0, Verdict::Tx(1));
    let first: Vec<_> = a.take_sync_events().collect();
    assert_eq!(first.len(), 1);
    let ttl = u64::from(first[0].ttl_ms);
    assert!(ttl > 0);
    // Before half the timeout passed since the peers heard of it: nothing new.
    assert_eq!(run_on(&mut a, &t, 0, &dns(b"q2"), 1000 + ttl / 2 - 10).0, Verdict::Tx(1));
    assert_eq!(a.take_sync_events().count(), 0);
    assert_eq!(run_on(&mut a, &t, 0, &dns(b"q3"), 1000 + ttl / 2 + 10).0, Verdict::Tx(1));
    assert_eq!(a.take_sync_events().count(), 1, "the refresh");
}

#[test]
fn events_for_a_service_or_backend_the_peer_lacks_are_refused_and_counted() {
    let ta = node("10.1.0.254", None);
    let mut a = worker(true);
    handshake(&mut a, &ta, 40000, 1000);
    let ev = a.take_sync_events().next().unwrap();
    let other: ServicesModel = toml::from_str(
        "[[service]]\nvip = \"10.0.0.101\"\nport = 80\nbackend = [{ address = \"10.1.0.99\", port = 8080, mode = \"fnat\" }]\n",
    )
    .unwrap();
    let tb = Table::build(&other, ta.network.clone(), Limits::default(), None, 0).unwrap();
    let mut b = worker(true);
    assert!(!b.apply_sync(&tb, &ev, 1000));
    assert_eq!((b.counters.sync_applied, b.counters.sync_refused), (0, 1));
    assert!(b.conns.is_empty());
}

#[test]
fn without_sync_a_worker_emits_nothing() {
    let t = node("10.1.0.254", None);
    let mut a = worker(false);
    handshake(&mut a, &t, 40000, 1000);
    assert_eq!(a.take_sync_events().count(), 0);
}

#[test]
fn a_peers_local_address_is_not_answered_to_arp() {
    let tb = node("10.1.0.253", Some("10.1.0.254"));
    let mut b = worker(true);
    let ask = |tpa: [u8; 4]| {
        eth(
            [0xff; 6],
            backend_mac(11),
            EtherType::ARP,
            &arp(etherparse::ArpOperation::REQUEST, backend_mac(11), b4(11), [0; 6], tpa),
        )
    };
    assert_eq!(run_on(&mut b, &tb, 1, &ask([10, 1, 0, 253]), 10).0, Verdict::Tx(1), "its own");
    assert_ne!(run_on(&mut b, &tb, 1, &ask([10, 1, 0, 254]), 10).0, Verdict::Tx(1), "the peer's");
}

#[test]
fn a_resync_sends_every_established_connection_again_and_no_handshake() {
    let t = node("10.1.0.254", None);
    let mut a = worker(true);
    for sport in [40000, 40001, 40002] {
        handshake(&mut a, &t, sport, 1000);
    }
    assert_eq!(run_on(&mut a, &t, 0, &client(50000, SYN, b""), 1000).0, Verdict::Tx(1));
    a.take_sync_events().count();
    let mut cursor = Some(0);
    let mut sent = Vec::new();
    let mut steps = 0;
    while let Some(at) = cursor {
        cursor = a.resync_step(at, 2000);
        sent.extend(a.take_sync_events().map(|e| e.conn.orig.src_port));
        steps += 1;
    }
    sent.sort_unstable();
    assert_eq!(sent, [40000, 40001, 40002]);
    assert!(steps > 0);
}

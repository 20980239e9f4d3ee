//! What health checks change in the data path: a down backend gets no new connection, Maglev
//! moves only its flows, `expire_on_down` resets its connections, the sorry server serves while
//! nothing is up, and the passive check's counters see refused and unanswered SYNs.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::EtherType;
use lb_core::pipeline::{DropReason, Verdict};
use lb_core::service::{BackendKey, DownSet, Limits, ServiceKey, ServicesModel, Table};
use lb_core::{Steering, Worker, WorkerConfig};

fn services(scheduler: &str, extra: &str) -> ServicesModel {
    let mut s = format!("[[service]]\nvip = \"10.0.0.100\"\nport = 80\nscheduler = \"{scheduler}\"\n{extra}\n");
    for b in [11, 12, 13] {
        s.push_str(&format!("[[service.backend]]\naddress = \"10.1.0.{b}\"\n"));
    }
    toml::from_str(&s).unwrap()
}

fn down(model: &ServicesModel, backends: &[u8]) -> DownSet {
    let s = &model.services[0];
    let key = ServiceKey::new(s.vip, s.port, s.protocol);
    s.backends
        .iter()
        .filter(|b| backends.iter().any(|x| b.address == std::net::IpAddr::from(b4(*x))))
        .map(|b| BackendKey::new(key, b))
        .collect()
}

fn table(model: &ServicesModel, down: &DownSet, previous: Option<&Table>) -> Table {
    Table::build_with_health(model, network(), Limits::default(), previous, 0, down).unwrap()
}

fn worker() -> Worker {
    worker_with(&WorkerConfig { conn_capacity: 1 << 16, ..Default::default() }, Steering::Any)
}

fn run(w: &mut Worker, t: &Table, port: u16, input: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
    run_on(w, t, port, input, now_ms)
}

fn segment(client: u8, sport: u16, flags: Flags) -> Vec<u8> {
    eth(LB0, client_mac(client), EtherType::IPV4, &tcp4(&V4::new(c4(client), c4(100)), sport, 80, flags, b""))
}

/// The backend a forwarded NAT frame went to (last byte of its address).
fn backend_of(out: &[u8]) -> u8 {
    out[14 + 19]
}

#[test]
fn a_down_backend_gets_no_new_connection_and_the_service_stays_up() {
    let m = services("rr", "");
    let t = table(&m, &down(&m, &[12]), None);
    let mut w = worker();
    for i in 0..30 {
        let (v, out) = run(&mut w, &t, 0, &segment(2, 10000 + i, SYN), 1000);
        assert_eq!(v, Verdict::Tx(1));
        assert_ne!(backend_of(&out), 12);
    }
    assert!(t.services()[0].up);
    let all = table(&m, &down(&m, &[11, 12, 13]), None);
    assert!(!all.services()[0].up, "no backend up: the service is down");
    let (v, _) = run(&mut worker(), &all, 0, &segment(2, 9999, SYN), 1000);
    assert_eq!(v, Verdict::Drop(DropReason::NoBackend));
}

#[test]
fn maglev_moves_only_the_down_backends_flows() {
    let m = services("mh", "");
    let before = table(&m, &DownSet::new(), None);
    let after = table(&m, &down(&m, &[12]), Some(&before));
    let (mut kept, mut others) = (0, 0);
    let (mut wa, mut wb) = (worker(), worker());
    for i in 0..5000u16 {
        let client = 2 + (i % 50) as u8;
        let sport = 20000 + i;
        let (_, a) = run(&mut wa, &before, 0, &segment(client, sport, SYN), 1000);
        let (_, b) = run(&mut wb, &after, 0, &segment(client, sport, SYN), 1000);
        assert_ne!(backend_of(&b), 12);
        if backend_of(&a) != 12 {
            others += 1;
            kept += usize::from(backend_of(&a) == backend_of(&b));
        }
    }
    // Maglev's disruption: the other backends keep (nearly) all of their flows.
    assert!(kept * 100 >= others * 99, "{kept} of {others} flows of the other backends kept their backend");
}

#[test]
fn existing_connections_run_on_unless_the_service_expires_them() {
    for (extra, expect_reset) in
        [("check = { type = \"tcp\" }", false), ("check = { type = \"tcp\", expire_on_down = true }", true)]
    {
        let m = services("rr", extra);
        let up = table(&m, &DownSet::new(), None);
        let mut w = worker();
        let (_, out) = run(&mut w, &up, 0, &segment(2, 30000, SYN), 1000);
        let b = backend_of(&out);
        let dead = table(&m, &down(&m, &[b]), Some(&up));
        let (v, _) = run(&mut w, &dead, 0, &segment(2, 30000, ACK), 1100);
        if expect_reset {
            assert_eq!(v, Verdict::Drop(DropReason::BackendDown));
            // The client's next attempt is scheduled afresh, to a live backend.
            let (v, out) = run(&mut w, &dead, 0, &segment(2, 30000, SYN), 1200);
            assert_eq!(v, Verdict::Tx(1));
            assert_ne!(backend_of(&out), b);
        } else {
            assert_eq!(v, Verdict::Tx(1), "{extra}");
        }
    }
}

#[test]
fn the_sorry_server_serves_only_while_nothing_is_up() {
    let m = services("rr", "sorry_server = { address = \"10.1.0.40\", port = 8080 }");
    let some = table(&m, &down(&m, &[11]), None);
    for i in 0..10 {
        let (_, out) = run(&mut worker(), &some, 0, &segment(2, 40000 + i, SYN), 1000);
        assert_ne!(backend_of(&out), 40);
    }
    let none = table(&m, &down(&m, &[11, 12, 13]), Some(&some));
    assert!(!none.services()[0].up);
    let (v, out) = run(&mut worker(), &none, 0, &segment(2, 41000, SYN), 1000);
    assert_eq!((v, backend_of(&out)), (Verdict::Tx(1), 40));
}

#[test]
fn refused_and_unanswered_syns_count_against_the_backend() {
    let m = services("rr", "");
    let t = table(&m, &DownSet::new(), None);
    let mut w = worker();
    let (_, out) = run(&mut w, &t, 0, &segment(2, 50000, SYN), 1000);
    let b = backend_of(&out);
    let id = t.services()[0].backends.iter().find(|x| x.addr[3] == b).unwrap().id as usize;
    // The client sends its SYN again: the first went unanswered.
    run(&mut w, &t, 0, &segment(2, 50000, SYN), 2000);
    assert_eq!(w.counters.backends[id].syn_failures, 1);
    // The backend refuses: a RST in answer to the SYN.
    let rst = Flags { syn: false, ack: true, fin: false, rst: true };
    let reply = eth(LB1, backend_mac(b), EtherType::IPV4, &tcp4(&V4::new(b4(b), c4(2)), 80, 50000, rst, b""));
    let (v, _) = run(&mut w, &t, 1, &reply, 2100);
    assert_eq!(v, Verdict::Tx(0), "the RST still reaches the client");
    assert_eq!(w.counters.backends[id].syn_failures, 2);
    // An answered handshake counts nothing.
    let (_, out) = run(&mut w, &t, 0, &segment(3, 50001, SYN), 3000);
    let b2 = backend_of(&out);
    let id2 = t.services()[0].backends.iter().find(|x| x.addr[3] == b2).unwrap().id as usize;
    let before = w.counters.backends[id2].syn_failures;
    let sa = eth(LB1, backend_mac(b2), EtherType::IPV4, &tcp4(&V4::new(b4(b2), c4(3)), 80, 50001, SYN_ACK, b""));
    run(&mut w, &t, 1, &sa, 3010);
    run(&mut w, &t, 0, &segment(3, 50001, ACK), 3020);
    assert_eq!(w.counters.backends[id2].syn_failures, before);
}

#[test]
fn a_new_syn_on_a_closed_connection_is_scheduled_afresh() {
    let m = services("rr", "");
    let up = table(&m, &DownSet::new(), None);
    let mut w = worker();
    let (_, out) = run(&mut w, &up, 0, &segment(2, 60000, SYN), 1000);
    let b = backend_of(&out);
    let sa = eth(LB1, backend_mac(b), EtherType::IPV4, &tcp4(&V4::new(b4(b), c4(2)), 80, 60000, SYN_ACK, b""));
    run(&mut w, &up, 1, &sa, 1005);
    run(&mut w, &up, 0, &segment(2, 60000, ACK), 1006);
    let rst = Flags { syn: false, ack: false, fin: false, rst: true };
    assert_eq!(run(&mut w, &up, 0, &segment(2, 60000, rst), 1010).0, Verdict::Tx(1));
    // The client reuses its port after its backend failed: the new SYN goes to a live one.
    let dead = table(&m, &down(&m, &[b]), Some(&up));
    let (v, out) = run(&mut w, &dead, 0, &segment(2, 60000, SYN), 1020);
    assert_eq!(v, Verdict::Tx(1));
    assert_ne!(backend_of(&out), b);
}

#[test]
fn a_client_cannot_fail_a_backend_by_itself() {
    let m = services("rr", "");
    let t = table(&m, &DownSet::new(), None);
    let mut w = worker();
    let (_, out) = run(&mut w, &t, 0, &segment(2, 51000, SYN), 1000);
    let b = backend_of(&out);
    let id = t.services()[0].backends.iter().find(|x| x.addr[3] == b).unwrap().id as usize;
    // The same SYN twice at once is no retransmission.
    run(&mut w, &t, 0, &segment(2, 51000, SYN), 1010);
    assert_eq!(w.counters.backends[id].syn_failures, 0);
    // A RST claiming to come from the backend, sent from the client's side.
    let rst = Flags { syn: false, ack: true, fin: false, rst: true };
    let forged = eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(b4(b), c4(2)), 80, 51000, rst, b""));
    run(&mut w, &t, 0, &forged, 1020);
    assert_eq!(w.counters.backends[id].syn_failures, 0, "a RST from the wrong side does not count");
}

//! Connections handed from one lbd to another (`--takeover`, `lbctl conns --save/--restore`):
//! saved by address, adopted into a table whose ids differ, and forwarded as before.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::EtherType;
use lb_core::Worker;
use lb_core::pipeline::{DropReason, Verdict};
use lb_core::service::Table;

fn run(w: &mut Worker, t: &Table, port: u16, input: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
    run_on(w, t, port, input, now_ms)
}

const RR: &str = "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nscheduler = \"rr\"\nbackend = [{ address = \"10.1.0.11\" }, { address = \"10.1.0.12\" }]\n";

#[test]
fn a_saved_connection_forwards_the_same_in_another_lbd() {
    let old = table_of(RR);
    let mut a = small_worker();
    let syn = eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(100)), 40000, 80, SYN, b""));
    let (_, out) = run(&mut a, &old, 0, &syn, 1000);
    let backend = out[14 + 19];
    let saved = a.save_conns(&old, 2000);
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].expires_in_ms + 2000, a.conns.iter().next().unwrap().expires_ms);
    // The new lbd runs another service first: every id differs.
    let new = table_of(&format!(
        "[[service]]\nvip = \"10.0.0.99\"\nport = 1\nbackend = [{{ address = \"10.1.0.40\" }}]\n{RR}"
    ));
    let ack = eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(100)), 40000, 80, ACK, b"x"));
    let mut b = small_worker();
    assert_eq!(
        run(&mut b, &new, 0, &ack, 50).0,
        Verdict::Drop(DropReason::NoConnection),
        "rr drops what it does not track"
    );
    b.adopt(&new, &saved[0], 100).unwrap();
    let (v, out) = run(&mut b, &new, 0, &ack, 150);
    assert_eq!((v, out[14 + 19]), (Verdict::Tx(1), backend), "the adopted connection keeps its backend");
    let id = new.services()[1].backends.iter().find(|x| x.addr[3] == backend).unwrap().id;
    assert_eq!(b.load(id).active + b.load(id).inactive, 1, "and counts in its backend's load");
    // A connection of a service the new lbd does not have is refused, with the reason.
    let other = table_of("[[service]]\nvip = \"10.0.0.100\"\nport = 81\nbackend = [{ address = \"10.1.0.11\" }]\n");
    assert!(small_worker().adopt(&other, &saved[0], 100).unwrap_err().contains("no service 10.0.0.100:80"));
}

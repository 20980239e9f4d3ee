//! ipvsadm's service and backend options through the pipeline: connection thresholds (-x, -y)
//! with IPVS's overload hysteresis, one-packet scheduling (-o) and the persistence netmask (-M).
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::EtherType;
use lb_core::Worker;
use lb_core::pipeline::Verdict;
use lb_core::service::{Limits, ServicesModel, Table};

/// The last byte of the backend a frame lbd sent went to.
fn backend_of(out: &[u8]) -> u8 {
    out[14 + 19]
}

fn tcp(client: u8, sport: u16, f: Flags) -> Vec<u8> {
    eth(LB0, client_mac(client), EtherType::IPV4, &tcp4(&V4::new(c4(client), c4(100)), sport, 80, f, b""))
}

#[test]
fn an_upper_threshold_overloads_a_backend_until_it_falls_below_the_lower() {
    // fo sends everything to the heaviest available backend: 11 until it is overloaded.
    let t = table_of(
        "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nscheduler = \"fo\"\nbackend = [\
         { address = \"10.1.0.11\", weight = 10, upper_threshold = 2, lower_threshold = 1 },\
         { address = \"10.1.0.12\", weight = 1 }]\n",
    );
    let mut w = small_worker();
    let to = |w: &mut Worker, sport: u16, f: Flags, now: u64| {
        let (v, out) = run_on(w, &t, 0, &tcp(2, sport, f), now);
        assert_eq!(v, Verdict::Tx(1));
        backend_of(&out)
    };
    // Two connections (their SYNs 30 s apart, so they expire apart: SYN_RECV lasts 60 s).
    assert_eq!([to(&mut w, 1, SYN, 10), to(&mut w, 2, SYN, 30_000)], [11, 11]);
    assert_eq!([to(&mut w, 3, SYN, 30_000), to(&mut w, 4, SYN, 30_000)], [12, 12], "11 holds 2: overloaded");
    // (The sweep visits 64 entries a call: 16 calls cover the table.)
    let sweep = |w: &mut Worker, now: u64| {
        for _ in 0..16 {
            w.expire(now);
        }
    };
    sweep(&mut w, 60_500);
    assert_eq!(to(&mut w, 5, SYN, 60_500), 12, "1 connection left: not below the lower threshold of 1");
    sweep(&mut w, 90_500);
    assert_eq!(to(&mut w, 6, SYN, 90_500), 11, "none left: below the lower threshold, 11 takes connections again");
}

#[test]
fn one_packet_scheduling_keeps_no_connection() {
    let t = table_of(
        "[[service]]\nvip = \"10.0.0.100\"\nport = 53\nprotocol = \"udp\"\nscheduler = \"rr\"\none_packet = true\n\
         backend = [{ address = \"10.1.0.11\" }, { address = \"10.1.0.12\" }]\n",
    );
    let mut w = small_worker();
    let dns = eth(LB0, client_mac(2), EtherType::IPV4, &udp4(&V4::new(c4(2), c4(100)), 5353, 53, b"q"));
    let got: Vec<u8> = (0..4)
        .map(|i| {
            let (v, out) = run_on(&mut w, &t, 0, &dns, 10 + i);
            assert_eq!(v, Verdict::Tx(1));
            backend_of(&out)
        })
        .collect();
    assert_eq!(got, [11, 12, 11, 12], "every datagram of one flow is scheduled on its own");
    assert!(w.conns.is_empty());
    assert_eq!(w.counters.one_packet, 4);
    // A one-packet service must be UDP, and cannot have fnat backends.
    let bad: ServicesModel = toml::from_str(
        "[[service]]\nvip = \"10.0.0.100\"\nport = 80\none_packet = true\nbackend = [{ address = \"10.1.0.11\" }]\n",
    )
    .unwrap();
    let e = Table::build(&bad, network(), Limits::default(), None, 0).unwrap_err();
    assert!(e.0.contains("one_packet: one-packet scheduling is for UDP services"), "{e}");
}

#[test]
fn a_persistence_netmask_keeps_a_whole_prefix_on_one_backend() {
    let services = |prefix: &str| {
        table_of(&format!(
            "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nscheduler = \"rr\"\npersistence = 300\n{prefix}\
             backend = [{{ address = \"10.1.0.11\" }}, {{ address = \"10.1.0.12\" }}]\n"
        ))
    };
    for (prefix, want) in [("", [11, 12, 11]), ("persistence_prefix = 24\n", [11, 11, 11])] {
        let t = services(prefix);
        let mut w = small_worker();
        let got: Vec<u8> = [2u8, 3, 2]
            .iter()
            .enumerate()
            .map(|(i, c)| backend_of(&run_on(&mut w, &t, 0, &tcp(*c, 1000 + i as u16, SYN), 10).1))
            .collect();
        assert_eq!(got, want, "clients 10.0.0.2, .3, .2 with '{}'", prefix.trim());
    }
    let bad: ServicesModel = toml::from_str(
        "[[service]]\nvip = \"10.0.0.100\"\nport = 80\npersistence_prefix = 33\nbackend = [{ address = \"10.1.0.11\" }]\n",
    )
    .unwrap();
    assert!(
        Table::build(&bad, network(), Limits::default(), None, 0).unwrap_err().0.contains("persistence_prefix: 33")
    );
}

#[test]
fn a_lower_threshold_above_the_upper_is_refused() {
    let bad: ServicesModel = toml::from_str(
        "[[service]]\nvip = \"10.0.0.100\"\nport = 80\nbackend = [{ address = \"10.1.0.11\", upper_threshold = 5, lower_threshold = 6 }]\n",
    )
    .unwrap();
    let e = Table::build(&bad, network(), Limits::default(), None, 0).unwrap_err();
    assert!(e.0.contains("lower_threshold: 6 is above the upper threshold 5"), "{e}");
}

//! The exception path's decisions in the pipeline: what goes to the host's kernel (TCP/UDP and
//! ICMP for interface addresses that lbd does not serve, answers to the kernel's own ARP/ND
//! requests), what never does (VIPs, full-NAT local addresses), and how the kernel's requests
//! make lbd's neighbour table resolve the same neighbour.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::icmpv6::NeighborAdvertisementHeader;
use etherparse::{ArpOperation, EtherType, Icmpv6Type};
use lb_core::flow::widen;
use lb_core::neigh::{NeighParams, NeighTable, State};
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::{DropReason, VecFrame, Verdict, from_host};
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::wire::MacAddr;
use lb_core::{Steering, Worker, WorkerConfig, process_burst};
use std::sync::Arc;

const LB_CLIENT: [u8; 4] = [10, 0, 0, 1];
const LB_BACKEND: [u8; 4] = [10, 1, 0, 1];

fn table(exception: bool) -> Table {
    let mut m: NetworkModel = toml::from_str(NETWORK).unwrap();
    for i in &mut m.interfaces {
        i.exception = exception;
    }
    let net = Network::build(&m, &[MacAddr(LB0), MacAddr(LB1)]).unwrap();
    let s: ServicesModel = toml::from_str(SERVICES).unwrap();
    Table::build(&s, net, Limits::default(), None, 0).unwrap()
}

fn worker() -> Worker {
    let neigh = Arc::new(NeighTable::new(NeighParams { capacity: 1024, ..Default::default() }));
    Worker::new(&WorkerConfig { conn_capacity: 1024, ..Default::default() }, neigh, Steering::Any)
}

fn run(w: &mut Worker, t: &Table, port: u16, input: &[u8]) -> Verdict {
    let mut frames = [VecFrame::new(input, port)];
    let mut verdicts = [Verdict::Consumed];
    process_burst(w, t, &mut frames, &mut verdicts, 1000);
    verdicts[0]
}

fn state_of(w: &Worker, addr: [u8; 4]) -> Option<State> {
    w.neighbours().entries(1000).into_iter().find(|e| e.addr == widen(addr)).map(|e| e.state)
}

#[test]
fn unserved_ports_of_interface_addresses_go_to_the_host_and_vips_never_do() {
    let (mut w, t) = (worker(), table(true));
    let ssh = eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), LB_CLIENT), 40000, 22, SYN, b""));
    assert_eq!(run(&mut w, &t, 0, &ssh), Verdict::Host);
    let udp = eth(LB0, client_mac(2), EtherType::IPV4, &udp4(&V4::new(c4(2), LB_CLIENT), 40000, 161, b"x"));
    assert_eq!(run(&mut w, &t, 0, &udp), Verdict::Host);
    // A port of a VIP with no service: dropped, not the host's.
    let vip = eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), [10, 0, 0, 100]), 40000, 22, SYN, b""));
    assert_eq!(run(&mut w, &t, 0, &vip), Verdict::Drop(DropReason::NoService));
    // A full-NAT local address without a connection is nobody's.
    let local =
        eth(LB1, backend_mac(12), EtherType::IPV4, &tcp4(&V4::new(b4(12), [10, 1, 0, 254]), 8080, 5555, ACK, b""));
    assert_eq!(run(&mut w, &t, 1, &local), Verdict::Drop(DropReason::NoConnection));
}

#[test]
fn a_nat_backend_answering_the_hosts_own_connection_is_not_un_natted() {
    // 10.1.0.11:8080 is a NAT backend; without an entry its segments are un-NATed statelessly,
    // except when they are addressed to the LB itself (a health check's connection).
    let (mut w, t) = (worker(), table(true));
    let reply = tcp4(&V4::new(b4(11), LB_BACKEND), 8080, 45000, SYN_ACK, b"");
    assert_eq!(run(&mut w, &t, 1, &eth(LB1, backend_mac(11), EtherType::IPV4, &reply)), Verdict::Host);
}

#[test]
fn icmp_errors_about_the_hosts_connections_go_to_the_host() {
    let (mut w, t) = (worker(), table(true));
    // Port unreachable for a UDP probe the host sent from 10.1.0.1 to a backend.
    let quoted = udp4(&V4::new(LB_BACKEND, b4(11)), 45000, 53, b"q");
    let unreach = etherparse::Icmpv4Type::DestinationUnreachable(etherparse::icmpv4::DestUnreachableHeader::Port);
    let err = icmp4(&V4::new(b4(11), LB_BACKEND), unreach.clone(), &quoted);
    assert_eq!(run(&mut w, &t, 1, &eth(LB1, backend_mac(11), EtherType::IPV4, &err)), Verdict::Host);
    // The same error to a local address is about no flow of anyone's.
    let quoted = udp4(&V4::new([10, 1, 0, 254], b4(11)), 45000, 53, b"q");
    let err = icmp4(&V4::new(b4(11), [10, 1, 0, 254]), unreach, &quoted);
    assert_eq!(
        run(&mut w, &t, 1, &eth(LB1, backend_mac(11), EtherType::IPV4, &err)),
        Verdict::Drop(DropReason::IcmpUnrelated)
    );
}

#[test]
fn the_hosts_arp_request_makes_the_answer_solicited_for_both_tables() {
    let (mut w, t) = (worker(), table(true));
    let request = arp(ArpOperation::REQUEST, LB1, LB_BACKEND, [0; 6], b4(11));
    let out = eth([0xff; 6], LB1, EtherType::ARP, &request);
    let mut f = VecFrame::new(&out, 1);
    assert_eq!(from_host(&mut w, &t, &mut f, 1000), Verdict::Tx(1), "leaves by its port unchanged");
    assert_eq!(lb_core::Frame::data(&f), &out[..]);
    assert_eq!(state_of(&w, b4(11)), Some(State::Incomplete), "lbd resolves it too");
    // The answer: learned by lbd, and passed on to the kernel that asked.
    let reply = arp(ArpOperation::REPLY, backend_mac(11), b4(11), LB1, LB_BACKEND);
    assert_eq!(run(&mut w, &t, 1, &eth(LB1, backend_mac(11), EtherType::ARP, &reply)), Verdict::Host);
    assert_eq!(state_of(&w, b4(11)), Some(State::Reachable));
}

#[test]
fn without_an_exception_path_arp_answers_stay_with_lbd_and_host_frames_are_refused() {
    let (mut w, t) = (worker(), table(false));
    let reply = arp(ArpOperation::REPLY, backend_mac(11), b4(11), LB1, LB_BACKEND);
    assert_eq!(run(&mut w, &t, 1, &eth(LB1, backend_mac(11), EtherType::ARP, &reply)), Verdict::Consumed);
    let out = eth([0xff; 6], LB1, EtherType::ARP, &arp(ArpOperation::REQUEST, LB1, LB_BACKEND, [0; 6], b4(11)));
    assert_eq!(from_host(&mut w, &t, &mut VecFrame::new(&out, 1), 1000), Verdict::Drop(DropReason::UnknownPort));
}

#[test]
fn the_hosts_neighbour_solicitation_starts_resolution_and_the_advert_reaches_it() {
    let (mut w, t) = (worker(), table(true));
    let (lb6, b) = ([0xfd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], b6(11));
    let ns = icmp6(&V6::new(lb6, b).hop(255), Icmpv6Type::NeighborSolicitation, &nd_body(b, 1, LB1));
    let out = eth([0x33, 0x33, 0xff, 0, 0, 0x11], LB1, EtherType::IPV6, &ns);
    assert_eq!(from_host(&mut w, &t, &mut VecFrame::new(&out, 1), 1000), Verdict::Tx(1));
    let v6_state = w.neighbours().entries(1000).into_iter().find(|e| e.addr == b && e.v6).map(|e| e.state);
    assert_eq!(v6_state, Some(State::Incomplete));
    let na = icmp6(
        &V6::new(b, lb6).hop(255),
        Icmpv6Type::NeighborAdvertisement(NeighborAdvertisementHeader {
            router: false,
            solicited: true,
            r#override: true,
        }),
        &nd_body(b, 2, backend_mac(11)),
    );
    assert_eq!(run(&mut w, &t, 1, &eth(LB1, backend_mac(11), EtherType::IPV6, &na)), Verdict::Host);
    let v6_state = w.neighbours().entries(1000).into_iter().find(|e| e.addr == b && e.v6).map(|e| e.state);
    assert_eq!(v6_state, Some(State::Reachable));
}

#[test]
fn an_arp_reply_lbd_refuses_never_reaches_the_host() {
    let (mut w, t) = (worker(), table(true));
    // The host resolved 10.1.0.11; lbd and the kernel both hold its MAC.
    let out = eth([0xff; 6], LB1, EtherType::ARP, &arp(ArpOperation::REQUEST, LB1, LB_BACKEND, [0; 6], b4(11)));
    from_host(&mut w, &t, &mut VecFrame::new(&out, 1), 1000);
    let reply = arp(ArpOperation::REPLY, backend_mac(11), b4(11), LB1, LB_BACKEND);
    assert_eq!(run(&mut w, &t, 1, &eth(LB1, backend_mac(11), EtherType::ARP, &reply)), Verdict::Host);
    // A spoofed reply for it, and one for an address nobody asked about: lbd believes neither,
    // so the kernel, which might, never sees them.
    let spoof = arp(ArpOperation::REPLY, [2, 0x66, 0x66, 0x66, 0x66, 0x66], b4(11), LB1, LB_BACKEND);
    assert_eq!(
        run(&mut w, &t, 1, &eth(LB1, [2, 0x66, 0x66, 0x66, 0x66, 0x66], EtherType::ARP, &spoof)),
        Verdict::Consumed
    );
    let unasked = arp(ArpOperation::REPLY, backend_mac(12), b4(12), LB1, LB_BACKEND);
    assert_eq!(run(&mut w, &t, 1, &eth(LB1, backend_mac(12), EtherType::ARP, &unasked)), Verdict::Consumed);
    assert_eq!(state_of(&w, b4(11)), Some(State::Reachable));
}

//! The SYN proxy end to end through `process_burst`, with etherparse building and checking
//! every segment: the cookie handshake, the backend's handshake, parked segments, sequence
//! translation both ways, forged cookies, and a spoofed SYN flood that leaves no state.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::{EtherType, IpNumber, Ipv4HeaderSlice, SlicedPacket, TcpHeader, TcpOptionElement, TransportSlice};
use lb_core::flow::FlowKey;
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::{DropReason, VecFrame, Verdict, make_cookie};
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::{Frame, Steering, Worker, WorkerConfig, process_burst};
use std::sync::Arc;

const VIP: [u8; 4] = [10, 0, 0, 110];
const SERVICES: &str = r#"
[[service]]
vip = "10.0.0.110"
port = 80
synproxy = true
backend = [{ address = "10.1.0.11", port = 8080, mode = "nat" }]
[[service]]
vip = "10.0.0.111"
port = 80
synproxy = true
backend = [{ address = "10.1.0.12", port = 8080, mode = "fnat" }]
"#;

struct Rig {
    t: Table,
    w: Worker,
    secret: u64,
}

fn rig() -> Rig {
    let m: NetworkModel = toml::from_str(NETWORK).unwrap();
    let net = Network::build(&m, &[lb_core::wire::MacAddr(LB0), lb_core::wire::MacAddr(LB1)]).unwrap();
    let sm: ServicesModel = toml::from_str(SERVICES).unwrap();
    let t = Table::build(&sm, net, Limits::default(), None, 0).unwrap();
    let neigh =
        Arc::new(lb_core::NeighTable::new(lb_core::neigh::NeighParams { capacity: 1024, ..Default::default() }));
    for x in 1..=20 {
        neigh.insert_static(&lb_core::flow::widen(b4(x)), false, lb_core::wire::MacAddr(backend_mac(x)), 1);
        neigh.insert_static(&lb_core::flow::widen(c4(x)), false, lb_core::wire::MacAddr(client_mac(x)), 0);
    }
    let cfg = WorkerConfig { conn_capacity: 4096, embryonic_limit: 64, ..Default::default() };
    let secret = cfg.synproxy_secret;
    Rig { t, w: Worker::new(&cfg, neigh, Steering::Any), secret }
}

impl Rig {
    fn run(&mut self, port: u16, input: &[u8], now_ms: u64) -> (Verdict, Vec<u8>) {
        let mut frames = [VecFrame::new(input, port)];
        let mut verdicts = [Verdict::Consumed];
        process_burst(&mut self.w, &self.t, &mut frames, &mut verdicts, now_ms);
        (verdicts[0], frames[0].data().to_vec())
    }
}

/// A TCP segment in an Ethernet frame, with the fields the proxy cares about.
#[allow(clippy::too_many_arguments)]
fn seg(
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    seq: u32,
    ack: Option<u32>,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = TcpHeader::new(src.1, dst.1, seq, 29200);
    t.syn = flags.contains('S');
    t.psh = flags.contains('P');
    t.rst = flags.contains('R');
    if let Some(a) = ack {
        t.ack = true;
        t.acknowledgment_number = a;
    }
    if t.syn {
        t.set_options(&[
            TcpOptionElement::MaximumSegmentSize(1400),
            TcpOptionElement::SelectiveAcknowledgementPermitted,
            TcpOptionElement::WindowScale(7),
        ])
        .unwrap();
    }
    t.checksum = t.calc_checksum_ipv4_raw(src.0, dst.0, payload).unwrap();
    let mut s = t.to_bytes().to_vec();
    s.extend_from_slice(payload);
    eth(eth_dst, eth_src, EtherType::IPV4, &V4::new(src.0, dst.0).packet(IpNumber::TCP, &s))
}

/// Parses an output frame, checking both checksums with etherparse.
fn parse(frame: &[u8]) -> (Ipv4HeaderSlice<'_>, TcpHeader, Vec<u8>) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else { panic!("not IPv4") };
    let Some(TransportSlice::Tcp(tcp)) = p.transport else { panic!("not TCP") };
    let h = ip.header();
    assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum(), "IPv4 checksum");
    let payload = tcp.payload().to_vec();
    let th = tcp.to_header();
    assert_eq!(th.calc_checksum_ipv4_raw(h.source(), h.destination(), &payload).unwrap(), th.checksum, "TCP checksum");
    (Ipv4HeaderSlice::from_slice(&frame[14..]).unwrap(), th, payload)
}

fn mss(t: &TcpHeader) -> Option<u16> {
    t.options_iterator().find_map(|o| match o {
        Ok(TcpOptionElement::MaximumSegmentSize(m)) => Some(m),
        _ => None,
    })
}

#[test]
fn nat_handshake_parking_and_sequence_translation() {
    let mut r = rig();
    let now = 10_000;
    let client = (c4(2), 41000);
    let vip = (VIP, 80);
    let isn = 0x1000_0000u32;
    // 1. The client's SYN is answered by lbd with a cookie; nothing is tracked.
    let (v, out) = r.run(0, &seg(LB0, client_mac(2), client, vip, isn, None, "S", b""), now);
    assert_eq!(v, Verdict::Tx(0));
    assert_eq!(&out[..12], &[client_mac(2), LB0].concat()[..], "back to the client");
    let (ip, t, _) = parse(&out);
    assert_eq!((ip.source(), ip.destination(), t.source_port, t.destination_port), (VIP, c4(2), 80, 41000));
    assert!(t.syn && t.ack && !t.rst);
    assert_eq!(t.acknowledgment_number, isn + 1);
    let key = FlowKey::v4(c4(2), VIP, 41000, 80, 6);
    // MSS 1400 falls to the table's 1300 (index 1).
    assert_eq!(t.sequence_number, make_cookie(r.secret, &key, isn, 1, now));
    assert_eq!(mss(&t), Some(1460), "lbd offers the port's MSS");
    assert!(t.options_iterator().all(|o| matches!(o, Ok(TcpOptionElement::MaximumSegmentSize(_)))), "MSS only");
    assert_eq!(r.w.conns.len(), 0);
    let cookie = t.sequence_number;

    // 2. The ACK with the cookie opens the connection: the backend gets a SYN with the
    // client's sequence number and the MSS the cookie carried.
    let ack = seg(LB0, client_mac(2), client, vip, isn + 1, Some(cookie + 1), "", b"");
    let (v, out) = r.run(0, &ack, now + 5);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(&out[..6], &backend_mac(11));
    let (ip, t, payload) = parse(&out);
    assert_eq!((ip.source(), ip.destination(), t.source_port, t.destination_port), (c4(2), b4(11), 41000, 8080));
    assert!(t.syn && !t.ack && payload.is_empty());
    assert_eq!((t.sequence_number, mss(&t)), (isn, Some(1300)));
    assert_eq!(r.w.conns.len(), 1);

    // 3. The client's request arrives before the backend answered: parked.
    let get = seg(LB0, client_mac(2), client, vip, isn + 1, Some(cookie + 1), "P", b"GET /");
    let (v, _) = r.run(0, &get, now + 6);
    let Verdict::Park(id) = v else { panic!("expected the request to be parked, got {v:?}") };

    // 4. The backend's SYN-ACK is answered by lbd with the ACK; the connection is released.
    let backend_isn = 0xfff0_0000u32;
    let synack = seg(LB1, backend_mac(11), (b4(11), 8080), client, backend_isn, Some(isn + 1), "S", b"");
    let (v, out) = r.run(1, &synack, now + 7);
    assert_eq!(v, Verdict::Tx(1));
    assert_eq!(&out[..6], &backend_mac(11));
    let (ip, t, _) = parse(&out);
    assert_eq!((ip.source(), ip.destination(), t.source_port, t.destination_port), (c4(2), b4(11), 41000, 8080));
    assert!(t.ack && !t.syn);
    assert_eq!((t.sequence_number, t.acknowledgment_number), (isn + 1, backend_isn + 1));
    assert_eq!(r.w.take_released(), &[id]);

    // 5. The parked request goes on, its acknowledgement moved into the backend's space.
    let (v, out) = r.run(0, &get, now + 8);
    assert_eq!(v, Verdict::Tx(1));
    let (_, t, payload) = parse(&out);
    assert_eq!((t.sequence_number, t.acknowledgment_number), (isn + 1, backend_isn + 1));
    assert_eq!(payload, b"GET /");

    // 6. The backend's answer reaches the client in lbd's sequence space, from the VIP.
    let data = seg(LB1, backend_mac(11), (b4(11), 8080), client, backend_isn + 1, Some(isn + 6), "P", b"200 OK");
    let (v, out) = r.run(1, &data, now + 9);
    assert_eq!(v, Verdict::Tx(0));
    let (ip, t, payload) = parse(&out);
    assert_eq!((ip.source(), t.source_port), (VIP, 80));
    assert_eq!((t.sequence_number, t.acknowledgment_number), (cookie + 1, isn + 6));
    assert_eq!(payload, b"200 OK");

    // 7. A retransmitted SYN-ACK (our ACK was lost) is answered again, not forwarded.
    let (v, out) = r.run(1, &synack, now + 10);
    assert_eq!(v, Verdict::Tx(1));
    let (_, t, _) = parse(&out);
    assert_eq!((t.ack, t.syn, t.acknowledgment_number), (true, false, backend_isn + 1));
}

#[test]
fn fnat_translates_addresses_and_sequences() {
    let mut r = rig();
    let now = 70_000;
    let client = (c4(3), 42000);
    let vip = ([10, 0, 0, 111], 80);
    let (_, out) = r.run(0, &seg(LB0, client_mac(3), client, vip, 5, None, "S", b""), now);
    let (_, t, _) = parse(&out);
    let cookie = t.sequence_number;
    let (v, out) = r.run(0, &seg(LB0, client_mac(3), client, vip, 6, Some(cookie + 1), "", b""), now);
    assert_eq!(v, Verdict::Tx(1));
    let (ip, t, _) = parse(&out);
    assert_eq!((ip.source(), ip.destination()), (b4(254), b4(12)), "from the local address");
    let local_port = t.source_port;
    let synack = seg(LB1, backend_mac(12), (b4(12), 8080), (b4(254), local_port), 77, Some(6), "S", b"");
    let (v, out) = r.run(1, &synack, now + 1);
    assert_eq!(v, Verdict::Tx(1));
    let (ip, t, _) = parse(&out);
    assert_eq!((ip.source(), t.source_port, t.acknowledgment_number), (b4(254), local_port, 78));
    let data = seg(LB1, backend_mac(12), (b4(12), 8080), (b4(254), local_port), 78, Some(6), "P", b"hello");
    let (v, out) = r.run(1, &data, now + 2);
    assert_eq!(v, Verdict::Tx(0));
    let (ip, t, _) = parse(&out);
    assert_eq!((ip.source(), ip.destination(), t.destination_port), ([10, 0, 0, 111], c4(3), 42000));
    assert_eq!(t.sequence_number, cookie + 1);
}

#[test]
fn forged_and_stale_cookies_open_nothing() {
    let mut r = rig();
    let client = (c4(4), 43000);
    let vip = (VIP, 80);
    let (_, out) = r.run(0, &seg(LB0, client_mac(4), client, vip, 100, None, "S", b""), 1_000);
    let (_, t, _) = parse(&out);
    let cookie = t.sequence_number;
    for (what, seq, ack, now) in [
        ("a guessed cookie", 101, cookie ^ 0x100, 1_000),
        ("another ISN", 202, cookie + 1, 1_000),
        ("two minutes later", 101, cookie + 1, 121_000),
    ] {
        let (v, _) = r.run(0, &seg(LB0, client_mac(4), client, vip, seq, Some(ack), "", b""), now);
        assert_eq!(v, Verdict::Drop(DropReason::SynproxyBadCookie), "{what}");
    }
    assert_eq!(r.w.conns.len(), 0);
    let (v, _) = r.run(0, &seg(LB0, client_mac(4), client, vip, 101, Some(cookie + 1), "", b""), 61_000);
    assert_eq!(v, Verdict::Tx(1), "valid through the next minute");
}

#[test]
fn a_spoofed_syn_flood_leaves_no_state_and_real_clients_get_in() {
    let mut r = rig();
    let mut frames: Vec<VecFrame> = Vec::new();
    for i in 0..5_000u32 {
        let src = [10, 0, (i >> 8) as u8, (i & 0xff) as u8];
        frames.push(VecFrame::new(
            &seg(LB0, [2, 9, 9, 9, 9, 9], (src, 1024 + (i % 60000) as u16), (VIP, 80), i, None, "S", b""),
            0,
        ));
    }
    let mut verdicts = vec![Verdict::Consumed; 32];
    for chunk in frames.chunks_mut(32) {
        let n = chunk.len();
        process_burst(&mut r.w, &r.t, chunk, &mut verdicts[..n], 2_000);
        assert!(verdicts[..n].iter().all(|v| matches!(v, Verdict::Tx(0))), "{:?}", &verdicts[..n]);
    }
    assert_eq!((r.w.conns.len(), r.w.conns.embryonic()), (0, 0), "the flood left no state");
    assert_eq!(r.w.counters.synproxy_cookies, 5_000);
    // The embryonic cap (64) is far below the flood, yet a real client completes.
    let client = (c4(5), 44000);
    let (_, out) = r.run(0, &seg(LB0, client_mac(5), client, (VIP, 80), 9, None, "S", b""), 2_001);
    let (_, t, _) = parse(&out);
    let (v, _) = r.run(0, &seg(LB0, client_mac(5), client, (VIP, 80), 10, Some(t.sequence_number + 1), "", b""), 2_002);
    assert_eq!(v, Verdict::Tx(1));
    let _ = frames[0].data();
}

#[test]
fn a_lost_backend_syn_is_sent_again_on_the_clients_next_segment() {
    let mut r = rig();
    let client = (c4(6), 45000);
    let vip = (VIP, 80);
    let (_, out) = r.run(0, &seg(LB0, client_mac(6), client, vip, 500, None, "S", b""), 1_000);
    let cookie = parse(&out).1.sequence_number;
    let (v, _) = r.run(0, &seg(LB0, client_mac(6), client, vip, 501, Some(cookie + 1), "", b""), 1_000);
    assert_eq!(v, Verdict::Tx(1), "the first SYN to the backend");
    // The backend never answers (its MAC was being resolved, say). Soon after, the client's
    // request is parked; later, its retransmission becomes the SYN again.
    let get = seg(LB0, client_mac(6), client, vip, 501, Some(cookie + 1), "P", b"GET /");
    assert!(matches!(r.run(0, &get, 1_100).0, Verdict::Park(_)));
    let (v, out) = r.run(0, &get, 1_300);
    assert_eq!(v, Verdict::Tx(1));
    let (ip, t, payload) = parse(&out);
    assert_eq!((ip.destination(), t.destination_port), (b4(11), 8080));
    assert!(t.syn && !t.ack && payload.is_empty());
    assert_eq!((t.sequence_number, mss(&t)), (500, Some(1300)));
    assert_eq!(r.w.counters.synproxy_syn_retries, 1);
    assert!(matches!(r.run(0, &get, 1_350).0, Verdict::Park(_)), "and not again at once");
}

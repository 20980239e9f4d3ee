//! The fixture table: description, input frame (port and bytes), expected verdict and expected
//! output bytes, run in order through the real `process_burst` on one worker (later rows see the
//! connections and neighbours earlier rows created). It covers every forwarding mode in both
//! directions, ARP, ND, ICMP echo and error relay, fragments, MTU, and every drop reason the
//! pipeline can produce. `fixtures_to_pcap` in lb-dpdk's tests replays the same table on DPDK.
// Test packets are small: their length casts cannot truncate.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::{ArpOperation, EtherType, IcmpEchoHeader, Icmpv4Type, Icmpv6Type, IpNumber, icmpv6};
use lb_core::flow::{FlowKey, fast_hash};
use lb_core::pipeline::{DropReason, Verdict};

/// One row of the table.
struct Fixture {
    what: &'static str,
    port: u16,
    input: Vec<u8>,
    verdict: Verdict,
    /// Expected bytes when the verdict is `Tx`.
    output: Option<Vec<u8>>,
}

fn tx(what: &'static str, port: u16, input: Vec<u8>, out_port: u16, output: Vec<u8>) -> Fixture {
    Fixture { what, port, input, verdict: Verdict::Tx(out_port), output: Some(output) }
}

fn verdict(what: &'static str, port: u16, input: Vec<u8>, verdict: Verdict) -> Fixture {
    Fixture { what, port, input, verdict, output: None }
}

fn drop(what: &'static str, port: u16, input: Vec<u8>, reason: DropReason) -> Fixture {
    verdict(what, port, input, Verdict::Drop(reason))
}

/// Entropy the tunnels derive from the client's flow (outer IPv4 id, GUE source port).
fn entropy(key: &FlowKey) -> u64 {
    fast_hash(key, 0)
}

fn c(x: u8) -> [u8; 16] {
    lb_core::flow::widen(c4(x))
}

fn table() -> Vec<Fixture> {
    let mut t = Vec::new();
    let vip_nat = c4(100);

    // --- ARP: answered for VIPs and own addresses, the sender is learned.
    t.push(tx(
        "ARP request for a VIP is answered, and the client's MAC learned",
        0,
        eth(
            [0xff; 6],
            client_mac(3),
            EtherType::ARP,
            &arp(ArpOperation::REQUEST, client_mac(3), c4(3), [0; 6], vip_nat),
        ),
        0,
        eth(client_mac(3), LB0, EtherType::ARP, &arp(ArpOperation::REPLY, LB0, vip_nat, client_mac(3), c4(3))),
    ));
    t.push(tx(
        "ARP request for the LB's own backend-side address",
        1,
        eth(
            [0xff; 6],
            backend_mac(11),
            EtherType::ARP,
            &arp(ArpOperation::REQUEST, backend_mac(11), b4(11), [0; 6], b4(1)),
        ),
        1,
        eth(backend_mac(11), LB1, EtherType::ARP, &arp(ArpOperation::REPLY, LB1, b4(1), backend_mac(11), b4(11))),
    ));
    t.push(tx(
        "ARP request for a full-NAT local address",
        1,
        eth(
            [0xff; 6],
            backend_mac(12),
            EtherType::ARP,
            &arp(ArpOperation::REQUEST, backend_mac(12), b4(12), [0; 6], b4(254)),
        ),
        1,
        eth(backend_mac(12), LB1, EtherType::ARP, &arp(ArpOperation::REPLY, LB1, b4(254), backend_mac(12), b4(12))),
    ));
    t.push(verdict(
        "ARP request for someone else is ignored (nothing learned)",
        0,
        eth(
            [0xff; 6],
            client_mac(4),
            EtherType::ARP,
            &arp(ArpOperation::REQUEST, client_mac(4), c4(4), [0; 6], c4(50)),
        ),
        Verdict::Consumed,
    ));
    let mut bad_arp = arp(ArpOperation::REQUEST, client_mac(4), c4(4), [0; 6], vip_nat);
    bad_arp.truncate(20);
    t.push(drop("truncated ARP", 0, eth([0xff; 6], client_mac(4), EtherType::ARP, &bad_arp), DropReason::ArpMalformed));

    // --- ND: neighbour solicitation for an IPv6 VIP.
    let snm = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 1, 0];
    let ns_ip = V6::new(c6(3), snm).hop(255);
    let ns = icmp6(&ns_ip, Icmpv6Type::NeighborSolicitation, &nd_body(c6_vip(0x00), 1, client_mac(3)));
    let na_ip = V6::new(c6_vip(0x00), c6(3)).hop(255);
    let na_type = Icmpv6Type::NeighborAdvertisement(icmpv6::NeighborAdvertisementHeader {
        router: false,
        solicited: true,
        r#override: true,
    });
    t.push(tx(
        "neighbour solicitation for an IPv6 VIP is answered, and the client learned",
        0,
        eth([0x33, 0x33, 0xff, 0, 1, 0], client_mac(3), EtherType::IPV6, &ns),
        0,
        eth(client_mac(3), LB0, EtherType::IPV6, &icmp6(&na_ip, na_type, &nd_body(c6_vip(0x00), 2, LB0))),
    ));
    let ns_low_hop =
        icmp6(&V6::new(c6(3), snm).hop(64), Icmpv6Type::NeighborSolicitation, &nd_body(c6_vip(0x00), 1, client_mac(3)));
    t.push(drop(
        "ND with hop limit other than 255",
        0,
        eth([0x33, 0x33, 0xff, 0, 1, 0], client_mac(3), EtherType::IPV6, &ns_low_hop),
        DropReason::NdInvalid,
    ));

    // --- ICMP echo for VIPs.
    let echo = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 1 });
    let reply = Icmpv4Type::EchoReply(IcmpEchoHeader { id: 7, seq: 1 });
    t.push(tx(
        "ping to an IPv4 VIP is answered",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &icmp4(&V4::new(c4(3), vip_nat).ttl(60), echo.clone(), b"abcdefgh")),
        0,
        eth(client_mac(3), LB0, EtherType::IPV4, &icmp4(&V4::new(vip_nat, c4(3)), reply, b"abcdefgh")),
    ));
    let echo6 = Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 9, seq: 2 });
    let reply6 = Icmpv6Type::EchoReply(IcmpEchoHeader { id: 9, seq: 2 });
    t.push(tx(
        "ping to an IPv6 VIP is answered",
        0,
        eth(LB0, client_mac(3), EtherType::IPV6, &icmp6(&V6::new(c6(3), c6_vip(0x00)).hop(60), echo6, b"abcd")),
        0,
        eth(client_mac(3), LB0, EtherType::IPV6, &icmp6(&V6::new(c6_vip(0x00), c6(3)), reply6, b"abcd")),
    ));
    let mut bad_echo = icmp4(&V4::new(c4(3), vip_nat), echo, b"abcdefgh");
    bad_echo[20 + 9] ^= 0xff;
    t.push(drop(
        "ping with a bad ICMP checksum",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &bad_echo),
        DropReason::IcmpBadChecksum,
    ));

    // --- nat: both directions; the client 10.0.0.3 was learned from its ARP request above.
    let c3 = V4::new(c4(3), vip_nat);
    t.push(tx(
        "nat: SYN to the VIP goes to the backend, DNAT and TTL-1",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&c3, 40000, 80, SYN, b"")),
        1,
        eth(backend_mac(11), LB1, EtherType::IPV4, &tcp4(&V4::new(c4(3), b4(11)).ttl(63), 40000, 8080, SYN, b"")),
    ));
    t.push(tx(
        "nat: the backend's SYN-ACK is un-NATed back to the client",
        1,
        eth(LB1, backend_mac(11), EtherType::IPV4, &tcp4(&V4::new(b4(11), c4(3)), 8080, 40000, SYN_ACK, b"")),
        0,
        eth(client_mac(3), LB0, EtherType::IPV4, &tcp4(&V4::new(vip_nat, c4(3)).ttl(63), 80, 40000, SYN_ACK, b"")),
    ));
    t.push(tx(
        "nat: the client's ACK with data follows the connection",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&c3, 40000, 80, ACK, b"GET / HTTP/1.0\r\n\r\n")),
        1,
        eth(
            backend_mac(11),
            LB1,
            EtherType::IPV4,
            &tcp4(&V4::new(c4(3), b4(11)).ttl(63), 40000, 8080, ACK, b"GET / HTTP/1.0\r\n\r\n"),
        ),
    ));
    t.push(drop(
        "nat: a mid-stream segment with no connection is dropped (rr service, like IPVS)",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&c3, 40999, 80, ACK, b"x")),
        DropReason::NoConnection,
    ));

    // --- Hostile input the NAT modes must not launder.
    let mut bad_tcp = eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&c3, 40100, 80, SYN, b""));
    bad_tcp[14 + 20 + 16] ^= 0x5a; // the TCP checksum
    t.push(drop("nat: a SYN with a bad TCP checksum is dropped, not rewritten", 0, bad_tcp, DropReason::L4BadChecksum));
    let mut bad_udp = eth(LB0, client_mac(2), EtherType::IPV4, &udp4(&V4::new(c4(2), c4(105)), 6001, 5353, b"q"));
    bad_udp[14 + 20 + 6] ^= 0x5a; // the UDP checksum
    t.push(drop("nat: a datagram with a bad UDP checksum is dropped", 0, bad_udp, DropReason::L4BadChecksum));
    let mut short_udp = udp4(&V4::new(c4(2), c4(105)), 6002, 5353, b"query");
    short_udp[20 + 5] -= 2; // UDP length two bytes short of the IP payload
    t.push(drop(
        "a UDP length that disagrees with the IP payload is malformed",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &short_udp),
        DropReason::L4Malformed,
    ));
    t.push(drop(
        "a martian source (loopback) is dropped",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&V4::new([127, 0, 0, 1], vip_nat), 40102, 80, SYN, b"")),
        DropReason::MartianSource,
    ));
    let routed = {
        let seg = tcp4(&c3, 40103, 80, SYN, b"");
        let mut h = c3.header(IpNumber::TCP, seg.len() - 20);
        // A loose source route through 10.0.0.9, then end of options.
        h.options = etherparse::Ipv4Options::try_from(&[0x83u8, 7, 4, 10, 0, 0, 9, 0][..]).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(&seg[20..]);
        p
    };
    t.push(drop(
        "an IPv4 source route option is refused",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &routed),
        DropReason::Ipv4SourceRoute,
    ));
    let syn_fin = Flags { syn: true, ack: false, fin: true, rst: false };
    t.push(drop(
        "SYN+FIN is a flag combination no stack sends",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&c3, 40101, 80, syn_fin, b"")),
        DropReason::TcpBadFlags,
    ));
    // A spoofed ARP reply and a gratuitous ARP claim the client 10.0.0.3 for another MAC: both are
    // absorbed, and the backend's next reply still goes to the client's real MAC.
    let evil = [0x02, 0x66, 0x66, 0x66, 0x66, 0x66];
    t.push(verdict(
        "an unsolicited ARP reply claiming a live client is absorbed, not believed",
        0,
        eth(LB0, evil, EtherType::ARP, &arp(ArpOperation::REPLY, evil, c4(3), LB0, c4(1))),
        Verdict::Consumed,
    ));
    t.push(verdict(
        "a gratuitous ARP claiming a live client is absorbed, not believed",
        0,
        eth([0xff; 6], evil, EtherType::ARP, &arp(ArpOperation::REQUEST, evil, c4(3), [0; 6], c4(3))),
        Verdict::Consumed,
    ));
    t.push(tx(
        "nat: after the spoofing, the backend's data still reaches the client's own MAC",
        1,
        eth(LB1, backend_mac(11), EtherType::IPV4, &tcp4(&V4::new(b4(11), c4(3)), 8080, 40000, ACK, b"data")),
        0,
        eth(client_mac(3), LB0, EtherType::IPV4, &tcp4(&V4::new(vip_nat, c4(3)).ttl(63), 80, 40000, ACK, b"data")),
    ));

    // --- SYN proxy (10.0.0.107): a SYN is answered by lbd itself, a forged ACK opens nothing.
    t.push(verdict(
        "synproxy: a SYN is answered with a cookie, back to the client",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&V4::new(c4(3), c4(107)), 40200, 80, SYN, b"")),
        Verdict::Tx(0),
    ));
    t.push(drop(
        "synproxy: an ACK without a valid cookie opens nothing",
        0,
        eth(LB0, client_mac(3), EtherType::IPV4, &tcp4(&V4::new(c4(3), c4(107)), 40201, 80, ACK, b"")),
        DropReason::SynproxyBadCookie,
    ));

    // --- ICMP error about a NAT flow goes to the backend with both headers rewritten.
    let quoted = tcp4(&V4::new(vip_nat, c4(3)).ttl(63), 80, 40000, ACK, &[0u8; 1400]);
    let router = V4::new(c4(9), vip_nat);
    let translated = tcp4(&V4::new(b4(11), c4(3)).ttl(63), 8080, 40000, ACK, &[0u8; 1400]);
    // The quote is the IP header and 8 bytes; the rewritten quote keeps the original TCP checksum
    // bytes (beyond the quote), so take both quotes at 28 bytes.
    let mut expect_quote = translated[..28].to_vec();
    expect_quote[24..28].copy_from_slice(&quoted[24..28]); // sequence number is unchanged anyway
    t.push(tx(
        "ICMP fragmentation-needed about a NAT reply is relayed to the backend, inner src rewritten",
        0,
        eth(LB0, ROUTER, EtherType::IPV4, &icmp4(&router, frag_needed(1400), &quoted[..28])),
        1,
        eth(
            backend_mac(11),
            LB1,
            EtherType::IPV4,
            &icmp4(&V4::new(c4(9), b4(11)).ttl(63), frag_needed(1400), &expect_quote),
        ),
    ));
    let unrelated = tcp4(&V4::new(vip_nat, c4(3)), 80, 1, ACK, b"");
    t.push(drop(
        "ICMP error about no tracked flow",
        0,
        eth(LB0, ROUTER, EtherType::IPV4, &icmp4(&router, frag_needed(1400), &unrelated[..28])),
        DropReason::IcmpUnrelated,
    ));

    // --- fnat: SNAT to the local address; port 1024 is the first local port handed out.
    let vip_fnat = c4(101);
    t.push(tx(
        "fnat: SYN is sent from the local address and port to the backend",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), vip_fnat), 40001, 80, SYN, b"")),
        1,
        eth(backend_mac(12), LB1, EtherType::IPV4, &tcp4(&V4::new(b4(254), b4(12)).ttl(63), 1024, 8080, SYN, b"")),
    ));
    t.push(tx(
        "fnat: the reply to the local port goes back to the client from the VIP",
        1,
        eth(LB1, backend_mac(12), EtherType::IPV4, &tcp4(&V4::new(b4(12), b4(254)), 8080, 1024, SYN_ACK, b"")),
        0,
        eth(client_mac(2), LB0, EtherType::IPV4, &tcp4(&V4::new(vip_fnat, c4(2)).ttl(63), 80, 40001, SYN_ACK, b"")),
    ));

    // --- dr: MAC rewrite only.
    let dr_in = tcp4(&V4::new(c4(2), c4(102)), 40002, 80, SYN, b"");
    t.push(tx(
        "dr: the IP packet is unchanged but for TTL; the frame goes to the backend's MAC",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &dr_in),
        1,
        eth(backend_mac(13), LB1, EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(102)).ttl(63), 40002, 80, SYN, b"")),
    ));

    // --- tun: IP-in-IP from the LB's backend-side address.
    let tun_key = FlowKey::v4(c4(2), c4(103), 40003, 80, 6);
    let inner = tcp4(&V4::new(c4(2), c4(103)).ttl(63), 40003, 80, SYN, b"");
    let mut outer = V4::new(b4(1), b4(14));
    outer.ident = ((entropy(&tun_key) >> 32) & 0xffff) as u16;
    t.push(tx(
        "tun: the client's packet is encapsulated in IPIP to the backend",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(103)), 40003, 80, SYN, b"")),
        1,
        eth(backend_mac(14), LB1, EtherType::IPV4, &outer.packet(IpNumber::IPV4, &inner)),
    ));
    let big = tcp4(&V4::new(c4(2), c4(103)), 40003, 80, ACK, &[0x55u8; 1460]);
    let mut quote_from = V4::new(c4(103), c4(2));
    quote_from.df = false;
    quote_from.ident = 0;
    t.push(tx(
        "tun: a 1500-byte DF packet cannot take 20 more bytes: fragmentation needed, MTU 1480, from the VIP",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &big),
        0,
        eth(client_mac(2), LB0, EtherType::IPV4, &icmp4(&quote_from, frag_needed(1480), &big[..548])),
    ));

    // --- gue: outer IPv4, UDP to the GUE port with a flow-derived source port, GUE header.
    let gue_key = FlowKey::v4(c4(2), c4(104), 5000, 53, 17);
    let h = entropy(&gue_key);
    let inner = udp4(&V4::new(c4(2), c4(104)).ttl(63), 5000, 53, b"query");
    let mut gue_payload = vec![0, 4, 0, 0];
    gue_payload.extend_from_slice(&inner);
    let mut gue_outer = V4::new(b4(1), b4(15));
    gue_outer.ident = ((h >> 32) & 0xffff) as u16;
    let mut udp = etherparse::UdpHeader {
        source_port: 0xc000 | (h & 0x3fff) as u16,
        destination_port: 6080,
        length: (8 + gue_payload.len()) as u16,
        checksum: 0,
    }
    .to_bytes()
    .to_vec();
    udp.extend_from_slice(&gue_payload);
    t.push(tx(
        "gue: the client's datagram is encapsulated in UDP/GUE to the backend",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &udp4(&V4::new(c4(2), c4(104)), 5000, 53, b"query")),
        1,
        eth(backend_mac(15), LB1, EtherType::IPV4, &gue_outer.packet(IpNumber::UDP, &udp)),
    ));

    // --- gre: outer IPv4 (protocol 47), a 4-byte GRE header naming the inner EtherType; an IPv6
    // service's packet goes to its IPv4 backend the same way.
    let gre_key = FlowKey::v4(c4(2), c4(108), 40008, 80, 6);
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&tcp4(&V4::new(c4(2), c4(108)).ttl(63), 40008, 80, SYN, b""));
    let mut gre_outer = V4::new(b4(1), b4(14));
    gre_outer.ident = ((entropy(&gre_key) >> 32) & 0xffff) as u16;
    t.push(tx(
        "gre: the client's packet is encapsulated in GRE to the backend",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(108)), 40008, 80, SYN, b"")),
        1,
        eth(backend_mac(14), LB1, EtherType::IPV4, &gre_outer.packet(IpNumber::GRE, &gre)),
    ));
    let vip6 = c6_vip(0x08);
    let key6 = FlowKey { src: c6(2), dst: vip6, src_port: 40009, dst_port: 80, proto: 6, v6: true };
    let mut gre6 = vec![0, 0, 0x86, 0xdd];
    gre6.extend_from_slice(&tcp6(&V6::new(c6(2), vip6).hop(63), 40009, 80, SYN, b""));
    let mut gre6_outer = V4::new(b4(1), b4(14));
    gre6_outer.ident = ((entropy(&key6) >> 32) & 0xffff) as u16;
    // IPv6 inside: the outer DF bit is set (IPv6 is never fragmented on the way).
    t.push(tx(
        "gre: an IPv6 service's packet goes in GRE over IPv4 to its IPv4 backend",
        0,
        eth(LB0, client_mac(2), EtherType::IPV6, &tcp6(&V6::new(c6(2), vip6), 40009, 80, SYN, b"")),
        1,
        eth(backend_mac(14), LB1, EtherType::IPV4, &gre6_outer.packet(IpNumber::GRE, &gre6)),
    ));

    // --- tunnels with checksums (ipvsadm --tun-csum): GUE's UDP checksum over IPv4, and GRE's
    // C bit with the checksum of its header and payload.
    let gue_key = FlowKey::v4(c4(2), c4(109), 5001, 53, 17);
    let h = entropy(&gue_key);
    let mut gue_payload = vec![0, 4, 0, 0];
    gue_payload.extend_from_slice(&udp4(&V4::new(c4(2), c4(109)).ttl(63), 5001, 53, b"query"));
    let mut gue_outer = V4::new(b4(1), b4(15));
    gue_outer.ident = ((h >> 32) & 0xffff) as u16;
    let mut uh = etherparse::UdpHeader {
        source_port: 0xc000 | (h & 0x3fff) as u16,
        destination_port: 6080,
        length: (8 + gue_payload.len()) as u16,
        checksum: 0,
    };
    uh.checksum = uh.calc_checksum_ipv4_raw(b4(1), b4(15), &gue_payload).unwrap();
    let mut udp = uh.to_bytes().to_vec();
    udp.extend_from_slice(&gue_payload);
    t.push(tx(
        "gue --tun-csum: the outer UDP checksum is computed over IPv4 too",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &udp4(&V4::new(c4(2), c4(109)), 5001, 53, b"query")),
        1,
        eth(backend_mac(15), LB1, EtherType::IPV4, &gue_outer.packet(IpNumber::UDP, &udp)),
    ));
    let gre_key = FlowKey::v4(c4(2), c4(110), 40010, 80, 6);
    let inner = tcp4(&V4::new(c4(2), c4(110)).ttl(63), 40010, 80, SYN, b"");
    let mut gre = vec![0x80, 0, 0x08, 0x00, 0, 0, 0, 0];
    gre.extend_from_slice(&inner);
    // etherparse sums in native order: `to_be` gives the field value, as its own headers do.
    let sum = etherparse::checksum::Sum16BitWords::new().add_slice(&gre).ones_complement().to_be();
    gre[4..6].copy_from_slice(&sum.to_be_bytes());
    let mut gre_outer = V4::new(b4(1), b4(14));
    gre_outer.ident = ((entropy(&gre_key) >> 32) & 0xffff) as u16;
    t.push(tx(
        "gre --tun-csum: the C bit and the checksum of the GRE header and payload",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(110)), 40010, 80, SYN, b"")),
        1,
        eth(backend_mac(14), LB1, EtherType::IPV4, &gre_outer.packet(IpNumber::GRE, &gre)),
    ));

    // --- fragments: the first fragment is scheduled; the next follows it; an orphan is dropped.
    let payload: Vec<u8> = (0u8..24).collect();
    let whole_in = udp4_segment(c4(2), c4(105), 6000, 5353, &payload);
    let whole_out = udp4_segment(c4(2), b4(11), 6000, 5353, &payload);
    let frag = |src: [u8; 4], dst: [u8; 4], ttl: u8, mf: bool, offset: u16| V4 {
        src,
        dst,
        ttl,
        ident: 0x4242,
        df: false,
        mf,
        offset,
    };
    t.push(tx(
        "nat fragments: the first fragment is DNATed and its UDP checksum covers the whole datagram",
        0,
        eth(
            LB0,
            client_mac(2),
            EtherType::IPV4,
            &frag(c4(2), c4(105), 64, true, 0).packet(IpNumber::UDP, &whole_in[..16]),
        ),
        1,
        eth(
            backend_mac(11),
            LB1,
            EtherType::IPV4,
            &frag(c4(2), b4(11), 63, true, 0).packet(IpNumber::UDP, &whole_out[..16]),
        ),
    ));
    t.push(tx(
        "nat fragments: the second fragment follows the first, addresses only",
        0,
        eth(
            LB0,
            client_mac(2),
            EtherType::IPV4,
            &frag(c4(2), c4(105), 64, false, 2).packet(IpNumber::UDP, &whole_in[16..]),
        ),
        1,
        eth(
            backend_mac(11),
            LB1,
            EtherType::IPV4,
            &frag(c4(2), b4(11), 63, false, 2).packet(IpNumber::UDP, &whole_out[16..]),
        ),
    ));
    let mut orphan = frag(c4(2), c4(105), 64, false, 2);
    orphan.ident = 0x4343;
    t.push(drop(
        "a fragment whose first fragment was never seen",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &orphan.packet(IpNumber::UDP, &whole_in[16..])),
        DropReason::FragmentWithoutFirst,
    ));

    // --- IPv6 nat and dr.
    let v6c = V6::new(c6(2), c6_vip(0x00));
    t.push(tx(
        "IPv6 nat: SYN to the VIP goes to the backend",
        0,
        eth(LB0, client_mac(2), EtherType::IPV6, &tcp6(&v6c, 41000, 80, SYN, b"")),
        1,
        eth(backend_mac(0x11), LB1, EtherType::IPV6, &tcp6(&V6::new(c6(2), b6(0x11)).hop(63), 41000, 8080, SYN, b"")),
    ));
    t.push(tx(
        "IPv6 nat: the reply is un-NATed",
        1,
        eth(LB1, backend_mac(0x11), EtherType::IPV6, &tcp6(&V6::new(b6(0x11), c6(2)), 8080, 41000, SYN_ACK, b"")),
        0,
        eth(client_mac(2), LB0, EtherType::IPV6, &tcp6(&V6::new(c6_vip(0x00), c6(2)).hop(63), 80, 41000, SYN_ACK, b"")),
    ));
    t.push(tx(
        "IPv6 dr: MAC rewrite to the backend",
        0,
        eth(LB0, client_mac(2), EtherType::IPV6, &tcp6(&V6::new(c6(2), c6_vip(0x02)), 41001, 80, SYN, b"")),
        1,
        eth(backend_mac(0x13), LB1, EtherType::IPV6, &tcp6(&V6::new(c6(2), c6_vip(0x02)).hop(63), 41001, 80, SYN, b"")),
    ));
    t.push(tx(
        "IPv6 fnat: SNAT to the IPv6 local address",
        0,
        eth(LB0, client_mac(2), EtherType::IPV6, &tcp6(&V6::new(c6(2), c6_vip(0x01)), 41002, 80, SYN, b"")),
        1,
        eth(backend_mac(0x12), LB1, EtherType::IPV6, &tcp6(&V6::new(b6(0xfe), b6(0x12)).hop(63), 1025, 8080, SYN, b"")),
    ));

    // --- Neighbour resolution: a reply to an unknown client becomes an ARP request.
    t.push(tx(
        "nat: SYN from a client whose MAC the LB has not learned",
        0,
        eth(LB0, client_mac(66), EtherType::IPV4, &tcp4(&V4::new(c4(66), vip_nat), 40005, 80, SYN, b"")),
        1,
        eth(backend_mac(11), LB1, EtherType::IPV4, &tcp4(&V4::new(c4(66), b4(11)).ttl(63), 40005, 8080, SYN, b"")),
    ));
    let synack66 =
        eth(LB1, backend_mac(11), EtherType::IPV4, &tcp4(&V4::new(b4(11), c4(66)), 8080, 40005, SYN_ACK, b""));
    t.push(tx(
        "the reply to an unresolved client is turned into an ARP request for it",
        1,
        synack66.clone(),
        0,
        eth([0xff; 6], LB0, EtherType::ARP, &arp(ArpOperation::REQUEST, LB0, c4(1), [0; 6], c4(66))),
    ));
    t.push(drop(
        "a second packet within the retry interval is dropped, no second request",
        1,
        synack66,
        DropReason::NeighbourUnresolved,
    ));

    // --- Every other drop reason.
    t.push(drop("frame shorter than an Ethernet header", 0, vec![0u8; 10], DropReason::L2Truncated));
    let mut vlan = eth(LB0, client_mac(2), EtherType::VLAN_TAGGED_FRAME, &[0, 100, 0x08, 0x00]);
    vlan.extend_from_slice(&tcp4(&V4::new(c4(2), vip_nat), 1, 80, SYN, b""));
    t.push(drop("VLAN-tagged frame", 0, vlan, DropReason::VlanTagged));
    t.push(drop(
        "unicast to another MAC",
        0,
        eth(client_mac(9), client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), vip_nat), 1, 80, SYN, b"")),
        DropReason::OtherHost,
    ));
    let mut ihl = tcp4(&V4::new(c4(2), vip_nat), 1, 80, SYN, b"");
    ihl[0] = 0x44;
    t.push(drop("IPv4 IHL below 5", 0, eth(LB0, client_mac(2), EtherType::IPV4, &ihl), DropReason::Ipv4Malformed));
    let mut short = tcp4(&V4::new(c4(2), vip_nat), 1, 80, SYN, b"");
    short.truncate(30);
    t.push(drop(
        "IPv4 total length beyond the frame",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &short),
        DropReason::Ipv4Truncated,
    ));
    let mut bad_ck = tcp4(&V4::new(c4(2), vip_nat), 1, 80, SYN, b"");
    bad_ck[10] ^= 0x01;
    t.push(drop(
        "IPv4 header checksum wrong",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &bad_ck),
        DropReason::Ipv4BadChecksum,
    ));
    let expiring = tcp4(&V4::new(c4(2), vip_nat).ttl(1), 40100, 80, SYN, b"");
    let mut router = V4::new(c4(1), c4(2));
    router.df = false;
    router.ident = 0;
    t.push(tx(
        "TTL 1 cannot be forwarded: ICMP time exceeded from the LB's address on that port",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &expiring),
        0,
        eth(
            client_mac(2),
            LB0,
            EtherType::IPV4,
            &icmp4(
                &router,
                Icmpv4Type::TimeExceeded(etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit),
                &expiring,
            ),
        ),
    ));
    let expiring6 = tcp6(&V6::new(c6(2), c6_vip(0x00)).hop(1), 40102, 80, SYN, b"");
    t.push(tx(
        "hop limit 1 cannot be forwarded: ICMPv6 time exceeded from the LB's address",
        0,
        eth(LB0, client_mac(2), EtherType::IPV6, &expiring6),
        0,
        eth(
            client_mac(2),
            LB0,
            EtherType::IPV6,
            &icmp6(
                &V6::new(c6(1), c6(2)),
                Icmpv6Type::TimeExceeded(etherparse::icmpv6::TimeExceededCode::HopLimitExceeded),
                &expiring6,
            ),
        ),
    ));
    let mut doff = tcp4(&V4::new(c4(2), vip_nat), 40101, 80, SYN, b"");
    doff[20 + 12] = 0x40;
    t.push(drop(
        "TCP data offset below 5",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &doff),
        DropReason::L4Malformed,
    ));
    let tcp_short = V4::new(c4(2), vip_nat).packet(IpNumber::TCP, &[0, 1, 0, 80, 0, 0]);
    t.push(drop(
        "TCP header cut short",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp_short),
        DropReason::L4Truncated,
    ));
    t.push(drop(
        "a VIP port with no service",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), vip_nat), 40102, 81, SYN, b"")),
        DropReason::NoService,
    ));
    t.push(drop(
        "an address that is neither VIP nor own",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(77)), 40103, 80, SYN, b"")),
        DropReason::UnknownDestination,
    ));
    t.push(drop(
        "a service whose only backend is drained",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(106)), 40104, 80, SYN, b"")),
        DropReason::NoBackend,
    ));
    t.push(verdict(
        "TCP to the LB's own address goes to the host stack",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), c4(1)), 40105, 22, SYN, b"")),
        Verdict::Host,
    ));
    t.push(drop(
        "IPv6 payload length beyond the frame",
        0,
        eth(LB0, client_mac(2), EtherType::IPV6, &tcp6(&v6c, 41003, 80, SYN, b"")[..50]),
        DropReason::Ipv6Truncated,
    ));
    let mut hbh_late = V6::new(c6(2), c6_vip(0x00)).packet(IpNumber(60), &[0, 0, 0, 0, 0, 0, 0, 0]);
    hbh_late[40] = 0; // destination options followed by hop-by-hop
    t.push(drop(
        "IPv6 hop-by-hop header after another extension header",
        0,
        eth(LB0, client_mac(2), EtherType::IPV6, &hbh_late),
        DropReason::Ipv6Malformed,
    ));
    t.push(drop(
        "ICMP timestamp to a VIP",
        0,
        eth(
            LB0,
            client_mac(2),
            EtherType::IPV4,
            &icmp4(
                &V4::new(c4(2), vip_nat),
                Icmpv4Type::TimestampRequest(etherparse::icmpv4::TimestampMessage {
                    id: 1,
                    seq: 1,
                    originate_timestamp: 0,
                    receive_timestamp: 0,
                    transmit_timestamp: 0,
                }),
                b"",
            ),
        ),
        DropReason::IcmpUnsupported,
    ));
    t.push(drop(
        "an ICMP message shorter than its header",
        0,
        eth(LB0, client_mac(2), EtherType::IPV4, &V4::new(c4(2), vip_nat).packet(IpNumber::ICMP, &[8, 0, 0])),
        DropReason::IcmpMalformed,
    ));
    t.push(drop(
        "arrived on a port the network does not know",
        7,
        eth(LB0, client_mac(2), EtherType::IPV4, &tcp4(&V4::new(c4(2), vip_nat), 1, 80, SYN, b"")),
        DropReason::UnknownPort,
    ));
    t
}

/// fd00::1xx, the IPv6 VIPs.
fn c6_vip(x: u8) -> [u8; 16] {
    let mut a = c6(0);
    a[14] = 1;
    a[15] = x;
    a
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| c.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fixture_table_through_process_burst() {
    let mut lab = Lab::new();
    let fixtures = table();
    for (i, f) in fixtures.iter().enumerate() {
        let (v, out) = lab.run(f.port, &f.input);
        assert_eq!(v, f.verdict, "fixture {i}: {}", f.what);
        if let Some(expected) = &f.output {
            assert!(out == *expected, "fixture {i}: {}\n got:\n{}\n want:\n{}", f.what, hex(&out), hex(expected));
        }
    }
    // Every drop reason the fixtures name was counted exactly as often as it appears.
    for r in DropReason::ALL {
        let expected = fixtures.iter().filter(|f| f.verdict == Verdict::Drop(r)).count() as u64
            + u64::from(r == DropReason::NeighbourUnresolved); // the packet turned into an ARP request
        assert_eq!(lab.worker.counters.drop_count(r), expected, "counter for {}", r.name());
    }
    let _ = c(0);
}

#[test]
fn fixtures_cover_every_reachable_drop_reason() {
    let named: Vec<DropReason> =
        table().iter().filter_map(|f| if let Verdict::Drop(r) = f.verdict { Some(r) } else { None }).collect();
    // Reasons that need a special worker or table state are covered by their own tests below.
    let elsewhere = [
        DropReason::NoRoute,
        DropReason::TooBigNoDf,
        DropReason::ConntrackFull,
        DropReason::ConntrackCollision,
        DropReason::LocalPortsExhausted,
        DropReason::NoRoom,
        DropReason::NoSourceAddress,
        // health.rs: a backend failed its checks in a service with expire_on_down.
        DropReason::BackendDown,
        // behaviour.rs: only once the time-exceeded rate is spent.
        DropReason::TtlExceeded,
    ];
    for r in DropReason::ALL {
        assert!(named.contains(&r) || elsewhere.contains(&r), "no fixture drops for {}", r.name());
    }
}

/// Writes every fixture input as a seed for the fuzz target (port byte, u16 length, frame).
/// Run with `LB_WRITE_CORPUS=1 cargo test --test fixtures write_fuzz_corpus` after changing
/// the table; the seeds are committed under `lb-core/fuzz/seeds/process_burst/`.
#[test]
fn write_fuzz_corpus() {
    if std::env::var_os("LB_WRITE_CORPUS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/process_burst");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, f) in table().iter().enumerate() {
        let mut seed = vec![f.port as u8];
        seed.extend_from_slice(&(f.input.len() as u16).to_be_bytes());
        seed.extend_from_slice(&f.input);
        std::fs::write(dir.join(format!("fixture-{i:02}")), seed).unwrap();
    }
}

//! The fast path (`pipeline/fast.rs`) against the full pipeline: two workers, one with the fast
//! path and one without, receive the same random bursts (new flows, established traffic both
//! ways, closes, resets, and packets broken in the ways a hostile segment breaks them), and
//! must give the same verdicts, write the same bytes, and end with the same counters,
//! connections, probes and sync events. The fast one prefetches its entries as lbd's workers
//! do (`process_burst_with`), through a prefetcher that only counts.

// Random indices and test lengths are small.
#![allow(clippy::cast_possible_truncation)]

mod common;

use common::*;
use etherparse::{IpNumber, TcpHeader};
use lb_core::pipeline::{VecFrame, Verdict};
use lb_core::{Frame, Prefetch, WorkerConfig, process_burst, process_burst_with};
use std::cell::Cell;

thread_local! {
    static PREFETCHED: Cell<u64> = const { Cell::new(0) };
}

/// A prefetcher that counts the lines it is asked for, so the pipeline takes its prefetching
/// stages without `unsafe`.
struct CountingPrefetch;

impl Prefetch for CountingPrefetch {
    const PREFETCHES: bool = true;
    fn line<T>(at: &T) {
        std::hint::black_box(at);
        PREFETCHED.with(|n| n.set(n.get() + 1));
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A service of `data/services.toml` that replies come back through (nat, fnat) or not.
#[derive(Clone, Copy)]
struct Svc {
    vip: [u8; 16],
    v6: bool,
    port: u16,
    udp: bool,
    replies: bool,
}

const fn v4(x: u8) -> [u8; 16] {
    [10, 0, 0, x, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

const SERVICES: [Svc; 13] = [
    Svc { vip: v4(100), v6: false, port: 80, udp: false, replies: true },
    Svc { vip: v4(101), v6: false, port: 80, udp: false, replies: true },
    Svc { vip: v4(102), v6: false, port: 80, udp: false, replies: false },
    Svc { vip: v4(103), v6: false, port: 80, udp: false, replies: false },
    Svc { vip: v4(104), v6: false, port: 53, udp: true, replies: false },
    Svc { vip: v4(105), v6: false, port: 5353, udp: true, replies: true },
    Svc { vip: v4(108), v6: false, port: 80, udp: false, replies: false },
    Svc { vip: v4(109), v6: false, port: 53, udp: true, replies: false },
    Svc { vip: v4(110), v6: false, port: 80, udp: false, replies: false },
    Svc { vip: c6(0x00), v6: true, port: 80, udp: false, replies: true },
    Svc { vip: c6(0x00), v6: true, port: 80, udp: false, replies: true },
    Svc { vip: c6(0x00), v6: true, port: 80, udp: false, replies: false },
    Svc { vip: c6(0x00), v6: true, port: 80, udp: false, replies: false },
];

/// The IPv6 VIPs (fd00::100, ::101, ::102, ::108) of the last four entries.
fn service(i: usize) -> Svc {
    let mut s = SERVICES[i];
    if s.v6 {
        s.vip[14] = 1;
        s.vip[15] = [0x00, 0x01, 0x02, 0x08][i - 9];
    }
    s
}

/// One client connection of the test, and what the LB showed of it.
struct Flow {
    svc: Svc,
    client: [u8; 16],
    sport: u16,
    seq: u32,
    ack: u32,
    /// The last forwarded client packet's (source, destination, ports): the backend answers
    /// to its source from its destination.
    seen: Option<([u8; 16], [u8; 16], u16, u16)>,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACKF: u8 = 0x10;
const URG: u8 = 0x20;
/// What a client or backend sends, mostly data and acknowledgements.
const FLAGS: [u8; 19] = [
    ACKF,
    ACKF,
    ACKF,
    ACKF,
    ACKF,
    ACKF,
    ACKF | PSH,
    ACKF | PSH,
    ACKF | PSH,
    ACKF | PSH,
    ACKF | PSH,
    ACKF | PSH,
    SYN,
    SYN,
    FIN | ACKF,
    RST,
    ACKF | URG,
    PSH,
    SYN | ACKF,
];

#[allow(clippy::too_many_arguments)]
fn segment(
    v6: bool,
    src: &[u8; 16],
    dst: &[u8; 16],
    ports: (u16, u16),
    udp: bool,
    flags: u8,
    nums: (u32, u32),
    payload: &[u8],
) -> Vec<u8> {
    let (s4, d4) = ([src[0], src[1], src[2], src[3]], [dst[0], dst[1], dst[2], dst[3]]);
    if udp {
        let seg = if v6 {
            let mut u = etherparse::UdpHeader {
                source_port: ports.0,
                destination_port: ports.1,
                length: (8 + payload.len()) as u16,
                checksum: 0,
            };
            u.checksum = u.calc_checksum_ipv6_raw(*src, *dst, payload).unwrap();
            [u.to_bytes().to_vec(), payload.to_vec()].concat()
        } else {
            udp4_segment(s4, d4, ports.0, ports.1, payload)
        };
        return if v6 {
            V6::new(*src, *dst).packet(IpNumber::UDP, &seg)
        } else {
            V4::new(s4, d4).packet(IpNumber::UDP, &seg)
        };
    }
    let mut t = TcpHeader::new(ports.0, ports.1, nums.0, 64240);
    (t.fin, t.syn, t.rst, t.psh, t.ack, t.urg) =
        (flags & FIN != 0, flags & SYN != 0, flags & RST != 0, flags & PSH != 0, flags & ACKF != 0, flags & URG != 0);
    t.acknowledgment_number = nums.1;
    t.checksum =
        if v6 { t.calc_checksum_ipv6_raw(*src, *dst, payload) } else { t.calc_checksum_ipv4_raw(s4, d4, payload) }
            .unwrap();
    let seg = [t.to_bytes().to_vec(), payload.to_vec()].concat();
    if v6 { V6::new(*src, *dst).packet(IpNumber::TCP, &seg) } else { V4::new(s4, d4).packet(IpNumber::TCP, &seg) }
}

/// Breaks a valid frame in one of the ways a hostile or broken sender would, or not at all.
fn mutate(r: &mut Rng, frame: &mut Vec<u8>, port: &mut u16, v6: bool) {
    let l4 = if v6 { 54 } else { 34 };
    let mut xor = |at: usize, bits: u8| {
        if let Some(b) = frame.get_mut(at) {
            *b ^= bits;
        }
    };
    match r.below(50) {
        0 => xor(if v6 { 21 } else { 24 }, 0x40), // IPv4 header checksum; IPv6 hop limit
        1 => xor(l4 + 7, 0x01),                   // TCP sequence / UDP checksum
        2 => xor(if v6 { 21 } else { 22 }, 0x3e), // TTL / hop limit of 64 becomes 126 or 1
        3 if !v6 => xor(20, 0x20),                // more fragments
        3 => xor(20, 0x06),                       // IPv6 next header 0 (TCP) or 0x11 ^ 6
        4 => xor(14, 0x03),                       // IHL of 6 / IPv6 traffic class
        5 => xor(5, 0x80),                        // another host's MAC
        6 if !v6 => xor(26, 0x75),                // 10.x becomes 127.x: martian source
        6 => xor(22, 0x02),                       // fd00:: becomes ff00::: multicast source
        7 => xor(l4 + 12, 0x30),                  // TCP data offset 5 -> 6 / UDP checksum
        8 => xor(l4 + 5, 0x01),                   // UDP length / TCP sequence
        9 => xor(12, 0x89),                       // ethertype 0x0800 -> 0x8100 (VLAN)
        10 => frame.extend_from_slice(&[0; 12]),  // Ethernet padding
        11 => {
            let cut = 1 + r.below(12) as usize;
            frame.truncate(frame.len().saturating_sub(cut));
        }
        12 => frame[..6].copy_from_slice(&[0xff; 6]),
        13 => *port ^= 1,
        _ => {}
    }
}

/// Makes an IPv4 header's checksum right again after `mutate`, so that a changed header field
/// (IHL, flags, TTL, source) meets the checks behind the checksum.
fn fix_ipv4_checksum(frame: &mut [u8]) {
    let hl = usize::from(frame.get(14).map_or(0, |b| b & 0x0f)) * 4;
    if frame.len() < 14 + hl.max(20) || frame[12..14] != [0x08, 0x00] {
        return;
    }
    frame[24..26].copy_from_slice(&[0, 0]);
    let mut sum: u32 = frame[14..14 + hl].chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[24..26].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// For an IPv4 first fragment (MF set, offset 0, no options), the datagram's next fragment: 8
/// bytes at offset 8, the last one.
fn later_fragment(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.len() < 34
        || frame[12..14] != [0x08, 0x00]
        || frame[14] != 0x45
        || frame[20] & 0x3f != 0x20
        || frame[21] != 0
    {
        return None;
    }
    let mut later = frame[..34].to_vec();
    later[16..18].copy_from_slice(&28u16.to_be_bytes());
    later[20..22].copy_from_slice(&1u16.to_be_bytes());
    later.extend_from_slice(&[0xab; 8]);
    fix_ipv4_checksum(&mut later);
    Some(later)
}

fn addr_at(frame: &[u8], at: usize, v6: bool) -> [u8; 16] {
    let mut a = [0u8; 16];
    let n = if v6 { 16 } else { 4 };
    if frame.len() >= at + n {
        a[..n].copy_from_slice(&frame[at..at + n]);
    }
    a
}

/// Records where a forwarded client packet went, for the backend's answers.
fn learn(flow: &mut Flow, out: &[u8]) {
    let (src_at, dst_at, l4) = if flow.svc.v6 { (22, 38, 54) } else { (26, 30, 34) };
    if out.len() < l4 + 4
        || out[12..14] != [if flow.svc.v6 { 0x86 } else { 0x08 }, if flow.svc.v6 { 0xdd } else { 0x00 }]
    {
        return;
    }
    let sport = u16::from_be_bytes([out[l4], out[l4 + 1]]);
    let dport = u16::from_be_bytes([out[l4 + 2], out[l4 + 3]]);
    flow.seen = Some((addr_at(out, src_at, flow.svc.v6), addr_at(out, dst_at, flow.svc.v6), sport, dport));
}

fn pair(sync: bool) -> (Lab, Lab) {
    let cfg = |fast_path| WorkerConfig {
        conn_capacity: 256,
        embryonic_limit: 128,
        max_services: 64,
        max_backends: 64,
        fast_path,
        ..Default::default()
    };
    let (mut fast, mut full) = (Lab::with_config(&cfg(true)), Lab::with_config(&cfg(false)));
    fast.worker.set_sync(sync);
    full.worker.set_sync(sync);
    (fast, full)
}

#[test]
fn fast_path_matches_the_full_pipeline() {
    let (mut forwarded_fast, mut forwarded) = (0, 0);
    let mut packets = 0;
    for seed in 1..=60u64 {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let (mut a, mut b) = pair(seed % 3 == 0);
        let mut flows: Vec<Flow> = (0..12)
            .map(|i| {
                let svc = service(r.below(SERVICES.len() as u64) as usize);
                let client = if svc.v6 { c6(2) } else { v4(2) };
                Flow {
                    svc,
                    client,
                    sport: 20000 + i as u16 * 7 + seed as u16,
                    seq: r.next() as u32,
                    ack: 0,
                    seen: None,
                }
            })
            .collect();
        for step in 0..120 {
            let n = 1 + r.below(8) as usize;
            let mut inputs = Vec::with_capacity(n);
            for _ in 0..n {
                let k = r.below(12) as usize;
                let f = &mut flows[k];
                let reply = f.svc.replies && f.seen.is_some() && r.chance(40);
                let flags = if f.svc.udp { 0 } else { FLAGS[r.below(FLAGS.len() as u64) as usize] };
                let payload = vec![0x5a; [0, 0, 16, 100, 1480][r.below(5) as usize]];
                f.seq = f.seq.wrapping_add(payload.len() as u32);
                f.ack = f.ack.wrapping_add([0, 0, 1, 1000, u32::MAX - 5][r.below(5) as usize]);
                let v6 = f.svc.v6;
                let (mut frame, mut port) = if reply {
                    let (src, dst, sport, dport) = f.seen.unwrap();
                    let ip = segment(v6, &dst, &src, (dport, sport), f.svc.udp, flags, (f.ack, f.seq), &payload);
                    let ethertype = if v6 { etherparse::EtherType::IPV6 } else { etherparse::EtherType::IPV4 };
                    (eth(LB1, backend_mac(0x11), ethertype, &ip), 1)
                } else {
                    let ip = segment(
                        v6,
                        &f.client,
                        &f.svc.vip,
                        (f.sport, f.svc.port),
                        f.svc.udp,
                        flags,
                        (f.seq, f.ack),
                        &payload,
                    );
                    let ethertype = if v6 { etherparse::EtherType::IPV6 } else { etherparse::EtherType::IPV4 };
                    (eth(LB0, client_mac(2), ethertype, &ip), 0)
                };
                mutate(&mut r, &mut frame, &mut port, v6);
                if r.chance(50) {
                    fix_ipv4_checksum(&mut frame);
                }
                // A first fragment is followed by a later one, which only the fragment table
                // (what the first one left there) can place.
                let later = later_fragment(&frame);
                inputs.push((frame, port, k, reply));
                if let Some(later) = later {
                    inputs.push((later, port, k, true));
                }
            }
            let mut fa: Vec<VecFrame> = inputs.iter().map(|(fr, p, _, _)| VecFrame::new(fr, *p)).collect();
            let mut fb = fa.clone();
            let (mut va, mut vb) = (vec![Verdict::Consumed; inputs.len()], vec![Verdict::Consumed; inputs.len()]);
            process_burst_with::<CountingPrefetch, _>(&mut a.worker, &a.table, &mut fa, &mut va, a.now_ms);
            process_burst(&mut b.worker, &b.table, &mut fb, &mut vb, b.now_ms);
            let ctx = format!("seed {seed} step {step}");
            assert_eq!(va, vb, "{ctx}: verdicts");
            for (i, (x, y)) in fa.iter().zip(&fb).enumerate() {
                assert_eq!(x.data(), y.data(), "{ctx}: frame {i} ({:?})", va[i]);
            }
            for (i, (_, _, k, reply)) in inputs.iter().enumerate() {
                packets += 1;
                if matches!(va[i], Verdict::Tx(_)) && !reply {
                    learn(&mut flows[*k], fa[i].data());
                }
            }
            let (mut ca, cb) = (a.worker.counters.clone(), b.worker.counters.clone());
            assert_eq!(cb.fast_path, 0, "{ctx}: the full pipeline alone");
            ca.fast_path = 0;
            assert_eq!(ca, cb, "{ctx}: counters");
            let conns = |l: &Lab| l.worker.conns.iter().collect::<Vec<_>>();
            assert_eq!(conns(&a), conns(&b), "{ctx}: connections");
            assert_eq!(a.worker.take_probes(), b.worker.take_probes(), "{ctx}: probes");
            let (ea, eb): (Vec<_>, Vec<_>) =
                (a.worker.take_sync_events().collect(), b.worker.take_sync_events().collect());
            assert_eq!(ea, eb, "{ctx}: sync events");
            let dt = [0, 0, 0, 1, 10, 1000, 30_000, 400_000, 2_000_000][r.below(9) as usize];
            a.now_ms += dt;
            b.now_ms += dt;
        }
        forwarded_fast += a.worker.counters.fast_path;
        forwarded += a.worker.counters.tx_packets;
    }
    // The comparison means something only if the fast path forwarded a good share of it, and
    // the prefetching stages ran.
    assert!(
        forwarded_fast * 4 > forwarded && forwarded_fast > 2000,
        "fast path forwarded {forwarded_fast} of {packets} ({forwarded} forwarded)"
    );
    let prefetched = PREFETCHED.with(Cell::get);
    assert!(prefetched > 2000, "{prefetched} lines prefetched");
}

//! perf.md #1: lb-core's pipeline cost per packet, per forwarding mode, for established flows
//! and for new flows (SYN), at 1k and 1M concurrent flows, with parse + MAC swap over the same
//! packets as the same-run reference. One iteration is one burst of 32; only the processing of
//! the burst is timed (refilling the frames from templates is not), for the reference too.
//! Run: `cargo bench -p lb-bench --bench pipeline`. The connection tables are allocated as lbd
//! allocates them, through its global allocator (huge pages for large blocks).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lb_bench::{
    BURST, LB_MAC1, MODES, SYNPROXY_VIP, Segment, client_of, client_packet, client_packet_sized, parse_and_swap,
    populate, refill, segment, shuffled, table, timed, worker, worker_with,
};
use lb_core::pipeline::{Frame, VecFrame, Verdict};
use lb_core::wire::{TcpPacket, checksum, tcp::flags};
use lb_core::{Worker, process_burst_with};
use lb_dpdk::prefetch::CpuPrefetch;
use std::time::Duration;

#[global_allocator]
static ALLOC: lb_dpdk::hugealloc::HugePageAlloc = lb_dpdk::hugealloc::HugePageAlloc;

const FLOW_COUNTS: [u32; 2] = [1_000, 1_000_000];
/// New flows one table takes in a sample at most (131,072 SYNs) before the next starts.
const FRESH_BURSTS: u64 = 4096;

fn bench_pipeline(c: &mut Criterion) {
    let table = table();
    for flows in FLOW_COUNTS {
        let order = shuffled(flows, 7);
        let mut g = c.benchmark_group(format!("pipeline/{flows}_flows"));
        g.throughput(Throughput::Elements(BURST as u64));
        g.sample_size(20).measurement_time(Duration::from_secs(3));
        let acks: Vec<Vec<u8>> = (0..flows).map(|i| client_packet(i, 100, flags::ACK)).collect();
        let mut at = 0;
        g.bench_function(BenchmarkId::new("reference_parse_macswap", flows), |b| {
            b.iter_custom(|iters| timed(iters, |fs| refill(fs, &acks, &order, &mut at), parse_and_swap))
        });
        for (mode, vip) in MODES {
            let mut w = worker(flows as usize);
            populate(&mut w, &table, flows, vip);
            let acks: Vec<Vec<u8>> = (0..flows).map(|i| client_packet(i, vip, flags::ACK)).collect();
            let mut at = 0;
            let mut vs = [Verdict::Consumed; BURST];
            g.bench_function(BenchmarkId::new(format!("{mode}_established"), flows), |b| {
                b.iter_custom(|iters| {
                    let spent = timed(
                        iters,
                        |fs| refill(fs, &acks, &order, &mut at),
                        |fs| process_burst_with::<CpuPrefetch, _>(&mut w, &table, fs, &mut vs, 2),
                    );
                    // Checked where it ran (a filtered run skips the closure).
                    assert!(
                        vs.iter().all(|v| matches!(v, Verdict::Tx(_))),
                        "{mode}: every established packet is forwarded: {vs:?}"
                    );
                    spent
                })
            });
        }
        g.finish();
    }
}

/// New flows: a table already holding `flows` connections receives SYNs of fresh flows.
fn bench_new_flows(c: &mut Criterion) {
    let table = table();
    for flows in FLOW_COUNTS {
        let mut g = c.benchmark_group(format!("new_flows/{flows}_flows"));
        g.throughput(Throughput::Elements(BURST as u64));
        g.sample_size(10).measurement_time(Duration::from_secs(3));
        let template = client_packet(0, 0, flags::SYN);
        let syn_for = |fs: &mut [VecFrame], vip: u8, next: &mut u32| {
            for f in fs.iter_mut() {
                f.reset(&template);
                let d = f.data_mut();
                // A fresh client address and port per flow; the IPv4 checksum is made valid.
                let src = lb_bench::client_of(*next + flows);
                d[26..30].copy_from_slice(&src);
                d[33] = vip;
                d[34..36].copy_from_slice(&(1024 + u16::try_from(*next % 60000).unwrap_or(0)).to_be_bytes());
                d[24..26].copy_from_slice(&[0, 0]);
                let ck = checksum::checksum(&d[14..34]);
                d[24..26].copy_from_slice(&ck.to_be_bytes());
                // And the TCP checksum: nat and fnat verify it.
                let dst = [d[30], d[31], d[32], d[33]];
                let len = u16::try_from(d.len() - 34).unwrap_or(0);
                let mut t = TcpPacket::new_unchecked(&mut d[34..]);
                t.set_checksum(0);
                t.fill_checksum(checksum::pseudo_v4(src, dst, 6, len));
                *next += 1;
            }
        };
        g.bench_function(BenchmarkId::new("reference_parse_macswap", flows), |b| {
            b.iter_custom(|iters| {
                let mut next = 0;
                timed(iters, |fs| syn_for(fs, 100, &mut next), parse_and_swap)
            })
        });
        for (mode, vip) in MODES {
            let mut vs = [Verdict::Consumed; BURST];
            g.bench_function(BenchmarkId::new(format!("{mode}_syn"), flows), |b| {
                b.iter_custom(|iters| {
                    // A faster machine runs more bursts per sample: a fresh table every
                    // FRESH_BURSTS keeps the flows a table holds the same on every machine.
                    let mut spent = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(FRESH_BURSTS);
                        let mut w = worker(flows as usize + usize::try_from(n).unwrap_or(0) * BURST);
                        populate(&mut w, &table, flows, vip);
                        let mut next = 0;
                        spent += timed(
                            n,
                            |fs| syn_for(fs, vip, &mut next),
                            |fs| process_burst_with::<CpuPrefetch, _>(&mut w, &table, fs, &mut vs, 2),
                        );
                        // Checked where it ran (a filtered run skips the closure).
                        assert!(
                            vs.iter().all(|v| matches!(v, Verdict::Tx(_))),
                            "{mode}: every SYN is forwarded: {vs:?}"
                        );
                        left -= n;
                    }
                    spent
                })
            });
        }
        g.finish();
    }
}

/// Completes the SYN proxy's two handshakes for every flow (SYN, ACK with the cookie, the
/// backend's SYN-ACK), so the flows are established and translated.
fn populate_synproxy(w: &mut Worker, t: &lb_core::Table, flows: u32) {
    let mut f = [VecFrame::new(&[0u8; 64], 0)];
    let mut v = [Verdict::Consumed];
    let mut run = |f: &mut [VecFrame; 1], bytes: &[u8], port: u16| {
        f[0] = VecFrame::new(bytes, port);
        process_burst_with::<CpuPrefetch, _>(w, t, f, &mut v, 1);
        assert!(matches!(v[0], Verdict::Tx(_)), "synproxy handshake: {v:?}");
        f[0].data().to_vec()
    };
    for i in 0..flows {
        let synack = run(&mut f, &client_packet(i, SYNPROXY_VIP, flags::SYN), 0);
        let cookie = u32::from_be_bytes([synack[38], synack[39], synack[40], synack[41]]);
        let mut s = Segment {
            src: client_of(i),
            dst: [192, 168, 0, SYNPROXY_VIP],
            ports: (1024 + u16::try_from(i % 60000).unwrap_or(0), 80),
            seq: i.wrapping_add(1),
            ack: cookie.wrapping_add(1),
            flags: flags::ACK,
        };
        let syn = run(&mut f, &segment(lb_bench::LB_MAC, &s, 64), 0);
        // The backend answers from the address and port the SYN went to.
        let backend = [syn[30], syn[31], syn[32], syn[33]];
        s = Segment {
            src: backend,
            dst: s.src,
            ports: (80, s.ports.0),
            seq: 7,
            ack: i.wrapping_add(1),
            flags: flags::SYN | flags::ACK,
        };
        run(&mut f, &segment(LB_MAC1, &s, 64), 1);
    }
}

/// What the hostile-network guards cost per established packet: TCP checksum verification in
/// nat and fnat (on, the default, against off) at 64 and 1500 bytes, and the SYN proxy's
/// sequence translation (nat through the proxy against plain nat).
fn bench_guards(c: &mut Criterion) {
    let table = table();
    for flows in FLOW_COUNTS {
        let order = shuffled(flows, 7);
        let mut g = c.benchmark_group(format!("guards/{flows}_flows"));
        g.throughput(Throughput::Elements(BURST as u64));
        g.sample_size(20).measurement_time(Duration::from_secs(3));
        // Frame sizes on the wire: 64 and 1518 bytes (the FCS is not in the buffer).
        let sizes: &[usize] = if flows <= 1_000 { &[64, 1518] } else { &[64] };
        for &size in sizes {
            let acks: Vec<Vec<u8>> = (0..flows).map(|i| client_packet_sized(i, 100, flags::ACK, size - 4)).collect();
            let mut at = 0;
            g.bench_function(BenchmarkId::new(format!("reference_parse_macswap_{size}B"), flows), |b| {
                b.iter_custom(|iters| timed(iters, |fs| refill(fs, &acks, &order, &mut at), parse_and_swap))
            });
            for (mode, vip) in [("nat", 100u8), ("fnat", 101)] {
                for verify in [true, false] {
                    let mut w = worker_with(flows as usize, verify);
                    populate(&mut w, &table, flows, vip);
                    let acks: Vec<Vec<u8>> =
                        (0..flows).map(|i| client_packet_sized(i, vip, flags::ACK, size - 4)).collect();
                    let mut at = 0;
                    let mut vs = [Verdict::Consumed; BURST];
                    let name = format!("{mode}_{size}B_{}", if verify { "verify" } else { "no_verify" });
                    g.bench_function(BenchmarkId::new(name, flows), |b| {
                        b.iter_custom(|iters| {
                            let spent = timed(
                                iters,
                                |fs| refill(fs, &acks, &order, &mut at),
                                |fs| process_burst_with::<CpuPrefetch, _>(&mut w, &table, fs, &mut vs, 2),
                            );
                            assert!(vs.iter().all(|v| matches!(v, Verdict::Tx(_))), "{mode}: {vs:?}");
                            spent
                        })
                    });
                }
            }
        }
        let mut w = worker(flows as usize);
        populate_synproxy(&mut w, &table, flows);
        let acks: Vec<Vec<u8>> = (0..flows).map(|i| client_packet(i, SYNPROXY_VIP, flags::ACK)).collect();
        let mut at = 0;
        let mut vs = [Verdict::Consumed; BURST];
        g.bench_function(BenchmarkId::new("nat_synproxy_64B_verify", flows), |b| {
            b.iter_custom(|iters| {
                let spent = timed(
                    iters,
                    |fs| refill(fs, &acks, &order, &mut at),
                    |fs| process_burst_with::<CpuPrefetch, _>(&mut w, &table, fs, &mut vs, 2),
                );
                assert!(vs.iter().all(|v| matches!(v, Verdict::Tx(1))), "synproxy: {vs:?}");
                spent
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench_pipeline, bench_new_flows, bench_guards);
criterion_main!(benches);

//! perf.md #1: lb-core's pipeline cost per packet, per forwarding mode, for established flows
//! and for new flows (SYN), at 1k and 1M concurrent flows, with parse + MAC swap over the same
//! packets as the same-run reference. One iteration is one burst of 32; only the processing of
//! the burst is timed (refilling the frames from templates is not), for the reference too.
//! Run: `cargo bench -p lb-bench --bench pipeline`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lb_bench::{MODES, client_packet, refill, shuffled, table, worker};
use lb_core::pipeline::{Frame, VecFrame, Verdict};
use lb_core::wire::{EthernetFrame, Ipv4Packet, TcpPacket, checksum, tcp::flags};
use lb_core::{Worker, process_burst};
use std::hint::black_box;
use std::time::{Duration, Instant};

const BURST: usize = 32;
const FLOW_COUNTS: [u32; 2] = [1_000, 1_000_000];

fn frames() -> Vec<VecFrame> {
    (0..BURST).map(|_| VecFrame::new(&[0u8; 64], 0)).collect()
}

/// Times `work` over `iters` bursts that `fill` prepared untimed.
fn timed(iters: u64, mut fill: impl FnMut(&mut [VecFrame]), mut work: impl FnMut(&mut [VecFrame])) -> Duration {
    let mut fs = frames();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        fill(&mut fs);
        let t = Instant::now();
        work(&mut fs);
        total += t.elapsed();
    }
    total
}

/// The reference: check the Ethernet, IPv4 and TCP headers and swap the MAC addresses.
fn parse_and_swap(fs: &mut [VecFrame]) {
    for f in fs.iter_mut() {
        let d = f.data_mut();
        let ok = EthernetFrame::new_checked(&d[..]).is_ok()
            && Ipv4Packet::new_checked(&d[14..])
                .is_ok_and(|ip| ip.verify_checksum() && TcpPacket::new_checked(ip.payload()).is_ok());
        if ok {
            let mut e = EthernetFrame::new_unchecked(&mut d[..]);
            let (s, t) = (e.src(), e.dst());
            e.set_src(t);
            e.set_dst(s);
        }
        black_box(ok);
    }
}

/// Sends one SYN per flow through the worker so the flows exist before timing.
fn populate(w: &mut Worker, t: &lb_core::Table, flows: u32, vip: u8) {
    let mut fs = frames();
    let mut vs = [Verdict::Consumed; BURST];
    for start in (0..flows).step_by(BURST) {
        for (k, f) in fs.iter_mut().enumerate() {
            f.reset(&client_packet((start + u32::try_from(k).unwrap_or(0)) % flows, vip, flags::SYN));
        }
        process_burst(w, t, &mut fs, &mut vs, 1);
    }
}

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
                        |fs| process_burst(&mut w, &table, fs, &mut vs, 2),
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
                    let fresh = usize::try_from(iters).unwrap_or(usize::MAX / BURST) * BURST;
                    let mut w = worker(flows as usize + fresh);
                    populate(&mut w, &table, flows, vip);
                    let mut next = 0;
                    timed(iters, |fs| syn_for(fs, vip, &mut next), |fs| process_burst(&mut w, &table, fs, &mut vs, 2))
                })
            });
            assert!(vs.iter().all(|v| matches!(v, Verdict::Tx(_))), "{mode}: every SYN is forwarded: {vs:?}");
        }
        g.finish();
    }
}

criterion_group!(benches, bench_pipeline, bench_new_flows);
criterion_main!(benches);

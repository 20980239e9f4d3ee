//! The pipeline bench's ratio (established packets of one mode against the parse + MAC swap
//! reference), measured with the two interleaved: every round times a stretch of reference
//! bursts, then a stretch of the mode's bursts, over the same flows. On a machine whose speed
//! drifts over seconds (a shared VM), criterion's reference, timed once before the modes, can
//! be 20% off by the time a mode runs. Here both halves of a ratio are a few milliseconds apart,
//! and the median over rounds is what to compare between builds.
//!
//!   cargo run --release -p lb-bench --example ratio -- fnat 1000000 200
//!
//! Arguments: mode (nat, fnat, dr, tun, gue, or fnat6: full-NAT over IPv6), flows, rounds.
//! The reference parses IPv4 and rejects fnat6's frames at once, so for fnat6 the ratio means
//! nothing: compare its Mpps between builds run alternately.

use lb_bench::{BURST, Established, established, forward_burst, parse_and_swap, refill, timed};
use lb_core::pipeline::Verdict;

// The connection tables in huge pages, as lbd and the pipeline bench allocate them.
#[global_allocator]
static ALLOC: lb_dpdk::hugealloc::HugePageAlloc = lb_dpdk::hugealloc::HugePageAlloc;

/// Bursts per half-round: a few milliseconds of the mode, well past the timer's resolution.
const STRETCH: u64 = 1024;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("fnat", String::as_str);
    let flows: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let rounds: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200).max(1);
    let Some(Established { table: t, worker: mut w, acks, order }) = established(mode, flows) else {
        eprintln!("ratio: unknown mode {mode} (nat, fnat, dr, tun, gue, fnat6)");
        std::process::exit(2);
    };
    let mut vs = [Verdict::Consumed; BURST];
    let (mut at_ref, mut at_mode) = (0, 0);
    let packets = (STRETCH * BURST as u64) as f64;
    let (mut ratios, mut ref_mpps, mut mode_mpps) = (Vec::new(), Vec::new(), Vec::new());
    let mut forwarded = true;
    for _ in 0..rounds {
        let r = timed(STRETCH, |fs| refill(fs, &acks, &order, &mut at_ref), parse_and_swap);
        let m = timed(
            STRETCH,
            |fs| refill(fs, &acks, &order, &mut at_mode),
            |fs| {
                forward_burst(&mut w, &t, fs, &mut vs, 2);
                forwarded &= vs.iter().all(|v| matches!(v, Verdict::Tx(_)));
            },
        );
        ratios.push(r.as_secs_f64() / m.as_secs_f64());
        ref_mpps.push(packets / r.as_secs_f64() / 1e6);
        mode_mpps.push(packets / m.as_secs_f64() / 1e6);
    }
    if !forwarded {
        eprintln!("ratio: {mode}: not every established packet was forwarded");
        std::process::exit(1);
    }
    let (lo, hi) = ratios.iter().fold((f64::MAX, 0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    println!(
        "{mode}, {flows} flows, {rounds} rounds: ratio median {:.4} (min {lo:.4}, max {hi:.4}); {:.2} Mpps against a {:.1} Mpps reference (medians)",
        median(&mut ratios),
        median(&mut mode_mpps),
        median(&mut ref_mpps),
    );
}

//! A fixed workload for `valgrind --tool=callgrind`, which counts instructions repeatably where
//! timings move: established full-NAT (or another mode) packets of N flows through lb-core's
//! pipeline, bursts of 32. Instructions per packet by function show where the work goes.
//!
//!   cargo build --release -p lb-bench --example callgrind
//!   valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/examples/callgrind fnat 1000 100000
//!   callgrind_annotate cg.out | head -40
//!
//! Instructions per packet: two runs with `--toggle-collect='lb_bench::forward_burst'`, 120,000
//! and 20,000 packets, their difference over 100,000 (the setup's bursts cancel out).
//!
//! Arguments: mode (nat, fnat, dr, tun, gue, or fnat6: full-NAT over IPv6), flows, packets.

use lb_bench::{BURST, Established, established, forward_burst, frames, refill};
use lb_core::pipeline::Verdict;

// The connection tables in huge pages, as lbd and the pipeline bench allocate them.
#[global_allocator]
static ALLOC: lb_dpdk::hugealloc::HugePageAlloc = lb_dpdk::hugealloc::HugePageAlloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("fnat", String::as_str);
    let flows: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let packets: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let Some(Established { table: t, worker: mut w, acks, order }) = established(mode, flows) else {
        eprintln!("callgrind: unknown mode {mode} (nat, fnat, dr, tun, gue, fnat6)");
        std::process::exit(2);
    };
    let mut fs = frames();
    let mut vs = [Verdict::Consumed; BURST];
    let mut at = 0;
    let mut forwarded = 0u64;
    let mut spent = std::time::Duration::ZERO;
    for _ in 0..packets / BURST as u64 {
        refill(&mut fs, &acks, &order, &mut at);
        let start = std::time::Instant::now();
        forward_burst(&mut w, &t, &mut fs, &mut vs, 2);
        spent += start.elapsed();
        forwarded += vs.iter().filter(|v| matches!(v, Verdict::Tx(_))).count() as u64;
    }
    let sent = packets / BURST as u64 * BURST as u64;
    // The time is a rough guide only (no reference beside it): the benches give ratios.
    let ns = spent.as_nanos() as f64 / sent.max(1) as f64;
    println!("{mode}: {forwarded} of {sent} packets forwarded, {flows} flows, {ns:.1} ns/packet in process_burst");
}

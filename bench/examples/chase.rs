//! The machine's floor for random memory reads, which bounds the pipeline at 1M flows: a chase
//! through a random cycle of cache lines over 256 MiB, one load at a time (latency) and 16
//! chases at once (what overlapping misses can reach), on small pages and on huge pages
//! (lb-dpdk's allocator, as lbd's tables). A packet at 1M flows reads three such lines. On huge
//! pages it also times steps that read two lines, apart or in one 128-byte block: what a
//! connection entry's second line costs.
//!
//!   cargo run --release -p lb-bench --example chase

use lb_dpdk::hugealloc::{HugePageAlloc, set_huge_pages};
use std::time::Instant;

#[global_allocator]
static ALLOC: HugePageAlloc = HugePageAlloc;

const BYTES: usize = 256 << 20;
/// Words per cache line.
const LINE: usize = 8;
const STEPS: usize = 4_000_000;
const LANES: usize = 16;

/// Every block of `block` lines holds, in its first word, the word index of the next block of
/// one random cycle through all of them (the rest is zeros).
fn cycle(huge: bool, block: usize) -> Vec<usize> {
    set_huge_pages(huge);
    let blocks = BYTES / 64 / block;
    let mut order: Vec<usize> = (0..blocks).collect();
    // A fixed-seed Fisher-Yates shuffle (xorshift): the same cycle on both page sizes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..blocks).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap_or(0));
    }
    let mut words = vec![0usize; BYTES / 8];
    for (i, &b) in order.iter().enumerate() {
        words[b * block * LINE] = order[(i + 1) % blocks] * block * LINE;
    }
    set_huge_pages(true);
    words
}

/// Nanoseconds per step of `LANES` chases at once, where a step reads the next index from a
/// line and, when `second` gives one, a zero from another line the next index depends on too.
fn parallel(words: &[usize], second: Option<fn(usize) -> usize>) -> f64 {
    let mut lanes: [usize; LANES] = std::array::from_fn(|i| words[i * 4096 * LINE]);
    let start = Instant::now();
    for _ in 0..STEPS / LANES {
        for l in &mut lanes {
            *l = match second {
                Some(other) => words[*l] ^ words[other(*l)],
                None => words[*l],
            };
        }
    }
    std::hint::black_box(lanes);
    start.elapsed().as_nanos() as f64 / STEPS as f64
}

fn main() {
    for huge in [false, true, false, true] {
        let words = cycle(huge, 1);
        let mut at = 0usize;
        let start = Instant::now();
        for _ in 0..STEPS {
            at = words[at];
        }
        let dependent = start.elapsed().as_nanos() as f64 / STEPS as f64;
        std::hint::black_box(at);
        let one = parallel(&words, None);
        let pages = if huge { "huge pages" } else { "4 KiB pages" };
        println!("{pages}: {dependent:.1} ns per dependent load, {one:.1} ns per load with {LANES} chases at once");
        if huge {
            // Two lines per step: a random other line (a zero in the middle of a block of the
            // one-line cycle), or the second line of the same 128-byte block.
            let apart = parallel(&words, Some(|at| (at.wrapping_mul(0x9e37_79b9) & (BYTES / 8 - 1)) | 1));
            let pairs = cycle(true, 2);
            let adjacent = parallel(&pairs, Some(|at| at + LINE));
            println!(
                "  two lines per step, {LANES} chases at once: {apart:.1} ns apart, {adjacent:.1} ns in one 128-byte block"
            );
        }
    }
}

//! The machine's floor for random memory reads, which bounds the pipeline at 1M flows: a chase
//! through a random cycle of cache lines over 256 MiB, one load at a time (latency) and 16
//! chases at once (what overlapping misses can reach), on small pages and on huge pages
//! (lb-dpdk's allocator, as lbd's tables). A packet at 1M flows reads three such lines.
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

/// Every line holds the word index of the next line of one random cycle through all of them.
fn cycle(huge: bool) -> Vec<usize> {
    set_huge_pages(huge);
    let lines = BYTES / 64;
    let mut order: Vec<usize> = (0..lines).collect();
    // A fixed-seed Fisher-Yates shuffle (xorshift): the same cycle on both page sizes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..lines).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, usize::try_from(x % (i as u64 + 1)).unwrap_or(0));
    }
    let mut words = vec![0usize; BYTES / 8];
    for (i, &line) in order.iter().enumerate() {
        words[line * LINE] = order[(i + 1) % lines] * LINE;
    }
    set_huge_pages(true);
    words
}

fn main() {
    for huge in [false, true, false, true] {
        let words = cycle(huge);
        let mut at = 0usize;
        let start = Instant::now();
        for _ in 0..STEPS {
            at = words[at];
        }
        let dependent = start.elapsed().as_nanos() as f64 / STEPS as f64;
        let mut lanes: [usize; LANES] = std::array::from_fn(|i| words[i * 4096 * LINE]);
        let start = Instant::now();
        for _ in 0..STEPS / LANES {
            for l in &mut lanes {
                *l = words[*l];
            }
        }
        let parallel = start.elapsed().as_nanos() as f64 / STEPS as f64;
        std::hint::black_box((at, lanes));
        let pages = if huge { "huge pages" } else { "4 KiB pages" };
        println!(
            "{pages}: {dependent:.1} ns per dependent load, {parallel:.1} ns per load with {LANES} chases at once"
        );
    }
}

//! The Maglev build (1000 backends, M = 65537) against the fill+scan reference of
//! `benches/maglev.rs`, alternating, best of 200 each: steadier than criterion's means on a
//! noisy VM, for A/B of two builds of the example.
//!
//!   cargo build --release -p lb-bench --example maglev_time && target/release/examples/maglev_time
use lb_core::sched::mh::MaglevTable;
use lb_core::service::backend_identity;
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let ids: Vec<u64> =
        (0..1000u32).map(|i| backend_identity(lb_core::flow::widen(i.to_be_bytes()), false, 80)).collect();
    let weights = vec![1u32; ids.len()];
    let m = 65_537u32;
    let (mut best_ref, mut best_build) = (f64::MAX, f64::MAX);
    for _ in 0..200 {
        let t = Instant::now();
        for _ in 0..20 {
            let v = vec![u16::MAX; m as usize];
            black_box(v.iter().filter(|x| **x == u16::MAX).count());
        }
        best_ref = best_ref.min(t.elapsed().as_secs_f64() / 20.0);
        let t = Instant::now();
        black_box(MaglevTable::build(black_box(&ids), &weights, m, 0).unwrap());
        best_build = best_build.min(t.elapsed().as_secs_f64());
    }
    println!("ref {:.1} us, build {:.1} us, ratio {:.1}", best_ref * 1e6, best_build * 1e6, best_build / best_ref);
}

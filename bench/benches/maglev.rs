//! perf.md #4 (control plane): building a Maglev table for 1000 backends at M = 65537 and
//! M = 655373 (the paper reports 1.8 ms and 22.9 ms, §5.3), and the same-run reference of
//! filling and scanning an M-slot array once (the floor any build must pay).
//! Run: `cargo bench -p lb-bench --bench maglev`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use lb_core::sched::mh::MaglevTable;
use lb_core::service::backend_identity;
use std::hint::black_box;

fn bench_build(c: &mut Criterion) {
    let ids: Vec<u64> =
        (0..1000u32).map(|i| backend_identity(lb_core::flow::widen(i.to_be_bytes()), false, 80)).collect();
    let weights = vec![1u32; ids.len()];
    let mut g = c.benchmark_group("maglev_build_1000_backends");
    g.sample_size(20);
    for m in [65_537u32, 655_373] {
        g.bench_function(BenchmarkId::new("reference_fill_scan", m), |b| {
            b.iter(|| {
                let v = vec![u16::MAX; m as usize];
                black_box(v.iter().filter(|x| **x == u16::MAX).count())
            })
        });
        g.bench_function(BenchmarkId::new("build", m), |b| {
            b.iter(|| MaglevTable::build(black_box(&ids), &weights, m, 0).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench_build);
criterion_main!(benches);

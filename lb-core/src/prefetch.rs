//! Starting the load of a cache line without waiting for it.
//!
//! At a million flows a packet's connection entry is a cache miss. A plain load of it stalls
//! the core as soon as the reorder window fills, a few dozen instructions later, so work on one
//! packet cannot run while the next packets' entries arrive. A prefetch instruction retires at
//! once: `process_burst_with` issues the entries a few packets ahead of the one it forwards, as
//! DPDK's l3fwd and rte_hash bulk lookups do with `rte_prefetch0`.
//!
//! The instruction is a CPU intrinsic that Rust only calls inside `unsafe`, and lb-core has
//! none: the runtime that owns such code provides it (lb-dpdk's `CpuPrefetch`). With
//! [`NoPrefetch`] the pipeline warms a group with plain loads before forwarding any of it.

/// A way to start loading a cache line.
pub trait Prefetch {
    /// Whether [`Prefetch::line`] issues a prefetch; when false the pipeline loads instead.
    const PREFETCHES: bool;
    /// Starts loading the cache line that holds `at`. Never waits, changes nothing.
    fn line<T>(at: &T);
}

/// No prefetch instruction: `process_burst`'s staged loads warm the group instead.
pub struct NoPrefetch;

impl Prefetch for NoPrefetch {
    const PREFETCHES: bool = false;
    #[inline(always)]
    fn line<T>(_: &T) {}
}

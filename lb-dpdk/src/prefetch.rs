//! The CPU's prefetch instruction for lb-core's pipeline (`lb_core::prefetch`), what DPDK's
//! `rte_prefetch0` is in C. On x86-64 it is `PREFETCHT0`; elsewhere there is no stable
//! intrinsic, so it does nothing and says so, and the pipeline keeps its plain loads.

use lb_core::Prefetch;

/// Prefetches into every cache level, as `rte_prefetch0`.
pub struct CpuPrefetch;

impl Prefetch for CpuPrefetch {
    const PREFETCHES: bool = cfg!(target_arch = "x86_64");

    #[inline(always)]
    fn line<T>(at: &T) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch reads no value and writes nothing, and it never faults, whatever
        // the address; `at` is a live reference anyway. SSE, which has the instruction, is part
        // of every x86-64 CPU.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(at).cast::<i8>());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = at;
    }
}

#[cfg(test)]
mod tests {
    use super::CpuPrefetch;
    use lb_core::Prefetch;

    #[test]
    fn prefetching_changes_nothing_it_touches() {
        let lines = vec![[7u8; 64]; 4];
        for l in &lines {
            CpuPrefetch::line(l);
        }
        assert!(lines.iter().all(|l| *l == [7; 64]));
        assert_eq!(CpuPrefetch::PREFETCHES, cfg!(target_arch = "x86_64"));
    }
}

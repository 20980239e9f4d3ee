//! The global allocator of lbd and of the pipeline bench: blocks of 2 MiB or more are anonymous
//! mappings of their own, advised for transparent huge pages before anything touches them; all
//! smaller blocks are the system allocator's.
//!
//! The blocks that large are the connection tables (entries, index, deadlines). At a million
//! connections they span hundreds of megabytes that every packet reads at random; on 4 KiB pages
//! nearly every such read also misses the TLB and walks the page table. DPDK keeps its own
//! memory in huge pages for the same reason. With THP in `madvise` mode (Debian's default) the
//! advice is what makes the kernel back these tables with 2 MiB pages; with THP `never` it is
//! refused, and the blocks are plain mappings. `set_huge_pages(false)` (lbd's
//! `conntrack.huge_pages = false`) leaves the advice out.
//!
//! Large blocks are mapped here rather than advised after `malloc`: glibc serves blocks below
//! its (rising) mmap threshold from its heap, whose pages are already touched, and advice does
//! not change pages already there. glibc's `glibc.malloc.hugetlb=1` tunable does the same for
//! the blocks it maps.

use crate::sys;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks this large are mapped, in whole units of this size (a huge page).
const HUGE: usize = 2 << 20;
/// A mapping starts on a page: blocks that need more alignment stay with `System`.
const PAGE: usize = 4096;

/// `#[global_allocator] static ALLOC: HugePageAlloc = HugePageAlloc;`
pub struct HugePageAlloc;

/// Whether blocks mapped from now on are advised for huge pages.
static HUGE_PAGES: AtomicBool = AtomicBool::new(true);

/// Turns the huge-page advice of later blocks on or off (lbd's `conntrack.huge_pages`). Off,
/// large blocks are still mapped here, on small pages: where the kernel or hypervisor is slow
/// to fault huge pages in, a start or restart with big tables takes seconds (bench/RESULTS.md).
pub fn set_huge_pages(on: bool) {
    HUGE_PAGES.store(on, Ordering::Relaxed);
}

fn is_mapped(size: usize, align: usize) -> bool {
    size >= HUGE && align <= PAGE
}

/// Length of a block's mapping. `Layout` keeps sizes below `isize::MAX`, so this cannot
/// overflow.
fn mapped_len(size: usize) -> usize {
    size.div_ceil(HUGE) * HUGE
}

// SAFETY: a block is mapped exactly when `is_mapped` holds for its layout, which is the same
// at its allocation, reallocation and release, so each block returns to the allocator that
// made it: `System` with the caller's arguments unchanged, or an unmap of the length it was
// mapped with. Mapped blocks are page aligned, which `is_mapped` requires of the layout, and
// zero-filled by the kernel.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_mapped(layout.size(), layout.align()) {
            let huge = i32::from(HUGE_PAGES.load(Ordering::Relaxed));
            // SAFETY: the shim maps fresh memory of the given length or returns NULL.
            return unsafe { sys::lb_map_huge(mapped_len(layout.size()), huge) }.cast();
        }
        // SAFETY: the caller's guarantees for `layout` are `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_mapped(layout.size(), layout.align()) {
            // SAFETY: as in `alloc`; a fresh anonymous mapping reads as zeros.
            return unsafe { self.alloc(layout) };
        }
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if is_mapped(layout.size(), layout.align()) {
            // SAFETY: ptr is a mapping `alloc` or `realloc` made for this layout's size.
            unsafe { sys::lb_unmap(ptr.cast(), mapped_len(layout.size())) };
        } else {
            // SAFETY: ptr came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (is_mapped(layout.size(), align), is_mapped(new_size, align)) {
            // SAFETY: as in `dealloc`; the caller's guarantees for `new_size` are `System`'s.
            (false, false) => unsafe { System.realloc(ptr, layout, new_size) },
            (true, true) => {
                let (old_len, new_len) = (mapped_len(layout.size()), mapped_len(new_size));
                if old_len == new_len {
                    return ptr;
                }
                // SAFETY: ptr is a mapping of old_len bytes (as in `dealloc`); the shim returns
                // the moved or resized mapping, or NULL with the old one left as it was.
                unsafe { sys::lb_remap(ptr.cast(), old_len, new_len) }.cast()
            }
            _ => {
                // SAFETY: the caller guarantees that new_size with this alignment is a valid layout.
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: as in `alloc`.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks hold at least the smaller size, and are distinct
                    // allocations; the old block is released with the layout it had.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The allocator's memory behaves as memory: small and large blocks keep what was written
    /// through growth and shrinking, across the threshold both ways, and zeroed blocks read zero.
    #[test]
    fn blocks_keep_their_contents() {
        let a = HugePageAlloc;
        for size in [64, HUGE / 2 + 1, HUGE - 1, HUGE, 3 * HUGE + 123] {
            let layout = Layout::from_size_align(size, 64).expect("layout");
            let grown = Layout::from_size_align(size * 2, 64).expect("layout");
            let shrunk = size / 3;
            // SAFETY: non-zero layouts; each block is read and written within its size and
            // released with the layout it was last (re)allocated with.
            unsafe {
                let z = a.alloc_zeroed(layout);
                assert!(!z.is_null());
                assert!(std::slice::from_raw_parts(z, size).iter().all(|&b| b == 0));
                a.dealloc(z, layout);
                let p = a.alloc(layout);
                assert!(!p.is_null());
                for i in 0..size {
                    p.add(i).write(pattern(i));
                }
                let q = a.realloc(p, layout, grown.size());
                assert!(!q.is_null());
                assert!(std::slice::from_raw_parts(q, size).iter().enumerate().all(|(i, &b)| b == pattern(i)));
                let r = a.realloc(q, grown, shrunk);
                assert!(!r.is_null());
                assert!(std::slice::from_raw_parts(r, shrunk).iter().enumerate().all(|(i, &b)| b == pattern(i)));
                a.dealloc(r, Layout::from_size_align(shrunk, 64).expect("layout"));
            }
        }
    }

    /// The byte written at offset `i`: a period (251) that no power-of-two boundary repeats.
    fn pattern(i: usize) -> u8 {
        u8::try_from(i % 251).unwrap_or(0)
    }

    /// Where THP is not off, a large block is backed by huge pages once touched, and with the
    /// advice turned off it is not: the kernel's own accounting of the mapping says so. (One
    /// test for both: the switch is process-wide.)
    #[test]
    fn large_allocations_get_huge_pages_unless_turned_off() {
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if mode.is_empty() || mode.contains("[never]") || mode.contains("[always]") {
            eprintln!("transparent huge pages are not in madvise mode here: nothing to check");
            return;
        }
        let size = 64 << 20;
        let layout = Layout::from_size_align(size, 64).expect("layout");
        let mut huge_kb = [0; 2];
        for (on, kb) in [true, false].into_iter().zip(huge_kb.iter_mut()) {
            set_huge_pages(on);
            // SAFETY: a non-zero layout, written within its size and freed with it.
            unsafe {
                let ptr = HugePageAlloc.alloc(layout);
                assert!(!ptr.is_null());
                std::ptr::write_bytes(ptr, 1, size);
                *kb = huge_kb_in(ptr as usize, size);
                HugePageAlloc.dealloc(ptr, layout);
            }
        }
        set_huge_pages(true);
        assert!(huge_kb[0] >= 2048, "64 MiB allocated, {} kB of it in huge pages", huge_kb[0]);
        assert_eq!(huge_kb[1], 0, "huge pages turned off, yet {} kB in huge pages", huge_kb[1]);
    }

    /// AnonHugePages of the mappings overlapping [addr, addr + len), from /proc/self/smaps.
    fn huge_kb_in(addr: usize, len: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut overlaps = false;
        let mut total = 0;
        for line in smaps.lines() {
            let first = line.split_whitespace().next().unwrap_or("");
            let range = first
                .split_once('-')
                .and_then(|(lo, hi)| Some((usize::from_str_radix(lo, 16).ok()?, usize::from_str_radix(hi, 16).ok()?)));
            if let Some((lo, hi)) = range {
                overlaps = lo < addr + len && addr < hi;
            } else if let Some(kb) = line.strip_prefix("AnonHugePages:").filter(|_| overlaps) {
                total += kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0);
            }
        }
        total
    }
}

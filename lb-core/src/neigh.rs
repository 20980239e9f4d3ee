//! The neighbour table (IP to MAC and port), shared by all workers without locks.
//!
//! ARP and ND replies arrive on whichever queue RSS picks, but every worker needs the answer,
//! so the table is shared. Each slot is a sequence lock built from atomics: a writer claims the
//! slot by moving its sequence number from even to odd (a writer that loses the race simply
//! skips the update: learning is best effort and the next ARP refreshes it), a reader retries
//! while the number is odd or changed under it. Readers never wait on a lock; nothing allocates
//! after creation. Entries age out after `max_age_ms` unless static.

use crate::flow::hash_bytes;
use crate::wire::MacAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Slots probed per lookup or insert.
const PROBE: usize = 8;
const VALID: u64 = 1 << 63;
const STATIC: u64 = 1 << 62;
const V6: u64 = 1 << 61;

#[derive(Default)]
struct Slot {
    seq: AtomicU32,
    addr: [AtomicU32; 4],
    /// MAC in the low 48 bits, port in bits 48..56, flags above.
    meta: AtomicU64,
    updated_ms: AtomicU64,
}

/// A resolved neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: MacAddr,
    pub port: u16,
    pub is_static: bool,
    pub updated_ms: u64,
}

/// The shared neighbour table.
pub struct NeighTable {
    slots: Box<[Slot]>,
    mask: usize,
    max_age_ms: u64,
}

impl std::fmt::Debug for NeighTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeighTable").field("slots", &self.slots.len()).finish()
    }
}

fn words(addr: &[u8; 16]) -> [u32; 4] {
    let mut w = [0u32; 4];
    for (i, c) in addr.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

fn pack(mac: MacAddr, port: u16, v6: bool, is_static: bool) -> u64 {
    let m = mac.0;
    let mut v = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
    v |= u64::from(port & 0xff) << 48;
    v | VALID | if v6 { V6 } else { 0 } | if is_static { STATIC } else { 0 }
}

fn unpack(meta: u64) -> (MacAddr, u16) {
    let b = meta.to_be_bytes();
    (MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]), u16::from(b[1]))
}

impl NeighTable {
    /// A table of at least `capacity` slots; learned entries older than `max_age_ms` are stale.
    pub fn new(capacity: usize, max_age_ms: u64) -> Self {
        let n = capacity.max(PROBE).next_power_of_two();
        NeighTable { slots: (0..n).map(|_| Slot::default()).collect(), mask: n - 1, max_age_ms }
    }

    fn home(&self, addr: &[u8; 16], v6: bool) -> usize {
        let mut b = [0u8; 17];
        b[..16].copy_from_slice(addr);
        b[16] = u8::from(v6);
        usize::try_from(hash_bytes(&b, 0x6e65_6967) & self.mask as u64).unwrap_or(0)
    }

    /// Reads slot `i` consistently: its address words and meta, or `None` after repeated races.
    fn read(&self, i: usize) -> Option<([u32; 4], u64, u64)> {
        let s = &self.slots[i];
        for _ in 0..4 {
            let s1 = s.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let a = [0, 1, 2, 3].map(|k| s.addr[k].load(Ordering::Relaxed));
            let meta = s.meta.load(Ordering::Relaxed);
            let updated = s.updated_ms.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) == s1 {
                return Some((a, meta, updated));
            }
        }
        None
    }

    /// The neighbour for an address, if known and fresh at `now_ms`.
    pub fn lookup(&self, addr: &[u8; 16], v6: bool, now_ms: u64) -> Option<Neighbour> {
        let want = words(addr);
        let home = self.home(addr, v6);
        for k in 0..PROBE {
            let Some((a, meta, updated)) = self.read((home + k) & self.mask) else { continue };
            if meta & VALID != 0 && a == want && (meta & V6 != 0) == v6 {
                let is_static = meta & STATIC != 0;
                if !is_static && now_ms.saturating_sub(updated) > self.max_age_ms {
                    return None;
                }
                let (mac, port) = unpack(meta);
                return Some(Neighbour { mac, port, is_static, updated_ms: updated });
            }
        }
        None
    }

    /// Learns or refreshes an entry. A static entry is never replaced by a learned one. Returns
    /// false when the update was skipped (a concurrent writer, or the probe window is full of
    /// static entries).
    pub fn insert(&self, addr: &[u8; 16], v6: bool, mac: MacAddr, port: u16, now_ms: u64, is_static: bool) -> bool {
        let want = words(addr);
        let home = self.home(addr, v6);
        // Prefer the slot already holding this address, else an empty one, else the oldest learned.
        let mut target: Option<(usize, u64)> = None;
        for k in 0..PROBE {
            let i = (home + k) & self.mask;
            let Some((a, meta, updated)) = self.read(i) else { continue };
            if meta & VALID != 0 && a == want && (meta & V6 != 0) == v6 {
                if meta & STATIC != 0 && !is_static {
                    return false;
                }
                target = Some((i, 0));
                break;
            }
            let age = if meta & VALID == 0 {
                u64::MAX
            } else if meta & STATIC != 0 {
                continue;
            } else {
                now_ms.saturating_sub(updated)
            };
            if target.is_none_or(|(_, best)| age > best) {
                target = Some((i, age));
            }
        }
        let Some((i, _)) = target else { return false };
        let s = &self.slots[i];
        let seq = s.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || s.seq.compare_exchange(seq, seq.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return false;
        }
        fence(Ordering::Release);
        for (k, w) in want.iter().enumerate() {
            s.addr[k].store(*w, Ordering::Relaxed);
        }
        s.meta.store(pack(mac, port, v6, is_static), Ordering::Relaxed);
        s.updated_ms.store(now_ms, Ordering::Relaxed);
        s.seq.store(seq.wrapping_add(2), Ordering::Release);
        true
    }

    /// Every fresh entry (control plane listing).
    pub fn entries(&self, now_ms: u64) -> Vec<([u8; 16], bool, Neighbour)> {
        (0..self.slots.len())
            .filter_map(|i| self.read(i))
            .filter(|(_, meta, _)| meta & VALID != 0)
            .filter_map(|(a, meta, _)| {
                let mut addr = [0u8; 16];
                for (k, w) in a.iter().enumerate() {
                    addr[k * 4..k * 4 + 4].copy_from_slice(&w.to_le_bytes());
                }
                let v6 = meta & V6 != 0;
                self.lookup(&addr, v6, now_ms).map(|n| (addr, v6, n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::widen;
    use std::sync::Arc;

    #[test]
    fn learns_refreshes_and_ages() {
        let t = NeighTable::new(64, 1000);
        let a = widen([10, 0, 0, 5]);
        assert!(t.insert(&a, false, MacAddr([2, 0, 0, 0, 0, 5]), 1, 100, false));
        assert_eq!(t.lookup(&a, false, 200).unwrap().mac, MacAddr([2, 0, 0, 0, 0, 5]));
        assert_eq!(t.lookup(&a, false, 200).unwrap().port, 1);
        assert_eq!(t.lookup(&a, true, 200), None, "families are distinct");
        assert!(t.insert(&a, false, MacAddr([2, 0, 0, 0, 0, 6]), 1, 900, false));
        assert_eq!(t.lookup(&a, false, 1800).unwrap().mac, MacAddr([2, 0, 0, 0, 0, 6]));
        assert_eq!(t.lookup(&a, false, 2000), None, "stale after max age");
    }

    #[test]
    fn static_entries_stay() {
        let t = NeighTable::new(8, 10);
        let a = widen([10, 0, 0, 9]);
        t.insert(&a, false, MacAddr([2, 0, 0, 0, 0, 9]), 0, 0, true);
        assert!(!t.insert(&a, false, MacAddr([2, 0, 0, 0, 0, 1]), 0, 5, false));
        assert_eq!(t.lookup(&a, false, 1_000_000).unwrap().mac, MacAddr([2, 0, 0, 0, 0, 9]));
        assert_eq!(t.entries(5).len(), 1);
    }

    #[test]
    fn full_window_replaces_the_oldest() {
        let t = NeighTable::new(8, u64::MAX);
        for i in 0..9u8 {
            t.insert(&widen([10, 0, 0, i]), false, MacAddr([2, 0, 0, 0, 0, i]), 0, u64::from(i), false);
        }
        assert!(t.lookup(&widen([10, 0, 0, 8]), false, 9).is_some());
        assert!(t.lookup(&widen([10, 0, 0, 0]), false, 9).is_none());
    }

    #[test]
    fn concurrent_readers_never_see_torn_entries() {
        let t = Arc::new(NeighTable::new(8, u64::MAX));
        let a = widen([10, 0, 0, 1]);
        t.insert(&a, false, MacAddr([1; 6]), 1, 0, false);
        let writer = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let b = (i % 200) as u8 + 1;
                    t.insert(&a, false, MacAddr([b; 6]), u16::from(b), 0, false);
                }
            })
        };
        for _ in 0..20_000 {
            if let Some(n) = t.lookup(&a, false, 0) {
                // MAC and port were written together: a torn read would mix two writes.
                assert!(n.mac.0.iter().all(|x| *x == n.mac.0[0]));
                assert_eq!(u16::from(n.mac.0[0]), n.port);
            }
        }
        writer.join().unwrap();
    }
}

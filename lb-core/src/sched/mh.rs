//! Maglev hashing (Eisenbud et al., NSDI'16 §3.4), with weights.
//!
//! The table build is a pure function of the backend set (identities and weights), the table
//! size M (prime) and a seed: two LB nodes with the same configuration build identical tables,
//! whatever order their backends were listed in. Each backend walks its own permutation of the
//! slots (offset and skip from two hashes of its identity) and, round after round, claims its
//! next free slot as many times per round as its weight (over the weights' gcd). Lookup is one
//! multiply-shift and one array read; the control plane reports which slots changed between two
//! builds so a data plane with a shared ring rewrites only those (Katran's `programHashRing`).

use crate::flow::hash_bytes;

/// The paper's table size for small services; must be prime.
pub const DEFAULT_SIZE: u32 = 65537;
/// The largest table accepted (the paper's big size is 655373).
pub const MAX_SIZE: u32 = 1 << 24;
const EMPTY: u16 = u16::MAX;

/// A built Maglev lookup table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaglevTable {
    slots: Vec<u16>,
    /// Identity of each backend index, to compare tables across backend-list changes.
    ids: Vec<u64>,
}

/// Free slots left when the build stops probing and computes each claim (see `build`).
const ENDGAME: usize = 64;

/// The inverse of `a` modulo the prime `m` (Fermat: a^(m-2)).
fn inverse_mod(a: u64, m: u64) -> u64 {
    let (mut base, mut e, mut acc) = (a % m, m - 2, 1u64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * base % m;
        }
        base = base * base % m;
        e >>= 1;
    }
    acc
}

/// True when `n` is prime (trial division; n is at most `MAX_SIZE`).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// `x + d` modulo `m`, for `x, d < m`.
#[inline]
fn step(x: usize, d: usize, m: usize) -> usize {
    if x + d >= m { x + d - m } else { x + d }
}

/// The walk's next four slots from `p` on: p, p + s, p + 2s, p + 3s (mod m).
#[inline]
fn four_steps(p: usize, s: usize, m: usize) -> [usize; 4] {
    let p1 = step(p, s, m);
    let p2 = step(p1, s, m);
    [p, p1, p2, step(p2, s, m)]
}

/// Whether slot `x` is unclaimed in the occupancy bitmap.
#[inline]
fn is_free(taken: &[u64], x: usize) -> bool {
    taken[x >> 6] & (1 << (x & 63)) == 0
}

/// The first free slot of the walk p, p + s, p + 2s, ... (mod m), one slot at a time; a prime M
/// makes every walk visit every slot, so a free one is always found.
#[inline]
fn walk(taken: &[u64], mut p: usize, s: usize, m: usize) -> usize {
    while !is_free(taken, p) {
        p = step(p, s, m);
    }
    p
}

/// The first free slot of the same walk, found by four lanes that take every fourth step each:
/// the chain of dependent additions is a quarter as long, and the lanes are tested in walk
/// order, so the slot is the one a single walk finds.
fn walk_in_lanes(taken: &[u64], p: usize, s: usize, m: usize) -> usize {
    let mut lane = four_steps(p, s, m);
    // [s, 2s, 3s, 4s]: each lane moves by 4s.
    let s4 = four_steps(s, s, m)[3];
    loop {
        for x in lane {
            if is_free(taken, x) {
                return x;
            }
        }
        for x in &mut lane {
            *x = step(*x, s4, m);
        }
    }
}

/// Gives slot `p` to backend `i` and returns where that backend's walk goes on from.
#[inline]
fn claim(taken: &mut [u64], slots: &mut [u16], p: usize, i: usize, s: usize, m: usize) -> usize {
    taken[p >> 6] |= 1 << (p & 63);
    slots[p] = u16::try_from(i).unwrap_or(EMPTY);
    step(p, s, m)
}

/// Claims handled together below 90% full (see `claim_group`).
const GROUP: usize = 4;

/// One claim each for the `GROUP` backends `first..first + GROUP`, in order, as claiming them
/// one at a time would. Below 90% full one of a walk's next four slots is free for most claims, so each
/// backend's first free slot among them is picked without branching, for all backends of the
/// group before any is committed (the predictor cannot guess which slot of a walk is free;
/// each wrong guess costs more than the probes). Committing in order, a backend whose pick an
/// earlier one of the group took, or whose four slots were all taken, walks on from there:
/// slots taken before stay taken, so the slot it ends on is the one a single walk finds.
fn claim_group(
    first: usize,
    live: &[usize],
    pos: &mut [usize],
    skip: &[usize],
    taken: &mut [u64],
    slots: &mut [u16],
    m: usize,
) {
    let mut pick = [0usize; GROUP];
    for (j, k) in (first..first + GROUP).enumerate() {
        let (four, s) = (four_steps(pos[k], skip[k], m), skip[k]);
        // The first free of the four; the slot after them when none is.
        let mut c = step(four[3], s, m);
        for x in four.into_iter().rev() {
            c = if is_free(taken, x) { x } else { c };
        }
        pick[j] = c;
    }
    for (j, k) in (first..first + GROUP).enumerate() {
        let p = walk(taken, pick[j], skip[k], m);
        pos[k] = claim(taken, slots, p, live[k], skip[k], m);
    }
}

impl MaglevTable {
    /// Builds the table. `ids[i]` is backend i's identity (a hash of its address and port),
    /// `weights[i]` its weight; weight 0 backends get no slot.
    pub fn build(ids: &[u64], weights: &[u32], size: u32, seed: u64) -> Result<Self, String> {
        if !is_prime(size) || size > MAX_SIZE {
            return Err(format!("maglev table size {size} must be a prime no larger than {MAX_SIZE}"));
        }
        if ids.len() != weights.len() || ids.len() >= usize::from(EMPTY) {
            return Err(format!("maglev supports at most {} backends, got {}", EMPTY - 1, ids.len()));
        }
        let m = size as usize;
        // Fill in identity order, so the table does not depend on list order.
        let mut live: Vec<usize> = (0..ids.len()).filter(|i| weights[*i] > 0).collect();
        live.sort_unstable_by_key(|i| ids[*i]);
        if live.windows(2).any(|w| ids[w[0]] == ids[w[1]]) {
            return Err("two backends of one service have the same identity".to_string());
        }
        let mut slots = vec![EMPTY; m];
        if live.is_empty() {
            return Ok(MaglevTable { slots, ids: ids.to_vec() });
        }
        let g = super::gcd_of(weights);
        let mut pos = Vec::with_capacity(live.len());
        let mut skip = Vec::with_capacity(live.len());
        for &i in &live {
            let offset = hash_bytes(&ids[i].to_le_bytes(), seed) % u64::from(size);
            let step = hash_bytes(&ids[i].to_le_bytes(), seed ^ 0x5bd1_e995_5bd1_e995) % u64::from(size - 1) + 1;
            pos.push(usize::try_from(offset).unwrap_or(0));
            skip.push(usize::try_from(step).unwrap_or(1));
        }
        let mut filled = 0usize;
        // Occupancy as a bitmap: M/8 bytes stay in L1 where the u16 slots would not, and the
        // probe loop (about M ln M probes in all) is the whole cost of a build.
        let mut taken = vec![0u64; m.div_ceil(64)];
        // The endgame: with F slots left a claim probes M/F slots on average, and the last
        // ENDGAME claims would cost M ln ENDGAME probes, a third of the build. There the claim
        // is computed instead: the free slot s that backend k reaches first is the one with the
        // fewest steps (s - pos) / skip mod M, the same slot probing finds.
        let mut free: Vec<usize> = Vec::new();
        let mut inverse: Vec<u64> = vec![0; live.len()];
        // Claims per round, divided once here rather than once per backend per round.
        let per_round: Vec<u32> = live.iter().map(|&i| weights[i] / g).collect();
        // Past 90% full a claim probes ten slots or more: walked in lanes (`walk_in_lanes`).
        let late = m - m / 10;
        'rounds: loop {
            let mut k = 0;
            while k < live.len() {
                // Groups of backends with one claim per round each; they stop short of the
                // lanes and of the endgame (whose free list they would not update).
                if filled + GROUP <= late.min(m.saturating_sub(ENDGAME + 1))
                    && per_round.get(k..k + GROUP).is_some_and(|c| c.iter().all(|&c| c == 1))
                {
                    claim_group(k, &live, &mut pos, &skip, &mut taken, &mut slots, m);
                    filled += GROUP;
                    k += GROUP;
                    continue;
                }
                let i = live[k];
                for _ in 0..per_round[k] {
                    let (mut p, s) = (pos[k], skip[k]);
                    if m - filled <= ENDGAME {
                        if free.is_empty() {
                            free = (0..m).filter(|x| is_free(&taken, *x)).collect();
                        }
                        if inverse[k] == 0 {
                            inverse[k] = inverse_mod(s as u64, m as u64);
                        }
                        let steps = |x: usize| ((x + m - p) as u64 % m as u64) * inverse[k] % m as u64;
                        let at = (0..free.len()).min_by_key(|j| steps(free[*j])).unwrap_or(0);
                        p = free.swap_remove(at);
                    } else if filled >= late {
                        p = walk_in_lanes(&taken, p, s, m);
                    } else {
                        p = walk(&taken, p, s, m);
                    }
                    pos[k] = claim(&mut taken, &mut slots, p, i, s, m);
                    filled += 1;
                    if filled == m {
                        break 'rounds;
                    }
                }
                k += 1;
            }
        }
        Ok(MaglevTable { slots, ids: ids.to_vec() })
    }

    /// Table size M.
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Backend index for a hash.
    #[inline]
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let slot = self.slot_of(hash);
        let b = self.slots[slot];
        (b != EMPTY).then_some(usize::from(b))
    }

    /// `ip_vs_mh_schedule`: the client's backend when available; otherwise none, or with
    /// mh-fallback the next available backend in the table after its slot (IPVS re-hashes with
    /// growing offsets: a different walk with the same outcome, another available backend
    /// chosen the same way by every node).
    pub fn pick(&self, weights: &[u32], load: &impl Fn(usize) -> super::Load, client: &super::Client) -> Option<usize> {
        let home = self.slot_of(client.hash);
        let first = self.lookup(client.hash)?;
        if super::available(weights, load, first) {
            return Some(first);
        }
        if !client.fallback {
            return None;
        }
        let n = self.slots.len();
        (1..n)
            .map(|k| self.slots[(home + k) % n])
            .filter(|b| *b != EMPTY)
            .map(usize::from)
            .find(|i| super::available(weights, load, *i))
    }

    /// The slot a hash falls in (multiply-shift range reduction of the hash's high half).
    #[inline]
    pub fn slot_of(&self, hash: u64) -> usize {
        let n = self.slots.len() as u64;
        usize::try_from(((hash >> 32) * n) >> 32).unwrap_or(0)
    }

    /// Backend index in each slot (`None` only when no backend is available).
    pub fn slot(&self, i: usize) -> Option<usize> {
        self.slots.get(i).and_then(|b| (*b != EMPTY).then_some(usize::from(*b)))
    }

    /// Number of slots each backend index holds.
    pub fn shares(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.ids.len()];
        for s in &self.slots {
            if let Some(c) = counts.get_mut(usize::from(*s)) {
                *c += 1;
            }
        }
        counts
    }

    fn identity_at(&self, slot: usize) -> Option<u64> {
        self.slot(slot).map(|b| self.ids[b])
    }

    /// Slots whose backend identity differs from `old`'s (every slot if the sizes differ).
    pub fn changed_slots(&self, old: &MaglevTable) -> Vec<u32> {
        (0..self.slots.len())
            .filter(|&i| old.slots.len() != self.slots.len() || self.identity_at(i) != old.identity_at(i))
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<u64> {
        (0..n as u64).map(|i| hash_bytes(&i.to_le_bytes(), 42)).collect()
    }

    /// The build as the paper states it, one claim at a time over a plain slot array (a test
    /// oracle: the casts cannot truncate for sizes below 2^24).
    #[allow(clippy::cast_possible_truncation)]
    fn sequential(ids: &[u64], weights: &[u32], size: u32, seed: u64) -> Vec<u16> {
        let m = size as usize;
        let mut live: Vec<usize> = (0..ids.len()).filter(|i| weights[*i] > 0).collect();
        live.sort_unstable_by_key(|i| ids[*i]);
        let g = super::super::gcd_of(weights);
        let mut next: Vec<(usize, usize)> = live
            .iter()
            .map(|&i| {
                let off = hash_bytes(&ids[i].to_le_bytes(), seed) % u64::from(size);
                let skip = hash_bytes(&ids[i].to_le_bytes(), seed ^ 0x5bd1_e995_5bd1_e995) % u64::from(size - 1) + 1;
                (off as usize, skip as usize)
            })
            .collect();
        let mut slots = vec![EMPTY; m];
        let mut filled = 0;
        while filled < m {
            for (k, &i) in live.iter().enumerate() {
                for _ in 0..weights[i] / g {
                    if filled == m {
                        return slots;
                    }
                    let (mut p, s) = next[k];
                    while slots[p] != EMPTY {
                        p = (p + s) % m;
                    }
                    slots[p] = i as u16;
                    next[k] = ((p + s) % m, s);
                    filled += 1;
                }
            }
        }
        slots
    }

    #[test]
    #[allow(clippy::cast_possible_truncation)] // small test weights
    fn build_equals_the_papers_sequential_fill() {
        type WeightOf = fn(usize) -> u32;
        let cases: [(usize, u32, WeightOf); 8] = [
            (1000, 65537, |_| 1),
            (1000, 65537, |i| 1 + (i % 7) as u32),
            // Groups of four one-claim backends between two-claim ones, and groups at another M.
            (50, 1009, |i| if i % 5 == 0 { 2 } else { 1 }),
            (300, 10007, |_| 3),
            (3, 7, |_| 1),
            (13, 13, |i| (i % 3) as u32),
            (100, 1009, |i| if i % 10 == 0 { 0 } else { 2 + (i % 4) as u32 }),
            (2, 655_373, |i| 1 + i as u32),
        ];
        for (n, m, weight) in cases {
            let ids = ids(n);
            let weights: Vec<u32> = (0..n).map(weight).collect();
            for seed in [0, 42] {
                let t = MaglevTable::build(&ids, &weights, m, seed).unwrap();
                assert_eq!(t.slots, sequential(&ids, &weights, m, seed), "{n} backends, M = {m}, seed {seed}");
            }
        }
    }

    #[test]
    fn no_empty_slot_and_equal_shares() {
        let ids = ids(100);
        let t = MaglevTable::build(&ids, &vec![1; 100], DEFAULT_SIZE, 0).unwrap();
        assert!((0..t.size()).all(|i| t.slot(i).is_some()));
        let shares = t.shares();
        let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
        assert!(max - min <= 1, "equal weights differ by at most one slot: {min}..{max}");
    }

    #[test]
    fn weighted_shares_within_one_percent_when_m_exceeds_100n() {
        let n = 100;
        let ids = ids(n);
        let weights: Vec<u32> = (1..=4u32).cycle().take(n).collect();
        let t = MaglevTable::build(&ids, &weights, DEFAULT_SIZE, 7).unwrap();
        let total: u32 = weights.iter().sum();
        for (i, share) in t.shares().iter().enumerate() {
            let ideal = f64::from(DEFAULT_SIZE) * f64::from(weights[i]) / f64::from(total);
            let err = (*share as f64 - ideal).abs() / ideal;
            assert!(err < 0.01, "backend {i}: {share} slots against {ideal:.1} ideal");
        }
    }

    #[test]
    fn deterministic_and_independent_of_list_order() {
        let ids = ids(20);
        let w: Vec<u32> = (1..=20).collect();
        let a = MaglevTable::build(&ids, &w, 251, 3).unwrap();
        assert_eq!(a, MaglevTable::build(&ids, &w, 251, 3).unwrap());
        let (rids, rw): (Vec<u64>, Vec<u32>) = ids.iter().rev().zip(w.iter().rev()).unzip();
        let b = MaglevTable::build(&rids, &rw, 251, 3).unwrap();
        for slot in 0..251 {
            assert_eq!(a.identity_at(slot), b.identity_at(slot));
        }
        assert!(a.changed_slots(&b).is_empty());
        assert_ne!(a.slots, MaglevTable::build(&ids, &w, 251, 4).unwrap().slots, "the seed matters");
    }

    #[test]
    fn removing_one_of_n_moves_close_to_one_nth() {
        let n = 100;
        let ids = ids(n);
        let full = MaglevTable::build(&ids, &vec![1; n], DEFAULT_SIZE, 0).unwrap();
        let mut w = vec![1; n];
        w[37] = 0;
        let less = MaglevTable::build(&ids, &w, DEFAULT_SIZE, 0).unwrap();
        let moved = less.changed_slots(&full).len() as f64 / f64::from(DEFAULT_SIZE);
        // The removed backend's own 1/N must move; Maglev moves a little more (paper §3.4).
        assert!(moved >= 1.0 / n as f64 && moved < 1.6 / n as f64, "moved {moved}");
    }

    #[test]
    fn refuses_bad_sizes_and_duplicates() {
        assert!(MaglevTable::build(&[1], &[1], 65536, 0).unwrap_err().contains("prime"));
        assert!(MaglevTable::build(&[1, 1], &[1, 1], 251, 0).unwrap_err().contains("identity"));
        let empty = MaglevTable::build(&[1, 2], &[0, 0], 251, 0).unwrap();
        assert_eq!(empty.lookup(12345), None);
        assert!(is_prime(655_373) && is_prime(65537) && !is_prime(1));
    }
}

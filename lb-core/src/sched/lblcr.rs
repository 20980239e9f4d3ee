//! Locality-based least connections with replication (IPVS `ip_vs_lblcr.c`): a destination
//! has a set of backends and takes the least loaded of them (overhead / weight); when that one
//! is overloaded in lblc's sense (or the set is empty), wlc adds a backend to the set. A set
//! of more than one that has not changed for `SET_EXPIRY_MS` loses its most loaded backend.
//! As for lblc, the destination is the service's VIP: one set per service and worker, in its
//! `Cursor`, of at most `LBLCR_SET` backends (IPVS's is unbounded; a full set is not grown).

use super::{Cursor, LBLCR_SET, Load, available, lblc::overloaded, wlc};

/// IPVS's `sysctl_lblcr_expiration` default: 24 hours.
pub const SET_EXPIRY_MS: u64 = 24 * 3600 * 1000;

fn members(c: &Cursor, n: usize) -> impl Iterator<Item = usize> + '_ {
    c.set[..usize::from(c.set_len)].iter().map(|i| usize::from(*i)).filter(move |i| *i < n)
}

/// `ip_vs_dest_set_min`: the least loaded available member.
fn set_min(weights: &[u32], load: &impl Fn(usize) -> Load, c: &Cursor) -> Option<usize> {
    super::least_weighted(weights, load, members(c, weights.len()), Load::overhead)
}

/// `ip_vs_dest_set_max`: the most loaded member of non-zero weight (the first on ties).
fn set_max(weights: &[u32], load: &impl Fn(usize) -> Load, c: &Cursor) -> Option<usize> {
    let mut most: Option<(usize, u64, u64)> = None;
    for i in members(c, weights.len()).filter(|i| weights[*i] > 0) {
        let (oh, w) = (load(i).overhead(), u64::from(weights[i]));
        if most.is_none_or(|(_, moh, mw)| u128::from(moh) * u128::from(w) < u128::from(oh) * u128::from(mw)) {
            most = Some((i, oh, w));
        }
    }
    most.map(|(i, _, _)| i)
}

fn insert(c: &mut Cursor, i: usize, now_ms: u64) {
    if members(c, usize::MAX).any(|m| m == i) || usize::from(c.set_len) == LBLCR_SET {
        return;
    }
    // Newest first, as the kernel's list_add.
    c.set.copy_within(..usize::from(c.set_len), 1);
    c.set[0] = u16::try_from(i).unwrap_or(u16::MAX);
    c.set_len += 1;
    c.set_changed_ms = now_ms;
}

fn erase(c: &mut Cursor, i: usize, now_ms: u64) {
    let len = usize::from(c.set_len);
    if let Some(at) = c.set[..len].iter().position(|m| usize::from(*m) == i) {
        c.set.copy_within(at + 1..len, at);
        c.set_len -= 1;
        c.set_changed_ms = now_ms;
    }
}

pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load, cursor: &mut Cursor, now_ms: u64) -> Option<usize> {
    if cursor.set_len > 0 {
        let least = set_min(weights, load, cursor);
        if cursor.set_len > 1
            && now_ms.saturating_sub(cursor.set_changed_ms) > SET_EXPIRY_MS
            && let Some(most) = set_max(weights, load, cursor)
        {
            erase(cursor, most, now_ms);
        }
        if let Some(i) = least
            && !overloaded(weights, load, i)
        {
            return Some(i);
        }
    }
    let i = wlc::pick(weights, load)?;
    debug_assert!(available(weights, load, i));
    insert(cursor, i, now_ms);
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand, weights 1, 1, 4, all idle: wlc gives backend 0 (every ratio is 0: the first),
    /// the set is {0}. 0 serves until it holds 2 active: over its weight while backend 1 is
    /// under half of its own, so it is overloaded and wlc adds backend 1 (0 / 1, before 2's
    /// equal 0 / 4): the set is {1, 0}, whose least loaded is 1 (then 1 and 0 tie, the newest
    /// first). At 2 active 1 is overloaded too, and wlc adds 2 (0 / 4), which takes the rest.
    #[test]
    fn the_set_grows_when_its_least_loaded_member_is_overloaded() {
        let weights = [1u32, 1, 4];
        let mut loads = [Load::default(); 3];
        let mut c = Cursor::default();
        let mut seq = Vec::new();
        for _ in 0..7 {
            let i = pick(&weights, &|i| loads[i], &mut c, 0).unwrap();
            loads[i].active += 1;
            seq.push(i);
        }
        assert_eq!(seq, [0, 0, 1, 1, 2, 2, 2]);
        assert_eq!(&c.set[..usize::from(c.set_len)], [2, 1, 0]);
    }

    #[test]
    fn an_old_set_sheds_its_most_loaded_member() {
        let weights = [1u32, 1];
        let loads = [Load { active: 5, ..Load::default() }, Load::default()];
        let mut c = Cursor { set: [0; LBLCR_SET], set_len: 2, set_changed_ms: 0, ..Cursor::default() };
        c.set[1] = 1;
        assert_eq!(pick(&weights, &|i| loads[i], &mut c, SET_EXPIRY_MS + 1), Some(1));
        assert_eq!(&c.set[..usize::from(c.set_len)], [1]);
    }
}

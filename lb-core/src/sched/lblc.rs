//! Locality-based least connections (IPVS `ip_vs_lblc.c`): a destination address keeps the
//! backend it was given while that backend is available and not overloaded in lblc's sense
//! (more active connections than its weight while another backend is under half its weight);
//! otherwise wlc picks a new one, which the destination keeps from then on. Every connection
//! of an lbd service has the service's VIP as its destination, so the cache is one entry per
//! service and worker, in its `Cursor` (IPVS keeps one per destination, for 24 hours).

use super::{Cursor, Load, available, wlc};

/// lblc's and lblcr's `is_overloaded`.
pub(crate) fn overloaded(weights: &[u32], load: &impl Fn(usize) -> Load, i: usize) -> bool {
    load(i).active > weights[i] && (0..weights.len()).any(|j| u64::from(load(j).active) * 2 < u64::from(weights[j]))
}

pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load, cursor: &mut Cursor) -> Option<usize> {
    if let Some(i) = usize::from(cursor.cached).checked_sub(1)
        && i < weights.len()
        && available(weights, load, i)
        && !overloaded(weights, load, i)
    {
        return Some(i);
    }
    let i = wlc::pick(weights, load)?;
    cursor.cached = u16::try_from(i + 1).unwrap_or(0);
    Some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand, weights 2 and 2: wlc gives backend 0, which keeps the connections while it
    /// holds at most 2 active. At 3 it is over its weight while backend 1 is under half of its
    /// own (0 * 2 < 2): overloaded, so wlc picks 1, which the cache keeps from then on; at 3
    /// active it is over its weight too, but no backend is under half of its own any more, so
    /// nobody counts as overloaded and the cache holds.
    #[test]
    fn keeps_its_backend_until_it_is_overloaded() {
        let weights = [2u32, 2];
        let mut loads = [Load::default(); 2];
        let mut c = Cursor::default();
        let mut seq = Vec::new();
        for _ in 0..8 {
            let i = pick(&weights, &|i| loads[i], &mut c).unwrap();
            loads[i].active += 1;
            seq.push(i);
        }
        assert_eq!(seq, [0, 0, 0, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn a_drained_cached_backend_is_replaced() {
        let mut c = Cursor { cached: 1, ..Cursor::default() };
        let idle = |_| Load::default();
        assert_eq!(pick(&[0, 1], &idle, &mut c), Some(1));
        assert_eq!(c.cached, 2);
        assert_eq!(pick(&[0, 0], &idle, &mut c), None);
    }
}

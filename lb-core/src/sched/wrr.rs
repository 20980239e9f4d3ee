//! Weighted round robin with IPVS's semantics (`ip_vs_wrr.c`): a current weight steps down by
//! the weights' gcd each time the list wraps, and a backend is chosen while its weight is at
//! least the current weight. Over a cycle each backend gets exactly weight/gcd connections,
//! the heavier ones first.

use super::{Cursor, Load, gcd_of};

/// Precomputed per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub gcd: u32,
    pub max_weight: u32,
}

impl Params {
    pub fn new(weights: &[u32]) -> Self {
        Params { gcd: gcd_of(weights), max_weight: weights.iter().copied().max().unwrap_or(0) }
    }
}

/// The next backend. The cursor's index is a position in IPVS's circular list: 0 is the list
/// head (where a fresh cursor starts and where the current weight steps down), k is backend k-1.
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load, p: &Params, cursor: &mut Cursor) -> Option<usize> {
    let n = weights.len();
    if n == 0 || p.max_weight == 0 {
        return None;
    }
    let mut pos = (cursor.index as usize).min(n);
    let mut cw = cursor.current_weight;
    let start = (pos, cw);
    // Every (position, weight level) pair is visited at most once before the walk repeats.
    let bound = (n + 1) * ((p.max_weight / p.gcd.max(1)) as usize + 1);
    for _ in 0..bound {
        if pos == 0 {
            pos = 1;
            cw -= i64::from(p.gcd);
            if cw <= 0 {
                cw = i64::from(p.max_weight);
            }
        } else {
            pos = if pos == n { 0 } else { pos + 1 };
        }
        if pos != 0 && i64::from(weights[pos - 1]) >= cw && !load(pos - 1).overloaded {
            cursor.index = u32::try_from(pos).unwrap_or(0);
            cursor.current_weight = cw;
            return Some(pos - 1);
        }
        if (pos, cw) == start {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(weights: &[u32], count: usize) -> Vec<usize> {
        let p = Params::new(weights);
        let mut c = Cursor::default();
        (0..count).map(|_| pick(weights, &|_| Load::default(), &p, &mut c).unwrap()).collect()
    }

    #[test]
    fn follows_the_ipvs_sequence() {
        // IPVS with weights 4, 3, 2: cw 4 -> A; cw 3 -> A B; cw 2 -> A B C; cw 1 -> A B C.
        assert_eq!(sequence(&[4, 3, 2], 9), [0, 0, 1, 0, 1, 2, 0, 1, 2]);
        assert_eq!(sequence(&[4, 3, 2], 18)[9..], [0, 0, 1, 0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn shares_follow_weights_and_skip_drained() {
        let s = sequence(&[5, 0, 1, 2], 80);
        let count = |i| s.iter().filter(|x| **x == i).count();
        assert_eq!((count(0), count(1), count(2), count(3)), (50, 0, 10, 20));
    }

    #[test]
    fn gcd_steps() {
        assert_eq!(sequence(&[100, 50], 6), [0, 0, 1, 0, 0, 1]);
    }

    #[test]
    fn nothing_when_all_drained() {
        let p = Params::new(&[0, 0]);
        assert_eq!(pick(&[0, 0], &|_| Load::default(), &p, &mut Cursor::default()), None);
    }

    #[test]
    fn an_overloaded_backend_is_passed_over() {
        let p = Params::new(&[4, 3, 2]);
        let mut c = Cursor::default();
        let over = |i: usize| Load { overloaded: i == 0, ..Load::default() };
        let seq: Vec<_> = (0..5).map(|_| pick(&[4, 3, 2], &over, &p, &mut c).unwrap()).collect();
        assert_eq!(seq, [1, 1, 2, 1, 2]);
    }
}

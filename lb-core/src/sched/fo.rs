//! Weighted failover (IPVS `ip_vs_fo.c`): the available backend of the highest weight, the
//! first on ties. The others are standbys.

use super::{Load, heaviest};

/// The heaviest available backend.
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load) -> Option<usize> {
    heaviest(weights, load, |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heaviest_available_takes_everything() {
        let idle = |_| Load::default();
        assert_eq!(pick(&[2, 5, 5, 1], &idle), Some(1));
        let over = |i: usize| Load { overloaded: i == 1, ..Load::default() };
        assert_eq!(pick(&[2, 5, 5, 1], &over), Some(2));
        assert_eq!(pick(&[0, 0], &idle), None);
    }
}

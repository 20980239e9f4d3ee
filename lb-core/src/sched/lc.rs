//! Least connections (IPVS `ip_vs_lc.c`): the available backend with the smallest overhead
//! (active * 256 + inactive), the first on ties; weight only gates availability.

use super::{Load, available};

/// The least loaded available backend.
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load) -> Option<usize> {
    (0..weights.len()).filter(|i| available(weights, load, *i)).min_by_key(|i| load(*i).overhead())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_overhead_wins_and_ties_go_first() {
        let loads = [
            Load { active: 1, ..Load::default() },
            Load { inactive: 200, ..Load::default() },
            Load { inactive: 200, ..Load::default() },
        ];
        assert_eq!(pick(&[1, 1, 1], &|i| loads[i]), Some(1));
        assert_eq!(pick(&[1, 0, 1], &|i| loads[i]), Some(2));
        assert_eq!(pick(&[0, 0, 0], &|i| loads[i]), None);
        let over = |i: usize| Load { overloaded: i == 1, ..loads[i] };
        assert_eq!(pick(&[1, 1, 1], &over), Some(2));
    }
}

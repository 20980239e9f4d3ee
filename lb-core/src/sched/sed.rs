//! Shortest expected delay (IPVS `ip_vs_sed.c`): the available backend with the smallest
//! (active + 1) / weight, the first on ties. Inactive connections do not count.

use super::{Load, least_weighted};

/// The available backend a new connection would wait least on.
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load) -> Option<usize> {
    least_weighted(weights, load, 0..weights.len(), |l| u64::from(l.active) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: weights 1 and 3, both idle: (0+1)/1 = 1 against (0+1)/3 = 0.33, so the second;
    /// it keeps winning while (a+1)/3 < 1, i.e. until it holds 2 (3/3 = 1, a tie: the first).
    #[test]
    fn follows_the_expected_delay_by_hand() {
        let weights = [1u32, 3];
        let mut loads = [Load::default(); 2];
        let mut seq = Vec::new();
        for _ in 0..6 {
            let i = pick(&weights, &|i| loads[i]).unwrap();
            loads[i].active += 1;
            seq.push(i);
        }
        assert_eq!(seq, [1, 1, 0, 1, 1, 1]);
    }

    #[test]
    fn inactive_connections_do_not_count_and_overloaded_is_skipped() {
        let loads = [Load { inactive: 1000, ..Load::default() }, Load { active: 1, ..Load::default() }];
        assert_eq!(pick(&[1, 1], &|i| loads[i]), Some(0));
        let over = |i: usize| Load { overloaded: i == 0, ..loads[i] };
        assert_eq!(pick(&[1, 1], &over), Some(1));
    }
}

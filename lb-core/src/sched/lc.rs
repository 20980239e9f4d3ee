//! Least connections (IPVS `ip_vs_lc.c`): the backend with the smallest overhead
//! (active * 256 + inactive), first one on ties; weight only gates availability.

use super::Load;

/// The least loaded available backend.
pub fn pick(weights: &[u32], load: impl Fn(usize) -> Load) -> Option<usize> {
    weights.iter().enumerate().filter(|(_, w)| **w > 0).min_by_key(|(i, _)| load(*i).overhead()).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_overhead_wins_and_ties_go_first() {
        let loads =
            [Load { active: 1, inactive: 0 }, Load { active: 0, inactive: 200 }, Load { active: 0, inactive: 200 }];
        assert_eq!(pick(&[1, 1, 1], |i| loads[i]), Some(1));
        assert_eq!(pick(&[1, 0, 1], |i| loads[i]), Some(2));
        assert_eq!(pick(&[0, 0, 0], |i| loads[i]), None);
    }
}

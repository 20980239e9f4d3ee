//! Weighted least connections (IPVS `ip_vs_wlc.c`, ipvsadm's default): the available backend
//! with the smallest overhead / weight, the first on ties.

use super::{Load, least_weighted};

/// The available backend with the least overhead per unit of weight.
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load) -> Option<usize> {
    least_weighted(weights, load, 0..weights.len(), Load::overhead)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighs_load_by_weight() {
        let loads = [Load { active: 2, ..Load::default() }, Load { active: 3, ..Load::default() }];
        assert_eq!(pick(&[1, 3], &|i| loads[i]), Some(1));
        assert_eq!(pick(&[3, 1], &|i| loads[i]), Some(0));
        assert_eq!(pick(&[0, 0], &|i| loads[i]), None);
    }

    #[test]
    fn fills_proportionally() {
        let weights = [1u32, 2, 5];
        let mut loads = [Load::default(); 3];
        for _ in 0..800 {
            let i = pick(&weights, &|i| loads[i]).unwrap();
            loads[i].active += 1;
        }
        assert_eq!(loads.map(|l| l.active), [100, 200, 500]);
    }
}

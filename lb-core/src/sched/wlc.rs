//! Weighted least connections (IPVS `ip_vs_wlc.c`): the smallest overhead / weight, compared
//! as cross products so no division is done.

use super::Load;

/// The available backend with the least overhead per unit of weight.
pub fn pick(weights: &[u32], load: impl Fn(usize) -> Load) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for (i, w) in weights.iter().enumerate() {
        if *w == 0 {
            continue;
        }
        let (oh, w) = (load(i).overhead(), u64::from(*w));
        match best {
            Some((_, boh, bw)) if u128::from(oh) * u128::from(bw) >= u128::from(boh) * u128::from(w) => {}
            _ => best = Some((i, oh, w)),
        }
    }
    best.map(|(i, _, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighs_load_by_weight() {
        let loads = [Load { active: 2, inactive: 0 }, Load { active: 3, inactive: 0 }];
        // 512/1 vs 768/3: the heavier backend is less loaded per unit of weight.
        assert_eq!(pick(&[1, 3], |i| loads[i]), Some(1));
        assert_eq!(pick(&[3, 1], |i| loads[i]), Some(0));
        assert_eq!(pick(&[0, 0], |i| loads[i]), None);
    }

    #[test]
    fn fills_proportionally() {
        let weights = [1u32, 2, 5];
        let mut loads = [Load::default(); 3];
        for _ in 0..800 {
            let i = pick(&weights, |i| loads[i]).unwrap();
            loads[i].active += 1;
        }
        assert_eq!(loads.map(|l| l.active), [100, 200, 500]);
    }
}

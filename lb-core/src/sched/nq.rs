//! Never queue (IPVS `ip_vs_nq.c`): the first available backend with no active connection;
//! when every one is busy, shortest expected delay.

use super::{Load, available, least_weighted};

/// An idle available backend, else the one with the smallest (active + 1) / weight.
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load) -> Option<usize> {
    (0..weights.len())
        .find(|i| available(weights, load, *i) && load(*i).active == 0)
        .or_else(|| least_weighted(weights, load, 0..weights.len(), |l| u64::from(l.active) + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_backend_wins_whatever_its_weight() {
        let loads = [Load { active: 1, ..Load::default() }, Load { inactive: 50, ..Load::default() }];
        assert_eq!(pick(&[100, 1], &|i| loads[i]), Some(1));
        // None idle: sed. (1+1)/100 against (3+1)/1.
        let busy = [Load { active: 1, ..Load::default() }, Load { active: 3, ..Load::default() }];
        assert_eq!(pick(&[100, 1], &|i| busy[i]), Some(0));
        assert_eq!(pick(&[0, 0], &|i| busy[i]), None);
    }
}

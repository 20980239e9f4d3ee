//! Weighted overflow (IPVS `ip_vs_ovf.c`): the available backend of the highest weight whose
//! active connections do not exceed its weight, the first on ties; the next one takes the
//! overflow.

use super::{Load, heaviest};

/// The heaviest available backend with room (active <= weight).
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load) -> Option<usize> {
    heaviest(weights, load, |i| load(i).active <= weights[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: weights 3 and 2. The first takes connections while it holds at most 3 active
    /// (so 4 of them), then the second while it holds at most 2 (3), then nobody.
    #[test]
    fn fills_the_heaviest_then_overflows() {
        let weights = [3u32, 2];
        let mut loads = [Load::default(); 2];
        let mut seq = Vec::new();
        while let Some(i) = pick(&weights, &|i| loads[i]) {
            loads[i].active += 1;
            seq.push(i);
        }
        assert_eq!(seq, [0, 0, 0, 0, 1, 1, 1]);
    }
}

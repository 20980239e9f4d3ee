//! Round robin (IPVS `ip_vs_rr.c`): the next available backend after the last one picked.

use super::{Cursor, Load, available};

/// The next available backend from the cursor on.
pub fn pick(weights: &[u32], load: &impl Fn(usize) -> Load, cursor: &mut Cursor) -> Option<usize> {
    let n = weights.len();
    for step in 0..n {
        let i = (cursor.index as usize + step) % n;
        if available(weights, load, i) {
            cursor.index = u32::try_from((i + 1) % n).unwrap_or(0);
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_and_skips_drained_and_overloaded() {
        let mut c = Cursor::default();
        let idle = |_| Load::default();
        let seq: Vec<_> = (0..6).map(|_| pick(&[1, 0, 5], &idle, &mut c).unwrap()).collect();
        assert_eq!(seq, [0, 2, 0, 2, 0, 2]);
        let full = |i| Load { overloaded: i == 0, ..Load::default() };
        let seq: Vec<_> = (0..3).map(|_| pick(&[1, 1, 1], &full, &mut c).unwrap()).collect();
        assert_eq!(seq, [1, 2, 1]);
        assert_eq!(pick(&[0, 0], &idle, &mut c), None);
        assert_eq!(pick(&[], &idle, &mut c), None);
    }
}

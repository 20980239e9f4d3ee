//! Round robin: each new connection goes to the next backend of non-zero weight.

use super::Cursor;

/// The next available backend after the cursor.
pub fn pick(weights: &[u32], cursor: &mut Cursor) -> Option<usize> {
    let n = weights.len();
    for step in 0..n {
        let i = (cursor.index as usize + step) % n;
        if weights[i] > 0 {
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
    fn cycles_and_skips_drained() {
        let mut c = Cursor::default();
        let seq: Vec<_> = (0..6).map(|_| pick(&[1, 0, 5], &mut c).unwrap()).collect();
        assert_eq!(seq, [0, 2, 0, 2, 0, 2]);
        assert_eq!(pick(&[0, 0], &mut c), None);
        assert_eq!(pick(&[], &mut c), None);
    }
}

//! Source hashing (IPVS `ip_vs_sh.c`): a table of buckets filled with runs of each backend as
//! long as its weight; the client address (and port, when asked) hashes to a bucket. Drained
//! backends get no bucket, so a client of a live backend keeps it while others drain.

/// IPVS's default table size (`IP_VS_SH_TAB_BITS` = 8).
pub const DEFAULT_SIZE: usize = 256;

/// Bucket to backend index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    buckets: Vec<u16>,
}

const EMPTY: u16 = u16::MAX;

impl Table {
    /// Fills `size` buckets with runs of weight-many buckets per available backend, round robin.
    pub fn build(weights: &[u32], size: usize) -> Table {
        let live: Vec<usize> = (0..weights.len()).filter(|i| weights[*i] > 0).collect();
        let mut buckets = vec![EMPTY; size];
        if !live.is_empty() {
            let (mut which, mut run) = (0usize, 0u32);
            for b in &mut buckets {
                let i = live[which];
                *b = u16::try_from(i).unwrap_or(EMPTY);
                run += 1;
                if run >= weights[i] {
                    which = (which + 1) % live.len();
                    run = 0;
                }
            }
        }
        Table { buckets }
    }

    /// Backend for a source hash.
    #[inline]
    pub fn lookup(&self, src_hash: u64) -> Option<usize> {
        let n = self.buckets.len() as u64;
        if n == 0 {
            return None;
        }
        let b = self.buckets[usize::try_from(src_hash % n).unwrap_or(0)];
        (b != EMPTY).then_some(usize::from(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_weights() {
        let t = Table::build(&[1, 2, 0], 8);
        assert_eq!(t.buckets, [0, 1, 1, 0, 1, 1, 0, 1]);
        assert_eq!(t.lookup(1), Some(1));
        assert_eq!(t.lookup(8), Some(0));
        assert_eq!(Table::build(&[0, 0], 8).lookup(3), None);
    }

    #[test]
    fn same_source_same_backend() {
        let t = Table::build(&[1, 1, 1], DEFAULT_SIZE);
        for h in [7u64, 99, 1 << 40] {
            assert_eq!(t.lookup(h), t.lookup(h));
        }
    }
}

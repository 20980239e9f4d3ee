//! Destination hashing (IPVS `ip_vs_dh.c`, exactly): 256 buckets dealt to the backends in
//! turn, whatever their weights; the destination address picks the bucket
//! (`address * 2654435761`, low 8 bits). Its backend, when unavailable, refuses the connection.
//! Every connection of an lbd service goes to its VIP, so one backend takes the whole service:
//! dh is for IPVS's transparent cache clusters, and is here for rules that use it.

use super::{Client, Load, available, fold};

const SIZE: usize = 256;

/// Bucket to backend index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    buckets: Vec<u16>,
}

impl Table {
    /// `ip_vs_dh_reassign` for `backends` backends.
    pub fn build(backends: usize) -> Table {
        let buckets = if backends == 0 {
            Vec::new()
        } else {
            (0..SIZE).map(|i| u16::try_from(i % backends).unwrap_or(u16::MAX)).collect()
        };
        Table { buckets }
    }

    /// `ip_vs_dh_hashkey`.
    pub fn bucket(client: &Client) -> usize {
        (fold(&client.dst, client.v6).wrapping_mul(2_654_435_761) as usize) & (SIZE - 1)
    }

    pub fn pick(&self, weights: &[u32], load: &impl Fn(usize) -> Load, client: &Client) -> Option<usize> {
        let i = usize::from(*self.buckets.get(Table::bucket(client))?);
        available(weights, load, i).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: 10.0.0.100 = 0x0a000064; times 2654435761 (0x9e3779b1) mod 2^32 = 0xb7ab_8924;
    /// low byte 0x24 = bucket 36; with 3 backends, 36 % 3 = 0.
    #[test]
    fn hashes_the_destination_as_the_kernel() {
        assert_eq!(0x0a00_0064u32.wrapping_mul(2_654_435_761), 0xb7ab_8924);
        let mut dst = [0; 16];
        dst[..4].copy_from_slice(&[10, 0, 0, 100]);
        let c = Client { dst, ..Client::default() };
        assert_eq!(Table::bucket(&c), 36);
        let t = Table::build(3);
        let idle = |_| Load::default();
        assert_eq!(t.pick(&[1, 1, 1], &idle, &c), Some(0));
        assert_eq!(t.pick(&[0, 1, 1], &idle, &c), None, "its backend drained: refused");
        assert_eq!(Table::build(0).pick(&[], &idle, &c), None);
    }
}

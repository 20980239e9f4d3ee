//! Source hashing (IPVS `ip_vs_sh.c`, exactly): a table of 256 buckets filled in backend order
//! with runs as long as each backend's weight (a backend of weight 0 still gets one bucket);
//! the client's address, folded to 32 bits, plus its port with the sh-port flag, goes through
//! the kernel's `hash_32` to a bucket. A client whose backend is unavailable (weight 0,
//! overloaded) is refused, or with sh-fallback walks the table to the next available one.

use super::{Client, Load, available, fold, hash_32};

/// IPVS's table size (`IP_VS_SH_TAB_BITS` = 8).
pub const BITS: u32 = 8;
pub const SIZE: usize = 1 << BITS;
const SIZE32: u32 = 1 << BITS;

/// Bucket to backend index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    buckets: Vec<u16>,
}

const EMPTY: u16 = u16::MAX;

impl Table {
    /// `ip_vs_sh_reassign`.
    pub fn build(weights: &[u32]) -> Table {
        let mut buckets = vec![EMPTY; SIZE];
        if !weights.is_empty() {
            let (mut which, mut run) = (0usize, 0u32);
            for b in &mut buckets {
                *b = u16::try_from(which).unwrap_or(EMPTY);
                run += 1;
                if run >= weights[which] {
                    which = (which + 1) % weights.len();
                    run = 0;
                }
            }
        }
        Table { buckets }
    }

    /// The bucket of `client` moved on by `offset` (`ip_vs_sh_hashkey`).
    pub fn bucket(client: &Client, offset: u32) -> usize {
        let key = fold(&client.src, client.v6).wrapping_add(u32::from(client.port));
        (offset.wrapping_add(hash_32(key, BITS)) as usize) & (SIZE - 1)
    }

    fn at(&self, bucket: usize) -> Option<usize> {
        self.buckets.get(bucket).filter(|b| **b != EMPTY).map(|b| usize::from(*b))
    }

    /// `ip_vs_sh_schedule`, with `ip_vs_sh_get_fallback` when the client asks for it.
    pub fn pick(&self, weights: &[u32], load: &impl Fn(usize) -> Load, client: &Client) -> Option<usize> {
        let home = Table::bucket(client, 0);
        let first = self.at(home)?;
        let home32 = u32::try_from(home).unwrap_or(0);
        if available(weights, load, first) {
            return Some(first);
        }
        if !client.fallback {
            return None;
        }
        (0..SIZE32)
            .filter_map(|offset| self.at(Table::bucket(client, (offset + home32) % SIZE32)))
            .find(|i| available(weights, load, *i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(a: [u8; 4], port: u16) -> Client {
        let mut src = [0; 16];
        src[..4].copy_from_slice(&a);
        Client { src, port, ..Client::default() }
    }

    #[test]
    fn buckets_follow_weights_and_drained_ones_keep_a_bucket() {
        let t = Table::build(&[1, 2, 0]);
        assert_eq!(t.buckets[..8], [0, 1, 1, 2, 0, 1, 1, 2]);
        assert!(Table::build(&[]).buckets.iter().all(|b| *b == EMPTY));
    }

    /// By hand: 10.0.0.1 is 0x0a000001; times 0x61c88647 mod 2^32 is 0x27c8_8647, whose top
    /// 8 bits 0x27 are bucket 39. With sh-port and port 80 the key is 0x0a000051: times the
    /// same, 0xb672_7c77, bucket 0xb6 = 182.
    #[test]
    fn hashes_as_the_kernel() {
        assert_eq!(0x0a00_0001u32.wrapping_mul(0x61c8_8647), 0x27c8_8647);
        assert_eq!(Table::bucket(&client([10, 0, 0, 1], 0), 0), 39);
        assert_eq!(0x0a00_0051u32.wrapping_mul(0x61c8_8647), 0xb672_7c77);
        assert_eq!(Table::bucket(&client([10, 0, 0, 1], 80), 0), 182);
        // Four backends of weight 1: bucket 39 holds backend 39 % 4 = 3.
        let t = Table::build(&[1, 1, 1, 1]);
        let idle = |_| Load::default();
        assert_eq!(t.pick(&[1, 1, 1, 1], &idle, &client([10, 0, 0, 1], 0)), Some(3));
    }

    #[test]
    fn an_unavailable_backend_refuses_or_falls_back_to_the_next_available_bucket() {
        let weights = [1, 1, 1, 1];
        let t = Table::build(&weights);
        let over = |i: usize| Load { overloaded: i == 3, ..Load::default() };
        let c = client([10, 0, 0, 1], 0);
        assert_eq!(t.pick(&weights, &over, &c), None);
        // Fallback: offsets from the home bucket, each hashed again: (39 + 39) % 256 = 78
        // first, whose backend is 78 % 4 = 2.
        let fb = Client { fallback: true, ..c };
        assert_eq!(t.pick(&weights, &over, &fb), Some(2));
    }
}

//! The fragment rule: every fragment of one datagram goes where its first fragment went.
//!
//! Only the first fragment (offset 0) carries the ports, so it alone is scheduled and tracked;
//! its decision is remembered under (source, destination, protocol, IP identification) for a
//! short time, and later fragments take the same connection and rewrite (addresses only; the
//! L4 checksum, which covers the whole datagram, was patched once in the first fragment).
//! A fragment that arrives before its first fragment is dropped and counted: the LB does not
//! reassemble. RSS hashes fragments on addresses only, so all fragments of a datagram reach the
//! same worker (lb-dpdk configures the ports that way).

use crate::flow::{FlowKey, hash_bytes};

/// Identifies one datagram's fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragKey {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub ident: u32,
    pub proto: u8,
    pub v6: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    key: FragKey,
    flow: FlowKey,
    expires_ms: u64,
    used: bool,
}

/// A direct-mapped per-worker table of recent first fragments.
pub struct FragTable {
    entries: Vec<Entry>,
    ttl_ms: u64,
}

impl FragTable {
    /// A table of `capacity` entries (rounded up to a power of two) kept for `ttl_ms`.
    pub fn new(capacity: usize, ttl_ms: u64) -> Self {
        FragTable { entries: vec![Entry::default(); capacity.max(1).next_power_of_two()], ttl_ms }
    }

    fn slot(&self, key: &FragKey) -> usize {
        let mut b = [0u8; 38];
        b[..16].copy_from_slice(&key.src);
        b[16..32].copy_from_slice(&key.dst);
        b[32..36].copy_from_slice(&key.ident.to_le_bytes());
        b[36] = key.proto;
        b[37] = u8::from(key.v6);
        usize::try_from(hash_bytes(&b, 0x6672_6167)).unwrap_or(0) & (self.entries.len() - 1)
    }

    /// Remembers the flow key a first fragment was processed under.
    pub fn remember(&mut self, key: FragKey, flow: FlowKey, now_ms: u64) {
        let i = self.slot(&key);
        self.entries[i] = Entry { key, flow, expires_ms: now_ms + self.ttl_ms, used: true };
    }

    /// The flow key of this datagram's first fragment, if seen recently.
    pub fn recall(&self, key: &FragKey, now_ms: u64) -> Option<FlowKey> {
        let e = &self.entries[self.slot(key)];
        (e.used && e.key == *key && e.expires_ms > now_ms).then_some(e.flow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry() {
        let mut t = FragTable::new(16, 100);
        let k = FragKey { src: [1; 16], dst: [2; 16], ident: 7, proto: 17, v6: false };
        let f = FlowKey::v4([1; 4], [2; 4], 5, 53, 17);
        assert_eq!(t.recall(&k, 0), None);
        t.remember(k, f, 10);
        assert_eq!(t.recall(&k, 50), Some(f));
        assert_eq!(t.recall(&FragKey { ident: 8, ..k }, 50), None);
        assert_eq!(t.recall(&k, 111), None);
    }
}

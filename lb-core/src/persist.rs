//! Persistence (ipvsadm -p): a client keeps its backend for a service while it keeps coming back
//! within the timeout. Per worker, direct-mapped and fixed size: a collision forgets the older
//! client (counted by the caller as a fresh scheduling decision), never allocates.

use crate::flow::hash_bytes;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    service_id: u32,
    client: [u8; 16],
    v6: bool,
    backend_id: u32,
    expires_ms: u64,
    used: bool,
}

/// Client-to-backend templates of persistent services.
pub struct PersistTable {
    entries: Vec<Entry>,
}

impl PersistTable {
    /// A table of `capacity` entries (rounded up to a power of two).
    pub fn new(capacity: usize) -> Self {
        PersistTable { entries: vec![Entry::default(); capacity.max(1).next_power_of_two()] }
    }

    fn slot(&self, service_id: u32, client: &[u8; 16]) -> usize {
        let mut b = [0u8; 20];
        b[..16].copy_from_slice(client);
        b[16..].copy_from_slice(&service_id.to_le_bytes());
        usize::try_from(hash_bytes(&b, 0x7065_7273)).unwrap_or(0) & (self.entries.len() - 1)
    }

    /// The backend this client was given, if the template is still alive.
    pub fn get(&self, service_id: u32, client: &[u8; 16], v6: bool, now_ms: u64) -> Option<u32> {
        let e = &self.entries[self.slot(service_id, client)];
        (e.used && e.service_id == service_id && e.client == *client && e.v6 == v6 && e.expires_ms > now_ms)
            .then_some(e.backend_id)
    }

    /// Records or refreshes a template.
    pub fn put(&mut self, service_id: u32, client: [u8; 16], v6: bool, backend_id: u32, expires_ms: u64) {
        let i = self.slot(service_id, &client);
        self.entries[i] = Entry { service_id, client, v6, backend_id, expires_ms, used: true };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expire_and_are_per_service() {
        let mut t = PersistTable::new(64);
        t.put(1, [9; 16], false, 42, 1000);
        assert_eq!(t.get(1, &[9; 16], false, 999), Some(42));
        assert_eq!(t.get(2, &[9; 16], false, 999), None);
        assert_eq!(t.get(1, &[9; 16], true, 999), None);
        assert_eq!(t.get(1, &[9; 16], false, 1000), None);
    }
}

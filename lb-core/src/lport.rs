//! Full-NAT local port choice, with "predictable RSS".
//!
//! A full-NAT reply travels backend:port -> local_addr:local_port. With Toeplitz RSS the NIC
//! sends it to queue `reta[hash & (reta.len() - 1)]`. The hash is linear in its input bytes, so
//! the hash of the reply with local port 0 XOR the contribution of the port's two bytes is the
//! reply's hash: each candidate port costs two table lookups, and the LB picks a free port whose
//! reply lands on the very queue (worker) that owns the connection. No cross-core hand-off, no
//! shared table. On ports without RSS (memif, af_packet) workers partition the port space
//! instead (port % workers == worker index) and the runtime steers replies by that rule.

use crate::conntrack::ConnTable;
use crate::flow::{FlowKey, Toeplitz, rss_input};

/// How replies are steered to workers.
#[derive(Debug, Clone)]
pub enum Steering {
    /// One worker, or no constraint.
    Any,
    /// NIC Toeplitz RSS with this key and redirection table; this worker reads `queue`.
    Rss { toeplitz: Toeplitz, reta: Vec<u16>, queue: u16 },
    /// Software steering: this worker owns ports with `port % workers == index`.
    Partition { workers: u16, index: u16 },
}

/// Lowest local port handed out (below are well-known ports).
pub const FIRST_PORT: u16 = 1024;
/// Candidates tried before giving up (about `queues` are needed on average).
const MAX_TRIES: usize = 4096;

/// Per-worker local port chooser.
#[derive(Debug, Clone)]
pub struct LocalPorts {
    steering: Steering,
    next: u16,
}

impl LocalPorts {
    pub fn new(steering: Steering, start: u16) -> Self {
        LocalPorts { steering, next: start.max(FIRST_PORT) }
    }

    /// The steering rule.
    pub fn steering(&self) -> &Steering {
        &self.steering
    }

    /// True when a reply to `local_port` for this reply key would reach this worker.
    pub fn owns(&self, reply: &FlowKey) -> bool {
        match &self.steering {
            Steering::Any => true,
            Steering::Rss { toeplitz, reta, queue } => {
                let h = toeplitz.hash_flow(reply, true);
                reta.get(h as usize & (reta.len().max(1) - 1)) == Some(queue)
            }
            Steering::Partition { workers, index } => reply.dst_port % (*workers).max(1) == *index,
        }
    }

    /// Picks a local port for the reply key `reply` (its `dst_port` is ignored) that is free in
    /// `conns` and steered to this worker; `None` when none was found.
    pub fn choose(&mut self, reply: &FlowKey, conns: &ConnTable) -> Option<u16> {
        let mut key = *reply;
        let base = match &self.steering {
            Steering::Rss { toeplitz, .. } => {
                key.dst_port = 0;
                let (buf, len) = rss_input(&key, true);
                toeplitz.hash(&buf[..len])
            }
            _ => 0,
        };
        let port_at = if reply.v6 { 34 } else { 10 };
        for _ in 0..MAX_TRIES {
            let port = self.next;
            self.next = if self.next == u16::MAX { FIRST_PORT } else { self.next + 1 };
            let steered = match &self.steering {
                Steering::Any => true,
                Steering::Rss { toeplitz, reta, queue } => {
                    let [hi, lo] = port.to_be_bytes();
                    let h =
                        base ^ toeplitz.byte_contribution(port_at, hi) ^ toeplitz.byte_contribution(port_at + 1, lo);
                    reta.get(h as usize & (reta.len().max(1) - 1)) == Some(queue)
                }
                Steering::Partition { workers, index } => port % (*workers).max(1) == *index,
            };
            if steered {
                key.dst_port = port;
                if conns.lookup(&key).is_none() {
                    return Some(port);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::RSS_KEY_DEFAULT;

    fn reply() -> FlowKey {
        FlowKey::v4([10, 1, 0, 5], [10, 1, 0, 254], 8080, 0, 6)
    }

    #[test]
    fn chosen_ports_steer_replies_to_the_owning_queue() {
        let toeplitz = Toeplitz::new(&RSS_KEY_DEFAULT).unwrap();
        let reta: Vec<u16> = (0..128).map(|i| i % 4).collect();
        for queue in 0..4u16 {
            let mut lp = LocalPorts::new(Steering::Rss { toeplitz: toeplitz.clone(), reta: reta.clone(), queue }, 1024);
            let conns = ConnTable::new(16, 16);
            for _ in 0..50 {
                let port = lp.choose(&reply(), &conns).unwrap();
                let k = FlowKey { dst_port: port, ..reply() };
                // Recompute the full hash independently, as the NIC would.
                let h = toeplitz.hash_flow(&k, true);
                assert_eq!(reta[h as usize & 127], queue);
                assert!(lp.owns(&k));
            }
        }
    }

    #[test]
    fn ipv6_replies_are_steered_too() {
        let toeplitz = Toeplitz::new(&RSS_KEY_DEFAULT).unwrap();
        let reta: Vec<u16> = (0..64).map(|i| i % 2).collect();
        let mut lp = LocalPorts::new(Steering::Rss { toeplitz: toeplitz.clone(), reta: reta.clone(), queue: 1 }, 1024);
        let r = FlowKey::v6([0xfd; 16], [0xfe; 16], 443, 0, 6);
        let port = lp.choose(&r, &ConnTable::new(4, 4)).unwrap();
        let h = toeplitz.hash_flow(&FlowKey { dst_port: port, ..r }, true);
        assert_eq!(reta[h as usize & 63], 1);
    }

    #[test]
    fn partition_and_busy_ports() {
        let mut lp = LocalPorts::new(Steering::Partition { workers: 3, index: 2 }, 2000);
        let mut conns = ConnTable::new(16, 16);
        let p = lp.choose(&reply(), &conns).unwrap();
        assert_eq!(p % 3, 2);
        // A port whose reply key is tracked is skipped.
        let used = FlowKey { dst_port: p + 3, ..reply() };
        let c = crate::conntrack::Conn {
            orig: FlowKey::v4([1; 4], [2; 4], 1, 2, 6),
            reply: used,
            reply_indexed: true,
            state: crate::conntrack::TcpState::Established,
            ..Default::default()
        };
        conns.insert(c).unwrap();
        assert_eq!(lp.choose(&reply(), &conns), Some(p + 6));
    }
}

//! Per-worker connection tracking with a fixed capacity allocated at start.
//!
//! A connection is one slab entry reachable from up to two keys, like IPVS: the original
//! direction (client -> VIP) and, for `nat`/`fnat`, the reply direction (backend -> client or
//! local address). The index is open addressing with linear probing and backward-shift deletion
//! (no tombstones), sized to at most 50% load, so it never grows or rehashes on the packet path.
//! Its hash is keyed by a seed each table draws at random, so nobody can choose flows that
//! pile up in one probe run.
//!
//! TCP follows IPVS's state machine and default timeouts; UDP has one timeout. Expiry is
//! amortised: `expire` visits a bounded number of entries per call, and lookups treat an
//! expired entry as absent. Embryonic connections (no handshake completed) are capped, and
//! nothing ever evicts a live entry, so a SYN flood cannot push out established connections:
//! once the cap or the capacity is reached, new flows get a stateless decision instead.

mod entry;
mod state;
mod table;
mod view;

pub use entry::{Entry, Wide};
pub use state::{Dir, TcpEvent, TcpState, Timeouts, tcp_transition};
pub use table::{Conn, ConnId, ConnTable, InsertError, PROGRESS_BACKEND, PROGRESS_CLIENT, SavedConn, SynProxy};
pub use view::{ConnView, EntryView, Narrow, WholeAddrs, WideView};

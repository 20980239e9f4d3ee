//! The connection table: a slab of connections reachable from up to two keys, with a fixed-size
//! open-addressing index (see the module above for the design).

use super::entry::{Entry, Handshake, Wide};
use super::state::{Dir, TcpState};
use crate::flow::{FlowKey, fast_hash, random_seed};
use crate::prefetch::Prefetch;
use crate::service::Mode;
use serde::{Deserialize, Serialize};

/// Index of a connection in its worker's table.
pub type ConnId = u32;

/// One tracked connection, whole: what the table hands out and takes in (it stores each as an
/// `Entry` of one cache line, and side arrays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Conn {
    /// Client -> VIP, as received.
    pub orig: FlowKey,
    /// Backend -> client (nat) or backend -> local address (fnat); for dr/tun/gue, the
    /// backend's address and port with no reply index.
    pub reply: FlowKey,
    pub backend_id: u32,
    pub service_id: u32,
    pub mode: Mode,
    pub state: TcpState,
    /// Whether `reply` is in the index.
    pub reply_indexed: bool,
    pub live: bool,
    /// GUE destination port of the backend (gue mode).
    pub tunnel_port: u16,
    /// gue, gre: the tunnel carries a checksum.
    #[serde(default)]
    pub tunnel_csum: bool,
    /// Expiry time in milliseconds of the caller's clock.
    pub expires_ms: u64,
    /// Highest TCP acknowledgement seen per direction (`Dir as usize`), for forward progress.
    pub acked: [u32; 2],
    /// `PROGRESS_*` bits: a side acknowledged new data since the LB last sent toward it.
    pub progress: u8,
    /// Whether lbd completed the client's handshake itself (SYN proxy).
    pub synproxy: SynProxy,
    /// SYN proxy: lbd's initial sequence number (the cookie) while `Pending`; once `Active`,
    /// the backend's initial sequence number minus the cookie.
    pub seq_delta: u32,
    /// SYN proxy: the client's initial sequence number.
    pub client_isn: u32,
    /// SYN proxy: when the SYN last went to the backend (low 32 bits of the clock, in ms).
    pub syn_sent_ms: u32,
    /// Connection sync: when peers last heard of it (low 32 bits of the clock, in ms; 0 for
    /// never).
    #[serde(default)]
    pub synced_ms: u32,
}

/// A connection's SYN proxy state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[repr(u8)]
pub enum SynProxy {
    /// Not proxied.
    #[default]
    Off,
    /// The client completed its handshake with lbd; the backend's SYN-ACK is awaited.
    Pending,
    /// Both handshakes done; sequence numbers are translated.
    Active,
}

/// The client acknowledged new data: its next hop is reachable.
pub const PROGRESS_CLIENT: u8 = 1;
/// The backend acknowledged new data (or, without replies through the LB, the client did).
pub const PROGRESS_BACKEND: u8 = 2;

impl Conn {
    /// True for a TCP connection that has not completed its handshake.
    pub fn is_embryonic(&self) -> bool {
        self.orig.proto == crate::wire::ip_proto::TCP && self.state.is_embryonic()
    }
}

/// A connection as one lbd hands it to another (`lbd --takeover`, `lbctl conns --save`): its
/// service and backend by address, since ids are a table's own, and its time left rather than
/// a deadline on the old process's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedConn {
    pub vip: std::net::IpAddr,
    pub port: u16,
    pub proto: u8,
    pub backend: std::net::IpAddr,
    pub backend_port: u16,
    pub expires_in_ms: u64,
    pub conn: Conn,
}

/// Why a connection was not inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertError {
    /// Every entry is in use.
    Full,
    /// The cap on embryonic connections is reached.
    EmbryonicLimit,
    /// The original (or reply) key is already tracked.
    Exists,
}

#[derive(Clone, Copy)]
struct Slot {
    /// Low 32 bits of the key's hash (home position and a cheap pre-compare).
    hash: u32,
    /// Entry index << 1 | (1 for the reply key); `EMPTY` when free.
    entry: u32,
}

const EMPTY: u32 = u32::MAX;
const FREE_SLOT: Slot = Slot { hash: 0, entry: EMPTY };
const NO_DEADLINE: u64 = u64::MAX;
/// Index slots `touch_slot` reads past a home slot held by another key.
const WARM_PROBE: usize = 4;

/// A fixed-capacity connection table owned by one worker.
pub struct ConnTable {
    entries: Vec<Entry>,
    /// Whole addresses of the entries whose keys are not plain IPv4; allocated zeroed, so the
    /// pages of an IPv4-only table are never touched.
    wide: Vec<Wide>,
    /// The SYN proxy's client ISN and SYN time, likewise.
    handshakes: Vec<Handshake>,
    /// For the expiry sweep, a lower bound of each entry's `expires_ms` (`u64::MAX` when
    /// free): the sweep reads eight entries' bounds per cache line instead of two or three
    /// lines per entry, and opens an entry only when its bound has passed. A packet that
    /// pushes the deadline later writes only the entry, whose line its lookup brought in: a
    /// write here per packet would be a cache miss per packet.
    deadlines: Vec<u64>,
    free: Vec<ConnId>,
    index: Vec<Slot>,
    mask: usize,
    /// The index hash's key, random per table: with a fixed one, anyone who reads the source
    /// could choose flows that share a home slot and make every probe walk them all (Linux
    /// seeds its conntrack hash at random for the same reason).
    seed: u64,
    embryonic: usize,
    embryonic_limit: usize,
    sweep_cursor: usize,
}

impl ConnTable {
    /// Allocates room for `capacity` connections, of which at most `embryonic_limit` may be
    /// embryonic at once.
    pub fn new(capacity: usize, embryonic_limit: usize) -> Self {
        Self::with_seed(capacity, embryonic_limit, random_seed())
    }

    /// `new` with the index hash keyed by `seed` (tests that need a reproducible layout).
    pub fn with_seed(capacity: usize, embryonic_limit: usize, seed: u64) -> Self {
        let capacity = capacity.clamp(1, (EMPTY >> 2) as usize);
        let slots = (capacity * 4).next_power_of_two();
        let mut free: Vec<ConnId> = (0..capacity).map(|i| u32::try_from(i).unwrap_or(0)).collect();
        free.reverse();
        ConnTable {
            entries: vec![Entry::default(); capacity],
            wide: vec![[[[0; 16]; 2]; 2]; capacity],
            handshakes: vec![[0; 2]; capacity],
            deadlines: vec![NO_DEADLINE; capacity],
            free,
            index: vec![FREE_SLOT; slots],
            mask: slots - 1,
            seed,
            embryonic: 0,
            embryonic_limit: embryonic_limit.min(capacity),
            sweep_cursor: 0,
        }
    }

    /// Bytes a table of `capacity` connections allocates at start: entries, side arrays (whose
    /// pages an IPv4-only table never touches), deadlines, index, free list.
    pub fn memory_bytes(capacity: usize) -> usize {
        let capacity = capacity.clamp(1, (EMPTY >> 2) as usize);
        let per_entry = std::mem::size_of::<Entry>() + std::mem::size_of::<Wide>() + std::mem::size_of::<Handshake>();
        capacity * (per_entry + std::mem::size_of::<u64>() + std::mem::size_of::<ConnId>())
            + (capacity * 4).next_power_of_two() * std::mem::size_of::<Slot>()
    }

    /// Maximum number of connections.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Connections tracked now (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Embryonic connections tracked now.
    pub fn embryonic(&self) -> usize {
        self.embryonic
    }

    /// `key`'s hash, where its search starts. `touch_slot` and `warm_entry` load what `lookup`
    /// will read, so a burst can start all of its cache misses before using any.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u32 {
        // The low half of the 64-bit hash is what the index uses.
        #[allow(clippy::cast_possible_truncation)]
        let low = fast_hash(key, self.seed) as u32;
        low
    }

    /// Finds the connection a key belongs to and the direction the key names.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(ConnId, Dir)> {
        self.lookup_hashed(key, self.hash(key))
    }

    /// `lookup` with the hash `home` gave for `key` (the burst's first pass computed it).
    #[inline]
    pub fn lookup_hashed(&self, key: &FlowKey, h: u32) -> Option<(ConnId, Dir)> {
        let mut i = h as usize & self.mask;
        loop {
            let s = self.index[i];
            if s.entry == EMPTY {
                return None;
            }
            if s.hash == h {
                let id = (s.entry >> 1) as usize;
                let reply = s.entry & 1 == 1;
                let wide = || &self.wide[id][usize::from(reply)];
                if self.entries[id].holds(reply, key, wide) {
                    return Some((s.entry >> 1, if reply { Dir::Reply } else { Dir::Orig }));
                }
            }
            i = (i + 1) & self.mask;
        }
    }

    /// `lookup_hashed`, trying `hint` first: the entry reference `touch_slot` gave for `h`, which
    /// spares the index for nearly every packet of a burst. The index holds exactly the live
    /// entries' indexed keys, each once, so a live entry that holds `key` in an indexed
    /// direction is the one the index leads to, whatever changed since the hint was taken.
    #[inline(always)]
    pub fn lookup_hinted(&self, key: &FlowKey, h: u32, hint: u32) -> Option<(ConnId, Dir)> {
        let (id, reply) = (hint >> 1, hint & 1 == 1);
        if let Some(e) = self.entries.get(id as usize)
            && e.indexes(reply)
            && e.holds(reply, key, || &self.wide[id as usize][usize::from(reply)])
        {
            return Some((id, if reply { Dir::Reply } else { Dir::Orig }));
        }
        self.lookup_hashed(key, h)
    }

    /// Loads the index from the home slot of `hash` on and returns the entry reference of the
    /// first slot holding `hash` (a few slots at most: the rest of the probe run is `lookup`'s),
    /// for `warm_entry`; `u32::MAX` when there is none.
    #[inline]
    pub fn touch_slot(&self, hash: u32) -> u32 {
        let slot = hash as usize & self.mask;
        for i in 0..WARM_PROBE {
            let s = self.index[(slot + i) & self.mask];
            if s.hash == hash || s.entry == EMPTY {
                return s.entry;
            }
        }
        EMPTY
    }

    /// Starts loading (with a prefetching `P`) or loads the cache line of the entry a slot
    /// refers to. One instruction (a prefetch or a one-byte load) and nothing else: the shorter
    /// the warm-up loop, the more of a group's misses the core has in flight at once.
    #[inline(always)]
    pub fn warm_entry<P: Prefetch>(&self, entry: u32) {
        if let Some(e) = self.entries.get((entry >> 1) as usize) {
            if P::PREFETCHES {
                P::line(e);
            } else {
                std::hint::black_box(e.proto);
            }
        }
    }

    /// `warm_entry` for the line of the side array's addresses of the entry a slot refers to:
    /// an IPv6 key's lookup reads it.
    #[inline(always)]
    pub fn warm_addrs<P: Prefetch>(&self, entry: u32) {
        if let Some(a) = self.wide.get((entry >> 1) as usize) {
            if P::PREFETCHES {
                P::line(a);
            } else {
                std::hint::black_box(a[0][0][0]);
            }
        }
    }

    /// The connection with this id, whole.
    pub fn get(&self, id: ConnId) -> Conn {
        let i = id as usize;
        let e = &self.entries[i];
        let handshake = if e.has_handshake() { self.handshakes[i] } else { [0; 2] };
        e.unpack(&self.wide[i], handshake)
    }

    /// Connection `id`, one with a key that is not plain IPv4 (not `Entry::is_narrow`;
    /// `Entry::narrow` gives the others), as forwarding reads it: its entry and its side
    /// array's addresses.
    #[inline(always)]
    pub(crate) fn wide_view(&self, id: ConnId) -> crate::conntrack::WideView {
        let i = id as usize;
        self.entries[i].with_addrs(&self.wide[i])
    }

    /// The entry of connection `id`, as stored: what the established path reads in place.
    #[inline(always)]
    pub fn entry(&self, id: ConnId) -> &Entry {
        &self.entries[id as usize]
    }

    /// Mutable access to the entry of connection `id`. Keys, expiry and state must not be
    /// changed through it (they have `set_expiry` and `set_state`).
    #[inline(always)]
    pub fn entry_mut(&mut self, id: ConnId) -> &mut Entry {
        &mut self.entries[id as usize]
    }

    /// Changes connection `id` through `f`, on a whole copy written back. Keys and whether the
    /// reply key is indexed stay as they were; expiry and state must be changed with
    /// `set_expiry` and `set_state`.
    pub fn update(&mut self, id: ConnId, f: impl FnOnce(&mut Conn)) {
        let mut c = self.get(id);
        f(&mut c);
        let i = id as usize;
        self.entries[i].update_from(&c);
        if self.entries[i].has_handshake() {
            self.handshakes[i] = [c.client_isn, c.syn_sent_ms];
        }
    }

    /// Sets when a connection expires.
    #[inline]
    pub fn set_expiry(&mut self, id: ConnId, expires_ms: u64) {
        let e = &mut self.entries[id as usize];
        // Earlier (a state with a shorter timeout): the bound must follow. Later: it stays a
        // lower bound, and the sweep catches up when it passes.
        if expires_ms < e.expires_ms {
            self.deadlines[id as usize] = expires_ms;
        }
        e.expires_ms = expires_ms;
    }

    /// Tracks a new connection; indexes its reply key too when `conn.reply_indexed`.
    pub fn insert(&mut self, mut conn: Conn) -> Result<ConnId, InsertError> {
        if conn.is_embryonic() && self.embryonic >= self.embryonic_limit {
            return Err(InsertError::EmbryonicLimit);
        }
        if self.lookup(&conn.orig).is_some() || (conn.reply_indexed && self.lookup(&conn.reply).is_some()) {
            return Err(InsertError::Exists);
        }
        let id = self.free.pop().ok_or(InsertError::Full)?;
        conn.live = true;
        if conn.is_embryonic() {
            self.embryonic += 1;
        }
        // A reply key is of its connection's protocol; the entry holds one for both.
        conn.reply.proto = conn.orig.proto;
        let (orig, reply, indexed) = (conn.orig, conn.reply, conn.reply_indexed);
        let i = id as usize;
        let (entry, wide) = Entry::pack(&conn);
        self.entries[i] = entry;
        if let Some(wide) = wide {
            self.wide[i] = wide;
        }
        if entry.has_handshake() {
            self.handshakes[i] = [conn.client_isn, conn.syn_sent_ms];
        }
        self.deadlines[i] = conn.expires_ms;
        self.index_insert(&orig, id << 1);
        if indexed {
            self.index_insert(&reply, (id << 1) | 1);
        }
        Ok(id)
    }

    fn index_insert(&mut self, key: &FlowKey, entry: u32) {
        let h = self.hash(key);
        let mut i = h as usize & self.mask;
        // Load is at most 50%, so a free slot is always near.
        while self.index[i].entry != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.index[i] = Slot { hash: h, entry };
    }

    /// Takes `key`, the key of entry reference `entry`, out of the index.
    fn index_remove(&mut self, key: &FlowKey, entry: u32) {
        let mut i = self.hash(key) as usize & self.mask;
        while self.index[i].entry != entry {
            if self.index[i].entry == EMPTY {
                return;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: pull later members of the probe run into the hole.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let s = self.index[j];
            if s.entry == EMPTY {
                break;
            }
            let home = s.hash as usize & self.mask;
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.index[hole] = s;
                hole = j;
            }
        }
        self.index[hole] = FREE_SLOT;
    }

    /// Changes a connection's TCP state, keeping the embryonic count right.
    pub fn set_state(&mut self, id: ConnId, state: TcpState) {
        let c = &mut self.entries[id as usize];
        let was = c.is_embryonic();
        c.state = state;
        let is = c.is_embryonic();
        match (was, is) {
            (true, false) => self.embryonic -= 1,
            (false, true) => self.embryonic += 1,
            _ => {}
        }
    }

    /// Forgets a connection; returns it.
    pub fn remove(&mut self, id: ConnId) -> Conn {
        let c = self.get(id);
        if !c.live {
            return c;
        }
        self.index_remove(&c.orig, id << 1);
        if c.reply_indexed {
            self.index_remove(&c.reply, (id << 1) | 1);
        }
        if c.is_embryonic() {
            self.embryonic -= 1;
        }
        let i = id as usize;
        self.entries[i].set_live(false);
        if self.entries[i].is_wide() {
            self.wide[i] = [[[0; 16]; 2]; 2];
        }
        self.deadlines[i] = NO_DEADLINE;
        self.free.push(id);
        c
    }

    /// Visits up to `budget` entries from where the last call stopped and removes those expired
    /// at `now_ms`, handing each to `on_expired`. Returns how many were removed.
    pub fn expire(&mut self, now_ms: u64, budget: usize, mut on_expired: impl FnMut(&Conn)) -> usize {
        let n = self.entries.len();
        let mut removed = 0;
        let mut left = budget.min(n);
        while left > 0 {
            let start = self.sweep_cursor;
            let end = (start + left).min(n);
            let Some(k) = first_due(&self.deadlines[start..end], now_ms) else {
                left -= end - start;
                self.sweep_cursor = if end == n { 0 } else { end };
                continue;
            };
            let id = start + k;
            left -= k + 1;
            self.sweep_cursor = if id + 1 == n { 0 } else { id + 1 };
            let expires_ms = self.entries[id].expires_ms;
            if expires_ms > now_ms {
                self.deadlines[id] = expires_ms;
                continue;
            }
            let c = self.remove(u32::try_from(id).unwrap_or(0));
            on_expired(&c);
            removed += 1;
        }
        removed
    }

    /// The live connection in entry `id`, if any (a walk over `0..capacity()`).
    pub fn live(&self, id: ConnId) -> Option<Conn> {
        self.entries.get(id as usize).filter(|e| e.live()).map(|_| self.get(id))
    }

    /// Live connections, for the control plane's listing (not for the packet path).
    pub fn iter(&self) -> impl Iterator<Item = Conn> + '_ {
        (0..self.entries.len()).filter_map(|i| self.live(u32::try_from(i).unwrap_or(u32::MAX)))
    }
}

/// The first of `deadlines` that has passed at `now_ms`. Most have not: the sweep runs this on
/// every burst, so it compares eight at a time, about two instructions per entry.
#[inline]
fn first_due(deadlines: &[u64], now_ms: u64) -> Option<usize> {
    let mut from = 0;
    for eight in deadlines.chunks_exact(8) {
        if eight.iter().any(|&d| d <= now_ms) {
            break;
        }
        from += 8;
    }
    deadlines[from..].iter().position(|&d| d <= now_ms).map(|k| from + k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::state::S;
    use crate::wire::ip_proto;

    fn conn(i: u32, state: TcpState) -> Conn {
        let client = FlowKey::v4(i.to_be_bytes(), [10, 0, 0, 100], 40000, 80, ip_proto::TCP);
        let reply = FlowKey::v4([10, 1, 0, 1], i.to_be_bytes(), 8080, 40000, ip_proto::TCP);
        Conn {
            orig: client,
            reply,
            reply_indexed: true,
            state,
            mode: Mode::Nat,
            expires_ms: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn finds_both_directions_and_forgets_on_remove() {
        let mut t = ConnTable::new(16, 16);
        let c = conn(7, S::Established);
        let id = t.insert(c).unwrap();
        assert_eq!(t.lookup(&c.orig), Some((id, Dir::Orig)));
        assert_eq!(t.lookup(&c.reply), Some((id, Dir::Reply)));
        assert_eq!(t.insert(c), Err(InsertError::Exists));
        t.remove(id);
        assert_eq!(t.lookup(&c.orig), None);
        assert_eq!(t.lookup(&c.reply), None);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_refuses_without_evicting() {
        let mut t = ConnTable::new(4, 4);
        for i in 0..4 {
            t.insert(conn(i, S::Established)).unwrap();
        }
        assert_eq!(t.insert(conn(99, S::Established)), Err(InsertError::Full));
        for i in 0..4 {
            assert!(t.lookup(&conn(i, S::Established).orig).is_some());
        }
    }

    #[test]
    fn syn_flood_cannot_displace_established() {
        let mut t = ConnTable::new(100, 50);
        for i in 0..40 {
            t.insert(conn(i, S::Established)).unwrap();
        }
        let mut refused = 0;
        for i in 1000..2000 {
            if t.insert(conn(i, S::SynRecv)) == Err(InsertError::EmbryonicLimit) {
                refused += 1;
            }
        }
        assert_eq!((t.embryonic(), refused), (50, 950));
        // Established ones are all still there, and a new established flow still fits.
        assert!((0..40).all(|i| t.lookup(&conn(i, S::Established).orig).is_some()));
        assert!(t.insert(conn(5000, S::Established)).is_ok());
        // Completing a handshake frees an embryonic place.
        let (id, _) = t.lookup(&conn(1000, S::SynRecv).orig).unwrap();
        t.set_state(id, S::Established);
        assert_eq!(t.embryonic(), 49);
    }

    #[test]
    fn first_due_is_the_first_passed_deadline() {
        // Lengths around the eight-entry step, a passed bound at every position (or none).
        for len in 0..27 {
            for due in 0..=len {
                let mut d = vec![100u64; len];
                if let Some(x) = d.get_mut(due) {
                    *x = 50;
                }
                d.iter_mut().skip(due + 3).step_by(5).for_each(|x| *x = 10);
                assert_eq!(first_due(&d, 60), d.iter().position(|&x| x <= 60), "{len} {due}");
                assert_eq!(first_due(&d, 100), (len > 0).then_some(0));
            }
        }
    }

    #[test]
    fn bounded_sweep_expires_everything_eventually() {
        let mut t = ConnTable::new(64, 64);
        for i in 0..64 {
            let mut c = conn(i, S::Established);
            c.expires_ms = if i % 2 == 0 { 10 } else { 10_000 };
            t.insert(c).unwrap();
        }
        let mut seen = 0;
        assert!(t.expire(100, 10, |_| seen += 1) <= 10);
        while t.expire(100, 10, |_| seen += 1) > 0 {}
        // One more lap so the cursor passes every entry.
        for _ in 0..7 {
            t.expire(100, 10, |_| seen += 1);
        }
        assert_eq!((seen, t.len()), (32, 32));
        assert!((0..64).all(|i| t.lookup(&conn(i, S::Established).orig).is_some() == (i % 2 == 1)));
    }

    #[test]
    fn the_sweep_follows_set_expiry_both_ways() {
        let mut t = ConnTable::new(4, 4);
        let a = t.insert(conn(1, S::Established)).unwrap();
        let b = t.insert(conn(2, S::Established)).unwrap();
        t.set_expiry(a, 5000);
        t.set_expiry(b, 50);
        let mut gone = Vec::new();
        t.expire(100, 4, |c| gone.push(c.orig));
        assert_eq!(gone, vec![conn(2, S::Established).orig]);
        assert_eq!(t.get(a).expires_ms, 5000);
        // A removed entry's deadline never fires again.
        t.remove(a);
        assert_eq!(t.expire(10_000, 4, |_| {}), 0);
    }

    #[test]
    fn a_later_deadline_is_caught_up_when_the_old_one_passes() {
        let mut t = ConnTable::new(2, 2);
        let a = t.insert(conn(1, S::Established)).unwrap(); // expires at 1000
        t.set_expiry(a, 3000);
        // The old deadline passed: the sweep looks, keeps it, and remembers the new one.
        assert_eq!(t.expire(2000, 2, |_| {}), 0);
        assert_eq!(t.deadlines[a as usize], 3000);
        assert_eq!(t.expire(2999, 2, |_| {}), 0);
        assert_eq!(t.expire(3000, 2, |_| {}), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn touch_slot_finds_keys_that_probing_displaced() {
        let mut t = ConnTable::new(16, 16);
        for i in 0..16 {
            t.insert(conn(i, S::Established)).unwrap();
        }
        let mut displaced = 0;
        for i in 0..16 {
            for key in [conn(i, S::Established).orig, conn(i, S::Established).reply] {
                let (id, dir) = t.lookup(&key).unwrap();
                let entry = (id << 1) | u32::from(dir == Dir::Reply);
                let hash = t.hash(&key);
                let home = hash as usize & t.mask;
                let found = t.touch_slot(hash);
                if t.index[home].entry != entry {
                    displaced += 1;
                }
                // Its own entry, or none when it sits beyond the slots the warm stage reads.
                assert!(found == entry || found == EMPTY, "key {i}: {found} for {entry}");
                assert!(found == entry || (0..WARM_PROBE).all(|k| t.index[(home + k) & t.mask].hash != hash));
            }
        }
        assert!(displaced > 0, "the test needs a key away from its home slot");
    }

    #[test]
    fn a_hinted_lookup_is_the_lookup_whatever_the_hint() {
        let mut t = ConnTable::new(32, 32);
        let mut keys = Vec::new();
        for i in 0..24 {
            let mut c = conn(i, S::Established);
            // Every third connection's reply key is not indexed (dr, tun, gue).
            c.reply_indexed = i % 3 != 0;
            if i % 3 == 0 {
                c.mode = Mode::Dr;
            }
            t.insert(c).unwrap();
            keys.extend([c.orig, c.reply]);
        }
        // Removed connections leave dead entries that still hold their keys.
        for id in [2, 5, 9, 13] {
            t.remove(id);
        }
        // One dr connection's reply key, unindexed, is another connection's original key.
        let mut clash = conn(100, S::Established);
        clash.orig = t.get(3).reply;
        clash.reply.src[3] = 200;
        t.insert(clash).unwrap();
        keys.extend([clash.orig, clash.reply, conn(999, S::Established).orig]);
        let hints = (0..64).chain([EMPTY, EMPTY - 1, 1 << 30]);
        for hint in hints {
            for key in &keys {
                let h = t.hash(key);
                assert_eq!(t.lookup_hinted(key, h, hint), t.lookup(key), "hint {hint} key {key:?}");
            }
        }
        // And the hint is taken: a hint for the right entry answers without the index.
        let (id, dir) = t.lookup(&keys[2]).unwrap();
        assert_eq!(t.lookup_hinted(&keys[2], 0, (id << 1) | u32::from(dir == Dir::Reply)), Some((id, dir)));
    }

    #[test]
    fn keys_chosen_to_share_a_home_slot_scatter_under_another_tables_seed() {
        // Someone who knows a table's seed picks flows whose keys all home in one slot: each
        // lookup among them would walk the whole run.
        let known = ConnTable::with_seed(64, 64, 1);
        let mut chosen = Vec::new();
        for i in 0..1_000_000u32 {
            let [_, b, c, d] = i.to_be_bytes();
            let key = FlowKey::v4([10, b, c, d], [10, 0, 0, 100], 40_000, 80, ip_proto::TCP);
            if known.hash(&key) as usize & known.mask == 0 {
                chosen.push(key);
                if chosen.len() == 64 {
                    break;
                }
            }
        }
        assert_eq!(chosen.len(), 64);
        // Every table draws its own seed, so the same flows scatter over a new table's slots
        // (64 random homes among 256 take about 57 distinct ones).
        let (a, b) = (ConnTable::new(64, 64), ConnTable::new(64, 64));
        assert_ne!(a.seed, b.seed);
        for t in [a, b] {
            let homes: std::collections::HashSet<usize> = chosen.iter().map(|k| t.hash(k) as usize & t.mask).collect();
            assert!(homes.len() > 40, "{} distinct home slots", homes.len());
        }
    }

    #[test]
    fn churn_keeps_the_index_consistent() {
        // Insert and remove in an interleaved order to exercise backward-shift deletion.
        let mut t = ConnTable::new(256, 256);
        let mut ids = std::collections::HashMap::new();
        for round in 0..20u32 {
            for i in 0..200u32 {
                let k = round * 1000 + i;
                if let Ok(id) = t.insert(conn(k, S::Established)) {
                    ids.insert(k, id);
                }
            }
            let keys: Vec<u32> = ids.keys().copied().filter(|k| k % 3 != round % 3).collect();
            for k in keys {
                t.remove(ids.remove(&k).unwrap());
            }
            for (k, id) in &ids {
                assert_eq!(t.lookup(&conn(*k, S::Established).orig), Some((*id, Dir::Orig)));
                assert_eq!(t.lookup(&conn(*k, S::Established).reply), Some((*id, Dir::Reply)));
            }
            assert_eq!(t.len(), ids.len());
        }
    }
}

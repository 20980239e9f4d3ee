//! The neighbour table (IP to MAC and port), shared by all workers without locks, with Linux's
//! neighbour states (`net/core/neighbour.c`): INCOMPLETE, REACHABLE, STALE, DELAY, PROBE,
//! FAILED, and PERMANENT for static entries.
//!
//! Nothing a single packet says is believed on its own:
//! - An entry is created only by a reply to a request lbd sent (the entry is INCOMPLETE while
//!   the request is out) or by a request addressed to one of lbd's addresses or VIPs (the entry
//!   starts STALE, as in Linux). Unsolicited replies, gratuitous ARP and neighbour
//!   advertisements without the Solicited flag never create one.
//! - A claim of a different MAC for a known address is ignored within `locktime_ms` of the last
//!   change; after that it only sends the entry to PROBE: traffic keeps going to the MAC in use,
//!   which is asked by unicast whether it still holds the address. If it answers, the claim was
//!   a conflict and nothing changes; only when the unicast probes go unanswered is the address
//!   asked by broadcast, and whoever answers that request is believed.
//! - Entries are REACHABLE for `reachable_ms` after a confirmation (a solicited reply, or a TCP
//!   segment that acknowledges new data from that neighbour: forward progress), then STALE. A
//!   STALE entry that is used goes to DELAY, then PROBE (unicast probes, then broadcast ones),
//!   and is removed when nobody answers. A poisoned entry therefore heals by itself.
//! - The table is bounded. A new entry may replace only an entry that is not in use (neither
//!   static, nor used or confirmed recently, nor a resolution in progress), so a flood of
//!   requests from spoofed senders cannot evict a gateway or a live client.
//!
//! Concurrency: each slot's address, MAC and port are guarded by a sequence lock built from
//! atomics. A writer claims the slot by moving its sequence number from even to odd (a writer
//! that loses the race skips the update: the sender will retry), a reader retries while the
//! number is odd or changed under it. The neighbour state word changes by compare-and-swap, so
//! exactly one worker sends each probe. Readers never wait on a lock; nothing allocates after
//! creation.

use crate::flow::hash_addr;
use crate::wire::MacAddr;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// Slots probed per lookup or insert.
const WINDOW: usize = 8;
const VALID: u64 = 1 << 63;
const STATIC: u64 = 1 << 62;
const V6: u64 = 1 << 61;

/// Timers and limits, with Linux's defaults (`ip ntable show`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NeighParams {
    /// Entries in the table (rounded up to a power of two).
    pub capacity: usize,
    /// How long a confirmation keeps an entry REACHABLE (Linux's base_reachable_time).
    pub reachable_ms: u64,
    /// How long a used STALE entry waits in DELAY for a confirmation before it is probed.
    pub delay_first_probe_ms: u64,
    /// Time between two probes or requests for one address.
    pub retrans_ms: u64,
    /// Unicast probes to the MAC in use before asking by broadcast.
    pub ucast_probes: u8,
    /// Broadcast requests before the address is given up (FAILED).
    pub mcast_probes: u8,
    /// A changed MAC is not considered within this time of the last change.
    pub locktime_ms: u64,
    /// An entry used within this time is in use: a new entry never replaces it.
    pub gc_stale_ms: u64,
}

impl Default for NeighParams {
    fn default() -> Self {
        NeighParams {
            capacity: 4096,
            reachable_ms: 30_000,
            delay_first_probe_ms: 5_000,
            retrans_ms: 1_000,
            ucast_probes: 3,
            mcast_probes: 3,
            locktime_ms: 1_000,
            gc_stale_ms: 60_000,
        }
    }
}

impl NeighParams {
    /// Checks the values, naming the first bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.capacity < WINDOW || self.capacity > 1 << 24 {
            return Err(format!("neighbours.capacity: {} is outside {WINDOW}..=16777216", self.capacity));
        }
        for (name, v) in [
            ("reachable_ms", self.reachable_ms),
            ("delay_first_probe_ms", self.delay_first_probe_ms),
            ("retrans_ms", self.retrans_ms),
        ] {
            if v == 0 {
                return Err(format!("neighbours.{name}: must be at least 1"));
            }
        }
        if self.mcast_probes == 0 || self.mcast_probes > 15 || self.ucast_probes > 15 {
            return Err("neighbours.mcast_probes must be 1..=15 and neighbours.ucast_probes 0..=15".into());
        }
        Ok(())
    }
}

/// A neighbour's state, as `ip neigh` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Permanent,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Incomplete => "INCOMPLETE",
            State::Reachable => "REACHABLE",
            State::Stale => "STALE",
            State::Delay => "DELAY",
            State::Probe => "PROBE",
            State::Failed => "FAILED",
            State::Permanent => "PERMANENT",
        }
    }
}

/// How a packet came to name an address's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// An ARP reply or Solicited NA addressed to us: believed only if we asked.
    Solicited,
    /// An ARP request or NS for one of our addresses or VIPs.
    Request,
    /// Anything else: gratuitous ARP, unsolicited replies, NA without the Solicited flag.
    Unsolicited,
}

/// What the table did, counted per event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    /// An entry was created or completed.
    Learned,
    /// A claim was ignored (unsolicited for an unknown address, within locktime, static).
    Refused,
    /// The MAC of an entry changed (after its old MAC failed the unicast probes).
    Changed,
    /// A claim contradicted an entry in use: the entry is probed, not changed.
    Conflict,
    /// A probe or request was sent.
    ProbeSent,
    /// Nobody answered: the entry was removed, or a resolution gave up.
    Failed,
    /// A new entry found no slot it was allowed to take.
    TableFull,
    /// A solicited reply or forward progress confirmed an entry.
    Confirmed,
}

impl Event {
    pub const COUNT: usize = Event::Confirmed as usize + 1;
    pub const ALL: [Event; Event::COUNT] = [
        Event::Learned,
        Event::Refused,
        Event::Changed,
        Event::Conflict,
        Event::ProbeSent,
        Event::Failed,
        Event::TableFull,
        Event::Confirmed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Learned => "learned",
            Event::Refused => "refused",
            Event::Changed => "changed",
            Event::Conflict => "conflict",
            Event::ProbeSent => "probe_sent",
            Event::Failed => "failed",
            Event::TableFull => "table_full",
            Event::Confirmed => "confirmed",
        }
    }
}

/// What to do with a packet for a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Send to `mac`. `slot` names the entry for `confirm`.
    Ready { mac: MacAddr, port: u16, slot: u32 },
    /// Send to `mac`, and send a probe too: unicast to `mac`, or a broadcast request.
    Probe { mac: MacAddr, port: u16, slot: u32, unicast: bool },
    /// Unknown; `request` says whether a broadcast request is due now (it is rate-limited).
    Unresolved { request: bool },
}

/// One entry, for listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub addr: [u8; 16],
    pub v6: bool,
    pub mac: MacAddr,
    pub port: u16,
    pub state: State,
    /// Milliseconds since the last confirmation (or creation when never confirmed).
    pub age_ms: u64,
    /// Probes or requests sent in the current round.
    pub probes: u8,
}

// The state word: stored state in bits 0..4, probes sent in 4..8, "a conflicting claim is being
// checked" in bit 8, a time in milliseconds (when DELAY began, or the last probe) from bit 16.
const ST_INCOMPLETE: u64 = 1;
const ST_REACHABLE: u64 = 2;
const ST_DELAY: u64 = 3;
const ST_PROBE: u64 = 4;
const CLAIM_PENDING: u64 = 1 << 8;

fn nud(state: u64, probes: u64, since_ms: u64) -> u64 {
    state | (probes.min(15) << 4) | (since_ms << 16)
}
fn nud_state(w: u64) -> u64 {
    w & 0xf
}
fn nud_probes(w: u64) -> u64 {
    (w >> 4) & 0xf
}
fn nud_since(w: u64) -> u64 {
    w >> 16
}

#[derive(Default)]
struct Slot {
    seq: AtomicU32,
    addr: [AtomicU32; 4],
    /// MAC in the low 48 bits, port in bits 48..56, flags above.
    meta: AtomicU64,
    /// When the MAC was last set (locktime).
    updated_ms: AtomicU64,
    /// Last confirmation of reachability; 0 for never (a STALE entry).
    confirmed_ms: AtomicU64,
    /// Last time forwarding used the entry (coarse: written at most once a second).
    used_ms: AtomicU64,
    state: AtomicU64,
}

/// The shared neighbour table.
pub struct NeighTable {
    slots: Box<[Slot]>,
    mask: usize,
    params: NeighParams,
    events: [AtomicU64; Event::COUNT],
}

impl std::fmt::Debug for NeighTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeighTable").field("slots", &self.slots.len()).finish()
    }
}

fn words(addr: &[u8; 16]) -> [u32; 4] {
    let mut w = [0u32; 4];
    for (i, c) in addr.chunks_exact(4).enumerate() {
        w[i] = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

fn unwords(a: [u32; 4]) -> [u8; 16] {
    let mut addr = [0u8; 16];
    for (k, w) in a.iter().enumerate() {
        addr[k * 4..k * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    addr
}

fn pack(mac: MacAddr, port: u16, v6: bool, is_static: bool) -> u64 {
    let m = mac.0;
    let mut v = u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]);
    v |= u64::from(port & 0xff) << 48;
    v | VALID | if v6 { V6 } else { 0 } | if is_static { STATIC } else { 0 }
}

fn unpack(meta: u64) -> (MacAddr, u16) {
    // The MAC's six bytes copied as one block: byte by byte, they cost a packet a dozen moves.
    let b = meta.to_be_bytes();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&b[2..]);
    (MacAddr(mac), u16::from(b[1]))
}

/// One worker's memo of the slots where it last found its next hops, for `resolve_memo`. A
/// slot's sequence number changes with every write to it, so a slot whose number is the one
/// remembered still holds the address and MAC it held: a hit skips the hash and the window
/// search, and anything else searches again. (A slot written exactly 2^31 times between two
/// uses would look unchanged, as a Linux seqcount would.)
pub struct NeighMemo {
    ways: Box<[MemoWay; MEMO_WAYS]>,
}

/// Next hops a memo holds at once, by the last byte of the address: the hosts of a segment
/// differ there.
const MEMO_WAYS: usize = 64;

#[derive(Clone, Copy)]
struct MemoWay {
    addr: [u8; 16],
    v6: bool,
    slot: u32,
    /// Odd: remembers nothing (a read sees only even numbers).
    seq: u32,
}

impl NeighMemo {
    pub fn new() -> Self {
        NeighMemo { ways: Box::new([MemoWay { addr: [0; 16], v6: false, slot: 0, seq: 1 }; MEMO_WAYS]) }
    }

    #[inline(always)]
    fn way(addr: &[u8; 16]) -> usize {
        usize::from(addr[3] ^ addr[15]) % MEMO_WAYS
    }
}

impl Default for NeighMemo {
    fn default() -> Self {
        Self::new()
    }
}

/// A consistent read of a slot's guarded fields.
struct Seen {
    index: usize,
    meta: u64,
}

impl Seen {
    fn is_static(&self) -> bool {
        self.meta & STATIC != 0
    }
    fn mac_port(&self) -> (MacAddr, u16) {
        unpack(self.meta)
    }
}

impl NeighTable {
    /// A table with `params.capacity` slots (at least one window, a power of two).
    pub fn new(params: NeighParams) -> Self {
        let n = params.capacity.max(WINDOW).next_power_of_two();
        NeighTable { slots: (0..n).map(|_| Slot::default()).collect(), mask: n - 1, params, events: Default::default() }
    }

    /// The timers in force.
    pub fn params(&self) -> &NeighParams {
        &self.params
    }

    fn count(&self, e: Event) {
        self.events[e as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a claim the caller refused before asking the table (implausible sender).
    pub fn refuse(&self) {
        self.count(Event::Refused);
    }

    /// Events counted since start, indexed by `Event as usize`.
    pub fn events(&self) -> [u64; Event::COUNT] {
        std::array::from_fn(|i| self.events[i].load(Ordering::Relaxed))
    }

    #[inline]
    fn home(&self, addr: &[u8; 16], v6: bool) -> usize {
        usize::try_from(hash_addr(addr, v6, 0x6e65_6967) & self.mask as u64).unwrap_or(0)
    }

    /// Reads slot `i` consistently: its address words and meta, or `None` after repeated races.
    #[inline]
    fn read(&self, i: usize) -> Option<([u32; 4], u64)> {
        self.read_seq(i).map(|(a, meta, _)| (a, meta))
    }

    /// `read`, with the (even) sequence number the read saw.
    #[inline]
    fn read_seq(&self, i: usize) -> Option<([u32; 4], u64, u32)> {
        let s = &self.slots[i];
        for _ in 0..4 {
            let s1 = s.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let a = [0, 1, 2, 3].map(|k| s.addr[k].load(Ordering::Relaxed));
            let meta = s.meta.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if s.seq.load(Ordering::Relaxed) == s1 {
                return Some((a, meta, s1));
            }
        }
        None
    }

    #[inline]
    fn find(&self, addr: &[u8; 16], v6: bool) -> Option<Seen> {
        self.find_seq(addr, v6).map(|(seen, _)| seen)
    }

    /// `find`, with the sequence number of the slot when it was read.
    #[inline]
    fn find_seq(&self, addr: &[u8; 16], v6: bool) -> Option<(Seen, u32)> {
        let want = words(addr);
        let home = self.home(addr, v6);
        (0..WINDOW).find_map(|k| {
            let i = (home + k) & self.mask;
            let (a, meta, seq) = self.read_seq(i)?;
            (meta & VALID != 0 && a == want && (meta & V6 != 0) == v6).then_some((Seen { index: i, meta }, seq))
        })
    }

    /// Slot `i`'s meta, if its sequence number is still `seq` (even): the slot was not written
    /// since it was read with that number, so it holds the address it held then.
    #[inline(always)]
    fn meta_if_unchanged(&self, i: usize, seq: u32) -> Option<u64> {
        let s = self.slots.get(i)?;
        if s.seq.load(Ordering::Acquire) != seq {
            return None;
        }
        let meta = s.meta.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (s.seq.load(Ordering::Relaxed) == seq).then_some(meta)
    }

    /// Runs `update` on slot `i` under its sequence lock (readers retry while it runs); `None`
    /// when another writer holds the slot.
    fn locked<R>(&self, i: usize, update: impl FnOnce(&Slot) -> R) -> Option<R> {
        let s = &self.slots[i];
        let seq = s.seq.load(Ordering::Relaxed);
        if seq & 1 == 1
            || s.seq.compare_exchange(seq, seq.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed).is_err()
        {
            return None;
        }
        fence(Ordering::Release);
        let r = update(s);
        s.seq.store(seq.wrapping_add(2), Ordering::Release);
        Some(r)
    }

    /// Rewrites slot `i`; false when another writer holds it.
    fn write(&self, i: usize, addr: &[u8; 16], meta: u64, now_ms: u64, confirmed_ms: u64, state: u64) -> bool {
        self.locked(i, |s| {
            for (k, w) in words(addr).iter().enumerate() {
                s.addr[k].store(*w, Ordering::Relaxed);
            }
            s.meta.store(meta, Ordering::Relaxed);
            s.updated_ms.store(now_ms, Ordering::Relaxed);
            s.confirmed_ms.store(confirmed_ms, Ordering::Relaxed);
            s.state.store(state, Ordering::Relaxed);
        })
        .is_some()
    }

    /// Empties slot `i` if it still holds `meta`.
    fn remove(&self, i: usize, meta: u64) -> bool {
        self.locked(i, |s| {
            let same = s.meta.load(Ordering::Relaxed) == meta;
            if same {
                s.meta.store(0, Ordering::Relaxed);
            }
            same
        })
        .unwrap_or(false)
    }

    /// Whether forwarding already recorded a use of the entry this second (it writes `used_ms`
    /// at most once a second).
    fn used_recently(used_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(used_ms) < 1000
    }

    /// Whether a confirmation at `confirmed_ms` is recent enough that `confirm` leaves the
    /// entry alone.
    fn confirmed_recently(&self, confirmed_ms: u64, now_ms: u64) -> bool {
        confirmed_ms != 0 && now_ms.saturating_sub(confirmed_ms) < self.params.reachable_ms / 8
    }

    /// Whether an entry last confirmed at `confirmed_ms` (0: never) is past its reachable time.
    fn stale(&self, confirmed_ms: u64, now_ms: u64) -> bool {
        confirmed_ms == 0 || now_ms.saturating_sub(confirmed_ms) > self.params.reachable_ms
    }

    /// True when a new entry must not replace slot `i`.
    fn in_use(&self, i: usize, meta: u64, now_ms: u64) -> bool {
        if meta & VALID == 0 {
            return false;
        }
        if meta & STATIC != 0 {
            return true;
        }
        let s = &self.slots[i];
        let p = &self.params;
        let recent = |t: u64, window: u64| t != 0 && now_ms.saturating_sub(t) < window;
        let w = s.state.load(Ordering::Relaxed);
        recent(s.used_ms.load(Ordering::Relaxed), p.gc_stale_ms)
            || recent(s.confirmed_ms.load(Ordering::Relaxed), p.reachable_ms)
            || (nud_state(w) == ST_INCOMPLETE
                && recent(s.updated_ms.load(Ordering::Relaxed), p.retrans_ms * u64::from(p.mcast_probes) + 1))
    }

    /// A slot for a new entry: an empty one, else the least recently used one not in use.
    fn room(&self, addr: &[u8; 16], v6: bool, now_ms: u64) -> Option<usize> {
        let home = self.home(addr, v6);
        let mut best: Option<(usize, u64)> = None;
        for k in 0..WINDOW {
            let i = (home + k) & self.mask;
            let Some((_, meta)) = self.read(i) else { continue };
            if meta & VALID == 0 {
                return Some(i);
            }
            if self.in_use(i, meta, now_ms) {
                continue;
            }
            let s = &self.slots[i];
            let last = s.used_ms.load(Ordering::Relaxed).max(s.confirmed_ms.load(Ordering::Relaxed));
            if best.is_none_or(|(_, b)| last < b) {
                best = Some((i, last));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Installs an entry another lbd learned (`lbd --takeover`), REACHABLE as of `now_ms`, so
    /// it is confirmed or probed as any other. False when there is no room.
    pub fn learn(&self, addr: &[u8; 16], v6: bool, mac: MacAddr, port: u16, now_ms: u64) -> bool {
        let meta = pack(mac, port, v6, false);
        let i = match self.find(addr, v6) {
            Some(seen) if seen.is_static() => return true,
            Some(seen) => Some(seen.index),
            None => self.room(addr, v6, now_ms),
        };
        i.is_some_and(|i| self.write(i, addr, meta, now_ms, now_ms, nud(ST_REACHABLE, 0, 0)))
    }

    /// Whether the table holds `mac` on `port` for `addr` (learned or static), changing nothing.
    pub fn holds(&self, addr: &[u8; 16], v6: bool, mac: MacAddr, port: u16) -> bool {
        self.find(addr, v6).is_some_and(|seen| seen.mac_port() == (mac, port))
    }

    /// Installs a static entry (from the configuration); it never changes or expires.
    pub fn insert_static(&self, addr: &[u8; 16], v6: bool, mac: MacAddr, port: u16) -> bool {
        let meta = pack(mac, port, v6, true);
        let i = match self.find(addr, v6) {
            Some(seen) if seen.meta == meta => return true,
            Some(seen) => Some(seen.index),
            None => self.room(addr, v6, u64::MAX).or_else(|| {
                // Static entries come first: take any non-static slot of the window.
                let home = self.home(addr, v6);
                (0..WINDOW)
                    .map(|k| (home + k) & self.mask)
                    .find(|&i| self.read(i).is_some_and(|(_, m)| m & STATIC == 0))
            }),
        };
        i.is_some_and(|i| self.write(i, addr, meta, 0, 0, ST_REACHABLE))
    }

    /// The MAC for next hop `addr`, driving the entry's state as Linux's neigh_event_send does.
    #[inline]
    pub fn resolve(&self, addr: &[u8; 16], v6: bool, now_ms: u64) -> Resolution {
        let Some(seen) = self.find(addr, v6) else { return self.start_resolution(addr, v6, now_ms) };
        self.resolve_seen(seen, addr, v6, now_ms)
    }

    /// `resolve`, trying first the slot `memo` remembers for `addr` instead of searching the
    /// window. The same answers and the same state changes as `resolve`.
    #[inline]
    pub fn resolve_memo(&self, memo: &mut NeighMemo, addr: &[u8; 16], v6: bool, now_ms: u64) -> Resolution {
        let way = &mut memo.ways[NeighMemo::way(addr)];
        let remembered = (way.addr == *addr && way.v6 == v6)
            .then(|| self.meta_if_unchanged(way.slot as usize, way.seq))
            .flatten()
            .filter(|meta| meta & VALID != 0);
        let seen = match remembered {
            Some(meta) => Seen { index: way.slot as usize, meta },
            None => {
                let Some((seen, seq)) = self.find_seq(addr, v6) else {
                    return self.start_resolution(addr, v6, now_ms);
                };
                let slot = u32::try_from(seen.index).unwrap_or(u32::MAX);
                *way = MemoWay { addr: *addr, v6, slot, seq };
                seen
            }
        };
        self.resolve_seen(seen, addr, v6, now_ms)
    }

    /// The MAC of next hop `addr` when `memo` remembers its slot unchanged and forwarding
    /// through it changes nothing: a static entry, or a reachable one used within the second
    /// and, for a packet that confirms it (`confirm`), confirmed recently. That is the answer
    /// `resolve_memo` then `confirm` give, in the case where neither writes; `None` (for them
    /// to decide) in every other. Small enough to inline into the packet path, which then calls
    /// them only when something is due.
    #[inline(always)]
    pub fn ready_unchanged(
        &self,
        memo: &NeighMemo,
        addr: &[u8; 16],
        v6: bool,
        confirm: bool,
        now_ms: u64,
    ) -> Option<MacAddr> {
        let way = &memo.ways[NeighMemo::way(addr)];
        if way.addr != *addr || way.v6 != v6 {
            return None;
        }
        let meta = self.meta_if_unchanged(way.slot as usize, way.seq)?;
        if meta & VALID == 0 {
            return None;
        }
        if meta & STATIC == 0 {
            let s = &self.slots[way.slot as usize];
            let confirmed = s.confirmed_ms.load(Ordering::Relaxed);
            // As `resolve_seen` would leave it: used this second, and neither INCOMPLETE,
            // DELAY nor PROBE (their timers) nor stale (it would start DELAY).
            if !Self::used_recently(s.used_ms.load(Ordering::Relaxed), now_ms)
                || matches!(nud_state(s.state.load(Ordering::Relaxed)), ST_INCOMPLETE | ST_DELAY | ST_PROBE)
                || self.stale(confirmed, now_ms)
            {
                return None;
            }
            // As `confirm` would leave it.
            if confirm && !self.confirmed_recently(confirmed, now_ms) {
                return None;
            }
        }
        Some(unpack(meta).0)
    }

    /// `resolve` once the entry for `addr` was found.
    #[inline(always)]
    fn resolve_seen(&self, seen: Seen, addr: &[u8; 16], v6: bool, now_ms: u64) -> Resolution {
        let (mac, port) = seen.mac_port();
        let slot = u32::try_from(seen.index).unwrap_or(u32::MAX);
        if seen.is_static() {
            return Resolution::Ready { mac, port, slot };
        }
        let s = &self.slots[seen.index];
        if !Self::used_recently(s.used_ms.load(Ordering::Relaxed), now_ms) {
            s.used_ms.store(now_ms, Ordering::Relaxed);
        }
        let p = &self.params;
        let w = s.state.load(Ordering::Relaxed);
        let confirmed = s.confirmed_ms.load(Ordering::Relaxed);
        let cas = |new: u64| s.state.compare_exchange(w, new, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        match nud_state(w) {
            ST_INCOMPLETE => {
                if now_ms.saturating_sub(nud_since(w)) < p.retrans_ms {
                    return Resolution::Unresolved { request: false };
                }
                let sent = nud_probes(w);
                if sent >= u64::from(p.mcast_probes) {
                    // Nobody answered this round: count it, and start the next one.
                    if cas(nud(ST_INCOMPLETE, 1, now_ms)) {
                        self.count(Event::Failed);
                        self.count(Event::ProbeSent);
                        return Resolution::Unresolved { request: true };
                    }
                } else if cas(nud(ST_INCOMPLETE, sent + 1, now_ms)) {
                    self.count(Event::ProbeSent);
                    return Resolution::Unresolved { request: true };
                }
                Resolution::Unresolved { request: false }
            }
            ST_DELAY => {
                if confirmed >= nud_since(w) && confirmed != 0 {
                    cas(nud(ST_REACHABLE, 0, 0));
                } else if now_ms.saturating_sub(nud_since(w)) >= p.delay_first_probe_ms && cas(nud(ST_PROBE, 1, now_ms))
                {
                    self.count(Event::ProbeSent);
                    return Resolution::Probe { mac, port, slot, unicast: p.ucast_probes > 0 };
                }
                Resolution::Ready { mac, port, slot }
            }
            ST_PROBE => {
                if now_ms.saturating_sub(nud_since(w)) < p.retrans_ms {
                    return Resolution::Ready { mac, port, slot };
                }
                let sent = nud_probes(w);
                let (ucast, total) = (u64::from(p.ucast_probes), u64::from(p.ucast_probes) + u64::from(p.mcast_probes));
                if sent >= total {
                    // Neither the MAC in use nor anyone else answered: forget the entry.
                    if self.remove(seen.index, seen.meta) {
                        self.count(Event::Failed);
                    }
                    return self.start_resolution(addr, v6, now_ms);
                }
                if cas(nud(ST_PROBE, sent + 1, now_ms) | (w & CLAIM_PENDING)) {
                    self.count(Event::ProbeSent);
                    return Resolution::Probe { mac, port, slot, unicast: sent < ucast };
                }
                Resolution::Ready { mac, port, slot }
            }
            _ => {
                // REACHABLE while fresh, STALE after: first use of a stale entry starts DELAY.
                if self.stale(confirmed, now_ms) {
                    cas(nud(ST_DELAY, 0, now_ms));
                }
                Resolution::Ready { mac, port, slot }
            }
        }
    }

    /// No entry: create an INCOMPLETE one so the answer is recognised as solicited.
    fn start_resolution(&self, addr: &[u8; 16], v6: bool, now_ms: u64) -> Resolution {
        let Some(i) = self.room(addr, v6, now_ms) else {
            self.count(Event::TableFull);
            return Resolution::Unresolved { request: false };
        };
        // The MAC stays zero until an answer fills it; `find` still returns the entry.
        if self.write(i, addr, pack(MacAddr::ZERO, 0, v6, false), now_ms, 0, nud(ST_INCOMPLETE, 1, now_ms)) {
            self.count(Event::ProbeSent);
            return Resolution::Unresolved { request: true };
        }
        Resolution::Unresolved { request: false }
    }

    /// Forward progress (a TCP segment acknowledging new data) through entry `slot` with `mac`:
    /// the neighbour is reachable. Cheap when already fresh.
    #[inline]
    pub fn confirm(&self, slot: u32, mac: MacAddr, now_ms: u64) {
        let Some(s) = self.slots.get(slot as usize) else { return };
        let c = s.confirmed_ms.load(Ordering::Relaxed);
        if self.confirmed_recently(c, now_ms) {
            return;
        }
        let meta = s.meta.load(Ordering::Relaxed);
        if meta & VALID == 0 || meta & STATIC != 0 || unpack(meta).0 != mac {
            return;
        }
        s.confirmed_ms.store(now_ms, Ordering::Relaxed);
        let w = s.state.load(Ordering::Relaxed);
        if matches!(nud_state(w), ST_DELAY | ST_PROBE) {
            let _ = s.state.compare_exchange(w, nud(ST_REACHABLE, 0, 0), Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// A packet says `addr` is at `mac` on `port`. Applies the rules in the module docs and
    /// returns what was done (also counted), or `None` when nothing changed.
    pub fn claim(&self, addr: &[u8; 16], v6: bool, mac: MacAddr, port: u16, kind: Claim, now_ms: u64) -> Option<Event> {
        let event = self.decide(addr, v6, mac, port, kind, now_ms);
        if let Some(e) = event {
            self.count(e);
        }
        event
    }

    fn decide(&self, addr: &[u8; 16], v6: bool, mac: MacAddr, port: u16, kind: Claim, now_ms: u64) -> Option<Event> {
        let meta = pack(mac, port, v6, false);
        let Some(seen) = self.find(addr, v6) else {
            if kind != Claim::Request {
                return Some(Event::Refused);
            }
            // A request for our address: learn the sender, STALE (never confirmed).
            let Some(i) = self.room(addr, v6, now_ms) else { return Some(Event::TableFull) };
            return self.write(i, addr, meta, now_ms, 0, nud(ST_REACHABLE, 0, 0)).then_some(Event::Learned);
        };
        if seen.is_static() {
            return (seen.mac_port() != (mac, port)).then_some(Event::Refused);
        }
        let s = &self.slots[seen.index];
        let w = s.state.load(Ordering::Relaxed);
        let same = seen.meta == meta;
        match (nud_state(w), kind) {
            (ST_INCOMPLETE, Claim::Solicited) => {
                self.write(seen.index, addr, meta, now_ms, now_ms, nud(ST_REACHABLE, 0, 0)).then_some(Event::Learned)
            }
            (ST_INCOMPLETE, Claim::Request) => {
                self.write(seen.index, addr, meta, now_ms, 0, nud(ST_REACHABLE, 0, 0)).then_some(Event::Learned)
            }
            (ST_INCOMPLETE, Claim::Unsolicited) => Some(Event::Refused),
            (ST_PROBE, Claim::Solicited) if same => {
                s.confirmed_ms.store(now_ms, Ordering::Relaxed);
                let _ = s.state.compare_exchange(w, nud(ST_REACHABLE, 0, 0), Ordering::AcqRel, Ordering::Relaxed);
                // The MAC in use answered: a pending contrary claim was a conflict.
                Some(if w & CLAIM_PENDING != 0 { Event::Conflict } else { Event::Confirmed })
            }
            (ST_PROBE, Claim::Solicited) if nud_probes(w) > u64::from(self.params.ucast_probes) => {
                // The unicast probes went unanswered and this answers a broadcast request.
                self.write(seen.index, addr, meta, now_ms, now_ms, nud(ST_REACHABLE, 0, 0)).then_some(Event::Changed)
            }
            _ if same => None,
            _ => {
                if now_ms.saturating_sub(s.updated_ms.load(Ordering::Relaxed)) < self.params.locktime_ms
                    || w & CLAIM_PENDING != 0
                {
                    return Some(Event::Refused);
                }
                // Ask the MAC in use first; the claim wins only if that goes unanswered.
                s.state
                    .compare_exchange(w, nud(ST_PROBE, 0, 0) | CLAIM_PENDING, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                    .then_some(Event::Conflict)
            }
        }
    }

    /// Removes every learned entry; returns how many.
    pub fn flush(&self) -> usize {
        (0..self.slots.len())
            .filter(|&i| {
                self.read(i).is_some_and(|(_, meta)| meta & VALID != 0 && meta & STATIC == 0 && self.remove(i, meta))
            })
            .count()
    }

    /// Every entry, as `ip neigh` lists them.
    pub fn entries(&self, now_ms: u64) -> Vec<Entry> {
        let p = &self.params;
        (0..self.slots.len())
            .filter_map(|i| {
                let (a, meta) = self.read(i)?;
                if meta & VALID == 0 {
                    return None;
                }
                let s = &self.slots[i];
                let w = s.state.load(Ordering::Relaxed);
                let confirmed = s.confirmed_ms.load(Ordering::Relaxed);
                let since = if confirmed == 0 { s.updated_ms.load(Ordering::Relaxed) } else { confirmed };
                let state = if meta & STATIC != 0 {
                    State::Permanent
                } else {
                    match nud_state(w) {
                        ST_INCOMPLETE if nud_probes(w) >= u64::from(p.mcast_probes) => State::Failed,
                        ST_INCOMPLETE => State::Incomplete,
                        ST_DELAY => State::Delay,
                        ST_PROBE => State::Probe,
                        _ if self.stale(confirmed, now_ms) => State::Stale,
                        _ => State::Reachable,
                    }
                };
                let (mac, port) = unpack(meta);
                Some(Entry {
                    addr: unwords(a),
                    v6: meta & V6 != 0,
                    mac,
                    port,
                    state,
                    age_ms: now_ms.saturating_sub(since),
                    probes: u8::try_from(nud_probes(w)).unwrap_or(15),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::widen;
    use std::sync::Arc;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
    const EVIL: MacAddr = MacAddr([2, 0x66, 0x66, 0x66, 0x66, 0x66]);

    fn table() -> NeighTable {
        NeighTable::new(NeighParams { capacity: 64, ..Default::default() })
    }

    fn ready_mac(r: Resolution) -> Option<MacAddr> {
        match r {
            Resolution::Ready { mac, .. } | Resolution::Probe { mac, .. } => Some(mac),
            Resolution::Unresolved { .. } => None,
        }
    }

    fn state(t: &NeighTable, a: &[u8; 16], now: u64) -> State {
        t.entries(now).iter().find(|e| e.addr == *a).map(|e| e.state).unwrap()
    }

    /// Resolves `a` as the LB would: a request goes out, the owner answers it.
    fn learn(t: &NeighTable, a: &[u8; 16], mac: MacAddr, now: u64) {
        assert_eq!(t.resolve(a, false, now), Resolution::Unresolved { request: true });
        assert_eq!(t.claim(a, false, mac, 1, Claim::Solicited, now + 1), Some(Event::Learned));
    }

    /// A reproducible walk for the differential tests: (step, random bits, clock), the clock
    /// moving by 0 ms to 40 s a step.
    fn random_walk(steps: usize) -> impl Iterator<Item = (usize, u64, u64)> {
        let (mut seed, mut now) = (0x2545_f491_4f6c_dd1d_u64, 0);
        (0..steps).map(move |step| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            now += [0, 1, 300, 1_200, 6_000, 40_000][((seed >> 8) % 6) as usize];
            (step, seed, now)
        })
    }

    #[test]
    fn the_memo_follows_every_write_to_a_slot() {
        let t = table();
        let mut memo = NeighMemo::new();
        let (a, b) = (widen([10, 0, 0, 7]), widen([10, 0, 1, 7]));
        assert_eq!(NeighMemo::way(&a), NeighMemo::way(&b), "the test needs two addresses on one way");
        const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);
        assert!(t.learn(&a, false, A, 1, 0) && t.learn(&b, false, B, 2, 0));
        for now in [10, 20] {
            // The first search fills the way, the second finds the way taken by the other.
            assert_eq!(ready_mac(t.resolve_memo(&mut memo, &a, false, now)), Some(A));
            assert_eq!(ready_mac(t.resolve_memo(&mut memo, &a, false, now)), Some(A));
            assert_eq!(ready_mac(t.resolve_memo(&mut memo, &b, false, now)), Some(B));
        }
        // A new MAC in the remembered slot, then no entry at all.
        assert!(t.learn(&b, false, EVIL, 2, 30));
        assert_eq!(ready_mac(t.resolve_memo(&mut memo, &b, false, 30)), Some(EVIL));
        assert_eq!(t.flush(), 2);
        assert_eq!(t.resolve_memo(&mut memo, &b, false, 40), Resolution::Unresolved { request: true });
        assert_eq!(t.resolve_memo(&mut memo, &a, false, 40), Resolution::Unresolved { request: true });
        // The remembered slot taken by another address: the memo must not answer for it.
        assert!(t.learn(&a, false, A, 1, 40));
        assert_eq!(ready_mac(t.resolve_memo(&mut memo, &a, false, 40)), Some(A));
        let slot = t.find(&a, false).map(|s| s.index);
        let other = (0..=255u8)
            .flat_map(|x| (0..=255u8).map(move |y| widen([10, 1, x, y])))
            .find(|c| t.home(c, false) == t.home(&a, false))
            .unwrap();
        t.flush();
        assert!(t.entries(40).is_empty());
        assert!(t.learn(&other, false, EVIL, 1, 40));
        assert_eq!(t.find(&other, false).map(|s| s.index), slot, "the test needs the same slot");
        assert_eq!(t.resolve_memo(&mut memo, &a, false, 40), Resolution::Unresolved { request: true });
        t.flush();
        // An IPv6 address with the same bytes is another neighbour.
        assert!(t.learn(&a, false, A, 1, 50));
        assert_eq!(t.resolve_memo(&mut memo, &a, false, 50), t.resolve(&a, false, 50));
        assert_eq!(t.resolve_memo(&mut memo, &a, true, 50), Resolution::Unresolved { request: true });
    }

    #[test]
    fn the_memo_answers_and_moves_states_as_resolve_does() {
        // Two tables given the same claims over time, one resolved through a memo: the same
        // answers, and the same entries in the same states.
        let (plain, memoed) = (table(), table());
        let mut memo = NeighMemo::new();
        let addrs = [widen([10, 0, 0, 7]), widen([10, 0, 1, 7]), widen([10, 0, 0, 9])];
        for (step, seed, now) in random_walk(4000) {
            let a = &addrs[(seed % 3) as usize];
            match (seed >> 16) % 8 {
                0 => {
                    let mac = if seed >> 24 & 1 == 0 { A } else { EVIL };
                    let kind = [Claim::Solicited, Claim::Unsolicited, Claim::Request][((seed >> 32) % 3) as usize];
                    for t in [&plain, &memoed] {
                        t.claim(a, false, mac, 1, kind, now);
                    }
                }
                1 => {
                    let slot = plain.find(a, false).map_or(u32::MAX, |s| u32::try_from(s.index).unwrap_or(u32::MAX));
                    plain.confirm(slot, A, now);
                    memoed.confirm(slot, A, now);
                }
                2 if seed >> 40 & 0xf == 0 => assert_eq!(plain.flush(), memoed.flush()),
                _ => {
                    let r = plain.resolve(a, false, now);
                    assert_eq!(memoed.resolve_memo(&mut memo, a, false, now), r, "step {step}");
                }
            }
            assert_eq!(plain.entries(now), memoed.entries(now), "step {step}");
        }
    }

    /// Every field of every slot, to see whether a step wrote anything.
    fn raw(t: &NeighTable) -> Vec<[u64; 7]> {
        let r = Ordering::Relaxed;
        t.slots
            .iter()
            .map(|s| {
                let a = |i: usize| u64::from(s.addr[i].load(r));
                [
                    u64::from(s.seq.load(r)),
                    a(0) << 32 | a(1),
                    a(2) << 32 | a(3),
                    s.meta.load(r) ^ s.updated_ms.load(r).rotate_left(17),
                    s.confirmed_ms.load(r),
                    s.used_ms.load(r),
                    s.state.load(r),
                ]
            })
            .collect()
    }

    #[test]
    fn ready_unchanged_answers_only_when_resolving_would_write_nothing() {
        // Two tables given the same claims over time. One forwards as `send_via` does (the
        // inlined check, then `resolve_memo` and `confirm` when it declines), the other always
        // through `resolve_memo` and `confirm`: the same answers and the same slots, bit for
        // bit. And whenever the check answers, the full path writes nothing.
        // Reachable for 2 s, so that entries go stale while in use every second.
        let short = || NeighTable::new(NeighParams { capacity: 64, reachable_ms: 2_000, ..Default::default() });
        let (fast, full) = (short(), short());
        let (mut fast_memo, mut full_memo) = (NeighMemo::new(), NeighMemo::new());
        let addrs = [widen([10, 0, 0, 7]), widen([10, 0, 1, 7]), widen([10, 0, 0, 9]), widen([10, 0, 0, 20])];
        for t in [&fast, &full] {
            t.insert_static(&addrs[3], false, A, 1);
        }
        let (mut answered, mut declined) = (0, 0);
        for (step, seed, now) in random_walk(20_000) {
            let a = &addrs[(seed % 4) as usize];
            let confirm = seed >> 48 & 1 == 1;
            match (seed >> 16) % 6 {
                0 => {
                    let mac = if seed >> 24 & 1 == 0 { A } else { EVIL };
                    let kind = [Claim::Solicited, Claim::Unsolicited, Claim::Request][((seed >> 32) % 3) as usize];
                    for t in [&fast, &full] {
                        t.claim(a, false, mac, 1, kind, now);
                    }
                }
                1 if seed >> 40 & 0xf == 0 => assert_eq!(fast.flush(), full.flush()),
                _ => {
                    let forward = |t: &NeighTable, memo: &mut NeighMemo| {
                        let r = t.resolve_memo(memo, a, false, now);
                        if let (Resolution::Ready { mac, slot, .. }, true) = (r, confirm) {
                            t.confirm(slot, mac, now);
                        }
                        r
                    };
                    let before = raw(&full);
                    let expected = forward(&full, &mut full_memo);
                    match fast.ready_unchanged(&fast_memo, a, false, confirm, now) {
                        Some(mac) => {
                            assert!(matches!(expected, Resolution::Ready { mac: m, .. } if m == mac), "step {step}");
                            assert_eq!(raw(&full), before, "step {step}: the full path wrote");
                            answered += 1;
                        }
                        None => {
                            assert_eq!(forward(&fast, &mut fast_memo), expected, "step {step}");
                            declined += 1;
                        }
                    }
                }
            }
            assert_eq!(raw(&fast), raw(&full), "step {step}");
        }
        assert!(answered > 1000 && declined > 1000, "{answered} answered, {declined} declined");
    }

    #[test]
    fn ready_unchanged_declines_an_entry_that_went_stale_in_use() {
        // Learned at 0.1 s, used at 1.5 s (while reachable), then at 2.2 s: used within the
        // second, but past its reachable time, which `resolve_memo` answers by starting DELAY.
        let t = NeighTable::new(NeighParams { capacity: 64, reachable_ms: 2_000, ..Default::default() });
        let mut memo = NeighMemo::new();
        let a = widen([10, 0, 0, 7]);
        assert!(t.learn(&a, false, A, 1, 100));
        assert!(matches!(t.resolve_memo(&mut memo, &a, false, 1_500), Resolution::Ready { .. }));
        assert_eq!(t.ready_unchanged(&memo, &a, false, false, 1_800), Some(A));
        assert_eq!(t.ready_unchanged(&memo, &a, false, false, 2_200), None);
        assert!(matches!(t.resolve_memo(&mut memo, &a, false, 2_200), Resolution::Ready { .. }));
        assert_eq!(state(&t, &a, 2_200), State::Delay);
    }

    #[test]
    fn unsolicited_claims_never_create_entries() {
        let t = table();
        let a = widen([10, 0, 0, 5]);
        assert_eq!(t.claim(&a, false, EVIL, 1, Claim::Unsolicited, 100), Some(Event::Refused));
        assert_eq!(t.claim(&a, false, EVIL, 1, Claim::Solicited, 100), Some(Event::Refused), "we never asked");
        assert!(t.entries(100).is_empty());
        assert_eq!(t.claim(&a, false, A, 1, Claim::Request, 100), Some(Event::Learned));
        assert_eq!(state(&t, &a, 100), State::Stale, "a request's sender is STALE until confirmed");
    }

    #[test]
    fn a_request_we_sent_is_answered_and_rate_limited() {
        let t = table();
        let a = widen([10, 0, 0, 5]);
        assert_eq!(t.resolve(&a, false, 100), Resolution::Unresolved { request: true });
        assert_eq!(t.resolve(&a, false, 500), Resolution::Unresolved { request: false }, "one request per retrans");
        assert_eq!(state(&t, &a, 500), State::Incomplete);
        assert_eq!(t.claim(&a, false, A, 1, Claim::Solicited, 600), Some(Event::Learned));
        assert_eq!(ready_mac(t.resolve(&a, false, 700)), Some(A));
        assert_eq!(state(&t, &a, 700), State::Reachable);
    }

    #[test]
    fn unanswered_requests_fail_and_retry() {
        let t = table();
        let a = widen([10, 0, 0, 5]);
        let requests =
            (0..10u64).filter(|i| t.resolve(&a, false, i * 1000) == Resolution::Unresolved { request: true }).count();
        assert_eq!(requests, 10, "one broadcast request a second");
        assert_eq!(t.events()[Event::Failed as usize], 3, "each round of mcast_probes that fails is counted");
    }

    #[test]
    fn a_spoofed_reply_does_not_move_traffic_and_the_owner_keeps_the_address() {
        let t = table();
        let a = widen([10, 0, 0, 2]);
        learn(&t, &a, A, 0);
        // Within locktime: ignored outright.
        assert_eq!(t.claim(&a, false, EVIL, 1, Claim::Unsolicited, 500), Some(Event::Refused));
        // After it: the entry is probed, traffic stays on the MAC in use.
        assert_eq!(t.claim(&a, false, EVIL, 1, Claim::Unsolicited, 5_000), Some(Event::Conflict));
        match t.resolve(&a, false, 5_001) {
            Resolution::Probe { mac, unicast: true, .. } => assert_eq!(mac, A),
            other => panic!("expected a unicast probe to the MAC in use, got {other:?}"),
        }
        // More claims while the check runs are refused; the owner's answer ends it.
        assert_eq!(t.claim(&a, false, EVIL, 1, Claim::Unsolicited, 5_100), Some(Event::Refused));
        assert_eq!(t.claim(&a, false, A, 1, Claim::Solicited, 5_200), Some(Event::Conflict));
        assert_eq!(state(&t, &a, 5_300), State::Reachable);
        assert_eq!(ready_mac(t.resolve(&a, false, 5_300)), Some(A));
        // A spoofed answer to the unicast probe is not believed either.
        t.claim(&a, false, EVIL, 1, Claim::Unsolicited, 10_000);
        assert!(matches!(t.resolve(&a, false, 10_001), Resolution::Probe { unicast: true, .. }));
        assert_eq!(t.claim(&a, false, EVIL, 1, Claim::Solicited, 10_002), Some(Event::Refused));
        assert_eq!(ready_mac(t.resolve(&a, false, 10_003)), Some(A));
    }

    #[test]
    fn a_moved_address_follows_after_the_unicast_probes_fail() {
        let t = table();
        let a = widen([10, 0, 0, 2]);
        learn(&t, &a, A, 0);
        let new = MacAddr([2, 0, 0, 0, 0, 0xb]);
        assert_eq!(t.claim(&a, false, new, 1, Claim::Unsolicited, 2_000), Some(Event::Conflict));
        let mut kinds = vec![];
        let mut now = 2_001;
        // Probe until the first broadcast request goes out.
        while kinds.last() != Some(&false) {
            if let Resolution::Probe { unicast, mac, .. } = t.resolve(&a, false, now) {
                assert_eq!(mac, A, "traffic stays on the old MAC while probing");
                kinds.push(unicast);
            }
            now += 500;
        }
        assert_eq!(kinds, [true, true, true, false]);
        assert_eq!(t.claim(&a, false, new, 1, Claim::Solicited, now), Some(Event::Changed));
        assert_eq!(ready_mac(t.resolve(&a, false, now + 1)), Some(new));
    }

    #[test]
    fn stale_entries_in_use_are_probed_and_removed_when_silent() {
        let t = table();
        let a = widen([10, 0, 0, 7]);
        learn(&t, &a, A, 0);
        assert_eq!(state(&t, &a, 29_000), State::Reachable);
        assert_eq!(state(&t, &a, 31_000), State::Stale);
        assert!(matches!(t.resolve(&a, false, 31_000), Resolution::Ready { .. }));
        assert_eq!(state(&t, &a, 31_000), State::Delay);
        let mut probes = 0;
        let mut now = 31_000;
        while ready_mac(t.resolve(&a, false, now)).is_some() {
            probes += u32::from(state(&t, &a, now) == State::Probe);
            now += 250;
            assert!(now < 60_000, "never gave up");
        }
        assert!(probes > 0);
        assert_eq!(t.events()[Event::Failed as usize], 1);
        assert_eq!(state(&t, &a, now), State::Incomplete, "the next use asks by broadcast again");
    }

    #[test]
    fn forward_progress_keeps_an_entry_reachable() {
        let t = table();
        let a = widen([10, 0, 0, 7]);
        learn(&t, &a, A, 0);
        for now in (0..120_000).step_by(1_000) {
            let Resolution::Ready { mac, slot, .. } = t.resolve(&a, false, now) else {
                panic!("probed at {now} despite forward progress");
            };
            t.confirm(slot, mac, now);
        }
        // Confirmation for another MAC (a stale slot reference) changes nothing.
        let Resolution::Ready { slot, .. } = t.resolve(&a, false, 120_000) else { panic!() };
        t.confirm(slot, EVIL, 200_000);
        assert_eq!(state(&t, &a, 200_000), State::Stale);
    }

    #[test]
    fn static_entries_never_change() {
        let t = table();
        let a = widen([10, 0, 0, 9]);
        assert!(t.insert_static(&a, false, A, 0));
        for kind in [Claim::Solicited, Claim::Request, Claim::Unsolicited] {
            assert_eq!(t.claim(&a, false, EVIL, 0, kind, 1_000_000), Some(Event::Refused));
        }
        assert_eq!(ready_mac(t.resolve(&a, false, 10_000_000)), Some(A));
        assert_eq!(state(&t, &a, 10_000_000), State::Permanent);
        assert_eq!(t.flush(), 0);
    }

    #[test]
    fn a_flood_of_requests_cannot_evict_entries_in_use() {
        let t = NeighTable::new(NeighParams { capacity: 256, ..Default::default() });
        let live = widen([10, 0, 0, 2]);
        let gw = widen([10, 0, 0, 254]);
        learn(&t, &live, A, 0);
        assert!(t.insert_static(&gw, false, MacAddr([2, 0, 0, 0, 0, 0xfe]), 0));
        for i in 0..100_000u32 {
            let [_, b, c, d] = i.to_be_bytes();
            let now = 1_000 + u64::from(i) / 10;
            t.claim(&widen([10, b, c, d.max(1)]), false, MacAddr([2, 1, 0, b, c, d]), 1, Claim::Request, now);
            if i % 1000 == 0 {
                // The live client keeps being used.
                ready_mac(t.resolve(&live, false, now));
            }
        }
        assert_eq!(ready_mac(t.resolve(&live, false, 11_000)), Some(A));
        assert_eq!(ready_mac(t.resolve(&gw, false, 11_000)), Some(MacAddr([2, 0, 0, 0, 0, 0xfe])));
        assert!(t.entries(11_000).len() <= 256);
    }

    #[test]
    fn flush_removes_learned_entries() {
        let t = table();
        learn(&t, &widen([10, 0, 0, 1]), A, 0);
        t.insert_static(&widen([10, 0, 0, 2]), false, A, 0);
        assert_eq!(t.flush(), 1);
        assert_eq!(t.entries(0).len(), 1);
    }

    #[test]
    fn concurrent_readers_never_see_torn_entries() {
        let t = Arc::new(table());
        let a = widen([10, 0, 0, 1]);
        t.insert_static(&a, false, MacAddr([1; 6]), 1);
        let writer = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let b = (i % 200) as u8 + 1;
                    t.insert_static(&a, false, MacAddr([b; 6]), u16::from(b));
                }
            })
        };
        for _ in 0..20_000 {
            if let Resolution::Ready { mac, port, .. } = t.resolve(&a, false, 0) {
                // MAC and port were written together: a torn read would mix two writes.
                assert!(mac.0.iter().all(|x| *x == mac.0[0]));
                assert_eq!(u16::from(mac.0[0]), port);
            }
        }
        writer.join().unwrap();
    }
}

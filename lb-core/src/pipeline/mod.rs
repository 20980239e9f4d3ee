//! `process_burst`: what happens to every packet.
//!
//! Each worker owns a [`Worker`] (connection table, scheduler cursors, per-backend load,
//! counters, fragment and persistence tables) and reads the shared, immutable service
//! [`Table`] the control plane published, loaded once per burst. For every frame the pipeline
//! returns a [`Verdict`]: transmit on a port (the frame was rewritten in place), drop with a
//! reason (counted), hand to the host stack, or consumed (an ARP/ND reply that was learned).
//!
//! Nothing here allocates, locks, makes a syscall or panics per packet: malformed input is a
//! drop reason. The neighbour table is shared between workers through lock-free slots.

mod counters;
mod fast;
mod forward;
mod icmp;
mod l2;
mod send;
mod sync;
mod synproxy;
mod vlan;

pub use crate::frame::{DATA_ROOM, Frame, HEADROOM, L4Checksum, VecFrame};
pub use counters::{BackendCounters, Counters, DropReason, ServiceCounters};
pub use l2::{Probe, from_host, write_probe};
pub use synproxy::{check_cookie, make_cookie};
pub use vlan::{vlan_egress, vlan_ingress};

use crate::conntrack::{ConnTable, Timeouts};
use crate::frag::FragTable;
use crate::lport::{LocalPorts, Steering};
use crate::neigh::{NeighMemo, NeighTable};
use crate::persist::PersistTable;
use crate::prefetch::{NoPrefetch, Prefetch};
use crate::sched::{Cursor, Load};
use crate::service::Table;
use crate::wire::{Error as WireError, EtherType, EthernetFrame};
use std::sync::Arc;

/// What to do with a frame after processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this port.
    Tx(u16),
    /// Drop it; the reason was counted.
    Drop(DropReason),
    /// Give it to the host stack (traffic for the LB's own addresses it does not serve).
    Host,
    /// Absorbed (an ARP or ND reply that was learned); free it.
    Consumed,
    /// Hold the frame until connection `ConnId` is released (`Worker::take_released`), then
    /// process it again; free it if that takes too long. The SYN proxy parks a client's segments
    /// while the backend's handshake is still under way.
    Park(crate::conntrack::ConnId),
}

/// Sizes and timers of a worker, fixed at start.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub conn_capacity: usize,
    /// Most embryonic (handshake not completed) connections at once.
    pub embryonic_limit: usize,
    pub timeouts: Timeouts,
    pub frag_capacity: usize,
    pub frag_ttl_ms: u64,
    pub persist_capacity: usize,
    /// Connection entries visited for expiry per burst.
    pub sweep_budget: usize,
    /// Verify TCP/UDP checksums in software before nat and fnat rewrite them (when the port
    /// gave no verdict of its own).
    pub verify_l4_checksums: bool,
    pub max_services: usize,
    pub max_backends: usize,
    /// The shared neighbour table's size and timers (used by whoever creates the table).
    pub neigh: crate::neigh::NeighParams,
    /// Key of the SYN proxy's cookies (random per lbd process).
    pub synproxy_secret: u64,
    /// Workers sharing the backends' connection thresholds (each holds its share).
    pub workers: u32,
    /// Forward established connections' plain packets through the fast path (`fast.rs`); off,
    /// every packet takes the full pipeline (which the fast path is tested against).
    pub fast_path: bool,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            conn_capacity: 1 << 20,
            embryonic_limit: 1 << 19,
            timeouts: Timeouts::default(),
            frag_capacity: 1024,
            frag_ttl_ms: 2000,
            persist_capacity: 1 << 16,
            sweep_budget: 64,
            verify_l4_checksums: true,
            max_services: 16384,
            max_backends: 65536,
            neigh: crate::neigh::NeighParams::default(),
            synproxy_secret: 0x5359_4e43_4f4f_4b49,
            workers: 1,
            fast_path: true,
        }
    }
}

/// Neighbour probes a worker can queue per burst; more wait for the next use of the entry.
pub const MAX_PROBES: usize = 16;
/// ICMP errors (time exceeded) a worker originates per second at most, and in one burst: like
/// Linux's icmp_msgs_per_sec and icmp_msgs_burst.
const ICMP_PER_SEC: u64 = 1000;
const ICMP_BURST: u64 = 50;

/// Connections a burst can release (SYN proxy handshakes completed).
pub const MAX_RELEASED: usize = 32;

/// One worker's state. Owned by one thread; never shared.
pub struct Worker {
    pub conns: ConnTable,
    pub counters: Counters,
    cursors: Vec<Cursor>,
    load: Vec<Load>,
    frags: FragTable,
    persist: PersistTable,
    lports: LocalPorts,
    neigh: Arc<NeighTable>,
    /// Where this worker last found its next hops in `neigh`.
    neigh_memo: NeighMemo,
    timeouts: Timeouts,
    sweep_budget: usize,
    verify_l4: bool,
    probes: [Probe; MAX_PROBES],
    probe_count: usize,
    synproxy_secret: u64,
    released: [crate::conntrack::ConnId; MAX_RELEASED],
    released_count: usize,
    /// ICMP errors lbd may still originate (`ICMP_PER_SEC`, burst `ICMP_BURST`).
    icmp_tokens: crate::ratelimit::TokenBucket,
    generation: u64,
    /// Connection sync: whether peers hear of this worker's connections, and the events since
    /// the last `take_sync_events` (reserved once, never grown).
    sync_on: bool,
    sync_out: Vec<crate::sync::SyncEvent>,
    workers: u32,
    fast_path: bool,
}

impl Worker {
    /// A worker with its tables allocated up front. `neigh` is shared by all workers;
    /// `steering` says which full-NAT local ports bring replies back to this worker.
    pub fn new(cfg: &WorkerConfig, neigh: Arc<NeighTable>, steering: Steering) -> Self {
        Self::with_conns(cfg, neigh, steering, ConnTable::new(cfg.conn_capacity, cfg.embryonic_limit))
    }

    /// `new` with a connection table allocated beforehand: a takeover allocates its tables,
    /// the largest allocation of a start, before the old lbd stops forwarding.
    pub fn with_conns(cfg: &WorkerConfig, neigh: Arc<NeighTable>, steering: Steering, conns: ConnTable) -> Self {
        Worker {
            conns,
            counters: Counters::new(cfg.max_services, cfg.max_backends),
            cursors: vec![Cursor::default(); cfg.max_services],
            load: vec![Load::default(); cfg.max_backends],
            frags: FragTable::new(cfg.frag_capacity, cfg.frag_ttl_ms),
            persist: PersistTable::new(cfg.persist_capacity),
            lports: LocalPorts::new(steering, crate::lport::FIRST_PORT),
            neigh,
            neigh_memo: NeighMemo::new(),
            timeouts: cfg.timeouts,
            sweep_budget: cfg.sweep_budget,
            verify_l4: cfg.verify_l4_checksums,
            probes: [Probe { port: 0, target: [0; 16], v6: false, unicast: None }; MAX_PROBES],
            probe_count: 0,
            synproxy_secret: cfg.synproxy_secret,
            released: [0; MAX_RELEASED],
            released_count: 0,
            icmp_tokens: crate::ratelimit::TokenBucket::new(ICMP_PER_SEC, ICMP_BURST),
            generation: 0,
            sync_on: false,
            sync_out: Vec::with_capacity(sync::MAX_SYNC_EVENTS),
            workers: cfg.workers,
            fast_path: cfg.fast_path,
        }
    }

    /// Changes the idle timeouts (applies to connections as they next see a packet).
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The shared neighbour table.
    pub fn neighbours(&self) -> &Arc<NeighTable> {
        &self.neigh
    }

    /// Queues a neighbour probe for the runtime to send after the burst.
    fn queue_probe(&mut self, p: Probe) {
        match self.probes.get_mut(self.probe_count) {
            Some(slot) => {
                *slot = p;
                self.probe_count += 1;
            }
            None => self.counters.probes_unsent += 1,
        }
    }

    /// The probes queued since the last call (write each with `write_probe` and send it).
    pub fn take_probes(&mut self) -> &[Probe] {
        let n = std::mem::take(&mut self.probe_count);
        &self.probes[..n]
    }

    /// Takes a token for one originated ICMP error; false when the rate is spent.
    fn icmp_allowed(&mut self, now_ms: u64) -> bool {
        self.icmp_tokens.take(now_ms)
    }

    /// Notes that connection `id` no longer parks its packets.
    fn release(&mut self, id: crate::conntrack::ConnId) {
        if let Some(slot) = self.released.get_mut(self.released_count) {
            *slot = id;
            self.released_count += 1;
        }
        // Beyond the limit, its parked packets age out and the client retransmits them.
    }

    /// Connections released since the last call: process the frames parked for them again.
    pub fn take_released(&mut self) -> &[crate::conntrack::ConnId] {
        let n = std::mem::take(&mut self.released_count);
        &self.released[..n]
    }

    /// Per-backend connection counts this worker holds.
    pub fn load(&self, backend_id: u32) -> Load {
        self.load.get(backend_id as usize).copied().unwrap_or_default()
    }

    /// This worker's connections as another lbd takes them over (see `save_conns`).
    pub fn save_conns(&self, table: &Table, now_ms: u64) -> Vec<crate::conntrack::SavedConn> {
        save_conns(self.conns.iter(), table, now_ms)
    }

    /// Tracks a connection another lbd made, its ids mapped to `table`'s. Refused (with the
    /// reason) when its service or backend is not in `table`, or the table is full.
    pub fn adopt(&mut self, table: &Table, saved: &crate::conntrack::SavedConn, now_ms: u64) -> Result<(), String> {
        let (addr, v6) = crate::flow::from_ip(saved.vip);
        let svc = table
            .service(&crate::service::ServiceKey { addr, v6, port: saved.port, proto: saved.proto })
            .ok_or_else(|| format!("no service {}:{}", saved.vip, saved.port))?;
        let (baddr, bv6) = crate::flow::from_ip(saved.backend);
        let b =
            svc.backends.iter().find(|b| b.is_at(baddr, bv6, saved.backend_port)).ok_or_else(|| {
                format!("service {} has no backend {}:{}", svc.key, saved.backend, saved.backend_port)
            })?;
        let mut c = saved.conn;
        c.service_id = svc.id;
        c.backend_id = b.id;
        c.expires_ms = now_ms + saved.expires_in_ms;
        self.conns.insert(c).map_err(|e| format!("{e:?}"))?;
        forward::add_load(&mut self.load, &c);
        Ok(())
    }

    /// Tells the peers about this worker's connections from now on (`take_sync_events`).
    pub fn set_sync(&mut self, on: bool) {
        self.sync_on = on;
    }

    /// Sends the peers every established connection, a part per call (the outbox's room at
    /// most): call with 0, then with what it returns until `None`, taking the events between
    /// calls. For a peer that (re)started.
    pub fn resync_step(&mut self, cursor: usize, now_ms: u64) -> Option<usize> {
        sync::resync_step(self, cursor, now_ms)
    }

    /// The sync events emitted since the last call, for the runtime to send to the peers.
    pub fn take_sync_events(&mut self) -> std::vec::Drain<'_, crate::sync::SyncEvent> {
        self.sync_out.drain(..)
    }

    /// Applies a peer's sync event (installs, updates or removes the connection it names);
    /// false when it names a service or backend this table lacks, a connection this worker
    /// does not hold, or does not fit. Counted either way.
    pub fn apply_sync(&mut self, table: &Table, ev: &crate::sync::SyncEvent, now_ms: u64) -> bool {
        let ok = sync::apply(self, table, ev, now_ms);
        if ok {
            self.counters.sync_applied += 1;
        } else {
            self.counters.sync_refused += 1;
        }
        ok
    }

    /// Expires up to the sweep budget of idle connections. Called once per burst by
    /// `process_burst`, and by an idle worker from its poll loop.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let Worker { conns, load, counters, sweep_budget, .. } = self;
        conns.expire(now_ms, *sweep_budget, |c| {
            forward::unload(load, c);
            counters.conns_expired += 1;
            if forward::backend_silent(c) {
                forward::syn_failed(counters, c);
            }
        })
    }

    fn sync(&mut self, table: &Table) {
        if table.generation == self.generation {
            return;
        }
        // A new snapshot: ids are stable, but rr/wrr positions restart as IPVS's do when
        // a service's destinations change.
        self.cursors.iter_mut().for_each(|c| *c = Cursor::default());
        // Connection thresholds count all workers' connections, as IPVS counts all CPUs': each
        // worker holds its share (the traffic is spread evenly by RSS or steering).
        let share = |t: u32| t.div_ceil(self.workers.max(1));
        for b in table.services().iter().flat_map(|s| &s.backends) {
            if let Some(l) = self.load.get_mut(b.id as usize) {
                l.set_thresholds(share(b.upper_threshold), share(b.lower_threshold));
            }
        }
        for (addr, v6, mac, port) in &table.network.static_neighbours {
            self.neigh.insert_static(addr, *v6, *mac, *port);
        }
        self.generation = table.generation;
    }
}

/// Live connections as another lbd takes them over, with their service and backend by
/// address (`table` is the one they were made with) and their time left.
pub fn save_conns(
    conns: impl Iterator<Item = crate::conntrack::Conn>,
    table: &Table,
    now_ms: u64,
) -> Vec<crate::conntrack::SavedConn> {
    let mut by_id = hashbrown::HashMap::new();
    for s in table.services() {
        for b in &s.backends {
            by_id.insert((s.id, b.id), (s, *b));
        }
    }
    conns
        .filter(|c| c.expires_ms > now_ms)
        .filter_map(|c| {
            let (s, b) = by_id.get(&(c.service_id, c.backend_id))?;
            Some(crate::conntrack::SavedConn {
                vip: crate::flow::to_ip(s.key.addr, s.key.v6),
                port: s.key.port,
                proto: s.key.proto,
                backend: crate::flow::to_ip(b.addr, b.v6),
                backend_port: b.port,
                expires_in_ms: c.expires_ms - now_ms,
                conn: c,
            })
        })
        .collect()
}

/// Processes a burst: one verdict per frame, in order. `now_ms` is a monotonic clock in
/// milliseconds read once per burst.
pub fn process_burst<F: Frame>(w: &mut Worker, table: &Table, frames: &mut [F], verdicts: &mut [Verdict], now_ms: u64) {
    process_burst_with::<NoPrefetch, F>(w, table, frames, verdicts, now_ms);
}

/// `process_burst`, starting each packet's connection entry loading with `P` a few packets
/// before the packet is forwarded (see `prefetch`). The verdicts and bytes are the same.
pub fn process_burst_with<P: Prefetch, F: Frame>(
    w: &mut Worker,
    table: &Table,
    frames: &mut [F],
    verdicts: &mut [Verdict],
    now_ms: u64,
) {
    w.sync(table);
    for (fs, vs) in frames.chunks_mut(WARM_GROUP).zip(verdicts.chunks_mut(WARM_GROUP)) {
        process_group::<P, F>(w, table, fs, vs, now_ms);
    }
    w.expire(now_ms);
}

/// Packets whose headers are read and whose connection lookups are started together (a DPDK
/// burst).
const WARM_GROUP: usize = 32;

/// Processes up to `WARM_GROUP` frames in stages, as l3fwd does its route lookups: every
/// frame's headers are read and its key hashed first (`fast::parse`), then every key's home
/// index slot is loaded, so that the cache misses of the group overlap instead of being paid
/// one packet at a time. The entries those slots name are loaded next, all of them, or with
/// a prefetching `P` each `ENTRY_AHEAD` packets before its packet is forwarded, so that
/// forwarding runs while they arrive. Then each frame, in order, takes the fast path when it
/// is a plain packet of an established connection, or the full pipeline.
fn process_group<P: Prefetch, F: Frame>(
    w: &mut Worker,
    table: &Table,
    frames: &mut [F],
    verdicts: &mut [Verdict],
    now_ms: u64,
) {
    let mut parsed = [None; WARM_GROUP];
    for (f, p) in frames.iter().zip(parsed.iter_mut()) {
        *p = fast::parse(table, &w.conns, f);
    }
    let entries = touch_slots(w, &parsed);
    if P::PREFETCHES {
        for (&e, p) in entries.iter().zip(&parsed).take(ENTRY_AHEAD) {
            warm::<P>(w, e, p);
        }
    } else {
        for (&e, p) in entries.iter().zip(&parsed) {
            warm::<P>(w, e, p);
        }
    }
    for (i, ((f, v), p)) in frames.iter_mut().zip(verdicts.iter_mut()).zip(&parsed).enumerate() {
        if P::PREFETCHES
            && let (Some(&e), Some(ahead)) = (entries.get(i + ENTRY_AHEAD), parsed.get(i + ENTRY_AHEAD))
        {
            warm::<P>(w, e, ahead);
        }
        w.counters.rx_packets += 1;
        w.counters.rx_bytes += f.data().len() as u64;
        let fast = match p {
            Some(p) if w.fast_path => fast::established(w, table, f, p, entries[i], now_ms),
            _ => None,
        };
        *v = match fast {
            Some(v) => {
                w.counters.fast_path += 1;
                v
            }
            None => process_one(w, table, f, now_ms),
        };
        match *v {
            Verdict::Tx(_) => {
                w.counters.tx_packets += 1;
                w.counters.tx_bytes += f.data().len() as u64;
            }
            Verdict::Drop(r) => w.counters.drops[r as usize] += 1,
            Verdict::Host => w.counters.host_packets += 1,
            Verdict::Consumed => w.counters.consumed += 1,
            Verdict::Park(_) => w.counters.parked += 1,
        }
    }
}

/// Loads the index slots the group's keys lead to, and returns the entries they name (`u32::MAX`,
/// which names none, for the rest): a wrong guess costs a wasted load, never a wrong verdict
/// (`lookup` does the real search).
fn touch_slots(w: &Worker, parsed: &[Option<fast::Parsed>]) -> [u32; WARM_GROUP] {
    let mut entries = [EMPTY_ENTRY; WARM_GROUP];
    for (p, e) in parsed.iter().zip(entries.iter_mut()) {
        if let Some(p) = p {
            *e = w.conns.touch_slot(p.hash);
        }
    }
    entries
}

/// Starts loading (a prefetching `P`) or loads the entry a slot named for packet `p`, and for an
/// IPv6 packet the line of the table's side array that holds its connection's addresses,
/// which its lookup reads.
#[inline(always)]
fn warm<P: Prefetch>(w: &Worker, entry: u32, p: &Option<fast::Parsed>) {
    w.conns.warm_entry::<P>(entry);
    if p.is_some_and(|p| p.key.v6) {
        w.conns.warm_addrs::<P>(entry);
    }
}

const EMPTY_ENTRY: u32 = u32::MAX;

/// How many packets ahead of the one being forwarded its entry is prefetched: at least one
/// miss's latency (about 180 ns on this VM's huge pages, plus the page walk) of forwarding. At
/// 50 ns of forwarding per packet, 4 no longer covered a miss. 8 and 16 measured alike for
/// IPv4, and 16 cost IPv6 (two lines per packet) 6%; all 32 at once was worse (bench/RESULTS.md
/// §1).
const ENTRY_AHEAD: usize = 8;

// Kept out of line: inlined, the full pipeline crowded the fast path's registers in the loop.
#[inline(never)]
fn process_one<F: Frame>(w: &mut Worker, t: &Table, f: &mut F, now_ms: u64) -> Verdict {
    let in_port = f.in_port();
    let Some(port) = t.network.ports.get(usize::from(in_port)) else {
        return Verdict::Drop(DropReason::UnknownPort);
    };
    let (ethertype, dst_mac) = match EthernetFrame::new_checked(f.data()) {
        Ok(e) if e.tag_count() > 0 => return Verdict::Drop(DropReason::VlanTagged),
        Ok(e) => (e.ethertype(), e.dst()),
        Err(_) => return Verdict::Drop(DropReason::L2Truncated),
    };
    if dst_mac != port.mac && !dst_mac.is_multicast() {
        return Verdict::Drop(DropReason::OtherHost);
    }
    match ethertype {
        EtherType::ARP => l2::arp(w, t, f, now_ms),
        EtherType::IPV4 => ipv4(w, t, f, now_ms),
        EtherType::IPV6 => ipv6(w, t, f, now_ms),
        _ => Verdict::Host,
    }
}

/// Length of the (untagged) Ethernet header.
const L3: usize = 14;

fn ipv4<F: Frame>(w: &mut Worker, t: &Table, f: &mut F, now_ms: u64) -> Verdict {
    use crate::wire::{ip_proto, ipv4};
    let d = f.data();
    let ip = match ipv4::Packet::new_checked(&d[L3..]) {
        Ok(ip) => ip,
        Err(WireError::Truncated) => return Verdict::Drop(DropReason::Ipv4Truncated),
        Err(WireError::Malformed) => return Verdict::Drop(DropReason::Ipv4Malformed),
    };
    if !ip.verify_checksum() {
        return Verdict::Drop(DropReason::Ipv4BadChecksum);
    }
    if martian_v4(ip.src()) {
        return Verdict::Drop(DropReason::MartianSource);
    }
    let (total, hl, proto) = (usize::from(ip.total_len()), ip.header_len(), ip.protocol());
    if hl > ipv4::HEADER_LEN {
        match source_routed(&d[L3 + ipv4::HEADER_LEN..L3 + hl]) {
            Some(false) => {}
            Some(true) => return Verdict::Drop(DropReason::Ipv4SourceRoute),
            None => return Verdict::Drop(DropReason::Ipv4Malformed),
        }
    }
    let fragment = ip.is_fragment().then(|| {
        let key = crate::frag::FragKey {
            src: crate::flow::widen(ip.src()),
            dst: crate::flow::widen(ip.dst()),
            ident: u32::from(ip.ident()),
            proto,
            v6: false,
        };
        (key, ip.frag_offset() == 0)
    });
    let (dst, dont_frag) = (ip.dst(), ip.dont_frag());
    // Drop Ethernet padding so tunnels and ICMP quotes carry only the datagram.
    if d.len() > L3 + total {
        f.set_len(L3 + total);
    }
    match proto {
        ip_proto::TCP | ip_proto::UDP => {
            let info = forward::Ip { l3: L3, l4: L3 + hl, v6: false, proto, total, dont_frag, fragment };
            forward::transport(w, t, f, &info, now_ms)
        }
        ip_proto::ICMP if fragment.is_none() => icmp::v4(w, t, f, L3 + hl, now_ms),
        _ => not_served(t, &crate::flow::widen(dst), false),
    }
}

fn ipv6<F: Frame>(w: &mut Worker, t: &Table, f: &mut F, now_ms: u64) -> Verdict {
    use crate::wire::{ip_proto, ipv6};
    let d = f.data();
    let ip = match ipv6::Packet::new_checked(&d[L3..]) {
        Ok(ip) => ip,
        Err(WireError::Truncated) => return Verdict::Drop(DropReason::Ipv6Truncated),
        Err(WireError::Malformed) => return Verdict::Drop(DropReason::Ipv6Malformed),
    };
    let up = match ip.upper_layer() {
        Ok(up) => up,
        Err(WireError::Truncated) => return Verdict::Drop(DropReason::Ipv6Truncated),
        Err(WireError::Malformed) => return Verdict::Drop(DropReason::Ipv6Malformed),
    };
    let total = ip.total_len();
    let (src, dst) = (ip.src(), ip.dst());
    // Unspecified, loopback or multicast: no host sends from these (ND's DAD is handled first).
    if (src == [0; 16] && up.protocol != ip_proto::ICMPV6) || src[0] == 0xff || src == LOOPBACK6 {
        return Verdict::Drop(DropReason::MartianSource);
    }
    if d.len() > L3 + total {
        f.set_len(L3 + total);
    }
    let fragment = up
        .fragment
        .map(|fi| (crate::frag::FragKey { src, dst, ident: fi.ident, proto: up.protocol, v6: true }, fi.offset == 0));
    match up.protocol {
        ip_proto::TCP | ip_proto::UDP => {
            let info = forward::Ip {
                l3: L3,
                l4: L3 + up.offset,
                v6: true,
                proto: up.protocol,
                total,
                dont_frag: true,
                fragment,
            };
            forward::transport(w, t, f, &info, now_ms)
        }
        ip_proto::ICMPV6 if fragment.is_none() => icmp::v6(w, t, f, L3 + up.offset, now_ms),
        _ => not_served(t, &dst, true),
    }
}

const LOOPBACK6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// IPv4 sources Linux calls martian: 0/8, 127/8, multicast and class E (with broadcast).
fn martian_v4(src: [u8; 4]) -> bool {
    matches!(src[0], 0 | 127 | 224..=255)
}

/// Walks IPv4 options: `Some(true)` when a loose or strict source route is among them,
/// `None` when they are malformed.
fn source_routed(opts: &[u8]) -> Option<bool> {
    const LSRR: u8 = 0x83;
    const SSRR: u8 = 0x89;
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return Some(false),
            1 => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1)?);
                if len < 2 || i + len > opts.len() {
                    return None;
                }
                if kind == LSRR || kind == SSRR {
                    return Some(true);
                }
                i += len;
            }
        }
    }
    Some(false)
}

/// The verdict for a packet no service or connection claims. An interface address is the
/// host's (ssh, BGP, health checks' replies), even when it is also a VIP on other ports; a
/// full-NAT local address without a connection is nobody's.
fn not_served(t: &Table, dst: &[u8; 16], v6: bool) -> Verdict {
    if t.network.is_interface_address(dst, v6) {
        Verdict::Host
    } else if t.is_vip(*dst, v6) {
        Verdict::Drop(DropReason::NoService)
    } else if t.network.is_own(dst, v6) {
        Verdict::Drop(DropReason::NoConnection)
    } else {
        Verdict::Drop(DropReason::UnknownDestination)
    }
}

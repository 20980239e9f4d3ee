//! The poll-mode worker: one pinned thread per core, each owning one RX and one TX queue per
//! port. Every turn it receives a burst from each port, hands packets of connections it does
//! not own to their owner (ports without RSS only), runs lb-core's `process_burst_with` (with
//! the CPU's prefetch) on the rest against the table snapshot loaded once for the burst, and
//! queues the results for TX. TX
//! buffers are flushed when full and on a drain timer (~100 us); what the NIC refuses is freed
//! and counted. Cycles spent on polls that returned packets and on empty polls are counted
//! apart, so cycles per packet can be read at any time.

use crate::ffi::{self, MempoolRef, PortId, QueueId};
use crate::mbuf::{BURST, Mbuf, RxBurst, TxBuffer};
use crate::prefetch::CpuPrefetch;
use crate::steer;
use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use lb_core::pipeline::{Counters, Frame, Verdict, from_host, write_probe};
use lb_core::service::Table;
use lb_core::{Timeouts, Worker, process_burst_with};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of the poll loop itself (lb-core counts what happens to packets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopCounters {
    /// TSC cycles in turns that received at least one packet.
    pub busy_cycles: u64,
    /// TSC cycles in turns that received nothing.
    pub idle_cycles: u64,
    pub busy_turns: u64,
    pub idle_turns: u64,
    /// Packets the NIC refused at TX (freed).
    pub tx_refused: u64,
    /// Packets handed to another worker / received from one / dropped because its ring was full.
    pub handed_off: u64,
    pub handed_in: u64,
    pub handoff_dropped: u64,
    /// Neighbour probes not sent for want of an mbuf.
    pub probe_alloc_failed: u64,
    /// SYN proxy segments freed because the park was full / they waited too long.
    pub park_dropped: u64,
    pub park_expired: u64,
    /// Microseconds the adaptive poll mode slept (counted as idle).
    pub slept_us: u64,
    /// Frames for the host passed to the exception path / over its rate limit / refused by a
    /// full ring / dropped for want of an exception path on their port.
    pub to_host: u64,
    pub to_host_limited: u64,
    pub to_host_ring_full: u64,
    pub host_unreachable: u64,
    /// Frames from the host's kernel sent out / dropped.
    pub from_host: u64,
    pub from_host_dropped: u64,
    /// Frames for a VLAN interface dropped for want of headroom for the tag.
    pub vlan_no_headroom: u64,
}

/// What a worker publishes for the control plane (copied every few milliseconds).
#[derive(Debug, Clone)]
pub struct WorkerStats {
    pub index: usize,
    pub core: Option<usize>,
    pub loops: LoopCounters,
    pub counters: Counters,
    pub conns: usize,
    pub tsc_hz: u64,
}

/// Requests the control thread sends a worker (served every 16th turn, like ip_pipeline).
#[derive(Debug)]
pub enum Control {
    SetTimeouts(Timeouts),
    /// Reply with a copy of every live connection.
    ListConns(ConnsReply),
    /// Zero the packet counters, publish them, then acknowledge.
    ZeroCounters(crossbeam::channel::Sender<()>),
    /// Hand every connection over (another lbd takes over), then stop polling.
    Surrender(crossbeam::channel::Sender<Vec<lb_core::conntrack::SavedConn>>),
    /// Track connections another lbd made; replies with the refusals.
    Adopt(Vec<lb_core::conntrack::SavedConn>, crossbeam::channel::Sender<Vec<String>>),
}

/// Where a worker sends its clock (ms) and a copy of its connection table.
pub type ConnsReply = crossbeam::channel::Sender<(u64, Vec<lb_core::conntrack::Conn>)>;
/// Where the control thread collects them.
pub type ConnsAnswers = crossbeam::channel::Receiver<(u64, Vec<lb_core::conntrack::Conn>)>;

/// A channel for acknowledgements (`Control::ZeroCounters`).
pub fn ack_channel() -> (crossbeam::channel::Sender<()>, crossbeam::channel::Receiver<()>) {
    crossbeam::channel::unbounded()
}

/// A channel for `Control::ListConns` answers.
pub fn conns_channel() -> (ConnsReply, ConnsAnswers) {
    crossbeam::channel::unbounded()
}

/// Rings between workers: `rings[from][to]`.
pub type Handoff = Vec<Vec<Arc<ArrayQueue<Mbuf>>>>;

/// Everything one worker thread owns or shares.
pub struct WorkerCtx {
    pub index: usize,
    pub core: Option<usize>,
    pub workers: usize,
    pub worker: Worker,
    /// (port, queue) pairs this worker receives from.
    pub rx: Vec<(PortId, QueueId)>,
    /// One TX buffer per port, indexed by port position.
    pub tx: Vec<TxBuffer>,
    pub table: Arc<ArcSwap<Table>>,
    /// The table generation this worker last used (for the control plane's grace period).
    pub seen_generation: Arc<AtomicU64>,
    pub stop: Arc<AtomicBool>,
    pub stats: Arc<Mutex<WorkerStats>>,
    pub control: crossbeam::channel::Receiver<Control>,
    /// Present when ports lack RSS and there is more than one worker.
    pub handoff: Option<Handoff>,
    /// Where neighbour probes get their buffers.
    pub pool: Arc<MempoolRef>,
    /// TSC at the runtime's start: every worker's millisecond clock counts from it, so times
    /// in the shared neighbour table agree.
    pub epoch_tsc: u64,
    /// This worker's end of the exception path, when a port has one.
    pub exception: Option<crate::exception::WorkerLink>,
    pub poll: PollMode,
    /// Polling starts once this is set; until then only control requests are served (a
    /// takeover installs connections before the first packet).
    pub go: Arc<AtomicBool>,
    /// This worker's rings to the sync thread, when connections are synced with peers.
    pub sync: Option<SyncLink>,
}

/// A worker's end of connection sync.
pub struct SyncLink {
    /// Events for the peers.
    pub outbound: Arc<ArrayQueue<lb_core::sync::SyncEvent>>,
    /// The peers' events for this worker.
    pub inbound: Arc<ArrayQueue<lb_core::sync::SyncEvent>>,
    /// Set by the sync thread when a peer (re)started: send it every established connection.
    pub resync: Arc<AtomicBool>,
    /// Where the resync in progress goes on.
    pub cursor: Option<usize>,
}

/// Peers' sync events a worker applies per turn at most (the rest wait for the next turn).
const SYNC_PER_TURN: usize = 64;

/// How a worker waits for packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollMode {
    /// Poll without pause: the lowest latency, a whole core (DPDK's usual mode).
    Busy,
    /// After `idle_turns` empty polls in a row, pause between polls: a CPU pause, then sleeps
    /// that double up to `max_sleep_us`; the first packet returns the worker to busy polling.
    Adaptive { idle_turns: u32, max_sleep_us: u32 },
}

/// Segments a worker holds for SYN proxy connections awaiting their backend.
const PARK_SLOTS: usize = 256;
/// How long a parked segment waits before it is freed (the client retransmits it).
const PARK_MS: u64 = 1000;

/// Queues `m`, a frame for interface `port`, on its physical port's TX buffer (with the
/// interface's VLAN tag pushed; an unknown port frees it); what a flush the buffer made then
/// refused is counted.
fn transmit(tx: &mut [TxBuffer], net: &lb_core::Network, port: u16, mut m: Mbuf, loops: &mut LoopCounters) {
    let port = if net.has_vlans {
        match lb_core::pipeline::vlan_egress(net, &mut m, port) {
            Some(p) => p,
            None => {
                loops.vlan_no_headroom += 1;
                return;
            }
        }
    } else {
        port
    };
    if let Some(tx) = tx.get_mut(usize::from(port))
        && let Some(f) = tx.push(m)
    {
        loops.tx_refused += f.dropped as u64;
    }
}

/// A segment held until its connection is released.
struct Parked {
    conn: lb_core::conntrack::ConnId,
    since_ms: u64,
    m: Mbuf,
}

/// The adaptive poll mode's back-off: empty polls in a row, and the next sleep.
#[derive(Default)]
struct Idle {
    empty: u32,
    sleep_us: u32,
}

impl Idle {
    fn reset(&mut self) {
        self.empty = 0;
        self.sleep_us = 0;
    }

    /// After an empty poll: nothing for the first `idle_turns`, then a CPU pause for as many
    /// again, then sleeps of 1, 2, 4 ... `max_sleep_us` µs. Returns the µs slept.
    fn wait(&mut self, idle_turns: u32, max_sleep_us: u32) -> u64 {
        self.empty = self.empty.saturating_add(1);
        if self.empty <= idle_turns {
            return 0;
        }
        if self.empty <= idle_turns.saturating_mul(2) {
            std::hint::spin_loop();
            return 0;
        }
        self.sleep_us = (self.sleep_us * 2).clamp(1, max_sleep_us.max(1));
        std::thread::sleep(std::time::Duration::from_micros(u64::from(self.sleep_us)));
        u64::from(self.sleep_us)
    }
}

/// TX drain interval in microseconds (DPDK l3fwd's BURST_TX_DRAIN_US).
const DRAIN_US: u64 = 100;
/// Stats are published this often.
const PUBLISH_MS: u64 = 20;

impl WorkerCtx {
    /// Runs the poll loop until `stop` is set; then flushes TX and returns.
    pub fn run(mut self) {
        if let Some(core) = self.core {
            core_affinity::set_for_current(core_affinity::CoreId { id: core });
        }
        let hz = ffi::tsc_hz().max(1);
        let drain_tsc = hz / 1_000_000 * DRAIN_US;
        let start = self.epoch_tsc;
        let mut last_drain = ffi::tsc();
        let mut last_publish_ms = 0u64;
        let mut loops = LoopCounters::default();
        let mut rx = RxBurst::default();
        // Reserved once: batches never reallocate on the packet path.
        let cap = BURST * (self.rx.len() + self.workers.max(1));
        let mut batch: Vec<Mbuf> = Vec::with_capacity(cap);
        let mut verdicts: Vec<Verdict> = vec![Verdict::Consumed; cap];
        let mut parked: Vec<Parked> = Vec::with_capacity(PARK_SLOTS);
        let mut turn = 0u64;
        let mut idle = Idle::default();
        let mut surrendered = false;
        while !self.go.load(Ordering::Acquire) && !self.stop.load(Ordering::Relaxed) {
            let now_ms = (ffi::tsc() - start) / (hz / 1000).max(1);
            while let Ok(c) = self.control.try_recv() {
                surrendered |= self.serve(c, now_ms, &loops, hz);
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        while !self.stop.load(Ordering::Relaxed) && !surrendered {
            let t0 = ffi::tsc();
            let table = self.table.load();
            for i in 0..self.rx.len() {
                let (port, queue) = self.rx[i];
                if rx.receive(port, queue) == 0 {
                    continue;
                }
                // Header reads of the whole burst overlap instead of missing one by one.
                rx.frames().iter().for_each(Mbuf::prefetch);
                for mut m in rx.drain() {
                    // A VLAN names the interface: from here on the frame is untagged and its
                    // port is the interface's.
                    if table.network.has_vlans
                        && let Err(r) = lb_core::pipeline::vlan_ingress(&table.network, &mut m)
                    {
                        self.worker.counters.drops[r as usize] += 1;
                        continue;
                    }
                    match &self.handoff {
                        Some(rings) => {
                            let to = steer::owner(&table, m.data(), self.workers);
                            if to == self.index {
                                batch.push(m);
                            } else if rings[self.index][to].push(m).is_ok() {
                                loops.handed_off += 1;
                            } else {
                                loops.handoff_dropped += 1;
                            }
                        }
                        None => batch.push(m),
                    }
                }
            }
            if let Some(rings) = &self.handoff {
                for from in rings.iter() {
                    while batch.len() < cap {
                        let Some(m) = from[self.index].pop() else { break };
                        loops.handed_in += 1;
                        batch.push(m);
                    }
                }
            }
            let now_ms = (t0 - start) / (hz / 1000).max(1);
            self.send_host_frames(&table, now_ms, &mut loops);
            let got = batch.len();
            if got == 0 {
                self.worker.expire(now_ms);
            } else {
                // A second pass takes the segments parked for connections the first released.
                for pass in 0..2 {
                    let n = batch.len();
                    if n == 0 {
                        break;
                    }
                    process_burst_with::<CpuPrefetch, _>(
                        &mut self.worker,
                        &table,
                        &mut batch,
                        &mut verdicts[..n],
                        now_ms,
                    );
                    for (m, v) in batch.drain(..).zip(verdicts.iter()) {
                        match *v {
                            Verdict::Tx(p) => transmit(&mut self.tx, &table.network, p, m, &mut loops),
                            Verdict::Park(conn) if parked.len() < PARK_SLOTS => {
                                parked.push(Parked { conn, since_ms: now_ms, m });
                            }
                            Verdict::Park(_) => loops.park_dropped += 1,
                            Verdict::Host => self.offer_to_host(&table, m, now_ms, &mut loops),
                            // Every other verdict frees the mbuf here (drop reasons were counted).
                            _ => {}
                        }
                    }
                    if pass == 0 {
                        self.unpark(&mut parked, &mut batch);
                    }
                }
                self.send_probes(&table, &mut loops);
            }
            self.sync_with_peers(&table, now_ms);
            self.seen_generation.store(table.generation, Ordering::Release);
            drop(table);
            let t1 = ffi::tsc();
            if t1 - last_drain > drain_tsc {
                for tx in &mut self.tx {
                    loops.tx_refused += tx.flush().dropped as u64;
                }
                last_drain = t1;
            }
            let spent = ffi::tsc() - t0;
            turn += 1;
            if got > 0 {
                loops.busy_cycles += spent;
                loops.busy_turns += 1;
                idle.reset();
            } else {
                loops.idle_cycles += spent;
                loops.idle_turns += 1;
                if let PollMode::Adaptive { idle_turns, max_sleep_us } = self.poll {
                    loops.slept_us += idle.wait(idle_turns, max_sleep_us);
                }
            }
            if turn.is_multiple_of(16) {
                // Segments whose connection never completed its handshake are given up.
                let before = parked.len();
                parked.retain(|p| now_ms.saturating_sub(p.since_ms) < PARK_MS);
                loops.park_expired += (before - parked.len()) as u64;
                while let Ok(c) = self.control.try_recv() {
                    surrendered |= self.serve(c, now_ms, &loops, hz);
                }
                if now_ms - last_publish_ms >= PUBLISH_MS {
                    self.publish(&loops, hz);
                    last_publish_ms = now_ms;
                }
            }
        }
        for tx in &mut self.tx {
            loops.tx_refused += tx.flush().dropped as u64;
        }
        self.publish(&loops, hz);
    }

    /// Moves the segments parked for connections released by the last pass into `batch`, in
    /// the order they arrived.
    fn unpark(&mut self, parked: &mut Vec<Parked>, batch: &mut Vec<Mbuf>) {
        let released = self.worker.take_released();
        if released.is_empty() || parked.is_empty() {
            return;
        }
        // Never beyond the batch's reserved capacity: the hot loop does not allocate.
        let limit = batch.capacity();
        let mut i = 0;
        while i < parked.len() && batch.len() < limit {
            if released.contains(&parked[i].conn) {
                batch.push(parked.remove(i).m);
            } else {
                i += 1;
            }
        }
    }

    /// Passes the burst's sync events to the sync thread and applies a bounded number of the
    /// peers' (each a few table operations, no syscall).
    fn sync_with_peers(&mut self, table: &Table, now_ms: u64) {
        let Some(link) = &mut self.sync else { return };
        if link.resync.swap(false, Ordering::AcqRel) {
            link.cursor = Some(0);
        }
        // A step at a time, and only while the sync thread keeps up: none of it is lost.
        if let Some(at) = link.cursor
            && link.outbound.len() < link.outbound.capacity() / 2
        {
            link.cursor = self.worker.resync_step(at, now_ms);
        }
        let mut lost = 0;
        for ev in self.worker.take_sync_events() {
            lost += u64::from(link.outbound.push(ev).is_err());
        }
        self.worker.counters.sync_lost += lost;
        for _ in 0..SYNC_PER_TURN {
            let Some(ev) = link.inbound.pop() else { break };
            self.worker.apply_sync(table, &ev, now_ms);
        }
    }

    /// Passes a frame for the host to the exception path of its port; without one it is freed
    /// (and counted).
    fn offer_to_host(&mut self, table: &Table, m: Mbuf, now_ms: u64, loops: &mut LoopCounters) {
        use crate::exception::Offer;
        match &mut self.exception {
            Some(link) if table.network.has_exception(m.in_port()) => match link.offer(m, now_ms) {
                Offer::Queued => loops.to_host += 1,
                Offer::Limited => loops.to_host_limited += 1,
                Offer::RingFull => loops.to_host_ring_full += 1,
            },
            _ => loops.host_unreachable += 1,
        }
    }

    /// Sends out what the host's kernel sent (a burst at most per turn).
    fn send_host_frames(&mut self, table: &Table, now_ms: u64, loops: &mut LoopCounters) {
        let Some(link) = &self.exception else { return };
        for _ in 0..BURST {
            let Some(mut m) = link.take() else { break };
            match from_host(&mut self.worker, table, &mut m, now_ms) {
                Verdict::Tx(p) => {
                    loops.from_host += 1;
                    transmit(&mut self.tx, &table.network, p, m, loops);
                }
                _ => loops.from_host_dropped += 1,
            }
        }
    }

    /// Sends the neighbour probes the burst queued (a stale entry in use is probed while its
    /// traffic keeps flowing), each in a fresh mbuf.
    fn send_probes(&mut self, table: &Table, loops: &mut LoopCounters) {
        for p in self.worker.take_probes() {
            let Some(mut m) = Mbuf::alloc(&self.pool) else {
                loops.probe_alloc_failed += 1;
                continue;
            };
            if write_probe(table, p, &mut m) {
                transmit(&mut self.tx, &table.network, p.port, m, loops);
            }
        }
    }

    /// Serves one request; true when the worker must stop (it surrendered its connections).
    fn serve(&mut self, c: Control, now_ms: u64, loops: &LoopCounters, hz: u64) -> bool {
        match c {
            Control::Surrender(reply) => {
                let _ = reply.send(self.worker.save_conns(&self.table.load(), now_ms));
                return true;
            }
            Control::Adopt(conns, reply) => {
                let table = self.table.load();
                let refused =
                    conns.iter().filter_map(|c| self.worker.adopt(&table, c, now_ms).err()).collect::<Vec<_>>();
                let _ = reply.send(refused);
            }
            Control::SetTimeouts(t) => self.worker.set_timeouts(t),
            Control::ListConns(reply) => {
                let _ = reply.send((now_ms, self.worker.conns.iter().collect()));
            }
            Control::ZeroCounters(done) => {
                let c = &mut self.worker.counters;
                *c = Counters::new(c.services.len(), c.backends.len());
                // Readers see the zeroed counters as soon as the command returns, so wait for
                // the lock here (a control request, not the packet path).
                if let Ok(mut st) = self.stats.lock() {
                    Self::fill(&mut st, &self.worker, loops, hz);
                }
                let _ = done.send(());
            }
        }
        false
    }

    fn publish(&self, loops: &LoopCounters, hz: u64) {
        // Never wait for the control plane: skip this round if it holds the lock.
        if let Ok(mut s) = self.stats.try_lock() {
            Self::fill(&mut s, &self.worker, loops, hz);
        }
    }

    fn fill(s: &mut WorkerStats, worker: &Worker, loops: &LoopCounters, hz: u64) {
        s.loops = *loops;
        s.counters.clone_from(&worker.counters);
        s.conns = worker.conns.len();
        s.tsc_hz = hz;
    }
}

#[cfg(test)]
mod tests {
    use super::Idle;

    #[test]
    fn adaptive_polling_backs_off_then_resets_at_the_first_packet() {
        let mut idle = Idle::default();
        let slept: Vec<u64> = (0..10).map(|_| idle.wait(2, 4)).collect();
        // Two free polls, two paused ones, then sleeps doubling up to the bound.
        assert_eq!(slept, [0, 0, 0, 0, 1, 2, 4, 4, 4, 4]);
        idle.reset();
        assert_eq!(idle.wait(2, 4), 0, "a packet brings back busy polling");
    }
}

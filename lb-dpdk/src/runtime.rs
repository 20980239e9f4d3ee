//! Threads and table publication. The control plane builds a new immutable `Table` and
//! `publish`es it: one atomic pointer swap, which each worker sees at its next burst (a packet
//! sees the old table or the new one, never a mix). Retired tables are kept until every
//! worker has reported using a newer generation, then dropped here, on the control thread,
//! never on a worker core.

use crate::exception::{ExceptionPath, Limits, ThreadCounters, ThreadStats, WorkerLink};
use crate::ffi::{MempoolRef, PortId, QueueId};
use crate::mbuf::TxBuffer;
use crate::port::Port;
use crate::worker::{Control, LoopCounters, PollMode, WorkerCtx, WorkerStats};
use arc_swap::ArcSwap;
use crossbeam::queue::ArrayQueue;
use lb_core::ConnTable;
use lb_core::lport::Steering;
use lb_core::pipeline::Counters;
use lb_core::service::Table;
use lb_core::{NeighTable, Toeplitz, Worker, WorkerConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Handoff ring size per worker pair (packets).
const RING: usize = 1024;
/// Sync events a ring holds each way between a worker and the sync thread.
const SYNC_RING: usize = 16384;

/// The rings between the workers and the thread that talks to the peers (`Options::sync`).
#[derive(Clone)]
pub struct SyncRings {
    /// Events each worker emitted for the peers.
    pub outbound: Vec<Arc<ArrayQueue<lb_core::sync::SyncEvent>>>,
    /// The peers' events, for each worker.
    pub inbound: Vec<Arc<ArrayQueue<lb_core::sync::SyncEvent>>>,
    /// Set to have each worker send all its established connections again.
    resync: Vec<Arc<AtomicBool>>,
    /// Worker 0's steering (the rule is the same for every worker).
    steering: Steering,
}

impl SyncRings {
    /// The worker that must hold a connection whose original direction is `orig`.
    pub fn owner(&self, orig: &lb_core::FlowKey) -> usize {
        crate::steer::flow_owner(&self.steering, orig, self.inbound.len())
    }

    /// Has every worker send its established connections again (a peer started).
    pub fn request_resync(&self) {
        self.resync.iter().for_each(|f| f.store(true, Ordering::Release));
    }
}

/// A cloneable view of the workers' statistics and the table in force (metrics, control).
#[derive(Clone)]
pub struct StatsHandle {
    stats: Vec<Arc<Mutex<WorkerStats>>>,
    table: Arc<ArcSwap<Table>>,
    neigh: Arc<NeighTable>,
    exception: Option<Arc<ThreadCounters>>,
}

impl StatsHandle {
    /// The exception thread's counters, when ports have an exception path.
    pub fn exception(&self) -> Option<ThreadStats> {
        self.exception.as_ref().map(|c| c.read())
    }

    /// Neighbour table events counted since start (`lb_core::neigh::Event as usize`).
    pub fn neighbour_events(&self) -> [u64; lb_core::neigh::Event::COUNT] {
        self.neigh.events()
    }

    /// A copy of every worker's published statistics.
    pub fn workers(&self) -> Vec<WorkerStats> {
        self.stats.iter().filter_map(|s| s.lock().ok().map(|g| g.clone())).collect()
    }

    /// The table in force.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }
}

/// A running set of workers.
pub struct Runtime {
    handles: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    table: Arc<ArcSwap<Table>>,
    retired: Vec<Arc<Table>>,
    seen: Vec<Arc<AtomicU64>>,
    stats: Vec<Arc<Mutex<WorkerStats>>>,
    control: Vec<crossbeam::channel::Sender<Control>>,
    neigh: Arc<NeighTable>,
    epoch_tsc: u64,
    exception: Option<ExceptionPath>,
    go: Arc<AtomicBool>,
    sync: Option<SyncRings>,
}

/// How a runtime runs, besides its ports and table.
pub struct Options {
    pub exception: Option<ExceptionPorts>,
    pub poll: PollMode,
    /// Start the workers paused (`resume` lets them poll).
    pub paused: bool,
    /// Workers emit connection sync events and apply the peers' (`Runtime::sync_rings`).
    pub sync: bool,
    /// Connection tables allocated before the start, one per worker in order (a takeover
    /// makes them before the handoff); a worker without one allocates its own.
    pub conn_tables: Vec<ConnTable>,
}

/// The exception path a runtime starts: the TAP port of each lbd port, by port number.
pub struct ExceptionPorts {
    pub taps: Vec<Option<PortId>>,
    pub limits: Limits,
}

impl Runtime {
    /// Starts one worker per entry of `cores` (a core id to pin to, or `None` to float), each
    /// owning queue `i` of every port.
    pub fn start(
        ports: &[Port],
        cores: &[Option<usize>],
        cfg: &WorkerConfig,
        table: Table,
        pool: &Arc<MempoolRef>,
        options: Options,
    ) -> Result<Runtime, String> {
        let Options { exception, poll, paused, sync, conn_tables } = options;
        let mut conn_tables = conn_tables.into_iter();
        let workers = cores.len().max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let go = Arc::new(AtomicBool::new(!paused));
        let table = Arc::new(ArcSwap::from_pointee(table));
        let neigh = Arc::new(NeighTable::new(cfg.neigh));
        let rss = ports.iter().all(|p| p.rss.is_some());
        // Without RSS on every port, connections are steered in software between workers.
        let handoff = (!rss && workers > 1).then(|| {
            (0..workers)
                .map(|_| (0..workers).map(|_| Arc::new(ArrayQueue::new(RING))).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        });
        let mut rt = Runtime {
            handles: Vec::new(),
            stop: Arc::clone(&stop),
            table: Arc::clone(&table),
            retired: Vec::new(),
            seen: Vec::new(),
            stats: Vec::new(),
            control: Vec::new(),
            neigh: Arc::clone(&neigh),
            epoch_tsc: crate::ffi::tsc(),
            exception: None,
            go: Arc::clone(&go),
            sync: None,
        };
        let ring = || Arc::new(ArrayQueue::new(SYNC_RING));
        let sync_rings = sync.then(|| {
            (
                (0..workers).map(|_| ring()).collect::<Vec<_>>(),
                (0..workers).map(|_| ring()).collect::<Vec<_>>(),
                (0..workers).map(|_| Arc::new(AtomicBool::new(false))).collect::<Vec<_>>(),
            )
        });
        let mut links: Vec<Option<WorkerLink>> = match exception {
            Some(e) => {
                let (path, links) = ExceptionPath::start(e.taps, workers, e.limits)?;
                rt.exception = Some(path);
                links.into_iter().map(Some).collect()
            }
            None => (0..workers).map(|_| None).collect(),
        };
        for (i, core) in cores.iter().copied().enumerate().take(workers) {
            let q = u16::try_from(i).unwrap_or(0);
            let steering = match ports.iter().find_map(|p| p.rss.as_ref()) {
                Some((key, reta)) if rss && workers > 1 => match Toeplitz::new(key) {
                    Ok(toeplitz) => Steering::Rss { toeplitz, reta: reta.clone(), queue: q },
                    Err(_) => Steering::Partition { workers: u16::try_from(workers).unwrap_or(1), index: q },
                },
                _ if workers > 1 => Steering::Partition { workers: u16::try_from(workers).unwrap_or(1), index: q },
                _ => Steering::Any,
            };
            if i == 0
                && let Some((outbound, inbound, resync)) = &sync_rings
            {
                rt.sync = Some(SyncRings {
                    outbound: outbound.clone(),
                    inbound: inbound.clone(),
                    resync: resync.clone(),
                    steering: steering.clone(),
                });
            }
            let mut worker = match conn_tables.next() {
                Some(conns) => Worker::with_conns(cfg, Arc::clone(&neigh), steering, conns),
                None => Worker::new(cfg, Arc::clone(&neigh), steering),
            };
            worker.set_sync(sync);
            let seen = Arc::new(AtomicU64::new(0));
            let stats = Arc::new(Mutex::new(WorkerStats {
                index: i,
                core,
                loops: LoopCounters::default(),
                counters: Counters::new(0, 0),
                conns: 0,
                tsc_hz: 1,
            }));
            let (tx, rx) = crossbeam::channel::bounded(16);
            let ctx = WorkerCtx {
                index: i,
                core,
                workers,
                worker,
                rx: ports.iter().map(|p| (p.id, QueueId(q))).collect(),
                tx: ports.iter().map(|p| TxBuffer::new(p.id, QueueId(q))).collect(),
                table: Arc::clone(&table),
                seen_generation: Arc::clone(&seen),
                stop: Arc::clone(&stop),
                stats: Arc::clone(&stats),
                control: rx,
                handoff: handoff.clone(),
                pool: Arc::clone(pool),
                epoch_tsc: rt.epoch_tsc,
                exception: links.get_mut(i).and_then(Option::take),
                poll,
                go: Arc::clone(&go),
                sync: sync_rings.as_ref().map(|(o, n, r)| crate::worker::SyncLink {
                    outbound: Arc::clone(&o[i]),
                    inbound: Arc::clone(&n[i]),
                    resync: Arc::clone(&r[i]),
                    cursor: None,
                }),
            };
            rt.seen.push(seen);
            rt.stats.push(stats);
            rt.control.push(tx);
            let handle = std::thread::Builder::new()
                .name(format!("lbd-worker-{i}"))
                .spawn(move || ctx.run())
                .map_err(|e| format!("cannot start worker thread {i}: {e}"));
            match handle {
                Ok(h) => rt.handles.push(h),
                Err(e) => {
                    // Stop the workers already running before reporting.
                    rt.stop();
                    return Err(e);
                }
            }
        }
        Ok(rt)
    }

    /// The table in force.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// The rings to the workers' sync events, when started with `Options::sync`.
    pub fn sync_rings(&self) -> Option<SyncRings> {
        self.sync.clone()
    }

    /// Lets workers started paused begin polling.
    pub fn resume(&self) {
        self.go.store(true, Ordering::Release);
    }

    /// The workers' clock in milliseconds (the times in the neighbour table).
    pub fn now_ms(&self) -> u64 {
        (crate::ffi::tsc() - self.epoch_tsc) / (crate::ffi::tsc_hz() / 1000).max(1)
    }

    /// The shared neighbour table.
    pub fn neighbours(&self) -> &Arc<NeighTable> {
        &self.neigh
    }

    /// Publishes a new table; returns the generation it carries.
    pub fn publish(&mut self, table: Table) -> u64 {
        let generation = table.generation;
        let old = self.table.swap(Arc::new(table));
        self.retired.push(old);
        self.reap();
        generation
    }

    /// Drops retired tables no worker can still be using.
    pub fn reap(&mut self) {
        let oldest_seen = self.seen.iter().map(|s| s.load(Ordering::Acquire)).min().unwrap_or(u64::MAX);
        self.retired.retain(|t| t.generation >= oldest_seen);
    }

    /// Waits until every worker has used `generation` (or `timeout` passes); returns the time
    /// it took, which is what "command to every worker on the new table" measures.
    pub fn wait_for(&mut self, generation: u64, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.seen.iter().all(|s| s.load(Ordering::Acquire) >= generation) {
                let took = start.elapsed();
                self.reap();
                return Some(took);
            }
            std::thread::yield_now();
        }
        None
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.stats.len()
    }

    /// A copy of every worker's published statistics.
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.handle().workers()
    }

    /// A handle for threads that read statistics.
    pub fn handle(&self) -> StatsHandle {
        StatsHandle {
            stats: self.stats.clone(),
            table: Arc::clone(&self.table),
            neigh: Arc::clone(&self.neigh),
            exception: self.exception.as_ref().map(ExceptionPath::counters),
        }
    }

    /// Sends a control request to every worker.
    pub fn broadcast(&self, make: impl Fn() -> Control) {
        for c in &self.control {
            let _ = c.send(make());
        }
    }

    /// Sends a control request to worker `index`.
    pub fn send(&self, index: usize, c: Control) -> bool {
        self.control.get(index).is_some_and(|tx| tx.send(c).is_ok())
    }

    /// Stops the workers (they flush TX first) and joins them.
    pub fn stop(mut self) -> Vec<WorkerStats> {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        if let Some(e) = &mut self.exception {
            e.stop();
        }
        self.stats()
    }
}

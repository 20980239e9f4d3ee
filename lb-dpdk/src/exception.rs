//! The exception path: for each port configured with `exception = true`, a `net_tap` port
//! whose kernel side is an interface of the host carrying the port's MAC and addresses (as
//! DPVS's KNI and Maglev's TAP exception path do). What the data path does not handle itself
//! (TCP/UDP to the interface addresses on ports that are not services: BGP, ssh, the replies
//! to lbd's own health checks) goes to the kernel, and what the kernel sends leaves by the
//! port.
//!
//! The kernel is reached by syscalls (the TAP file descriptor), so the workers never touch it:
//! each worker hands frames for the host to a ring, rate-limited by a token bucket so a flood
//! at the LB's address costs the worker a ring push at most and is counted, and takes the
//! kernel's frames from another ring. One exception thread, off the worker cores, moves frames
//! between those rings and the TAP ports, sleeping when there is nothing to move.

use crate::ffi::{PortId, QueueId};
use crate::mbuf::{BURST, Mbuf, RxBurst, TxBuffer};
use crossbeam::queue::ArrayQueue;
use lb_core::Frame;
use lb_core::ratelimit::TokenBucket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Frames each ring holds (per worker and direction).
pub const RING: usize = 1024;
/// How long the exception thread sleeps when it found nothing to move.
const IDLE_SLEEP: Duration = Duration::from_micros(100);

/// Frames in flight between one worker and the exception thread.
type Ring = Arc<ArrayQueue<Mbuf>>;

/// Rate limits of the frames workers pass to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Frames per second each worker may pass to the kernel.
    pub rate: u64,
    /// Frames a worker may pass at once after a quiet spell.
    pub burst: u64,
}

/// A worker's end of the exception path.
pub struct WorkerLink {
    to_host: Ring,
    from_host: Ring,
    bucket: TokenBucket,
}

/// What happened to a frame a worker offered the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// Over the rate limit: freed.
    Limited,
    /// The ring to the exception thread was full: freed.
    RingFull,
}

impl WorkerLink {
    /// Offers a frame to the host's kernel (never blocks; the frame is freed when refused).
    #[inline]
    pub fn offer(&mut self, m: Mbuf, now_ms: u64) -> Offer {
        if !self.bucket.take(now_ms) {
            return Offer::Limited;
        }
        match self.to_host.push(m) {
            Ok(()) => Offer::Queued,
            Err(_) => Offer::RingFull,
        }
    }

    /// The next frame the kernel sent, with its port set to the lbd port it leaves by.
    #[inline]
    pub fn take(&self) -> Option<Mbuf> {
        self.from_host.pop()
    }
}

/// Counters of the exception thread.
#[derive(Debug, Default)]
pub struct ThreadCounters {
    /// Frames written to a TAP port (to the kernel) / refused by it.
    pub to_kernel: AtomicU64,
    pub to_kernel_refused: AtomicU64,
    /// Frames read from a TAP port (from the kernel) / dropped because a worker's ring was full.
    pub from_kernel: AtomicU64,
    pub from_kernel_dropped: AtomicU64,
}

/// A copy of the exception thread's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadStats {
    pub to_kernel: u64,
    pub to_kernel_refused: u64,
    pub from_kernel: u64,
    pub from_kernel_dropped: u64,
}

impl ThreadCounters {
    pub fn read(&self) -> ThreadStats {
        ThreadStats {
            to_kernel: self.to_kernel.load(Ordering::Relaxed),
            to_kernel_refused: self.to_kernel_refused.load(Ordering::Relaxed),
            from_kernel: self.from_kernel.load(Ordering::Relaxed),
            from_kernel_dropped: self.from_kernel_dropped.load(Ordering::Relaxed),
        }
    }
}

/// The running exception thread.
pub struct ExceptionPath {
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    counters: Arc<ThreadCounters>,
}

impl ExceptionPath {
    /// Starts the thread for `taps` (the TAP port of each lbd port, by lbd port number) and
    /// returns it with one link per worker.
    pub fn start(taps: Vec<Option<PortId>>, workers: usize, limits: Limits) -> Result<(Self, Vec<WorkerLink>), String> {
        let mut links = Vec::with_capacity(workers);
        let mut rings = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (to_host, from_host) = (Arc::new(ArrayQueue::new(RING)), Arc::new(ArrayQueue::new(RING)));
            rings.push((Arc::clone(&to_host), Arc::clone(&from_host)));
            links.push(WorkerLink { to_host, from_host, bucket: TokenBucket::new(limits.rate, limits.burst) });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(ThreadCounters::default());
        let mover = Mover {
            tx: taps.iter().map(|t| t.map(|p| TxBuffer::new(p, QueueId(0)))).collect(),
            taps,
            rings,
            stop: Arc::clone(&stop),
            counters: Arc::clone(&counters),
        };
        let handle = std::thread::Builder::new()
            .name("lbd-exception".into())
            .spawn(move || mover.run())
            .map_err(|e| format!("cannot start the exception thread: {e}"))?;
        Ok((ExceptionPath { handle: Some(handle), stop, counters }, links))
    }

    /// The thread's counters.
    pub fn counters(&self) -> Arc<ThreadCounters> {
        Arc::clone(&self.counters)
    }

    /// Stops and joins the thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ExceptionPath {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The exception thread's state.
struct Mover {
    /// TAP port of each lbd port.
    taps: Vec<Option<PortId>>,
    tx: Vec<Option<TxBuffer>>,
    /// (to_host, from_host) rings of each worker.
    rings: Vec<(Ring, Ring)>,
    stop: Arc<AtomicBool>,
    counters: Arc<ThreadCounters>,
}

impl Mover {
    fn run(mut self) {
        if self.rings.is_empty() {
            return;
        }
        let mut rx = RxBurst::default();
        let mut next_worker = 0usize;
        while !self.stop.load(Ordering::Relaxed) {
            let mut moved = 0u64;
            // Workers -> kernel.
            for (to_host, _) in &self.rings {
                for _ in 0..BURST {
                    let Some(m) = to_host.pop() else { break };
                    moved += 1;
                    match self.tx.get_mut(usize::from(m.in_port())).and_then(Option::as_mut) {
                        Some(tx) => {
                            self.counters.to_kernel.fetch_add(1, Ordering::Relaxed);
                            if let Some(f) = tx.push(m) {
                                self.counters.to_kernel_refused.fetch_add(f.dropped as u64, Ordering::Relaxed);
                            }
                        }
                        None => drop(m),
                    }
                }
            }
            for tx in self.tx.iter_mut().flatten() {
                let f = tx.flush();
                self.counters.to_kernel_refused.fetch_add(f.dropped as u64, Ordering::Relaxed);
            }
            // Kernel -> workers, spread over them burst by burst.
            for (port, tap) in self.taps.iter().enumerate() {
                let Some(tap) = *tap else { continue };
                let n = rx.receive(tap, QueueId(0));
                if n == 0 {
                    continue;
                }
                moved += n as u64;
                self.counters.from_kernel.fetch_add(n as u64, Ordering::Relaxed);
                let (_, from_host) = &self.rings[next_worker % self.rings.len()];
                next_worker = next_worker.wrapping_add(1);
                for mut m in rx.drain() {
                    m.set_port(u16::try_from(port).unwrap_or(u16::MAX));
                    if from_host.push(m).is_err() {
                        self.counters.from_kernel_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            if moved == 0 {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }
}

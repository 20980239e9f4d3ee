//! The thread that talks to the peer nodes (`[sync]`): it collects the workers' sync events
//! into datagrams and sends each to every peer, and hands the events of the peers' datagrams
//! to the workers that own their connections. It runs off the worker cores and makes every
//! syscall of connection sync; workers only touch lock-free rings. Its sockets are the host's,
//! so with an exception path the datagrams leave and arrive through lbd's own ports.
//!
//! A datagram is believed only from a configured peer's address and the sync port, with the
//! cluster key's MAC, sent within `max_age_ms` by the receiver's clock, and never twice
//! (`lb_core::sync::ReplayWindow`). Everything refused is counted by reason.

use crate::config::SyncConfig;
use lb_core::sync::{Encoder, ReplayWindow, SyncError, SyncEvent, SyncKey};
use lb_dpdk::runtime::SyncRings;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the thread waits for a datagram before it collects the workers' events again:
/// the longest an event waits before it leaves (and so the sync's batching interval).
const TICK: Duration = Duration::from_millis(1);
/// A node with nothing to say still sends an empty datagram this often, so that a peer that
/// (re)starts learns of it, and it of the peer (see `State::accept`).
const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the sync thread counts (read by metrics and `lbctl stats`).
#[derive(Default)]
pub struct SyncCounters {
    pub sent_datagrams: AtomicU64,
    pub sent_records: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub send_errors: AtomicU64,
    pub received_datagrams: AtomicU64,
    pub received_records: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Peers seen starting (a new epoch): each made this node send all its connections again.
    pub peer_starts: AtomicU64,
    /// Datagrams refused, by `SyncError as usize`, then from an address that is no peer.
    pub refused: [AtomicU64; SyncError::ALL.len() + 1],
    /// Peers' events dropped because the owning worker's ring was full.
    pub inbound_full: AtomicU64,
}

impl SyncCounters {
    /// The refusal reasons with their counts.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        SyncError::ALL
            .iter()
            .map(|e| e.name())
            .chain(["unknown_peer"])
            .zip(self.refused.iter().map(|c| c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The running sync thread.
pub struct SyncThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub counters: Arc<SyncCounters>,
}

impl SyncThread {
    /// Binds the sync socket and starts the thread.
    pub fn start(cfg: &SyncConfig, rings: SyncRings) -> Result<SyncThread, String> {
        let own = cfg.address.ok_or("sync.address: missing")?;
        let key = SyncKey::new(&cfg.secret()?).map_err(|e| format!("sync.key: {e}"))?;
        let socket = bind(own, cfg.port)?;
        socket.set_read_timeout(Some(TICK)).map_err(|e| format!("sync socket: {e}"))?;
        let counters = Arc::new(SyncCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = State {
            socket,
            key,
            peers: cfg.peers.iter().map(|p| (SocketAddr::new(*p, cfg.port), ReplayWindow::default())).collect(),
            max_age_ms: cfg.max_age_ms,
            rings,
            encoder: Encoder::new(unix_ms()),
            counters: Arc::clone(&counters),
            decoded: Vec::with_capacity(64),
            last_sent: std::time::Instant::now(),
        };
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("lbd-sync".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    state.send_events();
                    state.receive();
                }
                state.send_events();
            })
            .map_err(|e| format!("cannot start the sync thread: {e}"))?;
        Ok(SyncThread { stop, handle: Some(handle), counters })
    }
}

impl Drop for SyncThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Binds the sync socket to this node's address. With an exception path that address appears
/// on the kernel interface only once lbd has set it up, so the bind is retried for a while.
fn bind(own: IpAddr, port: u16) -> Result<UdpSocket, String> {
    let mut last = String::new();
    for _ in 0..50 {
        match UdpSocket::bind(SocketAddr::new(own, port)) {
            Ok(s) => return Ok(s),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("sync.address: cannot bind {own}:{port}: {last}"))
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

struct State {
    socket: UdpSocket,
    key: SyncKey,
    peers: Vec<(SocketAddr, ReplayWindow)>,
    max_age_ms: u64,
    rings: SyncRings,
    encoder: Encoder,
    counters: Arc<SyncCounters>,
    decoded: Vec<SyncEvent>,
    last_sent: std::time::Instant,
}

impl State {
    /// Packs every event the workers queued into datagrams and sends them to every peer.
    fn send_events(&mut self) {
        for i in 0..self.rings.outbound.len() {
            while let Some(ev) = self.rings.outbound[i].pop() {
                if !self.encoder.push(&ev) {
                    self.flush();
                    self.encoder.push(&ev);
                }
            }
        }
        if !self.encoder.is_empty() || self.last_sent.elapsed() >= HEARTBEAT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_sent = std::time::Instant::now();
        let records = self.encoder.len() as u64;
        let datagram = self.encoder.seal(&self.key, unix_ms());
        for (peer, _) in &self.peers {
            let c = &self.counters;
            match self.socket.send_to(datagram, peer) {
                Ok(n) => {
                    c.sent_datagrams.fetch_add(1, Ordering::Relaxed);
                    c.sent_records.fetch_add(records, Ordering::Relaxed);
                    c.sent_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                // A peer that is down answers with ICMP unreachable: nothing to do about it.
                Err(_) => {
                    c.send_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Receives what arrived (waiting up to one tick for the first datagram).
    fn receive(&mut self) {
        let mut buf = [0u8; 2048];
        for _ in 0..256 {
            let Ok((n, from)) = self.socket.recv_from(&mut buf) else { return };
            if let Err(reason) = self.accept(&buf[..n], from) {
                let at = reason.map_or(SyncError::ALL.len(), |r| r as usize);
                self.counters.refused[at].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Checks one datagram and hands its events to their workers; `Err(None)` for a sender
    /// that is no peer.
    fn accept(&mut self, d: &[u8], from: SocketAddr) -> Result<(), Option<SyncError>> {
        let Some(window) = self.peers.iter_mut().find(|(p, _)| *p == from).map(|(_, w)| w) else {
            return Err(None);
        };
        let g = lb_core::sync::open(d, &self.key)?;
        let now = unix_ms();
        if now.abs_diff(g.sent_ms) > self.max_age_ms || g.epoch > now + self.max_age_ms {
            return Err(Some(SyncError::Stale));
        }
        self.decoded.clear();
        g.records(&mut self.decoded)?;
        // Only a datagram that parsed moves the window: a broken one may come again, fixed.
        let known = window.epoch();
        if !window.accept(g.epoch, g.seq) {
            return Err(Some(SyncError::Replay));
        }
        if window.epoch() != known {
            // The peer (re)started, or this node did: it holds none of our connections yet
            // (a joining node; one restarted after a crash). Every worker sends them again.
            self.rings.request_resync();
            self.counters.peer_starts.fetch_add(1, Ordering::Relaxed);
            println!("lbd: sync: peer {} started (epoch {}): sending it our connections", from.ip(), g.epoch);
        }
        let c = &self.counters;
        c.received_datagrams.fetch_add(1, Ordering::Relaxed);
        c.received_records.fetch_add(self.decoded.len() as u64, Ordering::Relaxed);
        c.received_bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
        for ev in &self.decoded {
            let owner = self.rings.owner(&ev.conn.orig);
            if self.rings.inbound.get(owner).is_none_or(|r| r.push(*ev).is_err()) {
                c.inbound_full.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

//! Health checks, run by lbd itself off the worker cores: a scheduler on the control thread
//! hands due checks to a small pool of checker threads, which use the host's own sockets, so
//! their packets take the exception path and the same ports as the traffic they vouch for. A
//! backend reached by dr, tun or gue is checked at its real address. Results go through
//! `RiseFall`; the passive check reads the workers' per-backend SYN failure counters. Every
//! state change is logged once with its reason, and the control socket rebuilds the table
//! with the down backends at weight 0.

use crossbeam::channel::{Receiver, Sender};
use lb_core::flow::to_ip;
use lb_core::health::{CheckKind, CheckModel, PassiveModel, RiseFall};
use lb_core::service::{BackendKey, DownSet, ServiceKey, ServicesModel, Table};
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Checker threads: checks block on their sockets for up to their timeout.
const CHECKERS: usize = 4;
/// Most bytes of an HTTP answer read.
const HTTP_MAX: usize = 64 * 1024;

/// The last result of a backend's checks, as `lbctl list` and the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    pub up: bool,
    pub kind: &'static str,
    pub ok: bool,
    pub reason: String,
    pub latency_us: u64,
    pub at: Instant,
}

/// What metrics and `list` read: the status of every checked backend.
pub type Board = Arc<Mutex<HashMap<BackendKey, CheckStatus>>>;

struct Job {
    key: BackendKey,
    check: CheckModel,
    addr: SocketAddr,
}

struct Outcome {
    key: BackendKey,
    ok: bool,
    reason: String,
    latency: Duration,
}

/// One checked backend.
struct Target {
    check: Option<CheckModel>,
    passive: Option<PassiveModel>,
    addr: SocketAddr,
    state: RiseFall,
    due: Instant,
    in_flight: bool,
    /// SYN failures counted so far (the workers' running total) and those of the window.
    failures_seen: Option<u64>,
    window: VecDeque<(Instant, u64)>,
    /// When the passive check took it out (for the hold-down without an active check).
    passive_down: Option<Instant>,
}

/// The health checks of every service.
pub struct Health {
    targets: HashMap<BackendKey, Target>,
    jobs: Sender<Job>,
    outcomes: Receiver<Outcome>,
    board: Board,
    down: DownSet,
}

impl Health {
    /// Starts the checker threads.
    pub fn start() -> Result<Health, String> {
        let (jobs, job_rx) = crossbeam::channel::unbounded::<Job>();
        let (out_tx, outcomes) = crossbeam::channel::unbounded();
        for i in 0..CHECKERS {
            let (rx, tx) = (job_rx.clone(), out_tx.clone());
            std::thread::Builder::new()
                .name(format!("lbd-check-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let started = Instant::now();
                        let (ok, reason) = match run_check(&job.check, job.addr) {
                            Ok(r) => (true, r),
                            Err(r) => (false, r),
                        };
                        let o = Outcome { key: job.key, ok, reason, latency: started.elapsed() };
                        if tx.send(o).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| format!("cannot start a health checker thread: {e}"))?;
        }
        Ok(Health {
            targets: HashMap::new(),
            jobs,
            outcomes,
            board: Arc::new(Mutex::new(HashMap::new())),
            down: DownSet::new(),
        })
    }

    /// The status board (for metrics).
    pub fn board(&self) -> Board {
        Arc::clone(&self.board)
    }

    /// The backends out of scheduling.
    pub fn down(&self) -> &DownSet {
        &self.down
    }

    /// Takes out the backends another lbd's checks had taken out (`--takeover`): they stay
    /// down until `rise` checks in a row bring them back, instead of taking traffic until
    /// `fall` checks fail again. Call after `sync`; backends no longer checked are ignored.
    pub fn adopt_down(&mut self, down: &DownSet) {
        let now = Instant::now();
        for key in down {
            if let Some(t) = self.targets.get_mut(key) {
                t.state = RiseFall::down();
                self.down.insert(*key);
                if let Ok(mut b) = self.board.lock() {
                    b.insert(*key, status_of(false, "handover", "down in the lbd taken over", now));
                }
            }
        }
    }

    /// Follows the model: new backends start up and are checked at once, removed ones are
    /// forgotten, changed checks apply from their next run.
    pub fn sync(&mut self, model: &ServicesModel) {
        let mut keep = hashbrown::HashSet::new();
        let now = Instant::now();
        for s in &model.services {
            if s.check.is_none() && s.passive.is_none() {
                continue;
            }
            let skey = ServiceKey::new(s.vip, s.port, s.protocol);
            for b in &s.backends {
                let key = BackendKey::new(skey, b);
                let port = s.check.as_ref().and_then(|c| c.port).unwrap_or(if b.port == 0 { s.port } else { b.port });
                let addr = SocketAddr::new(b.address, port);
                keep.insert(key);
                let t = self.targets.entry(key).or_insert_with(|| Target {
                    check: None,
                    passive: None,
                    addr,
                    state: RiseFall::default(),
                    due: now,
                    in_flight: false,
                    failures_seen: None,
                    window: VecDeque::new(),
                    passive_down: None,
                });
                t.check.clone_from(&s.check);
                t.passive.clone_from(&s.passive);
                t.addr = addr;
            }
        }
        self.targets.retain(|k, _| keep.contains(k));
        self.down.retain(|k| keep.contains(k));
        if let Ok(mut b) = self.board.lock() {
            b.retain(|k, _| keep.contains(k));
        }
    }

    /// Starts due checks, applies finished ones and the passive counters; true when a
    /// backend changed state (the table must be rebuilt).
    /// `failures` (backend id to its SYN failures so far) is given when the passive check is
    /// due.
    pub fn tick(&mut self, table: &Table, failures: Option<&dyn Fn(u32) -> u64>) -> bool {
        let now = Instant::now();
        let mut changed = false;
        for (key, t) in &mut self.targets {
            let Some(check) = &t.check else { continue };
            if !t.in_flight && now >= t.due {
                t.in_flight = true;
                t.due = now + Duration::from_millis(check.interval());
                let _ = self.jobs.send(Job { key: *key, check: check.clone(), addr: t.addr });
            }
        }
        while let Ok(o) = self.outcomes.try_recv() {
            let Some(t) = self.targets.get_mut(&o.key) else { continue };
            t.in_flight = false;
            let Some(check) = &t.check else { continue };
            if let Some(up) = t.state.record(o.ok, check.rise, check.fall) {
                let why = if up {
                    format!("{} successful {} checks: {}", check.rise, check.kind.name(), o.reason)
                } else {
                    format!("{} failed {} checks, the last: {}", check.fall, check.kind.name(), o.reason)
                };
                changed |= set_state(&mut self.down, &o.key, up, &why);
                t.passive_down = None;
            }
            let status = CheckStatus {
                up: t.state.up,
                kind: check.kind.name(),
                ok: o.ok,
                reason: o.reason,
                latency_us: u64::try_from(o.latency.as_micros()).unwrap_or(u64::MAX),
                at: now,
            };
            if let Ok(mut b) = self.board.lock() {
                b.insert(o.key, status);
            }
        }
        match failures {
            Some(f) => changed | self.passive(table, f, now),
            None => changed,
        }
    }

    /// The passive check: SYN failures of each backend within its window.
    fn passive(&mut self, table: &Table, failures: &dyn Fn(u32) -> u64, now: Instant) -> bool {
        let mut changed = false;
        for s in table.services() {
            let Some(p) = &s.model.passive else { continue };
            for (b, m) in s.backends.iter().zip(&s.model.backends) {
                let key = BackendKey::new(s.key, m);
                let Some(t) = self.targets.get_mut(&key) else { continue };
                let total = failures(b.id);
                let new = total.saturating_sub(t.failures_seen.unwrap_or(total));
                t.failures_seen = Some(total);
                if new > 0 {
                    t.window.push_back((now, new));
                }
                let window = Duration::from_millis(p.window_ms);
                while t.window.front().is_some_and(|(at, _)| now.duration_since(*at) > window) {
                    t.window.pop_front();
                }
                let in_window: u64 = t.window.iter().map(|(_, n)| n).sum();
                if t.state.up && in_window >= u64::from(p.syn_failures) {
                    t.state = RiseFall::down();
                    t.passive_down = Some(now);
                    t.window.clear();
                    let why = format!("passive: {in_window} failed SYNs within {} ms", p.window_ms);
                    changed |= set_state(&mut self.down, &key, false, &why);
                    if let Ok(mut board) = self.board.lock() {
                        board.insert(key, status_of(false, "passive", &why, now));
                    }
                } else if t.check.is_none()
                    && t.passive_down.is_some_and(|at| now.duration_since(at) >= Duration::from_millis(p.holddown_ms))
                {
                    t.state = RiseFall::default();
                    t.passive_down = None;
                    let why = format!("passive: hold-down of {} ms over", p.holddown_ms);
                    changed |= set_state(&mut self.down, &key, true, &why);
                    if let Ok(mut board) = self.board.lock() {
                        board.insert(key, status_of(true, "passive", &why, now));
                    }
                }
            }
        }
        changed
    }
}

fn status_of(up: bool, kind: &'static str, reason: &str, at: Instant) -> CheckStatus {
    CheckStatus { up, kind, ok: up, reason: reason.to_string(), latency_us: 0, at }
}

/// Moves `key` in or out of `down` and logs the change once; true when it changed.
fn set_state(down: &mut DownSet, key: &BackendKey, up: bool, why: &str) -> bool {
    let changed = if up { down.remove(key) } else { down.insert(*key) };
    if changed {
        let port = if key.port == 0 { key.service.port } else { key.port };
        println!(
            "lbd: health: service {} backend {} is {}: {why}",
            key.service,
            SocketAddr::new(to_ip(key.addr, key.v6), port),
            if up { "up" } else { "down" }
        );
    }
    changed
}

/// Runs one check; `Ok` with a short note, or `Err` with the reason it failed.
fn run_check(c: &CheckModel, addr: SocketAddr) -> Result<String, String> {
    let timeout = Duration::from_millis(c.timeout());
    match c.kind {
        CheckKind::Tcp => TcpStream::connect_timeout(&addr, timeout)
            .map(|_| "connected".to_string())
            .map_err(|e| format!("connect {addr}: {e}")),
        CheckKind::Http => http_get(c, addr, timeout),
        CheckKind::Udp => udp_exchange(c, addr, timeout),
        CheckKind::Misc => misc(c, addr, timeout),
    }
}

fn http_get(c: &CheckModel, addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    s.set_write_timeout(Some(left())).map_err(|e| e.to_string())?;
    let host = match addr.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}:{}\r\nUser-Agent: lbd-health-check\r\nConnection: close\r\n\r\n",
        c.path,
        addr.port()
    );
    s.write_all(request.as_bytes()).map_err(|e| format!("send: {e}"))?;
    let mut answer = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while answer.len() < HTTP_MAX {
        s.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // The TAP driver's SIGIO interrupts blocking calls in any thread.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if Instant::now() >= deadline => return Err(format!("no full answer within the timeout: {e}")),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: '{}'", text.lines().next().unwrap_or("").trim()))?;
    if status != c.status_code {
        return Err(format!("status {status}, expected {}", c.status_code));
    }
    if let Some(want) = &c.expect {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if !body.contains(want.as_str()) {
            return Err(format!("status {status} but the body lacks '{want}'"));
        }
    }
    Ok(format!("status {status}"))
}

fn udp_exchange(c: &CheckModel, addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = UdpSocket::bind(local).map_err(|e| format!("bind: {e}"))?;
    s.connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.send(&c.udp_payload()).map_err(|e| format!("send to {addr}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    let n = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{addr}: no answer"));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.recv(&mut buf) {
            Ok(n) => break n,
            // The TAP driver's SIGIO interrupts blocking calls in any thread.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(format!("{addr}: port unreachable"));
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(format!("{addr}: no answer"));
            }
            Err(e) => return Err(format!("{addr}: {e}")),
        }
    };
    if let Some(want) = &c.expect
        && !String::from_utf8_lossy(&buf[..n]).contains(want.as_str())
    {
        return Err(format!("answer of {n} bytes lacks '{want}'"));
    }
    Ok(format!("answer of {n} bytes"))
}

fn misc(c: &CheckModel, addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let cmd = c.misc_path.as_deref().unwrap_or_default();
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("LBD_BACKEND_ADDRESS", addr.ip().to_string())
        .env("LBD_BACKEND_PORT", addr.port().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run '{cmd}': {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok("exit 0".into()),
            Ok(Some(status)) => return Err(format!("'{cmd}' failed: {status}")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("'{cmd}' did not finish within {} ms", timeout.as_millis()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("'{cmd}': {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    fn check(text: &str) -> CheckModel {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn tcp_and_http_checks_against_local_servers() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(3) {
                let mut s = s.unwrap();
                let mut b = [0u8; 512];
                let _ = s.read(&mut b);
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nbackend-7\n");
            }
        });
        assert!(run_check(&check("type = \"tcp\""), addr).is_ok());
        assert_eq!(run_check(&check("type = \"http\"\nexpect = \"backend-7\""), addr), Ok("status 200".into()));
        let e = run_check(&check("type = \"http\"\nstatus_code = 204"), addr).unwrap_err();
        assert!(e.contains("status 200, expected 204"), "{e}");
        drop(TcpListener::bind("127.0.0.1:0"));
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(run_check(&check("type = \"tcp\""), closed).unwrap_err().contains("connect"));
    }

    #[test]
    fn udp_check_answers_and_refusals() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut b = [0u8; 64];
            let (n, from) = server.recv_from(&mut b).unwrap();
            server.send_to(&[&b"pong:"[..], &b[..n]].concat(), from).unwrap();
        });
        let c = check("type = \"udp\"\nsend = \"ping\"\nexpect = \"pong\"\ntimeout_ms = 500");
        assert_eq!(run_check(&c, addr), Ok("answer of 9 bytes".into()));
        let closed = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let e = run_check(&c, closed).unwrap_err();
        assert!(e.contains("port unreachable") || e.contains("no answer"), "{e}");
    }

    #[test]
    fn misc_check_exit_status_and_timeout() {
        let addr: SocketAddr = "10.1.0.11:8080".parse().unwrap();
        let ok = check(
            "type = \"misc\"\nmisc_path = \"test \\\"$LBD_BACKEND_ADDRESS:$LBD_BACKEND_PORT\\\" = 10.1.0.11:8080\"",
        );
        assert_eq!(run_check(&ok, addr), Ok("exit 0".into()));
        assert!(
            run_check(&check("type = \"misc\"\nmisc_path = \"exit 3\""), addr).unwrap_err().contains("exit status: 3")
        );
        let slow = check("type = \"misc\"\nmisc_path = \"sleep 5\"\ntimeout_ms = 100");
        assert!(run_check(&slow, addr).unwrap_err().contains("did not finish within 100 ms"));
    }
}

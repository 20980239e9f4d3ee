//! lbd's control socket: one request per connection (see lb-ctl's protocol). Served from the
//! control thread's loop, so commands apply one at a time; every edit is applied to a copy of
//! the model, built into a new table (validated), published atomically, and kept only if all
//! of that succeeded.

use crate::health::Health;
use crate::hostif::Announcer;
use lb_core::conntrack::Timeouts;
use lb_core::flow::to_ip;
use lb_core::pipeline::{Counters, DropReason};
use lb_core::service::BackendKey;
use lb_core::service::{Limits, ServicesModel, Table};
use lb_ctl::{
    BackendView, CheckView, Command, ConnView, MAX_REQUEST, NeighView, PortView, Request, Response, ServiceView,
    Traffic, VERSION, WorkerView,
};
use lb_dpdk::runtime::Runtime;
use lb_dpdk::worker::Control as WorkerControl;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    model: ServicesModel,
    timeouts: Timeouts,
    seed: u64,
    health: Health,
    /// When the passive check last read the workers' counters.
    passive_read: Instant,
    /// Keeps the VIPs announced, when `[announce]` names an interface.
    announcer: Option<Announcer>,
    /// Another lbd took everything over: this one must exit.
    pub handed_over: bool,
    /// The data-plane ports, for `ports` (set once they are open).
    pub ports: Vec<lb_dpdk::port::Port>,
}

/// How often the passive check reads the workers' SYN failure counters.
const PASSIVE_EVERY: Duration = Duration::from_millis(200);

impl ControlSocket {
    /// Binds the socket (mode 0600), replacing a stale one left by a killed lbd.
    pub fn bind(
        path: &Path,
        model: ServicesModel,
        timeouts: Timeouts,
        seed: u64,
        mut health: Health,
        announcer: Option<Announcer>,
    ) -> Result<Self, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("control.socket: cannot create {}: {e}", dir.display()))?;
        }
        if UnixStream::connect(path).is_ok() {
            return Err(format!("control.socket: {} is in use by another lbd", path.display()));
        }
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).map_err(|e| format!("control.socket: cannot bind {}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("control.socket: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| format!("control.socket: {e}"))?;
        health.sync(&model);
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
            model,
            timeouts,
            seed,
            health,
            passive_read: Instant::now(),
            announcer,
            handed_over: false,
            ports: Vec::new(),
        })
    }

    /// Serves every pending connection, then the health checks.
    pub fn poll(&mut self, rt: &mut Runtime) {
        while let Ok((stream, _)) = self.listener.accept() {
            let _ = self.serve(stream, rt);
        }
        let table = rt.table();
        let passive =
            self.model.services.iter().any(|s| s.passive.is_some()) && self.passive_read.elapsed() >= PASSIVE_EVERY;
        let changed = if passive {
            self.passive_read = Instant::now();
            let mut failures = std::collections::HashMap::<u32, u64>::new();
            for w in rt.stats() {
                for s in table.services().iter().filter(|s| s.model.passive.is_some()) {
                    for b in &s.backends {
                        let n = w.counters.backends.get(b.id as usize).map_or(0, |c| c.syn_failures);
                        *failures.entry(b.id).or_default() += n;
                    }
                }
            }
            self.health.tick(&table, Some(&|id| failures.get(&id).copied().unwrap_or(0)))
        } else {
            self.health.tick(&table, None)
        };
        if changed {
            // The same model with other backends down: this build cannot fail where the last
            // one succeeded, but if it does, the table in force stays.
            match self.build(&self.model, &table) {
                Ok(t) => {
                    rt.publish(t);
                }
                Err(e) => eprintln!("lbd: health: table not rebuilt: {e}"),
            }
        }
        if let Some(a) = &mut self.announcer {
            a.sync(&rt.table());
        }
    }

    /// Withdraws every VIP now (lbd is stopping).
    pub fn withdraw_all(&mut self, rt: &Runtime) {
        if let Some(a) = &mut self.announcer {
            a.stop(&rt.table());
        }
    }

    /// Builds the table for `model` with the backends the health checks took out.
    fn build(&self, model: &ServicesModel, current: &Table) -> Result<Table, String> {
        Table::build_with_health(
            model,
            current.network.clone(),
            Limits::default(),
            Some(current),
            self.seed,
            self.health.down(),
        )
        .map_err(|e| e.0)
    }

    fn serve(&mut self, stream: UnixStream, rt: &mut Runtime) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut line = String::new();
        let n = BufReader::new((&stream).take(MAX_REQUEST as u64 + 1)).read_line(&mut line)?;
        let response = if n > MAX_REQUEST {
            refuse(format!("request larger than {MAX_REQUEST} bytes"))
        } else {
            match serde_json::from_str::<Request>(&line) {
                Err(e) => refuse(format!("malformed request: {e}")),
                Ok(r) if r.version != VERSION => {
                    refuse(format!("protocol version {} is not supported (lbd speaks {VERSION})", r.version))
                }
                Ok(r) => match self.handle(&r.command, rt) {
                    Ok(result) => Response { version: VERSION, ok: true, error: None, result },
                    Err(e) => refuse(e),
                },
            }
        };
        let mut s = &stream;
        let mut text = serde_json::to_string(&response).unwrap_or_else(|_| "{\"version\":1,\"ok\":false}".into());
        text.push('\n');
        s.write_all(text.as_bytes())
    }

    fn handle(&mut self, cmd: &Command, rt: &mut Runtime) -> Result<Value, String> {
        match cmd {
            Command::List => Ok(json!(self.list(rt))),
            Command::Stats => Ok(json!(stats(rt))),
            Command::Ports => Ok(json!(port_views(&self.ports))),
            Command::Conns => Ok(json!(conns(rt))),
            Command::Neigh => Ok(json!(neighbours(rt))),
            Command::NeighFlush => Ok(json!({ "flushed": rt.neighbours().flush() })),
            Command::Drain { on } => {
                let a = self
                    .announcer
                    .as_mut()
                    .ok_or("drain: lbd announces no VIPs (set [announce] interface in its configuration)")?;
                a.set_drained(*on, &rt.table());
                let connections: usize = rt.stats().iter().map(|s| s.conns).sum();
                Ok(json!({ "drained": a.drained(), "announced": a.announced(), "connections": connections }))
            }
            Command::Save => Ok(json!(self.model)),
            Command::Handover => {
                let (tx, rx) = crossbeam::channel::unbounded();
                let mut workers = Vec::with_capacity(rt.workers());
                for i in 0..rt.workers() {
                    if !rt.send(i, WorkerControl::Surrender(tx.clone())) {
                        return Err(format!("worker {i} is gone"));
                    }
                    // One at a time, so that the answers keep the workers' order.
                    workers.push(
                        rx.recv_timeout(Duration::from_secs(5)).map_err(|_| format!("worker {i} did not answer"))?,
                    );
                }
                self.handed_over = true;
                let conns: usize = workers.iter().map(Vec::len).sum();
                println!("lbd: handing over {conns} connections to the lbd taking over");
                Ok(json!(self.state(rt, workers)))
            }
            Command::ConnsSave => {
                let (reply, answers) = lb_dpdk::worker::conns_channel();
                let table = rt.table();
                let mut workers = Vec::with_capacity(rt.workers());
                for i in 0..rt.workers() {
                    rt.send(i, WorkerControl::ListConns(reply.clone()));
                    let (now, conns) = answers
                        .recv_timeout(Duration::from_secs(5))
                        .map_err(|_| format!("worker {i} did not answer"))?;
                    workers.push(lb_core::pipeline::save_conns(conns.iter().copied(), &table, now));
                }
                Ok(json!(self.state(rt, workers)))
            }
            Command::ConnsRestore { state } => {
                if state.workers.len() != rt.workers() {
                    return Err(format!(
                        "the saved connections come from {} workers and this lbd has {}: they would land on the wrong worker",
                        state.workers.len(),
                        rt.workers()
                    ));
                }
                let (adopted, refused) = crate::takeover::adopt(rt, state)?;
                Ok(json!({ "adopted": adopted, "refused": refused }))
            }
            Command::Zero => {
                let (done, acks) = lb_dpdk::worker::ack_channel();
                rt.broadcast(|| WorkerControl::ZeroCounters(done.clone()));
                for _ in 0..rt.workers() {
                    acks.recv_timeout(Duration::from_secs(2))
                        .map_err(|_| "a worker did not acknowledge zero".to_string())?;
                }
                Ok(Value::Null)
            }
            Command::SetTimeouts { tcp, tcpfin, udp } => {
                let t = lb_ctl::with_ipvsadm_timeouts(self.timeouts, *tcp, *tcpfin, *udp);
                t.validate()?;
                self.timeouts = t;
                rt.broadcast(|| WorkerControl::SetTimeouts(t));
                Ok(json!(t))
            }
            Command::Apply { model, dry_run: true } => Ok(json!(lb_ctl::diff(&self.model, model))),
            edit => {
                let model = lb_ctl::edit(&self.model, edit)?;
                let current = rt.table();
                let table = self.build(&model, &current)?;
                let diff = lb_ctl::diff(&self.model, &model);
                let started = Instant::now();
                let generation = rt.publish(table);
                let took = rt.wait_for(generation, Duration::from_secs(2));
                self.model = model;
                self.health.sync(&self.model);
                Ok(json!({
                    "generation": generation,
                    "diff": diff,
                    "published_us": u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    "all_workers_us": took.map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                }))
            }
        }
    }

    /// This lbd's state for another to take over: services, timeouts, the connections
    /// (`workers`, one list per worker) and the learned neighbours.
    fn state(&self, rt: &Runtime, workers: Vec<Vec<lb_core::conntrack::SavedConn>>) -> lb_ctl::Handover {
        let neighbours = rt
            .neighbours()
            .entries(rt.now_ms())
            .into_iter()
            .filter(|e| e.mac != lb_core::wire::MacAddr::ZERO && e.state != lb_core::neigh::State::Permanent)
            .map(|e| lb_ctl::HandedNeighbour { address: to_ip(e.addr, e.v6), mac: e.mac.to_string(), port: e.port })
            .collect();
        let down = self
            .health
            .down()
            .iter()
            .map(|k| lb_ctl::HandedBackend {
                service: lb_ctl::ServiceId {
                    vip: to_ip(k.service.addr, k.service.v6),
                    port: k.service.port,
                    protocol: if k.service.proto == lb_core::wire::ip_proto::UDP {
                        lb_core::service::Protocol::Udp
                    } else {
                        lb_core::service::Protocol::Tcp
                    },
                },
                address: to_ip(k.addr, k.v6),
                port: k.port,
            })
            .collect();
        lb_ctl::Handover { model: self.model.clone(), timeouts: self.timeouts, workers, neighbours, down }
    }

    fn list(&self, rt: &Runtime) -> Vec<ServiceView> {
        let table = rt.table();
        let board = self.health.board();
        let board = board.lock().map(|b| b.clone()).unwrap_or_default();
        let mut total = Counters::new(table.limits.max_services as usize, table.limits.max_backends as usize);
        for s in rt.stats() {
            total.accumulate(&s.counters);
        }
        // ActiveConn / InActConn as ipvsadm counts them: established vs other connections.
        let mut load = std::collections::HashMap::<u32, (u64, u64)>::new();
        for (c, _) in gather_conns(rt) {
            let e = load.entry(c.backend_id).or_default();
            if c.orig.proto != 6 || c.state == lb_core::conntrack::TcpState::Established {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        let traffic = |c: Option<&lb_core::pipeline::ServiceCounters>| {
            c.map(|c| Traffic {
                conns: c.conns,
                in_packets: c.in_packets,
                in_bytes: c.in_bytes,
                out_packets: c.out_packets,
                out_bytes: c.out_bytes,
            })
            .unwrap_or_default()
        };
        table
            .services()
            .iter()
            .map(|s| ServiceView {
                up: s.up,
                sorry_active: s.backends.iter().any(|b| b.sorry && b.weight > 0),
                service: s.model.clone(),
                traffic: traffic(total.services.get(s.id as usize)),
                backends: s
                    .backends
                    .iter()
                    .zip(&s.model.backends)
                    .map(|(b, m)| {
                        let (active, inactive) = load.get(&b.id).copied().unwrap_or_default();
                        let check = board.get(&BackendKey::new(s.key, m)).map(|c| CheckView {
                            kind: c.kind.into(),
                            ok: c.ok,
                            reason: c.reason.clone(),
                            latency_ms: c.latency_us as f64 / 1000.0,
                            age_ms: u64::try_from(c.at.elapsed().as_millis()).unwrap_or(u64::MAX),
                        });
                        BackendView {
                            state: b.state,
                            check,
                            backend: m.clone(),
                            active,
                            inactive,
                            traffic: traffic(total.backends.get(b.id as usize)),
                        }
                    })
                    .collect(),
            })
            .collect()
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn refuse(e: String) -> Response {
    Response { version: VERSION, ok: false, error: Some(e), result: Value::Null }
}

fn port_views(ports: &[lb_dpdk::port::Port]) -> Vec<PortView> {
    ports
        .iter()
        .filter_map(|p| {
            let s = p.stats().ok()?;
            Some(PortView {
                port: p.id.0,
                name: p.name.clone(),
                driver: p.info.driver.clone(),
                ipackets: s.ipackets,
                opackets: s.opackets,
                ibytes: s.ibytes,
                obytes: s.obytes,
                imissed: s.imissed,
                ierrors: s.ierrors,
                oerrors: s.oerrors,
                rx_nombuf: s.rx_nombuf,
                ring_drops: s.ring_drops,
            })
        })
        .collect()
}

fn stats(rt: &Runtime) -> Vec<WorkerView> {
    rt.stats()
        .iter()
        .map(|s| {
            let cycles = s.loops.busy_cycles + s.loops.idle_cycles;
            WorkerView {
                index: s.index,
                core: s.core,
                busy_percent: if cycles == 0 { 0.0 } else { 100.0 * s.loops.busy_cycles as f64 / cycles as f64 },
                rx_packets: s.counters.rx_packets,
                tx_packets: s.counters.tx_packets,
                cycles_per_packet: if s.counters.rx_packets == 0 {
                    0.0
                } else {
                    s.loops.busy_cycles as f64 / s.counters.rx_packets as f64
                },
                connections: s.conns,
                drops: DropReason::ALL
                    .iter()
                    .map(|r| (r.name(), s.counters.drop_count(*r)))
                    .chain(host_drops(&s.loops))
                    .chain([
                        ("sync_lost", s.counters.sync_lost),
                        ("sync_refused", s.counters.sync_refused),
                        ("vlan_no_headroom", s.loops.vlan_no_headroom),
                    ])
                    .filter(|(_, n)| *n > 0)
                    .map(|(r, n)| (r.to_string(), n))
                    .collect(),
                to_host: s.loops.to_host,
                from_host: s.loops.from_host,
                sync_sent: s.counters.sync_emitted,
                sync_applied: s.counters.sync_applied,
            }
        })
        .collect()
}

/// Frames for or from the host's kernel that the exception path dropped, by reason.
pub fn host_drops(l: &lb_dpdk::worker::LoopCounters) -> [(&'static str, u64); 4] {
    [
        ("to_host_limited", l.to_host_limited),
        ("to_host_ring_full", l.to_host_ring_full),
        ("host_no_exception_path", l.host_unreachable),
        ("from_host_dropped", l.from_host_dropped),
    ]
}

/// Every worker's live connections (each worker copies its table when it serves the request),
/// with the seconds each has left before it expires.
fn gather_conns(rt: &Runtime) -> Vec<(lb_core::conntrack::Conn, u64)> {
    let (reply, answers) = lb_dpdk::worker::conns_channel();
    let workers = rt.workers();
    rt.broadcast(|| WorkerControl::ListConns(reply.clone()));
    let mut all = Vec::new();
    for _ in 0..workers {
        match answers.recv_timeout(Duration::from_secs(2)) {
            Ok((now_ms, v)) => all.extend(v.into_iter().map(|c| (c, c.expires_ms.saturating_sub(now_ms) / 1000))),
            Err(_) => break,
        }
    }
    all
}

fn conns(rt: &Runtime) -> Vec<ConnView> {
    gather_conns(rt)
        .iter()
        .map(|(c, left)| {
            let addr = |a: [u8; 16], v6: bool, p: u16| match to_ip(a, v6) {
                std::net::IpAddr::V4(x) => format!("{x}:{p}"),
                std::net::IpAddr::V6(x) => format!("[{x}]:{p}"),
            };
            ConnView {
                protocol: if c.orig.proto == 6 { "TCP".into() } else { "UDP".into() },
                client: addr(c.orig.src, c.orig.v6, c.orig.src_port),
                virtual_address: addr(c.orig.dst, c.orig.v6, c.orig.dst_port),
                backend: addr(c.reply.src, c.reply.v6, c.reply.src_port),
                state: if c.orig.proto == 6 { c.state.name().into() } else { "UDP".into() },
                expires_s: *left,
                mode: c.mode,
            }
        })
        .collect()
}

/// The neighbour table, sorted by family and address.
fn neighbours(rt: &Runtime) -> Vec<NeighView> {
    let table = rt.table();
    let mut entries = rt.neighbours().entries(rt.now_ms());
    entries.sort_by_key(|e| (e.v6, e.addr));
    entries
        .iter()
        .map(|e| NeighView {
            address: to_ip(e.addr, e.v6),
            mac: e.mac.to_string(),
            interface: table
                .network
                .ports
                .get(usize::from(e.port))
                .map_or_else(|| e.port.to_string(), |p| p.name.clone()),
            state: e.state.name().into(),
            age_ms: e.age_ms,
            probes: e.probes,
        })
        .collect()
}

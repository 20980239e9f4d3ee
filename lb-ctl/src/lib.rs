//! The control protocol between lbctl and lbd, and the edits it applies to the service model.
//!
//! Transport: a Unix socket (default `/run/lbd/lbd.sock`, mode 0600). One request per
//! connection: a single line of JSON `{"version":1,"command":{...}}`, at most `MAX_REQUEST`
//! bytes, answered by one line `{"version":1,"ok":true,"result":...}` or
//! `{"version":1,"ok":false,"error":"..."}`. Every command is atomic: lbd applies it to a copy of
//! the model, builds and validates a new table, and publishes it only if that succeeded; a
//! refused command changes nothing. See `docs/control-protocol.md`.
#![forbid(unsafe_code)]

use lb_core::conntrack::Timeouts;
use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Mode, Protocol, ServiceModel, ServicesModel};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub mod ipvsadm;

pub const VERSION: u32 = 1;
/// Largest request lbd reads (a restore of 10,000 services fits).
pub const MAX_REQUEST: usize = 16 << 20;

/// Names a service: VIP, port, protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceId {
    pub vip: IpAddr,
    pub port: u16,
    pub protocol: Protocol,
}

impl std::fmt::Display for ServiceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.vip {
            IpAddr::V4(a) => write!(f, "{} {a}:{}", self.protocol.name(), self.port),
            IpAddr::V6(a) => write!(f, "{} [{a}]:{}", self.protocol.name(), self.port),
        }
    }
}

/// Fields an edit may change; `None` leaves a field as it is. The later fields are left out of
/// the JSON when unset, so requests that do not use them read as before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEdit {
    pub scheduler: Option<Kind>,
    pub persistence: Option<u32>,
    pub maglev_size: Option<u32>,
    #[serde(default)]
    pub synproxy: Option<bool>,
    /// ipvsadm -M as a prefix length; the full address length (32, 128) is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_prefix: Option<u8>,
    /// sh-port / mh-port (ipvsadm -b).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_ports: Option<bool>,
    /// sh-fallback / mh-fallback (ipvsadm -b).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<bool>,
    /// One-packet scheduling (ipvsadm -o).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_packet: Option<bool>,
}

/// Fields a backend edit may change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendEdit {
    pub weight: Option<u32>,
    pub mode: Option<Mode>,
    /// The GUE port (ipvsadm --tun-port); a mode other than gue drops it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    /// ipvsadm -x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_threshold: Option<u32>,
    /// ipvsadm -y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_threshold: Option<u32>,
    /// ipvsadm --tun-csum (true) or --tun-nocsum (false), with a tunnel mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel_checksum: Option<bool>,
}

/// A request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    AddService {
        service: ServiceModel,
    },
    EditService {
        id: ServiceId,
        edit: ServiceEdit,
    },
    DelService {
        id: ServiceId,
    },
    AddBackend {
        id: ServiceId,
        backend: BackendModel,
    },
    EditBackend {
        id: ServiceId,
        address: IpAddr,
        port: u16,
        edit: BackendEdit,
    },
    DelBackend {
        id: ServiceId,
        address: IpAddr,
        port: u16,
    },
    /// Replace a service's health checks (`None` removes one).
    SetCheck {
        id: ServiceId,
        check: Option<lb_core::health::CheckModel>,
        passive: Option<lb_core::health::PassiveModel>,
        sorry_server: Option<BackendModel>,
    },
    /// Withdraw every VIP (`on`), keeping existing connections, or announce them again.
    Drain {
        on: bool,
    },
    /// Hand everything to a new lbd taking over (`lbd --takeover`): the workers stop, and the
    /// answer is a `Handover`; this lbd then closes its ports and exits.
    Handover,
    /// The same state as `Handover`, without stopping anything (`lbctl conns --save`).
    ConnsSave,
    /// Track connections saved from an lbd with as many workers (`lbctl conns --restore`).
    ConnsRestore {
        state: Handover,
    },
    /// Services with their counters.
    List,
    /// Per-worker statistics.
    Stats,
    /// Per-port counters: the driver's, and the kernel's AF_PACKET ring drops.
    Ports,
    /// Live connections (like `ipvsadm -Lnc`).
    Conns,
    /// The neighbour table (like `ip neigh`).
    Neigh,
    /// Remove every learned neighbour (static ones stay).
    NeighFlush,
    /// Zero all counters.
    Zero,
    /// Remove every service.
    Flush,
    SetTimeouts {
        tcp: u32,
        tcpfin: u32,
        udp: u32,
    },
    /// The model in force (for `save`).
    Save,
    /// Make the tables equal to `model` in one commit; with `dry_run`, only report the diff.
    Apply {
        model: ServicesModel,
        dry_run: bool,
    },
}

/// A request on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub command: Command,
}

/// What a running lbd hands to the one taking over: its services as they run now, its
/// timeouts, each worker's connections and the neighbours it learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handover {
    pub model: ServicesModel,
    pub timeouts: lb_core::conntrack::Timeouts,
    pub workers: Vec<Vec<lb_core::conntrack::SavedConn>>,
    pub neighbours: Vec<HandedNeighbour>,
    /// Backends the health checks had taken out: they stay out until checks bring them back.
    #[serde(default)]
    pub down: Vec<HandedBackend>,
}

/// A backend in a `Handover`: its service and its address and port (0: the service's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandedBackend {
    pub service: ServiceId,
    pub address: IpAddr,
    pub port: u16,
}

/// A learned neighbour in a `Handover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedNeighbour {
    pub address: IpAddr,
    pub mac: String,
    pub port: u16,
}

/// A response on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub result: serde_json::Value,
}

/// Traffic counters of a service or backend, summed over workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub conns: u64,
    pub in_packets: u64,
    pub in_bytes: u64,
    pub out_packets: u64,
    pub out_bytes: u64,
}

/// One backend in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendView {
    pub backend: BackendModel,
    pub active: u64,
    pub inactive: u64,
    pub traffic: Traffic,
    /// up, down (failed its checks) or draining (weight 0).
    #[serde(default)]
    pub state: lb_core::health::BackendState,
    /// The last health check's result, when the service has checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckView>,
}

/// The last health check of a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckView {
    /// tcp, http, udp, misc or passive.
    pub kind: String,
    pub ok: bool,
    pub reason: String,
    pub latency_ms: f64,
    /// Milliseconds since that check ended.
    pub age_ms: u64,
}

/// One service in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: ServiceModel,
    pub traffic: Traffic,
    pub backends: Vec<BackendView>,
    /// False while no backend is up (the VIP should be withdrawn).
    #[serde(default = "yes")]
    pub up: bool,
    /// True while the sorry server serves in the backends' place.
    #[serde(default)]
    pub sorry_active: bool,
}

fn yes() -> bool {
    true
}

/// One worker in `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub index: usize,
    pub core: Option<usize>,
    pub busy_percent: f64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub cycles_per_packet: f64,
    pub connections: usize,
    pub drops: Vec<(String, u64)>,
    /// Frames passed to the host's kernel through the exception path, and sent out for it.
    #[serde(default)]
    pub to_host: u64,
    #[serde(default)]
    pub from_host: u64,
    /// Connection sync: events sent to the peers, and the peers' events applied here.
    #[serde(default)]
    pub sync_sent: u64,
    #[serde(default)]
    pub sync_applied: u64,
}

/// One port in `ports`: what its driver counted (`rte_eth_stats`), and for AF_PACKET ports the
/// frames the kernel dropped because the socket's receive ring was full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortView {
    pub port: u16,
    pub name: String,
    pub driver: String,
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    pub ring_drops: u64,
}

/// One neighbour in `neigh`, as `ip neigh` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighView {
    pub address: IpAddr,
    /// All zeros while INCOMPLETE.
    pub mac: String,
    pub interface: String,
    /// INCOMPLETE, REACHABLE, STALE, DELAY, PROBE, FAILED or PERMANENT (static).
    pub state: String,
    /// Milliseconds since the entry was last confirmed (or created).
    pub age_ms: u64,
    /// Probes or requests sent in the current round.
    pub probes: u8,
}

/// One connection in `conns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnView {
    pub protocol: String,
    pub client: String,
    pub virtual_address: String,
    pub backend: String,
    pub state: String,
    pub expires_s: u64,
    pub mode: Mode,
}

/// What an apply changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub lines: Vec<String>,
}

fn find(model: &ServicesModel, id: &ServiceId) -> Option<usize> {
    model.services.iter().position(|s| s.vip == id.vip && s.port == id.port && s.protocol == id.protocol)
}

fn backend_port(svc: &ServiceModel, b: &BackendModel) -> u16 {
    if b.port == 0 { svc.port } else { b.port }
}

/// Applies an editing command to a copy of `model`; read-only commands return it unchanged.
/// Errors name the problem (unknown service, duplicate, unknown backend); the table build that
/// follows checks addresses, weights, schedulers and modes.
pub fn edit(model: &ServicesModel, cmd: &Command) -> Result<ServicesModel, String> {
    let mut m = model.clone();
    let need = |m: &ServicesModel, id: &ServiceId| find(m, id).ok_or_else(|| format!("no service {id}"));
    match cmd {
        Command::AddService { service } => {
            let id = ServiceId { vip: service.vip, port: service.port, protocol: service.protocol };
            if find(&m, &id).is_some() {
                return Err(format!("service {id} already exists"));
            }
            m.services.push(service.clone());
        }
        Command::EditService { id, edit } => {
            let i = need(&m, id)?;
            let s = &mut m.services[i];
            if let Some(k) = edit.scheduler {
                s.scheduler = k;
            }
            if let Some(p) = edit.persistence {
                s.persistence = p;
            }
            if let Some(z) = edit.maglev_size {
                s.maglev_size = z;
            }
            if let Some(on) = edit.synproxy {
                s.synproxy = on;
            }
            if let Some(p) = edit.persistence_prefix {
                // The whole address is the model's None, as the parser writes it.
                s.persistence_prefix = (p != if s.vip.is_ipv6() { 128 } else { 32 }).then_some(p);
            }
            if let Some(on) = edit.hash_ports {
                s.hash_ports = on;
            }
            if let Some(on) = edit.fallback {
                s.fallback = on;
            }
            if let Some(on) = edit.one_packet {
                s.one_packet = on;
            }
        }
        Command::DelService { id } => {
            let i = need(&m, id)?;
            m.services.remove(i);
        }
        Command::AddBackend { id, backend } => {
            let i = need(&m, id)?;
            let s = &mut m.services[i];
            let port = backend_port(s, backend);
            if s.backends.iter().any(|b| b.address == backend.address && backend_port(s, b) == port) {
                return Err(format!("backend {}:{port} of service {id} already exists", backend.address));
            }
            s.backends.push(backend.clone());
        }
        Command::EditBackend { id, address, port, edit } => {
            let i = need(&m, id)?;
            let s = &mut m.services[i];
            let sp = s.port;
            let b = s
                .backends
                .iter_mut()
                .find(|b| b.address == *address && (if b.port == 0 { sp } else { b.port }) == *port)
                .ok_or_else(|| format!("service {id} has no backend {address}:{port}"))?;
            if let Some(w) = edit.weight {
                b.weight = w;
            }
            if let Some(mode) = edit.mode {
                b.mode = mode;
                if mode != Mode::Gue {
                    b.gue_port = None;
                }
                if !matches!(mode, Mode::Gue | Mode::Gre) {
                    b.tunnel_checksum = false;
                }
            }
            if let Some(c) = edit.tunnel_checksum {
                b.tunnel_checksum = c;
            }
            if edit.gue_port.is_some() {
                b.gue_port = edit.gue_port;
            }
            if let Some(n) = edit.upper_threshold {
                b.upper_threshold = n;
            }
            if let Some(n) = edit.lower_threshold {
                b.lower_threshold = n;
            }
        }
        Command::DelBackend { id, address, port } => {
            let i = need(&m, id)?;
            let s = &mut m.services[i];
            let sp = s.port;
            let before = s.backends.len();
            s.backends.retain(|b| !(b.address == *address && (if b.port == 0 { sp } else { b.port }) == *port));
            if s.backends.len() == before {
                return Err(format!("service {id} has no backend {address}:{port}"));
            }
        }
        Command::SetCheck { id, check, passive, sorry_server } => {
            let i = need(&m, id)?;
            let s = &mut m.services[i];
            s.check.clone_from(check);
            s.passive.clone_from(passive);
            s.sorry_server.clone_from(sorry_server);
        }
        Command::Flush => m.services.clear(),
        Command::Apply { model, .. } => m = model.clone(),
        Command::List
        | Command::Handover
        | Command::ConnsSave
        | Command::ConnsRestore { .. }
        | Command::Drain { .. }
        | Command::Stats
        | Command::Ports
        | Command::Conns
        | Command::Neigh
        | Command::NeighFlush
        | Command::Zero
        | Command::SetTimeouts { .. }
        | Command::Save => {}
    }
    Ok(m)
}

/// The changes that turn `old` into `new`, one line each, as `apply` prints them.
pub fn diff(old: &ServicesModel, new: &ServicesModel) -> Diff {
    let id = |s: &ServiceModel| ServiceId { vip: s.vip, port: s.port, protocol: s.protocol };
    let mut lines = Vec::new();
    for s in &old.services {
        if find(new, &id(s)).is_none() {
            lines.push(format!("- service {}", id(s)));
        }
    }
    for s in &new.services {
        match find(old, &id(s)).map(|i| &old.services[i]) {
            None => {
                lines.push(format!("+ service {} {}", id(s), s.scheduler.name()));
                for b in &s.backends {
                    lines.push(format!(
                        "+   backend {}:{} {} weight {}",
                        b.address,
                        backend_port(s, b),
                        b.mode.name(),
                        b.weight
                    ));
                }
            }
            Some(o) => {
                let settings = |s: &ServiceModel| {
                    (
                        s.scheduler,
                        s.persistence,
                        s.persistence_prefix,
                        s.maglev_size,
                        (s.hash_ports, s.fallback, s.one_packet, s.synproxy),
                    )
                };
                if settings(o) != settings(s) {
                    lines.push(format!("~ service {} {} -> {}", id(s), o.scheduler.name(), s.scheduler.name()));
                }
                if (&o.check, &o.passive, &o.sorry_server) != (&s.check, &s.passive, &s.sorry_server) {
                    let kind = |c: &Option<lb_core::health::CheckModel>| c.as_ref().map_or("none", |c| c.kind.name());
                    lines.push(format!("~ service {} health check {} -> {}", id(s), kind(&o.check), kind(&s.check)));
                }
                for b in &o.backends {
                    if !s.backends.iter().any(|n| n.address == b.address && backend_port(s, n) == backend_port(o, b)) {
                        lines.push(format!("-   backend {}:{} of {}", b.address, backend_port(o, b), id(s)));
                    }
                }
                for b in &s.backends {
                    match o.backends.iter().find(|x| x.address == b.address && backend_port(o, x) == backend_port(s, b))
                    {
                        None => lines.push(format!(
                            "+   backend {}:{} of {} {} weight {}",
                            b.address,
                            backend_port(s, b),
                            id(s),
                            b.mode.name(),
                            b.weight
                        )),
                        Some(x) if x != b => lines.push(format!(
                            "~   backend {}:{} of {} weight {} -> {}, {} -> {}",
                            b.address,
                            backend_port(s, b),
                            id(s),
                            x.weight,
                            b.weight,
                            x.mode.name(),
                            b.mode.name()
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
    Diff { lines }
}

/// ipvsadm's `--set tcp tcpfin udp` applied to a full set of timeouts.
pub fn with_ipvsadm_timeouts(mut t: Timeouts, tcp: u32, tcpfin: u32, udp: u32) -> Timeouts {
    if tcp > 0 {
        t.tcp_established = tcp;
    }
    if tcpfin > 0 {
        t.tcp_fin_wait = tcpfin;
    }
    if udp > 0 {
        t.udp = udp;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(port: u16) -> ServiceModel {
        toml::from_str(&format!("vip = \"10.0.0.1\"\nport = {port}\n")).unwrap()
    }

    fn id(port: u16) -> ServiceId {
        ServiceId { vip: "10.0.0.1".parse().unwrap(), port, protocol: Protocol::Tcp }
    }

    fn backend(addr: &str, weight: u32) -> BackendModel {
        BackendModel { weight, mode: Mode::Nat, ..BackendModel::at(addr.parse().unwrap()) }
    }

    #[test]
    fn edits_and_refusals() {
        let m = ServicesModel::default();
        let m = edit(&m, &Command::AddService { service: svc(80) }).unwrap();
        assert!(edit(&m, &Command::AddService { service: svc(80) }).unwrap_err().contains("already exists"));
        let m = edit(&m, &Command::AddBackend { id: id(80), backend: backend("10.1.0.1", 1) }).unwrap();
        assert!(
            edit(&m, &Command::AddBackend { id: id(80), backend: backend("10.1.0.1", 2) })
                .unwrap_err()
                .contains("already exists")
        );
        assert!(
            edit(&m, &Command::AddBackend { id: id(81), backend: backend("10.1.0.1", 2) })
                .unwrap_err()
                .contains("no service tcp 10.0.0.1:81")
        );
        let m = edit(
            &m,
            &Command::EditBackend {
                id: id(80),
                address: "10.1.0.1".parse().unwrap(),
                port: 80,
                edit: BackendEdit { weight: Some(0), ..Default::default() },
            },
        )
        .unwrap();
        assert_eq!(m.services[0].backends[0].weight, 0);
        assert!(
            edit(&m, &Command::DelBackend { id: id(80), address: "10.1.0.9".parse().unwrap(), port: 80 })
                .unwrap_err()
                .contains("no backend 10.1.0.9:80")
        );
        let m2 = edit(&m, &Command::DelBackend { id: id(80), address: "10.1.0.1".parse().unwrap(), port: 80 }).unwrap();
        assert!(m2.services[0].backends.is_empty());
        let m3 = edit(
            &m,
            &Command::EditService { id: id(80), edit: ServiceEdit { scheduler: Some(Kind::Mh), ..Default::default() } },
        )
        .unwrap();
        assert_eq!(m3.services[0].scheduler, Kind::Mh);
        assert!(edit(&m3, &Command::Flush).unwrap().services.is_empty());
    }

    #[test]
    fn ipvsadm_settings_edit() {
        let m = edit(&ServicesModel::default(), &Command::AddService { service: svc(80) }).unwrap();
        let m = edit(&m, &Command::AddBackend { id: id(80), backend: backend("10.1.0.1", 1) }).unwrap();
        let set = ServiceEdit {
            persistence: Some(360),
            persistence_prefix: Some(24),
            hash_ports: Some(true),
            fallback: Some(true),
            one_packet: Some(false),
            ..Default::default()
        };
        let m = edit(&m, &Command::EditService { id: id(80), edit: set }).unwrap();
        let s = &m.services[0];
        assert_eq!((s.persistence, s.persistence_prefix, s.hash_ports, s.fallback), (360, Some(24), true, true));
        // The whole address is the model's default.
        let whole = ServiceEdit { persistence_prefix: Some(32), ..Default::default() };
        let m = edit(&m, &Command::EditService { id: id(80), edit: whole }).unwrap();
        assert_eq!(m.services[0].persistence_prefix, None);
        let to_gue =
            BackendEdit { mode: Some(Mode::Gue), gue_port: Some(6080), upper_threshold: Some(9), ..Default::default() };
        let address = "10.1.0.1".parse().unwrap();
        let m = edit(&m, &Command::EditBackend { id: id(80), address, port: 80, edit: to_gue }).unwrap();
        let b = &m.services[0].backends[0];
        assert_eq!((b.mode, b.gue_port, b.upper_threshold), (Mode::Gue, Some(6080), 9));
        // Leaving gue drops its port, which lbd refuses on any other mode.
        let to_tun = BackendEdit { mode: Some(Mode::Tun), ..Default::default() };
        let m = edit(&m, &Command::EditBackend { id: id(80), address, port: 80, edit: to_tun }).unwrap();
        assert_eq!((m.services[0].backends[0].mode, m.services[0].backends[0].gue_port), (Mode::Tun, None));
        // An older lbctl's edit, without the new fields, still reads.
        let old: ServiceEdit =
            serde_json::from_str(r#"{"scheduler":"rr","persistence":null,"maglev_size":null}"#).unwrap();
        assert_eq!(old, ServiceEdit { scheduler: Some(Kind::Rr), ..Default::default() });
    }

    #[test]
    fn diff_lists_every_change() {
        let a = edit(&ServicesModel::default(), &Command::AddService { service: svc(80) }).unwrap();
        let a = edit(&a, &Command::AddBackend { id: id(80), backend: backend("10.1.0.1", 1) }).unwrap();
        let b = edit(
            &a,
            &Command::EditBackend {
                id: id(80),
                address: "10.1.0.1".parse().unwrap(),
                port: 80,
                edit: BackendEdit { weight: Some(5), ..Default::default() },
            },
        )
        .unwrap();
        let b = edit(&b, &Command::AddService { service: svc(443) }).unwrap();
        let d = diff(&a, &b);
        assert_eq!(
            d.lines,
            ["~   backend 10.1.0.1:80 of tcp 10.0.0.1:80 weight 1 -> 5, nat -> nat", "+ service tcp 10.0.0.1:443 wlc"]
        );
        assert!(diff(&b, &b).lines.is_empty());
        assert_eq!(diff(&b, &ServicesModel::default()).lines.len(), 2);
    }

    #[test]
    fn requests_round_trip_as_json() {
        let r = Request {
            version: VERSION,
            command: Command::DelBackend { id: id(80), address: "10.1.0.1".parse().unwrap(), port: 8080 },
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"cmd\":\"del-backend\""), "{text}");
        let back: Request = serde_json::from_str(&text).unwrap();
        assert_eq!(back.command, r.command);
        assert!(serde_json::from_str::<Request>("{\"version\":1,\"command\":{\"cmd\":\"nope\"}}").is_err());
    }
}

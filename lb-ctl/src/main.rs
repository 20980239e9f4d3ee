//! lbctl: control a running lbd the way ipvsadm controls IPVS. Talks to lbd's Unix socket
//! (JSON lines, see lb-ctl's library); never links DPDK. Every command is atomic: a refused
//! one changes nothing and exits non-zero with the reason.
#![forbid(unsafe_code)]

use clap::{Args, CommandFactory, Parser, Subcommand};
use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Mode, Protocol, ServiceModel, ServicesModel};
use lb_ctl::{
    BackendEdit, Command, ConnView, NeighView, Request, Response, ServiceEdit, ServiceId, ServiceView, VERSION,
    WorkerView,
};
use std::io::{BufRead, BufReader, Write};

/// println! that tolerates a closed stdout (lbctl list | head) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "lbctl", version, about = "Control the lbd load balancer (ipvsadm-style)")]
struct Cli {
    /// lbd's control socket.
    #[arg(short = 'S', long, global = true, default_value = "/run/lbd/lbd.sock", env = "LBCTL_SOCKET")]
    socket: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// A virtual service: -t VIP:PORT (TCP) or -u VIP:PORT (UDP); IPv6 as [addr]:port.
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
struct Svc {
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT")]
    tcp: Option<String>,
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    udp: Option<String>,
}

#[derive(Subcommand)]
enum NeighAction {
    /// Remove every learned neighbour (static ones stay); they are resolved again on use.
    Flush,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add a virtual service.
    AddService {
        #[command(flatten)]
        svc: Svc,
        /// rr, wrr, lc, wlc, sh or mh.
        #[arg(short = 's', long, default_value = "wrr")]
        scheduler: String,
        /// Persistence timeout in seconds.
        #[arg(short = 'p', long, default_value_t = 0)]
        persistent: u32,
        #[arg(long, default_value_t = lb_core::sched::mh::DEFAULT_SIZE)]
        maglev_size: u32,
        /// sh/mh also hash the client port.
        #[arg(long)]
        hash_ports: bool,
        /// Answer SYNs with SYN cookies; open the backend connection only for a valid ACK
        /// (TCP, nat and fnat backends).
        #[arg(long)]
        synproxy: bool,
    },
    /// Change a service's scheduler, persistence or Maglev size.
    EditService {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 's', long)]
        scheduler: Option<String>,
        #[arg(short = 'p', long)]
        persistent: Option<u32>,
        #[arg(long)]
        maglev_size: Option<u32>,
        /// Turn the SYN proxy on or off.
        #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
        synproxy: Option<bool>,
    },
    /// Set a service's health checks, replacing those it had (keepalived's checkers).
    SetCheck {
        #[command(flatten)]
        svc: Svc,
        /// tcp, http, udp or misc; none for no active check.
        #[arg(long = "type", default_value = "tcp")]
        kind: String,
        #[arg(long, default_value_t = 2000)]
        interval_ms: u64,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Successes in a row that bring a down backend back.
        #[arg(long, default_value_t = 2)]
        rise: u32,
        /// Failures in a row that take an up backend out.
        #[arg(long, default_value_t = 3)]
        fall: u32,
        /// Port to check instead of the backend's (keepalived's connect_port).
        #[arg(long)]
        port: Option<u16>,
        /// http: the path to GET.
        #[arg(long, default_value = "/")]
        path: String,
        /// http: the status expected.
        #[arg(long, default_value_t = 200)]
        status_code: u16,
        /// http: a substring of the body; udp: of the answer.
        #[arg(long)]
        expect: Option<String>,
        /// udp: the datagram to send.
        #[arg(long)]
        send: Option<String>,
        /// misc: the command (sh -c), which sees LBD_BACKEND_ADDRESS and LBD_BACKEND_PORT.
        #[arg(long)]
        misc_path: Option<String>,
        /// List a failed backend with weight 0 (keepalived's inhibit_on_failure).
        #[arg(long)]
        inhibit_on_failure: bool,
        /// Reset a failed backend's connections (IPVS's expire_nodest_conn).
        #[arg(long)]
        expire_on_down: bool,
        /// Passive check: failed SYNs within --passive-window-ms that take a backend out (0: off).
        #[arg(long, default_value_t = 0)]
        passive_syn_failures: u32,
        #[arg(long, default_value_t = 10_000)]
        passive_window_ms: u64,
        /// Without an active check, the passive check brings a backend back after this long.
        #[arg(long, default_value_t = 10_000)]
        passive_holddown_ms: u64,
        /// Serves while no backend is up: ADDRESS[:PORT] (keepalived's sorry_server).
        #[arg(long)]
        sorry_server: Option<String>,
    },
    /// Delete a service (its live connections are dropped with it).
    DelService {
        #[command(flatten)]
        svc: Svc,
    },
    /// Add a backend (real server) to a service.
    AddBackend {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
        real: String,
        #[arg(short = 'w', long, default_value_t = 1)]
        weight: u32,
        /// nat, fnat, dr, tun or gue.
        #[arg(short = 'm', long, default_value = "nat")]
        mode: String,
        #[arg(long)]
        gue_port: Option<u16>,
    },
    /// Change a backend's weight (0 drains it) or forwarding mode.
    EditBackend {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
        real: String,
        #[arg(short = 'w', long)]
        weight: Option<u32>,
        #[arg(short = 'm', long)]
        mode: Option<String>,
    },
    /// Remove a backend from a service.
    DelBackend {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
        real: String,
    },
    /// List services and backends, laid out like `ipvsadm -Ln`.
    List {
        /// Numeric output (always numeric; accepted for ipvsadm habits).
        #[arg(short = 'n', long)]
        numeric: bool,
        /// Connections, packets and bytes per service and backend.
        #[arg(long, conflicts_with = "rate")]
        stats: bool,
        /// Rates over one second: connections, packets and bytes per second.
        #[arg(long)]
        rate: bool,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
    /// Live connections, like `ipvsadm -Lnc`; `--save FILE` writes them (with the services and
    /// neighbours) for `--restore FILE` into a fresh lbd with as many workers, after a crash.
    Conns {
        #[arg(long, value_name = "FILE", conflicts_with = "restore")]
        save: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        restore: Option<PathBuf>,
    },
    /// The neighbour table, like `ip neigh`; `neigh flush` forgets every learned entry.
    Neigh {
        #[command(subcommand)]
        action: Option<NeighAction>,
    },
    /// Withdraw every VIP from the routers, keep forwarding the connections there are until
    /// they end or TIMEOUT seconds pass, then report (planned maintenance).
    Drain {
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Only withdraw; do not wait for the connections.
        #[arg(long)]
        no_wait: bool,
    },
    /// Announce the VIPs again after a drain.
    Undrain,
    /// Zero the packet and connection counters.
    Zero,
    /// Remove every service.
    Flush,
    /// Idle timeouts in seconds, as `ipvsadm --set TCP TCPFIN UDP` (0 keeps a value).
    SetTimeouts { tcp: u32, tcpfin: u32, udp: u32 },
    /// Per worker: busy %, packets, cycles per packet, drops by reason.
    Stats,
    /// Print the running services as TOML (lbd's config format).
    Save,
    /// Replace the running services with a file (TOML, or `ipvsadm-save -n` output).
    Restore {
        file: PathBuf,
        #[arg(long, default_value = "toml")]
        format: String,
    },
    /// Make the running services equal to FILE in one commit, printing the changes.
    Apply {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses "1.2.3.4:80" or "[2001:db8::1]:80"; the port may be absent when `port_optional`.
fn parse_endpoint(s: &str, port_optional: bool) -> Result<(IpAddr, u16), String> {
    let (addr, port) = if let Some(rest) = s.strip_prefix('[') {
        let (a, p) = rest.split_once(']').ok_or_else(|| format!("'{s}': missing ']'"))?;
        (a, p.strip_prefix(':'))
    } else if s.matches(':').count() > 1 {
        (s, None)
    } else {
        match s.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        }
    };
    let ip: IpAddr = addr.parse().map_err(|_| format!("'{addr}' is not an IP address"))?;
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("'{p}' is not a port"))?,
        None if port_optional => 0,
        None => return Err(format!("'{s}': a port is needed (VIP:PORT, [VIP6]:PORT)")),
    };
    Ok((ip, port))
}

fn service_id(svc: &Svc) -> Result<ServiceId, String> {
    let (text, protocol) = match (&svc.tcp, &svc.udp) {
        (Some(t), _) => (t, Protocol::Tcp),
        (_, Some(u)) => (u, Protocol::Udp),
        _ => return Err("give -t VIP:PORT or -u VIP:PORT".into()),
    };
    let (vip, port) = parse_endpoint(text, false)?;
    Ok(ServiceId { vip, port, protocol })
}

fn call(socket: &PathBuf, command: Command) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach lbd at {}: {e} (is lbd running? -S sets the socket)", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
    let mut line = serde_json::to_string(&Request { version: VERSION, command }).map_err(|e| e.to_string())?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(|e| format!("sending to lbd: {e}"))?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(|e| format!("reading lbd's answer: {e}"))?;
    let r: Response = serde_json::from_str(&answer).map_err(|e| format!("lbd's answer is not understood: {e}"))?;
    if r.ok { Ok(r.result) } else { Err(r.error.unwrap_or_else(|| "refused".into())) }
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => Err(format!("'{s}': expected on or off")),
    }
}

fn service_model(id: ServiceId, scheduler: Kind, persistence: u32, maglev_size: u32, hash_ports: bool) -> ServiceModel {
    ServiceModel { scheduler, persistence, maglev_size, hash_ports, ..ServiceModel::new(id.vip, id.port, id.protocol) }
}

fn run(cli: &Cli) -> Result<(), String> {
    let command = match &cli.cmd {
        Cmd::AddService { svc, scheduler, persistent, maglev_size, hash_ports, synproxy } => Command::AddService {
            service: ServiceModel {
                synproxy: *synproxy,
                ..service_model(service_id(svc)?, scheduler.parse()?, *persistent, *maglev_size, *hash_ports)
            },
        },
        Cmd::EditService { svc, scheduler, persistent, maglev_size, synproxy } => Command::EditService {
            id: service_id(svc)?,
            edit: ServiceEdit {
                scheduler: scheduler.as_deref().map(str::parse).transpose()?,
                persistence: *persistent,
                maglev_size: *maglev_size,
                synproxy: *synproxy,
            },
        },
        Cmd::DelService { svc } => Command::DelService { id: service_id(svc)? },
        Cmd::SetCheck {
            svc,
            kind,
            interval_ms,
            timeout_ms,
            rise,
            fall,
            port,
            path,
            status_code,
            expect,
            send,
            misc_path,
            inhibit_on_failure,
            expire_on_down,
            passive_syn_failures,
            passive_window_ms,
            passive_holddown_ms,
            sorry_server,
        } => {
            let check = match kind.as_str() {
                "none" => None,
                k => {
                    let mut c: lb_core::health::CheckModel = toml::from_str(&format!("type = \"{k}\""))
                        .map_err(|_| format!("--type: unknown check '{k}' (expected tcp, http, udp, misc or none)"))?;
                    c.interval_ms = *interval_ms;
                    c.timeout_ms = *timeout_ms;
                    c.rise = *rise;
                    c.fall = *fall;
                    c.port = *port;
                    c.path.clone_from(path);
                    c.status_code = *status_code;
                    c.expect.clone_from(expect);
                    c.send.clone_from(send);
                    c.misc_path.clone_from(misc_path);
                    c.inhibit_on_failure = *inhibit_on_failure;
                    c.expire_on_down = *expire_on_down;
                    c.validate("check").map_err(|e| e.replace("check.", "--").replace('_', "-"))?;
                    Some(c)
                }
            };
            let passive = (*passive_syn_failures > 0).then_some(lb_core::health::PassiveModel {
                syn_failures: *passive_syn_failures,
                window_ms: *passive_window_ms,
                holddown_ms: *passive_holddown_ms,
            });
            let sorry_server = match sorry_server {
                None => None,
                Some(s) => {
                    let (address, port) = parse_endpoint(s, true).map_err(|e| format!("--sorry-server: {e}"))?;
                    Some(BackendModel { port, mode: Mode::Nat, ..BackendModel::at(address) })
                }
            };
            Command::SetCheck { id: service_id(svc)?, check, passive, sorry_server }
        }
        Cmd::AddBackend { svc, real, weight, mode, gue_port } => {
            let (address, port) = parse_endpoint(real, true)?;
            Command::AddBackend {
                id: service_id(svc)?,
                backend: BackendModel {
                    port,
                    weight: *weight,
                    mode: mode.parse()?,
                    gue_port: *gue_port,
                    ..BackendModel::at(address)
                },
            }
        }
        Cmd::EditBackend { svc, real, weight, mode } => {
            let id = service_id(svc)?;
            let (address, port) = parse_endpoint(real, true)?;
            let port = if port == 0 { id.port } else { port };
            Command::EditBackend {
                id,
                address,
                port,
                edit: BackendEdit { weight: *weight, mode: mode.as_deref().map(str::parse::<Mode>).transpose()? },
            }
        }
        Cmd::DelBackend { svc, real } => {
            let id = service_id(svc)?;
            let (address, port) = parse_endpoint(real, true)?;
            Command::DelBackend { id, address, port: if port == 0 { id.port } else { port } }
        }
        Cmd::List { stats, rate, .. } => {
            let mut r = call(&cli.socket, Command::List)?;
            if *rate {
                // ipvsadm --rate: the difference of two samples one second apart.
                let before: Vec<ServiceView> = serde_json::from_value(r).map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_secs(1));
                let mut after: Vec<ServiceView> =
                    serde_json::from_value(call(&cli.socket, Command::List)?).map_err(|e| e.to_string())?;
                for (a, b) in after.iter_mut().zip(&before) {
                    a.traffic = per_second(&a.traffic, &b.traffic);
                    for (x, y) in a.backends.iter_mut().zip(&b.backends) {
                        x.traffic = per_second(&x.traffic, &y.traffic);
                    }
                }
                r = serde_json::to_value(&after).map_err(|e| e.to_string())?;
            }
            if cli.json {
                out!("{r}");
            } else {
                let views: Vec<ServiceView> = serde_json::from_value(r).map_err(|e| e.to_string())?;
                print_list(&views, *stats || *rate, *rate);
            }
            return Ok(());
        }
        Cmd::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "lbctl", &mut buf);
            let _ = std::io::stdout().write_all(&buf);
            return Ok(());
        }
        Cmd::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut buf).map_err(|e| e.to_string())?;
            // Like every other output, a closed pipe (lbctl man | head) is not an error.
            let _ = std::io::stdout().write_all(&buf);
            return Ok(());
        }
        Cmd::Conns { save: Some(file), .. } => {
            let r = call(&cli.socket, Command::ConnsSave)?;
            let state: lb_ctl::Handover = serde_json::from_value(r).map_err(|e| e.to_string())?;
            let text = serde_json::to_string(&state).map_err(|e| e.to_string())?;
            std::fs::write(file, text).map_err(|e| format!("{}: {e}", file.display()))?;
            let n: usize = state.workers.iter().map(Vec::len).sum();
            out!("saved {n} connections and {} neighbours to {}", state.neighbours.len(), file.display());
            return Ok(());
        }
        Cmd::Conns { restore: Some(file), .. } => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let state: lb_ctl::Handover =
                serde_json::from_str(&text).map_err(|e| format!("{}: not a saved state: {e}", file.display()))?;
            let r = call(&cli.socket, Command::ConnsRestore { state })?;
            if cli.json {
                out!("{r}");
            } else {
                let refused = r["refused"].as_array().map_or(0, Vec::len);
                out!("restored {} connections; {refused} refused", r["adopted"]);
                for why in r["refused"].as_array().into_iter().flatten().take(5) {
                    out!("  refused: {}", why.as_str().unwrap_or_default());
                }
            }
            return Ok(());
        }
        Cmd::Conns { .. } => {
            let r = call(&cli.socket, Command::Conns)?;
            if cli.json {
                out!("{r}");
            } else {
                let conns: Vec<ConnView> = serde_json::from_value(r).map_err(|e| e.to_string())?;
                out!(
                    "{:<4} {:<6} {:<12} {:<24} {:<24} {}",
                    "pro",
                    "expire",
                    "state",
                    "source",
                    "virtual",
                    "destination"
                );
                for c in conns {
                    let expire = format!("{:02}:{:02}", c.expires_s / 60, c.expires_s % 60);
                    out!(
                        "{:<4} {:<6} {:<12} {:<24} {:<24} {}",
                        c.protocol,
                        expire,
                        c.state,
                        c.client,
                        c.virtual_address,
                        c.backend
                    );
                }
            }
            return Ok(());
        }
        Cmd::Neigh { action: Some(NeighAction::Flush) } => {
            let r = call(&cli.socket, Command::NeighFlush)?;
            if cli.json {
                out!("{r}");
            } else {
                out!("flushed {} neighbour(s)", r.get("flushed").and_then(serde_json::Value::as_u64).unwrap_or(0));
            }
            return Ok(());
        }
        Cmd::Neigh { action: None } => {
            let r = call(&cli.socket, Command::Neigh)?;
            if cli.json {
                out!("{r}");
            } else {
                let ns: Vec<NeighView> = serde_json::from_value(r).map_err(|e| e.to_string())?;
                // `ip neigh`'s layout: address, device, lladdr, state; then age and probes.
                for n in ns {
                    out!(
                        "{} dev {} lladdr {} {} age {}.{:03}s probes {}",
                        n.address,
                        n.interface,
                        n.mac,
                        n.state,
                        n.age_ms / 1000,
                        n.age_ms % 1000,
                        n.probes
                    );
                }
            }
            return Ok(());
        }
        Cmd::Stats => {
            let r = call(&cli.socket, Command::Stats)?;
            if cli.json {
                out!("{r}");
            } else {
                let ws: Vec<WorkerView> = serde_json::from_value(r).map_err(|e| e.to_string())?;
                let synced = ws.iter().any(|w| w.sync_sent + w.sync_applied > 0);
                out!(
                    "{:<7} {:<5} {:>7} {:>14} {:>14} {:>10} {:>11} {:>10} {:>10}  drops",
                    "worker",
                    "core",
                    "busy%",
                    "rx_packets",
                    "tx_packets",
                    "cyc/pkt",
                    "conns",
                    "to_host",
                    "from_host"
                );
                for w in &ws {
                    let drops: Vec<String> = w.drops.iter().map(|(r, n)| format!("{r}={n}")).collect();
                    let core = w.core.map_or("-".into(), |c| c.to_string());
                    out!(
                        "{:<7} {:<5} {:>7.2} {:>14} {:>14} {:>10.0} {:>11} {:>10} {:>10}  {}",
                        w.index,
                        core,
                        w.busy_percent,
                        w.rx_packets,
                        w.tx_packets,
                        w.cycles_per_packet,
                        w.connections,
                        w.to_host,
                        w.from_host,
                        drops.join(" ")
                    );
                }
                if synced {
                    for w in &ws {
                        out!(
                            "sync: worker {} sent {} connection events to the peers, applied {} of theirs",
                            w.index,
                            w.sync_sent,
                            w.sync_applied
                        );
                    }
                }
            }
            return Ok(());
        }
        Cmd::Drain { timeout, no_wait } => {
            let r = call(&cli.socket, Command::Drain { on: true })?;
            let started = std::time::Instant::now();
            let left = |r: &serde_json::Value| r["connections"].as_u64().unwrap_or(0);
            let mut conns = left(&r);
            if !cli.json {
                out!("drain: VIPs withdrawn; {conns} connections to finish");
            }
            while !*no_wait && conns > 0 && started.elapsed() < Duration::from_secs(*timeout) {
                std::thread::sleep(Duration::from_secs(1));
                let ws: Vec<WorkerView> =
                    serde_json::from_value(call(&cli.socket, Command::Stats)?).map_err(|e| e.to_string())?;
                conns = ws.iter().map(|w| w.connections as u64).sum();
            }
            let secs = started.elapsed().as_secs_f64();
            if cli.json {
                out!("{}", serde_json::json!({ "drained": true, "connections_left": conns, "seconds": secs }));
            } else if conns == 0 {
                out!("drain: done after {secs:.1} s: no connection left");
            } else {
                out!("drain: {conns} connections still open after {secs:.1} s");
            }
            return Ok(());
        }
        Cmd::Undrain => Command::Drain { on: false },
        Cmd::Zero => Command::Zero,
        Cmd::Flush => Command::Flush,
        Cmd::SetTimeouts { tcp, tcpfin, udp } => Command::SetTimeouts { tcp: *tcp, tcpfin: *tcpfin, udp: *udp },
        Cmd::Save => {
            let r = call(&cli.socket, Command::Save)?;
            let model: ServicesModel = serde_json::from_value(r).map_err(|e| e.to_string())?;
            if cli.json {
                out!("{}", serde_json::to_string_pretty(&model).map_err(|e| e.to_string())?);
            } else {
                let _ = write!(std::io::stdout(), "{}", toml::to_string(&model).map_err(|e| e.to_string())?);
            }
            return Ok(());
        }
        Cmd::Restore { file, format } => Command::Apply { model: read_model(file, format)?, dry_run: false },
        Cmd::Apply { file, dry_run } => Command::Apply { model: read_model(file, "toml")?, dry_run: *dry_run },
    };
    let r = call(&cli.socket, command)?;
    if cli.json {
        out!("{r}");
    } else if let Some(lines) =
        r.get("diff").and_then(|d| d.get("lines")).or_else(|| r.get("lines")).and_then(|l| l.as_array())
    {
        for l in lines {
            out!("{}", l.as_str().unwrap_or_default());
        }
    }
    Ok(())
}

fn read_model(file: &PathBuf, format: &str) -> Result<ServicesModel, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    match format {
        "toml" => toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display())),
        "ipvsadm" => lb_ctl::ipvsadm::parse_save(&text).map_err(|e| format!("{}: {e}", file.display())),
        other => Err(format!("--format {other}: expected toml or ipvsadm")),
    }
}

fn forward_name(m: Mode) -> &'static str {
    match m {
        Mode::Nat => "Masq",
        Mode::Fnat => "FullNat",
        Mode::Dr => "Route",
        Mode::Tun => "Tunnel",
        Mode::Gue => "GUE",
        Mode::Gre => "GRE",
    }
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Counters of the later sample minus the earlier one (a one-second rate).
fn per_second(now: &lb_ctl::Traffic, then: &lb_ctl::Traffic) -> lb_ctl::Traffic {
    lb_ctl::Traffic {
        conns: now.conns.saturating_sub(then.conns),
        in_packets: now.in_packets.saturating_sub(then.in_packets),
        in_bytes: now.in_bytes.saturating_sub(then.in_bytes),
        out_packets: now.out_packets.saturating_sub(then.out_packets),
        out_bytes: now.out_bytes.saturating_sub(then.out_bytes),
    }
}

fn print_list(views: &[ServiceView], stats: bool, rate: bool) {
    out!("lbd virtual server table (lbctl {})", env!("CARGO_PKG_VERSION"));
    if rate {
        out!("Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS");
        out!("  -> RemoteAddress:Port");
    } else if stats {
        out!("Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes");
        out!("  -> RemoteAddress:Port");
    } else {
        out!("Prot LocalAddress:Port Scheduler Flags");
        out!("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn");
    }
    for v in views {
        let s = &v.service;
        let proto = if s.protocol == Protocol::Tcp { "TCP" } else { "UDP" };
        let t = &v.traffic;
        if stats {
            out!(
                "{proto}  {:<30} {:>7} {:>8} {:>8} {:>8} {:>8}",
                endpoint(s.vip, s.port),
                t.conns,
                t.in_packets,
                t.out_packets,
                t.in_bytes,
                t.out_bytes
            );
        } else {
            let mut flags = String::new();
            if s.persistence > 0 {
                flags = format!("persistent {}", s.persistence);
            }
            if s.hash_ports {
                flags.push_str(if flags.is_empty() { "hash-ports" } else { " hash-ports" });
            }
            if s.synproxy {
                flags.push_str(if flags.is_empty() { "synproxy" } else { " synproxy" });
            }
            out!("{proto}  {} {} {flags}", endpoint(s.vip, s.port), s.scheduler.name());
        }
        for b in &v.backends {
            let port = if b.backend.port == 0 { s.port } else { b.backend.port };
            let bt = &b.traffic;
            if stats {
                out!(
                    "  -> {:<30} {:>7} {:>8} {:>8} {:>8} {:>8}",
                    endpoint(b.backend.address, port),
                    bt.conns,
                    bt.in_packets,
                    bt.out_packets,
                    bt.in_bytes,
                    bt.out_bytes
                );
            } else {
                // keepalived's inhibit_on_failure shows a failed backend at weight 0.
                let inhibit = s.check.as_ref().is_some_and(|c| c.inhibit_on_failure);
                let weight =
                    if inhibit && b.state == lb_core::health::BackendState::Down { 0 } else { b.backend.weight };
                out!(
                    "  -> {:<28} {:<7} {:<6} {:<10} {}",
                    endpoint(b.backend.address, port),
                    forward_name(b.backend.mode),
                    weight,
                    b.active,
                    b.inactive
                );
            }
        }
    }
    if !stats {
        print_health(views);
    }
}

/// Backend states and health checks, below the table so that its columns stay ipvsadm's.
fn print_health(views: &[ServiceView]) {
    let mut lines = Vec::new();
    for v in views {
        let s = &v.service;
        let proto = if s.protocol == Protocol::Tcp { "TCP" } else { "UDP" };
        let service = format!("{proto}  {}", endpoint(s.vip, s.port));
        if !v.up {
            let sorry = if v.sorry_active { "; its sorry server serves" } else { "" };
            lines.push(format!("{service} DOWN: no backend up{sorry}"));
        }
        let checked = s.check.is_some() || s.passive.is_some();
        for b in v.backends.iter().filter(|b| checked || b.state != lb_core::health::BackendState::Up) {
            let port = if b.backend.port == 0 { s.port } else { b.backend.port };
            let last = match &b.check {
                Some(c) => {
                    format!("{}: {} ({:.1} ms, {:.1} s ago)", c.kind, c.reason, c.latency_ms, c.age_ms as f64 / 1000.0)
                }
                None if checked => "not checked yet".into(),
                None => "weight 0".into(),
            };
            lines.push(format!("{service} -> {} {} {last}", endpoint(b.backend.address, port), b.state));
        }
    }
    if !lines.is_empty() {
        out!("Health:");
        for l in lines {
            out!("  {l}");
        }
    }
}

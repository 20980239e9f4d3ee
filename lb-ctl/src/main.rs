//! lbctl: control a running lbd the way ipvsadm controls IPVS. Talks to lbd's Unix socket
//! (JSON lines, see lb-ctl's library); never links DPDK. Every command is atomic: a refused
//! one changes nothing and exits non-zero with the reason.
#![forbid(unsafe_code)]

use clap::{Args, CommandFactory, Parser, Subcommand};
use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Mode, Protocol, ServiceModel, ServicesModel};
use lb_ctl::{
    BackendEdit, Command, ConnView, NeighView, PortView, Request, Response, ServiceEdit, ServiceId, ServiceView,
    VERSION, WorkerView,
};
use std::io::{BufRead, BufReader, Write};

/// println! that tolerates a closed stdout (lbctl list | head) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}
mod list;

use list::{Layout, per_second, print_list, sort_views};
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

/// A backend's forwarding: ipvsadm's -g, -i, -m, or lbd's -m MODE.
#[derive(Args, Clone)]
#[group(multiple = false)]
struct Forward {
    /// nat, fnat, dr, tun, gue or gre; a bare -m is ipvsadm's masquerading (nat).
    #[arg(short = 'm', long = "mode", value_name = "MODE", num_args = 0..=1, default_missing_value = "nat")]
    mode: Option<String>,
    /// NAT (ipvsadm's --masquerading).
    #[arg(long)]
    masquerading: bool,
    /// Direct routing (ipvsadm -g): the default, as in ipvsadm.
    #[arg(short = 'g', long)]
    gatewaying: bool,
    /// A tunnel (ipvsadm -i): ipip, or --tun-type gue or gre.
    #[arg(short = 'i', long)]
    ipip: bool,
}

/// ipvsadm's tunnel options.
#[derive(Args, Clone)]
struct TunnelArgs {
    /// ipip (the default), gue or gre, with -i.
    #[arg(long, value_name = "ipip|gue|gre")]
    tun_type: Option<String>,
    /// The backend's GUE port.
    #[arg(long = "tun-port", visible_alias = "gue-port", value_name = "PORT")]
    tun_port: Option<u16>,
    /// Tunnel without checksums (the default).
    #[arg(long)]
    tun_nocsum: bool,
    /// gue and gre tunnels with a checksum.
    #[arg(long)]
    tun_csum: bool,
    /// Refused: remote checksum offload is not supported.
    #[arg(long, hide = true)]
    tun_remcsum: bool,
}

#[derive(Subcommand)]
enum NeighAction {
    /// Remove every learned neighbour (static ones stay); they are resolved again on use.
    Flush,
}

#[derive(Subcommand)]
enum Cmd {
    /// Add a virtual service (ipvsadm -A).
    AddService {
        #[command(flatten)]
        svc: Svc,
        /// rr, wrr, lc, wlc (the default, as in ipvsadm), sed, nq, fo, ovf, lblc, lblcr, dh, sh or mh.
        #[arg(short = 's', long, default_value = "wlc")]
        scheduler: String,
        /// Persistence timeout in seconds; a bare -p is ipvsadm's 360.
        #[arg(short = 'p', long, value_name = "SECS", num_args = 0..=1)]
        persistent: Option<Option<u32>>,
        /// Persistence granularity: an IPv4 netmask (255.255.255.0) or an IPv6 prefix length.
        #[arg(short = 'M', long, value_name = "NETMASK")]
        netmask: Option<String>,
        /// Scheduler flags: sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2.
        #[arg(short = 'b', long = "sched-flags", value_name = "FLAGS")]
        sched_flags: Option<String>,
        /// One-packet scheduling: each UDP datagram scheduled on its own.
        #[arg(short = 'o', long)]
        ops: bool,
        #[arg(long, default_value_t = lb_core::sched::mh::DEFAULT_SIZE)]
        maglev_size: u32,
        /// sh/mh also hash the client port (-b sh-port, mh-port).
        #[arg(long)]
        hash_ports: bool,
        /// Answer SYNs with SYN cookies; open the backend connection only for a valid ACK
        /// (TCP, nat and fnat backends).
        #[arg(long)]
        synproxy: bool,
    },
    /// Change a service's settings (ipvsadm -E); what is not given stays as it is.
    EditService {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 's', long)]
        scheduler: Option<String>,
        /// Persistence timeout in seconds (0: off); a bare -p is ipvsadm's 360.
        #[arg(short = 'p', long, value_name = "SECS", num_args = 0..=1)]
        persistent: Option<Option<u32>>,
        /// Persistence granularity: an IPv4 netmask or an IPv6 prefix length.
        #[arg(short = 'M', long, value_name = "NETMASK")]
        netmask: Option<String>,
        /// Scheduler flags, replacing the service's: sh-fallback, sh-port, mh-fallback,
        /// mh-port, flag-1, flag-2, or none.
        #[arg(short = 'b', long = "sched-flags", value_name = "FLAGS")]
        sched_flags: Option<String>,
        /// One-packet scheduling on (a bare -o) or off.
        #[arg(short = 'o', long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on", value_parser = parse_on_off)]
        ops: Option<bool>,
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
    /// Add a backend (real server) to a service (ipvsadm -a).
    AddBackend {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
        real: String,
        #[arg(short = 'w', long, default_value_t = 1)]
        weight: u32,
        #[command(flatten)]
        forward: Forward,
        #[command(flatten)]
        tunnel: TunnelArgs,
        /// Upper connection threshold: no new connection at or above it (0: none).
        #[arg(short = 'x', long = "u-threshold", default_value_t = 0)]
        upper_threshold: u32,
        /// Lower connection threshold: new connections again below it (0: 3/4 of -x).
        #[arg(short = 'y', long = "l-threshold", default_value_t = 0)]
        lower_threshold: u32,
    },
    /// Change a backend's weight (0 drains it), forwarding or thresholds (ipvsadm -e); what is
    /// not given stays as it is.
    EditBackend {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
        real: String,
        #[arg(short = 'w', long)]
        weight: Option<u32>,
        #[command(flatten)]
        forward: Forward,
        #[command(flatten)]
        tunnel: TunnelArgs,
        #[arg(short = 'x', long = "u-threshold")]
        upper_threshold: Option<u32>,
        #[arg(short = 'y', long = "l-threshold")]
        lower_threshold: Option<u32>,
    },
    /// Remove a backend from a service.
    DelBackend {
        #[command(flatten)]
        svc: Svc,
        #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
        real: String,
    },
    /// List services and backends, laid out like `ipvsadm -Ln` and in its order.
    List {
        /// Numeric output (always numeric; accepted for ipvsadm habits).
        #[arg(short = 'n', long)]
        numeric: bool,
        /// Connections, packets and bytes per service and backend.
        #[arg(long, conflicts_with_all = ["rate", "thresholds", "tun_info"])]
        stats: bool,
        /// Rates over one second: connections, packets and bytes per second.
        #[arg(long, conflicts_with_all = ["thresholds", "tun_info"])]
        rate: bool,
        /// Backends' connection thresholds (-x, -y).
        #[arg(long, conflicts_with = "tun_info")]
        thresholds: bool,
        /// Backends' tunnel type, port and checksum.
        #[arg(long)]
        tun_info: bool,
        /// In lbd's order, as configured, instead of ipvsadm's.
        #[arg(long)]
        nosort: bool,
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
    /// Per worker: busy %, packets, cycles per packet, drops by reason; then each port's counters.
    Stats,
    /// Per port: the driver's counters, and the frames the kernel dropped at a full AF_PACKET ring.
    Ports,
    /// Print the running services as TOML (lbd's config format), or as `ipvsadm -S -n` does.
    Save {
        #[arg(long, value_name = "toml|ipvsadm", default_value = "toml")]
        format: String,
    },
    /// Replace the running services with FILE ("-": standard input): TOML, or ipvsadm rules
    /// (`ipvsadm -S -n` output or `ipvsadm -R` input, applied to an empty table as
    /// ipvsadm-restore does; refused whole at a bad line).
    Restore {
        file: PathBuf,
        #[arg(long, value_name = "toml|ipvsadm", default_value = "toml")]
        format: String,
    },
    /// Make the running services equal to FILE in one commit, printing the changes.
    Apply {
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_name = "toml|ipvsadm", default_value = "toml")]
        format: String,
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

/// -p as given: a bare -p is ipvsadm's default.
fn persistence(p: Option<u32>) -> u32 {
    p.unwrap_or(lb_ctl::ipvsadm::DEFAULT_PERSISTENCE)
}

/// -M for service `id`, as a prefix length.
fn netmask(id: &ServiceId, text: &str) -> Result<Option<u8>, String> {
    lb_ctl::ipvsadm::netmask(id.vip.is_ipv6(), text).map_err(|e| format!("-M {text}: {e}"))
}

/// -b as (fallback, hash ports). Without a scheduler to check them against (edit-service
/// without -s), the flags' own prefix stands for it.
fn sched_flags(scheduler: Option<Kind>, text: &str) -> Result<(bool, bool), String> {
    let kind = scheduler.unwrap_or(if text.starts_with("sh-") {
        Kind::Sh
    } else if text.starts_with("mh-") {
        Kind::Mh
    } else {
        Kind::Wlc
    });
    lb_ctl::ipvsadm::sched_flags(kind, text).map_err(|e| format!("-b {text}: {e}"))
}

/// The mode and GUE port the forwarding options give; None when none was given.
fn forward(f: &Forward, t: &TunnelArgs) -> Result<Option<(Mode, Option<u16>)>, String> {
    let mut tunnel = lb_ctl::ipvsadm::Tunnel {
        kind: t.tun_type.as_deref(),
        port: t.tun_port,
        nocsum: t.tun_nocsum,
        csum: t.tun_csum,
        remcsum: t.tun_remcsum,
    };
    if f.ipip {
        return tunnel.mode().map(Some);
    }
    let mode = if f.gatewaying {
        Some(Mode::Dr)
    } else if f.masquerading {
        Some(Mode::Nat)
    } else {
        f.mode.as_deref().map(str::parse::<Mode>).transpose().map_err(|e| format!("-m: {e}"))?
    };
    match mode {
        // lbd's -m tun|gue|gre: a tunnel, whose GUE port may be left to lbd's default.
        Some(m @ (Mode::Tun | Mode::Gue | Mode::Gre)) => {
            if tunnel.kind.is_some() {
                return Err(format!("--tun-type goes with -i, not with -m {}", m.name()));
            }
            tunnel.kind = Some(match m {
                Mode::Gue => "gue",
                Mode::Gre => "gre",
                _ => "ipip",
            });
            if m == Mode::Gue && tunnel.port.is_none() {
                tunnel.port = Some(lb_core::service::DEFAULT_GUE_PORT);
                return tunnel.mode().map(|(m, _)| Some((m, None)));
            }
            tunnel.mode().map(Some)
        }
        _ => match tunnel.first_given() {
            Some(o) => Err(format!("{o}: tunnel options need -i (a tunnel)")),
            None => Ok(mode.map(|m| (m, None))),
        },
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let command = match &cli.cmd {
        Cmd::AddService {
            svc,
            scheduler,
            persistent,
            netmask: mask,
            sched_flags: flags,
            ops,
            maglev_size,
            hash_ports,
            synproxy,
        } => {
            let id = service_id(svc)?;
            let scheduler: Kind = scheduler.parse().map_err(|e| format!("-s: {e}"))?;
            let (fallback, port_flag) = match flags {
                Some(f) => sched_flags(Some(scheduler), f)?,
                None => (false, false),
            };
            Command::AddService {
                service: ServiceModel {
                    scheduler,
                    persistence: persistent.map_or(0, persistence),
                    persistence_prefix: mask.as_deref().map(|m| netmask(&id, m)).transpose()?.flatten(),
                    maglev_size: *maglev_size,
                    hash_ports: *hash_ports || port_flag,
                    fallback,
                    one_packet: *ops,
                    synproxy: *synproxy,
                    ..ServiceModel::new(id.vip, id.port, id.protocol)
                },
            }
        }
        Cmd::EditService {
            svc,
            scheduler,
            persistent,
            netmask: mask,
            sched_flags: flags,
            ops,
            maglev_size,
            synproxy,
        } => {
            let id = service_id(svc)?;
            let scheduler: Option<Kind> =
                scheduler.as_deref().map(str::parse).transpose().map_err(|e| format!("-s: {e}"))?;
            let flags = match flags.as_deref() {
                None => None,
                Some("none") => Some((false, false)),
                Some(f) => Some(sched_flags(scheduler, f)?),
            };
            let persistence_prefix = match mask {
                // The whole address, which the edit turns into the model's default.
                Some(m) => Some(netmask(&id, m)?.unwrap_or(if id.vip.is_ipv6() { 128 } else { 32 })),
                None => None,
            };
            Command::EditService {
                id,
                edit: ServiceEdit {
                    scheduler,
                    persistence: persistent.map(persistence),
                    maglev_size: *maglev_size,
                    synproxy: *synproxy,
                    persistence_prefix,
                    fallback: flags.map(|f| f.0),
                    hash_ports: flags.map(|f| f.1),
                    one_packet: *ops,
                },
            }
        }
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
        Cmd::AddBackend { svc, real, weight, forward: fwd, tunnel, upper_threshold, lower_threshold } => {
            let (address, port) = parse_endpoint(real, true)?;
            let (mode, gue_port) = forward(fwd, tunnel)?.unwrap_or((Mode::Dr, None));
            Command::AddBackend {
                id: service_id(svc)?,
                backend: BackendModel {
                    port,
                    weight: *weight,
                    mode,
                    gue_port,
                    upper_threshold: *upper_threshold,
                    lower_threshold: *lower_threshold,
                    tunnel_checksum: tunnel.tun_csum,
                    ..BackendModel::at(address)
                },
            }
        }
        Cmd::EditBackend { svc, real, weight, forward: fwd, tunnel, upper_threshold, lower_threshold } => {
            let id = service_id(svc)?;
            let (address, port) = parse_endpoint(real, true)?;
            let port = if port == 0 { id.port } else { port };
            let fwd = forward(fwd, tunnel)?;
            Command::EditBackend {
                id,
                address,
                port,
                edit: BackendEdit {
                    weight: *weight,
                    mode: fwd.map(|f| f.0),
                    gue_port: fwd.and_then(|f| f.1),
                    upper_threshold: *upper_threshold,
                    lower_threshold: *lower_threshold,
                    tunnel_checksum: fwd.map(|_| tunnel.tun_csum),
                },
            }
        }
        Cmd::DelBackend { svc, real } => {
            let id = service_id(svc)?;
            let (address, port) = parse_endpoint(real, true)?;
            Command::DelBackend { id, address, port: if port == 0 { id.port } else { port } }
        }
        Cmd::List { stats, rate, thresholds, tun_info, nosort, .. } => {
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
                let mut views: Vec<ServiceView> = serde_json::from_value(r).map_err(|e| e.to_string())?;
                if !*nosort {
                    sort_views(&mut views);
                }
                let layout = if *stats {
                    Layout::Stats
                } else if *rate {
                    Layout::Rate
                } else if *thresholds {
                    Layout::Thresholds
                } else if *tun_info {
                    Layout::TunInfo
                } else {
                    Layout::Plain
                };
                print_list(&views, layout);
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
        Cmd::Ports => {
            let r = call(&cli.socket, Command::Ports)?;
            if cli.json {
                out!("{r}");
            } else {
                print_ports(&r)?;
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
                // Port counters: frames lost before any worker saw them show here.
                print_ports(&call(&cli.socket, Command::Ports)?)?;
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
        Cmd::Save { format } => {
            let r = call(&cli.socket, Command::Save)?;
            let model: ServicesModel = serde_json::from_value(r).map_err(|e| e.to_string())?;
            let text = match format.as_str() {
                _ if cli.json => format!("{}\n", serde_json::to_string_pretty(&model).map_err(|e| e.to_string())?),
                "toml" => toml::to_string(&model).map_err(|e| e.to_string())?,
                "ipvsadm" => lb_ctl::ipvsadm::save(&model)?,
                other => return Err(format!("--format {other}: expected toml or ipvsadm")),
            };
            let _ = write!(std::io::stdout(), "{text}");
            return Ok(());
        }
        Cmd::Restore { file, format } => Command::Apply { model: read_model(file, format)?, dry_run: false },
        Cmd::Apply { file, dry_run, format } => Command::Apply { model: read_model(file, format)?, dry_run: *dry_run },
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

/// The model in `file` ("-": standard input, as `ipvsadm -R` reads it), in `format`.
fn read_model(file: &PathBuf, format: &str) -> Result<ServicesModel, String> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).map_err(|e| format!("standard input: {e}"))?
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?
    };
    match format {
        "toml" => toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display())),
        "ipvsadm" => lb_ctl::ipvsadm::parse(&text).map_err(|e| format!("{}: {e}", file.display())),
        other => Err(format!("--format {other}: expected toml or ipvsadm")),
    }
}

/// Prints the `ports` result as a table, one port per line.
fn print_ports(r: &serde_json::Value) -> Result<(), String> {
    let ports: Vec<PortView> = serde_json::from_value(r.clone()).map_err(|e| e.to_string())?;
    if ports.is_empty() {
        return Ok(());
    }
    out!(
        "{:<5} {:<18} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10} {:>11}",
        "port",
        "name",
        "ipackets",
        "opackets",
        "imissed",
        "ierrors",
        "oerrors",
        "rx_nombuf",
        "ring_drops"
    );
    for p in &ports {
        out!(
            "{:<5} {:<18} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10} {:>11}",
            p.port,
            p.name,
            p.ipackets,
            p.opackets,
            p.imissed,
            p.ierrors,
            p.oerrors,
            p.rx_nombuf,
            p.ring_drops
        );
    }
    Ok(())
}

//! The serde model of the virtual services: what `configs/*.toml`, `lbctl save` and `lbctl
//! restore` read and write, and the keys that name a service and a backend.

use crate::flow::{from_ip, to_ip};
use crate::health::{CheckModel, PassiveModel};
pub use crate::model_error::ModelError;
use crate::sched::{self, Kind};
use crate::wire::ip_proto;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// Forwarding mode of a backend, as IPVS's `-m` (masq), `-g` (gatewaying), `-i` (ipip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Destination NAT; replies route back through the LB and are un-NATed.
    #[default]
    Nat,
    /// Full NAT: source NAT to a local address and port as well.
    Fnat,
    /// Direct routing: MAC rewrite only; the backend holds the VIP.
    Dr,
    /// IP-in-IP tunnel to the backend.
    Tun,
    /// Generic UDP Encapsulation to the backend.
    Gue,
    /// GRE (RFC 2784) to the backend (ipvsadm -i --tun-type gre).
    Gre,
}

impl Mode {
    /// True when replies come back through the LB.
    pub fn sees_replies(self) -> bool {
        matches!(self, Mode::Nat | Mode::Fnat)
    }

    /// The name used in configs and by lbctl.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Fnat => "fnat",
            Mode::Dr => "dr",
            Mode::Tun => "tun",
            Mode::Gue => "gue",
            Mode::Gre => "gre",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "nat" => Mode::Nat,
            "fnat" => Mode::Fnat,
            "dr" => Mode::Dr,
            "tun" => Mode::Tun,
            "gue" => Mode::Gue,
            "gre" => Mode::Gre,
            other => {
                return Err(format!("unknown forwarding mode '{other}' (expected nat, fnat, dr, tun, gue or gre)"));
            }
        })
    }
}

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => ip_proto::TCP,
            Protocol::Udp => ip_proto::UDP,
        }
    }
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// GUE's default UDP port (Linux `ip fou add port 6080 gue` in most guides).
pub const DEFAULT_GUE_PORT: u16 = 6080;
/// ipvsadm's weight range.
pub const MAX_WEIGHT: u32 = 65535;

fn default_weight() -> u32 {
    1
}
fn default_maglev_size() -> u32 {
    sched::mh::DEFAULT_SIZE
}

/// A backend ("real server") as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendModel {
    pub address: IpAddr,
    /// Backend port; 0 means the service's port (the only choice for dr, tun and gue).
    #[serde(default)]
    pub port: u16,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub mode: Mode,
    /// UDP port of the backend's GUE receiver (gue mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gue_port: Option<u16>,
    /// Upper connection threshold (ipvsadm -x): once the backend holds this many connections
    /// it is overloaded and gets no new one; 0 for no limit.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub upper_threshold: u32,
    /// Lower connection threshold (ipvsadm -y): an overloaded backend takes new connections
    /// again below it; 0 means below three quarters of the upper threshold, as in IPVS.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lower_threshold: u32,
    /// gue and gre: the tunnel carries a checksum (ipvsadm --tun-csum): GUE's outer UDP
    /// checksum over IPv4 too, GRE's checksum field (RFC 2784). Without it, as IPVS by
    /// default, none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tunnel_checksum: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl BackendModel {
    /// A backend at `address` with every other setting at its default.
    pub fn at(address: IpAddr) -> BackendModel {
        BackendModel {
            address,
            port: 0,
            weight: 1,
            mode: Mode::default(),
            gue_port: None,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel_checksum: false,
        }
    }
}

/// A virtual service as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceModel {
    pub vip: IpAddr,
    /// Service port; 0 takes every port of the VIP (IPVS's port-zero services).
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub scheduler: Kind,
    /// Persistence timeout in seconds (ipvsadm -p); 0 disables it.
    #[serde(default)]
    pub persistence: u32,
    /// Persistence granularity (ipvsadm -M), as a prefix length: the clients of one prefix
    /// share a backend. None: each address on its own (32 or 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_prefix: Option<u8>,
    /// Maglev table size (prime), for the mh scheduler.
    #[serde(default = "default_maglev_size")]
    pub maglev_size: u32,
    /// Hash the client port too (sh and mh), like IPVS's sh-port / mh-port flags.
    #[serde(default)]
    pub hash_ports: bool,
    /// sh-fallback / mh-fallback (ipvsadm -b): a client whose hashed backend cannot take it
    /// (weight 0, overloaded) goes to the next one that can, instead of being refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fallback: bool,
    /// One-packet scheduling (ipvsadm -o, UDP only): every datagram is scheduled on its own
    /// and no connection is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_packet: bool,
    /// Answer SYNs with SYN cookies and open the backend connection only for a valid ACK
    /// (DPVS's synproxy): TCP services with nat or fnat backends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synproxy: bool,
    /// The active health check of every backend (`[service.check]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckModel>,
    /// The passive check from the data path (`[service.passive]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveModel>,
    /// Serves the service while none of its backends is up (keepalived's sorry_server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<BackendModel>,
    #[serde(default, rename = "backend")]
    pub backends: Vec<BackendModel>,
}

/// A backend of a service as health checks name it: the service, the backend's address, its
/// address family and port (0 for the service's port, as in the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendKey {
    pub service: ServiceKey,
    pub addr: [u8; 16],
    pub v6: bool,
    pub port: u16,
}

impl BackendKey {
    pub fn new(service: ServiceKey, b: &BackendModel) -> Self {
        let (addr, v6) = from_ip(b.address);
        BackendKey { service, addr, v6, port: b.port }
    }
}

/// The backends health checks took out.
pub type DownSet = hashbrown::HashSet<BackendKey>;

/// The whole service configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServicesModel {
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceModel>,
}

/// What identifies a service: VIP, port and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr: [u8; 16],
    pub v6: bool,
    pub port: u16,
    pub proto: u8,
}

impl ServiceKey {
    pub fn new(vip: IpAddr, port: u16, protocol: Protocol) -> Self {
        let (addr, v6) = from_ip(vip);
        ServiceKey { addr, v6, port, proto: protocol.number() }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = if self.proto == ip_proto::UDP { "udp" } else { "tcp" };
        match to_ip(self.addr, self.v6) {
            IpAddr::V4(a) => write!(f, "{proto} {a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "{proto} [{a}]:{}", self.port),
        }
    }
}

impl ServiceModel {
    /// A service with every setting at its default (ipvsadm's: wlc, no persistence).
    pub fn new(vip: IpAddr, port: u16, protocol: Protocol) -> ServiceModel {
        ServiceModel {
            vip,
            port,
            protocol,
            scheduler: Kind::default(),
            persistence: 0,
            persistence_prefix: None,
            maglev_size: default_maglev_size(),
            hash_ports: false,
            fallback: false,
            one_packet: false,
            synproxy: false,
            check: None,
            passive: None,
            sorry_server: None,
            backends: Vec::new(),
        }
    }

    pub(super) fn kind_needs_maglev(&self) -> bool {
        self.scheduler == Kind::Mh
    }
}

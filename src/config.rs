//! lbd's configuration file: every key, with its default, is documented in
//! `configs/lbd.example.toml`. Unknown keys are refused with their name.

use lb_core::conntrack::Timeouts;
use lb_core::neigh::NeighParams;
use lb_core::net::NetworkModel;
use lb_core::service::ServiceModel;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub workers: WorkersConfig,
    #[serde(default)]
    pub conntrack: ConntrackConfig,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub neighbours: NeighParams,
    #[serde(default)]
    pub checksum: ChecksumConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub network: NetworkModel,
    #[serde(default, rename = "service")]
    pub services: Vec<ServiceModel>,
}

/// `[eal]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// Unique per lbd process on a machine (hugepage file names, runtime directory).
    pub file_prefix: String,
    /// EAL's main core (the control thread runs there).
    pub main_core: usize,
    /// Run without hugepages; lbd also falls back to this, with a warning, when none are free.
    pub no_huge: bool,
    /// Memory for mempools in MiB.
    pub memory_mb: u32,
    /// Extra EAL arguments, passed as they are.
    pub extra: Vec<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig { file_prefix: "lbd".into(), main_core: 0, no_huge: false, memory_mb: 512, extra: vec![] }
    }
}

/// `[workers]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkersConfig {
    /// One poll-mode worker per listed core, pinned to it.
    pub cores: Vec<usize>,
    /// RX and TX descriptors per queue.
    pub descriptors: u16,
    /// Packet buffers in the pool (per lbd).
    pub mbufs: u32,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig { cores: vec![1], descriptors: 1024, mbufs: 16383 }
    }
}

/// `[conntrack]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConntrackConfig {
    /// Connections per worker, allocated at start.
    pub capacity: usize,
    /// Most embryonic (SYN seen, no ACK) connections per worker.
    pub embryonic_limit: usize,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig { capacity: 1 << 20, embryonic_limit: 1 << 19 }
    }
}

/// `[checksum]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksumConfig {
    /// Verify TCP/UDP checksums in software before nat and fnat rewrite them, where the port
    /// does not check them itself. Off only on a network whose every sender is trusted.
    pub verify_l4: bool,
}

impl Default for ChecksumConfig {
    fn default() -> Self {
        ChecksumConfig { verify_l4: true }
    }
}

/// `[control]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlConfig {
    /// Unix socket lbctl talks to (mode 0600).
    pub socket: PathBuf,
    /// Prometheus text endpoint, on a local address only; empty to disable.
    pub metrics: String,
    /// Seed of the Maglev tables: the same on every LB node of a cluster.
    pub maglev_seed: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig { socket: PathBuf::from("/run/lbd/lbd.sock"), metrics: "127.0.0.1:9100".into(), maglev_seed: 0 }
    }
}

impl Config {
    /// Reads and parses a file; the error names the file and the offending key.
    pub fn load(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    /// Checks what serde cannot: cores, devices, sizes.
    pub fn check(&self) -> Result<(), String> {
        if self.workers.cores.is_empty() {
            return Err("workers.cores: at least one worker core is needed".into());
        }
        if self.workers.cores.contains(&self.eal.main_core) {
            return Err(format!(
                "workers.cores: core {} is eal.main_core, which runs the control thread",
                self.eal.main_core
            ));
        }
        if self.network.interfaces.is_empty() {
            return Err("network.interface: at least one interface is needed".into());
        }
        for (i, itf) in self.network.interfaces.iter().enumerate() {
            if itf.device.as_deref().is_none_or(str::is_empty) {
                return Err(format!(
                    "network.interface[{i}] ({}).device: missing (a PCI address or a --vdev string)",
                    itf.name
                ));
            }
        }
        if self.conntrack.capacity == 0 {
            return Err("conntrack.capacity: must be at least 1".into());
        }
        self.timeouts.validate()?;
        self.neighbours.validate()?;
        if !self.control.metrics.is_empty() {
            let addr: std::net::SocketAddr = self
                .control
                .metrics
                .parse()
                .map_err(|_| format!("control.metrics: '{}' is not an address:port", self.control.metrics))?;
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "control.metrics: {addr} is not a loopback address; lbd serves metrics locally only"
                ));
            }
        }
        Ok(())
    }

    /// Whether a device string names a virtual device (`--vdev`) rather than a PCI address.
    pub fn is_vdev(device: &str) -> bool {
        device.starts_with("net_") || device.starts_with("eth_")
    }
}

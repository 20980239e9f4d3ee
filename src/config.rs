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
    pub exception: ExceptionConfig,
    #[serde(default)]
    pub announce: AnnounceConfig,
    #[serde(default)]
    pub sync: SyncConfig,
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
    /// "busy" (poll without pause, a whole core each) or "adaptive" (back off when idle).
    pub poll: PollModeName,
    /// adaptive: empty polls before backing off, and the longest sleep between polls.
    pub idle_turns: u32,
    pub max_sleep_us: u32,
}

/// `workers.poll`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PollModeName {
    #[default]
    Busy,
    Adaptive,
}

impl WorkersConfig {
    /// The poll mode the runtime runs.
    pub fn poll_mode(&self) -> lb_dpdk::worker::PollMode {
        match self.poll {
            PollModeName::Busy => lb_dpdk::worker::PollMode::Busy,
            PollModeName::Adaptive => {
                lb_dpdk::worker::PollMode::Adaptive { idle_turns: self.idle_turns, max_sleep_us: self.max_sleep_us }
            }
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        WorkersConfig {
            cores: vec![1],
            descriptors: 1024,
            mbufs: 16383,
            poll: PollModeName::Busy,
            idle_turns: 256,
            max_sleep_us: 500,
        }
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
    /// Ask the kernel for transparent huge pages for the tables (lb-dpdk's `hugealloc`).
    pub huge_pages: bool,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        ConntrackConfig { capacity: 1 << 20, embryonic_limit: 1 << 19, huge_pages: true }
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

/// `[exception]`: the path to the host's kernel of ports with `exception = true`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExceptionConfig {
    /// Frames per second each worker passes to the kernel at most; the excess is dropped and
    /// counted (`to_host_limited`), so a flood at the LB's own address cannot starve a worker.
    pub rate: u64,
    /// Frames a worker may pass at once after a quiet spell.
    pub burst: u64,
}

impl Default for ExceptionConfig {
    fn default() -> Self {
        ExceptionConfig { rate: 20_000, burst: 512 }
    }
}

/// `[announce]`: VIPs for a routing daemon to announce.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AnnounceConfig {
    /// The network.interface (with exception = true) whose kernel interface carries, as /32 and
    /// /128 addresses, the VIPs of the services that are up; "" announces nothing.
    pub interface: String,
    /// Also the full-NAT local addresses, this node's and its peers' (network.local_addresses,
    /// network.peer_local_addresses): the routing daemon announces a peer's as a backup, so
    /// that the backends' replies to it come here when the peer fails.
    pub local_addresses: bool,
}

/// `[sync]`: connection sync with peer nodes (on when `peers` is not empty).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// This node's address for sync: datagrams leave from it and arrive on it (an interface
    /// address, reached through the exception path).
    pub address: Option<std::net::IpAddr>,
    /// UDP port, the same on every node.
    pub port: u16,
    /// The other nodes' sync addresses: events go to each; datagrams from anyone else are refused.
    pub peers: Vec<std::net::IpAddr>,
    /// The cluster's shared secret (at least 16 bytes), or a file holding it (`key_file`).
    pub key: Option<String>,
    pub key_file: Option<PathBuf>,
    /// Datagrams sent longer ago than this (by the sender's clock) are refused: the nodes'
    /// clocks must agree within it (NTP).
    pub max_age_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig { address: None, port: 8848, peers: vec![], key: None, key_file: None, max_age_ms: 10_000 }
    }
}

impl SyncConfig {
    pub fn enabled(&self) -> bool {
        !self.peers.is_empty()
    }

    /// The shared secret's bytes (a file's content without its final newline).
    pub fn secret(&self) -> Result<Vec<u8>, String> {
        match (&self.key, &self.key_file) {
            (Some(k), None) => Ok(k.as_bytes().to_vec()),
            (None, Some(f)) => {
                let mut b = std::fs::read(f).map_err(|e| format!("sync.key_file: {}: {e}", f.display()))?;
                while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    b.pop();
                }
                Ok(b)
            }
            (Some(_), Some(_)) => Err("sync.key, sync.key_file: set one, not both".into()),
            (None, None) => Err("sync.key: a shared key (or sync.key_file) is needed when sync.peers is set".into()),
        }
    }

    fn check(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        let Some(own) = self.address else {
            return Err("sync.address: this node's sync address is needed when sync.peers is set".into());
        };
        if self.port == 0 {
            return Err("sync.port: must not be 0".into());
        }
        for (i, p) in self.peers.iter().enumerate() {
            if *p == own {
                return Err(format!("sync.peers[{i}] ({p}): that is sync.address, this node"));
            }
            if p.is_ipv4() != own.is_ipv4() {
                return Err(format!("sync.peers[{i}] ({p}): not of sync.address's family ({own})"));
            }
            if self.peers[..i].contains(p) {
                return Err(format!("sync.peers[{i}] ({p}): listed twice"));
            }
        }
        if self.key_file.is_none() {
            lb_core::sync::SyncKey::new(&self.secret()?).map_err(|e| format!("sync.key: {e}"))?;
        }
        if self.max_age_ms == 0 {
            return Err("sync.max_age_ms: must be at least 1".into());
        }
        Ok(())
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
        if self.network.interfaces.iter().any(|i| i.exception)
            && (self.exception.rate == 0 || self.exception.burst == 0)
        {
            return Err(
                "exception.rate, exception.burst: must be at least 1 when an interface has exception = true".into()
            );
        }
        if !self.announce.interface.is_empty()
            && !self.network.interfaces.iter().any(|i| i.name == self.announce.interface && i.exception)
        {
            return Err(format!(
                "announce.interface: '{}' is not a network.interface with exception = true",
                self.announce.interface
            ));
        }
        if self.workers.poll == PollModeName::Adaptive && !(1..=100_000).contains(&self.workers.max_sleep_us) {
            return Err(format!("workers.max_sleep_us: {} is not within 1..=100000", self.workers.max_sleep_us));
        }
        self.sync.check()?;
        self.timeouts.validate()?;
        self.neighbours.validate()?;
        self.check_memory(self.eal.no_huge)?;
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

    /// Checks that packet buffers and connection tables fit `eal.memory_mb`, showing the
    /// arithmetic. `no_huge`: EAL runs on 4 KiB pages, where an mbuf (2,368 bytes with its
    /// headers) may not cross a page and so takes a page of its own; on hugepages they pack.
    /// The EAL base (6 MiB) and per-mbuf sizes were measured with DPDK 22.11 (`-m` searched
    /// for the least that starts, 2k..64k mbufs).
    pub fn check_memory(&self, no_huge: bool) -> Result<(), String> {
        const MIB: u64 = 1 << 20;
        const EAL_BASE: u64 = 6 * MIB;
        let per_mbuf: u64 = if no_huge { 4096 } else { 2432 };
        let mbufs = u64::from(self.workers.mbufs) * per_mbuf;
        let workers = self.workers.cores.len() as u64;
        let per_worker = lb_core::ConnTable::memory_bytes(self.conntrack.capacity) as u64;
        let conns = per_worker * workers;
        let neigh = self.neighbours.capacity.next_power_of_two() as u64 * 96;
        let need = EAL_BASE + mbufs + conns + neigh;
        let budget = u64::from(self.eal.memory_mb) * MIB;
        if need > budget {
            let mb = |b: u64| b.div_ceil(MIB);
            return Err(format!(
                "eal.memory_mb: {} MiB is too small: packet buffers {} x {} B = {} MiB ({}), connection tables {} worker(s) x {} connections = {} MiB, neighbour table {} MiB, EAL {} MiB: {} MiB needed. Raise eal.memory_mb to {} or lower workers.mbufs or conntrack.capacity",
                self.eal.memory_mb,
                self.workers.mbufs,
                per_mbuf,
                mb(mbufs),
                if no_huge { "4 KiB pages, one mbuf each" } else { "hugepages" },
                workers,
                self.conntrack.capacity,
                mb(conns),
                mb(neigh),
                mb(EAL_BASE),
                mb(need),
                mb(need),
            ));
        }
        Ok(())
    }

    /// Whether a device string names a virtual device (`--vdev`) rather than a PCI address.
    pub fn is_vdev(device: &str) -> bool {
        device.starts_with("net_") || device.starts_with("eth_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(memory_mb: u32, mbufs: u32, capacity: usize) -> Config {
        let mut c: Config = toml::from_str(
            "[[network.interface]]\nname = \"a\"\ndevice = \"net_null0\"\naddresses = [\"10.9.0.1/24\"]\n",
        )
        .unwrap();
        c.eal.memory_mb = memory_mb;
        c.workers.mbufs = mbufs;
        c.conntrack.capacity = capacity;
        c
    }

    #[test]
    fn memory_that_does_not_fit_is_refused_with_the_arithmetic() {
        // Measured: 16383 mbufs on 4 KiB pages need 70 MiB of EAL memory.
        let e = config(64, 16383, 1024).check_memory(true).unwrap_err();
        assert!(e.starts_with("eal.memory_mb: 64 MiB is too small"), "{e}");
        assert!(e.contains("16383 x 4096 B = 64 MiB") && e.contains("71 MiB needed"), "{e}");
        assert!(config(72, 16383, 1024).check_memory(true).is_ok());
        // On hugepages mbufs pack; a million connections per worker do not fit 128 MiB.
        assert!(config(128, 16383, 1024).check_memory(false).is_ok());
        let e = config(128, 16383, 1 << 20).check_memory(false).unwrap_err();
        assert!(e.contains("1 worker(s) x 1048576 connections"), "{e}");
        assert!(config(512, 16383, 1 << 20).check().is_ok(), "the defaults fit");
    }

    #[test]
    fn announce_needs_an_exception_interface_and_adaptive_a_sane_sleep() {
        let mut c = config(512, 4095, 1024);
        c.announce.interface = "a".into();
        let e = c.check().unwrap_err();
        assert!(e.contains("announce.interface: 'a' is not a network.interface with exception = true"), "{e}");
        c.network.interfaces[0].exception = true;
        assert!(c.check().is_ok());
        c.workers.poll = PollModeName::Adaptive;
        c.workers.max_sleep_us = 0;
        assert!(c.check().unwrap_err().contains("workers.max_sleep_us"));
    }

    #[test]
    fn sync_refuses_what_would_leave_it_open_or_talking_to_itself() {
        let mut c = config(512, 4095, 1024);
        assert!(!c.sync.enabled());
        c.sync.peers = vec!["10.9.0.12".parse().unwrap()];
        let err = |c: &Config| c.check().unwrap_err();
        assert!(err(&c).contains("sync.address"), "{}", err(&c));
        c.sync.address = Some("10.9.0.11".parse().unwrap());
        assert!(err(&c).starts_with("sync.key: a shared key"), "{}", err(&c));
        c.sync.key = Some("short".into());
        assert!(err(&c).contains("sync.key: the key has 5 bytes; at least 16"), "{}", err(&c));
        c.sync.key = Some("a cluster secret of some length".into());
        assert!(c.check().is_ok());
        c.sync.peers.push("10.9.0.11".parse().unwrap());
        assert!(err(&c).contains("sync.peers[1] (10.9.0.11): that is sync.address"), "{}", err(&c));
        c.sync.peers[1] = "fd00::1".parse().unwrap();
        assert!(err(&c).contains("sync.peers[1] (fd00::1): not of sync.address's family"), "{}", err(&c));
        c.sync.peers[1] = "10.9.0.12".parse().unwrap();
        assert!(err(&c).contains("listed twice"), "{}", err(&c));
    }
}

//! Ports: find the device EAL created, configure queues, MTU and RSS (the Toeplitz key the
//! full-NAT port choice relies on), start it, and read back MAC, RETA and counters.

use crate::ffi::{self, DevInfo, DpdkError, MempoolRef, PortId, PortStats, QueueId};
use lb_core::flow::RSS_KEY_DEFAULT;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// RSS hash fields lbd asks for: TCP/UDP 4-tuples, and addresses only for fragments and other
/// IP traffic so every fragment of a datagram lands on one queue.
/// (DPDK 22.11's RTE_ETH_RSS_* bits; bindgen cannot evaluate their RTE_BIT64 macros.)
const RSS_FIELDS: u64 =
    RSS_IPV4 | RSS_FRAG_IPV4 | RSS_IPV4_TCP | RSS_IPV4_UDP | RSS_IPV6 | RSS_FRAG_IPV6 | RSS_IPV6_TCP | RSS_IPV6_UDP;
const RSS_IPV4: u64 = 1 << 2;
const RSS_FRAG_IPV4: u64 = 1 << 3;
const RSS_IPV4_TCP: u64 = 1 << 4;
const RSS_IPV4_UDP: u64 = 1 << 5;
const RSS_IPV6: u64 = 1 << 8;
const RSS_FRAG_IPV6: u64 = 1 << 9;
const RSS_IPV6_TCP: u64 = 1 << 10;
const RSS_IPV6_UDP: u64 = 1 << 11;

/// How to bring a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub queues: u16,
    pub descriptors: u16,
    pub mtu: u16,
    pub promiscuous: bool,
}

/// A started port.
#[derive(Debug, Clone)]
pub struct Port {
    pub id: PortId,
    pub name: String,
    pub mac: [u8; 6],
    pub info: DevInfo,
    pub queues: u16,
    /// Toeplitz key and redirection table when the driver hashes in hardware.
    pub rss: Option<(Vec<u8>, Vec<u16>)>,
    /// AF_PACKET ports: the kernel interface, whose socket ring drops `stats` reads.
    packet_iface: Option<String>,
    /// Ring drops read so far (the kernel resets its count at each read); shared by clones.
    ring_drops: Arc<AtomicU64>,
}

/// Why a port could not be used.
#[derive(Debug)]
pub enum PortError {
    /// EAL created no port for this device.
    Missing(String),
    Dpdk(DpdkError),
    /// The driver cannot give what lbd needs.
    Unsupported(String),
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortError::Missing(d) => {
                write!(f, "no DPDK port for device '{d}' (check the device string and that its driver is installed)")
            }
            PortError::Dpdk(e) => write!(f, "{e}"),
            PortError::Unsupported(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for PortError {}

impl From<DpdkError> for PortError {
    fn from(e: DpdkError) -> Self {
        PortError::Dpdk(e)
    }
}

/// The kernel interface of an AF_PACKET device string ("net_af_packet0,iface=eth1" -> "eth1").
fn packet_iface(device: &str) -> Option<&str> {
    let mut args = device.split(',');
    let name = args.next()?;
    if !(name.starts_with("net_af_packet") || name.starts_with("eth_af_packet")) {
        return None;
    }
    args.find_map(|a| a.strip_prefix("iface="))
}

/// The DPDK device name of a `--vdev`/PCI device string ("net_pcap0,rx_pcap=a" -> "net_pcap0").
pub fn device_name(device: &str) -> &str {
    device.split(',').next().unwrap_or(device)
}

impl Port {
    /// Configures and starts the port EAL created for `device`, with one RX and one TX queue per
    /// worker taking buffers from `pool`.
    pub fn open(device: &str, cfg: &PortConfig, pool: &MempoolRef) -> Result<Port, PortError> {
        let name = device_name(device);
        let id = ffi::port_by_name(name).ok_or_else(|| PortError::Missing(name.to_string()))?;
        let info = ffi::dev_info(id)?;
        if info.max_rx_queues < cfg.queues || info.max_tx_queues < cfg.queues {
            return Err(PortError::Unsupported(format!(
                "{name} ({}) supports {} RX / {} TX queues, lbd needs {} (one per worker)",
                info.driver, info.max_rx_queues, info.max_tx_queues, cfg.queues
            )));
        }
        let fields = RSS_FIELDS & info.rss_offloads;
        let rss = (cfg.queues > 1 && fields != 0 && usize::from(info.hash_key_size) == RSS_KEY_DEFAULT.len())
            .then_some((&RSS_KEY_DEFAULT[..], fields));
        // Where the port checks TCP/UDP checksums, the pipeline reads its verdict per mbuf
        // instead of summing the segment in software.
        let offloads = info.rx_offloads & ffi::RX_OFFLOAD_L4_CKSUM;
        ffi::dev_configure(id, cfg.queues, cfg.queues, cfg.mtu, offloads, rss)?;
        for q in 0..cfg.queues {
            ffi::rx_queue_setup(id, QueueId(q), cfg.descriptors, pool)?;
            ffi::tx_queue_setup(id, QueueId(q), cfg.descriptors)?;
        }
        ffi::dev_start(id)?;
        if cfg.promiscuous {
            // Virtual devices without a promiscuous mode (pcap, ring) already receive everything.
            let _ = ffi::promiscuous_enable(id);
        }
        let rss = match rss {
            Some((key, _)) if info.reta_size > 0 => Some((key.to_vec(), ffi::reta_query(id, info.reta_size)?)),
            _ => None,
        };
        Ok(Port {
            id,
            name: name.to_string(),
            mac: ffi::mac_addr(id)?,
            info,
            queues: cfg.queues,
            rss,
            packet_iface: packet_iface(device).map(str::to_string),
            ring_drops: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The port's counters, and for AF_PACKET the kernel's ring drops since the port opened.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = ffi::stats(self.id)?;
        if let Some(iface) = &self.packet_iface {
            let new = ffi::packet_ring_drops(iface).unwrap_or(0);
            s.ring_drops = self.ring_drops.fetch_add(new, Ordering::Relaxed) + new;
        }
        Ok(s)
    }

    /// Stops and closes the port.
    pub fn close(&self) -> Result<(), DpdkError> {
        ffi::dev_stop(self.id)?;
        ffi::dev_close(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_iface_reads_only_af_packet_devices() {
        assert_eq!(packet_iface("net_af_packet0,iface=l0ab,framecnt=4096"), Some("l0ab"));
        assert_eq!(packet_iface("eth_af_packet1,qpairs=2,iface=eth1"), Some("eth1"));
        assert_eq!(packet_iface("net_af_packet0"), None);
        assert_eq!(packet_iface("net_af_xdp0,iface=eth1"), None);
        assert_eq!(packet_iface("0000:01:00.0"), None);
    }
}

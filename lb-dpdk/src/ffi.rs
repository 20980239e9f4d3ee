//! One safe function per DPDK call. Every `unsafe` block of lb-dpdk outside `mbuf` is here, each
//! with the reason it is sound; callers get ids as newtypes and failures as [`DpdkError`]
//! carrying DPDK's own error text.

use crate::sys;
use std::ffi::{CStr, CString, c_char, c_int};
use std::fmt;
use std::ptr::NonNull;

/// A failed DPDK call: which call, its error code and DPDK's description of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub call: &'static str,
    pub code: i32,
    pub text: String,
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {} ({})", self.call, self.text, self.code)
    }
}

impl std::error::Error for DpdkError {}

/// DPDK's text for an error number.
pub fn strerror(code: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a NUL-terminated string in
    // static or thread-local storage, valid until the next call on this thread; it is copied
    // out before returning.
    unsafe { CStr::from_ptr(sys::rte_strerror(code)).to_string_lossy().into_owned() }
}

fn errno() -> i32 {
    // SAFETY: lb_errno only reads the calling thread's rte_errno.
    unsafe { sys::lb_errno() }
}

fn check(call: &'static str, ret: c_int) -> Result<c_int, DpdkError> {
    if ret < 0 { Err(DpdkError { call, code: -ret, text: strerror(-ret) }) } else { Ok(ret) }
}

/// DPDK's version string.
pub fn version() -> String {
    // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(sys::rte_version()).to_string_lossy().into_owned() }
}

/// Initialises the EAL with `args` (argv[0] first). Returns how many arguments it consumed.
/// DPDK allows this once per process; `eal::Eal` enforces that.
pub(crate) fn eal_init(args: &[String]) -> Result<i32, DpdkError> {
    let owned: Vec<CString> = args
        .iter()
        .map(|a| {
            CString::new(a.as_str()).map_err(|_| DpdkError {
                call: "rte_eal_init",
                code: 22,
                text: format!("argument '{a}' contains a NUL byte"),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    let argc = c_int::try_from(owned.len()).unwrap_or(c_int::MAX);
    // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL; `owned` keeps them
    // alive for the call. EAL may permute argv's pointers but does not write the strings, and it
    // keeps no reference to them after returning (it copies what it stores).
    let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        let code = errno();
        return Err(DpdkError { call: "rte_eal_init", code, text: strerror(code) });
    }
    Ok(ret)
}

/// Releases EAL resources (hugepage files among them). Call once, after every port is closed.
pub(crate) fn eal_cleanup() -> Result<(), DpdkError> {
    // SAFETY: called once at shutdown, after workers stopped and ports were closed.
    check("rte_eal_cleanup", unsafe { sys::rte_eal_cleanup() }).map(|_| ())
}

/// Initialises the packet-capture server so `dpdk-dumpcap` can capture on lbd's ports.
pub fn pdump_init() -> Result<(), DpdkError> {
    // SAFETY: called after rte_eal_init, from the main thread, once.
    check("rte_pdump_init", unsafe { sys::rte_pdump_init() }).map(|_| ())
}

/// The time-stamp counter.
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the CPU's time-stamp counter; no memory is touched.
    unsafe { sys::lb_rdtsc() }
}

/// Time-stamp counter ticks per second (after EAL init).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value EAL computed at init.
    unsafe { sys::lb_tsc_hz() }
}

/// A DPDK port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortId(pub u16);

/// A queue index on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueId(pub u16);

/// Ports EAL probed.
pub fn port_count() -> u16 {
    // SAFETY: a read of EAL's port table.
    unsafe { sys::rte_eth_dev_count_avail() }
}

/// The port EAL created for a device name (such as "net_pcap0").
pub fn port_by_name(name: &str) -> Option<PortId> {
    let c = CString::new(name).ok()?;
    let mut id = 0u16;
    // SAFETY: c is a valid NUL-terminated string and id a valid out-pointer for the call.
    let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (ret == 0).then_some(PortId(id))
}

/// Creates a virtual device ("net_tap0,iface=x") after EAL started: hot plug, for devices
/// that cannot exist yet when EAL starts.
pub fn vdev_init(device: &str) -> Result<(), DpdkError> {
    let (name, args) = device.split_once(',').unwrap_or((device, ""));
    let bad = |_| DpdkError { call: "rte_vdev_init", code: 22, text: format!("'{device}' contains a NUL byte") };
    let (name, args) = (CString::new(name).map_err(bad)?, CString::new(args).map_err(bad)?);
    // SAFETY: both are valid NUL-terminated strings, read only during the call.
    check("rte_vdev_init", unsafe { sys::rte_vdev_init(name.as_ptr(), args.as_ptr()) }).map(|_| ())
}

/// The device name of a port.
pub fn port_name(port: PortId) -> Result<String, DpdkError> {
    let mut buf = [0 as c_char; 64];
    // SAFETY: buf is larger than RTE_ETH_NAME_MAX_LEN (64) including the NUL DPDK writes.
    check("rte_eth_dev_get_name_by_port", unsafe { sys::rte_eth_dev_get_name_by_port(port.0, buf.as_mut_ptr()) })?;
    // SAFETY: DPDK wrote a NUL-terminated name into buf.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// What a port's driver supports.
#[derive(Debug, Clone)]
pub struct DevInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    /// `RTE_ETH_RX_OFFLOAD_*` capabilities.
    pub rx_offloads: u64,
    pub reta_size: u16,
    pub hash_key_size: u8,
    pub min_mtu: u16,
    pub max_mtu: u16,
}

/// Queries a port's capabilities.
pub fn dev_info(port: PortId) -> Result<DevInfo, DpdkError> {
    let mut info = sys::rte_eth_dev_info::default();
    // SAFETY: info is a valid, writable rte_eth_dev_info.
    check("rte_eth_dev_info_get", unsafe { sys::rte_eth_dev_info_get(port.0, &mut info) })?;
    let driver = if info.driver_name.is_null() {
        String::new()
    } else {
        // SAFETY: driver_name points to the driver's static NUL-terminated name.
        unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
    };
    Ok(DevInfo {
        driver,
        max_rx_queues: info.max_rx_queues,
        max_tx_queues: info.max_tx_queues,
        rss_offloads: info.flow_type_rss_offloads,
        rx_offloads: info.rx_offload_capa,
        reta_size: info.reta_size,
        hash_key_size: info.hash_key_size,
        min_mtu: info.min_mtu,
        max_mtu: info.max_mtu,
    })
}

/// `RTE_ETH_RX_OFFLOAD_UDP_CKSUM | RTE_ETH_RX_OFFLOAD_TCP_CKSUM`: the port checks TCP/UDP
/// checksums and flags each mbuf.
pub const RX_OFFLOAD_L4_CKSUM: u64 = (1 << 2) | (1 << 3);

/// Configures queues, MTU, receive offloads and (when `rss` is given) Toeplitz RSS with a key
/// and hash fields.
pub fn dev_configure(
    port: PortId,
    rx_queues: u16,
    tx_queues: u16,
    mtu: u16,
    rx_offloads: u64,
    rss: Option<(&[u8], u64)>,
) -> Result<(), DpdkError> {
    let mut conf = sys::rte_eth_conf::default();
    conf.rxmode.mtu = u32::from(mtu);
    conf.rxmode.offloads = rx_offloads;
    let mut key = rss.map(|(k, _)| k.to_vec()).unwrap_or_default();
    if let Some((_, hf)) = rss {
        conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
        conf.rx_adv_conf.rss_conf.rss_key_len = u8::try_from(key.len()).unwrap_or(40);
        conf.rx_adv_conf.rss_conf.rss_hf = hf;
    }
    // SAFETY: conf is fully initialised; the key buffer outlives the call (DPDK copies it).
    check("rte_eth_dev_configure", unsafe { sys::rte_eth_dev_configure(port.0, rx_queues, tx_queues, &conf) })
        .map(|_| ())
}

/// Sets up an RX queue that takes mbufs from `pool`.
pub fn rx_queue_setup(port: PortId, queue: QueueId, descriptors: u16, pool: &MempoolRef) -> Result<(), DpdkError> {
    // SAFETY: port/queue are checked by DPDK; a NULL rx_conf selects the driver defaults; pool
    // is a live mempool that outlives the port (lbd frees pools only after closing ports).
    let ret = unsafe {
        sys::rte_eth_rx_queue_setup(port.0, queue.0, descriptors, socket_of(port), std::ptr::null(), pool.0.as_ptr())
    };
    check("rte_eth_rx_queue_setup", ret).map(|_| ())
}

/// Sets up a TX queue.
pub fn tx_queue_setup(port: PortId, queue: QueueId, descriptors: u16) -> Result<(), DpdkError> {
    // SAFETY: a NULL tx_conf selects the driver defaults.
    let ret = unsafe { sys::rte_eth_tx_queue_setup(port.0, queue.0, descriptors, socket_of(port), std::ptr::null()) };
    check("rte_eth_tx_queue_setup", ret).map(|_| ())
}

fn socket_of(port: PortId) -> u32 {
    // SAFETY: a read of the port's NUMA socket; -1 (unknown) maps to SOCKET_ID_ANY's bit pattern.
    let s = unsafe { sys::rte_eth_dev_socket_id(port.0) };
    u32::from_ne_bytes(s.to_ne_bytes())
}

/// Starts a configured port.
pub fn dev_start(port: PortId) -> Result<(), DpdkError> {
    // SAFETY: the port was configured and its queues set up.
    check("rte_eth_dev_start", unsafe { sys::rte_eth_dev_start(port.0) }).map(|_| ())
}

/// Stops a port (its queues stop receiving and transmitting).
pub fn dev_stop(port: PortId) -> Result<(), DpdkError> {
    // SAFETY: callable on any valid port; workers no longer poll it when lbd stops it.
    check("rte_eth_dev_stop", unsafe { sys::rte_eth_dev_stop(port.0) }).map(|_| ())
}

/// Closes a stopped port and releases its queues.
pub fn dev_close(port: PortId) -> Result<(), DpdkError> {
    // SAFETY: the port was stopped and no thread uses its queues.
    check("rte_eth_dev_close", unsafe { sys::rte_eth_dev_close(port.0) }).map(|_| ())
}

/// The port's MAC address.
pub fn mac_addr(port: PortId) -> Result<[u8; 6], DpdkError> {
    let mut a = sys::rte_ether_addr::default();
    // SAFETY: a is a valid out-parameter.
    check("rte_eth_macaddr_get", unsafe { sys::rte_eth_macaddr_get(port.0, &mut a) })?;
    Ok(a.addr_bytes)
}

/// Sets the port's MAC address (for a TAP port, its kernel interface's too).
pub fn set_mac_addr(port: PortId, mac: [u8; 6]) -> Result<(), DpdkError> {
    let mut a = sys::rte_ether_addr { addr_bytes: mac };
    // SAFETY: a is a valid, initialised address the call only reads.
    check("rte_eth_dev_default_mac_addr_set", unsafe { sys::rte_eth_dev_default_mac_addr_set(port.0, &mut a) })
        .map(|_| ())
}

/// Receives frames for every MAC address.
pub fn promiscuous_enable(port: PortId) -> Result<(), DpdkError> {
    // SAFETY: a configuration call on a valid port.
    check("rte_eth_promiscuous_enable", unsafe { sys::rte_eth_promiscuous_enable(port.0) }).map(|_| ())
}

/// A port's hardware counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
    /// AF_PACKET ports: frames the kernel dropped because the socket's receive ring was full
    /// (filled in by `Port::stats`; DPDK 22.11 does not count them).
    pub ring_drops: u64,
}

/// Whether the port's link is up (memif: the peer is connected), without waiting.
pub fn link_up(port: PortId) -> bool {
    let mut l = sys::rte_eth_link::default();
    // SAFETY: l is a valid out-parameter.
    let rc = unsafe { sys::rte_eth_link_get_nowait(port.0, &mut l) };
    rc == 0 && l.link_status() != 0
}

/// Reads a port's counters.
pub fn stats(port: PortId) -> Result<PortStats, DpdkError> {
    let mut s = sys::rte_eth_stats::default();
    // SAFETY: s is a valid out-parameter.
    check("rte_eth_stats_get", unsafe { sys::rte_eth_stats_get(port.0, &mut s) })?;
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
        ring_drops: 0,
    })
}

/// Frames the kernel dropped into full receive rings of this process's AF_PACKET sockets on
/// kernel interface `iface` since the last call (reading resets the kernel's count); `None` when
/// they cannot be read.
pub fn packet_ring_drops(iface: &str) -> Option<u64> {
    let name = CString::new(iface).ok()?;
    // SAFETY: name is a NUL-terminated string that outlives the call, which only reads it.
    let n = unsafe { sys::lb_packet_ring_drops(name.as_ptr()) };
    u64::try_from(n).ok()
}

/// Reads the RSS redirection table (queue per entry), `size` entries.
pub fn reta_query(port: PortId, size: u16) -> Result<Vec<u16>, DpdkError> {
    let groups = usize::from(size).div_ceil(64);
    let mut conf = vec![sys::rte_eth_rss_reta_entry64 { mask: u64::MAX, reta: [0; 64] }; groups];
    // SAFETY: conf holds size/64 groups with every mask bit set, as the call requires.
    check("rte_eth_dev_rss_reta_query", unsafe { sys::rte_eth_dev_rss_reta_query(port.0, conf.as_mut_ptr(), size) })?;
    Ok(conf.iter().flat_map(|g| g.reta).take(usize::from(size)).collect())
}

/// A mempool owned by lbd; freed with `mempool_free` after every port using it is closed.
#[derive(Debug)]
pub struct MempoolRef(pub(crate) NonNull<sys::rte_mempool>);

// SAFETY: DPDK mempools are designed for concurrent use from many lcores (per-lcore caches and
// a lock-free ring); the pointer itself is only freed by `mempool_free` at shutdown.
unsafe impl Send for MempoolRef {}
// SAFETY: as above; shared references only allocate and free mbufs, which is thread-safe.
unsafe impl Sync for MempoolRef {}

/// Creates a pool of `count` packet buffers with `data_room` bytes each (headroom included).
pub fn pktmbuf_pool_create(name: &str, count: u32, cache: u32, data_room: u16) -> Result<MempoolRef, DpdkError> {
    let c = CString::new(name).map_err(|_| DpdkError {
        call: "rte_pktmbuf_pool_create",
        code: 22,
        text: "name contains NUL".into(),
    })?;
    // SAFETY: c is a valid name; SOCKET_ID_ANY (-1) lets DPDK choose the NUMA node.
    let p = unsafe { sys::rte_pktmbuf_pool_create(c.as_ptr(), count, cache, 0, data_room, -1) };
    NonNull::new(p).map(MempoolRef).ok_or_else(|| {
        let code = errno();
        DpdkError { call: "rte_pktmbuf_pool_create", code, text: strerror(code) }
    })
}

/// Mbufs available in a pool.
pub fn mempool_avail(pool: &MempoolRef) -> u32 {
    // SAFETY: a read of the pool's counters.
    unsafe { sys::rte_mempool_avail_count(pool.0.as_ptr()) }
}

/// Frees a pool. Every port using it must be closed and every mbuf returned.
pub fn mempool_free(pool: MempoolRef) {
    // SAFETY: ownership of the pool passes here and is not used again.
    unsafe { sys::rte_mempool_free(pool.0.as_ptr()) }
}

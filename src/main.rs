//! lbd, the load balancer daemon: reads its TOML configuration, brings up EAL and the ports,
//! starts one pinned poll-mode worker per configured core, serves metrics, and on SIGTERM or
//! SIGINT stops the workers, flushes TX, closes the ports and releases its hugepages.
#![forbid(unsafe_code)]

mod config;
mod control;
mod health;
mod hostif;
mod metrics;
mod sync;
mod takeover;

use config::Config;
use lb_core::ConnTable;
use lb_core::WorkerConfig;
use lb_core::net::Network;
use lb_core::pipeline::DropReason;
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::wire::MacAddr;
use lb_dpdk::eal::{Eal, EalArgs, free_hugepages};
use lb_dpdk::exception::Limits as ExceptionLimits;
use lb_dpdk::ffi;
use lb_dpdk::port::{Port, PortConfig};
use lb_dpdk::runtime::{ExceptionPorts, Options as RuntimeOptions, Runtime};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Large blocks (the connection tables) in transparent huge pages: see `hugealloc`.
#[global_allocator]
static ALLOC: lb_dpdk::hugealloc::HugePageAlloc = lb_dpdk::hugealloc::HugePageAlloc;

const USAGE: &str = "usage: lbd --config FILE [--check] [--takeover SOCKET]\n       lbd --version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut config = None;
    let mut check_only = false;
    let mut takeover = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => config = it.next().map(PathBuf::from),
            "--check" => check_only = true,
            "--takeover" => takeover = it.next().map(PathBuf::from),
            "--version" | "-V" => {
                println!("lbd {} (built against DPDK {})", env!("CARGO_PKG_VERSION"), env!("LBD_DPDK_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("lbd: unknown argument '{other}'\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(path) = config else {
        eprintln!("lbd: --config FILE is required\n{USAGE}");
        return ExitCode::from(2);
    };
    let result = Config::load(&path).and_then(|cfg| {
        validate(&cfg)?;
        if check_only {
            println!("lbd: {}: configuration is valid", path.display());
            return Ok(());
        }
        run(&cfg, takeover.as_deref())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn services_model(cfg: &Config) -> ServicesModel {
    ServicesModel { services: cfg.services.clone() }
}

/// Builds the network and the table with placeholder MACs, so that a bad configuration is
/// refused before DPDK is touched.
fn validate(cfg: &Config) -> Result<(), String> {
    let macs = vec![MacAddr::ZERO; cfg.network.interfaces.len()];
    let network = Network::build(&cfg.network, &macs).map_err(|e| e.0)?;
    Table::build(&services_model(cfg), network, Limits::default(), None, cfg.control.maglev_seed).map_err(|e| e.0)?;
    Ok(())
}

/// Runs lbd. With `takeover`, the control socket of a running lbd with the same ports: this
/// one opens its ports first, then takes that lbd's services, connections and neighbours,
/// which stops its workers and exits, and starts its own workers on them.
fn run(cfg: &Config, takeover: Option<&std::path::Path>) -> Result<(), String> {
    // Two processes run side by side during a takeover: the new one needs its own EAL files.
    let prefix = match takeover {
        Some(_) => format!("{}-{}", cfg.eal.file_prefix, std::process::id()),
        None => cfg.eal.file_prefix.clone(),
    };
    lb_dpdk::hugealloc::set_huge_pages(cfg.conntrack.huge_pages);
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }
    // One DPDK port per device; VLAN interfaces share their device's port.
    let (device_list, physical) = lb_core::net::physical_ports(&cfg.network);
    let devices: Vec<&str> = device_list.iter().map(String::as_str).collect();
    let mut no_huge = cfg.eal.no_huge;
    if !no_huge && free_hugepages() == 0 {
        eprintln!(
            "lbd: warning: no free hugepages (see /proc/meminfo); running with --no-huge, which is slower. Reserve some: echo 512 > /proc/sys/vm/nr_hugepages"
        );
        no_huge = true;
        // 4 KiB pages hold fewer mbufs than hugepages: check the budget again.
        cfg.check_memory(true)?;
    }
    let mut cores = vec![cfg.eal.main_core];
    cores.extend(cfg.workers.cores.iter().copied());
    let taps: Vec<Option<String>> =
        cfg.network.interfaces.iter().enumerate().map(|(i, itf)| hostif::tap_device(i, itf)).collect();
    let mut vdevs: Vec<String> = devices.iter().filter(|d| Config::is_vdev(d)).map(|d| (*d).to_string()).collect();
    // After the interfaces' own devices, so these keep port numbers 0..n. A takeover creates
    // them later: their kernel interfaces belong to the running lbd until it hands over.
    if takeover.is_none() {
        vdevs.extend(taps.iter().flatten().cloned());
    }
    let eal_args = EalArgs {
        file_prefix: prefix.clone(),
        cores,
        vdevs,
        pci: devices.iter().filter(|d| !Config::is_vdev(d)).map(|d| (*d).to_string()).collect(),
        no_huge,
        memory_mb: Some(cfg.eal.memory_mb),
        in_memory: false,
        extra: cfg.eal.extra.clone(),
    };
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL: {e} (arguments: {})", eal_args.to_args().join(" ")))?;
    if let Err(e) = ffi::pdump_init() {
        eprintln!("lbd: warning: packet capture (dpdk-dumpcap) unavailable: {e}");
    }
    let workers = cfg.workers.cores.len();
    let pool = Arc::new(
        ffi::pktmbuf_pool_create("lbd_pool", cfg.workers.mbufs, 256, 2048 + 128)
            .map_err(|e| format!("mempool: {e}"))?,
    );
    let mut ports = Vec::new();
    for (d, device) in devices.iter().enumerate() {
        let on_it = || cfg.network.interfaces.iter().enumerate().filter(|(i, _)| usize::from(physical[*i]) == d);
        let (i, itf) = on_it().next().ok_or_else(|| format!("device '{device}': no interface"))?;
        let pc = PortConfig {
            queues: u16::try_from(workers).unwrap_or(1),
            descriptors: cfg.workers.descriptors,
            // The largest MTU of the device's interfaces (drivers allow for a VLAN tag on top).
            mtu: on_it().map(|(_, x)| x.mtu).max().unwrap_or(itf.mtu),
            promiscuous: true,
        };
        let port = Port::open(device, &pc, &pool)
            .map_err(|e| format!("network.interface[{i}] ({}).device '{device}': {e}", itf.name))?;
        if usize::from(port.id.0) != d {
            return Err(format!(
                "network.interface[{i}] ({}): DPDK numbered it port {}; list interfaces in the order EAL probes them",
                itf.name, port.id.0
            ));
        }
        ports.push(port);
    }
    // The state of the lbd taken over: from here until our workers run, nothing forwards. The
    // connection tables are allocated first, while the old lbd still forwards: at millions of
    // connections, faulting them in takes from tens of milliseconds to seconds.
    let conn_tables: Vec<ConnTable> = match takeover {
        Some(_) => {
            (0..workers.max(1)).map(|_| ConnTable::new(cfg.conntrack.capacity, cfg.conntrack.embryonic_limit)).collect()
        }
        None => Vec::new(),
    };
    let handed = takeover.map(takeover::receive).transpose()?;
    if handed.is_some() {
        for name in cfg.network.interfaces.iter().filter_map(|i| i.exception_name()) {
            takeover::wait_interface_gone(name);
        }
    }
    let tap_ports = open_taps(cfg, &taps, &ports, &physical, &pool, handed.is_some())?;
    let exception = tap_ports.iter().any(Option::is_some).then(|| ExceptionPorts {
        taps: tap_ports.iter().map(|t| t.as_ref().map(|t| t.id)).collect(),
        limits: ExceptionLimits { rate: cfg.exception.rate, burst: cfg.exception.burst },
    });
    // Each interface has its device's MAC.
    let macs: Vec<MacAddr> = physical.iter().map(|d| MacAddr(ports[usize::from(*d)].mac)).collect();
    let network = Network::build(&cfg.network, &macs).map_err(|e| e.0)?;
    let model = handed.as_ref().map_or_else(|| services_model(cfg), |(h, _)| h.model.clone());
    let timeouts = handed.as_ref().map_or(cfg.timeouts, |(h, _)| h.timeouts);
    // Backends the old lbd's checks had taken out stay out from the first packet.
    let down: lb_core::service::DownSet = handed
        .iter()
        .flat_map(|(h, _)| &h.down)
        .map(|b| {
            let (addr, v6) = lb_core::flow::from_ip(b.address);
            let service = lb_core::service::ServiceKey::new(b.service.vip, b.service.port, b.service.protocol);
            lb_core::service::BackendKey { service, addr, v6, port: b.port }
        })
        .collect();
    let table = Table::build_with_health(&model, network, Limits::default(), None, cfg.control.maglev_seed, &down)
        .map_err(|e| e.0)?;
    let services = table.services().len();
    let wcfg = WorkerConfig {
        conn_capacity: cfg.conntrack.capacity,
        embryonic_limit: cfg.conntrack.embryonic_limit,
        timeouts,
        verify_l4_checksums: cfg.checksum.verify_l4,
        // The SYN proxy's cookie key, new at every start.
        synproxy_secret: lb_core::flow::random_seed(),
        neigh: cfg.neighbours,
        workers: u32::try_from(workers).unwrap_or(1),
        ..Default::default()
    };
    let cores: Vec<Option<usize>> = cfg.workers.cores.iter().map(|c| Some(*c)).collect();
    // After a takeover the workers start paused: the connections and neighbours go in first.
    let options = RuntimeOptions {
        exception,
        poll: cfg.workers.poll_mode(),
        paused: handed.is_some(),
        sync: cfg.sync.enabled(),
        conn_tables,
    };
    let mut rt = Runtime::start(&ports, &cores, &wcfg, table, &pool, options)?;
    if let Some((h, stopped)) = &handed {
        let installed = takeover::install(&rt, h, *stopped);
        rt.resume();
        installed?;
    }
    if cfg.services.iter().any(|s| s.check.is_some()) && !cfg.network.interfaces.iter().any(|i| i.exception) {
        eprintln!(
            "lbd: warning: health checks are configured but no interface has exception = true: checks use the host's other routes to the backends, if any"
        );
    }
    let mut health = health::Health::start()?;
    health.sync(&model);
    health.adopt_down(&down);
    if !down.is_empty() {
        println!("lbd: takeover: {} backend(s) stay down until their checks bring them back", down.len());
    }
    if handed.is_some() {
        // The old lbd exits once it has answered; its socket and metrics address go with it.
        takeover::wait_gone(&cfg.control.socket);
    }
    // After a takeover the old lbd's sync socket is gone with it.
    let sync = match rt.sync_rings() {
        Some(rings) => Some(sync::SyncThread::start(&cfg.sync, rings)?),
        None => None,
    };
    if !cfg.control.metrics.is_empty() {
        let mut tries = 0;
        // After a takeover the old lbd may hold the metrics address for a moment more.
        while let Err(e) = metrics::serve(
            &cfg.control.metrics,
            rt.handle(),
            ports.clone(),
            health.board(),
            sync.as_ref().map(|s| Arc::clone(&s.counters)),
        ) {
            tries += 1;
            if handed.is_none() || tries > 100 {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut control = control::ControlSocket::bind(
        &cfg.control.socket,
        model,
        timeouts,
        cfg.control.maglev_seed,
        health,
        (!cfg.announce.interface.is_empty()).then(|| {
            let itf = cfg.network.interfaces.iter().find(|i| i.name == cfg.announce.interface);
            let locals = if cfg.announce.local_addresses {
                let own = cfg.network.local_addresses.iter().map(|a| (*a, true));
                own.chain(cfg.network.peer_local_addresses.iter().map(|a| (*a, false))).collect()
            } else {
                Vec::new()
            };
            hostif::Announcer::new(itf.and_then(|i| i.exception_name()).unwrap_or_default().to_string(), locals)
        }),
    )?;
    control.ports.clone_from(&ports);
    for p in &ports {
        let rss = if p.rss.is_some() { "RSS" } else { "software steering" };
        println!(
            "lbd: port {} {} ({}) mac {} queues {} ({rss})",
            p.id.0,
            p.name,
            p.info.driver,
            MacAddr(p.mac),
            p.queues
        );
    }
    for (tap, itf) in tap_ports.iter().zip(&cfg.network.interfaces) {
        if let (Some(tap), Some(name)) = (tap, itf.exception_name()) {
            println!("lbd: port {} exception path: kernel interface {name} (port {})", itf.name, tap.id.0);
        }
    }
    if cfg.sync.enabled() {
        println!(
            "lbd: connection sync from {}:{} with {} peer(s)",
            cfg.sync.address.map(|a| a.to_string()).unwrap_or_default(),
            cfg.sync.port,
            cfg.sync.peers.len()
        );
    }
    println!(
        "lbd: running {workers} worker(s) on cores {:?}, {services} service(s); {}",
        cfg.workers.cores,
        ffi::version()
    );
    while !stop.load(Ordering::Relaxed) && !control.handed_over {
        std::thread::sleep(Duration::from_millis(5));
        control.poll(&mut rt);
        rt.reap();
    }
    if !control.handed_over {
        // The lbd taking over announces the VIPs from now on.
        control.withdraw_all(&rt);
    }
    drop(control);
    drop(sync);
    let stats = rt.stop();
    let mut total = lb_core::pipeline::Counters::new(0, 0);
    let mut refused = 0;
    for s in &stats {
        total.accumulate(&s.counters);
        refused += s.loops.tx_refused;
    }
    let drops: Vec<String> = DropReason::ALL
        .iter()
        .filter(|r| total.drop_count(**r) > 0)
        .map(|r| format!("{}={}", r.name(), total.drop_count(*r)))
        .collect();
    println!(
        "lbd: stopped: rx={} tx={} tx_refused={refused} conns_created={} drops: {}",
        total.rx_packets,
        total.tx_packets,
        total.conns_created,
        if drops.is_empty() { "none".into() } else { drops.join(" ") }
    );
    for p in &ports {
        if let Ok(s) = p.stats() {
            println!(
                "lbd: port {} {}: ipackets={} opackets={} imissed={} ierrors={} oerrors={} rx_nombuf={} ring_drops={}",
                p.id.0, p.name, s.ipackets, s.opackets, s.imissed, s.ierrors, s.oerrors, s.rx_nombuf, s.ring_drops
            );
        }
    }
    println!("lbd: mbufs available at exit: {} of {}", ffi::mempool_avail(&pool), cfg.workers.mbufs);
    for p in ports.iter().chain(tap_ports.iter().flatten()) {
        if let Err(e) = p.close() {
            eprintln!("lbd: warning: closing port {}: {e}", p.name);
        }
    }
    // Every worker (and its pool reference) is gone: the pool is lbd's alone again.
    match Arc::try_unwrap(pool) {
        Ok(pool) => ffi::mempool_free(pool),
        Err(_) => eprintln!("lbd: warning: mempool still referenced at exit; not freed"),
    }
    eal.cleanup().map_err(|e| format!("EAL cleanup: {e}"))?;
    remove_hugepage_files(&prefix);
    // EAL's runtime directory for this prefix (its multi-process socket and config files).
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    Ok(())
}

/// Opens the TAP port of every interface with an exception path (`hotplug`: creating it now,
/// after EAL started) and sets up its kernel interface with the MAC of its device
/// (`physical`: each interface's DPDK port).
fn open_taps(
    cfg: &Config,
    taps: &[Option<String>],
    ports: &[Port],
    physical: &[u16],
    pool: &ffi::MempoolRef,
    hotplug: bool,
) -> Result<Vec<Option<Port>>, String> {
    let mut tap_ports = Vec::new();
    for ((i, itf), tap) in cfg.network.interfaces.iter().enumerate().zip(taps) {
        let Some(device) = tap else {
            tap_ports.push(None);
            continue;
        };
        let at = format!("network.interface[{i}] ({}).exception", itf.name);
        if hotplug {
            ffi::vdev_init(device).map_err(|e| format!("{at}: TAP port '{device}': {e}"))?;
        }
        let pc = PortConfig { queues: 1, descriptors: 512, mtu: itf.mtu, promiscuous: false };
        let tap = Port::open(device, &pc, pool).map_err(|e| format!("{at}: TAP port '{device}': {e}"))?;
        let mac = ports[usize::from(physical[i])].mac;
        ffi::set_mac_addr(tap.id, mac).map_err(|e| format!("{at}: setting the MAC: {e}"))?;
        hostif::configure(itf).map_err(|e| format!("{at}: {e}"))?;
        tap_ports.push(Some(tap));
    }
    Ok(tap_ports)
}

/// Deletes this process's hugepage files (named after its file prefix), which keep the pages
/// reserved after exit when EAL ran with shared (non in-memory) hugepages.
fn remove_hugepage_files(prefix: &str) {
    let Ok(dir) = std::fs::read_dir("/dev/hugepages") else { return };
    for e in dir.flatten() {
        let name = e.file_name();
        if name.to_string_lossy().starts_with(&format!("{prefix}map_")) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

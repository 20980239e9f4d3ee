//! The Prometheus text endpoint: per worker, drop reason, service and backend, plus the busy and
//! idle cycle counters. Served by a plain thread on a loopback address; one request at a time.

use lb_core::flow::to_ip;
use lb_core::pipeline::DropReason;
use lb_dpdk::runtime::StatsHandle;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpListener;

/// Renders every metric as Prometheus text.
pub fn render(
    h: &StatsHandle,
    ports: &[lb_dpdk::port::Port],
    health: &crate::health::Board,
    sync: Option<&crate::sync::SyncCounters>,
) -> String {
    let mut o = String::new();
    let stats = h.workers();
    let port_stats: Vec<_> =
        ports.iter().filter_map(|p| Some((format!("port=\"{}\"", p.name), p.stats().ok()?))).collect();
    let table = h.table();
    let mut put = |name: &str, help: &str, kind: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in rows {
            let _ = writeln!(o, "{name}{{{labels}}} {v}");
        }
    };
    let w = |s: &lb_dpdk::worker::WorkerStats| format!("worker=\"{}\"", s.index);
    put(
        "lbd_rx_packets_total",
        "Packets received.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.rx_packets)),
    );
    put(
        "lbd_tx_packets_total",
        "Packets transmitted.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.tx_packets)),
    );
    put("lbd_rx_bytes_total", "Bytes received.", "counter", &mut stats.iter().map(|s| (w(s), s.counters.rx_bytes)));
    put("lbd_tx_bytes_total", "Bytes transmitted.", "counter", &mut stats.iter().map(|s| (w(s), s.counters.tx_bytes)));
    type PortCounter = fn(&lb_dpdk::ffi::PortStats) -> u64;
    let port_counters: [(&str, &str, PortCounter); 4] = [
        ("lbd_port_rx_packets_total", "Frames the port's driver received.", |s| s.ipackets),
        ("lbd_port_tx_packets_total", "Frames the port's driver sent.", |s| s.opackets),
        (
            "lbd_port_rx_missed_total",
            "Frames the port could not receive (its RX ring was full), as the driver counts them.",
            |s| s.imissed,
        ),
        (
            "lbd_port_ring_drops_total",
            "AF_PACKET ports: frames the kernel dropped because the socket's receive ring was full.",
            |s| s.ring_drops,
        ),
    ];
    for (name, help, value) in port_counters {
        put(name, help, "counter", &mut port_stats.iter().map(|(l, s)| (l.clone(), value(s))));
    }
    put(
        "lbd_drops_total",
        "Packets dropped, by reason.",
        "counter",
        &mut stats.iter().flat_map(|s| {
            DropReason::ALL
                .iter()
                .map(move |r| (format!("worker=\"{}\",reason=\"{}\"", s.index, r.name()), s.counters.drop_count(*r)))
        }),
    );
    put(
        "lbd_tx_refused_total",
        "Packets the NIC refused at transmit.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.loops.tx_refused)),
    );
    put(
        "lbd_busy_cycles_total",
        "TSC cycles in polls that returned packets.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.loops.busy_cycles)),
    );
    put(
        "lbd_idle_cycles_total",
        "TSC cycles in polls that returned nothing.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.loops.idle_cycles)),
    );
    put(
        "lbd_consumed_total",
        "Packets absorbed by lbd itself (ARP and ND replies learned or refused).",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.consumed)),
    );
    put(
        "lbd_host_packets_total",
        "Packets for the LB's own addresses that lbd does not serve.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.host_packets)),
    );
    put(
        "lbd_exception_frames_total",
        "Frames through the exception path, by direction and outcome (passed, or why dropped).",
        "counter",
        &mut stats.iter().flat_map(|s| {
            [("to_host", "passed", s.loops.to_host), ("from_host", "passed", s.loops.from_host)]
                .into_iter()
                .chain(
                    crate::control::host_drops(&s.loops)
                        .into_iter()
                        .map(|(r, n)| (if r.starts_with("from") { "from_host" } else { "to_host" }, r, n)),
                )
                .map(move |(dir, outcome, n)| {
                    (format!("worker=\"{}\",direction=\"{dir}\",outcome=\"{outcome}\"", s.index), n)
                })
        }),
    );
    if let Some(e) = h.exception() {
        put(
            "lbd_exception_kernel_frames_total",
            "Frames the exception thread wrote to / read from the kernel interfaces, and dropped.",
            "counter",
            &mut [
                ("to_kernel", e.to_kernel),
                ("to_kernel_refused", e.to_kernel_refused),
                ("from_kernel", e.from_kernel),
                ("from_kernel_dropped", e.from_kernel_dropped),
            ]
            .into_iter()
            .map(|(k, n)| (format!("counter=\"{k}\""), n)),
        );
    }
    put(
        "lbd_sync_events_total",
        "Connection sync events: emitted for the peers, lost to a full ring; the peers' applied or refused.",
        "counter",
        &mut stats.iter().flat_map(|s| {
            [
                ("emitted", s.counters.sync_emitted),
                ("lost", s.counters.sync_lost),
                ("applied", s.counters.sync_applied),
                ("refused", s.counters.sync_refused),
            ]
            .into_iter()
            .map(move |(k, n)| (format!("worker=\"{}\",outcome=\"{k}\"", s.index), n))
        }),
    );
    if let Some(c) = sync {
        use std::sync::atomic::Ordering::Relaxed;
        let dir = |d: &str, n: &std::sync::atomic::AtomicU64| (format!("direction=\"{d}\""), n.load(Relaxed));
        put(
            "lbd_sync_datagrams_total",
            "Connection sync datagrams sent (one per peer) and accepted.",
            "counter",
            &mut [dir("sent", &c.sent_datagrams), dir("received", &c.received_datagrams)].into_iter(),
        );
        put(
            "lbd_sync_records_total",
            "Connection sync records sent (one per peer) and accepted.",
            "counter",
            &mut [dir("sent", &c.sent_records), dir("received", &c.received_records)].into_iter(),
        );
        put(
            "lbd_sync_bytes_total",
            "Connection sync UDP payload bytes sent and accepted.",
            "counter",
            &mut [dir("sent", &c.sent_bytes), dir("received", &c.received_bytes)].into_iter(),
        );
        put(
            "lbd_sync_peer_starts_total",
            "Peers seen starting (each made this node send its connections again).",
            "counter",
            &mut std::iter::once((String::new(), c.peer_starts.load(Relaxed))),
        );
        put(
            "lbd_sync_refused_total",
            "Connection sync datagrams refused, by reason; send errors and events lost to a full worker ring.",
            "counter",
            &mut c
                .refusals()
                .into_iter()
                .chain([
                    ("send_error", c.send_errors.load(Relaxed)),
                    ("worker_ring_full", c.inbound_full.load(Relaxed)),
                ])
                .map(|(r, n)| (format!("reason=\"{r}\""), n)),
        );
    }
    put(
        "lbd_neighbour_requests_total",
        "Frames turned into ARP or ND requests for an unresolved next hop.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.neighbour_requests)),
    );
    put(
        "lbd_time_exceeded_sent_total",
        "ICMP time exceeded sent for packets whose TTL or hop limit ran out at lbd.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.time_exceeded_sent)),
    );
    put(
        "lbd_synproxy_cookies_total",
        "SYNs the SYN proxy answered with a cookie.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.synproxy_cookies)),
    );
    put(
        "lbd_synproxy_accepted_total",
        "ACKs with a valid cookie: connections the SYN proxy opened.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.synproxy_accepted)),
    );
    put(
        "lbd_synproxy_syn_retries_total",
        "SYNs the SYN proxy sent a backend again because the first went unanswered.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.synproxy_syn_retries)),
    );
    put(
        "lbd_parked_total",
        "Client segments held while the SYN proxy waited for the backend.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.parked)),
    );
    put(
        "lbd_park_lost_total",
        "Parked segments freed: the park was full, or the backend never answered.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.loops.park_dropped + s.loops.park_expired)),
    );
    put(
        "lbd_neighbour_probes_unsent_total",
        "Neighbour probes not sent (queue full or no mbuf).",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.probes_unsent + s.loops.probe_alloc_failed)),
    );
    let events = h.neighbour_events();
    put(
        "lbd_neighbour_events_total",
        "Neighbour table events: learned, refused, changed, conflict, probe_sent, failed, table_full, confirmed.",
        "counter",
        &mut lb_core::neigh::Event::ALL.iter().map(|e| (format!("event=\"{}\"", e.name()), events[*e as usize])),
    );
    put("lbd_tsc_hz", "TSC frequency.", "gauge", &mut stats.iter().map(|s| (w(s), s.tsc_hz)));
    put("lbd_connections", "Tracked connections.", "gauge", &mut stats.iter().map(|s| (w(s), s.conns as u64)));
    put(
        "lbd_conns_created_total",
        "Connections created.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.conns_created)),
    );
    put(
        "lbd_fast_path_packets_total",
        "Packets of established connections forwarded by the fast path.",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.fast_path)),
    );
    put(
        "lbd_stateless_total",
        "New flows forwarded without an entry (table or embryonic cap full).",
        "counter",
        &mut stats.iter().map(|s| (w(s), s.counters.stateless)),
    );
    let sum = |f: &dyn Fn(&lb_dpdk::worker::WorkerStats) -> u64| stats.iter().map(f).sum::<u64>();
    for (metric, help, pick) in [
        ("lbd_service_conns_total", "Connections per service.", 0),
        ("lbd_service_in_packets_total", "Client-to-backend packets per service.", 1),
        ("lbd_service_out_packets_total", "Backend-to-client packets per service.", 2),
    ] {
        let rows: Vec<(String, u64)> = table
            .services()
            .iter()
            .map(|svc| {
                let id = svc.id as usize;
                let v =
                    sum(&|s| s.counters.services.get(id).map_or(0, |c| [c.conns, c.in_packets, c.out_packets][pick]));
                (format!("service=\"{}\"", svc.key), v)
            })
            .collect();
        put(metric, help, "counter", &mut rows.into_iter());
    }
    for (metric, help, pick) in [
        ("lbd_backend_conns_total", "Connections per backend.", 0),
        ("lbd_backend_in_packets_total", "Client-to-backend packets per backend.", 1),
        ("lbd_backend_out_packets_total", "Backend-to-client packets per backend.", 2),
        ("lbd_backend_syn_failures_total", "SYNs a backend refused or left unanswered (passive check).", 3),
    ] {
        let rows: Vec<(String, u64)> = table
            .services()
            .iter()
            .flat_map(|svc| svc.backends.iter().map(move |b| (svc, b)))
            .map(|(svc, b)| {
                let id = b.id as usize;
                let v = sum(&|s| {
                    s.counters
                        .backends
                        .get(id)
                        .map_or(0, |c| [c.conns, c.in_packets, c.out_packets, c.syn_failures][pick])
                });
                (format!("service=\"{}\",backend=\"{}:{}\"", svc.key, to_ip(b.addr, b.v6), b.port), v)
            })
            .collect();
        put(metric, help, "counter", &mut rows.into_iter());
    }
    let label = |svc: &lb_core::service::Service, b: &lb_core::service::Backend| {
        format!("service=\"{}\",backend=\"{}:{}\"", svc.key, to_ip(b.addr, b.v6), b.port)
    };
    put(
        "lbd_service_up",
        "1 while the service has a backend up (the VIP may be announced), else 0.",
        "gauge",
        &mut table.services().iter().map(|svc| (format!("service=\"{}\"", svc.key), u64::from(svc.up))),
    );
    put(
        "lbd_backend_up",
        "1 while the backend takes new connections; 0 when its checks failed or its weight is 0.",
        "gauge",
        &mut table
            .services()
            .iter()
            .flat_map(|svc| svc.backends.iter().map(move |b| (svc, b)))
            .map(|(svc, b)| (label(svc, b), u64::from(b.state == lb_core::health::BackendState::Up))),
    );
    let board = health.lock().map(|b| b.clone()).unwrap_or_default();
    let _ = writeln!(
        o,
        "# HELP lbd_health_check_latency_seconds Duration of the backend's last health check.\n# TYPE lbd_health_check_latency_seconds gauge"
    );
    for svc in table.services() {
        for (b, m) in svc.backends.iter().zip(&svc.model.backends) {
            if let Some(c) = board.get(&lb_core::service::BackendKey::new(svc.key, m)) {
                let _ = writeln!(
                    o,
                    "lbd_health_check_latency_seconds{{{},check=\"{}\",ok=\"{}\"}} {:.6}",
                    label(svc, b),
                    c.kind,
                    c.ok,
                    c.latency_us as f64 / 1e6
                );
            }
        }
    }
    o
}

/// Serves `render` over HTTP on `addr` until the process ends.
pub fn serve(
    addr: &str,
    h: StatsHandle,
    ports: Vec<lb_dpdk::port::Port>,
    health: crate::health::Board,
    sync: Option<std::sync::Arc<crate::sync::SyncCounters>>,
) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("control.metrics: cannot listen on {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("lbd-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut s = stream;
                let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let body = render(&h, &ports, &health, sync.as_deref());
                let _ = write!(
                    s,
                    "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))?;
    Ok(())
}

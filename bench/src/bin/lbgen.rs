//! lbgen: a DPDK packet generator for benchmarking and testing lbd over a port such as
//! `net_memif` (perf.md #2).
//!
//! It builds a few thousand packets once and sends them again and again (each send takes a
//! reference, as pktgen's static mbufs do), patching per send only what makes a flow: client
//! address and port, VIP, and a TSC stamp in the last 4 bytes, with incremental checksums.
//! Flows are visited in order, so with many flows every packet hits a different connection.
//! Everything that comes back is counted, and one packet in 16 gives a latency sample (its stamp
//! survives NAT and tunnels because it sits at the end of the frame). Optional pacing (`--rate`)
//! offers a fixed load; without it the port's back-pressure sets the rate and `refused` counts
//! what the peer could not take. The last line printed is `key=value` pairs for scripts.

// TSC stamps are cut to 32 bits and rates go between f64 and u64 on purpose.
#![allow(clippy::cast_possible_truncation)]

use clap::Parser;
use lb_core::pipeline::Frame;
use lb_core::wire::{EtherType, MacAddr, checksum, ethernet, ipv4, tcp, udp};
use lb_dpdk::eal::{Eal, EalArgs, free_hugepages};
use lb_dpdk::ffi::{self, PortId, QueueId};
use lb_dpdk::mbuf::{Reusable, RxBurst, TxBuffer};
use lb_dpdk::port::{Port, PortConfig};
use lb_dpdk::{BURST, Mbuf};
use std::net::Ipv4Addr;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "DPDK packet generator for lbd benchmarks (many flows, paced or back-pressured, latency sample)")]
struct Args {
    /// DPDK device, e.g. "net_memif0,role=client,socket=/tmp/lb.sock,socket-abstract=no".
    #[arg(long)]
    device: String,
    /// EAL file prefix (unique per DPDK process on the machine).
    #[arg(long, default_value = "lbgen")]
    file_prefix: String,
    /// The core the generator polls on.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Run without hugepages even when some are free (much slower with memif).
    #[arg(long)]
    no_huge: bool,
    /// Distinct flows (client address and port pairs), visited in turn.
    #[arg(long, default_value_t = 1000)]
    flows: u32,
    /// tcp or udp.
    #[arg(long, default_value = "udp")]
    proto: String,
    /// Every TCP packet carries SYN (new connections). Without it the first packet of each flow
    /// carries SYN and the rest ACK (established connections, as the load balancer needs a SYN
    /// before it tracks a TCP connection).
    #[arg(long)]
    syn: bool,
    /// Frame size on the wire, FCS included (64 to 1518).
    #[arg(long, default_value_t = 64)]
    size: u16,
    /// Offered load in Mpps; 0 sends as fast as the port accepts.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// How long to send.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Stop after this many packets were sent (0: no limit).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// VIPs to send to, flows spread over them in turn.
    #[arg(long, value_delimiter = ',', default_value = "10.253.0.0")]
    vip: Vec<Ipv4Addr>,
    /// Destination port of every flow.
    #[arg(long, default_value_t = 1001)]
    port: u16,
    /// First client address; flows take 50,000 ports of each address from there on.
    #[arg(long, default_value = "10.254.0.0")]
    client: Ipv4Addr,
    /// Destination MAC (the load balancer's port).
    #[arg(long, default_value = "00:01:02:03:04:01")]
    dst_mac: String,
    /// Keep receiving this long after the last send (or until nothing arrives for 100 ms).
    #[arg(long, default_value_t = 2.0)]
    drain_seconds: f64,
}

/// Packets prebuilt and reused: few enough to stay in cache; a slot still held by a send is skipped.
const SLOTS: usize = 256;
const PORTS_PER_CLIENT: u32 = 50_000;
const FIRST_CLIENT_PORT: u16 = 10_000;
const SAMPLE_EVERY: u64 = 16;
const MAX_SAMPLES: usize = 1 << 20;

#[derive(Clone, Copy)]
struct Layout {
    l4: usize,
    tcp: bool,
}

fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let b: Vec<u8> = s
        .split(':')
        .map(|x| u8::from_str_radix(x, 16))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("--dst-mac {s}: {e}"))?;
    <[u8; 6]>::try_from(b).map(MacAddr).map_err(|_| format!("--dst-mac {s}: six bytes expected"))
}

/// The template frame (flow 0); per-send patches fix addresses, ports, stamp and checksums.
fn template(a: &Args, src_mac: MacAddr, dst_mac: MacAddr, layout: Layout) -> Vec<u8> {
    let len = usize::from(a.size) - 4;
    let mut b = vec![0u8; len];
    ethernet::emit(&mut b, dst_mac, src_mac, EtherType::IPV4);
    let payload_len = u16::try_from(len - 14 - 20).unwrap_or(0);
    let (src, dst) = (a.client.octets(), a.vip[0].octets());
    let protocol = if layout.tcp { 6 } else { 17 };
    ipv4::emit(
        &mut b[14..],
        &ipv4::Repr { src, dst, protocol, payload_len, ttl: 64, dscp_ecn: 0, ident: 0, dont_frag: true },
    );
    let pseudo = checksum::pseudo_v4(src, dst, protocol, payload_len);
    if layout.tcp {
        let mut t = tcp::Packet::new_unchecked(&mut b[layout.l4..]);
        t.set_src_port(FIRST_CLIENT_PORT);
        t.set_dst_port(a.port);
        t.set_seq(1);
        t.set_header_len(20);
        t.set_flags(if a.syn { tcp::flags::SYN } else { tcp::flags::ACK });
        t.set_window(65535);
        t.fill_checksum(pseudo);
    } else {
        let mut u = udp::Packet::new_unchecked(&mut b[layout.l4..]);
        u.set_src_port(FIRST_CLIENT_PORT);
        u.set_dst_port(a.port);
        u.set_len(payload_len);
        u.fill_checksum(pseudo);
    }
    b
}

/// Rewrites `f` (a copy of the template) into flow `flow` with TCP `flags`, stamped with `stamp`.
#[inline]
fn patch(f: &mut [u8], layout: Layout, client: u32, vips: &[[u8; 4]], flow: u32, flags: u8, stamp: u32) {
    let src = (client + flow / PORTS_PER_CLIENT).to_be_bytes();
    let sport = (FIRST_CLIENT_PORT + u16::try_from(flow % PORTS_PER_CLIENT).unwrap_or(0)).to_be_bytes();
    let dst = vips[flow as usize % vips.len()];
    let len = f.len();
    let l4 = layout.l4;
    let csum_at = l4 + if layout.tcp { 16 } else { 6 };
    let mut check = u16::from_be_bytes([f[csum_at], f[csum_at + 1]]);
    let mut ip_check = u16::from_be_bytes([f[24], f[25]]);
    for (at, new) in [(26, &src[..]), (30, &dst[..])] {
        check = checksum::update_bytes(check, &f[at..at + 4], new);
        ip_check = checksum::update_bytes(ip_check, &f[at..at + 4], new);
        f[at..at + 4].copy_from_slice(new);
    }
    check = checksum::update_bytes(check, &f[l4..l4 + 2], &sport);
    f[l4..l4 + 2].copy_from_slice(&sport);
    // The stamp sits 16-bit aligned in the L4 data: frame lengths are even past the headers.
    let stamp = stamp.to_be_bytes();
    check = checksum::update_bytes(check, &f[len - 4..], &stamp);
    f[len - 4..].copy_from_slice(&stamp);
    if layout.tcp {
        let word = [f[l4 + 12], flags];
        check = checksum::update_bytes(check, &f[l4 + 12..l4 + 14], &word);
        f[l4 + 13] = flags;
    }
    let check = if layout.tcp { check } else { checksum::udp_nonzero(check) };
    f[csum_at..csum_at + 2].copy_from_slice(&check.to_be_bytes());
    f[24..26].copy_from_slice(&ip_check.to_be_bytes());
}

/// The flow `n` places before `flow` in the cycle over `flows`.
fn rewind(flow: u32, n: usize, flows: u32) -> u32 {
    let n = n as u64 % u64::from(flows);
    u32::try_from((u64::from(flow) + u64::from(flows) - n) % u64::from(flows)).unwrap_or(0)
}

#[derive(Default)]
struct Totals {
    attempted: u64,
    sent: u64,
    received: u64,
    received_bytes: u64,
    slot_busy: u64,
}

fn receive(rx: &mut RxBurst, port: PortId, totals: &mut Totals, samples: &mut Vec<u32>) -> usize {
    let n = rx.receive(port, QueueId(0));
    let now = ffi::tsc() as u32;
    for m in rx.frames().iter() {
        totals.received += 1;
        let d = m.data();
        totals.received_bytes += d.len() as u64;
        if totals.received.is_multiple_of(SAMPLE_EVERY)
            && samples.len() < MAX_SAMPLES
            && d.len() >= 60
            && d[12..14] == [8, 0]
        {
            let stamp = u32::from_be_bytes([d[d.len() - 4], d[d.len() - 3], d[d.len() - 2], d[d.len() - 1]]);
            samples.push(now.wrapping_sub(stamp));
        }
    }
    n
}

fn percentile(sorted: &[u32], p: f64, us_per_cycle: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[at]) * us_per_cycle
}

fn run(a: &Args) -> Result<(), String> {
    let tcp = match a.proto.as_str() {
        "tcp" => true,
        "udp" => false,
        p => return Err(format!("--proto {p}: tcp or udp")),
    };
    let layout = Layout { l4: 34, tcp };
    if a.size < 64 || a.size > 1518 || !a.size.is_multiple_of(2) {
        return Err(format!("--size {}: an even frame size from 64 to 1518", a.size));
    }
    if a.flows == 0 || a.vip.is_empty() {
        return Err("--flows and --vip: at least one".into());
    }
    let dst_mac = parse_mac(&a.dst_mac)?;
    let huge = !a.no_huge && free_hugepages() >= 64;
    let eal_args = EalArgs {
        file_prefix: a.file_prefix.clone(),
        cores: vec![a.core],
        vdevs: vec![a.device.clone()],
        no_huge: !huge,
        in_memory: huge,
        memory_mb: Some(if huge { 128 } else { 256 }),
        ..Default::default()
    };
    let eal = Eal::init(&eal_args).map_err(|e| format!("EAL: {e}"))?;
    let pool = ffi::pktmbuf_pool_create("lbgen", 16383, 256, 2048 + 128).map_err(|e| e.to_string())?;
    let port = Port::open(&a.device, &PortConfig { queues: 1, descriptors: 1024, mtu: 1500, promiscuous: true }, &pool)
        .map_err(|e| e.to_string())?;
    // A memif server's socket exists from EAL init, but it refuses its client until the port
    // has started (and a refused DPDK 22.11 client never retries): the peer waits for this line.
    println!("lbgen: {} started", port.name);
    let tpl = template(a, MacAddr(port.mac), dst_mac, layout);
    let mut slots = Vec::with_capacity(SLOTS);
    for _ in 0..SLOTS {
        let mut m = Mbuf::alloc(&pool).ok_or("mbuf pool exhausted")?;
        if !m.set_len(tpl.len()) {
            return Err("mbuf too small for --size".into());
        }
        m.data_mut().copy_from_slice(&tpl);
        slots.push(Reusable::new(m));
    }
    let vips: Vec<[u8; 4]> = a.vip.iter().map(|v| v.octets()).collect();
    let client = u32::from(a.client);
    let hz = ffi::tsc_hz().max(1);
    // Wait for the peer: memif reports link up once both sides are connected.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ffi::link_up(port.id) {
        if std::time::Instant::now() > deadline {
            return Err(format!("{}: link still down after 30 s (is the peer running?)", port.name));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // One side can see the link up before the other has enabled its queues: let it settle.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut rx = RxBurst::default();
    let mut tx = TxBuffer::new(port.id, QueueId(0));
    let mut totals = Totals::default();
    let mut samples: Vec<u32> = Vec::with_capacity(MAX_SAMPLES);
    let rate_per_cycle = a.rate * 1e6 / hz as f64;
    let send_cycles = (a.seconds * hz as f64) as u64;
    let (mut flow, mut slot) = (0u32, 0usize);
    let t0 = ffi::tsc();
    loop {
        let now = ffi::tsc();
        let elapsed = now - t0;
        if elapsed >= send_cycles || (a.count > 0 && totals.sent >= a.count) {
            break;
        }
        let room = if a.rate > 0.0 {
            let due = (elapsed as f64 * rate_per_cycle) as u64;
            due.saturating_sub(totals.attempted).min(BURST as u64) as usize
        } else {
            BURST
        };
        let room = if a.count > 0 { room.min((a.count - totals.sent) as usize) } else { room };
        if room > 0 {
            let stamp = now as u32;
            let (mut built, mut sent) = (0, 0);
            while built < room {
                let s = &mut slots[slot];
                slot = (slot + 1) % SLOTS;
                let Some(f) = s.data_mut() else {
                    totals.slot_busy += 1;
                    break;
                };
                let flags = if a.syn || totals.attempted + (built as u64) < u64::from(a.flows) {
                    tcp::flags::SYN
                } else {
                    tcp::flags::ACK
                };
                patch(f, layout, client, &vips, flow, flags, stamp);
                flow = if flow + 1 == a.flows { 0 } else { flow + 1 };
                if let Some(done) = tx.push(s.share()) {
                    sent += done.sent;
                }
                built += 1;
            }
            sent += tx.flush().sent;
            totals.sent += sent as u64;
            // Unpaced, the port's back-pressure sets the rate: what it refused was never offered,
            // and those flows are sent again next turn.
            if a.rate > 0.0 {
                totals.attempted += built as u64;
            } else {
                totals.attempted = totals.sent;
                flow = rewind(flow, built - sent, a.flows);
            }
        }
        receive(&mut rx, port.id, &mut totals, &mut samples);
    }
    let send_seconds = (ffi::tsc() - t0) as f64 / hz as f64;
    let drain_end = ffi::tsc() + (a.drain_seconds * hz as f64) as u64;
    let mut last_rx = ffi::tsc();
    while ffi::tsc() < drain_end && ffi::tsc() - last_rx < hz / 10 {
        if receive(&mut rx, port.id, &mut totals, &mut samples) > 0 {
            last_rx = ffi::tsc();
        }
    }
    let stats = port.stats().map_err(|e| e.to_string())?;
    samples.sort_unstable();
    let us = 1e6 / hz as f64;
    let mpps = |n: u64| n as f64 / send_seconds / 1e6;
    println!(
        "lbgen: attempted={} sent={} refused={} received={} lost={} seconds={:.3} offered_mpps={:.3} sent_mpps={:.3} \
         received_mpps={:.3} received_gbps={:.3} lat_samples={} lat_p50_us={:.1} lat_p99_us={:.1} lat_max_us={:.1} \
         imissed={} slot_busy={}",
        totals.attempted,
        totals.sent,
        totals.attempted - totals.sent,
        totals.received,
        totals.sent.saturating_sub(totals.received),
        send_seconds,
        mpps(totals.attempted),
        mpps(totals.sent),
        mpps(totals.received),
        (totals.received_bytes + 24 * totals.received) as f64 * 8.0 / send_seconds / 1e9,
        samples.len(),
        percentile(&samples, 0.5, us),
        percentile(&samples, 0.99, us),
        percentile(&samples, 1.0, us),
        stats.imissed,
        totals.slot_busy,
    );
    drop(rx);
    drop(tx);
    drop(slots);
    let _ = port.close();
    ffi::mempool_free(pool);
    let _ = eal.cleanup();
    // EAL leaves its runtime directory behind even with --in-memory.
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", a.file_prefix));
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lbgen: {e}");
            ExitCode::FAILURE
        }
    }
}

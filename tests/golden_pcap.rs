//! Golden pcap test of lbd on real DPDK ports: for each forwarding mode, `tests/golden/<mode>/
//! in.pcap` is replayed through lbd on a `net_pcap` port and what lbd transmits must equal
//! `expected.pcap` frame for frame. The expected files are what lb-core's pipeline produces for
//! the same input on a `VecFrame` (its own fixture table checks it against etherparse); the test
//! first checks that lb-core still produces them, so the committed files cannot drift. After an
//! intended change, rewrite them with `LB_UPDATE_GOLDEN=1 cargo test --test golden_pcap`.

mod common;

use common::{free_port, metric};
use etherparse::PacketBuilder;
use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::{Frame, VecFrame, Verdict};
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::wire::MacAddr;
use lb_core::{NeighTable, Steering, Worker, WorkerConfig, process_burst};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// net_pcap's MAC address for its first port ("pcap" in ASCII).
const LB: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const CLIENT: [u8; 6] = [2, 0, 0, 0, 0xc, 2];
const BACKEND: [u8; 6] = [2, 0, 0, 0, 0xb, 11];
const MODES: [&str; 5] = ["nat", "fnat", "dr", "tun", "gue"];

fn network_toml(device: &str) -> String {
    format!(
        "local_addresses = [\"10.0.0.254\"]\n\
         [[interface]]\nname = \"lan\"\ndevice = \"{device}\"\naddresses = [\"10.0.0.1/24\"]\n\
         [[neighbour]]\naddress = \"10.0.0.2\"\nmac = \"02:00:00:00:0c:02\"\ninterface = \"lan\"\n\
         [[neighbour]]\naddress = \"10.0.0.11\"\nmac = \"02:00:00:00:0b:0b\"\ninterface = \"lan\"\n"
    )
}

fn service_toml(mode: &str) -> String {
    let (proto, port) = if mode == "gue" { ("udp", 53) } else { ("tcp", 80) };
    let bport = if matches!(mode, "nat" | "fnat") { 8080 } else { 0 };
    format!(
        "[[service]]\nvip = \"10.0.0.100\"\nport = {port}\nprotocol = \"{proto}\"\nbackend = [{{ address = \"10.0.0.11\", port = {bport}, mode = \"{mode}\" }}]\n"
    )
}

/// A TCP frame; `(syn, ack)` are the flags set.
fn tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sp: u16,
    dp: u16,
    (syn, ack): (bool, bool),
    payload: &[u8],
    from: [u8; 6],
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(from, LB).ipv4(src, dst, 64).tcp(sp, dp, 1000, 64240);
    let b = if syn { b.syn() } else { b };
    let b = if ack { b.ack(5000) } else { b };
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// The client-side story of one connection (and the backend's reply where it crosses the LB).
fn input(mode: &str) -> Vec<Vec<u8>> {
    let (c, vip) = ([10, 0, 0, 2], [10, 0, 0, 100]);
    let mut v = Vec::new();
    let mut arp = Vec::new();
    PacketBuilder::ethernet2(CLIENT, [0xff; 6])
        .arp(
            etherparse::ArpPacket::new(
                etherparse::ArpHardwareId::ETHERNET,
                etherparse::EtherType::IPV4,
                etherparse::ArpOperation::REQUEST,
                &CLIENT,
                &c,
                &[0; 6],
                &vip,
            )
            .unwrap(),
        )
        .write(&mut arp)
        .unwrap();
    v.push(arp);
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(CLIENT, LB)
        .ipv4(c, vip, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"golden")
        .unwrap();
    v.push(ping);
    if mode == "gue" {
        for q in [&b"query-1"[..], b"query-2"] {
            let mut u = Vec::new();
            PacketBuilder::ethernet2(CLIENT, LB).ipv4(c, vip, 64).udp(5353, 53).write(&mut u, q).unwrap();
            v.push(u);
        }
        let mut bad = v[2].clone();
        bad[14 + 10] ^= 0xff; // IPv4 header checksum: dropped and counted
        v.push(bad);
        return v;
    }
    v.push(tcp(c, vip, 40000, 80, (true, false), b"", CLIENT));
    match mode {
        "nat" => v.push(tcp([10, 0, 0, 11], c, 8080, 40000, (true, true), b"", BACKEND)),
        "fnat" => v.push(tcp([10, 0, 0, 11], [10, 0, 0, 254], 8080, 1024, (true, true), b"", BACKEND)),
        _ => {}
    }
    v.push(tcp(c, vip, 40000, 80, (false, true), b"GET / HTTP/1.0\r\n\r\n", CLIENT));
    let mut bad = tcp(c, vip, 40001, 80, (true, false), b"", CLIENT);
    bad[14 + 10] ^= 0xff; // IPv4 header checksum: dropped and counted
    v.push(bad);
    v
}

/// What lb-core's pipeline transmits for `frames`, one burst per frame as lbd sees a pcap.
fn expected(mode: &str, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let net: NetworkModel = toml::from_str(&network_toml("x")).unwrap();
    let network = Network::build(&net, &[MacAddr(LB)]).unwrap();
    let services: ServicesModel = toml::from_str(&service_toml(mode)).unwrap();
    let table = Table::build(&services, network, Limits::default(), None, 0).unwrap();
    let cfg = WorkerConfig { conn_capacity: 1024, embryonic_limit: 512, ..Default::default() };
    let mut w = Worker::new(
        &cfg,
        Arc::new(NeighTable::new(lb_core::neigh::NeighParams { capacity: 64, ..Default::default() })),
        Steering::Any,
    );
    let mut out = Vec::new();
    for f in frames {
        let mut fs = [VecFrame::new(f, 0)];
        let mut vs = [Verdict::Consumed];
        process_burst(&mut w, &table, &mut fs, &mut vs, 1);
        if let Verdict::Tx(_) = vs[0] {
            out.push(fs[0].data().to_vec());
        }
    }
    out
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut b = Vec::new();
    for w in [
        0xa1b2_c3d4u32.to_le_bytes().as_slice(),
        &2u16.to_le_bytes(),
        &4u16.to_le_bytes(),
        &[0; 8],
        &65535u32.to_le_bytes(),
        &1u32.to_le_bytes(),
    ] {
        b.extend_from_slice(w);
    }
    for f in frames {
        let len = u32::try_from(f.len()).unwrap().to_le_bytes();
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&len);
        b.extend_from_slice(&len);
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).unwrap();
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let micro = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    assert!(micro == 0xa1b2_c3d4 || micro == 0xa1b2_3c4d, "{}: not a little-endian pcap", path.display());
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= b.len() {
        let len = u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]) as usize;
        out.push(b[at + 16..at + 16 + len].to_vec());
        at += 16 + len;
    }
    out
}

fn golden_dir(mode: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(mode)
}

#[test]
fn golden_files_match_lb_core() {
    for mode in MODES {
        let dir = golden_dir(mode);
        let inp = input(mode);
        let exp = expected(mode, &inp);
        if std::env::var_os("LB_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            write_pcap(&dir.join("in.pcap"), &inp);
            write_pcap(&dir.join("expected.pcap"), &exp);
        }
        assert_eq!(read_pcap(&dir.join("in.pcap")), inp, "{mode}: in.pcap is stale");
        assert_eq!(read_pcap(&dir.join("expected.pcap")), exp, "{mode}: expected.pcap differs from lb-core's output");
        assert!(exp.len() >= 4, "{mode}: the story transmits ARP, ping and forwarded packets");
    }
}

/// Runs lbd on a pcap port with `in.pcap`; returns what it transmitted and its stdout.
fn run_lbd(mode: &str, work: &Path) -> (Vec<Vec<u8>>, String) {
    let inp = golden_dir(mode).join("in.pcap");
    let out = work.join("out.pcap");
    let metrics = free_port();
    let device = format!("net_pcap0,rx_pcap={},tx_pcap={}", inp.display(), out.display());
    let config = format!(
        "[eal]\nfile_prefix = \"lbgold{}{mode}\"\nno_huge = true\nmemory_mb = 256\n[workers]\ncores = [1]\nmbufs = 2047\n\
         [conntrack]\ncapacity = 1024\nembryonic_limit = 512\n[control]\nmetrics = \"127.0.0.1:{metrics}\"\nsocket = \"{}\"\n{}{}",
        std::process::id(),
        work.join("lbd.sock").display(),
        network_toml(&device)
            .replace("[[interface]]", "[[network.interface]]")
            .replace("[[neighbour]]", "[[network.neighbour]]")
            .replace("local_addresses", "[network]\nlocal_addresses"),
        service_toml(mode)
    );
    let cfg = work.join("lbd.toml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_lbd"))
        .arg("--config")
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lbd");
    let frames = read_pcap(&inp).len() as u64;
    let start = Instant::now();
    while metric(metrics, "lbd_rx_packets_total") != Some(frames) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{mode}: lbd failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    (read_pcap(&out), stdout)
}

#[test]
fn lbd_on_net_pcap_transmits_the_golden_output() {
    if !Path::new("/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0/librte_net_pcap.so").exists()
        && std::env::var_os("CI").is_none()
    {
        eprintln!("skipping: DPDK's net_pcap driver is not installed (run scripts/install-deps.sh)");
        return;
    }
    for mode in MODES {
        let work = std::env::temp_dir().join(format!("lb-golden-{}-{mode}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let (got, stdout) = run_lbd(mode, &work);
        let want = read_pcap(&golden_dir(mode).join("expected.pcap"));
        assert_eq!(
            got.len(),
            want.len(),
            "{mode}: lbd transmitted {} frames, expected {}\n{stdout}",
            got.len(),
            want.len()
        );
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{mode}: frame {i} differs");
        }
        assert!(stdout.contains("ipv4_bad_checksum=1"), "{mode}: the bad packet is counted: {stdout}");
        let _ = std::fs::remove_dir_all(&work);
    }
}

//! Connection sync's costs (issue 14), each as a ratio to the worker's own per-packet cost in
//! the same run (full-NAT, established flows, the pipeline bench's setup):
//!
//! - bytes on the wire per IPv4 connection (its `Conn` record when established, its `State`
//!   record when it closes, datagram header and MAC shared out);
//! - the worker's cost to emit an event (the first ACK of flows with sync on, minus the same
//!   with sync off), and the per-packet cost of sync being on for established traffic;
//! - the worker's cost to apply a peer's event (`Worker::apply_sync`);
//! - the sync thread's cost per event (seal with HMAC, then open, verify and decode), which
//!   runs off the worker cores.
//!
//! Run: `cargo bench -p lb-bench --bench sync`. Each figure is the best of 3 rounds.

use lb_bench::{BURST, client_packet, frames, refill, shuffled, table, worker};
use lb_core::conntrack::TcpState;
use lb_core::pipeline::Verdict;
use lb_core::sync::{Encoder, SyncEvent, SyncKey, SyncKind, open};
use lb_core::wire::tcp::flags;
use lb_core::{Worker, process_burst};
use std::time::{Duration, Instant};

const FNAT_VIP: u8 = 101;
const ROUNDS: usize = 3;

/// Runs every flow's packet of `packets` once through `w`, in `order`; returns the time spent in
/// `process_burst` only.
fn pass(w: &mut Worker, t: &lb_core::Table, packets: &[Vec<u8>], order: &[u32], now_ms: u64) -> Duration {
    let mut fs = frames();
    let mut vs = [Verdict::Consumed; BURST];
    let mut at = 0;
    let mut spent = Duration::ZERO;
    for _ in 0..order.len() / BURST {
        refill(&mut fs, packets, order, &mut at);
        let t0 = Instant::now();
        process_burst(w, t, &mut fs, &mut vs, now_ms);
        spent += t0.elapsed();
        assert!(vs.iter().all(|v| matches!(v, Verdict::Tx(_))), "every packet is forwarded: {vs:?}");
    }
    spent
}

fn ns(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e9 / n as f64
}

fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..ROUNDS).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let t = table();
    let key = SyncKey::new(b"bench key of the cluster").expect("key");
    for flows in [1_000u32, 1_000_000] {
        let n = flows as usize;
        let order = shuffled(flows, 7);
        let syns: Vec<Vec<u8>> = (0..flows).map(|i| client_packet(i, FNAT_VIP, flags::SYN)).collect();
        let acks: Vec<Vec<u8>> = (0..flows).map(|i| client_packet(i, FNAT_VIP, flags::ACK)).collect();
        // A worker whose flows saw their SYN (embryonic), with sync on or off.
        let opened = |sync: bool| {
            let mut w = worker(n);
            w.set_sync(sync);
            pass(&mut w, &t, &syns, &order, 1);
            w
        };
        let mut events: Vec<SyncEvent> = Vec::with_capacity(n);
        // The first ACK establishes each flow: with sync on, each emits one event.
        let first_ack = |sync: bool, keep: &mut Vec<SyncEvent>| {
            let mut w = opened(sync);
            let mut fs = frames();
            let mut vs = [Verdict::Consumed; BURST];
            let mut at = 0;
            let mut spent = Duration::ZERO;
            for _ in 0..n / BURST {
                refill(&mut fs, &acks, &order, &mut at);
                let t0 = Instant::now();
                process_burst(&mut w, &t, &mut fs, &mut vs, 2);
                // The runtime takes the burst's events after it (a ring push each).
                keep.extend(w.take_sync_events());
                spent += t0.elapsed();
            }
            (ns(spent, n / BURST * BURST), w)
        };
        let off = best(|| first_ack(false, &mut Vec::new()).0);
        let on = best(|| {
            events.clear();
            first_ack(true, &mut events).0
        });
        assert_eq!(events.len(), n / BURST * BURST, "one event per established flow");
        // Established traffic, the reference: sync off, then on (a refresh check per packet).
        let (_, mut w_off) = first_ack(false, &mut Vec::new());
        let (_, mut w_on) = first_ack(true, &mut Vec::new());
        let per_packet = best(|| ns(pass(&mut w_off, &t, &acks, &order, 3), n / BURST * BURST));
        let per_packet_on = best(|| ns(pass(&mut w_on, &t, &acks, &order, 3), n / BURST * BURST));
        // A peer applies them.
        let apply = best(|| {
            let mut peer = worker(n);
            peer.set_sync(true);
            let t0 = Instant::now();
            for ev in &events {
                peer.apply_sync(&t, ev, 10);
            }
            let spent = t0.elapsed();
            assert_eq!(peer.counters.sync_applied, events.len() as u64, "every event applies");
            ns(spent, events.len())
        });
        // The wire: every connection opens, then closes.
        let closes: Vec<SyncEvent> = events
            .iter()
            .map(|e| SyncEvent {
                kind: SyncKind::State,
                conn: lb_core::conntrack::Conn { state: TcpState::TimeWait, ..e.conn },
                ttl_ms: 120_000,
            })
            .collect();
        let mut bytes = 0usize;
        let mut datagrams = 0usize;
        let mut decoded = Vec::with_capacity(64);
        let wire = best(|| {
            bytes = 0;
            datagrams = 0;
            let mut e = Encoder::new(1);
            let t0 = Instant::now();
            let mut ship = |e: &mut Encoder, bytes: &mut usize| {
                let d = e.seal(&key, 5);
                *bytes += d.len();
                datagrams += 1;
                decoded.clear();
                open(d, &key).and_then(|g| g.records(&mut decoded)).expect("own datagram");
            };
            for ev in events.iter().chain(&closes) {
                if !e.push(ev) {
                    ship(&mut e, &mut bytes);
                    e.push(ev);
                }
            }
            ship(&mut e, &mut bytes);
            ns(t0.elapsed(), events.len() + closes.len())
        });
        let r = |x: f64| x / per_packet;
        println!("sync/{flows}_flows (fnat, IPv4):");
        println!("  worker per packet, established (reference)   {per_packet:8.1} ns");
        println!("  ... with sync on (refresh check)              {per_packet_on:8.1} ns   {:5.2}x", r(per_packet_on));
        println!(
            "  emit one event (first ACK, sync on - off)     {:8.1} ns   {:5.2}x   ({on:.1} - {off:.1})",
            on - off,
            r(on - off)
        );
        println!("  apply a peer's event                          {apply:8.1} ns   {:5.2}x", r(apply));
        println!(
            "  sync thread: seal+open+decode per event       {wire:8.1} ns   {:5.2}x   (off the worker cores)",
            r(wire)
        );
        // On the wire a datagram also costs Ethernet (14 + FCS 4 + preamble and gap 20), IPv4
        // (20) and UDP (8) headers: 66 bytes.
        let per_conn = bytes as f64 / events.len() as f64;
        let on_wire = (bytes + datagrams * 66) as f64 / events.len() as f64;
        println!(
            "  bytes per connection (open + close)           {per_conn:8.1} B    UDP payload; {on_wire:.1} B on the wire ({datagrams} datagrams)"
        );
        println!(
            "  1M new connections/s -> {:.0} Mbit/s of sync to each peer ({:.1}% of 10 GbE)",
            on_wire * 8.0,
            on_wire * 8.0 / 100.0
        );
    }
}

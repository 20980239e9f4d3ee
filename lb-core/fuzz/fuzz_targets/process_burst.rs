//! Fuzzes `process_burst` on the fixture lab: the input is a port byte followed by frames, each
//! prefixed by a big-endian u16 length (a short tail is one last frame). Any panic is a bug: a
//! malformed packet must become a drop reason.
#![no_main]

use lb_core::net::{Network, NetworkModel};
use lb_core::pipeline::{VecFrame, Verdict};
use lb_core::service::{Limits, ServicesModel, Table};
use lb_core::wire::MacAddr;
use lb_core::{NeighTable, Steering, Worker, WorkerConfig, process_burst};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        let net: NetworkModel = toml::from_str(include_str!("../../tests/data/network.toml")).unwrap();
        let network = Network::build(&net, &[MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])]).unwrap();
        let services: ServicesModel = toml::from_str(include_str!("../../tests/data/services.toml")).unwrap();
        Table::build(&services, network, Limits::default(), None, 0).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&port, mut rest)) = data.split_first() else { return };
    let cfg = WorkerConfig { conn_capacity: 256, embryonic_limit: 128, max_services: 64, max_backends: 64, persist_capacity: 64, frag_capacity: 16, ..Default::default() };
    let mut w = Worker::new(&cfg, Arc::new(NeighTable::new(lb_core::neigh::NeighParams { capacity: 64, ..Default::default() })), Steering::Any);
    let mut frames = Vec::new();
    while !rest.is_empty() && frames.len() < 32 {
        let prefixed = (rest.len() >= 2).then(|| usize::from(u16::from_be_bytes([rest[0], rest[1]])));
        let frame = if let Some(len) = prefixed.filter(|len| *len <= rest.len() - 2) {
            let f = &rest[2..2 + len];
            rest = &rest[2 + len..];
            f
        } else {
            std::mem::take(&mut rest)
        };
        frames.push(VecFrame::new(frame, u16::from(port % 3)));
    }
    let mut verdicts = vec![Verdict::Consumed; frames.len()];
    // Twice, so the second pass meets the connections and neighbours the first created.
    process_burst(&mut w, table(), &mut frames.clone(), &mut verdicts, 1_000);
    process_burst(&mut w, table(), &mut frames, &mut verdicts, 2_000);
});

//! lb-core: everything the load balancer decides about a packet, in pure Rust.
//!
//! No DPDK and no `unsafe`: the DPDK runtime (lb-dpdk) hands the very same code mbuf memory
//! through the [`Frame`] trait, and `cargo test` runs it on `Vec<u8>`.
//! Layers, bottom up: [`wire`] (zero-copy views), [`flow`] (keys and hashes), [`sched`]
//! (backend choice), [`conntrack`] (per-worker state), [`rewrite`] (one function per
//! operation), [`service`] and [`net`] (the immutable table the control plane publishes),
//! [`pipeline`] (`process_burst`).
#![forbid(unsafe_code)]

pub mod conntrack;
pub mod flow;
pub mod frag;
pub mod frame;
pub mod health;
pub mod lport;
pub mod model_error;
pub mod neigh;
pub mod net;
pub mod persist;
pub mod pipeline;
pub mod prefetch;
pub mod ratelimit;
pub mod rewrite;
pub mod sched;
pub mod service;
pub mod sync;
pub mod wire;

pub use conntrack::{ConnTable, Timeouts};
pub use flow::{FlowKey, Toeplitz};
pub use lport::Steering;
pub use neigh::NeighTable;
pub use net::{Network, NetworkModel};
pub use pipeline::{DropReason, Frame, VecFrame, Verdict, Worker, WorkerConfig, process_burst, process_burst_with};
pub use prefetch::{NoPrefetch, Prefetch};
pub use service::{Mode, ServicesModel, Table};

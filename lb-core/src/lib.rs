//! lb-core: everything the load balancer decides about a packet, in pure Rust.
//!
//! No DPDK and no `unsafe`: the DPDK runtime (lb-dpdk) hands the very same code mbuf memory
//! through the [`Frame`](pipeline::Frame) trait, and `cargo test` runs it on `Vec<u8>`.
//! Layers, bottom up: [`wire`] (zero-copy views), [`flow`] (keys and hashes), [`sched`]
//! (backend choice), [`conntrack`] (per-worker state), [`rewrite`] (one function per forwarding
//! mode), [`service`] (the immutable table the control plane publishes), [`pipeline`]
//! (`process_burst`).
#![forbid(unsafe_code)]

pub mod flow;
pub mod sched;
pub mod wire;

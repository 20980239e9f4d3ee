//! lb-dpdk: the load balancer on real DPDK ports.
//!
//! `sys` is bindgen's output; `ffi` (one safe function per DPDK call), `mbuf` (owning packet
//! buffers and burst arrays), `hugealloc` (the global allocator that asks for huge pages) and
//! `prefetch` (the CPU's prefetch instruction for lb-core) are the only modules with `unsafe`,
//! each block with its
//! `// SAFETY:` reason. On top: `eal` (initialise once, from an argument builder), `port`
//! (queues, MTU, MAC, RSS), `worker` (the pinned poll loop around lb-core's `process_burst_with`)
//! and `runtime` (threads, table publication, stop).
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod ffi;
#[allow(unsafe_code)]
pub mod hugealloc;
#[allow(unsafe_code)]
pub mod mbuf;
#[allow(unsafe_code)]
pub mod prefetch;
#[allow(unsafe_code)]
mod sys;

pub mod eal;
pub mod exception;
pub mod port;
pub mod runtime;
pub mod steer;
pub mod worker;

pub use ffi::{DpdkError, PortId, QueueId};
pub use mbuf::{BURST, Mbuf};

//! The virtual service table: a serde model (what `configs/*.toml`, `lbctl save` and
//! `lbctl restore` read and write) and the immutable snapshot the control plane builds from it
//! and publishes to the workers. Building validates everything and computes every scheduler
//! plan (Maglev tables included); an invalid model is refused with a message that names the
//! offending field, and nothing else changes.
//!
//! Services and backends carry ids that stay the same across snapshots (the previous table is
//! consulted), so per-worker counters, scheduler cursors and connection-to-backend links survive
//! table updates.

pub mod model;
mod table;

pub use model::*;
pub use table::*;

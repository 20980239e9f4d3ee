//! Backend schedulers, one file each, with IPVS's semantics: `rr`, `wrr`, `lc`, `wlc`, `sh`,
//! and `mh` (Maglev hashing, NSDI'16). The control plane prepares a [`Plan`] per service
//! (weights' gcd, the source-hash table, the Maglev table); the data plane only indexes it.
//! Stateful schedulers keep a per-worker [`Cursor`] (rr/wrr) or per-worker [`Load`] counts
//! (lc/wlc): workers never share scheduler state, as DPVS does per lcore.
//! A backend of weight 0 is drained: no scheduler picks it.

pub mod lc;
pub mod mh;
pub mod rr;
pub mod sh;
pub mod wlc;
pub mod wrr;

use serde::{Deserialize, Serialize};

/// Scheduler names as ipvsadm spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Rr,
    #[default]
    Wrr,
    Lc,
    Wlc,
    Sh,
    Mh,
}

impl Kind {
    /// The ipvsadm name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rr => "rr",
            Kind::Wrr => "wrr",
            Kind::Lc => "lc",
            Kind::Wlc => "wlc",
            Kind::Sh => "sh",
            Kind::Mh => "mh",
        }
    }

    /// True when the choice depends only on the packet (a stateless fallback is consistent).
    pub fn is_hashing(self) -> bool {
        matches!(self, Kind::Sh | Kind::Mh)
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "rr" => Kind::Rr,
            "wrr" => Kind::Wrr,
            "lc" => Kind::Lc,
            "wlc" => Kind::Wlc,
            "sh" => Kind::Sh,
            "mh" => Kind::Mh,
            other => return Err(format!("unknown scheduler '{other}' (expected rr, wrr, lc, wlc, sh or mh)")),
        })
    }
}

/// Connections a worker holds to one backend, as IPVS counts them: established ones are active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub active: u32,
    pub inactive: u32,
}

impl Load {
    /// IPVS's overhead estimate: active connections weigh 256 times an inactive one.
    pub fn overhead(self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }
}

/// What the control plane precomputes for a service's scheduler.
#[derive(Debug, Clone)]
pub enum Plan {
    Rr,
    Wrr(wrr::Params),
    Lc,
    Wlc,
    Sh(sh::Table),
    Mh(mh::MaglevTable),
}

impl Plan {
    /// Prepares `kind` for backends of `weights` whose identities are `ids` (for Maglev).
    pub fn build(kind: Kind, weights: &[u32], ids: &[u64], maglev_size: u32, seed: u64) -> Result<Plan, String> {
        Ok(match kind {
            Kind::Rr => Plan::Rr,
            Kind::Wrr => Plan::Wrr(wrr::Params::new(weights)),
            Kind::Lc => Plan::Lc,
            Kind::Wlc => Plan::Wlc,
            Kind::Sh => Plan::Sh(sh::Table::build(weights, sh::DEFAULT_SIZE)),
            Kind::Mh => Plan::Mh(mh::MaglevTable::build(ids, weights, maglev_size, seed)?),
        })
    }
}

/// Per-worker, per-service scheduler position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub index: u32,
    pub current_weight: i64,
}

/// Picks a backend index. `load(i)` gives the worker's counts for backend `i`; `src_hash` is the
/// hash of the client address (and port, when the service hashes ports).
pub fn pick(
    plan: &Plan,
    weights: &[u32],
    cursor: &mut Cursor,
    load: impl Fn(usize) -> Load,
    src_hash: u64,
) -> Option<usize> {
    match plan {
        Plan::Rr => rr::pick(weights, cursor),
        Plan::Wrr(p) => wrr::pick(weights, p, cursor),
        Plan::Lc => lc::pick(weights, load),
        Plan::Wlc => wlc::pick(weights, load),
        Plan::Sh(t) => t.lookup(src_hash),
        Plan::Mh(t) => t.lookup(src_hash),
    }
}

/// Greatest common divisor of the non-zero weights (0 when all are zero).
pub fn gcd_of(weights: &[u32]) -> u32 {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    weights.iter().copied().filter(|w| *w > 0).fold(0, gcd)
}

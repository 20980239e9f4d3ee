//! Backend schedulers, one file each, with IPVS's semantics (`net/netfilter/ipvs/ip_vs_*.c`):
//! `rr`, `wrr`, `lc`, `wlc`, `sed`, `nq`, `fo`, `ovf`, `lblc`, `lblcr`, `dh`, `sh`, and `mh`
//! (Maglev hashing, NSDI'16, with a seed so that every node of a cluster agrees). The control
//! plane prepares a [`Plan`] per service (weights' gcd, the hash tables, the Maglev table); the
//! data plane only indexes it. Stateful schedulers keep a per-worker [`Cursor`] (rr/wrr's
//! position, lblc/lblcr's cache) and per-worker [`Load`] counts: workers never share scheduler
//! state, as DPVS does per lcore.
//!
//! A backend is available when its weight is not 0 and it is not overloaded (its upper
//! connection threshold was reached, `Load::overloaded`); no scheduler picks another, except
//! that lblc, lblcr, dh, sh and mh follow IPVS in their own ways (see each file).

pub mod dh;
pub mod fo;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod wlc;
pub mod wrr;

use serde::{Deserialize, Serialize};

/// Scheduler names as ipvsadm spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Rr,
    Wrr,
    Lc,
    /// ipvsadm's default.
    #[default]
    Wlc,
    Sed,
    Nq,
    Fo,
    Ovf,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Mh,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Rr,
        Kind::Wrr,
        Kind::Lc,
        Kind::Wlc,
        Kind::Sed,
        Kind::Nq,
        Kind::Fo,
        Kind::Ovf,
        Kind::Lblc,
        Kind::Lblcr,
        Kind::Dh,
        Kind::Sh,
        Kind::Mh,
    ];

    /// The ipvsadm name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Rr => "rr",
            Kind::Wrr => "wrr",
            Kind::Lc => "lc",
            Kind::Wlc => "wlc",
            Kind::Sed => "sed",
            Kind::Nq => "nq",
            Kind::Fo => "fo",
            Kind::Ovf => "ovf",
            Kind::Lblc => "lblc",
            Kind::Lblcr => "lblcr",
            Kind::Dh => "dh",
            Kind::Sh => "sh",
            Kind::Mh => "mh",
        }
    }

    /// True when the choice depends only on the packet (a stateless fallback is consistent,
    /// and another node picks the same backend for a mid-flow packet).
    pub fn is_hashing(self) -> bool {
        matches!(self, Kind::Sh | Kind::Mh | Kind::Dh)
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!("unknown scheduler '{s}' (expected one of {})", names.join(", "))
        })
    }
}

/// Connections a worker holds to one backend, as IPVS counts them (established ones are
/// active), and the backend's overload state under its connection thresholds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    pub active: u32,
    pub inactive: u32,
    /// Set when the connections reach `upper`, cleared when they fall below `lower` (or
    /// three quarters of `upper`): IPVS's IP_VS_DEST_F_OVERLOAD.
    pub overloaded: bool,
    /// This worker's share of the backend's thresholds (ipvsadm -x, -y); 0 for none.
    pub upper: u32,
    pub lower: u32,
}

impl Load {
    /// IPVS's overhead estimate: active connections weigh 256 times an inactive one.
    pub fn overhead(self) -> u64 {
        (u64::from(self.active) << 8) + u64::from(self.inactive)
    }

    /// All connections (`ip_vs_dest_totalconns`).
    pub fn total(self) -> u32 {
        self.active.saturating_add(self.inactive)
    }

    /// After a connection was added (`ip_vs_bind_dest`).
    pub fn bound(&mut self) {
        if self.upper != 0 && self.total() >= self.upper {
            self.overloaded = true;
        }
    }

    /// After a connection was taken away (`ip_vs_unbind_dest`).
    pub fn unbound(&mut self) {
        let below = if self.lower != 0 {
            self.total() < self.lower
        } else if self.upper != 0 {
            u64::from(self.total()) * 4 < u64::from(self.upper) * 3
        } else {
            true
        };
        if below {
            self.overloaded = false;
        }
    }

    /// New thresholds (a new table): the state is what the counts say now.
    pub fn set_thresholds(&mut self, upper: u32, lower: u32) {
        self.upper = upper;
        self.lower = lower;
        self.overloaded = upper != 0 && self.total() >= upper;
    }
}

/// What the control plane precomputes for a service's scheduler.
#[derive(Debug, Clone)]
pub enum Plan {
    Rr,
    Wrr(wrr::Params),
    Lc,
    Wlc,
    Sed,
    Nq,
    Fo,
    Ovf,
    Lblc,
    Lblcr,
    Dh(dh::Table),
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
            Kind::Sed => Plan::Sed,
            Kind::Nq => Plan::Nq,
            Kind::Fo => Plan::Fo,
            Kind::Ovf => Plan::Ovf,
            Kind::Lblc => Plan::Lblc,
            Kind::Lblcr => Plan::Lblcr,
            Kind::Dh => Plan::Dh(dh::Table::build(weights.len())),
            Kind::Sh => Plan::Sh(sh::Table::build(weights)),
            Kind::Mh => Plan::Mh(mh::MaglevTable::build(ids, weights, maglev_size, seed)?),
        })
    }
}

/// Most backends lblcr's per-worker set of a destination holds.
pub const LBLCR_SET: usize = 16;

/// Per-worker, per-service scheduler state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// rr and wrr: the position.
    pub index: u32,
    pub current_weight: i64,
    /// lblc: the backend the service's destination is cached on, plus one (0: none).
    pub cached: u16,
    /// lblcr: the destination's set of backends, newest first, and when it last changed.
    pub set: [u16; LBLCR_SET],
    pub set_len: u8,
    pub set_changed_ms: u64,
}

/// What a scheduler may look at about the new connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Client {
    /// Source and destination addresses (IPv4 in the first four bytes).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub v6: bool,
    /// The source port when the service hashes ports (sh-port, mh-port), else 0.
    pub port: u16,
    /// mh's hash of the source (and port).
    pub hash: u64,
    /// sh-fallback, mh-fallback.
    pub fallback: bool,
    pub now_ms: u64,
}

/// Whether backend `i` can take a new connection: weight not 0, not overloaded.
#[inline]
pub fn available(weights: &[u32], load: &impl Fn(usize) -> Load, i: usize) -> bool {
    weights.get(i).is_some_and(|w| *w > 0) && !load(i).overloaded
}

/// Picks a backend index for a new connection of `client`. `load(i)` gives the worker's
/// counts for backend `i`.
pub fn pick(
    plan: &Plan,
    weights: &[u32],
    cursor: &mut Cursor,
    load: impl Fn(usize) -> Load,
    client: &Client,
) -> Option<usize> {
    match plan {
        Plan::Rr => rr::pick(weights, &load, cursor),
        Plan::Wrr(p) => wrr::pick(weights, &load, p, cursor),
        Plan::Lc => lc::pick(weights, &load),
        Plan::Wlc => wlc::pick(weights, &load),
        Plan::Sed => sed::pick(weights, &load),
        Plan::Nq => nq::pick(weights, &load),
        Plan::Fo => fo::pick(weights, &load),
        Plan::Ovf => ovf::pick(weights, &load),
        Plan::Lblc => lblc::pick(weights, &load, cursor),
        Plan::Lblcr => lblcr::pick(weights, &load, cursor, client.now_ms),
        Plan::Dh(t) => t.pick(weights, &load, client),
        Plan::Sh(t) => t.pick(weights, &load, client),
        Plan::Mh(t) => t.pick(weights, &load, client),
    }
}

/// Greatest common divisor of the non-zero weights (0 when all are zero).
pub fn gcd_of(weights: &[u32]) -> u32 {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    weights.iter().copied().filter(|w| *w > 0).fold(0, gcd)
}

/// The kernel's `hash_32` (include/linux/hash.h): multiply by the golden ratio, keep the top
/// `bits` bits.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(0x61C8_8647) >> (32 - bits)
}

/// An address folded to 32 bits as IPVS's dh and sh fold it (IPv6: the XOR of its four words),
/// in host order.
pub fn fold(addr: &[u8; 16], v6: bool) -> u32 {
    let word = |i: usize| u32::from_be_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    if v6 { word(0) ^ word(4) ^ word(8) ^ word(12) } else { word(0) }
}

/// The available backend of the highest weight among those `room` lets in, the first on ties
/// (fo and ovf: `w > atomic_read(&h->weight)`).
pub(crate) fn heaviest(weights: &[u32], load: &impl Fn(usize) -> Load, room: impl Fn(usize) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    for i in (0..weights.len()).filter(|i| available(weights, load, *i) && room(*i)) {
        if best.is_none_or(|b| weights[i] > weights[b]) {
            best = Some(i);
        }
    }
    best
}

/// The weighted least-overhead available backend among `candidates`: `overhead(i) / weight`
/// smallest, the first on ties (IPVS compares `loh * w > doh * lw`).
pub(crate) fn least_weighted(
    weights: &[u32],
    load: &impl Fn(usize) -> Load,
    candidates: impl Iterator<Item = usize>,
    overhead: impl Fn(Load) -> u64,
) -> Option<usize> {
    let mut best: Option<(usize, u64, u64)> = None;
    for i in candidates {
        if !available(weights, load, i) {
            continue;
        }
        let (oh, w) = (overhead(load(i)), u64::from(weights[i]));
        match best {
            Some((_, boh, bw)) if u128::from(boh) * u128::from(w) <= u128::from(oh) * u128::from(bw) => {}
            _ => best = Some((i, oh, w)),
        }
    }
    best.map(|(i, _, _)| i)
}

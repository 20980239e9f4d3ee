//! The immutable snapshot the control plane builds from the model and publishes to the
//! workers: validation, ids that stay across snapshots, and every scheduler plan.

use super::model::*;
use crate::flow::{from_ip, hash_bytes};
use crate::health::BackendState;
use crate::net::Network;
use crate::sched::{self, Kind, Plan};
use hashbrown::HashMap;
/// A backend in a built table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// Stable id, the index of this backend's per-worker counters and load.
    pub id: u32,
    pub addr: [u8; 16],
    pub v6: bool,
    pub port: u16,
    pub weight: u32,
    pub mode: Mode,
    pub tunnel_port: u16,
    pub state: BackendState,
    /// The service's sorry server, in the list only while no other backend is up.
    pub sorry: bool,
    /// Connection thresholds (ipvsadm -x, -y); 0 for none.
    pub upper_threshold: u32,
    pub lower_threshold: u32,
    /// gue, gre: checksummed tunnel (ipvsadm --tun-csum).
    pub tunnel_checksum: bool,
}

impl Backend {
    /// Whether this is the backend at `addr`, `port` (how backends are told apart across
    /// tables and processes; ids are a table's own).
    pub fn is_at(&self, addr: [u8; 16], v6: bool, port: u16) -> bool {
        self.addr == addr && self.v6 == v6 && self.port == port
    }
}

/// A service in a built table.
#[derive(Debug, Clone)]
pub struct Service {
    /// Stable id, the index of this service's per-worker counters and cursor.
    pub id: u32,
    pub key: ServiceKey,
    pub kind: Kind,
    pub plan: Plan,
    pub backends: Vec<Backend>,
    pub weights: Vec<u32>,
    pub persistence_ms: u64,
    /// Persistence granularity: the client address under this mask (ipvsadm -M).
    pub persistence_mask: [u8; 16],
    pub hash_ports: bool,
    /// sh-fallback, mh-fallback.
    pub fallback: bool,
    /// One-packet scheduling (ipvsadm -o): no connection kept.
    pub one_packet: bool,
    pub synproxy: bool,
    /// False when no backend is up (health checks failed them, or every weight is 0): the
    /// signal to withdraw the VIP. The sorry server, if any, serves meanwhile.
    pub up: bool,
    pub model: ServiceModel,
}

/// Limits fixed when lbd starts (per-worker arrays are sized by them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_services: u32,
    pub max_backends: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_services: 16384, max_backends: 65536 }
    }
}

/// An immutable, validated snapshot of every service and of the network the LB sits on.
#[derive(Debug, Clone)]
pub struct Table {
    pub generation: u64,
    pub network: Network,
    pub limits: Limits,
    services: Vec<Service>,
    by_key: HashMap<ServiceKey, u32>,
    vips: HashMap<([u8; 16], bool), u32>,
    /// NAT backend (address, family, port, protocol) to its service, `u32::MAX` when the backend
    /// serves several (then a reply without an entry cannot be un-NATed).
    nat_reverse: HashMap<([u8; 16], bool, u16, u8), u32>,
    seed: u64,
    /// Bit per backend id: down, in a service that resets a down backend's connections.
    expire_down: Vec<u64>,
    /// Per backend id, its address and the route to it, computed once here so that a packet
    /// toward a backend indexes instead of searching the prefixes.
    backend_routes: Vec<BackendRoute>,
}

#[derive(Debug, Clone, Copy, Default)]
struct BackendRoute {
    addr: [u8; 16],
    v6: bool,
    /// Output port and next hop; `None` when no prefix or gateway reaches the backend.
    via: Option<(u16, [u8; 16])>,
}

/// Every backend's route, indexed by backend id.
fn backend_routes(services: &[Service], network: &Network) -> Vec<BackendRoute> {
    let backends = || services.iter().flat_map(|s| &s.backends);
    let len = backends().map(|b| b.id as usize + 1).max().unwrap_or(0);
    let mut routes = vec![BackendRoute::default(); len];
    for b in backends() {
        routes[b.id as usize] = BackendRoute { addr: b.addr, v6: b.v6, via: network.route(&b.addr, b.v6) };
    }
    routes
}

/// Identity of a backend for Maglev: its address and port, so every node agrees.
pub fn backend_identity(addr: [u8; 16], v6: bool, port: u16) -> u64 {
    let mut b = [0u8; 19];
    b[..16].copy_from_slice(&addr);
    b[16] = u8::from(v6);
    b[17..].copy_from_slice(&port.to_be_bytes());
    hash_bytes(&b, 0x6d61_676c_6576)
}

struct IdAllocator {
    used: Vec<bool>,
    what: &'static str,
}

impl IdAllocator {
    fn new(limit: u32, what: &'static str) -> Self {
        IdAllocator { used: vec![false; limit as usize], what }
    }
    fn claim(&mut self, preferred: Option<u32>) -> Result<u32, ModelError> {
        if let Some(id) = preferred.filter(|id| self.used.get(*id as usize) == Some(&false)) {
            self.used[id as usize] = true;
            return Ok(id);
        }
        let free = self
            .used
            .iter()
            .position(|u| !u)
            .ok_or_else(|| ModelError(format!("more {}s than the limit of {}", self.what, self.used.len())))?;
        self.used[free] = true;
        Ok(u32::try_from(free).unwrap_or(0))
    }
}

/// Validates backend `bm` of service `sm` and gives it its id (the previous table's, when it
/// was there); `bat` names a field of it in messages.
#[allow(clippy::too_many_arguments)]
fn backend_of(
    sm: &ServiceModel,
    key: ServiceKey,
    bm: &BackendModel,
    bat: &dyn Fn(&str) -> String,
    network: &Network,
    backends: &[Backend],
    prev: Option<&Service>,
    backend_ids: &mut IdAllocator,
) -> Result<Backend, ModelError> {
    let (addr, v6) = from_ip(bm.address);
    if bm.address.is_unspecified() || bm.address.is_multicast() {
        return Err(ModelError(format!("{}: not a unicast address", bat("address"))));
    }
    if bm.weight > MAX_WEIGHT {
        return Err(ModelError(format!("{}: {} exceeds {MAX_WEIGHT}", bat("weight"), bm.weight)));
    }
    let same_family = v6 == key.v6;
    if matches!(bm.mode, Mode::Nat | Mode::Fnat | Mode::Dr) && !same_family {
        return Err(ModelError(format!("{}: {} cannot change the address family", bat("mode"), bm.mode.name())));
    }
    let port = if bm.port == 0 { sm.port } else { bm.port };
    if !bm.mode.sees_replies() && port != sm.port {
        return Err(ModelError(format!(
            "{}: {} cannot change the port ({} -> {port})",
            bat("port"),
            bm.mode.name(),
            sm.port
        )));
    }
    if sm.port == 0 && port != 0 {
        return Err(ModelError(format!("{}: a port-zero service forwards every port unchanged", bat("port"))));
    }
    if bm.mode == Mode::Fnat && network.local_addresses(v6).is_empty() {
        return Err(ModelError(format!(
            "{}: fnat needs a local address of the backend's family (network.local_addresses)",
            bat("mode")
        )));
    }
    if sm.synproxy && !bm.mode.sees_replies() {
        return Err(ModelError(format!(
            "{}: synproxy translates sequence numbers in both directions, so it needs nat or fnat backends, not {}",
            bat("mode"),
            bm.mode.name()
        )));
    }
    if bm.gue_port.is_some() && bm.mode != Mode::Gue {
        return Err(ModelError(format!("{}: only gue backends take a gue_port", bat("gue_port"))));
    }
    let tunnel_port = match bm.mode {
        Mode::Gue => bm.gue_port.unwrap_or(DEFAULT_GUE_PORT),
        _ => 0,
    };
    if bm.mode == Mode::Gue && tunnel_port == 0 {
        return Err(ModelError(format!("{}: must not be 0", bat("gue_port"))));
    }
    if backends.iter().any(|b| b.is_at(addr, v6, port)) {
        return Err(ModelError(format!("{}: duplicate backend", bat("address"))));
    }
    if bm.tunnel_checksum && !matches!(bm.mode, Mode::Gue | Mode::Gre) {
        return Err(ModelError(format!(
            "{}: only gue and gre tunnels carry a checksum, not {}",
            bat("tunnel_checksum"),
            bm.mode.name()
        )));
    }
    if bm.lower_threshold > bm.upper_threshold {
        return Err(ModelError(format!(
            "{}: {} is above the upper threshold {} (IPVS refuses it too)",
            bat("lower_threshold"),
            bm.lower_threshold,
            bm.upper_threshold
        )));
    }
    let prev_id = prev.and_then(|p| p.backends.iter().find(|b| b.is_at(addr, v6, port))).map(|b| b.id);
    let id = backend_ids.claim(prev_id)?;
    let state = if bm.weight == 0 { BackendState::Draining } else { BackendState::Up };
    Ok(Backend {
        id,
        addr,
        v6,
        port,
        weight: bm.weight,
        mode: bm.mode,
        tunnel_port,
        state,
        sorry: false,
        upper_threshold: bm.upper_threshold,
        lower_threshold: bm.lower_threshold,
        tunnel_checksum: bm.tunnel_checksum,
    })
}

/// The mask of a prefix of `len` bits (IPv4 in the first four bytes).
fn prefix_mask(len: u8, v6: bool) -> [u8; 16] {
    let bits = if v6 { 128 } else { 32 };
    let ones = u128::MAX.checked_shl(128 - u32::from(len.min(bits))).unwrap_or(0);
    ones.to_be_bytes()
}

impl Table {
    /// Builds and validates a snapshot. `previous` lends its ids to services and backends that
    /// stay; `seed` is the Maglev seed (the same on every LB node of a cluster).
    pub fn build(
        model: &ServicesModel,
        network: Network,
        limits: Limits,
        previous: Option<&Table>,
        seed: u64,
    ) -> Result<Table, ModelError> {
        Table::build_with_health(model, network, limits, previous, seed, &DownSet::new())
    }

    /// As `build`, with the backends in `down` out of scheduling (weight 0; Maglev gives their
    /// slots to the others and moves nothing else).
    pub fn build_with_health(
        model: &ServicesModel,
        network: Network,
        limits: Limits,
        previous: Option<&Table>,
        seed: u64,
        down: &DownSet,
    ) -> Result<Table, ModelError> {
        let mut service_ids = IdAllocator::new(limits.max_services, "service");
        let mut backend_ids = IdAllocator::new(limits.max_backends, "backend");
        let mut services = Vec::with_capacity(model.services.len());
        let mut by_key = HashMap::with_capacity(model.services.len());
        let mut vips: HashMap<([u8; 16], bool), u32> = HashMap::new();
        let mut expire_down = vec![0u64; (limits.max_backends as usize).div_ceil(64)];
        for (si, sm) in model.services.iter().enumerate() {
            let key = ServiceKey::new(sm.vip, sm.port, sm.protocol);
            let at = |field: &str| format!("service[{si}] ({key}).{field}");
            if by_key.contains_key(&key) {
                return Err(ModelError(format!("service[{si}] ({key}): duplicate service")));
            }
            if sm.vip.is_unspecified() || sm.vip.is_multicast() {
                return Err(ModelError(format!("{}: {} is not a unicast address", at("vip"), sm.vip)));
            }
            if sm.synproxy && sm.protocol != Protocol::Tcp {
                return Err(ModelError(format!("{}: SYN proxy is for TCP services", at("synproxy"))));
            }
            if sm.one_packet && sm.protocol != Protocol::Udp {
                return Err(ModelError(format!("{}: one-packet scheduling is for UDP services", at("one_packet"))));
            }
            if sm.one_packet && sm.backends.iter().any(|b| b.mode == Mode::Fnat) {
                return Err(ModelError(format!(
                    "{}: full-NAT replies need their connection: not with fnat backends",
                    at("one_packet")
                )));
            }
            let max_prefix = if key.v6 { 128 } else { 32 };
            let prefix = sm.persistence_prefix.unwrap_or(max_prefix);
            if prefix > max_prefix || prefix == 0 {
                return Err(ModelError(format!(
                    "{}: {prefix} is not a prefix length of 1 to {max_prefix}",
                    at("persistence_prefix")
                )));
            }
            if sm.kind_needs_maglev() && (!sched::mh::is_prime(sm.maglev_size) || sm.maglev_size > sched::mh::MAX_SIZE)
            {
                return Err(ModelError(format!(
                    "{}: {} is not a prime of at most {}",
                    at("maglev_size"),
                    sm.maglev_size,
                    sched::mh::MAX_SIZE
                )));
            }
            if let Some(c) = &sm.check {
                c.validate(&at("check")).map_err(ModelError)?;
            }
            if let Some(p) = &sm.passive {
                p.validate(&at("passive")).map_err(ModelError)?;
            }
            let prev = previous.and_then(|p| p.service(&key));
            let id = service_ids.claim(prev.map(|s| s.id))?;
            let mut backends: Vec<Backend> = Vec::with_capacity(sm.backends.len() + 1);
            for (bi, bm) in sm.backends.iter().enumerate() {
                let bat = |field: &str| format!("service[{si}] ({key}).backend[{bi}] ({}).{field}", bm.address);
                let mut b = backend_of(sm, key, bm, &bat, &network, &backends, prev, &mut backend_ids)?;
                if down.contains(&BackendKey::new(key, bm)) {
                    b.state = BackendState::Down;
                    b.weight = 0;
                    if sm.check.as_ref().is_some_and(|c| c.expire_on_down) {
                        expire_down[b.id as usize / 64] |= 1 << (b.id % 64);
                    }
                }
                backends.push(b);
            }
            let up = backends.iter().any(|b| b.weight > 0);
            if let Some(bm) = &sm.sorry_server {
                let bat = |field: &str| format!("service[{si}] ({key}).sorry_server ({}).{field}", bm.address);
                let mut b = backend_of(sm, key, bm, &bat, &network, &backends, prev, &mut backend_ids)?;
                b.sorry = true;
                if up {
                    b.weight = 0;
                    b.state = BackendState::Draining;
                }
                backends.push(b);
            }
            let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
            // An unchanged service keeps its plan: an edit rebuilds only the Maglev ring it touches.
            let plan = match prev
                .filter(|p| p.model == *sm && p.weights == weights && previous.is_some_and(|t| t.seed == seed))
            {
                Some(p) => p.plan.clone(),
                None => {
                    let ids: Vec<u64> = backends.iter().map(|b| backend_identity(b.addr, b.v6, b.port)).collect();
                    Plan::build(sm.scheduler, &weights, &ids, sm.maglev_size, seed)
                        .map_err(|e| ModelError(format!("{}: {e}", at("scheduler"))))?
                }
            };
            by_key.insert(key, u32::try_from(services.len()).unwrap_or(u32::MAX));
            *vips.entry((key.addr, key.v6)).or_default() += 1;
            services.push(Service {
                id,
                key,
                kind: sm.scheduler,
                plan,
                backends,
                weights,
                persistence_ms: u64::from(sm.persistence) * 1000,
                persistence_mask: prefix_mask(prefix, key.v6),
                hash_ports: sm.hash_ports,
                fallback: sm.fallback,
                one_packet: sm.one_packet,
                synproxy: sm.synproxy,
                up,
                model: sm.clone(),
            });
        }
        let mut nat_reverse: HashMap<([u8; 16], bool, u16, u8), u32> = HashMap::new();
        for (i, s) in services.iter().enumerate() {
            for b in s.backends.iter().filter(|b| b.mode == Mode::Nat) {
                let slot = nat_reverse
                    .entry((b.addr, b.v6, b.port, s.key.proto))
                    .or_insert(u32::try_from(i).unwrap_or(u32::MAX));
                if *slot as usize != i {
                    *slot = u32::MAX;
                }
            }
        }
        let generation = previous.map_or(1, |p| p.generation + 1);
        let backend_routes = backend_routes(&services, &network);
        Ok(Table {
            generation,
            network,
            limits,
            services,
            by_key,
            vips,
            nat_reverse,
            seed,
            expire_down,
            backend_routes,
        })
    }

    /// The output port and next hop toward `addr`: backend `id`'s route, computed when the
    /// table was built, when `addr` is that backend's address; otherwise the network's route.
    #[inline]
    pub fn route_to(&self, id: u32, addr: &[u8; 16], v6: bool) -> Option<(u16, [u8; 16])> {
        match self.backend_routes.get(id as usize) {
            Some(r) if r.addr == *addr && r.v6 == v6 => r.via,
            _ => self.network.route(addr, v6),
        }
    }

    /// True when backend `id` is down and its service resets a down backend's connections.
    #[inline]
    pub fn expires_on_down(&self, id: u32) -> bool {
        self.expire_down.get(id as usize / 64).is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// An empty table on `network` (no services).
    pub fn empty(network: Network) -> Table {
        Table::build(&ServicesModel::default(), network, Limits::default(), None, 0)
            .unwrap_or_else(|_| unreachable!("an empty model is valid"))
    }

    /// The Maglev seed this table was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// All services, in model order.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The service with exactly this key.
    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.by_key.get(key).map(|i| &self.services[*i as usize])
    }

    /// The service a packet to (addr, port, proto) belongs to: the exact port first, then the
    /// VIP's port-zero service.
    #[inline]
    pub fn lookup(&self, addr: [u8; 16], v6: bool, port: u16, proto: u8) -> Option<&Service> {
        let key = ServiceKey { addr, v6, port, proto };
        self.by_key
            .get(&key)
            .or_else(|| self.by_key.get(&ServiceKey { port: 0, ..key }))
            .map(|i| &self.services[*i as usize])
    }

    /// The one service whose NAT backend is (addr, port, proto), if exactly one.
    #[inline]
    pub fn nat_service_of(&self, addr: [u8; 16], v6: bool, port: u16, proto: u8) -> Option<&Service> {
        self.nat_reverse.get(&(addr, v6, port, proto)).and_then(|i| self.services.get(*i as usize))
    }

    /// True when `addr` is the VIP of at least one service.
    #[inline]
    pub fn is_vip(&self, addr: [u8; 16], v6: bool) -> bool {
        self.vips.contains_key(&(addr, v6))
    }

    /// The model this table was built from (for `lbctl save`).
    pub fn model(&self) -> ServicesModel {
        ServicesModel { services: self.services.iter().map(|s| s.model.clone()).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(text: &str) -> ServicesModel {
        toml::from_str(text).unwrap()
    }

    const TWO: &str = r#"
        [[service]]
        vip = "10.0.0.100"
        port = 80
        scheduler = "mh"
        [[service.backend]]
        address = "10.1.0.1"
        port = 8080
        [[service.backend]]
        address = "10.1.0.2"
        port = 8080
        weight = 3

        [[service]]
        vip = "2001:db8::100"
        port = 53
        protocol = "udp"
        scheduler = "rr"
        [[service.backend]]
        address = "2001:db8:1::1"
        mode = "dr"
    "#;

    #[test]
    fn builds_and_looks_up() {
        let t = Table::build(&model(TWO), Network::default(), Limits::default(), None, 0).unwrap();
        let s = t.lookup(crate::flow::widen([10, 0, 0, 100]), false, 80, 6).unwrap();
        assert_eq!(s.backends.len(), 2);
        assert_eq!(s.backends[1].weight, 3);
        assert!(matches!(s.plan, Plan::Mh(_)));
        assert!(t.lookup(crate::flow::widen([10, 0, 0, 100]), false, 81, 6).is_none());
        assert!(t.is_vip(crate::flow::widen([10, 0, 0, 100]), false));
        let v6: std::net::Ipv6Addr = "2001:db8::100".parse().unwrap();
        let s6 = t.lookup(v6.octets(), true, 53, 17).unwrap();
        assert_eq!((s6.backends[0].port, s6.backends[0].mode), (53, Mode::Dr));
        assert_eq!(t.model(), model(TWO));
    }

    #[test]
    fn backend_routes_are_computed_once_and_checked_by_address() {
        let net: crate::net::NetworkModel = toml::from_str(
            "[[interface]]\nname = \"a\"\naddresses = [\"10.0.0.1/24\"]\n\
             [[interface]]\nname = \"b\"\naddresses = [\"10.1.0.254/24\"]\ngateway = \"10.1.0.1\"\n",
        )
        .unwrap();
        let mac = crate::wire::MacAddr([2, 0, 0, 0, 0, 1]);
        let network = Network::build(&net, &[mac, mac]).unwrap();
        let t = Table::build(&model(TWO), network, Limits::default(), None, 0).unwrap();
        let b = t.services()[0].backends[1];
        assert_eq!(t.route_to(b.id, &b.addr, false), Some((1, b.addr)));
        assert_eq!(t.route_to(b.id, &b.addr, false), t.network.route(&b.addr, false));
        // Another address under that id (a connection of a backend since removed): searched.
        let other = crate::flow::widen([192, 168, 7, 7]);
        assert_eq!(t.route_to(b.id, &other, false), Some((1, crate::flow::widen([10, 1, 0, 1]))));
        // The IPv6 backend has no route on this IPv4-only network.
        let b6 = t.services()[1].backends[0];
        assert_eq!(t.route_to(b6.id, &b6.addr, true), None);
        assert_eq!(t.route_to(u32::MAX, &b.addr, false), Some((1, b.addr)));
    }

    #[test]
    fn keeps_ids_across_rebuilds() {
        let a = Table::build(&model(TWO), Network::default(), Limits::default(), None, 0).unwrap();
        let mut m = model(TWO);
        m.services[0].backends.remove(0);
        m.services.swap(0, 1);
        let b = Table::build(&m, Network::default(), Limits::default(), Some(&a), 0).unwrap();
        let key = ServiceKey::new("10.0.0.100".parse().unwrap(), 80, Protocol::Tcp);
        assert_eq!(a.service(&key).unwrap().id, b.service(&key).unwrap().id);
        assert_eq!(a.service(&key).unwrap().backends[1].id, b.service(&key).unwrap().backends[0].id);
        assert_eq!(b.generation, a.generation + 1);
    }

    #[test]
    fn unchanged_services_keep_their_plan() {
        let a = Table::build(&model(TWO), Network::default(), Limits::default(), None, 0).unwrap();
        let mut m = model(TWO);
        m.services[1].backends[0].weight = 7;
        let b = Table::build(&m, Network::default(), Limits::default(), Some(&a), 0).unwrap();
        let (Plan::Mh(x), Plan::Mh(y)) = (&a.services()[0].plan, &b.services()[0].plan) else { panic!("mh plans") };
        assert_eq!(x, y);
        assert_eq!(b.services()[1].weights, [7]);
        // A different seed rebuilds everything.
        let c = Table::build(&m, Network::default(), Limits::default(), Some(&b), 9).unwrap();
        let Plan::Mh(z) = &c.services()[0].plan else { panic!("mh plan") };
        assert!(!z.changed_slots(y).is_empty());
    }

    #[test]
    fn port_zero_catches_every_port() {
        let m = model(
            "[[service]]\nvip = \"10.0.0.7\"\nport = 0\n[[service.backend]]\naddress = \"10.1.0.9\"\nmode = \"dr\"\n",
        );
        let t = Table::build(&m, Network::default(), Limits::default(), None, 0).unwrap();
        assert!(t.lookup(crate::flow::widen([10, 0, 0, 7]), false, 443, 6).is_some());
    }

    fn refusal(text: &str) -> String {
        let m = model(text);
        Table::build(&m, Network::default(), Limits::default(), None, 0).unwrap_err().0
    }

    #[test]
    fn refusals_name_the_field() {
        let svc = "[[service]]\nvip = \"10.0.0.1\"\nport = 80\n";
        assert!(
            refusal(&format!("{svc}[[service.backend]]\naddress = \"10.1.0.1\"\nweight = 70000\n"))
                .contains("backend[0] (10.1.0.1).weight: 70000 exceeds 65535")
        );
        assert!(
            refusal(&format!("{svc}[[service.backend]]\naddress = \"10.1.0.1\"\nmode = \"dr\"\nport = 81\n"))
                .contains(".port: dr cannot change the port")
        );
        assert!(
            refusal(&format!("{svc}[[service.backend]]\naddress = \"2001:db8::1\"\n"))
                .contains(".mode: nat cannot change the address family")
        );
        assert!(
            refusal(&format!("{svc}[[service.backend]]\naddress = \"10.1.0.1\"\nmode = \"fnat\"\n"))
                .contains("fnat needs a local address")
        );
        assert!(
            refusal(&format!(
                "{svc}[[service.backend]]\naddress = \"10.1.0.1\"\n[[service.backend]]\naddress = \"10.1.0.1\"\n"
            ))
            .contains("backend[1] (10.1.0.1).address: duplicate backend")
        );
        assert!(
            refusal(&format!("{svc}scheduler = \"mh\"\nmaglev_size = 100\n"))
                .contains("maglev_size: 100 is not a prime")
        );
        assert!(refusal(&format!("{svc}{svc}")).contains("service[1] (tcp 10.0.0.1:80): duplicate service"));
        assert!(refusal("[[service]]\nvip = \"0.0.0.0\"\nport = 1\n").contains("service[0] (tcp 0.0.0.0:1).vip"));
        let unknown: Result<ServicesModel, _> =
            toml::from_str("[[service]]\nvip = \"10.0.0.1\"\nport = 80\nschedular = \"rr\"\n");
        assert!(unknown.unwrap_err().to_string().contains("schedular"));
        let bad_sched: Result<ServicesModel, _> =
            toml::from_str("[[service]]\nvip = \"10.0.0.1\"\nport = 80\nscheduler = \"xx\"\n");
        assert!(bad_sched.unwrap_err().to_string().contains("xx"));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits { max_services: 1, max_backends: 1 };
        let err = Table::build(&model(TWO), Network::default(), limits, None, 0).unwrap_err();
        assert!(err.0.contains("limit"), "{err}");
    }
}

//! The network the LB sits on: its ports (MAC, addresses, MTU, gateways), the local addresses
//! full-NAT translates to, and static neighbours. Ports are numbered by their position, which is
//! the DPDK port id lbd gives them. Routing is a longest-prefix match over the ports' connected
//! prefixes, then the family's gateway: an LB has a handful of interfaces, not a routing table.

use crate::flow::{from_ip, widen};
use crate::model_error::ModelError;
use crate::wire::MacAddr;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

fn default_mtu() -> u16 {
    1500
}

/// An interface as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceModel {
    pub name: String,
    /// The DPDK device behind this interface (lbd only): a PCI address such as "0000:01:00.0"
    /// or a virtual device string such as "net_af_xdp0,iface=eth1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Addresses with prefix length, such as "10.0.0.1/24" or "2001:db8::1/64".
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<IpAddr>,
    /// Give the host a kernel interface for this port (lbd's exception path): traffic to the
    /// interface's own addresses that lbd does not serve itself passes to it and back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exception: bool,
    /// Name of that kernel interface (at most 15 bytes); the interface's `name` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_interface: Option<String>,
    /// 802.1Q VLAN id (1-4094): the interface is that VLAN of its device, whose frames carry
    /// the tag. Several interfaces may share a device, each with its own VLAN (at most one
    /// without: the untagged frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

/// Longest name Linux gives an interface (IFNAMSIZ less its terminating zero).
pub const MAX_IFNAME: usize = 15;

impl InterfaceModel {
    /// The kernel interface of the exception path, when there is one.
    pub fn exception_name(&self) -> Option<&str> {
        self.exception.then(|| self.exception_interface.as_deref().unwrap_or(&self.name))
    }
}

/// A neighbour entry that never expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticNeighbour {
    pub address: IpAddr,
    pub mac: String,
    pub interface: String,
}

/// The network as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NetworkModel {
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceModel>,
    /// Source addresses for full-NAT (also answered to ARP/ND and ping).
    #[serde(default)]
    pub local_addresses: Vec<IpAddr>,
    /// Full-NAT local addresses of peer nodes (connection sync): when a peer fails and the
    /// routers send its local addresses here, replies to them are forwarded for the peer's
    /// synced connections. Never a source of this node's connections, never answered to ARP/ND.
    #[serde(default)]
    pub peer_local_addresses: Vec<IpAddr>,
    #[serde(default, rename = "neighbour")]
    pub neighbours: Vec<StaticNeighbour>,
}

/// An address with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: [u8; 16],
    pub v6: bool,
    pub len: u8,
}

impl Prefix {
    /// Parses "addr/len".
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (a, l) = s.split_once('/').ok_or_else(|| format!("'{s}' needs a prefix length, as in 10.0.0.1/24"))?;
        let ip: IpAddr = a.parse().map_err(|_| format!("'{a}' is not an IP address"))?;
        let len: u8 = l.parse().map_err(|_| format!("'{l}' is not a prefix length"))?;
        let (addr, v6) = from_ip(ip);
        if len > if v6 { 128 } else { 32 } {
            return Err(format!("prefix length {len} is too long for {ip}"));
        }
        Ok(Prefix { addr, v6, len })
    }

    /// True when `addr` is inside this prefix.
    #[inline]
    pub fn contains(&self, addr: &[u8; 16], v6: bool) -> bool {
        // IPv4 addresses sit in the first four bytes, so one 128-bit mask serves both families.
        let mask = u128::MAX.checked_shl(128 - u32::from(self.len)).unwrap_or(0);
        v6 == self.v6 && (u128::from_be_bytes(self.addr) ^ u128::from_be_bytes(*addr)) & mask == 0
    }
}

/// A port of the LB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u16,
    pub prefixes: Vec<Prefix>,
    pub gateway4: Option<[u8; 16]>,
    pub gateway6: Option<[u8; 16]>,
    /// Frames for the port's own addresses that lbd does not serve go to the host's kernel
    /// interface (and ARP/ND answers to the host's own requests with them).
    pub exception: bool,
    /// The physical (DPDK) port this interface is on, and its VLAN there.
    pub phys: u16,
    pub vlan: Option<u16>,
}

/// The built network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    pub ports: Vec<Port>,
    pub local4: Vec<[u8; 16]>,
    pub local6: Vec<[u8; 16]>,
    /// Peers' full-NAT local addresses (both families).
    pub peer_local: Vec<([u8; 16], bool)>,
    pub static_neighbours: Vec<([u8; 16], bool, MacAddr, u16)>,
    /// Some interface has a VLAN: frames are mapped between physical ports and interfaces
    /// (`pipeline::vlan_ingress`, `vlan_egress`).
    pub has_vlans: bool,
}

/// The physical ports behind a network's interfaces: the distinct devices in the order they
/// first appear (the order DPDK numbers them), and each interface's index among them.
/// Interfaces without a device (tests) each have their own.
pub fn physical_ports(model: &NetworkModel) -> (Vec<String>, Vec<u16>) {
    let mut devices: Vec<String> = Vec::new();
    let mut phys = Vec::with_capacity(model.interfaces.len());
    for (i, im) in model.interfaces.iter().enumerate() {
        let key = im.device.clone().unwrap_or_else(|| format!("#interface{i}"));
        let at = devices.iter().position(|d| *d == key).unwrap_or_else(|| {
            devices.push(key);
            devices.len() - 1
        });
        phys.push(u16::try_from(at).unwrap_or(u16::MAX));
    }
    (devices, phys)
}

impl Network {
    /// Builds the network from its model and the MAC address of each port (in model order).
    pub fn build(model: &NetworkModel, macs: &[MacAddr]) -> Result<Network, ModelError> {
        let (_, physical) = physical_ports(model);
        let mut ports = Vec::with_capacity(model.interfaces.len());
        for (i, im) in model.interfaces.iter().enumerate() {
            let at = |f: &str| format!("network.interface[{i}] ({}).{f}", im.name);
            if ports.iter().any(|p: &Port| p.name == im.name) {
                return Err(ModelError(format!("{}: duplicate interface name", at("name"))));
            }
            if im.mtu < 576 {
                return Err(ModelError(format!("{}: {} is below the IPv4 minimum of 576", at("mtu"), im.mtu)));
            }
            let mut prefixes = Vec::new();
            for a in &im.addresses {
                prefixes.push(Prefix::parse(a).map_err(|e| ModelError(format!("{}: {e}", at("addresses"))))?);
            }
            let gw = |g: Option<IpAddr>, v6: bool, f: &str| -> Result<Option<[u8; 16]>, ModelError> {
                match g.map(from_ip) {
                    Some((_, fam)) if fam != v6 => Err(ModelError(format!("{}: wrong address family", at(f)))),
                    Some((a, _)) => Ok(Some(a)),
                    None => Ok(None),
                }
            };
            if let Some(name) = im.exception_name() {
                let bad = name.is_empty()
                    || name.len() > MAX_IFNAME
                    || name.contains(['/', ' ', ':'])
                    || name == "."
                    || name == "..";
                if bad {
                    return Err(ModelError(format!(
                        "{}: '{name}' is not a Linux interface name (1 to {MAX_IFNAME} bytes, no '/', ':' or space)",
                        at(if im.exception_interface.is_some() { "exception_interface" } else { "name" })
                    )));
                }
                if let Some(j) = model.interfaces[..i].iter().position(|o| o.exception_name() == Some(name)) {
                    return Err(ModelError(format!(
                        "{}: '{name}' is already the exception interface of network.interface[{j}]",
                        at("exception_interface")
                    )));
                }
            } else if im.exception_interface.is_some() {
                return Err(ModelError(format!("{}: set exception = true to use it", at("exception_interface"))));
            }
            let mac = macs.get(i).copied().ok_or_else(|| ModelError(format!("{}: no such port", at("name"))))?;
            if im.vlan.is_some_and(|v| !(1..=4094).contains(&v)) {
                return Err(ModelError(format!("{}: {} is not a VLAN id (1-4094)", at("vlan"), im.vlan.unwrap_or(0))));
            }
            let phys = physical[i];
            if let Some(j) = (0..i).find(|j| physical[*j] == phys && model.interfaces[*j].vlan == im.vlan) {
                return Err(ModelError(format!(
                    "{}: network.interface[{j}] ({}) is already {} of the same device",
                    at("vlan"),
                    model.interfaces[j].name,
                    im.vlan.map_or("the untagged interface".to_string(), |v| format!("VLAN {v}"))
                )));
            }
            ports.push(Port {
                name: im.name.clone(),
                mac,
                mtu: im.mtu,
                prefixes,
                gateway4: gw(im.gateway, false, "gateway")?,
                gateway6: gw(im.gateway6, true, "gateway6")?,
                exception: im.exception,
                phys,
                vlan: im.vlan,
            });
        }
        let has_vlans = ports.iter().any(|p| p.vlan.is_some());
        let mut net = Network { ports, has_vlans, ..Default::default() };
        for a in &model.local_addresses {
            match from_ip(*a) {
                (b, true) => net.local6.push(b),
                (b, false) => net.local4.push(b),
            }
        }
        for (i, a) in model.peer_local_addresses.iter().enumerate() {
            if model.local_addresses.contains(a) || net.peer_local.contains(&from_ip(*a)) {
                return Err(ModelError(format!(
                    "network.peer_local_addresses[{i}] ({a}): already a local address of this node or listed twice"
                )));
            }
            net.peer_local.push(from_ip(*a));
        }
        for (i, n) in model.neighbours.iter().enumerate() {
            let at = format!("network.neighbour[{i}] ({})", n.address);
            let mac: MacAddr = n.mac.parse().map_err(|e| ModelError(format!("{at}.mac: {e}")))?;
            let port = net
                .ports
                .iter()
                .position(|p| p.name == n.interface)
                .ok_or_else(|| ModelError(format!("{at}.interface: no interface named '{}'", n.interface)))?;
            let (addr, v6) = from_ip(n.address);
            net.static_neighbours.push((addr, v6, mac, u16::try_from(port).unwrap_or(0)));
        }
        Ok(net)
    }

    /// A one-port IPv4 network, for tests and examples.
    pub fn single(mac: MacAddr, address: [u8; 4], prefix_len: u8) -> Network {
        Network {
            ports: vec![Port {
                name: "p0".into(),
                mac,
                mtu: 1500,
                prefixes: vec![Prefix { addr: widen(address), v6: false, len: prefix_len }],
                gateway4: None,
                gateway6: None,
                exception: false,
                phys: 0,
                vlan: None,
            }],
            ..Default::default()
        }
    }

    /// The interface of a frame received on physical port `phys` with VLAN `vlan`.
    pub fn interface_of(&self, phys: u16, vlan: Option<u16>) -> Option<u16> {
        self.ports.iter().position(|p| p.phys == phys && p.vlan == vlan).and_then(|i| u16::try_from(i).ok())
    }

    /// Full-NAT source addresses of a family.
    pub fn local_addresses(&self, v6: bool) -> &[[u8; 16]] {
        if v6 { &self.local6 } else { &self.local4 }
    }

    /// True for a full-NAT local address, this node's or a peer's: replies to it are steered
    /// by its port.
    #[inline]
    pub fn is_local_address(&self, addr: &[u8; 16], v6: bool) -> bool {
        self.local_addresses(v6).contains(addr) || self.is_peer_local(addr, v6)
    }

    /// True for a peer's full-NAT local address.
    #[inline]
    pub fn is_peer_local(&self, addr: &[u8; 16], v6: bool) -> bool {
        !self.peer_local.is_empty() && self.peer_local.contains(&(*addr, v6))
    }

    /// True for an address of the LB itself (interface or full-NAT local address, a peer's
    /// included).
    #[inline]
    pub fn is_own(&self, addr: &[u8; 16], v6: bool) -> bool {
        self.is_local_address(addr, v6)
            || self.ports.iter().any(|p| p.prefixes.iter().any(|x| x.v6 == v6 && &x.addr == addr))
    }

    /// True for an address configured on one of the LB's interfaces (not a full-NAT local
    /// address): what the host's kernel owns when the port has an exception path.
    #[inline]
    pub fn is_interface_address(&self, addr: &[u8; 16], v6: bool) -> bool {
        self.ports.iter().any(|p| p.prefixes.iter().any(|x| x.v6 == v6 && &x.addr == addr))
    }

    /// True when port `port` has an exception path to the host.
    #[inline]
    pub fn has_exception(&self, port: u16) -> bool {
        self.ports.get(usize::from(port)).is_some_and(|p| p.exception)
    }

    /// The LB's first address of a family on a port (source of ARP/ND requests and tunnels).
    #[inline]
    pub fn address_on(&self, port: u16, v6: bool) -> Option<[u8; 16]> {
        self.ports.get(usize::from(port))?.prefixes.iter().find(|p| p.v6 == v6).map(|p| p.addr)
    }

    /// True when `addr` is on a connected prefix of `port`.
    pub fn on_link(&self, port: u16, addr: &[u8; 16], v6: bool) -> bool {
        self.ports.get(usize::from(port)).is_some_and(|p| p.prefixes.iter().any(|x| x.contains(addr, v6)))
    }

    /// Egress port and next hop for a destination: the longest connected prefix, else the
    /// first port with a gateway of the family.
    #[inline]
    pub fn route(&self, dst: &[u8; 16], v6: bool) -> Option<(u16, [u8; 16])> {
        let mut best: Option<(u16, u8)> = None;
        for (i, p) in self.ports.iter().enumerate() {
            for x in &p.prefixes {
                if x.contains(dst, v6) && best.is_none_or(|(_, l)| x.len > l) {
                    best = Some((u16::try_from(i).unwrap_or(0), x.len));
                }
            }
        }
        if let Some((port, _)) = best {
            return Some((port, *dst));
        }
        self.ports.iter().enumerate().find_map(|(i, p)| {
            let gw = if v6 { p.gateway6 } else { p.gateway4 };
            gw.map(|g| (u16::try_from(i).unwrap_or(0), g))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> Network {
        let model: NetworkModel = toml::from_str(
            r#"
            local_addresses = ["10.1.0.254", "fd01::fe"]
            [[interface]]
            name = "client"
            addresses = ["10.0.0.1/24", "fd00::1/64"]
            gateway = "10.0.0.254"
            [[interface]]
            name = "backend"
            addresses = ["10.1.0.1/16", "10.1.2.1/24"]
            mtu = 9000
            [[neighbour]]
            address = "10.1.0.9"
            mac = "02:00:00:00:01:09"
            interface = "backend"
            "#,
        )
        .unwrap();
        Network::build(&model, &[MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2])]).unwrap()
    }

    #[test]
    fn exception_interface_names_are_checked() {
        let build = |extra: &str| {
            let m: NetworkModel =
                toml::from_str(&format!("[[interface]]\nname = \"client\"\naddresses = [\"10.0.0.1/24\"]\n{extra}"))
                    .unwrap();
            Network::build(&m, &[MacAddr::ZERO])
        };
        assert!(build("exception = true").unwrap().has_exception(0));
        assert!(!build("").unwrap().has_exception(0));
        let e = build("exception = true\nexception_interface = \"a-name-far-too-long\"").unwrap_err().0;
        assert!(e.contains("client).exception_interface: 'a-name-far-too-long' is not a Linux interface name"), "{e}");
        let e = build("exception_interface = \"x\"").unwrap_err().0;
        assert!(e.contains("set exception = true"), "{e}");
    }

    #[test]
    fn routes_by_longest_prefix_then_gateway() {
        let n = net();
        assert_eq!(n.route(&widen([10, 0, 0, 7]), false), Some((0, widen([10, 0, 0, 7]))));
        assert_eq!(n.route(&widen([10, 1, 2, 7]), false), Some((1, widen([10, 1, 2, 7]))));
        assert_eq!(n.route(&widen([192, 0, 2, 1]), false), Some((0, widen([10, 0, 0, 254]))));
        assert_eq!(n.route(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], true), None);
        assert!(n.is_own(&widen([10, 1, 0, 254]), false) && n.is_own(&widen([10, 0, 0, 1]), false));
        assert!(!n.is_own(&widen([10, 0, 0, 2]), false));
        assert_eq!(n.address_on(1, false), Some(widen([10, 1, 0, 1])));
        assert_eq!(n.static_neighbours[0].3, 1);
        assert_eq!(n.ports[1].mtu, 9000);
    }

    #[test]
    fn prefix_matching_handles_partial_bytes() {
        let p = Prefix::parse("10.1.128.0/17").unwrap();
        assert!(p.contains(&widen([10, 1, 200, 1]), false));
        assert!(!p.contains(&widen([10, 1, 127, 1]), false));
        assert!(Prefix::parse("10.0.0.1").unwrap_err().contains("prefix length"));
        assert!(Prefix::parse("10.0.0.1/33").unwrap_err().contains("too long"));
    }

    #[test]
    fn refusals_name_the_field() {
        let bad: NetworkModel = toml::from_str("[[interface]]\nname = \"a\"\naddresses = [\"10.0.0.1\"]\n").unwrap();
        let err = Network::build(&bad, &[MacAddr::ZERO]).unwrap_err().0;
        assert!(err.starts_with("network.interface[0] (a).addresses"), "{err}");
        let missing: NetworkModel = toml::from_str("[[interface]]\nname = \"a\"\n").unwrap();
        assert!(Network::build(&missing, &[]).unwrap_err().0.contains("no such port"));
        let neigh: NetworkModel = toml::from_str(
            "[[interface]]\nname = \"a\"\n[[neighbour]]\naddress = \"10.0.0.2\"\nmac = \"02:00\"\ninterface = \"a\"\n",
        )
        .unwrap();
        assert!(Network::build(&neigh, &[MacAddr::ZERO]).unwrap_err().0.contains("neighbour[0] (10.0.0.2).mac"));
    }
}

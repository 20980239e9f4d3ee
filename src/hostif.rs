//! The kernel side of the exception path: each port with `exception = true` gets a `net_tap`
//! port whose kernel interface lbd sets up like the port itself (MAC, MTU, addresses, gateway
//! routes), with iproute2 as any host tool would. It vanishes with the process: the TAP device
//! is not persistent, so a killed lbd takes its addresses with it.

use lb_core::net::{InterfaceModel, Prefix};
use lb_core::service::Table;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

/// The `--vdev` string of interface `i`'s TAP port.
pub fn tap_device(i: usize, itf: &InterfaceModel) -> Option<String> {
    itf.exception_name().map(|name| format!("net_tap_lbd{i},iface={name}"))
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("'ip {}' failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
}

fn sysctl(path: &str, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("{path}: {e}"))
}

/// Gives the kernel interface of `itf`'s exception path the port's MTU and addresses and
/// brings it up. The kernel's router advertisement and redirect handling stay off: nothing a
/// host on the segment says reconfigures the appliance.
pub fn configure(itf: &InterfaceModel) -> Result<(), String> {
    let Some(name) = itf.exception_name() else { return Ok(()) };
    let has_v6 = itf.addresses.iter().any(|a| a.contains(':'));
    sysctl(&format!("/proc/sys/net/ipv4/conf/{name}/accept_redirects"), "0")?;
    if std::path::Path::new(&format!("/proc/sys/net/ipv6/conf/{name}")).exists() {
        sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/accept_ra"), "0")?;
        sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/accept_redirects"), "0")?;
        sysctl(&format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), if has_v6 { "0" } else { "1" })?;
    }
    ip(&["link", "set", "dev", name, "mtu", &itf.mtu.to_string()])?;
    ip(&["link", "set", "dev", name, "up"])?;
    for a in &itf.addresses {
        let p = Prefix::parse(a)?;
        if p.v6 {
            ip(&["-6", "addr", "replace", a, "dev", name, "nodad"])?;
        } else {
            ip(&["addr", "replace", a, "dev", name])?;
        }
    }
    for gw in [itf.gateway, itf.gateway6].into_iter().flatten() {
        let family = if gw.is_ipv6() { "-6" } else { "-4" };
        if let Err(e) = ip(&[family, "route", "add", "default", "via", &gw.to_string(), "dev", name]) {
            // The host may have a default route of its own (a management interface): keep it.
            eprintln!("lbd: warning: exception interface {name}: default route via {gw} not added: {e}");
        }
    }
    Ok(())
}

/// Keeps the VIPs of the services that are up as host addresses (/32, /128) on one exception
/// interface, where a routing daemon (BIRD's `direct` protocol) picks them up and announces
/// them; with `[announce] local_addresses`, also the full-NAT local addresses, this node's and
/// its peers' (which the routing daemon announces as a backup, with a longer path). The
/// addresses live only as long as lbd: the TAP interface goes with the process, so a dead lbd
/// withdraws them without anyone cleaning up.
pub struct Announcer {
    iface: String,
    current: BTreeSet<IpAddr>,
    drained: bool,
    generation: u64,
    /// Full-NAT local addresses: own (true) and peers' (false), announced while lbd runs,
    /// drained or not (a drained node's connections still get their replies).
    locals: Vec<(IpAddr, bool)>,
    stopping: bool,
}

impl Announcer {
    pub fn new(iface: String, locals: Vec<(IpAddr, bool)>) -> Self {
        Announcer { iface, current: BTreeSet::new(), drained: false, generation: 0, locals, stopping: false }
    }

    /// Withdraws everything: lbd is stopping.
    pub fn stop(&mut self, table: &Table) {
        self.stopping = true;
        self.set_drained(true, table);
    }

    /// The VIPs announced now.
    pub fn announced(&self) -> Vec<IpAddr> {
        self.current.iter().copied().collect()
    }

    /// Withdraws every VIP (`on`) or announces them again.
    pub fn set_drained(&mut self, on: bool, table: &Table) {
        self.drained = on;
        self.generation = 0;
        self.sync(table);
    }

    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Announces the VIPs with a service up and withdraws the others (once per table).
    pub fn sync(&mut self, table: &Table) {
        if table.generation == self.generation {
            return;
        }
        self.generation = table.generation;
        let mut want: BTreeSet<IpAddr> = if self.drained {
            BTreeSet::new()
        } else {
            table.services().iter().filter(|s| s.up).map(|s| lb_core::flow::to_ip(s.key.addr, s.key.v6)).collect()
        };
        if !self.stopping {
            want.extend(self.locals.iter().map(|(a, _)| *a));
        }
        let add: Vec<IpAddr> = want.difference(&self.current).copied().collect();
        let remove: Vec<IpAddr> = self.current.difference(&want).copied().collect();
        for vip in add {
            let why = match self.locals.iter().find(|(a, _)| *a == vip) {
                Some((_, true)) => "a full-NAT local address",
                Some((_, false)) => "a peer's full-NAT local address, as its backup",
                None => "a service is up",
            };
            match self.address(vip, "add") {
                Ok(()) => {
                    println!("lbd: announce: {vip} ({why})");
                    self.current.insert(vip);
                }
                Err(e) => eprintln!("lbd: announce: {vip}: {e}"),
            }
        }
        for vip in remove {
            let why = if self.drained { "drained" } else { "no service of it is up" };
            match self.address(vip, "del") {
                Ok(()) => println!("lbd: withdraw: {vip} ({why})"),
                Err(e) => eprintln!("lbd: withdraw: {vip}: {e}"),
            }
            self.current.remove(&vip);
        }
    }

    fn address(&self, vip: IpAddr, verb: &str) -> Result<(), String> {
        match vip {
            IpAddr::V4(a) => ip(&["addr", verb, &format!("{a}/32"), "dev", &self.iface]),
            IpAddr::V6(a) if verb == "add" => {
                ip(&["-6", "addr", "add", &format!("{a}/128"), "dev", &self.iface, "nodad"])
            }
            IpAddr::V6(a) => ip(&["-6", "addr", verb, &format!("{a}/128"), "dev", &self.iface]),
        }
    }
}

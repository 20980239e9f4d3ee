//! The kernel side of the exception path: each port with `exception = true` gets a `net_tap`
//! port whose kernel interface lbd sets up like the port itself (MAC, MTU, addresses, gateway
//! routes), with iproute2 as any host tool would. It vanishes with the process: the TAP device
//! is not persistent, so a killed lbd takes its addresses with it.

use lb_core::net::{InterfaceModel, Prefix};
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

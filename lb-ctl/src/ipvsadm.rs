//! ipvsadm's rule language, read and written, so IPVS rules move to lbd and back unchanged.
//!
//! - [`parse`] reads what `ipvsadm -S -n` prints (1.31, and older releases such as 1.30, whose
//!   `-i` lines have no `--tun-type`) and what `ipvsadm -R` takes: `-A -E -D -a -e -d -C` and their
//!   long forms, long options (also `--option=value`), an optional leading `ipvsadm`, blank lines
//!   and `#` comments. Lines apply in order to an empty model, as `ipvsadm-restore` does
//!   (`ipvsadm -C`, then `ipvsadm -R`). Unlike ipvsadm, which stops at a bad option but keeps the
//!   lines before it and reports kernel refusals while carrying on, the whole input is refused at
//!   its first error, as `line N: ...` naming the option, and nothing is applied.
//!   Refused by name, because lbd cannot do them: firewall marks (`-f`, `-6`), SCTP, persistence
//!   engines (`--pe sip`), remote checksum offload (`--tun-remcsum`), `-b flag-3`, host
//!   and service names (save with `-n`). The model is written one way only: a real server's port
//!   is 0 when it is the service's, a mask is kept only with `-p` (IPVS ignores it otherwise).
//! - [`save`] writes what `ipvsadm -S -n` 1.31 prints for a model, in its order. It refuses
//!   models holding what ipvsadm cannot say (fnat backends, the SYN proxy, health checks, a Maglev
//!   size), naming the service, rather than write rules that would restore something else. Its
//!   one addition: real servers' thresholds, which ipvsadm -S drops, as `-x U -y L` at the end
//!   of the line when one is set. `parse(save(m))` is `sorted(m)`.
//! - The `ipvsadm -Ln` service line ([`list_service`]) and the helpers lbctl's verbs share.
//!
//! Meanings and defaults are ipvsadm 1.31's (`ipvsadm.c`): scheduler wlc, forwarding `-g`,
//! weight 1, a bare `-p` is 360 s (`IPVS_SVC_PERSISTENT_TIMEOUT` is `6*60` in libipvs.h; the man
//! page's "300" is wrong), a real server without a port takes the service's, and `-g`/`-i` always
//! use the service's port. `-E` and `-e` replace every setting of the service or server, as the
//! kernel's edit does: what the line leaves out returns to its default.
//!
//! Order (libipvs.c `ipvs_cmp_services`, `ipvs_cmp_dests`, applied by `list_all` and
//! `print_service_entry` unless `--nosort`): services by address family (IPv4 first), protocol
//! (TCP before UDP), address, port; real servers by address, then port. ipvsadm subtracts the
//! addresses as 32-bit words into an `int`, which misorders addresses 2^31 or more apart; lbd
//! sorts them numerically, as ipvsadm does for every table whose addresses are closer.
//!
//! Nothing here panics on any input.

mod restore;
mod save;

pub use restore::parse;
pub use save::save;

use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Mode, Protocol, ServiceModel, ServicesModel};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A bare `-p`: `IPVS_SVC_PERSISTENT_TIMEOUT` in ipvsadm's libipvs.h.
pub const DEFAULT_PERSISTENCE: u32 = 6 * 60;
/// ipvsadm's `MAX_TIMEOUT`: the longest `-p`, 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// An address and port as ipvsadm's `addrport_to_anyname` prints them with `-n`.
pub fn address_port(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{}]:{port}", ipv6_text(a)),
    }
}

/// glibc's `inet_ntop`, which also prints IPv4-compatible addresses (`::10.0.0.1`) dotted;
/// Rust does so only for IPv4-mapped ones.
fn ipv6_text(a: Ipv6Addr) -> String {
    let s = a.segments();
    if s[..6] == [0; 6] && s[6] != 0 {
        let o = a.octets();
        return format!("::{}.{}.{}.{}", o[12], o[13], o[14], o[15]);
    }
    a.to_string()
}

/// `-M`: an IPv4 netmask (contiguous, dotted) or an IPv6 prefix length, as a prefix length;
/// `None` for the whole address (ipvsadm's default).
pub fn netmask(v6: bool, text: &str) -> Result<Option<u8>, String> {
    let (prefix, max) = if v6 {
        let p = text
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=128).contains(p))
            .ok_or_else(|| format!("'{text}' is not an IPv6 prefix length of 1 to 128"))?;
        (p, 128)
    } else {
        let mask: Ipv4Addr =
            text.parse().map_err(|_| format!("'{text}' is not an IPv4 netmask such as 255.255.255.0"))?;
        let bits = u32::from(mask);
        let ones = bits.leading_ones();
        if bits.checked_shl(ones).unwrap_or(0) != 0 {
            return Err(format!("{text} is not a contiguous netmask (lbd groups clients by prefix)"));
        }
        if ones == 0 {
            return Err(format!("{text} would send every client to one server: lbd takes prefixes of 1 to 32"));
        }
        (u8::try_from(ones).map_err(|_| format!("'{text}' is not a netmask"))?, 32)
    };
    Ok((prefix != max).then_some(prefix))
}

/// The `-M` text ipvsadm prints for a persistent service, if not the whole address.
fn mask_text(s: &ServiceModel) -> Option<String> {
    let p = s.persistence_prefix?;
    match s.vip {
        IpAddr::V4(_) => {
            (p < 32).then(|| Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0)).to_string())
        }
        IpAddr::V6(_) => (p < 128).then(|| p.to_string()),
    }
}

/// `-b FLAGS` for scheduler `kind` as (fallback, hash ports). IPVS has two bits: flag-1 is
/// sh-fallback and mh-fallback, flag-2 sh-port and mh-port (`IP_VS_SVC_F_SCHED1`, `_SCHED2`);
/// the named forms belong to their scheduler only, as ipvsadm's `parse_sched_flags` checks.
pub fn sched_flags(kind: Kind, text: &str) -> Result<(bool, bool), String> {
    let (mut fallback, mut port) = (false, false);
    for flag in text.split(',').filter(|f| !f.is_empty()) {
        let owner = match flag {
            "flag-1" | "flag-2" => None,
            "sh-fallback" | "sh-port" => Some(Kind::Sh),
            "mh-fallback" | "mh-port" => Some(Kind::Mh),
            "flag-3" => return Err("flag-3: no IPVS scheduler uses it and lbd has nowhere to keep it".into()),
            other => {
                return Err(format!(
                    "'{other}' is not a scheduler flag (sh-fallback, sh-port, mh-fallback, mh-port, flag-1, flag-2)"
                ));
            }
        };
        if owner.is_some_and(|k| k != kind) {
            return Err(format!("{flag} is not a flag of the {} scheduler", kind.name()));
        }
        if flag.ends_with("fallback") || flag == "flag-1" {
            fallback = true;
        } else {
            port = true;
        }
    }
    if !fallback && !port {
        return Err(format!("'{text}' names no scheduler flag"));
    }
    Ok((fallback, port))
}

/// The flags as ipvsadm's `print_sched_flags` names them, if any is set.
pub fn sched_flags_text(s: &ServiceModel) -> Option<String> {
    let names = match s.scheduler {
        Kind::Sh => ["sh-fallback", "sh-port"],
        Kind::Mh => ["mh-fallback", "mh-port"],
        _ => ["flag-1", "flag-2"],
    };
    let on: Vec<&str> =
        [(s.fallback, names[0]), (s.hash_ports, names[1])].iter().filter(|f| f.0).map(|f| f.1).collect();
    (!on.is_empty()).then(|| on.join(","))
}

/// ipvsadm's tunnel options of an `-i` real server.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tunnel<'a> {
    /// `--tun-type`: ipip (the default), gue or gre.
    pub kind: Option<&'a str>,
    /// `--tun-port`.
    pub port: Option<u16>,
    pub nocsum: bool,
    pub csum: bool,
    pub remcsum: bool,
}

impl Tunnel<'_> {
    /// The first tunnel option given, by name, for "needs -i" messages.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.kind.is_some(), "--tun-type"),
            (self.port.is_some(), "--tun-port"),
            (self.nocsum, "--tun-nocsum"),
            (self.csum, "--tun-csum"),
            (self.remcsum, "--tun-remcsum"),
        ]
        .into_iter()
        .find(|o| o.0)
        .map(|o| o.1)
    }

    /// The mode and GUE port of an `-i` server, under ipvsadm's `tunnel_types_v_options` (gue
    /// needs a port, ipip takes no option, gre no port). `--tun-csum` is the backend's
    /// `tunnel_checksum` (see `checksum`); `--tun-remcsum` is refused by name.
    pub fn mode(&self) -> Result<(Mode, Option<u16>), String> {
        if self.remcsum {
            return Err("--tun-remcsum: remote checksum offload is not supported; lbd sends tunnels without \
                 checksums (--tun-nocsum) or with them (--tun-csum)"
                .into());
        }
        if self.csum && self.nocsum {
            return Err("--tun-csum: not with --tun-nocsum".into());
        }
        match self.kind.unwrap_or("ipip") {
            "ipip" => {
                if self.port.is_some() {
                    return Err("--tun-port: an ipip tunnel has no port (it is for --tun-type gue)".into());
                }
                if let Some(o) = [(self.nocsum, "--tun-nocsum"), (self.csum, "--tun-csum")].iter().find(|o| o.0) {
                    return Err(format!("{}: an ipip tunnel has no checksum (it is for gue and gre)", o.1));
                }
                Ok((Mode::Tun, None))
            }
            "gue" => match self.port {
                Some(0) => Err("--tun-port 0: a port is 1 to 65535".into()),
                Some(p) => Ok((Mode::Gue, Some(p))),
                None => Err("--tun-type gue needs --tun-port PORT".into()),
            },
            "gre" => {
                if self.port.is_some() {
                    return Err("--tun-port: a gre tunnel has no port (it is for --tun-type gue)".into());
                }
                Ok((Mode::Gre, None))
            }
            other => Err(format!("--tun-type {other}: expected ipip, gue or gre")),
        }
    }
}

impl Tunnel<'_> {
    /// Whether the tunnel carries a checksum (`--tun-csum`).
    pub fn checksum(&self) -> bool {
        self.csum
    }
}

/// ipvsadm's `-g`, `-i`, `-m` for a mode; lbd's full NAT has none.
pub fn forward_switch(mode: Mode) -> Option<&'static str> {
    match mode {
        Mode::Nat => Some("-m"),
        Mode::Dr => Some("-g"),
        Mode::Tun | Mode::Gue | Mode::Gre => Some("-i"),
        Mode::Fnat => None,
    }
}

/// The Forward column of `ipvsadm -Ln` (`fwd_name`): every tunnel is "Tunnel", as in IPVS;
/// full NAT, which IPVS lacks, is "FullNat".
pub fn forward_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Nat => "Masq",
        Mode::Fnat => "FullNat",
        Mode::Dr => "Route",
        Mode::Tun | Mode::Gue | Mode::Gre => "Tunnel",
    }
}

/// The TunnelInfo column of `ipvsadm -Ln --tun-info` (`fwd_tun_info`); "-c" is without checksum.
pub fn tunnel_info(b: &BackendModel) -> String {
    match b.mode {
        Mode::Tun => "ipip".into(),
        Mode::Gue => format!("gue:{}:-c", b.gue_port.unwrap_or(lb_core::service::DEFAULT_GUE_PORT)),
        Mode::Gre => "gre:-c".into(),
        _ => "n/a".into(),
    }
}

/// The service line of `ipvsadm -Ln`: protocol, address, scheduler, `(flags)`,
/// `persistent N`, `mask M`, `ops`, as `print_service_entry` writes them.
pub fn list_service(s: &ServiceModel) -> String {
    let proto = match s.protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
    };
    let mut line = format!("{proto:<4} {} {}", address_port(s.vip, s.port), s.scheduler.name());
    if let Some(f) = sched_flags_text(s) {
        line.push_str(&format!(" ({f})"));
    }
    if s.persistence > 0 {
        line.push_str(&format!(" persistent {}", s.persistence));
        if let Some(m) = mask_text(s) {
            line.push_str(&format!(" mask {m}"));
        }
    }
    if s.one_packet {
        line.push_str(" ops");
    }
    line
}

/// A backend's port, the service's when the model says 0.
fn port_of(s: &ServiceModel, b: &BackendModel) -> u16 {
    if b.port == 0 { s.port } else { b.port }
}

/// An address as ipvsadm compares it: an IPv4 address in the union's first word.
fn address_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut k = [0; 16];
            k[..4].copy_from_slice(&a.octets());
            k
        }
        IpAddr::V6(a) => a.octets(),
    }
}

/// Where ipvsadm lists a service: family, protocol number, address, port.
pub fn service_order(s: &ServiceModel) -> (bool, u8, [u8; 16], u16) {
    (s.vip.is_ipv6(), s.protocol.number(), address_key(s.vip), s.port)
}

/// Where ipvsadm lists a real server of `s`: address, then port.
pub fn backend_order(s: &ServiceModel, b: &BackendModel) -> ([u8; 16], u16) {
    (address_key(b.address), port_of(s, b))
}

/// The model in ipvsadm's listing order.
pub fn sorted(model: &ServicesModel) -> ServicesModel {
    let mut m = model.clone();
    m.services.sort_by_key(service_order);
    for s in &mut m.services {
        let mut backends = std::mem::take(&mut s.backends);
        backends.sort_by_key(|b| backend_order(s, b));
        s.backends = backends;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_are_prefixes() {
        assert_eq!(netmask(false, "255.255.255.0"), Ok(Some(24)));
        assert_eq!(netmask(false, "255.255.255.255"), Ok(None));
        assert_eq!(netmask(false, "128.0.0.0"), Ok(Some(1)));
        assert_eq!(netmask(true, "64"), Ok(Some(64)));
        assert_eq!(netmask(true, "128"), Ok(None));
        assert!(netmask(false, "255.0.255.0").unwrap_err().contains("not a contiguous netmask"));
        assert!(netmask(false, "0.0.0.0").unwrap_err().contains("every client"));
        assert!(netmask(false, "24").unwrap_err().contains("255.255.255.0"));
        assert!(netmask(true, "0").unwrap_err().contains("1 to 128"));
        assert!(netmask(true, "255.255.255.0").unwrap_err().contains("IPv6 prefix length"));
    }

    #[test]
    fn masks_print_as_ipvsadm() {
        let mut s = ServiceModel::new("10.0.0.1".parse().unwrap(), 80, Protocol::Tcp);
        s.persistence_prefix = Some(20);
        assert_eq!(mask_text(&s).as_deref(), Some("255.255.240.0"));
        s.persistence_prefix = Some(32);
        assert_eq!(mask_text(&s), None);
        s.vip = "2001:db8::1".parse().unwrap();
        s.persistence_prefix = Some(48);
        assert_eq!(mask_text(&s).as_deref(), Some("48"));
    }

    #[test]
    fn scheduler_flags_follow_the_scheduler() {
        assert_eq!(sched_flags(Kind::Sh, "sh-fallback,sh-port"), Ok((true, true)));
        assert_eq!(sched_flags(Kind::Mh, "mh-port"), Ok((false, true)));
        assert_eq!(sched_flags(Kind::Rr, "flag-1"), Ok((true, false)));
        assert_eq!(sched_flags(Kind::Sh, "flag-2"), Ok((false, true)));
        assert!(sched_flags(Kind::Wlc, "sh-port").unwrap_err().contains("not a flag of the wlc scheduler"));
        assert!(sched_flags(Kind::Sh, "flag-3").unwrap_err().contains("flag-3"));
        assert!(sched_flags(Kind::Sh, "sh-nope").unwrap_err().contains("'sh-nope'"));
        let mut s = ServiceModel::new("10.0.0.1".parse().unwrap(), 80, Protocol::Tcp);
        s.hash_ports = true;
        s.fallback = true;
        assert_eq!(sched_flags_text(&s).as_deref(), Some("flag-1,flag-2"));
        s.scheduler = Kind::Mh;
        assert_eq!(sched_flags_text(&s).as_deref(), Some("mh-fallback,mh-port"));
    }

    #[test]
    fn ipv6_text_is_glibcs() {
        let a = |s: &str| address_port(s.parse().unwrap(), 80);
        assert_eq!(a("2001:db8::1"), "[2001:db8::1]:80");
        assert_eq!(a("::10.0.0.1"), "[::10.0.0.1]:80");
        assert_eq!(a("::ffff:10.0.0.1"), "[::ffff:10.0.0.1]:80");
        assert_eq!(a("::1"), "[::1]:80");
        assert_eq!(a("2001:db8:0:1:0:0:0:1"), "[2001:db8:0:1::1]:80");
    }

    #[test]
    fn the_list_line_is_ipvsadms() {
        let mut s = ServiceModel::new("10.0.0.1".parse().unwrap(), 53, Protocol::Udp);
        s.scheduler = Kind::Sh;
        s.hash_ports = true;
        s.persistence = 600;
        s.persistence_prefix = Some(24);
        s.one_packet = true;
        assert_eq!(list_service(&s), "UDP  10.0.0.1:53 sh (sh-port) persistent 600 mask 255.255.255.0 ops");
        let plain = ServiceModel::new("2001:db8::1".parse().unwrap(), 80, Protocol::Tcp);
        assert_eq!(list_service(&plain), "TCP  [2001:db8::1]:80 wlc");
    }

    #[test]
    fn tunnels_as_ipvsadm_checks_them() {
        assert_eq!(Tunnel::default().mode(), Ok((Mode::Tun, None)));
        let gue = Tunnel { kind: Some("gue"), port: Some(6080), nocsum: true, ..Tunnel::default() };
        assert_eq!(gue.mode(), Ok((Mode::Gue, Some(6080))));
        assert!(Tunnel { kind: Some("gue"), ..Tunnel::default() }.mode().unwrap_err().contains("--tun-port"));
        assert_eq!(Tunnel { kind: Some("gre"), nocsum: true, ..Tunnel::default() }.mode(), Ok((Mode::Gre, None)));
        assert!(
            Tunnel { kind: Some("gre"), port: Some(1), ..Tunnel::default() }.mode().unwrap_err().contains("--tun-port")
        );
        assert_eq!(Tunnel { kind: Some("gre"), csum: true, ..Tunnel::default() }.mode(), Ok((Mode::Gre, None)));
        assert!(Tunnel { csum: true, ..Tunnel::default() }.mode().unwrap_err().starts_with("--tun-csum: an ipip"));
        assert!(Tunnel { kind: Some("vxlan"), ..Tunnel::default() }.mode().unwrap_err().contains("--tun-type vxlan"));
        assert!(Tunnel { port: Some(1), ..Tunnel::default() }.mode().unwrap_err().contains("--tun-port"));
        assert!(Tunnel { csum: true, ..gue }.mode().unwrap_err().starts_with("--tun-csum: not with --tun-nocsum"));
        assert!(Tunnel { remcsum: true, ..gue }.mode().unwrap_err().starts_with("--tun-remcsum"));
    }
}

//! `ipvsadm -R` input, which includes everything `ipvsadm -S -n` prints, applied line by line
//! to an empty model. A line is `[ipvsadm] COMMAND OPTION...`: the command comes first, as
//! ipvsadm's `parse_options` demands; each option at most once (`set_option`); only the
//! options ipvsadm's `commands_v_options` table allows with the command.

use super::{DEFAULT_PERSISTENCE, MAX_TIMEOUT, Tunnel, netmask, sched_flags};
use crate::ServiceId;
use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Mode, Protocol, ServiceModel, ServicesModel};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DelService,
    AddServer,
    EditServer,
    DelServer,
    Clear,
}

/// The rule commands, short and long.
const COMMANDS: [(char, &str, Cmd); 7] = [
    ('A', "add-service", Cmd::AddService),
    ('E', "edit-service", Cmd::EditService),
    ('D', "delete-service", Cmd::DelService),
    ('a', "add-server", Cmd::AddServer),
    ('e', "edit-server", Cmd::EditServer),
    ('d', "delete-server", Cmd::DelServer),
    ('C', "clear", Cmd::Clear),
];

/// ipvsadm's other commands: valid on its command line, but no rule.
const OTHER_COMMANDS: [(Option<char>, &str); 10] = [
    (Some('L'), "list"),
    (Some('l'), "list"),
    (Some('Z'), "zero"),
    (Some('S'), "save"),
    (Some('R'), "restore"),
    (Some('h'), "help"),
    (Some('v'), "version"),
    (None, "set"),
    (None, "start-daemon"),
    (None, "stop-daemon"),
];

/// ipvsadm's listing and sync-daemon options, which no rule command takes.
const OTHER_OPTIONS: [(Option<char>, &str); 18] = [
    (Some('n'), "numeric"),
    (Some('c'), "connection"),
    (Some('X'), "exact"),
    (None, "mcast-interface"),
    (None, "syncid"),
    (None, "timeout"),
    (None, "daemon"),
    (None, "stats"),
    (None, "rate"),
    (None, "thresholds"),
    (None, "persistent-conn"),
    (None, "nosort"),
    (None, "sort"),
    (None, "tun-info"),
    (None, "mcast-group"),
    (None, "mcast-port"),
    (None, "mcast-ttl"),
    (None, "sync-maxlen"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Ipv6,
    Scheduler,
    Persistent,
    Netmask,
    Ops,
    Pe,
    SchedFlags,
    Real,
    Gatewaying,
    Ipip,
    Masquerading,
    Weight,
    UThreshold,
    LThreshold,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
    /// `-p [timeout]`: a value only when the next word is no option.
    Optional,
}

/// The rule options ipvsadm 1.31 knows, short and long.
const OPTIONS: [(Option<char>, &str, Opt, Arity); 23] = [
    (Some('t'), "tcp-service", Opt::Tcp, Arity::Value),
    (Some('u'), "udp-service", Opt::Udp, Arity::Value),
    (None, "sctp-service", Opt::Sctp, Arity::Value),
    (Some('f'), "fwmark-service", Opt::Fwmark, Arity::Value),
    (Some('6'), "ipv6", Opt::Ipv6, Arity::Flag),
    (Some('s'), "scheduler", Opt::Scheduler, Arity::Value),
    (Some('p'), "persistent", Opt::Persistent, Arity::Optional),
    (Some('M'), "netmask", Opt::Netmask, Arity::Value),
    (Some('o'), "ops", Opt::Ops, Arity::Flag),
    (None, "pe", Opt::Pe, Arity::Value),
    (Some('b'), "sched-flags", Opt::SchedFlags, Arity::Value),
    (Some('r'), "real-server", Opt::Real, Arity::Value),
    (Some('g'), "gatewaying", Opt::Gatewaying, Arity::Flag),
    (Some('i'), "ipip", Opt::Ipip, Arity::Flag),
    (Some('m'), "masquerading", Opt::Masquerading, Arity::Flag),
    (Some('w'), "weight", Opt::Weight, Arity::Value),
    (Some('x'), "u-threshold", Opt::UThreshold, Arity::Value),
    (Some('y'), "l-threshold", Opt::LThreshold, Arity::Value),
    (None, "tun-type", Opt::TunType, Arity::Value),
    (None, "tun-port", Opt::TunPort, Arity::Value),
    (None, "tun-nocsum", Opt::TunNocsum, Arity::Flag),
    (None, "tun-csum", Opt::TunCsum, Arity::Flag),
    (None, "tun-remcsum", Opt::TunRemcsum, Arity::Flag),
];

impl Opt {
    /// ipvsadm's `optnames`: options of one class may be given once per line.
    fn class(self) -> &'static str {
        match self {
            Opt::Tcp | Opt::Udp | Opt::Sctp | Opt::Fwmark => "service-address",
            Opt::Ipv6 => "ipv6",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Ops => "ops",
            Opt::Pe => "pe",
            Opt::SchedFlags => "sched-flags",
            Opt::Real => "real-server",
            Opt::Gatewaying | Opt::Ipip | Opt::Masquerading => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunNocsum => "tun-nocsum",
            Opt::TunCsum => "tun-csum",
            Opt::TunRemcsum => "tun-remcsum",
        }
    }

    /// ipvsadm's `commands_v_options` for the rule commands.
    fn allowed(self, cmd: Cmd) -> bool {
        let service = matches!(self, Opt::Tcp | Opt::Udp | Opt::Sctp | Opt::Fwmark | Opt::Ipv6);
        match cmd {
            Cmd::AddService | Cmd::EditService => {
                service
                    || matches!(
                        self,
                        Opt::Scheduler | Opt::Persistent | Opt::Netmask | Opt::Ops | Opt::Pe | Opt::SchedFlags
                    )
            }
            Cmd::DelService => service,
            Cmd::AddServer | Cmd::EditServer => service || !self.is_service_setting(),
            Cmd::DelServer => service || self == Opt::Real,
            Cmd::Clear => false,
        }
    }

    fn is_service_setting(self) -> bool {
        matches!(
            self,
            Opt::Tcp
                | Opt::Udp
                | Opt::Sctp
                | Opt::Fwmark
                | Opt::Ipv6
                | Opt::Scheduler
                | Opt::Persistent
                | Opt::Netmask
                | Opt::Ops
                | Opt::Pe
                | Opt::SchedFlags
        )
    }
}

/// A word of a line: a command or an option, with the name as written and an inline value
/// (`--weight=3`, `-w3`).
enum Word<'a> {
    Command(Cmd, &'a str),
    Option(Opt, Arity, &'a str, Option<&'a str>),
}

fn word(w: &str) -> Result<Word<'_>, String> {
    if let Some(long) = w.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (long, None),
        };
        let written = w.get(..2 + name.len()).unwrap_or(w);
        if let Some(c) = COMMANDS.iter().find(|c| c.1 == name) {
            return match inline {
                None => Ok(Word::Command(c.2, written)),
                Some(_) => Err(format!("{written} takes no value")),
            };
        }
        if let Some(o) = OPTIONS.iter().find(|o| o.1 == name) {
            return Ok(Word::Option(o.2, o.3, written, inline));
        }
        return Err(not_a_rule_word(w, None, name));
    }
    if let Some(short) = w.strip_prefix('-') {
        let mut chars = short.chars();
        let Some(c) = chars.next() else {
            return Err("unexpected argument '-'".into());
        };
        let rest = chars.as_str();
        let written = w.get(..1 + c.len_utf8()).unwrap_or(w);
        if let Some(cmd) = COMMANDS.iter().find(|x| x.0 == c).filter(|_| rest.is_empty()) {
            return Ok(Word::Command(cmd.2, written));
        }
        if let Some(o) = OPTIONS.iter().find(|o| o.0 == Some(c)) {
            if rest.is_empty() {
                return Ok(Word::Option(o.2, o.3, written, None));
            }
            if o.3 != Arity::Flag {
                return Ok(Word::Option(o.2, o.3, written, Some(rest)));
            }
        }
        return Err(not_a_rule_word(w, Some(c), ""));
    }
    Err(format!("unexpected argument '{w}'"))
}

/// Why `w` is no word of a rule: another ipvsadm command or option, or unknown.
fn not_a_rule_word(w: &str, short: Option<char>, long: &str) -> String {
    let named = |s: Option<char>, l: &str| (short.is_some() && s == short) || (!long.is_empty() && l == long);
    if let Some(c) = short.filter(|c| OPTIONS.iter().any(|o| o.0 == Some(*c))) {
        return format!("'{w}': -{c} takes no value; write each option apart");
    }
    if let Some((_, name)) = OTHER_COMMANDS.iter().find(|c| named(c.0, c.1)) {
        return format!("{w} ({name}) is an ipvsadm command, not a rule: rules are -A, -E, -D, -a, -e, -d and -C");
    }
    if let Some((_, name)) = OTHER_OPTIONS.iter().find(|o| named(o.0, o.1)) {
        return format!("{w} ({name}) is an ipvsadm listing or daemon option, not part of a rule");
    }
    format!("unknown option '{w}'")
}

/// A service as a line names it.
#[derive(Debug, Clone, Copy)]
struct Svc {
    protocol: Protocol,
    vip: IpAddr,
    /// None when the line gave no port: a port-zero service.
    port: Option<u16>,
}

/// One line, parsed; the words are kept for messages.
#[derive(Default)]
struct Line<'a> {
    service: Option<(Svc, &'a str)>,
    scheduler: Option<Kind>,
    persistent: Option<u32>,
    netmask: Option<(&'a str, &'a str)>,
    ops: Option<&'a str>,
    flags: Option<(&'a str, &'a str)>,
    real: Option<((IpAddr, Option<u16>), &'a str)>,
    forward: Option<Opt>,
    weight: Option<u32>,
    upper: Option<u32>,
    lower: Option<u32>,
    tunnel: Tunnel<'a>,
}

/// ipvsadm's `parse_service` with `-n` output: `IPV4[:PORT]`, `[IPV6]:PORT` or a bare IPv6
/// address. Host and service names are refused: `ipvsadm -S -n` prints numbers.
fn endpoint(text: &str) -> Result<(IpAddr, Option<u16>), String> {
    let (addr, port) = if let Some(rest) = text.strip_prefix('[') {
        // As ipvsadm, brackets go with a port: a bare IPv6 address has none.
        let (a, p) = rest.split_once("]:").ok_or_else(|| format!("'{text}' is not [IPV6]:PORT"))?;
        let a: Ipv6Addr = a.parse().map_err(|_| format!("'{a}' is not an IPv6 address"))?;
        (IpAddr::V6(a), Some(p))
    } else if let Ok(a) = text.parse::<Ipv6Addr>() {
        (IpAddr::V6(a), None)
    } else {
        let (a, p) = match text.rsplit_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let a = a.parse().map_err(|_| format!("'{a}' is not a numeric IP address (ipvsadm -S -n prints numbers)"))?;
        (IpAddr::V4(a), p)
    };
    let port = port
        .map(|p| p.parse::<u16>().map_err(|_| format!("'{p}' is not a port number (ipvsadm -S -n prints numbers)")))
        .transpose()?;
    Ok((addr, port))
}

/// A number in `min..=max`, as ipvsadm's `string_to_number`.
fn number(v: &str, min: u32, max: u32, what: &str) -> Result<u32, String> {
    v.parse::<u32>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| format!("{what} is {min} to {max}"))
}

/// `i32::MAX`: ipvsadm's limit on a threshold.
const MAX_THRESHOLD: u32 = 0x7fff_ffff;

impl<'a> Line<'a> {
    /// Parses the words after the command.
    fn parse(cmd: Cmd, cmd_word: &str, words: &[&'a str]) -> Result<Line<'a>, String> {
        let mut line = Line::default();
        let mut given: Vec<(&'static str, &'a str)> = Vec::new();
        let mut i = 0;
        while let Some(&w) = words.get(i) {
            i += 1;
            let (opt, arity, name, inline) = match word(w)? {
                Word::Command(_, c) => return Err(format!("{c}: a line holds one command ({cmd_word} came first)")),
                Word::Option(o, a, n, v) => (o, a, n, v),
            };
            // popt's rules: a required value is the next word whatever it is; an optional one
            // only when that word is no option (so `-p -M ...` is a bare -p).
            let value = match (arity, inline) {
                (Arity::Flag, Some(_)) => return Err(format!("{name} takes no value")),
                (Arity::Flag, None) => None,
                (_, Some(v)) => Some(v),
                (Arity::Value, None) => {
                    let v = words.get(i).copied().ok_or_else(|| format!("{name} needs a value"))?;
                    i += 1;
                    Some(v)
                }
                (Arity::Optional, None) => {
                    let v = words.get(i).copied().filter(|v| !v.starts_with('-'));
                    i += usize::from(v.is_some());
                    v
                }
            };
            if !opt.allowed(cmd) {
                return Err(format!("{name} is not an option of {cmd_word}, as in ipvsadm"));
            }
            if let Some((_, before)) = given.iter().find(|g| g.0 == opt.class()) {
                return Err(format!("{name}: a line takes one {} option ({before} came first)", opt.class()));
            }
            given.push((opt.class(), name));
            line.set(opt, name, value.unwrap_or_default())?;
        }
        Ok(line)
    }

    /// Records one option; what lbd cannot do is refused here, by name.
    fn set(&mut self, opt: Opt, name: &'a str, v: &'a str) -> Result<(), String> {
        let with = |e: String| format!("{name} {v}: {e}");
        match opt {
            Opt::Tcp | Opt::Udp => {
                let (vip, port) = endpoint(v).map_err(with)?;
                let protocol = if opt == Opt::Tcp { Protocol::Tcp } else { Protocol::Udp };
                self.service = Some((Svc { protocol, vip, port }, name));
            }
            Opt::Sctp => return Err(format!("{name}: SCTP services are not supported by lbd")),
            Opt::Fwmark => return Err(format!("{name} {v}: firewall-mark services are not supported by lbd")),
            Opt::Ipv6 => return Err(format!("{name} qualifies a firewall-mark service, which lbd does not support")),
            Opt::Scheduler => self.scheduler = Some(v.parse().map_err(with)?),
            Opt::Persistent => {
                self.persistent = Some(if v.is_empty() {
                    DEFAULT_PERSISTENCE
                } else {
                    number(v, 1, MAX_TIMEOUT, "a persistence timeout in seconds").map_err(with)?
                });
            }
            Opt::Netmask => self.netmask = Some((name, v)),
            Opt::Ops => self.ops = Some(name),
            Opt::Pe if v == "sip" => {
                return Err(format!("{name} sip: the SIP persistence engine is not supported by lbd"));
            }
            Opt::Pe => return Err(format!("{name} {v}: persistence engines are not supported by lbd")),
            Opt::SchedFlags => self.flags = Some((name, v)),
            Opt::Real => self.real = Some((endpoint(v).map_err(with)?, name)),
            Opt::Gatewaying | Opt::Ipip | Opt::Masquerading => self.forward = Some(opt),
            Opt::Weight => self.weight = Some(number(v, 0, lb_core::service::MAX_WEIGHT, "a weight").map_err(with)?),
            Opt::UThreshold => self.upper = Some(number(v, 0, MAX_THRESHOLD, "a threshold").map_err(with)?),
            Opt::LThreshold => self.lower = Some(number(v, 0, MAX_THRESHOLD, "a threshold").map_err(with)?),
            Opt::TunType => self.tunnel.kind = Some(v),
            Opt::TunPort => {
                let p = number(v, 1, 65535, "a port").map_err(with)?;
                self.tunnel.port = Some(u16::try_from(p).map_err(|_| with("a port is 1 to 65535".into()))?);
            }
            Opt::TunNocsum => self.tunnel.nocsum = true,
            Opt::TunCsum => self.tunnel.csum = true,
            Opt::TunRemcsum => self.tunnel.remcsum = true,
        }
        Ok(())
    }

    /// The service an -A or -E line describes, with ipvsadm's defaults and checks.
    fn service_model(&self, svc: Svc, svc_word: &str) -> Result<ServiceModel, String> {
        let scheduler = self.scheduler.unwrap_or(Kind::Wlc);
        let persistence = self.persistent.unwrap_or(0);
        let port = svc.port.unwrap_or(0);
        if port == 0 && persistence == 0 {
            return Err(format!(
                "{svc_word} {}: a service on port 0 (every port) must be persistent (-p), as ipvsadm requires",
                super::address_port(svc.vip, 0)
            ));
        }
        if let Some(o) = self.ops.filter(|_| svc.protocol != Protocol::Udp) {
            return Err(format!("{o}: one-packet scheduling is only for UDP services"));
        }
        let prefix = match self.netmask {
            Some((w, v)) => netmask(svc.vip.is_ipv6(), v).map_err(|e| format!("{w} {v}: {e}"))?,
            None => None,
        };
        let (fallback, hash_ports) = match self.flags {
            Some((w, v)) => sched_flags(scheduler, v).map_err(|e| format!("{w} {v}: {e}"))?,
            None => (false, false),
        };
        Ok(ServiceModel {
            scheduler,
            persistence,
            // ipvsadm keeps a mask without -p, but neither IPVS nor its -S output uses it.
            persistence_prefix: prefix.filter(|_| persistence > 0),
            hash_ports,
            fallback,
            one_packet: self.ops.is_some(),
            ..ServiceModel::new(svc.vip, port, svc.protocol)
        })
    }

    /// The real server an -a or -e line describes, for service `s`, with ipvsadm's defaults.
    fn backend_model(&self, s: &ServiceModel) -> Result<BackendModel, String> {
        let ((address, port), real_word) = self.real.ok_or("a real server needs -r ADDRESS[:PORT]")?;
        let forward = self.forward.unwrap_or(Opt::Gatewaying);
        let (mode, gue_port) = if forward == Opt::Ipip {
            self.tunnel.mode()?
        } else if let Some(o) = self.tunnel.first_given() {
            return Err(format!("{o}: tunnel options need -i (ipip forwarding)"));
        } else if forward == Opt::Masquerading {
            (Mode::Nat, None)
        } else {
            (Mode::Dr, None)
        };
        if address.is_ipv6() != s.vip.is_ipv6() && forward != Opt::Ipip {
            return Err(format!(
                "{real_word} {address}: a real server of the other address family needs -i (a tunnel), as in ipvsadm"
            ));
        }
        // -g and -i use the service's port whatever -r says, as ipvsadm sets it; 0 stands
        // for the service's port in the model.
        let port = match port {
            Some(p) if mode == Mode::Nat && p != s.port => p,
            _ => 0,
        };
        if s.port == 0 && port != 0 {
            return Err(format!("{real_word}: a service on port 0 forwards every port unchanged: give no port"));
        }
        let (upper, lower) = (self.upper.unwrap_or(0), self.lower.unwrap_or(0));
        if lower > upper {
            return Err(format!(
                "-y {lower}: the lower threshold is above the upper one (-x {upper}); IPVS refuses it too"
            ));
        }
        Ok(BackendModel {
            port,
            weight: self.weight.unwrap_or(1),
            mode,
            gue_port,
            upper_threshold: upper,
            lower_threshold: lower,
            tunnel_checksum: forward == Opt::Ipip && self.tunnel.checksum(),
            ..BackendModel::at(address)
        })
    }
}

/// The model being built, its services indexed by key so that a restore of thousands of
/// services takes one lookup per line, not a scan.
#[derive(Default)]
struct Building {
    model: ServicesModel,
    index: HashMap<(IpAddr, u16, Protocol), usize>,
}

/// The model `text` describes, applied to an empty one; refused whole at the first error.
pub fn parse(text: &str) -> Result<ServicesModel, String> {
    let mut model = Building::default();
    for (n, raw) in text.lines().enumerate() {
        let mut words: Vec<&str> = raw.split_whitespace().take_while(|w| !w.starts_with('#')).collect();
        // ipvsadm -R drops the word `ipvsadm` (config_stream_read), so scripts may keep it.
        if words.first().is_some_and(|w| *w == "ipvsadm" || w.ends_with("/ipvsadm")) {
            words.remove(0);
        }
        if !words.is_empty() {
            apply(&mut model, &words).map_err(|e| format!("line {}: {e}", n + 1))?;
        }
    }
    Ok(model.model)
}

fn apply(building: &mut Building, words: &[&str]) -> Result<(), String> {
    let (first, rest) = words.split_first().ok_or("empty line")?;
    let (cmd, cmd_word) = match word(first)? {
        Word::Command(c, w) => (c, w),
        Word::Option(_, _, w, _) => {
            return Err(format!("{w} comes before the command: a rule starts with -A, -E, -D, -a, -e, -d or -C"));
        }
    };
    let line = Line::parse(cmd, cmd_word, rest)?;
    let Building { model, index } = building;
    if cmd == Cmd::Clear {
        model.services.clear();
        index.clear();
        return Ok(());
    }
    let (svc, svc_word) = line.service.ok_or_else(|| format!("{cmd_word} needs a service: -t|-u ADDRESS:PORT"))?;
    let id = ServiceId { vip: svc.vip, port: svc.port.unwrap_or(0), protocol: svc.protocol };
    let key = (id.vip, id.port, id.protocol);
    let found = index.get(&key).copied();
    let no_service = || format!("{cmd_word}: there is no service {id} (-A adds it)");
    match cmd {
        Cmd::AddService => {
            if found.is_some() {
                return Err(format!("{cmd_word}: service {id} exists already"));
            }
            let s = line.service_model(svc, svc_word)?;
            index.insert(key, model.services.len());
            model.services.push(s);
        }
        Cmd::EditService => {
            let new = line.service_model(svc, svc_word)?;
            let s = model.services.get_mut(found.ok_or_else(no_service)?).ok_or_else(no_service)?;
            // The kernel's edit takes every setting from the line, defaults included.
            s.scheduler = new.scheduler;
            s.persistence = new.persistence;
            s.persistence_prefix = new.persistence_prefix;
            s.hash_ports = new.hash_ports;
            s.fallback = new.fallback;
            s.one_packet = new.one_packet;
        }
        Cmd::DelService => {
            model.services.remove(found.ok_or_else(no_service)?);
            // The services after it moved up one place.
            *index = model.services.iter().enumerate().map(|(i, s)| ((s.vip, s.port, s.protocol), i)).collect();
        }
        Cmd::AddServer | Cmd::EditServer | Cmd::DelServer => {
            let s = model.services.get_mut(found.ok_or_else(no_service)?).ok_or_else(no_service)?;
            server(s, &id, cmd, cmd_word, &line)?;
        }
        Cmd::Clear => {}
    }
    Ok(())
}

/// -a, -e, -d on service `s`.
fn server(s: &mut ServiceModel, id: &ServiceId, cmd: Cmd, cmd_word: &str, line: &Line<'_>) -> Result<(), String> {
    let port_of = |s: &ServiceModel, b: &BackendModel| if b.port == 0 { s.port } else { b.port };
    let new = if cmd == Cmd::DelServer { None } else { Some(line.backend_model(s)?) };
    let (address, port) = match &new {
        Some(b) => (b.address, port_of(s, b)),
        None => {
            let ((address, port), _) = line.real.ok_or("a real server needs -r ADDRESS[:PORT]")?;
            (address, port.unwrap_or(s.port))
        }
    };
    let at = s.backends.iter().position(|b| b.address == address && port_of(s, b) == port);
    let real = super::address_port(address, port);
    match (cmd, at, new) {
        (Cmd::AddServer, Some(_), _) => Err(format!("{cmd_word}: service {id} has real server {real} already")),
        (Cmd::AddServer, None, Some(b)) => {
            s.backends.push(b);
            Ok(())
        }
        // Like the kernel's edit: weight, forwarding, thresholds and tunnel all from the line.
        (Cmd::EditServer, Some(i), Some(b)) => {
            if let Some(old) = s.backends.get_mut(i) {
                *old = b;
            }
            Ok(())
        }
        (Cmd::DelServer, Some(i), _) => {
            s.backends.remove(i);
            Ok(())
        }
        _ => Err(format!("{cmd_word}: service {id} has no real server {real}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_as_popt_reads_them() {
        assert!(matches!(word("--weight=3"), Ok(Word::Option(Opt::Weight, _, "--weight", Some("3")))));
        assert!(matches!(word("-w3"), Ok(Word::Option(Opt::Weight, _, "-w", Some("3")))));
        assert!(matches!(word("-A"), Ok(Word::Command(Cmd::AddService, "-A"))));
        assert!(matches!(word("--add-server"), Ok(Word::Command(Cmd::AddServer, "--add-server"))));
        assert!(word("-gm").is_err());
        assert!(parse("-A -u 10.0.0.1:53 --ops=1").unwrap_err().contains("line 1: --ops takes no value"));
        assert!(word("-L").err().unwrap().contains("(list) is an ipvsadm command"));
        assert!(word("--stats").err().unwrap().contains("listing or daemon option"));
        assert!(word("-q").err().unwrap().contains("unknown option '-q'"));
        assert!(word("foo").err().unwrap().contains("unexpected argument 'foo'"));
    }

    #[test]
    fn endpoints_as_ipvsadm_reads_them() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(endpoint("10.0.0.1:80"), Ok((ip("10.0.0.1"), Some(80))));
        assert_eq!(endpoint("10.0.0.1"), Ok((ip("10.0.0.1"), None)));
        assert_eq!(endpoint("[2001:db8::1]:443"), Ok((ip("2001:db8::1"), Some(443))));
        assert_eq!(endpoint("2001:db8::1"), Ok((ip("2001:db8::1"), None)));
        assert!(endpoint("www.example.com:80").unwrap_err().contains("numeric"));
        assert!(endpoint("10.0.0.1:http").unwrap_err().contains("'http' is not a port number"));
        assert!(endpoint("[10.0.0.1]:80").is_err());
        assert!(endpoint("10.0.0.1:70000").is_err());
    }

    #[test]
    fn services_after_a_deleted_one_are_still_found() {
        let m = parse("-A -t 10.0.0.1:80\n-A -t 10.0.0.2:80\n-A -t 10.0.0.3:80\n-D -t 10.0.0.1:80\n-a -t 10.0.0.3:80 -r 10.1.0.3\n")
            .unwrap();
        assert_eq!(m.services.len(), 2);
        assert_eq!(m.services[1].backends[0].address, "10.1.0.3".parse::<IpAddr>().unwrap());
        assert!(
            parse("-A -t 10.0.0.1:80\n-C\n-a -t 10.0.0.1:80 -r 10.1.0.1")
                .unwrap_err()
                .contains("line 3: -a: there is no service")
        );
    }

    #[test]
    fn a_bare_p_is_ipvsadms_default_whatever_follows() {
        for text in
            ["-A -t 10.0.0.1:80 -p", "-A -t 10.0.0.1:80 -p -s rr", "-A -t 10.0.0.1:80 --persistent -M 255.255.255.0"]
        {
            let m = parse(text).unwrap();
            assert_eq!(m.services[0].persistence, DEFAULT_PERSISTENCE, "{text}");
        }
        assert_eq!(parse("-A -t 10.0.0.1:80 -p 60").unwrap().services[0].persistence, 60);
        assert_eq!(parse("-A -t 10.0.0.1:80 --persistent=60").unwrap().services[0].persistence, 60);
        assert!(parse("-A -t 10.0.0.1:80 -p rr").unwrap_err().contains("line 1: -p rr: a persistence timeout"));
    }
}

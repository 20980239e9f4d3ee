//! A model as `ipvsadm -S -n` 1.31 prints it (`print_service_entry` with `FMT_RULE`,
//! `print_tunnel_rule`), in ipvsadm's order.
//!
//! One addition: ipvsadm -S drops real servers' connection thresholds (`-x`, `-y`) although
//! -R takes them; lbd writes them at the end of the line when one is set, so a save restores
//! what ran. Without thresholds the text is ipvsadm's, byte for byte.

use super::{MAX_TIMEOUT, address_port, forward_switch, mask_text, port_of, sched_flags_text, sorted};
use crate::ServiceId;
use lb_core::sched::{Kind, mh};
use lb_core::service::{DEFAULT_GUE_PORT, Mode, Protocol, ServiceModel, ServicesModel};

/// What service `s` holds that no ipvsadm rule can say, by name.
fn lbd_only(s: &ServiceModel) -> Vec<String> {
    let mut what = Vec::new();
    if s.synproxy {
        what.push("synproxy".to_string());
    }
    if s.check.is_some() {
        what.push("a health check".into());
    }
    if s.passive.is_some() {
        what.push("a passive health check".into());
    }
    if s.sorry_server.is_some() {
        what.push("a sorry server".into());
    }
    // IPVS's Maglev table size is a kernel build option, not a service's.
    if s.scheduler == Kind::Mh && s.maglev_size != mh::DEFAULT_SIZE {
        what.push(format!("maglev_size {}", s.maglev_size));
    }
    if s.persistence > MAX_TIMEOUT {
        what.push(format!("persistence {} s (ipvsadm's limit is {MAX_TIMEOUT})", s.persistence));
    }
    for b in &s.backends {
        let at = address_port(b.address, port_of(s, b));
        if b.mode == Mode::Fnat {
            what.push(format!("full-NAT backend {at}"));
        }
        if b.upper_threshold > 0x7fff_ffff || b.lower_threshold > 0x7fff_ffff {
            what.push(format!("backend {at}'s thresholds above ipvsadm's 2147483647"));
        }
    }
    what
}

/// The rules `ipvsadm -S -n` would print for `model`. Refused, naming the services, when the
/// model holds what ipvsadm cannot say: writing it without would restore something else.
pub fn save(model: &ServicesModel) -> Result<String, String> {
    let refused: Vec<String> = model
        .services
        .iter()
        .filter_map(|s| {
            let what = lbd_only(s);
            let id = ServiceId { vip: s.vip, port: s.port, protocol: s.protocol };
            (!what.is_empty()).then(|| format!("service {id} has {}", what.join(", ")))
        })
        .collect();
    if let Some(first) = refused.first() {
        let more = match refused.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more services)"),
        };
        return Err(format!(
            "ipvsadm rules cannot say everything lbd runs: {first}{more}; `lbctl save` (TOML) keeps all of it"
        ));
    }
    let mut out = String::new();
    for s in &sorted(model).services {
        let option = if s.protocol == Protocol::Tcp { "-t" } else { "-u" };
        let svc = format!("{option} {}", address_port(s.vip, s.port));
        out.push_str(&format!("-A {svc} -s {}", s.scheduler.name()));
        if s.persistence > 0 {
            out.push_str(&format!(" -p {}", s.persistence));
            if let Some(m) = mask_text(s) {
                out.push_str(&format!(" -M {m}"));
            }
        }
        if s.one_packet {
            out.push_str(" -o");
        }
        if let Some(f) = sched_flags_text(s) {
            out.push_str(&format!(" -b {f}"));
        }
        out.push('\n');
        for b in &s.backends {
            let switch = forward_switch(b.mode).unwrap_or("-m");
            let real = address_port(b.address, port_of(s, b));
            out.push_str(&format!("-a {svc} -r {real} {switch} -w {}", b.weight));
            match b.mode {
                Mode::Tun => out.push_str(" --tun-type ipip"),
                Mode::Gue => out.push_str(&format!(
                    " --tun-type gue --tun-port {} {}",
                    b.gue_port.unwrap_or(DEFAULT_GUE_PORT),
                    csum_option(b.tunnel_checksum)
                )),
                Mode::Gre => out.push_str(&format!(" --tun-type gre {}", csum_option(b.tunnel_checksum))),
                Mode::Nat | Mode::Fnat | Mode::Dr => {}
            }
            if b.upper_threshold != 0 || b.lower_threshold != 0 {
                out.push_str(&format!(" -x {} -y {}", b.upper_threshold, b.lower_threshold));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

/// ipvsadm's tunnel checksum option as `print_tunnel_rule` writes it.
fn csum_option(checksum: bool) -> &'static str {
    if checksum { "--tun-csum" } else { "--tun-nocsum" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_core::service::BackendModel;

    fn svc(vip: &str, port: u16) -> ServiceModel {
        ServiceModel::new(vip.parse().unwrap(), port, Protocol::Tcp)
    }

    #[test]
    fn refuses_what_ipvsadm_cannot_say_naming_the_service() {
        let mut s = svc("10.0.0.1", 80);
        s.synproxy = true;
        s.backends.push(BackendModel { mode: Mode::Fnat, ..BackendModel::at("10.1.0.1".parse().unwrap()) });
        let mut m = ServicesModel { services: vec![s, svc("10.0.0.2", 80)] };
        let e = save(&m).unwrap_err();
        assert!(e.contains("service tcp 10.0.0.1:80 has synproxy, full-NAT backend 10.1.0.1:80"), "{e}");
        m.services[1].scheduler = Kind::Mh;
        m.services[1].maglev_size = 251;
        assert!(save(&m).unwrap_err().contains("(and 1 more services)"));
        // A Maglev size means nothing to other schedulers.
        m.services.remove(0);
        m.services[0].scheduler = Kind::Rr;
        assert_eq!(save(&m).unwrap(), "-A -t 10.0.0.2:80 -s rr\n");
    }

    #[test]
    fn thresholds_follow_ipvsadms_line() {
        let mut s = svc("10.0.0.1", 80);
        s.backends.push(BackendModel {
            mode: Mode::Tun,
            upper_threshold: 100,
            lower_threshold: 50,
            ..BackendModel::at("10.1.0.1".parse().unwrap())
        });
        let text = save(&ServicesModel { services: vec![s] }).unwrap();
        assert_eq!(
            text,
            "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -i -w 1 --tun-type ipip -x 100 -y 50\n"
        );
    }
}

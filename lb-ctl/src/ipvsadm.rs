//! Reads the rules `ipvsadm-save -n` (or `ipvsadm -Sn`) prints, so IPVS users can move them:
//! `-A -t|-u VIP:PORT -s SCHED [-p [SECS]] [-b FLAGS]` adds a service and
//! `-a -t|-u VIP:PORT -r RIP:PORT -g|-i|-m [-w WEIGHT]` a real server (gatewaying = dr,
//! ipip = tun, masquerading = nat). Firewall-mark services and options lbd has no equivalent
//! for are refused with the line number, never silently dropped.

use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Mode, Protocol, ServiceModel, ServicesModel};
use std::net::IpAddr;

fn endpoint(s: &str) -> Result<(IpAddr, u16), String> {
    let (a, p) = match s.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").ok_or_else(|| format!("'{s}' is not [ADDR]:PORT"))?,
        None => s.rsplit_once(':').ok_or_else(|| format!("'{s}' is not ADDR:PORT"))?,
    };
    Ok((
        a.parse().map_err(|_| format!("'{a}' is not an IP address"))?,
        p.parse().map_err(|_| format!("'{p}' is not a port"))?,
    ))
}

/// Parses `ipvsadm-save -n` output into a service model.
pub fn parse_save(text: &str) -> Result<ServicesModel, String> {
    let mut model = ServicesModel::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |e: String| format!("line {}: {e}", n + 1);
        let toks: Vec<&str> = line.split_whitespace().collect();
        let mut i = 1;
        let mut proto = None;
        let mut svc = None;
        let mut sched = Kind::Wlc; // ipvsadm's default scheduler
        let mut persistence = 0;
        let mut hash_ports = false;
        let mut real = None;
        let mut mode = Mode::Dr; // ipvsadm's default forwarding method is gatewaying
        let mut weight = 1;
        while i < toks.len() {
            let arg = toks.get(i + 1).copied();
            let need = || arg.ok_or_else(|| at(format!("{} needs a value", toks[i])));
            match toks[i] {
                "-t" | "--tcp-service" | "-u" | "--udp-service" => {
                    proto = Some(if toks[i].contains('u') { Protocol::Udp } else { Protocol::Tcp });
                    svc = Some(endpoint(need()?).map_err(at)?);
                    i += 2;
                }
                "-f" | "--fwmark-service" => return Err(at("firewall-mark services are not supported".into())),
                "-s" | "--scheduler" => {
                    sched = need()?.parse().map_err(at)?;
                    i += 2;
                }
                "-p" | "--persistent" => match arg.and_then(|a| a.parse::<u32>().ok()) {
                    Some(secs) => {
                        persistence = secs;
                        i += 2;
                    }
                    None => {
                        persistence = 300; // ipvsadm's default persistence
                        i += 1;
                    }
                },
                "-b" | "--sched-flags" => {
                    for f in need()?.split(',') {
                        match f {
                            "sh-port" | "mh-port" => hash_ports = true,
                            "sh-fallback" | "mh-fallback" => {}
                            other => return Err(at(format!("scheduler flag '{other}' is not supported"))),
                        }
                    }
                    i += 2;
                }
                "-r" | "--real-server" => {
                    real = Some(endpoint(need()?).map_err(at)?);
                    i += 2;
                }
                "-g" | "--gatewaying" => {
                    mode = Mode::Dr;
                    i += 1;
                }
                "-i" | "--ipip" => {
                    mode = Mode::Tun;
                    i += 1;
                }
                "-m" | "--masquerading" => {
                    mode = Mode::Nat;
                    i += 1;
                }
                "-w" | "--weight" => {
                    weight =
                        need()?.parse().map_err(|_| at(format!("'{}' is not a weight", arg.unwrap_or_default())))?;
                    i += 2;
                }
                other => return Err(at(format!("option '{other}' is not supported"))),
            }
        }
        let (proto, (vip, port)) = match (proto, svc) {
            (Some(p), Some(s)) => (p, s),
            _ => return Err(at("no -t or -u service".into())),
        };
        match toks[0] {
            "-A" | "--add-service" => model.services.push(ServiceModel {
                scheduler: sched,
                persistence,
                hash_ports,
                ..ServiceModel::new(vip, port, proto)
            }),
            "-a" | "--add-server" => {
                let (address, rport) = real.ok_or_else(|| at("-a needs -r RIP:PORT".into()))?;
                let s = model
                    .services
                    .iter_mut()
                    .find(|s| s.vip == vip && s.port == port && s.protocol == proto)
                    .ok_or_else(|| at(format!("real server for a service not added before ({vip}:{port})")))?;
                s.backends.push(BackendModel { port: rport, weight, mode, ..BackendModel::at(address) });
            }
            other => return Err(at(format!("'{other}' is not -A or -a"))),
        }
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As ipvsadm-save -n prints it (ipvsadm 1.31).
    const SAVED: &str = "-A -t 10.0.0.100:80 -s rr\n\
        -a -t 10.0.0.100:80 -r 10.1.0.11:8080 -m -w 1\n\
        -a -t 10.0.0.100:80 -r 10.1.0.12:8080 -m -w 3\n\
        -A -u 10.0.0.100:53 -s sh -b sh-port -p 600\n\
        -a -u 10.0.0.100:53 -r 10.0.0.21:53 -g -w 1\n\
        -A -t [2001:db8::100]:443 -s wlc\n\
        -a -t [2001:db8::100]:443 -r [2001:db8:1::11]:443 -i -w 0\n";

    #[test]
    fn reads_ipvsadm_save_output() {
        let m = parse_save(SAVED).unwrap();
        assert_eq!(m.services.len(), 3);
        let web = &m.services[0];
        assert_eq!(
            (web.scheduler, web.backends.len(), web.backends[1].weight, web.backends[1].mode),
            (Kind::Rr, 2, 3, Mode::Nat)
        );
        let dns = &m.services[1];
        assert_eq!(
            (dns.protocol, dns.scheduler, dns.persistence, dns.hash_ports, dns.backends[0].mode),
            (Protocol::Udp, Kind::Sh, 600, true, Mode::Dr)
        );
        let v6 = &m.services[2];
        assert_eq!(
            (v6.port, v6.backends[0].mode, v6.backends[0].weight, v6.backends[0].port),
            (443, Mode::Tun, 0, 443)
        );
    }

    #[test]
    fn refuses_what_it_cannot_represent() {
        assert!(parse_save("-A -f 100 -s rr\n").unwrap_err().contains("line 1: firewall-mark"));
        assert!(parse_save("-A -t 10.0.0.1:80 -s rr -x 10\n").unwrap_err().contains("option '-x'"));
        assert!(parse_save("-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m\n").unwrap_err().contains("not added before"));
        assert!(parse_save("-A -t 10.0.0.1:80 -s nope\n").unwrap_err().contains("unknown scheduler"));
    }
}

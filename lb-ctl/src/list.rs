//! `lbctl list`: the table of `ipvsadm -Ln` and its --stats, --rate, --thresholds and
//! --tun-info forms, column for column (ipvsadm.c `print_title`, `print_service_entry`), in
//! ipvsadm's order unless --nosort; then lbd's health section below it.

use lb_core::service::Protocol;
use lb_ctl::ServiceView;
use std::io::Write;

/// println! that tolerates a closed stdout (lbctl list | head) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

/// Counters of the later sample minus the earlier one (a one-second rate).
pub fn per_second(now: &lb_ctl::Traffic, then: &lb_ctl::Traffic) -> lb_ctl::Traffic {
    lb_ctl::Traffic {
        conns: now.conns.saturating_sub(then.conns),
        in_packets: now.in_packets.saturating_sub(then.in_packets),
        in_bytes: now.in_bytes.saturating_sub(then.in_bytes),
        out_packets: now.out_packets.saturating_sub(then.out_packets),
        out_bytes: now.out_bytes.saturating_sub(then.out_bytes),
    }
}

/// Which of ipvsadm's listings.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Plain,
    Stats,
    Rate,
    Thresholds,
    TunInfo,
}

/// ipvsadm's order: services by family, protocol, address, port; backends by address, port.
pub fn sort_views(views: &mut [ServiceView]) {
    views.sort_by_key(|v| lb_ctl::ipvsadm::service_order(&v.service));
    for v in views {
        let s = &v.service;
        v.backends.sort_by_key(|b| lb_ctl::ipvsadm::backend_order(s, &b.backend));
    }
}

/// A counter as `ipvsadm --exact` prints it: at least 9 wide, a space before.
fn exact(n: u64) -> String {
    let digits = n.to_string();
    format!("{digits:>w$}", w = (digits.len() + 1).max(9))
}

/// The five counters of --stats, or of --rate.
fn counters(t: &lb_ctl::Traffic) -> String {
    [t.conns, t.in_packets, t.out_packets, t.in_bytes, t.out_bytes].into_iter().map(exact).collect()
}

/// The table of `ipvsadm -Ln` and its --stats, --rate, --thresholds and --tun-info forms,
/// column for column (`print_title`, `print_service_entry`); counters exact, as with -X.
pub fn print_list(views: &[ServiceView], layout: Layout) {
    use lb_ctl::ipvsadm::{address_port, forward_name, list_service, tunnel_info};
    out!("lbd virtual server table (lbctl {})", env!("CARGO_PKG_VERSION"));
    let title = "Prot LocalAddress:Port";
    match layout {
        Layout::Stats => {
            out!("{title:<33} {:>8} {:>8} {:>8} {:>8} {:>8}", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
        }
        Layout::Rate => out!("{title:<33} {:>8} {:>8} {:>8} {:>8} {:>8}", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"),
        Layout::Thresholds => {
            out!("{title:<33} {:<10} {:<10} {:<10} {:<10}", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn");
        }
        Layout::TunInfo | Layout::Plain => out!("{title} Scheduler Flags"),
    }
    match layout {
        Layout::Stats | Layout::Rate | Layout::Thresholds => out!("  -> RemoteAddress:Port"),
        Layout::TunInfo => out!("  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn"),
        Layout::Plain => out!("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"),
    }
    for v in views {
        let s = &v.service;
        if matches!(layout, Layout::Stats | Layout::Rate) {
            let proto = if s.protocol == Protocol::Tcp { "TCP" } else { "UDP" };
            out!("{:<33}{}", format!("{proto:<4} {}", address_port(s.vip, s.port)), counters(&v.traffic));
        } else {
            // lbd's own settings follow ipvsadm's flags.
            let synproxy = if s.synproxy { " synproxy" } else { "" };
            out!("{}{synproxy}", list_service(s));
        }
        for b in &v.backends {
            let port = if b.backend.port == 0 { s.port } else { b.backend.port };
            let real = address_port(b.backend.address, port);
            // keepalived's inhibit_on_failure shows a failed backend at weight 0.
            let inhibit = s.check.as_ref().is_some_and(|c| c.inhibit_on_failure);
            let weight = if inhibit && b.state == lb_core::health::BackendState::Down { 0 } else { b.backend.weight };
            let fwd = forward_name(b.backend.mode);
            match layout {
                Layout::Stats | Layout::Rate => out!("  -> {real:<28}{}", counters(&b.traffic)),
                Layout::Thresholds => out!(
                    "  -> {real:<28} {:<10} {:<10} {:<10} {:<10}",
                    b.backend.upper_threshold,
                    b.backend.lower_threshold,
                    b.active,
                    b.inactive
                ),
                Layout::TunInfo => out!(
                    "  -> {real:<28} {fwd:<7} {:<13} {weight:<6} {:<10} {:<10}",
                    tunnel_info(&b.backend),
                    b.active,
                    b.inactive
                ),
                Layout::Plain => out!("  -> {real:<28} {fwd:<7} {weight:<6} {:<10} {:<10}", b.active, b.inactive),
            }
        }
    }
    if !matches!(layout, Layout::Stats | Layout::Rate) {
        print_health(views);
    }
}

/// Backend states and health checks, below the table so that its columns stay ipvsadm's.
fn print_health(views: &[ServiceView]) {
    let mut lines = Vec::new();
    for v in views {
        let s = &v.service;
        let proto = if s.protocol == Protocol::Tcp { "TCP" } else { "UDP" };
        let service = format!("{proto}  {}", lb_ctl::ipvsadm::address_port(s.vip, s.port));
        if !v.up {
            let sorry = if v.sorry_active { "; its sorry server serves" } else { "" };
            lines.push(format!("{service} DOWN: no backend up{sorry}"));
        }
        let checked = s.check.is_some() || s.passive.is_some();
        for b in v.backends.iter().filter(|b| checked || b.state != lb_core::health::BackendState::Up) {
            let port = if b.backend.port == 0 { s.port } else { b.backend.port };
            let last = match &b.check {
                Some(c) => {
                    format!("{}: {} ({:.1} ms, {:.1} s ago)", c.kind, c.reason, c.latency_ms, c.age_ms as f64 / 1000.0)
                }
                None if checked => "not checked yet".into(),
                None => "weight 0".into(),
            };
            lines.push(format!(
                "{service} -> {} {} {last}",
                lb_ctl::ipvsadm::address_port(b.backend.address, port),
                b.state
            ));
        }
    }
    if !lines.is_empty() {
        out!("Health:");
        for l in lines {
            out!("  {l}");
        }
    }
}

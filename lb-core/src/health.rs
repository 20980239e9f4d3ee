//! Backend health: what a service's checks are (the serde model of `[service.check]` and
//! `[service.passive]`, with keepalived's names where it has them), and the pure state machine
//! that turns check results into a backend's state: `fall` failures in a row take it out of
//! scheduling, `rise` successes in a row bring it back (keepalived's and HAProxy's rule). The
//! checks themselves run in lbd, off the worker cores; the data plane only sees the result, as
//! a table in which a down backend has weight 0.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an active check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connection is accepted (keepalived's TCP_CHECK).
    Tcp,
    /// An HTTP/1.0 GET answers the expected status, and its body holds `expect` if set
    /// (HTTP_GET).
    Http,
    /// A UDP datagram (`send`) gets an answer, holding `expect` if set; an ICMP port
    /// unreachable fails at once (keepalived's UDP_CHECK, for DNS-like services).
    Udp,
    /// A command exits 0 (MISC_CHECK). It sees the backend in LBD_BACKEND_ADDRESS and
    /// LBD_BACKEND_PORT.
    Misc,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http => "http",
            CheckKind::Udp => "udp",
            CheckKind::Misc => "misc",
        }
    }
}

fn default_interval_ms() -> u64 {
    2000
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_rise() -> u32 {
    2
}
fn default_fall() -> u32 {
    3
}
fn default_path() -> String {
    "/".into()
}
fn default_status() -> u16 {
    200
}

/// `[service.check]`: one active check for every backend of the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckModel {
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Time between two checks of a backend.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// keepalived's `delay_loop`, in seconds: sets `interval_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_loop: Option<u64>,
    /// Time a check may take before it counts as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// keepalived's `connect_timeout`, in seconds: sets `timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u64>,
    /// Successes in a row that bring a down backend back.
    #[serde(default = "default_rise")]
    pub rise: u32,
    /// Failures in a row that take an up backend out.
    #[serde(default = "default_fall")]
    pub fall: u32,
    /// Port to check instead of the backend's (keepalived's `connect_port`).
    #[serde(default, alias = "connect_port", skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP: the path to GET.
    #[serde(default = "default_path")]
    pub path: String,
    /// HTTP: the status the answer must have.
    #[serde(default = "default_status")]
    pub status_code: u16,
    /// HTTP: a substring the body must hold; UDP: a substring the answer must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<String>,
    /// UDP: the datagram to send (text), or `send_hex` for bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_hex: Option<String>,
    /// MISC: the command, run by `sh -c` (keepalived's `misc_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misc_path: Option<String>,
    /// Keep a failed backend listed with weight 0 instead of removing it from the list
    /// (keepalived's `inhibit_on_failure`). Either way it gets no new connections.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inhibit_on_failure: bool,
    /// Reset the connections of a failed backend instead of letting them run on (IPVS's
    /// `expire_nodest_conn`): their next packet is dropped and the entry expired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expire_on_down: bool,
}

fn default_syn_failures() -> u32 {
    5
}
fn default_window_ms() -> u64 {
    10_000
}
fn default_holddown_ms() -> u64 {
    10_000
}

/// `[service.passive]`: what the data path sees of each backend. SYNs a backend refused with
/// a RST and SYNs it left unanswered (the client sent the SYN again, or the embryonic
/// connection expired) count as failures; `syn_failures` of them within `window_ms` take the
/// backend out. An active check brings it back; without one it returns after `holddown_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PassiveModel {
    #[serde(default = "default_syn_failures")]
    pub syn_failures: u32,
    #[serde(default = "default_window_ms")]
    pub window_ms: u64,
    #[serde(default = "default_holddown_ms")]
    pub holddown_ms: u64,
}

impl CheckModel {
    /// The interval in force (`delay_loop` wins when set).
    pub fn interval(&self) -> u64 {
        self.delay_loop.map_or(self.interval_ms, |s| s * 1000)
    }

    /// The timeout in force (`connect_timeout` wins when set).
    pub fn timeout(&self) -> u64 {
        self.connect_timeout.map_or(self.timeout_ms, |s| s * 1000)
    }

    /// The bytes a UDP check sends.
    pub fn udp_payload(&self) -> Vec<u8> {
        match (&self.send_hex, &self.send) {
            (Some(h), _) => decode_hex(h).unwrap_or_default(),
            (None, Some(s)) => s.as_bytes().to_vec(),
            (None, None) => Vec::new(),
        }
    }

    /// Checks what serde cannot; `at` prefixes the field in messages.
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.interval() == 0 || self.timeout() == 0 {
            return Err(format!("{at}.interval_ms, timeout_ms: must be at least 1 ms"));
        }
        if self.timeout() > self.interval() {
            return Err(format!(
                "{at}.timeout_ms: {} ms is longer than the interval ({} ms)",
                self.timeout(),
                self.interval()
            ));
        }
        if self.rise == 0 || self.fall == 0 {
            return Err(format!("{at}.rise, fall: must be at least 1"));
        }
        if self.port == Some(0) {
            return Err(format!("{at}.port: must not be 0"));
        }
        if let Some(h) = &self.send_hex
            && decode_hex(h).is_none()
        {
            return Err(format!("{at}.send_hex: '{h}' is not an even number of hex digits"));
        }
        match self.kind {
            CheckKind::Misc if self.misc_path.as_deref().is_none_or(str::is_empty) => {
                Err(format!("{at}.misc_path: a misc check needs the command to run"))
            }
            CheckKind::Http if !self.path.starts_with('/') || self.path.contains([' ', '\r', '\n']) => {
                Err(format!("{at}.path: '{}' is not an absolute path without spaces", self.path))
            }
            CheckKind::Http if !(100..=599).contains(&self.status_code) => {
                Err(format!("{at}.status_code: {} is not an HTTP status", self.status_code))
            }
            CheckKind::Udp if self.send.is_none() && self.send_hex.is_none() => {
                Err(format!("{at}.send: a udp check needs a datagram to send (send or send_hex)"))
            }
            _ => Ok(()),
        }
    }
}

impl PassiveModel {
    pub fn validate(&self, at: &str) -> Result<(), String> {
        if self.syn_failures == 0 || self.window_ms == 0 || self.holddown_ms == 0 {
            return Err(format!("{at}: syn_failures, window_ms and holddown_ms must be at least 1"));
        }
        Ok(())
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// A backend's state, as `lbctl list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    #[default]
    Up,
    /// Failed its checks: no new connections.
    Down,
    /// Weight 0 by configuration: no new connections, existing ones run on.
    Draining,
}

impl BackendState {
    pub fn name(self) -> &'static str {
        match self {
            BackendState::Up => "up",
            BackendState::Down => "down",
            BackendState::Draining => "draining",
        }
    }
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The rise/fall counter of one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    pub up: bool,
    /// Results in a row that disagree with `up`.
    streak: u32,
}

impl Default for RiseFall {
    /// A new backend is up until checks say otherwise (keepalived's default; HAProxy's too).
    fn default() -> Self {
        RiseFall { up: true, streak: 0 }
    }
}

impl RiseFall {
    /// A backend that starts down (taken out by the passive check, say).
    pub fn down() -> Self {
        RiseFall { up: false, streak: 0 }
    }

    /// Records one result; returns the new state when it changed.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak >= if self.up { fall } else { rise } {
            self.up = ok;
            self.streak = 0;
            return Some(ok);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_failures_in_a_row_take_it_down_and_rise_successes_bring_it_back() {
        let mut h = RiseFall::default();
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), None, "a success breaks the streak");
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), Some(false));
        assert!(!h.up);
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(false, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), None);
        assert_eq!(h.record(true, 2, 3), Some(true));
    }

    fn check(text: &str) -> Result<CheckModel, String> {
        let c: CheckModel = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate("service[0].check").map(|()| c)
    }

    #[test]
    fn keepalived_names_and_refusals() {
        let c = check("type = \"tcp\"\ndelay_loop = 3\nconnect_timeout = 2\nconnect_port = 8081\n").unwrap();
        assert_eq!((c.interval(), c.timeout(), c.port), (3000, 2000, Some(8081)));
        assert!(check("type = \"misc\"\n").unwrap_err().contains("service[0].check.misc_path"));
        assert!(check("type = \"udp\"\n").unwrap_err().contains("check.send"));
        assert_eq!(check("type = \"udp\"\nsend_hex = \"00 01 ff\"\n").unwrap().udp_payload(), [0, 1, 0xff]);
        assert!(check("type = \"udp\"\nsend_hex = \"0g\"\n").unwrap_err().contains("send_hex"));
        assert!(check("type = \"http\"\npath = \"x\"\n").unwrap_err().contains("check.path"));
        assert!(check("type = \"tcp\"\ntimeout_ms = 5000\n").unwrap_err().contains("longer than the interval"));
        assert!(check("type = \"tcp\"\nrise = 0\n").unwrap_err().contains("rise, fall"));
        assert!(check("type = \"icmp\"\n").unwrap_err().contains("icmp"));
        assert!(check("type = \"tcp\"\nintervall_ms = 5\n").unwrap_err().contains("intervall_ms"));
    }
}

//! Helpers the integration tests share: a free loopback port, lbd's Prometheus counters, and
//! binaries of other workspace packages (lbctl, lbgen), which cargo does not build for this
//! package's tests.
// Each test crate uses a different subset.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

/// A loopback TCP port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The sum over every label set (workers) of one of lbd's Prometheus counters; `None` until
/// the endpoint answers.
pub fn metric(port: u16, name: &str) -> Option<u64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .reduce(|a, b| a + b)
}

/// Builds `bin` of workspace package `package` (debug profile) and returns its path.
pub fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
    assert!(status.success(), "cannot build {bin}");
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    PathBuf::from(target).join("debug").join(bin)
}

//! Build script of the lbd binary: records which DPDK it is built against (for `lbd --version`)
//! and fails early, naming the packages to install, when DPDK's development files are missing.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let out = Command::new("pkg-config").args(["--modversion", "libdpdk"]).output();
    let version = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => {
            panic!("\n\nlbd needs DPDK: apt-get install -y dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config\n\n")
        }
    };
    println!("cargo:rustc-env=LBD_DPDK_VERSION={version}");
}

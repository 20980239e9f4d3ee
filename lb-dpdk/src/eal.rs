//! The Environment Abstraction Layer: built from an argument builder, initialised once per
//! process (DPDK refuses a second `rte_eal_init`), cleaned up at shutdown so hugepage files are
//! released.

use crate::ffi::{self, DpdkError};
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// EAL options lbd uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalArgs {
    /// Unique per process: names hugepage files and the runtime directory.
    pub file_prefix: String,
    /// Cores EAL may use (`-l`); the first is EAL's main core.
    pub cores: Vec<usize>,
    /// Virtual devices (`--vdev`), such as "net_af_xdp0,iface=eth1".
    pub vdevs: Vec<String>,
    /// PCI devices to use (`-a`); none means EAL probes none when vdevs are given.
    pub pci: Vec<String>,
    /// Run without hugepages (`--no-huge`, with `-m memory_mb`).
    pub no_huge: bool,
    /// Memory to reserve in MiB (`-m`); needed with `no_huge`.
    pub memory_mb: Option<u32>,
    /// Leave no files behind (`--in-memory`); not with `no_huge`.
    pub in_memory: bool,
    /// Extra options passed as they are.
    pub extra: Vec<String>,
}

impl EalArgs {
    /// The argv EAL receives (argv[0] first).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["lbd".to_string(), format!("--file-prefix={}", self.file_prefix)];
        if !self.cores.is_empty() {
            a.push("-l".into());
            a.push(self.cores.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
        }
        for v in &self.vdevs {
            a.push(format!("--vdev={v}"));
        }
        // Short options take their value as the next argument: getopt would read "-m=256" as
        // the value "=256", which EAL's atoi turns into 0 (its 64 MiB no-huge default).
        for p in &self.pci {
            a.push("-a".into());
            a.push(p.clone());
        }
        if self.pci.is_empty() && !self.vdevs.is_empty() {
            // Only the configured virtual devices: do not grab PCI NICs on the host.
            a.push("--no-pci".into());
        }
        if self.no_huge {
            a.push("--no-huge".into());
        } else if self.in_memory {
            a.push("--in-memory".into());
        }
        if let Some(m) = self.memory_mb {
            a.push("-m".into());
            a.push(m.to_string());
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// Proof that EAL is initialised in this process.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises EAL; a second call in the same process is refused.
    pub fn init(args: &EalArgs) -> Result<Eal, DpdkError> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError {
                call: "rte_eal_init",
                code: 114,
                text: "EAL is already initialised in this process".into(),
            });
        }
        if let Err(e) = ffi::eal_init(&args.to_args()) {
            INITIALISED.store(false, Ordering::SeqCst);
            return Err(e);
        }
        Ok(Eal { _private: () })
    }

    /// Releases EAL's resources. Ports must be closed first.
    pub fn cleanup(self) -> Result<(), DpdkError> {
        ffi::eal_cleanup()
    }
}

/// Free 2 MiB hugepages the kernel has reserved (0 when none, or unreadable).
pub fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("HugePages_Free:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_argv() {
        let a = EalArgs {
            file_prefix: "t1".into(),
            cores: vec![1, 0],
            vdevs: vec!["net_null0".into()],
            no_huge: true,
            memory_mb: Some(256),
            ..Default::default()
        };
        assert_eq!(
            a.to_args(),
            ["lbd", "--file-prefix=t1", "-l", "1,0", "--vdev=net_null0", "--no-pci", "--no-huge", "-m", "256"]
        );
        let b = EalArgs {
            file_prefix: "t2".into(),
            pci: vec!["0000:01:00.0".into()],
            in_memory: true,
            ..Default::default()
        };
        assert_eq!(b.to_args(), ["lbd", "--file-prefix=t2", "-a", "0000:01:00.0", "--in-memory"]);
    }
}

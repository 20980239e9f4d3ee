//! Generates DPDK bindings with bindgen against the system DPDK found by pkg-config, and
//! compiles the C shim for DPDK's static inline functions. Nothing generated is committed.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn pkg_config(args: &[&str]) -> Result<String, String> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("libdpdk")
        .output()
        .map_err(|e| format!("cannot run pkg-config ({e}); install it: apt-get install -y pkg-config"))?;
    if !out.status.success() {
        return Err(format!(
            "pkg-config cannot find libdpdk: {}\nInstall DPDK's development files: apt-get install -y dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let cflags = match pkg_config(&["--cflags"]) {
        Ok(f) => f,
        Err(e) => {
            // A build script's panic message is what the user sees: name the package to install.
            panic!("\n\nlb-dpdk needs DPDK 22.11 or newer.\n{e}\n\n");
        }
    };
    let libs = pkg_config(&["--libs"]).unwrap_or_else(|e| panic!("{e}"));
    let flags: Vec<&str> = cflags.split_whitespace().collect();

    // Link every library pkg-config names; shared DPDK loads its drivers from its plugin dir.
    for tok in libs.split_whitespace() {
        if let Some(dir) = tok.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(lib) = tok.strip_prefix("-l") {
            println!("cargo:rustc-link-lib={lib}");
        }
    }
    // The vdev bus (rte_vdev_init, to hot-plug a TAP port) is a driver library pkg-config's
    // shared link line leaves out.
    println!("cargo:rustc-link-lib=rte_bus_vdev");

    let mut build = cc::Build::new();
    build.file("src/shim.c").define("ALLOW_EXPERIMENTAL_API", None).warnings(false);
    // -include rte_config.h and -march must reach the C compiler too, or rte_memcpy.h fails.
    let mut i = 0;
    while i < flags.len() {
        if flags[i] == "-include" && i + 1 < flags.len() {
            build.flag("-include").flag(flags[i + 1]);
            i += 2;
            continue;
        }
        build.flag(flags[i]);
        i += 1;
    }
    build.compile("lb_dpdk_shim");

    let bindings = bindgen::Builder::default()
        .header_contents(
            "lb_dpdk.h",
            "#include <rte_eal.h>\n#include <rte_ethdev.h>\n#include <rte_mbuf.h>\n#include <rte_mempool.h>\n\
             #include <rte_lcore.h>\n#include <rte_errno.h>\n#include <rte_version.h>\n#include <rte_pdump.h>\n\
             #include <rte_bus_vdev.h>\n\
             uint16_t lb_rx_burst(uint16_t, uint16_t, struct rte_mbuf **, uint16_t);\n\
             uint16_t lb_tx_burst(uint16_t, uint16_t, struct rte_mbuf **, uint16_t);\n\
             struct rte_mbuf *lb_pktmbuf_alloc(struct rte_mempool *);\n\
             void lb_pktmbuf_free(struct rte_mbuf *);\n\
             char *lb_pktmbuf_prepend(struct rte_mbuf *, uint16_t);\n\
             char *lb_pktmbuf_append(struct rte_mbuf *, uint16_t);\n\
             int lb_pktmbuf_trim(struct rte_mbuf *, uint16_t);\n\
             char *lb_pktmbuf_adj(struct rte_mbuf *, uint16_t);\n\
             uint64_t lb_rdtsc(void);\nuint64_t lb_tsc_hz(void);\nint lb_errno(void);\nvoid lb_prefetch0(const void *);\n\
             uint16_t lb_mbuf_refcnt_read(const struct rte_mbuf *);\nvoid lb_mbuf_refcnt_update(struct rte_mbuf *, int16_t);\n\
             int64_t lb_packet_ring_drops(const char *);\nvoid *lb_map_huge(size_t, int);\nvoid lb_unmap(void *, size_t);\n\
             void *lb_remap(void *, size_t, size_t);\n",
        )
        .clang_args(flags.iter().copied())
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .allowlist_function("rte_eal_init|rte_eal_cleanup|rte_strerror|rte_version|rte_socket_id|rte_pdump_init|rte_pdump_uninit|rte_vdev_init")
        .allowlist_function("rte_eth_dev_(configure|start|stop|close|count_avail|info_get|socket_id|set_mtu|get_name_by_port|get_port_by_name|rss_hash_update|rss_reta_update|rss_reta_query)")
        .allowlist_function("rte_eth_(rx|tx)_queue_setup|rte_eth_macaddr_get|rte_eth_dev_default_mac_addr_set|rte_eth_promiscuous_enable|rte_eth_stats_get|rte_eth_dev_is_valid_port|rte_eth_link_get_nowait")
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free|rte_mempool_avail_count|rte_mempool_in_use_count")
        .allowlist_function("lb_.*")
        .allowlist_type("rte_eth_conf|rte_eth_dev_info|rte_ether_addr|rte_eth_stats|rte_eth_rss_conf|rte_eth_rss_reta_entry64|rte_eth_link|rte_mbuf|rte_mempool")
        .allowlist_var("RTE_ETH_RSS_.*|RTE_ETH_MQ_RX_.*|RTE_MBUF_DEFAULT_BUF_SIZE|RTE_PKTMBUF_HEADROOM|RTE_ETH_RETA_GROUP_SIZE|RTE_MAX_ETHPORTS")
        .blocklist_item("per_lcore_.*")
        .opaque_type("rte_arp_ipv4|rte_arp_hdr")
        .no_debug("rte_flow_item_gtp_psc")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on the DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
    bindings.write_to_file(out).expect("write bindings");
}

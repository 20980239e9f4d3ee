/* Out-of-line wrappers for DPDK's static inline hot-path functions and thread-local errno,
 * which bindgen cannot call. Each is a one-line forward; the compiler inlines DPDK's body here.
 * lb_packet_ring_drops reads a kernel counter DPDK 22.11 leaves unread; lb_map_huge, lb_remap and
 * lb_unmap are the global allocator's mappings. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mremap */
#endif
#include <dirent.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

uint16_t lb_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t lb_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *lb_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

void lb_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *lb_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }

char *lb_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

int lb_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }

char *lb_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

uint64_t lb_rdtsc(void) { return rte_rdtsc(); }

uint64_t lb_tsc_hz(void) { return rte_get_tsc_hz(); }

int lb_errno(void) { return rte_errno; }

void lb_prefetch0(const void *p) { rte_prefetch0(p); }

uint16_t lb_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }

void lb_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v) { rte_mbuf_refcnt_update(m, v); }

/* Frames the kernel dropped because the receive ring of one of this process's AF_PACKET sockets
 * on interface `iface` was full, since the last call: the kernel resets the count as it is read.
 * DPDK 22.11's af_packet PMD owns those sockets and never reads the count (its imissed stays 0),
 * so ring overflows would go unseen. -1 when the interface or /proc/self/fd is not there. */
int64_t lb_packet_ring_drops(const char *iface) {
    unsigned int ifindex = if_nametoindex(iface);
    if (ifindex == 0)
        return -1;
    DIR *dir = opendir("/proc/self/fd");
    if (dir == NULL)
        return -1;
    int64_t drops = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd == dirfd(dir))
            continue;
        int domain = 0;
        socklen_t len = sizeof domain;
        if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_PACKET)
            continue;
        struct sockaddr_ll sll;
        socklen_t alen = sizeof sll;
        memset(&sll, 0, sizeof sll);
        if (getsockname((int)fd, (struct sockaddr *)&sll, &alen) != 0 || sll.sll_ifindex != (int)ifindex)
            continue;
        struct tpacket_stats_v3 st;
        socklen_t slen = sizeof st;
        memset(&st, 0, sizeof st);
        if (getsockopt((int)fd, SOL_PACKET, PACKET_STATISTICS, &st, &slen) == 0)
            drops += st.tp_drops;
    }
    closedir(dir);
    return drops;
}

/* The global allocator's large blocks: anonymous mappings of whole 2 MiB units, advised for
 * transparent huge pages (when `huge`) before anything touches them. NULL when the mapping
 * fails; the advice is only a hint (refused when THP is off). */
void *lb_map_huge(size_t len, int huge) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (huge)
        madvise(p, len, MADV_HUGEPAGE);
    return p;
}

void lb_unmap(void *p, size_t len) { munmap(p, len); }

/* Grows or shrinks a mapping of lb_map_huge, moving it if need be (the advice moves with it). */
void *lb_remap(void *p, size_t old_len, size_t new_len) {
    void *q = mremap(p, old_len, new_len, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
}

//! Owning mbufs and the burst arrays the hot loop reuses.
//!
//! [`Mbuf`] owns one `rte_mbuf` and frees it on drop; it implements lb-core's `Frame`, so the
//! pipeline reads and rewrites packet memory in place. [`RxBurst`] and [`TxBuffer`] are fixed
//! arrays of raw pointers filled by `rte_eth_rx_burst` and drained by `rte_eth_tx_burst`; no
//! allocation happens per packet or per burst.

use crate::ffi::{MempoolRef, PortId, QueueId};
use crate::sys;
use lb_core::pipeline::{Frame, L4Checksum};
use std::ptr::NonNull;

/// Packets per burst (DPDK l3fwd's MAX_PKT_BURST).
pub const BURST: usize = 32;
const BURST_U16: u16 = 32;
const _: () = assert!(BURST_U16 as usize == BURST);

/// One packet buffer, owned. Only single-segment mbufs are produced (ports do not scatter).
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an mbuf is owned by exactly one Mbuf value; handing it to another thread (the rings
// between workers) moves that ownership, and DPDK allows freeing an mbuf from any lcore.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes a fresh mbuf from a pool.
    pub fn alloc(pool: &MempoolRef) -> Option<Mbuf> {
        // SAFETY: the pool is live; a NULL return means it is empty.
        NonNull::new(unsafe { sys::lb_pktmbuf_alloc(pool.0.as_ptr()) }).map(Mbuf)
    }

    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: self owns a valid mbuf for its whole life.
        unsafe { self.0.as_ref() }
    }

    /// Gives up ownership (to a TX queue).
    fn into_raw(self) -> *mut sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Starts loading the packet's first cache line (l3fwd prefetches a few packets ahead).
    #[inline]
    pub fn prefetch(&self) {
        let m = self.raw();
        // SAFETY: computing the data address touches no memory; a prefetch never faults.
        unsafe { sys::lb_prefetch0(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)).cast()) }
    }

    /// Sets the input port (for mbufs built by a generator).
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: self owns the mbuf exclusively (&mut self).
        unsafe { self.0.as_mut().port = port };
    }
}

/// A packet a generator builds once and transmits many times (pktgen's static mbufs): each send
/// hands the driver one more reference instead of a copy. Its bytes can be read or patched only
/// while no send still holds it, which is what makes the sharing sound.
pub struct Reusable(Mbuf);

impl Reusable {
    pub fn new(m: Mbuf) -> Self {
        Reusable(m)
    }

    fn exclusive(&self) -> bool {
        // SAFETY: the mbuf is valid; the reference count is read atomically.
        unsafe { sys::lb_mbuf_refcnt_read(self.0.0.as_ptr()) == 1 }
    }

    /// The packet bytes to patch before the next send; `None` while a send still holds it.
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        if self.exclusive() { Some(self.0.data_mut()) } else { None }
    }

    /// A reference for a TX queue; the driver's free drops it, this value keeps the buffer.
    pub fn share(&self) -> Mbuf {
        // SAFETY: one more reference is taken before the second owner exists; `data_mut` refuses
        // access until every such owner has freed its reference.
        unsafe { sys::lb_mbuf_refcnt_update(self.0.0.as_ptr(), 1) };
        Mbuf(self.0.0)
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the mbuf; it is returned to its pool exactly once.
        unsafe { sys::lb_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off points at data_len initialised bytes of the mbuf's buffer,
        // which lives as long as the mbuf; the borrow of self keeps it from being freed.
        unsafe {
            std::slice::from_raw_parts(m.buf_addr.cast::<u8>().add(usize::from(m.data_off)), usize::from(m.data_len))
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = {
            let m = self.raw();
            (m.buf_addr.cast::<u8>(), usize::from(m.data_off), usize::from(m.data_len))
        };
        // SAFETY: as in `data`; &mut self makes this the only reference to the bytes.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    fn prepend(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else { return false };
        // SAFETY: rte_pktmbuf_prepend checks the headroom and returns NULL without changing the
        // mbuf when it is too small.
        !unsafe { sys::lb_pktmbuf_prepend(self.0.as_ptr(), n) }.is_null()
    }

    fn set_len(&mut self, len: usize) -> bool {
        let cur = usize::from(self.raw().data_len);
        if len <= cur {
            let Ok(cut) = u16::try_from(cur - len) else { return false };
            // SAFETY: trimming at most data_len bytes of a single-segment mbuf.
            unsafe { sys::lb_pktmbuf_trim(self.0.as_ptr(), cut) == 0 }
        } else {
            let Ok(grow) = u16::try_from(len - cur) else { return false };
            // SAFETY: rte_pktmbuf_append checks the tailroom and returns NULL when short.
            !unsafe { sys::lb_pktmbuf_append(self.0.as_ptr(), grow) }.is_null()
        }
    }

    #[inline]
    fn in_port(&self) -> u16 {
        self.raw().port
    }

    fn adj(&mut self, n: usize) -> bool {
        let Ok(n) = u16::try_from(n) else { return false };
        // SAFETY: rte_pktmbuf_adj checks that the first segment holds n bytes and returns NULL
        // without changing the mbuf otherwise.
        !unsafe { sys::lb_pktmbuf_adj(self.0.as_ptr(), n) }.is_null()
    }

    fn set_in_port(&mut self, port: u16) {
        self.set_port(port);
    }

    #[inline]
    fn l4_checksum(&self) -> L4Checksum {
        // DPDK's RTE_MBUF_F_RX_L4_CKSUM_* bits: BAD is bit 3, GOOD bit 8, both mean NONE (the
        // packet carries no checksum the port could check), neither UNKNOWN.
        const BAD: u64 = 1 << 3;
        const GOOD: u64 = 1 << 8;
        match self.raw().ol_flags & (BAD | GOOD) {
            GOOD => L4Checksum::Good,
            BAD => L4Checksum::Bad,
            _ => L4Checksum::Unknown,
        }
    }
}

/// A burst received from a queue.
pub struct RxBurst {
    slots: [*mut sys::rte_mbuf; BURST],
    len: usize,
}

impl Default for RxBurst {
    fn default() -> Self {
        RxBurst { slots: [std::ptr::null_mut(); BURST], len: 0 }
    }
}

impl RxBurst {
    /// Receives up to `BURST` packets; returns how many. Packets still held are freed first.
    #[inline]
    pub fn receive(&mut self, port: PortId, queue: QueueId) -> usize {
        self.clear();
        // SAFETY: slots has room for BURST pointers; the driver writes `n` valid mbuf pointers
        // to the front and takes no other action on the array.
        let n = unsafe { sys::lb_rx_burst(port.0, queue.0, self.slots.as_mut_ptr(), BURST_U16) };
        self.len = usize::from(n);
        self.len
    }

    /// The received packets as owned mbufs, to process in place.
    #[inline]
    pub fn frames(&mut self) -> &mut [Mbuf] {
        // SAFETY: the first `len` slots hold non-null mbufs this burst owns; Mbuf is a
        // repr(transparent) NonNull<rte_mbuf>, so the slice reinterprets them without copying.
        unsafe { std::slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Moves the packets out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let len = std::mem::take(&mut self.len);
        // SAFETY: each of the first `len` slots held a non-null owned mbuf; len was reset, so
        // each is moved out exactly once.
        self.slots[..len].iter().map(|p| Mbuf(unsafe { NonNull::new_unchecked(*p) }))
    }

    fn clear(&mut self) {
        self.drain().for_each(drop);
    }
}

impl Drop for RxBurst {
    fn drop(&mut self) {
        self.clear();
    }
}

/// Packets waiting to be sent on one TX queue.
pub struct TxBuffer {
    pub port: PortId,
    pub queue: QueueId,
    slots: [*mut sys::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the buffer owns the mbufs it holds; it moves with its worker thread.
unsafe impl Send for TxBuffer {}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    pub bytes: u64,
    /// Refused by the NIC and freed (never retried in a spin).
    pub dropped: usize,
}

impl TxBuffer {
    pub fn new(port: PortId, queue: QueueId) -> Self {
        TxBuffer { port, queue, slots: [std::ptr::null_mut(); BURST], len: 0 }
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a packet; sends the buffer when it is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Option<Flushed> {
        self.slots[self.len] = m.into_raw();
        self.len += 1;
        (self.len == BURST).then(|| self.flush())
    }

    /// Sends what waits; frees and counts what the NIC refuses.
    pub fn flush(&mut self) -> Flushed {
        if self.len == 0 {
            return Flushed::default();
        }
        // SAFETY: the first len slots are owned mbufs; reading their lengths before handing
        // them to the driver is fine.
        let bytes: u64 = self.slots[..self.len].iter().map(|p| u64::from(unsafe { (**p).pkt_len })).sum();
        // SAFETY: the driver takes ownership of the first `sent` mbufs.
        let sent = usize::from(unsafe {
            sys::lb_tx_burst(
                self.port.0,
                self.queue.0,
                self.slots.as_mut_ptr(),
                u16::try_from(self.len).unwrap_or(BURST_U16),
            )
        });
        let mut refused_bytes = 0u64;
        for p in &self.slots[sent..self.len] {
            // SAFETY: mbufs the driver did not take are still ours; each is freed once.
            unsafe {
                refused_bytes += u64::from((**p).pkt_len);
                sys::lb_pktmbuf_free(*p);
            }
        }
        let dropped = self.len - sent;
        self.len = 0;
        Flushed { sent, bytes: bytes - refused_bytes, dropped }
    }
}

impl Drop for TxBuffer {
    fn drop(&mut self) {
        for p in &self.slots[..self.len] {
            // SAFETY: unsent owned mbufs are freed once.
            unsafe { sys::lb_pktmbuf_free(*p) }
        }
    }
}

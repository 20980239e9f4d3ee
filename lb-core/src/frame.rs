//! The packet buffer the pipeline works on: bytes with headroom in front (for tunnel headers and
//! generated ICMP errors) and room behind (for ARP/ND requests made from a short packet).
//! lb-dpdk implements it for mbufs (`rte_pktmbuf_prepend`/`adj`/`append`/`trim`); tests use
//! [`VecFrame`].

/// What the port's receive checksum offload said about the TCP/UDP checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Checksum {
    /// Not checked by the port: verify in software.
    Unknown,
    Good,
    Bad,
}

/// A packet the pipeline may rewrite, grow at the front, or resize.
pub trait Frame {
    /// The port's verdict on the TCP/UDP checksum (DPDK's `RTE_MBUF_F_RX_L4_CKSUM_*`).
    fn l4_checksum(&self) -> L4Checksum {
        L4Checksum::Unknown
    }
    /// The packet bytes.
    fn data(&self) -> &[u8];
    /// The packet bytes, writable.
    fn data_mut(&mut self) -> &mut [u8];
    /// Grows the packet by `n` bytes at the front; false (and unchanged) without headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Sets the length, shrinking or growing at the tail; false (and unchanged) without room.
    fn set_len(&mut self, len: usize) -> bool;
    /// The port the packet arrived on.
    fn in_port(&self) -> u16;
    /// Removes `n` bytes at the front; false (and unchanged) when the packet is shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Says the packet arrived on `port` (the interface a VLAN tag named).
    fn set_in_port(&mut self, port: u16);
}

/// Headroom of a test frame: DPDK's default `RTE_PKTMBUF_HEADROOM`.
pub const HEADROOM: usize = 128;
/// Data room of a test frame after the headroom: DPDK's default mbuf data room.
pub const DATA_ROOM: usize = 2048;

/// A frame in a `Vec<u8>` with mbuf-like headroom and tailroom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VecFrame {
    /// Headroom, then the packet to the end of the vector: the packet is `buf[start..]`, one
    /// bounds check where `start..end` took two (the pipeline reads a packet's bytes a dozen
    /// times, and an mbuf's are a pointer and a length). Never grows past `room`, so it never
    /// reallocates.
    buf: Vec<u8>,
    start: usize,
    room: usize,
    port: u16,
}

impl VecFrame {
    /// A frame holding `bytes`, received on `port`.
    pub fn new(bytes: &[u8], port: u16) -> Self {
        let room = HEADROOM + DATA_ROOM.max(bytes.len());
        let mut buf = Vec::with_capacity(room);
        buf.resize(HEADROOM, 0);
        buf.extend_from_slice(bytes);
        VecFrame { buf, start: HEADROOM, room, port }
    }

    /// Reuses the frame for `bytes` with the full headroom back, as a fresh mbuf from RX has.
    /// Returns false (and leaves the frame empty) when `bytes` does not fit.
    pub fn reset(&mut self, bytes: &[u8]) -> bool {
        self.start = HEADROOM;
        self.buf.resize(HEADROOM, 0);
        if HEADROOM + bytes.len() > self.room {
            return false;
        }
        self.buf.extend_from_slice(bytes);
        true
    }
}

// Inlined like lb-dpdk's mbuf frame, so the benches' frames cost what lbd's do (the two
// accessors always: LLVM left `data_mut` out of line in the packet path, a call per packet).
impl Frame for VecFrame {
    #[inline(always)]
    fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    #[inline(always)]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start {
            return false;
        }
        self.start -= n;
        true
    }
    /// Bytes it adds at the tail are zero.
    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        if self.start + len > self.room {
            return false;
        }
        self.buf.resize(self.start + len, 0);
        true
    }
    #[inline]
    fn in_port(&self) -> u16 {
        self.port
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if self.start + n > self.buf.len() {
            return false;
        }
        self.start += n;
        true
    }
    fn set_in_port(&mut self, port: u16) {
        self.port = port;
    }
}

//! What forwarding reads of a connection, from a whole `Conn` or, for a connection of plain
//! IPv4 keys, from its table entry in place (`Narrow`): the established path then copies one
//! cache line instead of assembling a `Conn` (bench/RESULTS.md §1).

use super::entry::{Entry, Wide};
use super::state::{Dir, TcpState};
use super::table::{Conn, SynProxy};
use crate::flow::{FlowKey, widen};
use crate::service::Mode;

/// A connection's fields as forwarding reads them. Addresses come whole (`widen`ed for IPv4).
pub trait ConnView {
    fn mode(&self) -> Mode;
    fn proto(&self) -> u8;
    fn state(&self) -> TcpState;
    fn backend_id(&self) -> u32;
    fn service_id(&self) -> u32;
    fn expires_ms(&self) -> u64;
    fn acked(&self, dir: Dir) -> u32;
    fn synproxy(&self) -> SynProxy;
    fn seq_delta(&self) -> u32;
    fn tunnel_port(&self) -> u16;
    fn tunnel_csum(&self) -> bool;
    fn orig_src(&self) -> ([u8; 16], u16);
    fn orig_dst(&self) -> ([u8; 16], u16);
    fn reply_src(&self) -> ([u8; 16], u16);
    fn reply_dst(&self) -> ([u8; 16], u16);
    fn orig_v6(&self) -> bool;
    fn reply_v6(&self) -> bool;
    /// The original direction's key (what tunnels hash for their entropy).
    fn orig(&self) -> FlowKey;
}

impl ConnView for Conn {
    #[inline(always)]
    fn mode(&self) -> Mode {
        self.mode
    }
    #[inline(always)]
    fn proto(&self) -> u8 {
        self.orig.proto
    }
    #[inline(always)]
    fn state(&self) -> TcpState {
        self.state
    }
    #[inline(always)]
    fn backend_id(&self) -> u32 {
        self.backend_id
    }
    #[inline(always)]
    fn service_id(&self) -> u32 {
        self.service_id
    }
    #[inline(always)]
    fn expires_ms(&self) -> u64 {
        self.expires_ms
    }
    #[inline(always)]
    fn acked(&self, dir: Dir) -> u32 {
        self.acked[dir as usize]
    }
    #[inline(always)]
    fn synproxy(&self) -> SynProxy {
        self.synproxy
    }
    #[inline(always)]
    fn seq_delta(&self) -> u32 {
        self.seq_delta
    }
    #[inline(always)]
    fn tunnel_port(&self) -> u16 {
        self.tunnel_port
    }
    #[inline(always)]
    fn tunnel_csum(&self) -> bool {
        self.tunnel_csum
    }
    #[inline(always)]
    fn orig_src(&self) -> ([u8; 16], u16) {
        (self.orig.src, self.orig.src_port)
    }
    #[inline(always)]
    fn orig_dst(&self) -> ([u8; 16], u16) {
        (self.orig.dst, self.orig.dst_port)
    }
    #[inline(always)]
    fn reply_src(&self) -> ([u8; 16], u16) {
        (self.reply.src, self.reply.src_port)
    }
    #[inline(always)]
    fn reply_dst(&self) -> ([u8; 16], u16) {
        (self.reply.dst, self.reply.dst_port)
    }
    #[inline(always)]
    fn orig_v6(&self) -> bool {
        self.orig.v6
    }
    #[inline(always)]
    fn reply_v6(&self) -> bool {
        self.reply.v6
    }
    #[inline(always)]
    fn orig(&self) -> FlowKey {
        self.orig
    }
}

/// Where an entry view finds its connection's whole addresses.
pub trait WholeAddrs: Copy {
    /// Address `i` (orig src, orig dst, reply src, reply dst) of the connection of `e`.
    fn whole(&self, e: &Entry, i: usize) -> [u8; 16];
}

/// A connection whose keys are both plain IPv4: every address is in its entry.
impl WholeAddrs for () {
    #[inline(always)]
    fn whole(&self, e: &Entry, i: usize) -> [u8; 16] {
        widen(e.addr4(i))
    }
}

/// A connection with a key that is not plain IPv4: its side array holds all four of its
/// addresses whole (`Entry::pack`).
impl WholeAddrs for Wide {
    #[inline(always)]
    fn whole(&self, _: &Entry, i: usize) -> [u8; 16] {
        self[(i >> 1) & 1][i & 1]
    }
}

/// A connection's entry as a `ConnView`, with what holds its whole addresses: nothing for one
/// whose keys are plain IPv4 (`Narrow`, made by `Entry::narrow`), or a copy of its side array
/// for any other (`WideView`, made by `ConnTable::wide_view`).
#[derive(Clone, Copy)]
pub struct EntryView<A> {
    e: Entry,
    addrs: A,
}

/// The entry of a connection whose keys are both plain IPv4.
pub type Narrow = EntryView<()>;

/// The entry of a connection with a key that is not plain IPv4, with its side array.
pub type WideView = EntryView<Wide>;

// The views are made without an `Option` around them: the established path moved an
// `Option<WideView>` between stack slots at odd offsets, and its reads of those copies could not
// be forwarded from the store buffer (bench/RESULTS.md §1). So each constructor has a
// precondition, which the only caller checks just before and debug builds assert.
impl Entry {
    /// This entry as a `ConnView`, for an entry whose keys are both plain IPv4 (`is_narrow`).
    #[inline(always)]
    pub(crate) fn narrow(&self) -> Narrow {
        debug_assert!(self.is_narrow(), "a narrow view of a wide entry");
        EntryView { e: *self, addrs: () }
    }

    /// This entry as a `ConnView`, with `wide`, the side array's addresses of its connection,
    /// for an entry that is not `is_narrow` (whose side array is empty).
    #[inline(always)]
    pub(super) fn with_addrs(&self, wide: &Wide) -> WideView {
        debug_assert!(!self.is_narrow(), "a wide view of a narrow entry");
        EntryView { e: *self, addrs: *wide }
    }
}

impl<A: WholeAddrs> EntryView<A> {
    #[inline(always)]
    fn endpoint(&self, i: usize) -> ([u8; 16], u16) {
        (self.addrs.whole(&self.e, i), self.e.port(i))
    }
}

impl<A: WholeAddrs> ConnView for EntryView<A> {
    #[inline(always)]
    fn mode(&self) -> Mode {
        self.e.mode
    }
    #[inline(always)]
    fn proto(&self) -> u8 {
        self.e.proto
    }
    #[inline(always)]
    fn state(&self) -> TcpState {
        self.e.state
    }
    #[inline(always)]
    fn backend_id(&self) -> u32 {
        self.e.backend_id
    }
    #[inline(always)]
    fn service_id(&self) -> u32 {
        self.e.service_id
    }
    #[inline(always)]
    fn expires_ms(&self) -> u64 {
        self.e.expires_ms
    }
    #[inline(always)]
    fn acked(&self, dir: Dir) -> u32 {
        self.e.acked[dir as usize]
    }
    #[inline(always)]
    fn synproxy(&self) -> SynProxy {
        self.e.synproxy
    }
    #[inline(always)]
    fn seq_delta(&self) -> u32 {
        self.e.seq_delta
    }
    #[inline(always)]
    fn tunnel_port(&self) -> u16 {
        self.e.tunnel_port
    }
    #[inline(always)]
    fn tunnel_csum(&self) -> bool {
        self.e.tunnel_csum()
    }
    #[inline(always)]
    fn orig_src(&self) -> ([u8; 16], u16) {
        self.endpoint(0)
    }
    #[inline(always)]
    fn orig_dst(&self) -> ([u8; 16], u16) {
        self.endpoint(1)
    }
    #[inline(always)]
    fn reply_src(&self) -> ([u8; 16], u16) {
        self.endpoint(2)
    }
    #[inline(always)]
    fn reply_dst(&self) -> ([u8; 16], u16) {
        self.endpoint(3)
    }
    #[inline(always)]
    fn orig_v6(&self) -> bool {
        self.e.key_is_v6(false)
    }
    #[inline(always)]
    fn reply_v6(&self) -> bool {
        self.e.key_is_v6(true)
    }
    #[inline(always)]
    fn orig(&self) -> FlowKey {
        let ((src, src_port), (dst, dst_port)) = (self.endpoint(0), self.endpoint(1));
        FlowKey { src, dst, src_port, dst_port, proto: self.e.proto, v6: self.orig_v6() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::ConnTable;
    use crate::wire::ip_proto;

    fn check_same(a: &impl ConnView, b: &impl ConnView) {
        assert_eq!((a.mode(), a.proto(), a.state()), (b.mode(), b.proto(), b.state()));
        assert_eq!((a.backend_id(), a.service_id(), a.expires_ms()), (b.backend_id(), b.service_id(), b.expires_ms()));
        assert_eq!((a.acked(Dir::Orig), a.acked(Dir::Reply)), (b.acked(Dir::Orig), b.acked(Dir::Reply)));
        assert_eq!((a.synproxy(), a.seq_delta()), (b.synproxy(), b.seq_delta()));
        assert_eq!((a.tunnel_port(), a.tunnel_csum()), (b.tunnel_port(), b.tunnel_csum()));
        assert_eq!((a.orig_src(), a.orig_dst()), (b.orig_src(), b.orig_dst()));
        assert_eq!((a.reply_src(), a.reply_dst()), (b.reply_src(), b.reply_dst()));
        assert_eq!((a.orig_v6(), a.reply_v6(), a.orig()), (b.orig_v6(), b.reply_v6(), b.orig()));
    }

    #[test]
    fn a_narrow_entry_reads_as_its_connection() {
        let mut t = ConnTable::new(4, 4);
        // A gue connection, whose tunnel fields forwarding reads too.
        let c = Conn { mode: Mode::Gue, live: false, ..crate::conntrack::entry::sample() };
        let id = t.insert(c).unwrap();
        assert!(t.entry(id).is_narrow(), "plain IPv4 keys");
        let n = t.entry(id).narrow();
        check_same(&n, &t.get(id));
        check_same(&n, &Conn { live: true, ..c });

        // Any IPv6 key, or an IPv4 one with stray bytes, has no narrow view, and a wide one that
        // reads as its connection, whichever of its keys is the wide one.
        let mut v6 = c;
        v6.orig = FlowKey::v6([0x20; 16], [0x21; 16], 1, 2, ip_proto::TCP);
        v6.reply.dst_port = 3;
        let mut stray = c;
        stray.orig.src_port = 1;
        stray.reply.dst_port = 2;
        stray.reply.src[7] = 1;
        for wide in [v6, stray] {
            let id = t.insert(wide).unwrap();
            assert!(!t.entry(id).is_narrow());
            check_same(&t.wide_view(id), &Conn { live: true, ..wide });
        }
    }
}

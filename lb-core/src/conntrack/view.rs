//! What forwarding reads of a connection, from a whole `Conn` or, for a connection of plain
//! IPv4 keys, from its table entry in place (`Narrow`): the established path then copies one
//! cache line instead of assembling a `Conn` (bench/RESULTS.md §1).

use super::entry::Entry;
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

/// The entry of a connection whose keys are both plain IPv4, so that it holds every address
/// whole (made only by `Entry::narrow`).
#[derive(Clone, Copy)]
pub struct Narrow(Entry);

impl Entry {
    /// This entry as a `ConnView`, when both its keys are plain IPv4.
    #[inline(always)]
    pub fn narrow(&self) -> Option<Narrow> {
        self.is_narrow().then_some(Narrow(*self))
    }
}

impl Narrow {
    #[inline(always)]
    fn endpoint(&self, i: usize) -> ([u8; 16], u16) {
        (widen(self.0.addr4(i)), self.0.port(i))
    }
}

impl ConnView for Narrow {
    #[inline(always)]
    fn mode(&self) -> Mode {
        self.0.mode
    }
    #[inline(always)]
    fn proto(&self) -> u8 {
        self.0.proto
    }
    #[inline(always)]
    fn state(&self) -> TcpState {
        self.0.state
    }
    #[inline(always)]
    fn backend_id(&self) -> u32 {
        self.0.backend_id
    }
    #[inline(always)]
    fn service_id(&self) -> u32 {
        self.0.service_id
    }
    #[inline(always)]
    fn expires_ms(&self) -> u64 {
        self.0.expires_ms
    }
    #[inline(always)]
    fn acked(&self, dir: Dir) -> u32 {
        self.0.acked[dir as usize]
    }
    #[inline(always)]
    fn synproxy(&self) -> SynProxy {
        self.0.synproxy
    }
    #[inline(always)]
    fn seq_delta(&self) -> u32 {
        self.0.seq_delta
    }
    #[inline(always)]
    fn tunnel_port(&self) -> u16 {
        self.0.tunnel_port
    }
    #[inline(always)]
    fn tunnel_csum(&self) -> bool {
        self.0.tunnel_csum()
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
        false
    }
    #[inline(always)]
    fn reply_v6(&self) -> bool {
        false
    }
    #[inline(always)]
    fn orig(&self) -> FlowKey {
        let ((src, src_port), (dst, dst_port)) = (self.endpoint(0), self.endpoint(1));
        FlowKey { src, dst, src_port, dst_port, proto: self.0.proto, v6: false }
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
        let n = t.entry(id).narrow().expect("plain IPv4 keys");
        check_same(&n, &t.get(id));
        check_same(&n, &Conn { live: true, ..c });

        // Any IPv6 key, or an IPv4 one with stray bytes, has no narrow view.
        let mut v6 = c;
        v6.orig = FlowKey::v6([0x20; 16], [0x21; 16], 1, 2, ip_proto::TCP);
        v6.reply.dst_port = 3;
        let id = t.insert(v6).unwrap();
        assert!(t.entry(id).narrow().is_none());
        let mut stray = c;
        stray.orig.src_port = 1;
        stray.reply.dst_port = 2;
        stray.reply.src[7] = 1;
        let id = t.insert(stray).unwrap();
        assert!(t.entry(id).narrow().is_none());
        assert_eq!(t.get(id).reply.src[7], 1);
    }
}

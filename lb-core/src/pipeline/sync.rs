//! Connection sync in the worker: which changes the peers hear of, and how a peer's event
//! becomes an entry here. The design and the wire format are in `crate::sync`.

use super::Worker;
use super::forward::{add_load, recount, timeout_for, timeout_ms, unload};
use crate::conntrack::{Conn, ConnId, Dir, TcpState};
use crate::service::Table;
use crate::sync::{SyncEvent, SyncKind};

/// Events a worker holds between bursts (a burst emits at most one per packet; the runtime
/// takes them after each).
pub const MAX_SYNC_EVENTS: usize = 64;

/// The low 32 bits of the clock, never 0 (0 means "never synced").
fn clock32(now_ms: u64) -> u32 {
    // Compared with wrapping arithmetic, so the low half is enough.
    #[allow(clippy::cast_possible_truncation)]
    let low = now_ms as u32;
    low.max(1)
}

/// A closing state: its copy on the peers expires with the closing timeout, not refreshed.
fn closing(s: TcpState) -> bool {
    matches!(s, TcpState::TimeWait | TcpState::Close | TcpState::LastAck)
}

/// Queues an event about connection `id` for the peers (or counts it lost when the outbox is
/// full) and notes when they heard of it.
fn emit(w: &mut Worker, id: ConnId, kind: SyncKind, now_ms: u64) {
    w.conns.entry_mut(id).synced_ms = clock32(now_ms);
    let conn = w.conns.get(id);
    let ttl_ms = u32::try_from(timeout_ms(w, &conn)).unwrap_or(u32::MAX);
    queue(w, SyncEvent { kind, conn, ttl_ms });
}

/// Puts `ev` in the outbox, or counts it lost when the outbox is full.
fn queue(w: &mut Worker, ev: SyncEvent) {
    if w.sync_out.len() < MAX_SYNC_EVENTS {
        w.sync_out.push(ev);
        w.counters.sync_emitted += 1;
    } else {
        w.counters.sync_lost += 1;
    }
}

/// Connection `id` moved from `prev` to its present state: an established connection is sent
/// whole, a closing one (that the peers knew) as its new state. Handshakes are not sent.
pub(super) fn state_changed(w: &mut Worker, id: ConnId, prev: TcpState, now_ms: u64) {
    let next = w.conns.entry(id).state;
    if next == TcpState::Established {
        emit(w, id, SyncKind::Conn, now_ms);
    } else if closing(next) && !closing(prev) && !prev.is_embryonic() && w.conns.entry(id).synced_ms != 0 {
        emit(w, id, SyncKind::State, now_ms);
    }
}

/// A packet refreshed connection `id`: when half its timeout passed since the peers last heard
/// of it, they hear of it again, so that their copy lives as long as the connection.
pub(super) fn refreshed(w: &mut Worker, id: ConnId, now_ms: u64) {
    let c = w.conns.entry(id);
    if c.is_embryonic() || closing(c.state) {
        return;
    }
    let half = u32::try_from(timeout_for(w, c.proto, c.state) / 2).unwrap_or(u32::MAX);
    if c.synced_ms == 0 || clock32(now_ms).wrapping_sub(c.synced_ms) >= half {
        emit(w, id, SyncKind::Conn, now_ms);
    }
}

/// A new connection: UDP (and a TCP flow adopted mid-stream) is established from the start.
pub(super) fn opened(w: &mut Worker, id: ConnId, now_ms: u64) {
    if !w.conns.entry(id).is_embryonic() {
        emit(w, id, SyncKind::Conn, now_ms);
    }
}

/// lbd dropped connection `c` before its time; peers that knew it drop it too.
pub(super) fn removed(w: &mut Worker, c: &Conn) {
    if c.synced_ms != 0 {
        queue(w, SyncEvent { kind: SyncKind::Remove, conn: *c, ttl_ms: 0 });
    }
}

/// Entries a resync step visits at most (empty ones cost a load each).
const RESYNC_VISITS: usize = 4096;

/// One step of a full resync (a peer started and knows none of our connections): from
/// `cursor`, sends the established connections whole, as many as the outbox holds. Returns
/// where the next step starts, or `None` when the table is done.
pub(super) fn resync_step(w: &mut Worker, cursor: usize, now_ms: u64) -> Option<usize> {
    let end = (cursor + RESYNC_VISITS).min(w.conns.capacity());
    let mut id = cursor;
    while id < end && w.sync_out.len() < MAX_SYNC_EVENTS {
        let cid = u32::try_from(id).unwrap_or(u32::MAX);
        if let Some(c) = w.conns.live(cid)
            && !c.is_embryonic()
            && !closing(c.state)
            && c.expires_ms > now_ms
        {
            emit(w, cid, SyncKind::Conn, now_ms);
        }
        id += 1;
    }
    (id < w.conns.capacity()).then_some(id)
}

/// The service and backend ids in `t` of a connection to `orig`'s destination whose backend
/// is `backend`:`port` (by address: ids are a table's own).
pub(super) fn resolve(t: &Table, c: &Conn) -> Option<(u32, u32)> {
    let o = &c.orig;
    let svc = t.lookup(o.dst, o.v6, o.dst_port, o.proto)?;
    let b = svc
        .backends
        .iter()
        .find(|b| b.addr == c.reply.src && b.v6 == c.reply.v6 && (b.port == c.reply.src_port || svc.key.port == 0))?;
    Some((svc.id, b.id))
}

/// Applies a peer's event; false when it cannot be (no such service or backend here, no such
/// connection to update, the table is full, or the keys collide with another connection).
/// Applying emits nothing: peers never echo each other.
pub(super) fn apply(w: &mut Worker, t: &Table, ev: &SyncEvent, now_ms: u64) -> bool {
    let expires_ms = now_ms + u64::from(ev.ttl_ms);
    let found = w.conns.lookup(&ev.conn.orig);
    match ev.kind {
        SyncKind::Conn => {
            let Some((service_id, backend_id)) = resolve(t, &ev.conn) else { return false };
            let mut c = Conn { service_id, backend_id, expires_ms, synced_ms: clock32(now_ms), ..ev.conn };
            c.acked = [0; 2];
            c.progress = 0;
            match found {
                Some((id, Dir::Orig)) => {
                    let old = w.conns.get(id);
                    if old.reply == c.reply && old.backend_id == c.backend_id && old.mode == c.mode {
                        set_state(w, id, c.state);
                        w.conns.set_expiry(id, expires_ms);
                        w.conns.update(id, |e| {
                            e.synced_ms = c.synced_ms;
                            (e.synproxy, e.seq_delta, e.client_isn) = (c.synproxy, c.seq_delta, c.client_isn);
                        });
                        return true;
                    }
                    // The peer's word is newer than ours (ECMP moved the flow and back).
                    let old = w.conns.remove(id);
                    unload(&mut w.load, &old);
                }
                Some((_, Dir::Reply)) => return false,
                None => {}
            }
            match w.conns.insert(c) {
                Ok(_) => {
                    add_load(&mut w.load, &c);
                    true
                }
                Err(_) => false,
            }
        }
        SyncKind::State => match found {
            Some((id, Dir::Orig)) => {
                set_state(w, id, ev.conn.state);
                w.conns.set_expiry(id, expires_ms);
                w.conns.entry_mut(id).synced_ms = clock32(now_ms);
                true
            }
            _ => false,
        },
        SyncKind::Remove => match found {
            Some((id, Dir::Orig)) => {
                let old = w.conns.remove(id);
                unload(&mut w.load, &old);
                true
            }
            _ => false,
        },
    }
}

/// Moves `id` to `next` with its backend's load, and no event (see `apply`).
fn set_state(w: &mut Worker, id: ConnId, next: TcpState) {
    let c = w.conns.get(id);
    if c.state != next {
        w.conns.set_state(id, next);
        recount(&mut w.load, &c, &w.conns.get(id));
    }
}

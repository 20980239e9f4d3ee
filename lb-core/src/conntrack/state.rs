//! IPVS's TCP connection states, the transitions between them, and the idle timeouts: what a
//! connection's packets do to its state, apart from where connections are kept (`table`).

use crate::service::Mode;
use serde::{Deserialize, Serialize};

/// IPVS's TCP connection states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[repr(u8)]
pub enum TcpState {
    #[default]
    None = 0,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

impl TcpState {
    /// Upper-case name as `ipvsadm -Lnc` prints it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// True before the three-way handshake completed.
    pub fn is_embryonic(self) -> bool {
        matches!(self, TcpState::None | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck)
    }
}

/// Which way a packet travels, for the state table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to service (looked up by the original key).
    Orig,
    /// Backend to client, through the LB (nat and fnat only).
    Reply,
}

/// The TCP event a segment carries, in IPVS's priority order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpEvent {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
}

impl TcpEvent {
    /// Classifies TCP flags; `None` for a segment with none of SYN, FIN, ACK, RST.
    pub fn from_flags(flags: u8) -> Option<TcpEvent> {
        use crate::wire::tcp::flags as f;
        if flags & f::RST != 0 {
            Some(TcpEvent::Rst)
        } else if flags & f::SYN != 0 {
            Some(TcpEvent::Syn)
        } else if flags & f::FIN != 0 {
            Some(TcpEvent::Fin)
        } else if flags & f::ACK != 0 {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

pub(super) use TcpState as S;
type Row = [TcpState; 11];
// Columns: None, Established, SynSent, SynRecv, FinWait, TimeWait, Close, CloseWait, LastAck, Listen, SynAck.
#[rustfmt::skip]
const INPUT: [Row; 4] = [
    /* syn */ [S::SynRecv, S::Established, S::Established, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv],
    /* fin */ [S::Close, S::CloseWait, S::SynSent, S::TimeWait, S::TimeWait, S::TimeWait, S::Close, S::CloseWait, S::LastAck, S::Listen, S::TimeWait],
    /* ack */ [S::Established, S::Established, S::SynSent, S::Established, S::FinWait, S::TimeWait, S::Close, S::CloseWait, S::Close, S::Listen, S::Established],
    /* rst */ [S::Close, S::Close, S::Close, S::SynRecv, S::Close, S::Close, S::Close, S::Close, S::LastAck, S::Listen, S::SynRecv],
];
#[rustfmt::skip]
const OUTPUT: [Row; 4] = [
    /* syn */ [S::SynSent, S::Established, S::SynSent, S::SynRecv, S::SynSent, S::SynSent, S::SynSent, S::SynSent, S::SynSent, S::Listen, S::SynRecv],
    /* fin */ [S::TimeWait, S::FinWait, S::SynSent, S::TimeWait, S::FinWait, S::TimeWait, S::Close, S::TimeWait, S::LastAck, S::Listen, S::TimeWait],
    /* ack */ [S::Established, S::Established, S::SynSent, S::Established, S::FinWait, S::TimeWait, S::Close, S::CloseWait, S::LastAck, S::Established, S::Established],
    /* rst */ [S::Close, S::Close, S::SynSent, S::Close, S::Close, S::TimeWait, S::Close, S::Close, S::Close, S::Close, S::Close],
];
#[rustfmt::skip]
const INPUT_ONLY: [Row; 4] = [
    /* syn */ [S::SynRecv, S::Established, S::Established, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv, S::SynRecv],
    /* fin */ [S::Close, S::FinWait, S::SynSent, S::TimeWait, S::FinWait, S::TimeWait, S::Close, S::CloseWait, S::LastAck, S::Listen, S::TimeWait],
    /* ack */ [S::Established, S::Established, S::SynSent, S::Established, S::FinWait, S::TimeWait, S::Close, S::CloseWait, S::Close, S::Listen, S::Established],
    /* rst */ [S::Close, S::Close, S::Close, S::SynRecv, S::Close, S::Close, S::Close, S::Close, S::LastAck, S::Listen, S::Close],
];

/// IPVS's TCP transition: the state after `event` travelling `dir` on a connection in `mode`.
pub fn tcp_transition(state: TcpState, event: TcpEvent, dir: Dir, mode: Mode) -> TcpState {
    let table = match (dir, mode.sees_replies()) {
        (Dir::Reply, _) => &OUTPUT,
        (Dir::Orig, true) => &INPUT,
        (Dir::Orig, false) => &INPUT_ONLY,
    };
    table[event as usize][state as usize]
}

/// Idle timeouts in seconds; the defaults are IPVS's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    pub tcp_established: u32,
    pub tcp_syn_sent: u32,
    pub tcp_syn_recv: u32,
    pub tcp_fin_wait: u32,
    pub tcp_time_wait: u32,
    pub tcp_close: u32,
    pub tcp_close_wait: u32,
    pub tcp_last_ack: u32,
    pub tcp_listen: u32,
    pub tcp_synack: u32,
    pub tcp_none: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established: 900,
            tcp_syn_sent: 120,
            tcp_syn_recv: 60,
            tcp_fin_wait: 120,
            tcp_time_wait: 120,
            tcp_close: 10,
            tcp_close_wait: 60,
            tcp_last_ack: 30,
            tcp_listen: 120,
            tcp_synack: 120,
            tcp_none: 2,
            udp: 300,
        }
    }
}

impl Timeouts {
    /// Timeout for a TCP state, in seconds.
    pub fn tcp(&self, s: TcpState) -> u32 {
        match s {
            S::None => self.tcp_none,
            S::Established => self.tcp_established,
            S::SynSent => self.tcp_syn_sent,
            S::SynRecv => self.tcp_syn_recv,
            S::FinWait => self.tcp_fin_wait,
            S::TimeWait => self.tcp_time_wait,
            S::Close => self.tcp_close,
            S::CloseWait => self.tcp_close_wait,
            S::LastAck => self.tcp_last_ack,
            S::Listen => self.tcp_listen,
            S::SynAck => self.tcp_synack,
        }
    }

    /// Checks that every timeout is non-zero, naming the first that is not.
    pub fn validate(&self) -> Result<(), String> {
        let named = [
            ("tcp_established", self.tcp_established),
            ("tcp_fin_wait", self.tcp_fin_wait),
            ("tcp_syn_recv", self.tcp_syn_recv),
            ("udp", self.udp),
        ];
        match named.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("timeouts.{name} must be at least 1 second")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_handshake_and_close_for_nat() {
        let m = Mode::Nat;
        let s = tcp_transition(S::None, TcpEvent::Syn, Dir::Orig, m);
        assert_eq!(s, S::SynRecv);
        let s = tcp_transition(s, TcpEvent::Syn, Dir::Reply, m); // SYN-ACK from the backend
        assert_eq!(s, S::SynRecv);
        let s = tcp_transition(s, TcpEvent::Ack, Dir::Orig, m);
        assert_eq!(s, S::Established);
        let s = tcp_transition(s, TcpEvent::Fin, Dir::Orig, m);
        assert_eq!(s, S::CloseWait);
        let s = tcp_transition(s, TcpEvent::Fin, Dir::Reply, m);
        assert_eq!(s, S::TimeWait);
        assert_eq!(tcp_transition(S::Established, TcpEvent::Rst, Dir::Reply, m), S::Close);
    }

    #[test]
    fn input_only_modes_use_their_own_table() {
        // DR sees only the client: a FIN from an established client means FIN_WAIT, not CLOSE_WAIT.
        assert_eq!(tcp_transition(S::Established, TcpEvent::Fin, Dir::Orig, Mode::Dr), S::FinWait);
        assert_eq!(tcp_transition(S::Established, TcpEvent::Fin, Dir::Orig, Mode::Nat), S::CloseWait);
    }

    #[test]
    fn classifies_flags_in_ipvs_order() {
        use crate::wire::tcp::flags as f;
        assert_eq!(TcpEvent::from_flags(f::SYN | f::ACK), Some(TcpEvent::Syn));
        assert_eq!(TcpEvent::from_flags(f::FIN | f::ACK), Some(TcpEvent::Fin));
        assert_eq!(TcpEvent::from_flags(f::RST | f::ACK), Some(TcpEvent::Rst));
        assert_eq!(TcpEvent::from_flags(f::ACK | f::PSH), Some(TcpEvent::Ack));
        assert_eq!(TcpEvent::from_flags(f::PSH), None);
    }
}

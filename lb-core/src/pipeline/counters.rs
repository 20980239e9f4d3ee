//! Per-worker counters; the control plane sums them across workers.

/// Why a packet was dropped. Every reason is counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Arrived on a port the network does not describe.
    UnknownPort,
    /// Shorter than an Ethernet header.
    L2Truncated,
    /// Carries a VLAN tag no interface of its port has (or is untagged on a port whose
    /// interfaces are all VLANs, or has two tags).
    VlanTagged,
    /// Unicast to another MAC address.
    OtherHost,
    ArpMalformed,
    Ipv4Truncated,
    /// Bad version, IHL below 5 or total length below the header.
    Ipv4Malformed,
    Ipv4BadChecksum,
    Ipv6Truncated,
    /// Bad version or extension-header chain.
    Ipv6Malformed,
    /// TCP/UDP header cut short.
    L4Truncated,
    /// TCP data offset below 5 or UDP length below 8.
    L4Malformed,
    /// TTL or hop limit ran out here, and no time exceeded was sent (rate limit, relayed ICMP
    /// error, later fragment).
    TtlExceeded,
    /// Not a VIP, not the LB's own address, no tracked connection.
    UnknownDestination,
    /// A VIP with no service for this port and protocol.
    NoService,
    /// The service has no backend of non-zero weight.
    NoBackend,
    /// A connection's backend failed its health checks and the service resets its connections
    /// (`expire_on_down`): the entry was expired with this packet.
    BackendDown,
    /// TCP segment other than SYN with no connection (IPVS drops these too).
    NoConnection,
    NoRoute,
    /// Next hop MAC unknown; an ARP/ND request was sent or is pending.
    NeighbourUnresolved,
    /// A non-first fragment whose first fragment was not seen.
    FragmentWithoutFirst,
    /// Too big for the egress MTU, DF clear: the LB does not fragment (IPv4).
    TooBigNoDf,
    IcmpMalformed,
    IcmpBadChecksum,
    /// An ICMP error about no tracked flow.
    IcmpUnrelated,
    /// ICMP type the LB does not answer for a VIP.
    IcmpUnsupported,
    /// Neighbour discovery message with hop limit other than 255 or bad options.
    NdInvalid,
    /// Connection table full (or embryonic cap reached) for a full-NAT flow.
    ConntrackFull,
    /// The reply key of a new connection is already tracked.
    ConntrackCollision,
    /// No free full-NAT local port steered to this worker.
    LocalPortsExhausted,
    /// No headroom or tailroom to grow the frame.
    NoRoom,
    /// No own address of the family on the egress port to source a tunnel or request from.
    NoSourceAddress,
    /// TCP or UDP checksum wrong (nat and fnat verify before rewriting).
    L4BadChecksum,
    /// A TCP flag combination no stack sends (SYN+FIN, SYN+RST, none, FIN without ACK...).
    TcpBadFlags,
    /// An ACK to a SYN proxy service whose cookie is forged or expired.
    SynproxyBadCookie,
    /// IPv4 loose or strict source route option (Linux's accept_source_route=0).
    Ipv4SourceRoute,
    /// A source address no host can have: unspecified, loopback, multicast, broadcast,
    /// IPv4 class E (Linux's martians).
    MartianSource,
}

impl DropReason {
    pub const COUNT: usize = DropReason::MartianSource as usize + 1;
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::UnknownPort,
        DropReason::L2Truncated,
        DropReason::VlanTagged,
        DropReason::OtherHost,
        DropReason::ArpMalformed,
        DropReason::Ipv4Truncated,
        DropReason::Ipv4Malformed,
        DropReason::Ipv4BadChecksum,
        DropReason::Ipv6Truncated,
        DropReason::Ipv6Malformed,
        DropReason::L4Truncated,
        DropReason::L4Malformed,
        DropReason::TtlExceeded,
        DropReason::UnknownDestination,
        DropReason::NoService,
        DropReason::NoBackend,
        DropReason::BackendDown,
        DropReason::NoConnection,
        DropReason::NoRoute,
        DropReason::NeighbourUnresolved,
        DropReason::FragmentWithoutFirst,
        DropReason::TooBigNoDf,
        DropReason::IcmpMalformed,
        DropReason::IcmpBadChecksum,
        DropReason::IcmpUnrelated,
        DropReason::IcmpUnsupported,
        DropReason::NdInvalid,
        DropReason::ConntrackFull,
        DropReason::ConntrackCollision,
        DropReason::LocalPortsExhausted,
        DropReason::NoRoom,
        DropReason::NoSourceAddress,
        DropReason::L4BadChecksum,
        DropReason::TcpBadFlags,
        DropReason::SynproxyBadCookie,
        DropReason::Ipv4SourceRoute,
        DropReason::MartianSource,
    ];

    /// Snake-case name for metrics and `lbctl stats`.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::UnknownPort => "unknown_port",
            DropReason::L2Truncated => "l2_truncated",
            DropReason::VlanTagged => "vlan_tagged",
            DropReason::OtherHost => "other_host",
            DropReason::ArpMalformed => "arp_malformed",
            DropReason::Ipv4Truncated => "ipv4_truncated",
            DropReason::Ipv4Malformed => "ipv4_malformed",
            DropReason::Ipv4BadChecksum => "ipv4_bad_checksum",
            DropReason::Ipv6Truncated => "ipv6_truncated",
            DropReason::Ipv6Malformed => "ipv6_malformed",
            DropReason::L4Truncated => "l4_truncated",
            DropReason::L4Malformed => "l4_malformed",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::UnknownDestination => "unknown_destination",
            DropReason::NoService => "no_service",
            DropReason::NoBackend => "no_backend",
            DropReason::BackendDown => "backend_down",
            DropReason::NoConnection => "no_connection",
            DropReason::NoRoute => "no_route",
            DropReason::NeighbourUnresolved => "neighbour_unresolved",
            DropReason::FragmentWithoutFirst => "fragment_without_first",
            DropReason::TooBigNoDf => "too_big_no_df",
            DropReason::IcmpMalformed => "icmp_malformed",
            DropReason::IcmpBadChecksum => "icmp_bad_checksum",
            DropReason::IcmpUnrelated => "icmp_unrelated",
            DropReason::IcmpUnsupported => "icmp_unsupported",
            DropReason::NdInvalid => "nd_invalid",
            DropReason::ConntrackFull => "conntrack_full",
            DropReason::ConntrackCollision => "conntrack_collision",
            DropReason::LocalPortsExhausted => "local_ports_exhausted",
            DropReason::NoRoom => "no_room",
            DropReason::NoSourceAddress => "no_source_address",
            DropReason::L4BadChecksum => "l4_bad_checksum",
            DropReason::TcpBadFlags => "tcp_bad_flags",
            DropReason::SynproxyBadCookie => "synproxy_bad_cookie",
            DropReason::Ipv4SourceRoute => "ipv4_source_route",
            DropReason::MartianSource => "martian_source",
        }
    }
}

/// Traffic of one service or backend, as `ipvsadm -L --stats` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    pub conns: u64,
    pub in_packets: u64,
    pub in_bytes: u64,
    pub out_packets: u64,
    pub out_bytes: u64,
    /// SYNs that failed: refused with a RST, or left unanswered until the client sent the SYN
    /// again or the embryonic connection expired (the passive health check's input).
    pub syn_failures: u64,
}

/// Same shape for backends.
pub type BackendCounters = ServiceCounters;

/// All counters of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub host_packets: u64,
    pub consumed: u64,
    pub drops: [u64; DropReason::COUNT],
    pub arp_replies: u64,
    pub nd_replies: u64,
    pub echo_replies: u64,
    pub icmp_errors_relayed: u64,
    pub too_big_sent: u64,
    /// ICMP time exceeded sent for packets whose TTL or hop limit ran out here.
    pub time_exceeded_sent: u64,
    pub neighbour_requests: u64,
    /// Neighbour probes not sent because the burst's probe queue was full.
    pub probes_unsent: u64,
    /// Client segments held while the SYN proxy waited for the backend.
    pub parked: u64,
    /// SYNs the SYN proxy sent the backend again (the first went unanswered).
    pub synproxy_syn_retries: u64,
    /// ACKs with a valid cookie: connections the SYN proxy opened.
    pub synproxy_accepted: u64,
    /// SYNs answered with a cookie by the SYN proxy.
    pub synproxy_cookies: u64,
    pub conns_created: u64,
    pub conns_expired: u64,
    /// New flows forwarded without an entry because the table or the embryonic cap was full.
    pub stateless: u64,
    /// Datagrams of one-packet services (ipvsadm -o), scheduled each on its own.
    pub one_packet: u64,
    /// Connection sync: events emitted for the peers / lost to a full outbox; peers' events
    /// applied / refused (unknown service or backend, table full, collision).
    pub sync_emitted: u64,
    pub sync_lost: u64,
    pub sync_applied: u64,
    pub sync_refused: u64,
    /// Packets of established connections forwarded by the fast path (the rest of
    /// `tx_packets` took the full pipeline).
    pub fast_path: u64,
    pub services: Vec<ServiceCounters>,
    pub backends: Vec<BackendCounters>,
}

impl Counters {
    /// Zeroed counters with room for the given numbers of service and backend ids.
    pub fn new(services: usize, backends: usize) -> Self {
        Counters {
            rx_packets: 0,
            rx_bytes: 0,
            tx_packets: 0,
            tx_bytes: 0,
            host_packets: 0,
            consumed: 0,
            drops: [0; DropReason::COUNT],
            arp_replies: 0,
            nd_replies: 0,
            echo_replies: 0,
            icmp_errors_relayed: 0,
            too_big_sent: 0,
            time_exceeded_sent: 0,
            neighbour_requests: 0,
            probes_unsent: 0,
            parked: 0,
            synproxy_syn_retries: 0,
            synproxy_accepted: 0,
            synproxy_cookies: 0,
            conns_created: 0,
            conns_expired: 0,
            stateless: 0,
            one_packet: 0,
            sync_emitted: 0,
            sync_lost: 0,
            sync_applied: 0,
            sync_refused: 0,
            fast_path: 0,
            services: vec![ServiceCounters::default(); services],
            backends: vec![BackendCounters::default(); backends],
        }
    }

    /// Drops for one reason.
    pub fn drop_count(&self, r: DropReason) -> u64 {
        self.drops[r as usize]
    }

    /// Adds another worker's counters into these (control plane aggregation).
    pub fn accumulate(&mut self, o: &Counters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.host_packets += o.host_packets;
        self.consumed += o.consumed;
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        self.arp_replies += o.arp_replies;
        self.nd_replies += o.nd_replies;
        self.echo_replies += o.echo_replies;
        self.icmp_errors_relayed += o.icmp_errors_relayed;
        self.too_big_sent += o.too_big_sent;
        self.time_exceeded_sent += o.time_exceeded_sent;
        self.neighbour_requests += o.neighbour_requests;
        self.probes_unsent += o.probes_unsent;
        self.parked += o.parked;
        self.synproxy_syn_retries += o.synproxy_syn_retries;
        self.synproxy_accepted += o.synproxy_accepted;
        self.synproxy_cookies += o.synproxy_cookies;
        self.conns_created += o.conns_created;
        self.conns_expired += o.conns_expired;
        self.stateless += o.stateless;
        self.one_packet += o.one_packet;
        self.sync_emitted += o.sync_emitted;
        self.sync_lost += o.sync_lost;
        self.sync_applied += o.sync_applied;
        self.sync_refused += o.sync_refused;
        self.fast_path += o.fast_path;
        for (a, b) in self.services.iter_mut().zip(&o.services).chain(self.backends.iter_mut().zip(&o.backends)) {
            a.conns += b.conns;
            a.in_packets += b.in_packets;
            a.in_bytes += b.in_bytes;
            a.out_packets += b.out_packets;
            a.out_bytes += b.out_bytes;
            a.syn_failures += b.syn_failures;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed_once_with_a_unique_name() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}

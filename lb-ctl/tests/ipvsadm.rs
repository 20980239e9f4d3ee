//! ipvsadm's rules through lbctl: a corpus of `ipvsadm -S -n` output (1.31, 1.30, and lbd's
//! own with thresholds) and `ipvsadm -R` scripts under `tests/data/ipvsadm/`, each with the
//! model lbd must end up with, written by hand as lbd's TOML; save files come back byte for
//! byte. Then the refusals, each naming its line and option.

use lb_core::net::Network;
use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Limits, Mode, Protocol, ServiceModel, ServicesModel, Table};
use lb_core::wire::MacAddr;
use lb_ctl::ipvsadm;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ipvsadm");

/// What `save` of an input's model writes.
enum Saved {
    /// The input itself: it is what ipvsadm 1.31 (or lbd) prints.
    Itself,
    /// Another file: the same table as ipvsadm 1.31 prints it.
    As(&'static str),
    /// A script: no canonical text, only the round trip.
    Script,
}

/// Every input, the model it gives, and what its save is.
const CORPUS: [(&str, &str, Saved); 7] = [
    ("save-1.31-full.ipvsadm", "save-1.31-full.toml", Saved::Itself),
    ("save-1.31-tunnels.ipvsadm", "tunnels.toml", Saved::Itself),
    ("save-1.30-tunnels.ipvsadm", "tunnels.toml", Saved::As("save-1.31-tunnels.ipvsadm")),
    ("save-lbd-thresholds.ipvsadm", "save-lbd-thresholds.toml", Saved::Itself),
    ("restore-commands.ipvsadm", "restore-commands.toml", Saved::Script),
    ("restore-clear.ipvsadm", "restore-clear.toml", Saved::Script),
    ("restore-addresses.ipvsadm", "restore-addresses.toml", Saved::Script),
];

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn parse(name: &str) -> ServicesModel {
    ipvsadm::parse(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn expected(name: &str) -> ServicesModel {
    toml::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_input_gives_the_model_written_for_it_and_lbd_takes_it() {
    for (input, model, _) in CORPUS {
        let got = parse(input);
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(expected(model)).unwrap(),
            "{input} against {model}"
        );
        let network = Network::single(MacAddr::ZERO, [10, 0, 0, 1], 24);
        Table::build(&got, network, Limits::default(), None, 0).unwrap_or_else(|e| panic!("lbd refuses {input}: {e}"));
    }
}

#[test]
fn saves_are_what_ipvsadm_prints_byte_for_byte() {
    for (input, _, saved) in CORPUS {
        let text = ipvsadm::save(&parse(input)).unwrap();
        match saved {
            Saved::Itself => assert_eq!(text, read(input), "{input}"),
            Saved::As(other) => assert_eq!(text, read(other), "{input} as {other}"),
            Saved::Script => {}
        }
    }
}

#[test]
fn save_then_parse_gives_the_model_back_in_ipvsadms_order() {
    for (input, _, _) in CORPUS {
        let m = parse(input);
        let text = ipvsadm::save(&m).unwrap();
        let back = ipvsadm::parse(&text).unwrap_or_else(|e| panic!("{input}: its own save is refused: {e}\n{text}"));
        assert_eq!(back, ipvsadm::sorted(&m), "{input}");
        assert_eq!(ipvsadm::save(&back).unwrap(), text, "{input}");
    }
}

#[test]
fn save_sorts_as_ipvsadm_lists() {
    // The full save's model, every list reversed: families, protocols, addresses and ports
    // all out of order.
    let mut m = expected("save-1.31-full.toml");
    m.services.reverse();
    for s in &mut m.services {
        s.backends.reverse();
    }
    assert_eq!(ipvsadm::save(&m).unwrap(), read("save-1.31-full.ipvsadm"));
}

#[test]
fn the_corpus_is_all_tested() {
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ipvsadm"))
        .collect();
    names.sort();
    let mut tested: Vec<String> = CORPUS.iter().map(|c| c.0.to_string()).collect();
    tested.sort();
    assert_eq!(names, tested);
}

/// Inputs refused whole, and what the message must hold: the line and the option.
const REFUSED: [(&str, &[&str]); 40] = [
    ("-A -f 100 -s rr", &["line 1: -f 100: firewall-mark services are not supported"]),
    ("-A --fwmark-service 100", &["line 1: --fwmark-service 100: firewall-mark"]),
    ("-A -t 10.0.0.1:80\n-A -f 1 -6", &["line 2: -f 1: firewall-mark"]),
    ("-A -t 10.0.0.1:80 -6", &["line 1: -6", "firewall-mark"]),
    ("-A --sctp-service 10.0.0.1:80", &["line 1: --sctp-service: SCTP"]),
    ("-A -t 10.0.0.1:5060 -p --pe sip", &["line 1: --pe sip: the SIP persistence engine is not supported"]),
    (
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-csum",
        &["line 2: --tun-csum: an ipip tunnel has no checksum"],
    ),
    (
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type gue --tun-port 6080 --tun-csum --tun-nocsum",
        &["line 2: --tun-csum: not with --tun-nocsum"],
    ),
    (
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type gue --tun-port 6080 --tun-remcsum",
        &["line 2: --tun-remcsum"],
    ),
    (
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type gue",
        &["line 2: --tun-type gue needs --tun-port"],
    ),
    ("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-type vxlan", &["line 2: --tun-type vxlan"]),
    ("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -i --tun-port 6080", &["line 2: --tun-port: an ipip tunnel"]),
    (
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -m --tun-type gue",
        &["line 2: --tun-type: tunnel options need -i"],
    ),
    ("-A -t 10.0.0.1:80 -p -M 255.0.255.0", &["line 1: -M 255.0.255.0", "not a contiguous netmask"]),
    ("-A -t 10.0.0.1:80 -p -M 24", &["line 1: -M 24", "255.255.255.0"]),
    ("-A -t [2001:db8::1]:80 -p -M 255.255.255.0", &["line 1: -M 255.255.255.0", "IPv6 prefix length"]),
    ("-A -t [2001:db8::1]:80 -p --netmask 129", &["line 1: --netmask 129"]),
    ("-A -t 10.0.0.1:80 -p -M 0.0.0.0", &["line 1: -M 0.0.0.0"]),
    ("-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m", &["line 1: -a: there is no service tcp 10.0.0.1:80 (-A adds it)"]),
    (
        "-A -t 10.0.0.1:80\n-e -t 10.0.0.1:80 -r 10.1.0.9 -w 2",
        &["line 2: -e: service tcp 10.0.0.1:80 has no real server 10.1.0.9:80"],
    ),
    ("-A -t 10.0.0.1:80\n-d -t 10.0.0.1:80 -r 10.1.0.9:8080", &["line 2: -d:", "no real server 10.1.0.9:8080"]),
    ("-D -u 10.0.0.1:53", &["line 1: -D: there is no service udp 10.0.0.1:53"]),
    ("-E -t 10.0.0.1:80 -s rr", &["line 1: -E: there is no service"]),
    ("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80 -s rr", &["line 2: -A: service tcp 10.0.0.1:80 exists already"]),
    (
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -w 2",
        &["line 3: -a: service tcp 10.0.0.1:80 has real server 10.1.0.1:80 already"],
    ),
    ("-A -t 10.0.0.1:80 --bogus", &["line 1: unknown option '--bogus'"]),
    ("-A -t 10.0.0.1:80 -q 3", &["line 1: unknown option '-q'"]),
    ("-A -t 10.0.0.1:80 -s nope", &["line 1: -s nope: unknown scheduler 'nope'"]),
    ("-A -t 10.0.0.1:80 -w 3", &["line 1: -w is not an option of -A"]),
    ("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -s rr", &["line 2: -s is not an option of -a"]),
    (
        "-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -g -m",
        &["line 2: -m: a line takes one forwarding-method option (-g came first)"],
    ),
    ("-A -t 10.0.0.1:80 -u 10.0.0.1:53", &["line 1: -u: a line takes one service-address option"]),
    ("-A -t 10.0.0.1:80 -s sh -b mh-port", &["line 1: -b mh-port: mh-port is not a flag of the sh scheduler"]),
    ("-A -t 10.0.0.1:80 -b sh-port", &["line 1: -b sh-port", "wlc"]),
    ("-A -t 10.0.0.1:80 -o", &["line 1: -o: one-packet scheduling is only for UDP services"]),
    ("-A -t 10.0.0.1:0 -s rr", &["line 1: -t 10.0.0.1:0: a service on port 0", "persistent"]),
    ("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -x 10 -y 20", &["line 2: -y 20: the lower threshold is above"]),
    ("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1 -w 65536", &["line 2: -w 65536: a weight is 0 to 65535"]),
    ("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r [2001:db8::1]:80 -g", &["line 2: -r 2001:db8::1", "needs -i"]),
    (
        "-A -t [2001:db8::1]:80\n-a -t [2001:db8::1]:80 -r [2001:db8::2]",
        &["line 2: -r [2001:db8::2]: '[2001:db8::2]' is not [IPV6]:PORT"],
    ),
];

/// --tun-csum: gue and gre tunnels with checksums, read and written back as ipvsadm prints them.
#[test]
fn tunnel_checksums_round_trip() {
    let text = "-A -t 10.0.0.1:80 -s wlc\n\
        -a -t 10.0.0.1:80 -r 10.1.0.1:80 -i -w 1 --tun-type gre --tun-csum\n\
        -a -t 10.0.0.1:80 -r 10.1.0.2:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum\n\
        -a -t 10.0.0.1:80 -r 10.1.0.3:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n";
    let m = ipvsadm::parse(text).unwrap();
    let sums: Vec<bool> = m.services[0].backends.iter().map(|b| b.tunnel_checksum).collect();
    assert_eq!(sums, [true, true, false]);
    assert_eq!(ipvsadm::save(&m).unwrap(), text);
}

#[test]
fn refusals_name_the_line_and_the_option() {
    for (input, wanted) in REFUSED {
        let e = ipvsadm::parse(input).expect_err(input);
        for w in wanted {
            assert!(e.contains(w), "{input:?}: {e:?} lacks {w:?}");
        }
    }
}

#[test]
fn more_refusals_name_the_line_and_the_option() {
    let cases: [(&str, &str); 12] = [
        ("-A -t www.example.com:80", "line 1: -t www.example.com:80: 'www.example.com' is not a numeric IP address"),
        ("-A -t 10.0.0.1:http", "line 1: -t 10.0.0.1:http: 'http' is not a port number"),
        ("-L -n", "line 1: -L (list) is an ipvsadm command, not a rule"),
        ("--set 900 120 300", "line 1: --set (set) is an ipvsadm command"),
        ("-A -t 10.0.0.1:80 -n", "line 1: -n (numeric) is an ipvsadm listing or daemon option"),
        ("-t 10.0.0.1:80 -A", "line 1: -t comes before the command"),
        ("-A -a -t 10.0.0.1:80", "line 1: -a: a line holds one command (-A came first)"),
        ("-A -t 10.0.0.1:80 -s", "line 1: -s needs a value"),
        ("-A -t 10.0.0.1:80 rr", "line 1: unexpected argument 'rr'"),
        ("-A -t 10.0.0.1:80 -p 0", "line 1: -p 0: a persistence timeout in seconds is 1 to 2678400"),
        ("-A -t 10.0.0.1:80 -b flag-3", "line 1: -b flag-3"),
        ("-A -t 10.0.0.1:80 -gw", "line 1: '-gw': -g takes no value"),
    ];
    for (input, wanted) in cases {
        let e = ipvsadm::parse(input).expect_err(input);
        assert!(e.contains(wanted), "{input:?}: {e:?} lacks {wanted:?}");
    }
}

#[test]
fn one_bad_line_refuses_the_whole_file() {
    let mut text = read("save-1.31-full.ipvsadm");
    text.push_str("-A -t 10.0.0.250:80 --pe sip\n");
    let lines = text.lines().count();
    let e = ipvsadm::parse(&text).unwrap_err();
    assert!(e.starts_with(&format!("line {lines}: --pe sip")), "{e}");
}

#[test]
fn save_refuses_what_ipvsadm_cannot_say() {
    let mut m = expected("save-1.31-full.toml");
    m.services[2].backends[0].mode = Mode::Fnat;
    m.services[5].synproxy = true;
    let e = ipvsadm::save(&m).unwrap_err();
    assert!(e.contains("service tcp 10.0.0.101:0 has full-NAT backend 10.1.0.21:0"), "{e}");
    assert!(e.contains("(and 1 more services)"), "{e}");
    let mut svc = ServiceModel::new("10.0.0.1".parse().unwrap(), 80, Protocol::Tcp);
    svc.check = Some(toml::from_str("type = \"tcp\"").unwrap());
    svc.backends.push(BackendModel::at("10.1.0.1".parse().unwrap()));
    let e = ipvsadm::save(&ServicesModel { services: vec![svc] }).unwrap_err();
    assert!(e.contains("service tcp 10.0.0.1:80 has a health check"), "{e}");
}

#[test]
fn ipvsadm_defaults() {
    let m = ipvsadm::parse("-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.1.0.1:8080\n").unwrap();
    let s = &m.services[0];
    assert_eq!((s.scheduler, s.persistence, s.persistence_prefix), (Kind::Wlc, 0, None));
    // -g is the default, and it forwards to the service's port whatever -r says.
    let b = &s.backends[0];
    assert_eq!((b.mode, b.port, b.weight), (Mode::Dr, 0, 1));
}

mod generated {
    //! Any model ipvsadm can say survives save then parse: generated services of both
    //! families and protocols, every scheduler, port-zero services, masks, flags, every
    //! ipvsadm forwarding method with tunnels across families, thresholds.

    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// Addresses more than 2^31 apart too, where ipvsadm's own comparison overflows.
    fn address(v6: bool, n: u8) -> IpAddr {
        let [a, b] = [[10, 0], [172, 16], [192, 168]][usize::from(n % 3)];
        if v6 {
            IpAddr::V6(Ipv6Addr::new([0x2001, 0xfd00][usize::from(n % 2)], 0xdb8, 0, 0, 0, 0, 0, u16::from(n)))
        } else {
            IpAddr::V4(Ipv4Addr::new(a, b, n / 16, n % 16 + 1))
        }
    }

    const PORTS: [u16; 5] = [0, 53, 80, 443, 8080];
    const MODES: [Mode; 5] = [Mode::Nat, Mode::Dr, Mode::Tun, Mode::Gue, Mode::Gre];

    fn backend(s: &ServiceModel) -> impl Strategy<Value = BackendModel> + use<> {
        let (sv6, sport) = (s.vip.is_ipv6(), s.port);
        (
            any::<bool>(),
            0u8..12,
            0usize..PORTS.len(),
            0usize..MODES.len(),
            0u32..=65535,
            1u16..,
            0u32..=0x7fff_ffff,
            any::<u32>(),
        )
            .prop_map(move |(v6, n, p, m, weight, gue, upper, lower)| {
                let mode = MODES[m];
                // Only a tunnel crosses families; only NAT changes the port, and not on port 0.
                let v6 = if matches!(mode, Mode::Nat | Mode::Dr) { sv6 } else { v6 };
                let port = PORTS[p];
                let port = if mode == Mode::Nat && sport != 0 && port != sport { port } else { 0 };
                BackendModel {
                    port,
                    weight,
                    mode,
                    gue_port: (mode == Mode::Gue).then_some(gue),
                    upper_threshold: upper,
                    lower_threshold: lower % (upper + 1),
                    ..BackendModel::at(address(v6, n))
                }
            })
    }

    fn service() -> impl Strategy<Value = ServiceModel> {
        (
            any::<bool>(),
            any::<bool>(),
            0u8..6,
            0usize..PORTS.len(),
            0usize..Kind::ALL.len(),
            0u32..=MAX_TIMEOUT,
            any::<u8>(),
            any::<[bool; 4]>(),
        )
            .prop_flat_map(|(v6, udp, n, p, k, persistence, prefix, [persistent, fallback, hash_ports, ops])| {
                let port = PORTS[p];
                let persistence = if persistent || port == 0 { persistence.max(1) } else { 0 };
                let max = if v6 { 128 } else { 32 };
                let s = ServiceModel {
                    scheduler: Kind::ALL[k],
                    persistence,
                    persistence_prefix: (persistence > 0 && prefix > 0 && prefix < max).then_some(prefix),
                    fallback,
                    hash_ports,
                    one_packet: ops && udp,
                    ..ServiceModel::new(address(v6, n), port, if udp { Protocol::Udp } else { Protocol::Tcp })
                };
                (Just(s.clone()), proptest::collection::vec(backend(&s), 0..5))
            })
            .prop_map(|(mut s, backends)| {
                for b in backends {
                    let port = |b: &BackendModel| if b.port == 0 { s.port } else { b.port };
                    if !s.backends.iter().any(|x| x.address == b.address && port(x) == port(&b)) {
                        s.backends.push(b);
                    }
                }
                s
            })
    }

    fn model() -> impl Strategy<Value = ServicesModel> {
        proptest::collection::vec(service(), 0..6).prop_map(|all| {
            let mut m = ServicesModel::default();
            for s in all {
                if !m.services.iter().any(|x| (x.vip, x.port, x.protocol) == (s.vip, s.port, s.protocol)) {
                    m.services.push(s);
                }
            }
            m
        })
    }

    const MAX_TIMEOUT: u32 = ipvsadm::MAX_TIMEOUT;

    proptest! {
        #[test]
        fn save_then_parse_is_the_model_in_ipvsadms_order(m in model()) {
            let text = ipvsadm::save(&m).unwrap();
            let back = ipvsadm::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&back, &ipvsadm::sorted(&m), "{}", text);
            prop_assert_eq!(ipvsadm::save(&back).unwrap(), text);
        }
    }
}

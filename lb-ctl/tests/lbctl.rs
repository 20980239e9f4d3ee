//! The lbctl binary against a stand-in lbd (a Unix socket that records the request and gives
//! a canned answer): ipvsadm's flags on the verbs, restore and save in ipvsadm's format, and
//! `list` laid out as `ipvsadm -Ln`.

use lb_core::health::BackendState;
use lb_core::sched::Kind;
use lb_core::service::{BackendModel, Mode, Protocol, ServiceModel, ServicesModel};
use lb_ctl::{BackendView, ServiceView, Traffic};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ipvsadm");

struct Run {
    /// The command lbd was sent, or Null when lbctl sent none.
    request: Value,
    stdout: String,
    stderr: String,
    ok: bool,
}

/// Runs lbctl with `args` against a stand-in lbd answering `result`.
fn lbctl(args: &[&str], result: &Value) -> Run {
    lbctl_with(args, result, "")
}

/// The same, with `stdin` on lbctl's standard input.
fn lbctl_with(args: &[&str], result: &Value, stdin: &str) -> Run {
    static N: AtomicUsize = AtomicUsize::new(0);
    let socket = std::env::temp_dir().join(format!(
        "lbctl-test-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).unwrap();
    let (tx, rx) = mpsc::channel();
    let answer = json!({ "version": 1, "ok": true, "result": result }).to_string();
    // Left blocked in accept when lbctl refuses before calling: the test process ends it.
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            let _ = s.write_all(format!("{answer}\n").as_bytes());
            let _ = tx.send(line);
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_lbctl"))
        .arg("-S")
        .arg(&socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    let request = rx
        .recv_timeout(Duration::from_millis(200))
        .map(|l| serde_json::from_str::<Value>(&l).unwrap()["command"].clone())
        .unwrap_or(Value::Null);
    let _ = std::fs::remove_file(&socket);
    Run {
        request,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        ok: out.status.success(),
    }
}

/// The command lbctl sends for `args`; it must succeed.
fn sent(args: &[&str]) -> Value {
    let r = lbctl(args, &json!({}));
    assert!(r.ok, "{args:?}: {}", r.stderr);
    r.request
}

/// lbctl's refusal of `args`: nothing is sent.
fn refused(args: &[&str]) -> String {
    let r = lbctl(args, &json!({}));
    assert!(!r.ok && r.request.is_null(), "{args:?} was accepted: {}", r.request);
    r.stderr
}

#[test]
fn add_service_takes_ipvsadms_flags() {
    let c = sent(&[
        "add-service",
        "-t",
        "10.0.0.1:80",
        "-s",
        "sh",
        "-p",
        "-M",
        "255.255.255.0",
        "-b",
        "sh-fallback,sh-port",
    ]);
    let s: ServiceModel = serde_json::from_value(c["service"].clone()).unwrap();
    assert_eq!(
        (s.scheduler, s.persistence, s.persistence_prefix, s.fallback, s.hash_ports),
        (Kind::Sh, 360, Some(24), true, true)
    );
    let c = sent(&["add-service", "-u", "[2001:db8::1]:53", "-p", "600", "-M", "64", "-o"]);
    let s: ServiceModel = serde_json::from_value(c["service"].clone()).unwrap();
    assert_eq!((s.protocol, s.persistence, s.persistence_prefix, s.one_packet), (Protocol::Udp, 600, Some(64), true));
    // The old spellings.
    let c = sent(&["add-service", "-t", "10.0.0.1:80", "-p", "30", "--hash-ports", "--synproxy"]);
    let s: ServiceModel = serde_json::from_value(c["service"].clone()).unwrap();
    assert_eq!(
        (s.scheduler, s.persistence, s.hash_ports, s.synproxy),
        (Kind::Wlc, 30, true, true),
        "wlc by default, as ipvsadm"
    );
    assert!(refused(&["add-service", "-t", "10.0.0.1:80", "-p", "-M", "255.0.255.0"]).contains("-M 255.0.255.0"));
    assert!(refused(&["add-service", "-t", "10.0.0.1:80", "-b", "sh-port"]).contains("-b sh-port"));
}

#[test]
fn edit_service_changes_only_what_it_is_given() {
    let c = sent(&["edit-service", "-t", "10.0.0.1:80", "-b", "mh-port", "-o"]);
    assert_eq!(
        c["edit"],
        json!({ "scheduler": null, "persistence": null, "maglev_size": null, "synproxy": null,
        "hash_ports": true, "fallback": false, "one_packet": true })
    );
    let c = sent(&["edit-service", "-t", "10.0.0.1:80", "-p", "-M", "255.255.255.255", "-o", "off", "-b", "none"]);
    assert_eq!(
        c["edit"],
        json!({ "scheduler": null, "persistence": 360, "maglev_size": null, "synproxy": null,
        "persistence_prefix": 32, "hash_ports": false, "fallback": false, "one_packet": false })
    );
    let c = sent(&["edit-service", "-t", "10.0.0.1:80", "-s", "wrr"]);
    assert_eq!(c["edit"], json!({ "scheduler": "wrr", "persistence": null, "maglev_size": null, "synproxy": null }));
}

#[test]
fn add_backend_takes_ipvsadms_forwarding() {
    let backend = |args: &[&str]| -> BackendModel {
        let mut all = vec!["add-backend", "-t", "10.0.0.1:80", "-r", "10.1.0.1"];
        all.extend_from_slice(args);
        serde_json::from_value(sent(&all)["backend"].clone()).unwrap()
    };
    let mode = |args: &[&str]| {
        let b = backend(args);
        (b.mode, b.gue_port)
    };
    assert_eq!(mode(&["-g"]), (Mode::Dr, None));
    assert_eq!(mode(&["-m"]), (Mode::Nat, None));
    assert_eq!(mode(&["-m", "-w", "3"]), (Mode::Nat, None));
    assert_eq!(mode(&["--masquerading"]), (Mode::Nat, None));
    assert_eq!(mode(&["-i"]), (Mode::Tun, None));
    assert_eq!(mode(&["-i", "--tun-type", "gue", "--tun-port", "6080", "--tun-nocsum"]), (Mode::Gue, Some(6080)));
    assert_eq!(mode(&["-i", "--tun-type", "gre"]), (Mode::Gre, None));
    // The old spellings: -m MODE, --gue-port; direct routing by default, as ipvsadm's -a.
    assert_eq!(mode(&["-m", "fnat"]), (Mode::Fnat, None));
    assert_eq!(mode(&["-m", "gue"]), (Mode::Gue, None));
    assert_eq!(mode(&["-m", "gue", "--gue-port", "7000"]), (Mode::Gue, Some(7000)));
    assert_eq!(mode(&[]), (Mode::Dr, None));
    let b = backend(&["-w", "5", "-x", "100", "-y", "50"]);
    assert_eq!((b.weight, b.upper_threshold, b.lower_threshold), (5, 100, 50));
    let no = |args: &[&str]| {
        let mut all = vec!["add-backend", "-t", "10.0.0.1:80", "-r", "10.1.0.1"];
        all.extend_from_slice(args);
        refused(&all)
    };
    assert!(backend(&["-i", "--tun-type", "gue", "--tun-port", "6080", "--tun-csum"]).tunnel_checksum);
    assert!(no(&["-i", "--tun-csum"]).contains("--tun-csum: an ipip tunnel has no checksum"));
    assert!(no(&["-i", "--tun-remcsum"]).contains("--tun-remcsum"));
    assert!(no(&["-i", "--tun-type", "gue"]).contains("--tun-port"));
    assert!(no(&["-g", "--tun-type", "gue"]).contains("--tun-type: tunnel options need -i"));
    assert!(no(&["-g", "-m", "nat"]).contains("cannot be used with"));
    assert!(no(&["-m", "bogus"]).contains("-m: unknown forwarding mode 'bogus'"));
}

#[test]
fn edit_backend_changes_only_what_it_is_given() {
    let c = sent(&["edit-backend", "-t", "10.0.0.1:80", "-r", "10.1.0.1", "-w", "0"]);
    assert_eq!(c["edit"], json!({ "weight": 0, "mode": null }));
    assert_eq!(c["port"], 80);
    let c = sent(&[
        "edit-backend",
        "-t",
        "10.0.0.1:80",
        "-r",
        "10.1.0.1",
        "-i",
        "--tun-type",
        "gue",
        "--tun-port",
        "6081",
        "-x",
        "9",
    ]);
    assert_eq!(
        c["edit"],
        json!({ "weight": null, "mode": "gue", "gue_port": 6081, "upper_threshold": 9, "tunnel_checksum": false })
    );
}

#[test]
fn restore_and_save_speak_ipvsadm() {
    let file = format!("{DIR}/save-1.31-full.ipvsadm");
    let c = sent(&["restore", "--format", "ipvsadm", &file]);
    assert_eq!(c["cmd"], "apply");
    let model: ServicesModel = serde_json::from_value(c["model"].clone()).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(model, lb_ctl::ipvsadm::parse(&text).unwrap());
    let r = lbctl(&["save", "--format", "ipvsadm"], &serde_json::to_value(&model).unwrap());
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout, text);
    // ipvsadm-save -n | lbctl restore --format ipvsadm -
    let r = lbctl_with(&["restore", "--format", "ipvsadm", "-"], &json!({}), &text);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.request["model"], c["model"]);
    // A file refused at line 2 sends nothing.
    let bad = std::env::temp_dir().join(format!("lbctl-test-{}.rules", std::process::id()));
    std::fs::write(&bad, "-A -t 10.0.0.1:80\n-A -f 7\n").unwrap();
    let e = refused(&["restore", "--format", "ipvsadm", bad.to_str().unwrap()]);
    assert!(e.contains("line 2: -f 7: firewall-mark"), "{e}");
    let _ = std::fs::remove_file(&bad);
}

fn view(service: ServiceModel, load: &[(u64, u64)]) -> ServiceView {
    let backends = service
        .backends
        .iter()
        .zip(load)
        .map(|(b, &(active, inactive))| BackendView {
            backend: b.clone(),
            active,
            inactive,
            traffic: Traffic::default(),
            state: BackendState::Up,
            check: None,
        })
        .collect();
    ServiceView { service, traffic: Traffic::default(), backends, up: true, sorry_active: false }
}

#[test]
fn list_is_ipvsadm_ln_column_for_column() {
    let backend =
        |a: &str, port, weight, mode| BackendModel { port, weight, mode, ..BackendModel::at(a.parse().unwrap()) };
    let web = ServiceModel {
        scheduler: Kind::Rr,
        backends: vec![backend("10.1.0.12", 8080, 3, Mode::Nat), backend("10.1.0.11", 8080, 1, Mode::Nat)],
        ..ServiceModel::new("10.0.0.100".parse().unwrap(), 80, Protocol::Tcp)
    };
    let dns = ServiceModel {
        scheduler: Kind::Sh,
        persistence: 600,
        persistence_prefix: Some(24),
        hash_ports: true,
        fallback: true,
        one_packet: true,
        backends: vec![BackendModel { gue_port: Some(6080), ..backend("10.1.0.21", 0, 1, Mode::Gue) }],
        ..ServiceModel::new("10.0.0.100".parse().unwrap(), 53, Protocol::Udp)
    };
    let v6 = ServiceModel {
        persistence: 360,
        persistence_prefix: Some(64),
        synproxy: true,
        backends: vec![backend("2001:db8:1::11", 0, 1, Mode::Fnat)],
        ..ServiceModel::new("2001:db8::100".parse().unwrap(), 443, Protocol::Tcp)
    };
    // In lbd's order; listed in ipvsadm's.
    let views = vec![view(v6, &[(0, 0)]), view(dns, &[(0, 12)]), view(web, &[(5, 1), (3, 0)])];
    let answer = serde_json::to_value(&views).unwrap();
    let r = lbctl(&["list", "-n"], &answer);
    assert!(r.ok, "{}", r.stderr);
    let table: Vec<&str> = r.stdout.lines().skip(1).collect();
    assert_eq!(
        table,
        [
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
            "TCP  10.0.0.100:80 rr",
            "  -> 10.1.0.11:8080               Masq    1      3          0         ",
            "  -> 10.1.0.12:8080               Masq    3      5          1         ",
            "UDP  10.0.0.100:53 sh (sh-fallback,sh-port) persistent 600 mask 255.255.255.0 ops",
            "  -> 10.1.0.21:53                 Tunnel  1      0          12        ",
            "TCP  [2001:db8::100]:443 wlc persistent 360 mask 64 synproxy",
            "  -> [2001:db8:1::11]:443         FullNat 1      0          0         ",
        ]
    );
    let r = lbctl(&["list", "-n", "--tun-info"], &answer);
    assert!(r.stdout.contains("  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n"));
    assert!(
        r.stdout.contains("  -> 10.1.0.21:53                 Tunnel  gue:6080:-c   1      0          12        \n")
    );
    assert!(
        r.stdout.contains("  -> 10.1.0.11:8080               Masq    n/a           1      3          0         \n")
    );
    let r = lbctl(&["list", "-n", "--nosort"], &answer);
    assert!(r.stdout.lines().nth(3).is_some_and(|l| l.starts_with("TCP  [2001:db8::100]:443")), "{}", r.stdout);
    let r = lbctl(&["list", "-n", "--stats"], &answer);
    let stats: Vec<&str> = r.stdout.lines().skip(1).take(4).collect();
    assert_eq!(
        stats,
        [
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes",
            "  -> RemoteAddress:Port",
            "TCP  10.0.0.100:80                       0        0        0        0        0",
            "  -> 10.1.0.11:8080                      0        0        0        0        0",
        ]
    );
}

//! `lbd --takeover SOCKET`: a new lbd (an upgrade, a restart for a config change) takes over
//! from the running one without dropping its connections. The new one starts EAL and opens the
//! same ports first (AF_PACKET and AF_XDP ports can be opened twice; the frames the new one
//! receives before its workers run wait in its rings), then asks the running one to hand over:
//! the old workers stop and give their connections, the old lbd answers with its services as
//! they run, its timeouts, the connections per worker, the neighbours it learned and the
//! backends its health checks took out, and exits.
//! The new one builds its table from those services, starts its workers and installs the
//! connections in the same worker (the same queue, so the same RSS or software steering) and
//! the neighbours as REACHABLE. Packets are lost only between the old workers' stop and the
//! new ones' start; TCP retransmits them.

use lb_ctl::{Command, Handover, Request, Response, VERSION};
use lb_dpdk::runtime::Runtime;
use lb_dpdk::worker::Control;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Asks the lbd at `socket` to hand over; returns what it gave and when its workers stopped.
pub fn receive(socket: &Path) -> Result<(Handover, Instant), String> {
    let at = |e: String| format!("--takeover {}: {e}", socket.display());
    let mut s = UnixStream::connect(socket).map_err(|e| at(format!("cannot reach the running lbd: {e}")))?;
    s.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| at(e.to_string()))?;
    let mut line = serde_json::to_string(&Request { version: VERSION, command: Command::Handover })
        .map_err(|e| at(e.to_string()))?;
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(|e| at(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).map_err(|e| at(format!("no answer: {e}")))?;
    // Its workers stopped before it answered: the gap runs from about now.
    let stopped = Instant::now();
    let r: Response = serde_json::from_str(&answer).map_err(|e| at(format!("answer not understood: {e}")))?;
    if !r.ok {
        return Err(at(r.error.unwrap_or_else(|| "refused".into())));
    }
    let h: Handover = serde_json::from_value(r.result).map_err(|e| at(format!("handover not understood: {e}")))?;
    Ok((h, stopped))
}

/// Installs the handed-over connections (worker by worker) and neighbours, the workers still
/// paused; the gap reported ends when they are installed.
pub fn install(rt: &Runtime, h: &Handover, stopped: Instant) -> Result<(), String> {
    if h.workers.len() != rt.workers() {
        return Err(format!(
            "--takeover: the running lbd has {} workers and this one {}: connections would land on the wrong worker",
            h.workers.len(),
            rt.workers()
        ));
    }
    let (adopted, refused) = adopt(rt, h)?;
    let neighbours = h.neighbours.len();
    let running = stopped.elapsed();
    println!(
        "lbd: takeover: workers running {} ms after the old ones stopped; {adopted} connections and {neighbours} neighbours taken over, {} connections refused{}",
        running.as_millis(),
        refused.len(),
        refused.first().map(|r| format!(" (first: {r})")).unwrap_or_default()
    );
    Ok(())
}

/// Gives each worker its saved connections and the shared table the neighbours; returns how
/// many connections were taken and the refusals, with the neighbours installed.
pub fn adopt(rt: &Runtime, h: &Handover) -> Result<(usize, Vec<String>), String> {
    let (tx, rx) = crossbeam::channel::unbounded();
    let mut adopted = 0;
    let mut refused = Vec::new();
    for (i, conns) in h.workers.iter().enumerate() {
        rt.send(i, Control::Adopt(conns.clone(), tx.clone()));
        let r = rx.recv_timeout(Duration::from_secs(10)).map_err(|_| format!("worker {i} did not adopt"))?;
        adopted += conns.len() - r.len();
        refused.extend(r);
    }
    let now = rt.now_ms();
    for n in &h.neighbours {
        let (addr, v6) = lb_core::flow::from_ip(n.address);
        if let Ok(mac) = n.mac.parse() {
            rt.neighbours().learn(&addr, v6, mac, n.port, now);
        }
    }
    Ok((adopted, refused))
}

/// Waits (up to 10 s) until nothing answers at the old lbd's control socket.
pub fn wait_gone(socket: &Path) {
    let until = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(socket).is_ok() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (up to 10 s) until the old lbd's kernel interface `name` is gone, so this lbd can
/// create its own under the same name.
pub fn wait_interface_gone(name: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/sys/class/net/{name}")).exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }
}

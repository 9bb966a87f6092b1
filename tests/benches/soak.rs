//! Soak: one tenant attacks the server's own work while another runs a steady load, and the
//! figures say whether the second one noticed.
//!
//! The attacker (default quota, ten times the default rate), all at once: hostile model uploads (`ConstantOfShape`/`Expand` bombs),
//! stalled uploads (2 bytes of a declared 100 MB body), idle anonymous connections to its
//! public function, requests with ever new input shapes, guests that spin, sleep, trap or fill
//! their memory, and oversized explanation bodies. The victim: two clients calling the seed
//! MLP back to back, first alone, then under the attack, for [`PHASE`] each.
//!
//! Run: `cargo bench -p maas-tests --bench soak` (about a minute and a half; the server runs in
//! a child process, this binary again, so its RSS is its own). It prints the victim's p50/p99
//! alone and under attack, the server's peak RSS, and what the attacker got; it fails if the
//! victim saw an error or the server died.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use maas_tests::bench::{ServerProcess, percentile, serve_if_child};
use maas_tests::{Client, models};
use serde_json::{Value, json};

/// How long the victim runs alone, then under attack.
const PHASE: Duration = Duration::from_secs(30);
/// The victim's clients.
const VICTIM_CLIENTS: usize = 2;

fn mlp_body(seed: u64) -> Value {
    json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32",
                        "data": models::seeded_input(seed, &[1, 100]) }] })
}

/// Latencies (µs) and errors of the victim's clients until `stop`.
fn victim(client: &Client, stop: &AtomicBool) -> (Vec<f64>, Vec<String>) {
    let (mut latencies, mut errors) = (Vec::new(), Vec::new());
    let body = mlp_body(1);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let r = client.post_json("/fn/victim/f", &body);
        latencies.push(started.elapsed().as_secs_f64() * 1e6);
        if r.status != 200 {
            errors.push(format!("{} {}", r.status, String::from_utf8_lossy(&r.body)));
        }
    }
    (latencies, errors)
}

/// Runs the victim for [`PHASE`]: its latencies and errors.
fn victim_phase(server: &ServerProcess, key: &str) -> (Vec<f64>, Vec<String>) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let clients: Vec<_> = (0..VICTIM_CLIENTS)
            .map(|_| {
                let (client, stop) = (Client::new(server.addr(), Some(key.to_string())), &stop);
                s.spawn(move || victim(&client, stop))
            })
            .collect();
        thread::sleep(PHASE);
        stop.store(true, Ordering::Relaxed);
        clients.into_iter().map(|c| c.join().unwrap()).fold((Vec::new(), Vec::new()), |mut all, (l, e)| {
            all.0.extend(l);
            all.1.extend(e);
            all
        })
    })
}

/// One of the attacker's loops, run until the flag is set.
type Attack = Box<dyn FnOnce(&AtomicBool, &Outcomes) + Send>;

/// What the attacker's requests got: `what → status → count`.
type Outcomes = Arc<Mutex<BTreeMap<String, BTreeMap<u16, usize>>>>;

fn count(outcomes: &Outcomes, what: &str, status: u16) {
    *outcomes.lock().unwrap().entry(what.to_string()).or_default().entry(status).or_default() += 1;
}

/// Holds `n` connections that sent a request head and `sent` of `declared` body bytes, opening
/// a new one whenever the server closes one, until `stop`.
fn stall(addr: SocketAddr, head: &str, sent: &[u8], n: usize, stop: &AtomicBool, outcomes: &Outcomes, what: &str) {
    let open = || -> Option<TcpStream> {
        let mut stream = TcpStream::connect(addr).ok()?;
        stream.write_all(head.as_bytes()).ok()?;
        stream.write_all(sent).ok()?;
        stream.set_nonblocking(true).ok()?;
        Some(stream)
    };
    let mut held: Vec<TcpStream> = (0..n).filter_map(|_| open()).collect();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(200));
        held.retain_mut(|stream| {
            let mut buf = [0u8; 512];
            match stream.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    let status = std::str::from_utf8(&buf[..n]).ok().and_then(|t| t.get(9..12)?.parse().ok());
                    count(outcomes, what, status.unwrap_or(0));
                    false
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
                Err(_) => false,
            }
        });
        while held.len() < n {
            match open() {
                Some(stream) => held.push(stream),
                None => break,
            }
        }
    }
}

/// Calls `path` with `body` back to back until `stop`, counting statuses as `what`; 0 for a
/// connection the server closed first (as it does on a large body it refused unread).
fn hammer(client: &Client, path: &str, body: &Value, stop: &AtomicBool, outcomes: &Outcomes, what: &str) {
    let body = body.to_string();
    while !stop.load(Ordering::Relaxed) {
        let r = client.try_send_with_headers("POST", path, &[], Some((body.as_bytes(), "application/json")));
        count(outcomes, what, r.map_or(0, |r| r.status));
    }
}

fn main() {
    if serve_if_child() {
        return;
    }
    let mut server = ServerProcess::start();
    let admin = server.admin();
    // The victim's load is not limited; the attacker has the default quota but ten times the
    // default rate, so that what protects the victim is the platform's isolation, not a tight
    // rate limit.
    for (name, rate) in [("victim", 1e6), ("attacker", 1000.0)] {
        let r = admin.post_json("/v1/tenants", &json!({ "name": name, "quota": { "rate_per_second": rate } }));
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let key = |tenant: &str, role: &str| -> String {
        let r = admin.post_json(&format!("/v1/tenants/{tenant}/keys"), &json!({ "role": role }));
        r.json()["key"].as_str().unwrap().to_string()
    };
    let (victim_key, attacker_key) = (key("victim", "invoker"), key("attacker", "owner"));
    let attacker = Client::new(server.addr(), Some(attacker_key.clone()));

    assert_eq!(admin.put_bytes("/v1/tenants/victim/models/mlp", &models::mlp(42)).status, 201);
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
    assert_eq!(admin.put_json("/v1/tenants/victim/functions/f", &manifest).status, 201);

    let wasm = maas_tests::guest_wasm("maas_fn_misbehave");
    let r = attacker.post_bytes("/v1/tenants/attacker/components", &wasm, "application/wasm");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let digest = r.json()["digest"].as_str().unwrap().to_string();
    for (name, mode, limits) in [
        ("spin", "loop", json!({ "timeout_ms": 1000 })),
        ("sleep", "sleep", json!({ "timeout_ms": 1000 })),
        ("trap", "trap", json!({})),
        ("alloc", "alloc", json!({ "memory_mb": 64 })),
    ] {
        let manifest = json!({ "component": digest, "config": { "mode": mode }, "limits": limits });
        let r = attacker.put_json(&format!("/v1/tenants/attacker/functions/{name}"), &manifest);
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    assert_eq!(attacker.put_bytes("/v1/tenants/attacker/models/shapes", &models::mlp_batch(3)).status, 201);
    let public = json!({ "component": "builtin:tensor", "models": { "model": "shapes" }, "public": true });
    assert_eq!(attacker.put_json("/v1/tenants/attacker/functions/pub", &public).status, 201);

    // Warm both, then the victim alone.
    let victim_client = Client::new(server.addr(), Some(victim_key.clone()));
    assert_eq!(victim_client.post_json("/fn/victim/f", &mlp_body(1)).status, 200);
    let (mut alone, alone_errors) = victim_phase(&server, &victim_key);
    let rss_before = server.rss();

    // The attack, with the victim.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::default();
    let peak_rss = Arc::new(Mutex::new(0.0f64));
    let addr = server.addr();
    let (mut attacked, attacked_errors) = thread::scope(|s| {
        let go = |f: Attack| {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            s.spawn(move || f(&stop, &outcomes));
        };
        let client = || Client::new(addr, Some(attacker_key.clone()));
        // Hostile models, over and over.
        let c = client();
        go(Box::new(move |stop, outcomes| {
            let bombs = [models::hostile::constant_of_shape(16384), models::hostile::expand()];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = c.put_bytes("/v1/tenants/attacker/models/bomb", &bombs[i % bombs.len()]);
                count(outcomes, "bomb upload", r.status);
                i += 1;
            }
        }));
        // Stalled uploads and idle anonymous connections.
        let upload_head = format!(
            "PUT /v1/tenants/attacker/models/stalled HTTP/1.1\r\nhost: maas\r\nauthorization: Bearer {attacker_key}\r\n\
             content-length: 100000000\r\n\r\n"
        );
        go(Box::new(move |stop, outcomes| stall(addr, &upload_head, b"PK", 20, stop, outcomes, "stalled upload")));
        let anonymous_head = "POST /fn/attacker/pub HTTP/1.1\r\nhost: maas\r\ncontent-type: application/json\r\n\
                              content-length: 1000\r\n\r\n"
            .to_string();
        go(Box::new(move |stop, outcomes| stall(addr, &anonymous_head, b"{", 16, stop, outcomes, "idle anonymous")));
        // A new input shape on every request (batch sizes 1 to 64), two at a time.
        for start in [0usize, 32] {
            let c = client();
            go(Box::new(move |stop, outcomes| {
                let mut rows = start;
                while !stop.load(Ordering::Relaxed) {
                    rows = rows % 64 + 1;
                    let body = json!({ "inputs": [{ "name": "input", "shape": [rows, 100], "datatype": "FP32",
                                                        "data": models::seeded_input(rows as u64, &[rows, 100]) }] });
                    let r = c.post_json("/v2/models/shapes/infer", &body);
                    count(outcomes, "distinct shapes", r.status);
                }
            }));
        }
        // Misbehaving guests: spin ×3, trap ×3, fill memory ×2, sleep ×2.
        for (function, clients) in [("spin", 3), ("trap", 3), ("alloc", 2), ("sleep", 2)] {
            for _ in 0..clients {
                let c = client();
                let path = format!("/fn/attacker/{function}");
                go(Box::new(move |stop, outcomes| hammer(&c, &path, &json!({}), stop, outcomes, function)));
            }
        }
        // Oversized explanation bodies: 8 MiB of numbers.
        let c = client();
        go(Box::new(move |stop, outcomes| {
            let rows = 8 << 20 >> 10;
            let data: Vec<f32> = (0..rows * 100).map(|i| (i % 7) as f32).collect();
            let body =
                json!({ "inputs": [{ "name": "input", "shape": [rows, 100], "datatype": "FP32", "data": data }] });
            hammer(&c, "/v1/tenants/attacker/models/shapes/explain", &body, stop, outcomes, "oversized explain")
        }));
        // The server's RSS, sampled.
        let (peak, stop_rss, pid_rss) = (peak_rss.clone(), stop.clone(), &server);
        s.spawn(move || {
            while !stop_rss.load(Ordering::Relaxed) {
                let rss = pid_rss.rss();
                let mut peak = peak.lock().unwrap();
                *peak = peak.max(rss.total);
                drop(peak);
                thread::sleep(Duration::from_millis(100));
            }
        });
        // Let the attack get going, then measure the victim under it.
        thread::sleep(Duration::from_secs(2));
        let measured = victim_phase(pid_rss, &victim_key);
        stop.store(true, Ordering::Relaxed);
        measured
    });
    let rss_after = server.rss();
    let alive = server.alive();

    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "maas soak: a victim tenant's steady load while another tenant attacks ({cores} cores, {PHASE:?} per phase)"
    );
    let (a50, a99) = (percentile(&mut alone, 0.5), percentile(&mut alone, 0.99));
    let (b50, b99) = (percentile(&mut attacked, 0.5), percentile(&mut attacked, 0.99));
    println!(
        "victim alone:        {:>7} calls   p50 {a50:>9.1} µs   p99 {a99:>9.1} µs   {} errors",
        alone.len(),
        alone_errors.len()
    );
    println!(
        "victim under attack: {:>7} calls   p50 {b50:>9.1} µs   p99 {b99:>9.1} µs   {} errors",
        attacked.len(),
        attacked_errors.len()
    );
    println!("victim p50 ×{:.2}, p99 ×{:.2} under attack (target: p99 within ×3)", b50 / a50, b99 / a99);
    println!(
        "server RSS: {:.1} MiB before the attack, peak {:.1} MiB during it (VmHWM {:.1} MiB), {:.1} MiB after; alive: {alive}",
        rss_before.total,
        *peak_rss.lock().unwrap(),
        rss_after.peak,
        rss_after.total
    );
    println!("what the attacker got (status: count):");
    for (what, statuses) in outcomes.lock().unwrap().iter() {
        let statuses: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        println!("  {what:<18} {}", statuses.join(", "));
    }
    assert!(alive, "the server died");
    assert!(alone_errors.is_empty() && attacked_errors.is_empty(), "the victim saw errors: {attacked_errors:?}");
}

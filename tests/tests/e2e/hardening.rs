//! What one tenant (or anonymous caller) can do to the server's own work, and what must hold
//! for everyone else meanwhile: stalled bodies, bursts beyond a function's concurrency, and
//! answers to bodies the server did not read.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use maas_tests::{TestServer, models};
use serde_json::{Value, json};

use super::*;

fn mlp_request(seed: u64) -> Value {
    oip_request("input", &[1, 100], &models::seeded_input(seed, &[1, 100]))
}

/// The peak resident memory of this process (the server runs in it), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Opens a connection and sends a request's head plus `sent` of the `declared` body bytes.
fn stall(server: &TestServer, path: &str, declared: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: maas\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(sent).unwrap();
    stream
}

/// Everything the server sends on `stream` until it closes it (or 30 s pass).
fn read_answer(mut stream: TcpStream) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Idle anonymous connections to a public function, each having sent one byte of its body,
/// take nothing the owner needs: the owner's invocations and `/v2` calls are served while
/// they stall. One client address holds at most 8 anonymous calls; the rest are refused at
/// once. Each stalled body then fails with `400` and `Connection: close`.
#[test]
fn stalled_anonymous_bodies_do_not_lock_the_owner_out() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(temp.path(), |c| c.body_idle_timeout = Duration::from_secs(2));
    let admin = tenant(&server, "acme");
    upload(&admin, "acme", "mlp", &models::mlp(1));
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" }, "public": true,
                           "limits": { "max_concurrency": 2 } });
    assert_eq!(deploy(&admin, "acme", "f", manifest).status, 201);
    let key = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "invoker" })).json()["key"].clone();
    let owner = server.client(key.as_str().unwrap());
    assert_eq!(owner.post_json("/fn/acme/f", &mlp_request(1)).status, 200, "warm");

    let stalled: Vec<TcpStream> = (0..16).map(|_| stall(&server, "/fn/acme/f", 1000, b"{")).collect();
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for seed in 0..5 {
        let r = owner.post_json("/fn/acme/f", &mlp_request(seed));
        assert_eq!(
            r.status,
            200,
            "the owner's call while anonymous bodies stall: {}",
            String::from_utf8_lossy(&r.body)
        );
        let r = owner.post_json("/v2/models/mlp/infer", &mlp_request(seed));
        assert_eq!(
            r.status,
            200,
            "the owner's /v2 call while anonymous bodies stall: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2), "the owner waited: {:?}", started.elapsed());

    let answers: Vec<String> = stalled.into_iter().map(read_answer).collect();
    let status = |a: &String| a.get(9..12).unwrap_or_default().to_string();
    let timed_out: Vec<&String> = answers.iter().filter(|a| status(a) == "400").collect();
    let refused = answers.iter().filter(|a| status(a) == "429").count();
    assert_eq!((timed_out.len(), refused), (8, 8), "{answers:#?}");
    for answer in timed_out {
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("connection: close"), "{answer}");
        assert!(lower.contains("sent nothing of the request body"), "{answer}");
    }
}

/// An answer given without reading a large body says `Connection: close`, since the server
/// closes the connection after it.
#[test]
fn early_answers_to_unread_bodies_say_connection_close() {
    let server = TestServer::start();
    for path in ["/fn/nobody/f", "/v1/tenants"] {
        let answer = read_answer(stall(&server, path, 1_200_000, b"{"));
        let lower = answer.to_ascii_lowercase();
        assert!(lower.starts_with("http/1.1 4"), "{answer}");
        assert!(lower.contains("connection: close"), "{path}: {answer}");
    }
}

/// 32 clients at once against a function with `max_concurrency` 2: all are served, the
/// rest waiting their turn in the function's queue; with `queue_depth` 0 the excess is refused.
#[test]
fn bursts_queue_instead_of_being_refused() {
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    admin.patch_json("/v1/tenants/acme", &json!({ "quota": { "rate_per_second": 10000.0 } }));
    upload(&admin, "acme", "mlp", &models::mlp(1));
    let queued = json!({ "component": "builtin:tensor", "models": { "model": "mlp" },
                         "limits": { "max_concurrency": 2 } });
    let strict = json!({ "component": "builtin:tensor", "models": { "model": "mlp" },
                         "limits": { "max_concurrency": 1, "queue_depth": 0 } });
    assert_eq!(deploy(&admin, "acme", "queued", queued).status, 201);
    assert_eq!(deploy(&admin, "acme", "strict", strict).status, 201);
    let burst = |function: &'static str| -> Vec<u16> {
        let calls: Vec<_> = (0..32)
            .map(|seed| {
                let client = admin.clone();
                thread::spawn(move || client.post_json(&format!("/fn/acme/{function}"), &mlp_request(seed)).status)
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    };
    let statuses = burst("queued");
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    let statuses = burst("strict");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.iter().all(|&s| s == 200 || s == 429), "{statuses:?}");
}

/// A gzip body that decompresses past `max_request_bytes` is `413` on `/fn` as on `/v2`: the
/// limit on what a body may grow to is the tenant's, on every route.
#[test]
fn gzip_bombs_are_413_on_every_route() {
    use flate2::{Compression, write::GzEncoder};
    let server = TestServer::start();
    let admin = server.admin();
    let quota = json!({ "max_request_bytes": 1 << 20 });
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme", "quota": quota })).status, 201);
    upload(&admin, "acme", "mlp", &models::mlp(1));
    assert_eq!(
        deploy(&admin, "acme", "f", json!({ "component": "builtin:tensor", "models": { "model": "mlp" } })).status,
        201
    );
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(&vec![b' '; 8 << 20]).unwrap();
    let bomb = encoder.finish().unwrap();
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let headers = [("content-encoding", "gzip")];
    let key = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "invoker" })).json()["key"].clone();
    let invoker = server.client(key.as_str().unwrap());
    for path in ["/fn/acme/f", "/v2/models/mlp/infer"] {
        let r = invoker.send_with_headers("POST", path, &headers, Some((&bomb, "application/json")));
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!((r.status, r.code().as_str()), (413, "payload_too_large"), "{path}: {body}");
        assert!(body.contains("1048576"), "{path}: {body}");
    }
}

/// Small models that ask tract for gigabytes, or made it panic, are refused at upload with
/// `400 invalid_model` naming what they asked for, quickly and keeping nothing; a request of
/// zero bytes that binds a huge dimension is `400 invalid_input`, and the server goes on.
#[test]
fn hostile_models_are_refused_at_upload_and_per_request() {
    use maas_fixtures::hostile;
    let server = TestServer::start();
    let admin = tenant(&server, "acme");
    let started = Instant::now();
    for (name, model, says) in [
        ("cos", hostile::constant_of_shape(16384), "ConstantOfShape"),
        ("cos-huge", hostile::constant_of_shape(1 << 20), "ConstantOfShape"),
        ("expand", hostile::expand(), "Expand"),
        ("topk", hostile::top_k(), "TopK"),
        ("slice", hostile::slice_zero_step(), "step of 0"),
        ("dangling", hostile::dangling_output(), "produced by no node"),
    ] {
        let r = admin.put_bytes(&format!("/v1/tenants/acme/models/{name}"), &model);
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!((r.status, r.code().as_str()), (400, "invalid_model"), "{name}: {body}");
        assert!(body.contains(says), "{name}: {body}");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(admin.get("/v1/tenants/acme/models").json(), json!({ "models": [] }));
    assert_eq!(admin.get("/v1/tenants/acme/usage").json()["storage_bytes"], 0);

    upload(&admin, "acme", "amp", &hostile::empty_input_amplifier());
    let key = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "invoker" })).json()["key"].clone();
    let invoker = server.client(key.as_str().unwrap());
    let empty = json!({ "inputs": [{ "name": "x", "shape": [268435456, 0], "datatype": "FP32", "data": [] }] });
    let peak = peak_rss_mib();
    let r = invoker.post_json("/v2/models/amp/infer", &empty);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_input"), "{body}");
    assert!(body.contains("memory limit"), "{body}");
    // The 1 GiB output was never allocated: the process's peak grew by far less (other tests
    // of this binary run beside, hence the margin).
    let grown = peak_rss_mib() - peak;
    assert!(grown < 512.0, "peak RSS grew by {grown:.0} MiB");
    let fine = json!({ "inputs": [{ "name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 5] }] });
    let r = invoker.post_json("/v2/models/amp/infer", &fine);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["outputs"][0]["data"], json!([1.5, 4.0]));
}

/// Stalled uploads hold one tenant's few upload places, nothing of anyone else's: past
/// 4 uploads in progress a tenant's next one is refused at once, another tenant's calls are
/// served meanwhile, and each stalled one fails once the client stops sending.
#[test]
fn stalled_uploads_hold_only_their_tenants_places() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(temp.path(), |c| c.body_idle_timeout = Duration::from_secs(2));
    let admin = tenant(&server, "slow");
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "busy" })).status, 201);
    upload(&admin, "busy", "mlp", &models::mlp(1));
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
    assert_eq!(deploy(&admin, "busy", "f", manifest).status, 201);
    assert_eq!(admin.post_json("/fn/busy/f", &mlp_request(1)).status, 200, "warm");

    let head = format!(
        "PUT /v1/tenants/slow/models/m HTTP/1.1\r\nhost: maas\r\nauthorization: Bearer {}\r\n\
         content-length: 100000000\r\n\r\n",
        maas_tests::ADMIN_KEY
    );
    let stalled: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr()).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(b"PK").unwrap();
            stream
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    for seed in 0..10 {
        assert_eq!(admin.post_json("/fn/busy/f", &mlp_request(seed)).status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(2), "another tenant waited: {:?}", started.elapsed());
    let answers: Vec<String> = stalled.into_iter().map(read_answer).collect();
    let status = |a: &String| a.get(9..12).unwrap_or_default().to_string();
    let refused = answers.iter().filter(|a| status(a) == "429").count();
    let timed_out = answers.iter().filter(|a| status(a) == "400").count();
    assert_eq!((refused, timed_out), (6, 4), "{answers:#?}");
    assert_eq!(admin.get("/v1/tenants/slow/models").json(), json!({ "models": [] }));
}

/// Two uploads in progress cannot both count on the same storage left: the second is refused
/// once together they pass `max_storage_bytes`, even though neither is committed yet.
#[test]
fn concurrent_uploads_reserve_storage() {
    let server = TestServer::start();
    let admin = server.admin();
    let quota = json!({ "max_storage_bytes": 100_000 });
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme", "quota": quota })).status, 201);
    let model = models::mlp(1);
    assert!(model.len() < 60_000 && model.len() > 20_000, "{}", model.len());
    // The first upload sends all but its last byte and waits.
    let head = format!(
        "PUT /v1/tenants/acme/models/first HTTP/1.1\r\nhost: maas\r\nauthorization: Bearer {}\r\n\
         content-length: {}\r\n\r\n",
        maas_tests::ADMIN_KEY,
        model.len()
    );
    let mut first = TcpStream::connect(server.addr()).unwrap();
    first.write_all(head.as_bytes()).unwrap();
    first.write_all(&model[..model.len() - 1]).unwrap();
    thread::sleep(Duration::from_millis(300));
    let mut padded = model.clone();
    // Alone it would fit; with the first one's bytes it is one byte too many.
    padded.resize(100_000 - (model.len() - 1) + 1, 0);
    let second = admin.put_bytes("/v1/tenants/acme/models/second", &padded);
    let body = String::from_utf8_lossy(&second.body).into_owned();
    assert_eq!((second.status, second.code().as_str()), (403, "quota_exceeded"), "{body}");
    assert!(body.contains("other uploads in progress"), "{body}");
    // The first one finishes and is kept.
    first.write_all(&model[model.len() - 1..]).unwrap();
    first.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = [0u8; 12];
    first.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 201");
}

/// A component past 64 MiB is refused from its declared size, before a byte is stored: its
/// compile could not be interrupted.
#[test]
fn oversized_components_are_refused_before_reading() {
    let server = TestServer::start();
    let _admin = tenant(&server, "acme");
    let head = format!(
        "POST /v1/tenants/acme/components HTTP/1.1\r\nhost: maas\r\nauthorization: Bearer {}\r\n\
         content-type: application/wasm\r\ncontent-length: {}\r\n\r\n",
        maas_tests::ADMIN_KEY,
        65u64 << 20
    );
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_answer(stream);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("67108864"), "{answer}");
}

/// A component whose compile outlasts the budget is refused, and what the compile produced
/// once it ran out is thrown away: nothing is stored.
#[test]
fn compiles_past_the_budget_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(temp.path(), |c| c.analysis_timeout = Duration::from_millis(1));
    let admin = tenant(&server, "acme");
    let wasm = maas_tests::guest_wasm("maas_fn_misbehave");
    let r = admin.post_bytes("/v1/tenants/acme/components", &wasm, "application/wasm");
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!((r.status, r.code().as_str()), (400, "invalid_component"), "{body}");
    assert!(body.contains("longer than its budget of 1ms"), "{body}");
    // The compile goes on in the background; once it is done, its chunk files are gone and
    // nothing of it is kept.
    let chunk_files = || {
        let mut stack = vec![temp.path().join("db").join("chunks")];
        let mut files = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.path().is_dir() {
                    stack.push(entry.path());
                } else {
                    files += 1;
                }
            }
        }
        files
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while chunk_files() > 0 {
        assert!(Instant::now() < deadline, "the refused component's chunks are still there");
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(admin.get("/v1/tenants/acme/components").json(), json!({ "components": [] }));
    assert_eq!(admin.get("/v1/tenants/acme/usage").json()["storage_bytes"], 0);
}

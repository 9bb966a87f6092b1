//! The `maas` binary's client subcommands as a user runs them: a subprocess against a real
//! server (`maas_tests::TestServer`, in this process on a loopback port), checking stdout,
//! stderr and exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use maas_tests::{ADMIN_KEY, TestServer, models};
use serde_json::{Value, json};

/// One run of `maas`.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().expect("maas exited normally"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success; returns stdout.
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts the exit code and that stderr holds every one of `needles`; returns stderr.
    #[track_caller]
    fn fails(&self, code: i32, needles: &[&str]) -> &str {
        assert_eq!(self.code, code, "exit code\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        for needle in needles {
            assert!(self.stderr.contains(needle), "stderr lacks {needle:?}: {}", self.stderr);
        }
        &self.stderr
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// `maas` for one server and key, with nothing inherited from the environment that would change it.
fn maas(server: &TestServer, key: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_maas"));
    command.env_remove("MAAS_KEY").env("MAAS_URL", format!("http://{}", server.addr())).stdin(Stdio::null());
    if let Some(key) = key {
        command.env("MAAS_KEY", key);
    }
    command
}

fn run(server: &TestServer, key: Option<&str>, args: &[&str]) -> Run {
    Run::from(maas(server, key).args(args).output().expect("run maas"))
}

/// Runs with `stdin` as standard input.
fn run_with_stdin(server: &TestServer, key: &str, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = maas(server, Some(key))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    Run::from(child.wait_with_output().unwrap())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

fn oip_request() -> String {
    let data: Vec<f32> = (0..100).map(|i| i as f32 * 0.01).collect();
    json!({ "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "data": data }] }).to_string()
}

/// The probabilities of an OIP answer.
fn probabilities(answer: &Value) -> Vec<f64> {
    answer["outputs"][0]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs in {answer}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn happy_path_from_tenant_to_invocation() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = Some(ADMIN_KEY);

    // A tenant, as the admin.
    let out =
        run(&server, admin, &["tenants", "create", "acme", "--rate-per-second", "1000", "--max-model-bytes", "64MiB"]);
    assert!(out.ok().starts_with("created tenant acme\n"), "{}", out.stdout);
    assert!(out.stdout.contains("max_model_bytes    64.0 MiB"), "{}", out.stdout);
    let shown = run(&server, admin, &["--output", "json", "tenants", "show", "acme"]).json();
    assert_eq!((shown["name"].as_str(), shown["quota"]["max_model_bytes"].as_u64()), (Some("acme"), Some(64 << 20)));
    let listed = run(&server, admin, &["tenants", "list"]);
    assert!(listed.ok().lines().any(|l| l.starts_with("acme ")), "{}", listed.stdout);

    // An owner key: the secret alone on stdout, the rest on stderr.
    let created = run(&server, admin, &["keys", "create", "acme", "--role", "owner", "--label", "cli"]);
    let owner_key = created.ok().trim().to_string();
    assert!(owner_key.starts_with("maas_") && !owner_key.contains(char::is_whitespace), "{owner_key:?}");
    assert!(
        created.stderr.contains("created owner key") && created.stderr.contains("shown only once"),
        "{}",
        created.stderr
    );
    let owner = Some(owner_key.as_str());
    let keys = run(&server, owner, &["keys", "list", "acme"]);
    assert!(keys.ok().contains("owner") && keys.stdout.contains("cli"), "{}", keys.stdout);

    // The seed model, uploaded from a file, then again from stdin.
    let mlp = models::mlp(42);
    let mlp_path = write(dir.path(), "mlp.onnx", &mlp);
    let uploaded = run(&server, owner, &["models", "upload", "acme", "mlp", &mlp_path]);
    let sha = hex_sha256(&mlp);
    assert!(uploaded.ok().starts_with("uploaded acme/mlp version 1 ("), "{}", uploaded.stdout);
    assert!(uploaded.stdout.contains(&sha), "{}", uploaded.stdout);
    assert!(uploaded.stdout.contains("input   input   FP32      [1, 100]"), "{}", uploaded.stdout);
    let again =
        run_with_stdin(&server, &owner_key, &["--output", "json", "models", "upload", "acme", "mlp", "-"], &mlp);
    let again = again.json();
    assert_eq!((again["version"].as_u64(), again["sha256"].as_str()), (Some(2), Some(sha.as_str())));
    let versions = run(&server, owner, &["models", "versions", "acme", "mlp"]);
    assert_eq!(versions.ok().lines().count(), 3, "{}", versions.stdout);
    let shown = run(&server, owner, &["models", "show", "acme", "mlp", "--version", "1"]);
    assert!(
        shown.ok().contains("version  1") && shown.stdout.contains("output  output  FP32      [1, 10]"),
        "{}",
        shown.stdout
    );
    assert!(run(&server, owner, &["models", "list", "acme"]).ok().contains("mlp   2       2"));

    // A model whose input has no shape in the file, its rank and a size declared: tract then
    // types it once, its free dimension a symbol, rather than per request shape.
    let rankless = write(dir.path(), "rankless.onnx", &models::exported::shape_of_unknown_rank());
    let upload = ["--output", "json", "models", "upload", "acme", "pinned", &rankless, "--input", "x:FP32:-1,3"];
    let declared = run(&server, owner, &upload).json();
    assert_eq!(declared["declared_inputs"], json!([{ "name": "x", "datatype": "FP32", "shape": [-1, 3] }]));
    assert_eq!(declared["per_request_shapes"], false);
    let shown = run(&server, owner, &["models", "show", "acme", "pinned"]);
    assert!(shown.ok().contains("one for all shapes") && shown.stdout.contains("declared"), "{}", shown.stdout);
    assert!(shown.stdout.contains("[?, 3]"), "{}", shown.stdout);
    run(&server, owner, &["models", "upload", "acme", "bad", &rankless, "--input", "x:FLOAT:1"])
        .fails(2, &["unknown datatype"]);

    // builtin:tensor, deployed from flags.
    let deployed = run(
        &server,
        owner,
        &["functions", "deploy", "acme", "mlp", "builtin:tensor", "--model", "model=mlp", "--idle-timeout-s", "120"],
    );
    let url = format!("http://{}/fn/acme/mlp", server.addr());
    assert_eq!(deployed.ok().trim(), format!("deployed acme/mlp revision 1 at {url}"));

    // Invocations: inline JSON, then a file with -i, then stdin.
    let answer: Value =
        serde_json::from_str(run(&server, owner, &["invoke", "acme", "mlp", "--json", &oip_request()]).ok()).unwrap();
    let p = probabilities(&answer);
    assert_eq!(p.len(), 10);
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{p:?}");
    let request_path = write(dir.path(), "req.json", oip_request().as_bytes());
    let included = run(
        &server,
        owner,
        &["invoke", "acme", "mlp", "--body", &request_path, "-H", "content-type: application/json", "-i"],
    );
    let text = included.ok();
    assert!(text.starts_with("HTTP/1.1 200 OK\n"), "{text}");
    assert!(text.contains("\nx-maas-cold-start: false\n") && text.contains("\nx-request-id: "), "{text}");
    let body = text.split("\n\n").nth(1).expect("a blank line before the body");
    assert_eq!(probabilities(&serde_json::from_str(body).unwrap()), p);
    let piped =
        run_with_stdin(&server, &owner_key, &["invoke", "acme", "mlp", "--body", "-"], oip_request().as_bytes());
    assert_eq!(probabilities(&serde_json::from_str(piped.ok()).unwrap()), p);
    let status = run(&server, owner, &["functions", "status", "acme", "mlp"]);
    assert!(
        status.ok().contains("state         warm") && status.stdout.contains("invocations   3"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("cold starts   1"), "{}", status.stdout);

    // A custom component from its .wasm path, with a manifest file and flags on top.
    let wasm_path = write(dir.path(), "classify.wasm", &maas_tests::guest_wasm("maas_fn_classify"));
    let manifest_path = write(
        dir.path(),
        "classify.json",
        json!({ "component": "builtin:tensor", "models": { "model": "mlp@1" }, "config": { "top_k": "2" } })
            .to_string()
            .as_bytes(),
    );
    let deployed = run(
        &server,
        owner,
        &[
            "functions",
            "deploy",
            "acme",
            "classify",
            &wasm_path,
            "--manifest",
            &manifest_path,
            "--config",
            "labels=a,b,c,d,e,f,g,h,i,j",
        ],
    );
    assert!(deployed.ok().starts_with("deployed acme/classify revision 1"), "{}", deployed.stdout);
    assert!(deployed.stderr.contains("classify.wasm as sha256:"), "{}", deployed.stderr);
    let features: Vec<f32> = (0..100).map(|i| (i % 5) as f32).collect();
    let answer = run(
        &server,
        owner,
        &[
            "--output",
            "json",
            "invoke",
            "acme",
            "classify",
            "/predict?x=1",
            "--json",
            &json!({ "features": features }).to_string(),
        ],
    )
    .json();
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["predictions"].as_array().map(Vec::len), Some(2), "{answer}");
    assert!(answer["headers"]["x-maas-duration-us"].is_string(), "{answer}");
    let shown = run(&server, owner, &["--output", "json", "functions", "show", "acme", "classify"]).json();
    assert_eq!((shown["models"]["model"].as_str(), shown["config"]["top_k"].as_str()), (Some("mlp@1"), Some("2")));
    assert!(shown["component"].as_str().unwrap().starts_with("sha256:"), "{shown}");
    let components = run(&server, owner, &["components", "list", "acme"]);
    assert!(components.ok().contains(shown["component"].as_str().unwrap()), "{}", components.stdout);
    let functions = run(&server, owner, &["functions", "list", "acme"]);
    assert_eq!(functions.ok().lines().count(), 3, "{}", functions.stdout);

    // The audit trail and usage.
    let audit = run(&server, admin, &["audit", "--tenant", "acme", "--limit", "50"]);
    assert!(audit.ok().contains("function.deploy") && audit.stdout.contains("model.upload"), "{}", audit.stdout);
    let usage = run(&server, owner, &["usage", "acme"]).json();
    assert_eq!(usage["tenant"], "acme", "{usage}");
    assert!(usage["invocations"].as_u64().is_some_and(|n| n >= 4), "{usage}");
    assert_eq!(usage["functions"]["mlp"]["invocations"], 3, "{usage}");

    // Clean-up, as a user would.
    run(&server, owner, &["functions", "delete", "acme", "classify"]).ok();
    run(&server, admin, &["tenants", "delete", "acme"]).ok();
    run(&server, admin, &["tenants", "show", "acme"]).fails(1, &["not_found", "HTTP 404"]);
}

#[test]
fn errors_exit_non_zero_with_the_servers_message() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let admin = Some(ADMIN_KEY);
    run(&server, admin, &["tenants", "create", "acme"]).ok();
    run(&server, admin, &["tenants", "create", "tiny", "--max-model-bytes", "1KiB"]).ok();

    // A bad key, and none at all.
    let bad = run(&server, Some("maas_0123456789abcdef_nope"), &["tenants", "list"]);
    bad.fails(1, &["error: a valid key is required", "(unauthenticated, HTTP 401)", "hint: pass a key"]);
    assert!(bad.stdout.is_empty(), "{}", bad.stdout);
    run(&server, None, &["models", "list", "acme"]).fails(1, &["unauthenticated"]);

    // A missing model.
    run(&server, admin, &["models", "show", "acme", "ghost"])
        .fails(1, &["error: no model \"ghost\"", "(not_found, HTTP 404)"]);
    run(&server, admin, &["models", "versions", "acme", "ghost"]).fails(1, &["not_found"]);

    // An invalid model file.
    let junk = write(dir.path(), "junk.onnx", &models::invalid_onnx());
    let out = run(&server, admin, &["models", "upload", "acme", "junk", &junk]);
    out.fails(1, &["tract cannot load this model", "(invalid_model, HTTP 400)"]);
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // Quota exceeded.
    let mlp = write(dir.path(), "mlp.onnx", &models::mlp(1));
    run(&server, admin, &["models", "upload", "tiny", "mlp", &mlp])
        .fails(1, &["max_model_bytes", "(quota_exceeded, HTTP 403)"]);

    // An invoker may invoke but not upload.
    let invoker = run(&server, admin, &["keys", "create", "acme", "--role", "invoker"]).ok().trim().to_string();
    run(&server, Some(&invoker), &["models", "upload", "acme", "mlp", &mlp]).fails(1, &["(forbidden, HTTP 403)"]);

    // A function's error answer.
    run(&server, admin, &["invoke", "acme", "nothing", "--json", "{}"])
        .fails(1, &["no function \"nothing\"", "not_found"]);

    // Usage errors: nothing is sent, exit code 2.
    run(&server, admin, &["tenants", "frobnicate"]).fails(2, &["unrecognized subcommand"]);
    run(&server, admin, &["keys", "create", "acme"]).fails(2, &["--role"]);
    run(&server, admin, &["invoke", "acme", "f", "--json", "{not json"]).fails(2, &["--json is not valid JSON"]);
    run(&server, admin, &["models", "upload", "acme", "m", "/no/such/file.onnx"]).fails(2, &["/no/such/file.onnx"]);
    run(&server, admin, &["functions", "deploy", "acme", "f"]).fails(2, &["no component"]);
    run(&server, admin, &["tenants", "update", "acme"]).fails(2, &["nothing to update"]);
    run(&server, admin, &["--url", "https://example.invalid", "tenants", "list"]).fails(2, &["https is not supported"]);

    // Nobody listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}");
    run(&server, admin, &["--url", &url, "tenants", "list"]).fails(1, &["Connection refused"]);
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Every environment variable the README names is one the binary reads: the server's (from
/// `maas_runtime::config::ENV_VARS`) or the client's (`MAAS_URL`, `MAAS_KEY`, which every test
/// here sets).
#[test]
fn the_readme_names_only_variables_that_are_read() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let named: std::collections::BTreeSet<&str> = readme
        .match_indices("MAAS_")
        .map(|(i, _)| {
            let rest = &readme[i..];
            &rest[..rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len())]
        })
        .collect();
    let server: Vec<&str> = maas_runtime::config::ENV_VARS.iter().map(|(name, _)| *name).collect();
    for name in &named {
        assert!(
            server.contains(name) || ["MAAS_URL", "MAAS_KEY"].contains(name),
            "README names {name}, nothing reads it"
        );
    }
    for name in &server {
        assert!(named.contains(name), "the server reads {name}, the README does not say so");
    }
}

/// `maas serve` takes its configuration from the environment: each server variable changes
/// what the running server does.
/// `maas serve` in a process of its own over `data`, with the test keys and `env`; returns
/// the child and its address.
fn serve(data: &Path, env: &[(&str, &str)]) -> (std::process::Child, std::net::SocketAddr) {
    serve_logging_to(data, env, Stdio::piped())
}

/// [`serve`] with the server's log lines going to `stderr`.
fn serve_logging_to(data: &Path, env: &[(&str, &str)], stderr: Stdio) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_maas"))
        .arg("serve")
        .env("MAAS_LISTEN", "127.0.0.1:0")
        .env("MAAS_DATA", data)
        .env("MAAS_ADMIN_KEY", ADMIN_KEY)
        .env("MAAS_MASTER_KEY", maas_tests::TEST_MASTER_KEY)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .parse()
        .unwrap();
    (child, addr)
}

#[test]
fn serve_reads_its_environment() {
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("MAAS_LOG", "warn"),
        ("MAAS_WATTS_PER_CORE", "7.5"),
        ("MAAS_GRID_GCO2E_PER_KWH", "120"),
        ("MAAS_ANALYSIS_TIMEOUT_S", "1"),
    ];
    let (child, addr) = serve(data.path(), &env);
    // MAAS_LISTEN: loopback, the port the system chose.
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    // MAAS_ADMIN_KEY: the test key is the admin's; none was generated.
    let admin = maas_tests::Client::admin_at(addr);
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme" })).status, 201);
    // MAAS_WATTS_PER_CORE and MAAS_GRID_GCO2E_PER_KWH: the energy model of the usage report.
    let usage = admin.get("/v1/tenants/acme/usage").json();
    assert_eq!(usage["energy_model"], json!({ "watts_per_core": 7.5, "grid_gco2e_per_kwh": 120.0 }), "{usage}");
    // MAAS_ANALYSIS_TIMEOUT_S: uploads are analysed by this binary in a process of its own,
    // stopped after 1 s; the model is refused and the server goes on.
    assert_eq!(admin.put_bytes("/v1/tenants/acme/models/mlp", &models::mlp(1)).status, 201);
    let started = std::time::Instant::now();
    let slow = admin.put_bytes("/v1/tenants/acme/models/slow", &models::hostile::long_chain(40_000));
    let body = String::from_utf8_lossy(&slow.body).into_owned();
    assert_eq!((slow.status, slow.code().as_str()), (400, "invalid_model"), "{body}");
    assert!(body.contains("longer than its budget of 1s"), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    // Declared input specs travel to the analysing process, names that look like flags too.
    let rankless = models::exported::shape_of_unknown_rank();
    let declared = admin.put_bytes("/v1/tenants/acme/models/pinned?input=x:FP32:-1,3", &rankless);
    assert_eq!(declared.status, 201, "{}", String::from_utf8_lossy(&declared.body));
    assert_eq!(declared.json()["inputs"][0]["shape"], json!([-1, 3]));
    let dashed = admin.put_bytes("/v1/tenants/acme/models/dashed?input=-x:FP32:1", &rankless);
    let body = String::from_utf8_lossy(&dashed.body).into_owned();
    assert!(dashed.status == 400 && body.contains("not an input of the model"), "{body}");
    let bomb = admin.put_bytes("/v1/tenants/acme/models/bomb", &models::hostile::expand());
    assert_eq!((bomb.status, bomb.code().as_str()), (400, "invalid_model"));
    assert_eq!(admin.get("/v1/tenants/acme/models").json()["models"].as_array().map(Vec::len), Some(2));
    // MAAS_DATA and MAAS_MASTER_KEY: the store is there, no key was generated beside it.
    assert!(data.path().join("db").is_dir());
    assert!(!data.path().join("admin.key").exists() && !data.path().join("master.key").exists());
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let output = child.wait_with_output().unwrap();
    // MAAS_LOG: warnings only, where the default would have logged each request.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("INFO"), "info logs with MAAS_LOG=warn: {stderr}");
    assert!(output.status.success(), "{stderr}");
}

/// A tenant sending many distinct shapes to a model served per request shape cannot fill the
/// server's memory with plans: each plan of this model holds 16 MiB of packed weights, the
/// tenant's `max_memory_mb` of 64 bounds one model's plans to 32 MiB, and 30 more shapes leave
/// the server's resident memory where two plans put it (twelve, 192 MiB, before the bound).
#[test]
fn many_distinct_shapes_keep_plan_memory_bounded() {
    const WIDTH: usize = 2048;
    let data = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(data.path(), &[("MAAS_LOG", "warn")]);
    let admin = maas_tests::Client::admin_at(addr);
    let quota = json!({ "max_memory_mb": 64 });
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme", "quota": quota })).status, 201);
    let r = admin.put_bytes("/v1/tenants/acme/models/wide", &models::exported::wide_per_shape(WIDTH, 1));
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["per_request_shapes"], true);
    let manifest =
        json!({ "component": "builtin:tensor", "models": { "model": "wide" }, "limits": { "memory_mb": 64 } });
    let r = admin.put_json("/v1/tenants/acme/functions/wide", &manifest);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let call = |rows: usize| {
        let (body, header) =
            maas_tests::oip_binary_body("x", &[rows, WIDTH], &models::seeded_input(rows as u64, &[rows, WIDTH]));
        let header = header.to_string();
        let headers = [("Inference-Header-Content-Length", header.as_str())];
        let r = admin.send_with_headers("POST", "/fn/acme/wide", &headers, Some((&body, "application/octet-stream")));
        assert_eq!(r.status, 200, "{rows} rows: {}", String::from_utf8_lossy(&r.body));
    };
    let rss_mib = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb / 1024.0
    };
    let metric = |name: &str| -> f64 {
        let text = String::from_utf8(admin.get("/metrics").body).unwrap();
        maas_tests::metrics::sum(&text, name, &[])
    };
    // Warm: the function, its model and the first plans.
    for rows in 1..=3 {
        call(rows);
    }
    let before = rss_mib();
    for rows in 4..=33 {
        call(rows);
    }
    let grown = rss_mib() - before;
    let (plan_mib, evictions) = (metric("maas_plan_bytes") / f64::from(1 << 20), metric("maas_plan_evictions_total"));
    eprintln!(
        "30 more shapes: server RSS {before:.1} MiB → +{grown:.1} MiB; plans {plan_mib:.1} MiB; {evictions} evicted"
    );
    assert!(evictions >= 30.0, "{evictions} plans evicted");
    assert!(plan_mib <= 33.0, "plans hold {plan_mib:.1} MiB");
    assert!(grown < 64.0, "30 more shapes grew the server by {grown:.1} MiB");
    eprintln!(
        "30 more shapes: server RSS {before:.1} MiB → +{grown:.1} MiB; plans {plan_mib:.1} MiB; {evictions} evicted"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// `maas top` against a live server: with an owner key and its tenant, one frame of that
/// tenant's functions only, with the traffic of the interval in requests/s and p50/p99.
#[test]
fn top_shows_a_tenants_functions_live() {
    let server = TestServer::start();
    let admin = server.admin();
    let input = oip_request();
    for tenant in ["acme", "umbrella"] {
        assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": tenant })).status, 201);
        assert_eq!(admin.put_bytes(&format!("/v1/tenants/{tenant}/models/mlp"), &models::mlp(42)).status, 201);
        let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
        assert_eq!(admin.put_json(&format!("/v1/tenants/{tenant}/functions/scorer"), &manifest).status, 201);
        let r = admin.send("POST", &format!("/fn/{tenant}/scorer"), Some((input.as_bytes(), "application/json")));
        assert_eq!(r.status, 200);
    }
    let key = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "owner" })).json()["key"].clone();
    let key = key.as_str().unwrap();
    // Calls during the interval, so that it has a rate and quantiles to show.
    let frame = std::thread::scope(|s| {
        let calls = s.spawn(|| {
            for _ in 0..40 {
                let r = admin.send("POST", "/fn/acme/scorer", Some((input.as_bytes(), "application/json")));
                assert_eq!(r.status, 200);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let frame = run(&server, Some(key), &["top", "acme", "--once", "--interval", "1.5"]);
        calls.join().unwrap();
        frame
    });
    let text = frame.ok();
    eprintln!("{text}");
    assert!(!text.contains('\x1b'), "--once draws no terminal codes: {text:?}");
    assert!(!text.contains("umbrella"), "another tenant's function: {text}");
    let row =
        text.lines().find(|l| l.starts_with("acme ") && l.contains(" scorer ")).unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // TENANT FUNCTION STATE REQ/S P50 P99 COLD ERRORS ENERGY
    assert_eq!(cells[2], "warm", "{row}");
    let rate: f64 = cells[3].parse().unwrap();
    assert!(rate > 1.0, "{row}");
    assert!(cells[4].ends_with("ms") && cells[5].ends_with("ms"), "{row}");
    assert_eq!((cells[6], cells[7]), ("1", "0"), "{row}");
    // The admin key sees every tenant's functions.
    let all = run(&server, Some(ADMIN_KEY), &["top", "--once", "--interval", "0.1"]);
    let rows: Vec<&str> = all.ok().lines().filter(|l| l.contains(" scorer ")).collect();
    assert!(rows.len() == 2 && rows[1].starts_with("umbrella "), "{}", all.stdout);
    // The owner key reads no other tenant's view, nor the whole server's.
    run(&server, Some(key), &["top", "umbrella", "--once", "--interval", "0.1"]).fails(1, &["forbidden"]);
    run(&server, Some(key), &["top", "--once", "--interval", "0.1"]).fails(1, &["forbidden"]);
}

/// Stops a server started by [`serve`] with SIGTERM; it exits cleanly.
fn stop(child: std::process::Child) -> Output {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// A tenant `acme` with the seed model behind function `f`; returns its owner key.
fn acme_with_f(admin: &maas_tests::Client) -> String {
    assert_eq!(admin.post_json("/v1/tenants", &json!({ "name": "acme" })).status, 201);
    let owner = admin.post_json("/v1/tenants/acme/keys", &json!({ "role": "owner" })).json()["key"].clone();
    assert_eq!(admin.put_bytes("/v1/tenants/acme/models/mlp", &models::mlp(42)).status, 201);
    let manifest = json!({ "component": "builtin:tensor", "models": { "model": "mlp" } });
    assert_eq!(admin.put_json("/v1/tenants/acme/functions/f", &manifest).status, 201);
    owner.as_str().unwrap().to_string()
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, an invocation's spans reach the collector with their
/// structure (request → auth, admission, cold start → component, models, instance → guest →
/// infer), under the caller's trace, and the answer names the server's span in `traceparent`.
#[test]
fn traces_reach_an_otlp_collector_with_their_structure() {
    let collector = maas_tests::otlp::Receiver::start();
    let data = tempfile::tempdir().unwrap();
    let endpoint = collector.endpoint();
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "maas-under-test"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let (child, addr) = serve(data.path(), &env);
    let admin = maas_tests::Client::admin_at(addr);
    acme_with_f(&admin);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{caller}-01");
    let body = oip_request();
    let answer = admin.send_with_headers(
        "POST",
        "/fn/acme/f",
        &[("traceparent", traceparent.as_str())],
        Some((body.as_bytes(), "application/json")),
    );
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.header("x-maas-cold-start"), Some("true"));
    // The answer's traceparent: the same trace, the server's span.
    let returned = answer.header("traceparent").expect("a traceparent in the answer").to_string();
    let parts: Vec<&str> = returned.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", trace, "01"), "{returned}");
    assert_ne!(parts[2], caller, "{returned}");

    let expected = ["request", "auth", "admission", "cold_start", "component", "models", "instance", "guest", "infer"];
    let spans = collector.trace(trace, std::time::Duration::from_secs(20), |spans| {
        expected.iter().all(|name| spans.iter().any(|s| s.name == *name))
    });
    let named = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "one {name} span in {spans:#?}");
        found[0].clone()
    };
    let request = named("request");
    assert_eq!(request.parent_span_id, caller, "the caller's span is the request's parent");
    assert_eq!(request.span_id, parts[2], "the answer names the request's span");
    assert_eq!(request.service, "maas-under-test");
    assert_eq!(request.attributes.get("route").map(String::as_str), Some("/fn/{tenant}/{function}"));
    for (child, parent) in [
        ("auth", "request"),
        ("admission", "request"),
        ("cold_start", "request"),
        ("component", "cold_start"),
        ("models", "cold_start"),
        ("instance", "request"),
        ("guest", "instance"),
        ("infer", "guest"),
    ] {
        assert_eq!(named(child).parent_span_id, named(parent).span_id, "{child} is a child of {parent}: {spans:#?}");
    }
    let infer = named("infer");
    assert_eq!(infer.attributes.get("model").map(String::as_str), Some("mlp@1"), "{infer:?}");
    assert_eq!(infer.attributes.get("shapes").map(String::as_str), Some("[[1, 100]]"), "{infer:?}");
    // The model, the shapes: never the data.
    for span in &spans {
        for value in span.attributes.values() {
            assert!(!value.contains("0.01"), "{span:?}");
        }
    }
    // A request without a traceparent starts a trace of its own.
    let second = admin.post_json("/fn/acme/f", &serde_json::from_str(&body).unwrap());
    let own = second.header("traceparent").expect("a traceparent").to_string();
    assert!(!own.contains(trace), "{own}");
    stop(child);
}

/// `MAAS_LOG_FORMAT=json`: one JSON object per line, the request's fields on each line of a
/// request, and never a payload or a key, at the server's most verbose level.
#[test]
fn json_logs_carry_the_request_and_never_the_payload() {
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [("MAAS_LOG_FORMAT", "json"), ("MAAS_LOG", "info,maas_runtime=debug,maas_registry=debug")];
    let (child, addr) = serve_logging_to(&data.path().join("data"), &env, Stdio::from(log));
    let admin = maas_tests::Client::admin_at(addr);
    let owner_key = acme_with_f(&admin);
    let owner = maas_tests::Client::new(addr, Some(owner_key.clone()));
    let marker = "PAYLOAD-MARKER-5f1d";
    let data_values: Vec<f32> = (0..100).map(|i| 1234.5 + i as f32).collect();
    let with_marker = json!({ "id": marker, "parameters": { "note": marker },
                              "inputs": [{ "name": "input", "shape": [1, 100], "datatype": "FP32", "data": data_values }] });
    let cold = owner.post_json("/fn/acme/f", &with_marker);
    assert_eq!(cold.status, 200, "{}", String::from_utf8_lossy(&cold.body));
    assert!(String::from_utf8_lossy(&cold.body).contains(marker), "the function saw the payload");
    assert_eq!(owner.post_json("/fn/acme/f", &with_marker).status, 200);
    // Refused and failing requests log no payload either.
    let bad = owner.send("POST", "/fn/acme/f", Some((format!("{{\"{marker}\": [").as_bytes(), "application/json")));
    assert_eq!(bad.status, 400);
    assert_eq!(owner.post_json("/v2/models/mlp/infer", &with_marker).status, 200);
    let request_id = cold.header("x-request-id").unwrap().to_string();
    stop(child);

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(!text.contains(marker), "a payload reached the logs: {text}");
    assert!(!text.contains("1234.5"), "tensor data reached the logs: {text}");
    assert!(!text.contains(&owner_key) && !text.contains(maas_tests::ADMIN_KEY), "a key reached the logs: {text}");
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}"))).collect();
    assert!(lines.len() > 5, "{text}");
    let done = lines
        .iter()
        .find(|l| l["message"] == "done" && l["span"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line for request {request_id}: {text}"));
    let span = &done["span"];
    assert_eq!((span["tenant"].as_str(), span["function"].as_str()), (Some("acme"), Some("f")), "{done}");
    assert_eq!((span["status"].as_u64(), span["cold_start"].as_bool()), (Some(200), Some(true)), "{done}");
    assert!(span["duration_us"].as_u64().is_some_and(|d| d > 0), "{done}");
    assert!(lines.iter().any(|l| l["span"]["cold_start"] == false && l["span"]["function"] == "f"), "{text}");
    // Lines logged deeper down (the cold start, on a pool thread) carry the request's id too.
    let woke = lines
        .iter()
        .find(|l| l["message"] == "cold start" && l["function"] == "f")
        .unwrap_or_else(|| panic!("no cold start line: {text}"));
    assert_eq!(woke["spans"][0]["request_id"], request_id.as_str(), "{woke}");
}

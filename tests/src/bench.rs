//! What the bench binaries share: the server under test in a child process (so that its RSS
//! is the server's alone), its memory figures, and percentiles.
//!
//! A bench's `main` starts with [`serve_if_child`]; [`ServerProcess::start`] runs the same
//! binary again with [`SERVE_ENV`] set, which serves a [`TestServer`] until stdin closes, and
//! [`ServerProcess::ceiling`] the [`ceiling`] server, maas's own stack without maas.

pub mod ceiling;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::{Client, TestServer};

/// Set in the child process that runs the server: `1` for maas, `ceiling` for the
/// [`ceiling`] server.
pub const SERVE_ENV: &str = "MAAS_BENCH_SERVE";

/// In the child process a bench started: serves until stdin closes and returns true. In the
/// bench itself: returns false at once.
pub fn serve_if_child() -> bool {
    match std::env::var(SERVE_ENV).as_deref() {
        Err(_) => return false,
        Ok("ceiling") => {
            ceiling::serve();
            return true;
        }
        Ok(_) => {}
    }
    // The one setting a bench varies: threads per model run (`MAAS_INFERENCE_THREADS`).
    let threads = std::env::var("MAAS_INFERENCE_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    let temp = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_with(temp.path(), |config| config.inference_threads = threads);
    println!("{}", server.addr());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    server.stop();
    drop(temp);
    true
}

/// The server under test, in a child process (this binary again, with [`SERVE_ENV`] set), so
/// that its RSS is the server's alone: not the load generator's threads and buffers, or code
/// pages only the client ran.
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

/// Resident memory of a process, MiB: the total, and its private (anonymous) part, which is
/// what the server allocated (heap, stacks, pools); the rest is mapped files, mostly the
/// executable's code pages that have run (clean, shared with the page cache). `peak` is the
/// high-water mark of the total since the process started.
#[derive(Clone, Copy)]
pub struct Rss {
    /// `VmRSS`.
    pub total: f64,
    /// `RssAnon`.
    pub anon: f64,
    /// `VmHWM`.
    pub peak: f64,
}

impl std::fmt::Display for Rss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>6.1} MiB (private {:.1} MiB)", self.total, self.anon)
    }
}

impl Rss {
    /// "+x% vs `label`" for the total and the private part.
    pub fn against(&self, base: Rss, label: &str) -> String {
        let pct = |a: f64, b: f64| (a / b - 1.0) * 100.0;
        format!("{:+.1}% vs {label}, private {:+.1}%", pct(self.total, base.total), pct(self.anon, base.anon))
    }
}

impl ServerProcess {
    /// Starts the server process and waits for its address.
    pub fn start() -> Self {
        Self::serving("1")
    }

    /// Starts the server process with `MAAS_INFERENCE_THREADS` set to `threads`.
    pub fn with_inference_threads(threads: usize) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        command.env(SERVE_ENV, "1").env("MAAS_INFERENCE_THREADS", threads.to_string());
        Self::spawn(command)
    }

    /// Starts the [`ceiling`] server in a process of its own and waits for its address.
    pub fn ceiling() -> Self {
        Self::serving("ceiling")
    }

    /// Starts the FastAPI + onnxruntime peer (`tests/python/fastapi_peer.py`) with `python` (of
    /// the venv `tests/python/setup-fastapi-peer.sh` made) on `model`, and waits for its address.
    pub fn fastapi(python: &std::path::Path, model: &std::path::Path) -> Self {
        Self::fastapi_with(python, model, &[])
    }

    /// [`ServerProcess::fastapi`] with `env` set (`ORT_THREADS`, say).
    pub fn fastapi_with(python: &std::path::Path, model: &std::path::Path, env: &[(&str, &str)]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/fastapi_peer.py");
        let mut command = Command::new(python);
        command.arg(script).arg(model).envs(env.iter().copied());
        Self::spawn(command)
    }

    fn serving(kind: &str) -> Self {
        let mut command = Command::new(std::env::current_exe().expect("own path"));
        command.env(SERVE_ENV, kind);
        Self::spawn(command)
    }

    /// Runs `command`, which prints its address on its first line and serves until its stdin
    /// closes.
    fn spawn(mut command: Command) -> Self {
        let mut child =
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("starting the server process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("server address");
        let addr = line.trim().parse().unwrap_or_else(|_| panic!("server printed {line:?}, not its address"));
        Self { child, addr }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A client with the admin key.
    pub fn admin(&self) -> Client {
        Client::admin_at(self.addr)
    }

    /// The server's memory now.
    pub fn rss(&self) -> Rss {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        let mib = |key: &str| -> f64 {
            let kb: f64 = status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0.0);
            kb / 1024.0
        };
        Rss { total: mib("VmRSS:"), anon: mib("RssAnon:"), peak: mib("VmHWM:") }
    }

    /// CPU time the server process has used so far (user and system, every thread), seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime, fields 14 and 15 of the line (from the state, field 3, on: 11 and 12),
        // in clock ticks, which /proc gives at USER_HZ, 100 per second on Linux.
        (ticks(11) + ticks(12)) / 100.0
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Closing its stdin stops the server (which then removes its data directory).
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The `p` quantile (0 to 1) of `samples`, which it sorts.
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    let ix = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[ix]
}

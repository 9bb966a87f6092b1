//! Peak memory of `maas models upload` for a large model: the upload streams, so the CLI's
//! resident set must stay far below the file's size.
//!
//! Writes a valid ONNX model of about 200 MB (`maas_fixtures::mlp_sized` with hidden width
//! 7000: ≈ 4·(h² + 112·h) bytes) to a temporary file, starts a server in this process (loopback
//! port, temporary data directory), runs the `maas` binary as a subprocess to upload it, and
//! samples the subprocess's peak resident set (`VmHWM` in `/proc/<pid>/status`) every
//! millisecond until it exits. A `maas tenants list` run gives the binary's baseline.
//!
//! (`wait4`'s `ru_maxrss` would not do: Linux carries the parent's high-water mark across the
//! `vfork` + `exec` that starts the child, so it reports this process's own peak, model
//! included.)
//!
//! ```sh
//! cargo build --release -p maas-cli
//! cargo bench -p maas-tests --bench upload_rss
//! ```
//!
//! `MAAS_BIN` names another `maas` binary (default: `maas` beside this bench's target
//! directory, i.e. `target/release/maas`); `MAAS_RSS_HIDDEN` another hidden width.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use maas_tests::{ADMIN_KEY, TestServer, models};

/// What one run of the CLI cost.
struct Measured {
    peak_rss_kib: u64,
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

/// `VmHWM` (peak resident set, KiB) of process `pid`, while it runs.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `command` to completion, sampling its peak RSS until it exits.
fn measure(mut command: Command) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().context("starting maas")?;
    // The pipes are drained on threads so that a chatty child never blocks on them.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    // The high-water mark only grows, so the last sample before exit is the peak (a spike in
    // the last millisecond could be missed; an upload's peak is while it streams).
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = vm_hwm_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = started.elapsed();
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    ensure!(status.success(), "maas failed ({status}): {stderr}");
    ensure!(peak > 0, "could not read /proc/{}/status", child.id());
    Ok(Measured { peak_rss_kib: peak, elapsed, stdout, stderr })
}

/// `MAAS_BIN`, or the `maas` binary of this bench's profile directory.
fn maas_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("MAAS_BIN") {
        return Ok(PathBuf::from(path));
    }
    // target/<profile>/deps/upload_rss-<hash> → target/<profile>/maas
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().and_then(Path::parent).context("bench executable has no profile directory")?;
    let candidate = profile_dir.join("maas");
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!("no maas binary at {}: run `cargo build --release -p maas-cli` first, or set MAAS_BIN", candidate.display())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing to parse.
    let maas = maas_binary()?;
    let hidden: usize = std::env::var("MAAS_RSS_HIDDEN").ok().map(|h| h.parse()).transpose()?.unwrap_or(7000);

    let dir = tempfile::tempdir()?;
    let model_path = dir.path().join("large.onnx");
    let size = {
        let bytes = models::mlp_sized(3, hidden);
        std::fs::write(&model_path, &bytes)?;
        bytes.len() as u64
    };
    println!("model: mlp_sized(hidden = {hidden}), {:.1} MB ({size} bytes)", size as f64 / 1e6);

    let server = TestServer::start();
    let cli = |args: &[&str]| {
        let mut command = Command::new(&maas);
        command.env("MAAS_URL", format!("http://{}", server.addr())).env("MAAS_KEY", ADMIN_KEY).args(args);
        command
    };
    measure(cli(&["tenants", "create", "big", "--max-model-bytes", "1GiB"]))?;

    let baseline = measure(cli(&["tenants", "list"]))?;
    let upload = measure(cli(&["models", "upload", "big", "large", model_path.to_str().context("temp path")?]))?;
    ensure!(upload.stdout.contains("version 1"), "unexpected output: {}{}", upload.stdout, upload.stderr);

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("maas binary: {}", maas.display());
    println!("peak RSS of `maas tenants list`:   {:7.1} MiB", mib(baseline.peak_rss_kib));
    println!(
        "peak RSS of `maas models upload`: {:7.1} MiB for a {:.1} MB file ({:.1}% of the file), in {:.1} s ({:.0} MB/s end to end, server-side validation included)",
        mib(upload.peak_rss_kib),
        size as f64 / 1e6,
        upload.peak_rss_kib as f64 * 1024.0 / size as f64 * 100.0,
        upload.elapsed.as_secs_f64(),
        size as f64 / 1e6 / upload.elapsed.as_secs_f64(),
    );
    print!("{}", upload.stdout);
    ensure!(
        upload.peak_rss_kib * 1024 < size / 4,
        "the upload's peak RSS is not far below the file's size: is the body buffered?"
    );
    Ok(())
}

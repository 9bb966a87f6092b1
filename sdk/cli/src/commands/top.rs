//! `maas top [TENANT]`: a live table of the functions' traffic, latency, cold starts, errors and
//! energy, from the server's Prometheus metrics.
//!
//! It scrapes `GET /v1/tenants/{TENANT}/metrics` (owner or admin key: that tenant's series) or,
//! without a tenant, `GET /metrics` (admin key: every tenant's), scrapes again an interval later
//! and draws the difference ([`frame`]): requests per second and p50/p99 are over the interval,
//! cold starts, errors and energy are totals since the server started. It redraws every
//! interval until Ctrl-C. `--once` prints a single frame (two scrapes one interval apart)
//! without terminal codes and exits, for scripts and tests.

mod frame;

use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use clap::Args;

use super::{CliError, Ctx, Output};
use frame::Snapshot;

/// Clears the terminal and puts the cursor home, before each redraw.
const CLEAR: &str = "\x1b[2J\x1b[H";

/// `top` arguments.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// Only this tenant's functions (its owner key will do); without it, every tenant's (admin
    /// key).
    tenant: Option<String>,
    /// Seconds between scrapes: requests per second and p50/p99 are over this interval.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = interval)]
    interval: Duration,
    /// Print one frame (two scrapes an interval apart) without terminal codes, and exit.
    #[arg(long)]
    once: bool,
}

/// Runs `maas top`: one frame with `--once`, else a frame every interval until Ctrl-C.
pub(crate) async fn run(ctx: &Ctx, args: TopArgs) -> Result<(), CliError> {
    if ctx.output == Output::Json {
        return Err(CliError::Usage(
            "`maas top` draws text only; for data, read the metrics themselves (`GET /metrics`)".into(),
        ));
    }
    let tenant = args.tenant.as_deref();
    if args.once {
        let (before, since) = (scrape(ctx, tenant).await?, Instant::now());
        tokio::time::sleep(args.interval).await;
        let now = scrape(ctx, tenant).await?;
        let text = frame::frame(&before, &now, since.elapsed(), SystemTime::now(), None);
        // Like `output::Table::print`: a reader that went away early is not an error.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
        return Ok(());
    }
    let watch = async {
        // The first scrape fails the command (a wrong key, an unreachable server); later ones
        // are shown in place of the table and retried, so a restarting server does not end it.
        let mut before = (scrape(ctx, tenant).await?, Instant::now());
        loop {
            tokio::time::sleep(args.interval).await;
            let text = match scrape(ctx, tenant).await {
                Ok(now) => {
                    let text = frame::frame(&before.0, &now, before.1.elapsed(), SystemTime::now(), width());
                    before = (now, Instant::now());
                    text
                }
                Err(e) => format!("error: {e}\n(retrying every {:?})\n", args.interval),
            };
            if !draw(&text) {
                // Nobody reads stdout any more.
                return Ok(());
            }
        }
    };
    // Ctrl-C ends the loop with success, even in the middle of a scrape of a slow server.
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.map_err(|e| CliError::Failed(format!("cannot wait for Ctrl-C: {e}"))),
        result = watch => result,
    }
}

/// One scrape: the tenant's metrics, or every tenant's.
async fn scrape(ctx: &Ctx, tenant: Option<&str>) -> Result<Snapshot, CliError> {
    let text = match tenant {
        Some(tenant) => ctx.client.tenant_metrics(tenant).await?,
        None => ctx.client.metrics().await?,
    };
    Ok(Snapshot::parse(&text))
}

/// Replaces the screen with `text`; `false` once stdout is closed.
fn draw(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(CLEAR.as_bytes())
        .and_then(|()| stdout.write_all(text.as_bytes()))
        .and_then(|()| stdout.flush())
        .is_ok()
}

/// The terminal's width when the shell exports it (`COLUMNS`), so that long rows are cut
/// rather than wrapped; otherwise rows are drawn whole.
fn width() -> Option<usize> {
    std::env::var("COLUMNS").ok()?.parse().ok().filter(|&columns| columns > 0)
}

/// Parses `--interval`: positive seconds, fractions allowed (`0.5`), at most an hour.
fn interval(s: &str) -> Result<Duration, String> {
    let seconds: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 3600.0) {
        return Err(format!("{s} s is out of range (more than 0, at most 3600)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

//! Metering: what each invocation cost in CPU time, energy and CO2e, per tenant, function and
//! UTC day, and the optional daily energy budget of a tenant.
//!
//! CPU time is read from the thread CPU clock ([`crate::cpu::thread_cpu`]) of the blocking
//! thread that runs the guest and its inference, so time spent waiting (for the pool, the
//! network, other tenants) is not counted; a cold start's CPU (component load, model load and
//! optimization) is charged to the request that caused it. Energy is CPU seconds × watts per
//! busy core ([`EnergyModel`], `MAAS_WATTS_PER_CORE`); CO2e is energy × the grid's carbon intensity. Neither counts
//! memory, network, storage, idle power or the platform's own request handling: they are an
//! estimate of the compute a tenant caused, good for comparing calls and models.
//!
//! Samples add up in memory and reach the registry every [`FLUSH_EVERY`] (and on shutdown), so
//! the invocation path never waits for a disk write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use maas_registry::{Registry, UsageRecord};
use maas_types::{EnergyModel, Quota, Usage};

use crate::error::{Error, Limit, Result};

/// How often pending usage is written to the registry.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// What one request cost.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sample {
    /// Wall time of the whole request.
    pub wall: Duration,
    /// CPU time of the guest and its inference (and of the cold start, if any).
    pub cpu: Duration,
    /// The part of `cpu` spent inside tract.
    pub inference_cpu: Duration,
    /// Whether the request woke its function.
    pub cold_start: bool,
    /// Whether it ended in an error answer from the platform.
    pub error: bool,
}

/// (tenant, day, function) → counters not yet in the registry.
type Pending = HashMap<(String, String, Option<String>), Usage>;

/// The meter of one server.
pub struct Meter {
    model: EnergyModel,
    pending: Mutex<Pending>,
    /// tenant → (day, joules spent that day), for budgets; loaded on first use.
    today: Mutex<HashMap<String, (String, f64)>>,
}

/// Today, UTC, as `YYYY-MM-DD`.
pub fn today() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10].to_string()
}

/// Seconds until the next UTC midnight (at least 1).
fn until_midnight() -> u64 {
    let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (86_400 - secs % 86_400).max(1)
}

impl Meter {
    /// A meter converting CPU time with `model`.
    pub fn new(model: EnergyModel) -> Arc<Self> {
        Arc::new(Self { model, pending: Mutex::default(), today: Mutex::default() })
    }

    /// The energy model in use.
    pub fn model(&self) -> EnergyModel {
        self.model
    }

    /// Adds `sample` to `tenant`'s usage (for `function`, or for direct inference when
    /// `None`) and returns the energy it took, joules.
    pub fn record(&self, tenant: &str, function: Option<&str>, sample: &Sample) -> f64 {
        let joules = self.model.joules(sample.cpu);
        let delta = Usage {
            invocations: 1,
            errors: u64::from(sample.error),
            cold_starts: u64::from(sample.cold_start),
            wall_seconds: sample.wall.as_secs_f64(),
            cpu_seconds: sample.cpu.as_secs_f64(),
            inference_seconds: sample.inference_cpu.as_secs_f64(),
            energy_joules: joules,
        };
        let day = today();
        if let Some((d, spent)) = self.today.lock().expect("meter lock").get_mut(tenant)
            && *d == day
        {
            *spent += joules;
        }
        let key = (tenant.to_string(), day, function.map(str::to_string));
        self.pending.lock().expect("meter lock").entry(key).or_default().add(&delta);
        joules
    }

    /// Writes pending usage to the registry. Rows of deleted tenants are dropped.
    pub fn flush(&self, registry: &Registry) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("meter lock"));
        for ((tenant, day, function), usage) in pending {
            match registry.add_usage(&tenant, &day, function.as_deref(), &usage) {
                Ok(()) | Err(maas_registry::Error::NotFound(_)) => {}
                Err(e) => tracing::error!(error = %e, tenant, "could not store usage; these counts are lost"),
            }
        }
    }

    /// `tenant`'s usage rows: stored plus pending (pending is flushed first).
    pub fn usage(&self, registry: &Registry, tenant: &str) -> Result<Vec<UsageRecord>> {
        self.flush(registry);
        Ok(registry.usage(tenant)?)
    }

    /// [`Error::RateLimited`] (until UTC midnight) when `tenant` has spent its daily energy budget.
    pub fn check_budget(&self, registry: &Registry, tenant: &str, quota: &Quota) -> Result<()> {
        let Some(budget) = quota.max_energy_joules_per_day else { return Ok(()) };
        let day = today();
        let known = self.today.lock().expect("meter lock").get(tenant).filter(|(d, _)| *d == day).map(|(_, j)| *j);
        let spent = match known {
            Some(j) => j,
            None => {
                let stored: f64 =
                    registry.usage(tenant)?.iter().filter(|r| r.day == day).map(|r| r.usage.energy_joules).sum();
                let pending: f64 = self
                    .pending
                    .lock()
                    .expect("meter lock")
                    .iter()
                    .filter(|((t, d, _), _)| t == tenant && *d == day)
                    .map(|(_, u)| u.energy_joules)
                    .sum();
                let spent = stored + pending;
                self.today.lock().expect("meter lock").insert(tenant.to_string(), (day, spent));
                spent
            }
        };
        if spent >= budget {
            return Err(Error::rate_limited(
                Limit::Budget,
                format!(
                    "tenant {tenant} has spent its daily energy budget ({spent:.3} of {budget} J, \
                     max_energy_joules_per_day); it renews at 00:00 UTC"
                ),
                until_midnight(),
            ));
        }
        Ok(())
    }

    /// Forgets a deleted tenant's pending usage and budget state.
    pub fn forget(&self, tenant: &str) {
        self.pending.lock().expect("meter lock").retain(|(t, _, _), _| t != tenant);
        self.today.lock().expect("meter lock").remove(tenant);
    }

    /// Flushes every [`FLUSH_EVERY`] until the meter is dropped.
    pub fn spawn_flusher(self: &Arc<Self>, registry: Registry) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(meter) = weak.upgrade() else { return };
                let registry = registry.clone();
                // sled writes block: off the async workers.
                let _ = tokio::task::spawn_blocking(move || meter.flush(&registry)).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_pending_energy_of_today() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path(), [1; 32]).unwrap();
        registry.create_tenant("acme", None).unwrap();
        registry.create_tenant("other", None).unwrap();
        let meter = Meter::new(EnergyModel { watts_per_core: 1.0, grid_gco2e_per_kwh: 475.0 });
        let quota = Quota { max_energy_joules_per_day: Some(1.0), ..Quota::default() };
        let sample = Sample { cpu: Duration::from_millis(600), ..Sample::default() };
        assert!(meter.check_budget(&registry, "acme", &quota).is_ok());
        meter.record("acme", Some("f"), &sample);
        assert!(meter.check_budget(&registry, "acme", &quota).is_ok());
        meter.record("acme", None, &sample);
        let refused = meter.check_budget(&registry, "acme", &quota).unwrap_err();
        assert!(matches!(refused, Error::RateLimited { retry_after, .. } if (1..=86_400).contains(&retry_after)));
        assert!(meter.check_budget(&registry, "other", &quota).is_ok());
        // The same holds once the counts are in the registry and the cache is cold.
        meter.flush(&registry);
        let fresh = Meter::new(meter.model());
        assert!(fresh.check_budget(&registry, "acme", &quota).is_err());
        let rows = registry.usage("acme").unwrap();
        assert_eq!(rows.iter().map(|r| r.usage.invocations).sum::<u64>(), 2);
        assert!((rows.iter().map(|r| r.usage.energy_joules).sum::<f64>() - 1.2).abs() < 1e-9);
    }
}

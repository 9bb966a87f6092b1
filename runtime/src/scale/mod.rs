//! Scale to zero: the whole life of a function. Each function is *cold* (nothing in memory but
//! its record and counters) or *warm* (component, linked `InstancePre`, loaded models), and goes
//! back to cold after `idle_timeout_s` without invocations.
//!
//! 1. [`Scaler::slot`] finds a function's [`Slot`] (its record and counters), loading the
//!    record from the registry on first use; [`Scaler::deployed`], [`Scaler::removed`] and
//!    friends keep the slots in step with the registry.
//! 2. [`Scaler::queue`] takes one of the function's concurrency places for a request, waiting
//!    in the function's bounded queue when none is free; [`Scaler::start`] marks it in flight.
//! 3. [`Scaler::warm`] returns the warm state, building it on the bounded pool when the
//!    function is cold (the cold start, [`wake`]: component from its stored artifact, link,
//!    models). Concurrent requests to a cold function wait for one build: a request is held,
//!    never refused, while its function wakes.
//! 4. The reaper task ([`Scaler::spawn_reaper`]) drops warm state whose idle time has passed;
//!    the models it held are freed when no other warm function uses them, and freed memory is
//!    returned to the OS.

mod wake;

pub use wake::Warm;

/// A function's warm state as a request got it.
pub struct Woken {
    /// The state.
    pub warm: Arc<Warm>,
    /// Whether the request found the function cold (it waited for a cold start).
    pub cold: bool,
    /// Whether this request ran that cold start (at most one of the requests that waited).
    pub woke: bool,
}

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use maas_registry::{FunctionRecord, Registry};
use maas_types::{FunctionState, FunctionStatus};
use tokio::sync::Notify;

use crate::error::{Error, Limit, Result};
use crate::host::Host;
use crate::inference::ModelCache;
use crate::metrics::{FunctionSeries, Metrics};
use crate::pool::Pool;
use crate::queue::{Lane, Place, Refused};

/// One deployed function: its record, live counters and (when warm) its warm state.
pub struct Slot {
    record: Mutex<Arc<FunctionRecord>>,
    warm: Mutex<Option<Arc<Warm>>>,
    /// Serializes cold starts of this function.
    waking: tokio::sync::Mutex<()>,
    /// `max_concurrency` places with a queue of `queue_depth` in front.
    lane: Lane,
    in_flight: AtomicU32,
    invocations: AtomicU64,
    cold_starts: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since the scaler's start at the last invocation's end.
    last_used_ms: AtomicU64,
    last_invoked_at: Mutex<Option<SystemTime>>,
    /// The function's recorded metrics.
    series: Arc<FunctionSeries>,
    /// Whether its calls run long: the last one moved to the pool, or started there and took
    /// long. The next call then starts on the pool rather than on an async worker.
    runs_long: AtomicBool,
}

impl Slot {
    fn new(record: FunctionRecord, metrics: &Metrics) -> Self {
        let lane = Lane::new(record.manifest.limits.max_concurrency);
        let series = metrics.function(&record.tenant, &record.name);
        Self {
            record: Mutex::new(Arc::new(record)),
            warm: Mutex::new(None),
            waking: tokio::sync::Mutex::new(()),
            lane,
            in_flight: AtomicU32::new(0),
            invocations: AtomicU64::new(0),
            cold_starts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(0),
            last_invoked_at: Mutex::new(None),
            series,
            runs_long: AtomicBool::new(false),
        }
    }

    /// The function's recorded metrics.
    pub fn series(&self) -> &FunctionSeries {
        &self.series
    }

    /// Whether the function's calls run long, so the next one should start on the pool.
    pub fn runs_long(&self) -> bool {
        self.runs_long.load(Ordering::Relaxed)
    }

    /// Records whether the last call ran long.
    pub fn set_runs_long(&self, long: bool) {
        self.runs_long.store(long, Ordering::Relaxed);
    }

    /// Invocations running now.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The function's record as last deployed.
    pub fn record(&self) -> Arc<FunctionRecord> {
        self.record.lock().expect("slot lock").clone()
    }

    /// The warm state, if the function is warm.
    pub fn warm_state(&self) -> Option<Arc<Warm>> {
        self.warm.lock().expect("slot lock").clone()
    }

    /// Live status.
    pub fn status(&self) -> FunctionStatus {
        let last = *self.last_invoked_at.lock().expect("slot lock");
        FunctionStatus {
            state: if self.warm_state().is_some() { FunctionState::Warm } else { FunctionState::Cold },
            instances: self.in_flight.load(Ordering::Relaxed),
            last_invoked_at: last.map(|t| humantime::format_rfc3339_millis(t).to_string()),
            invocations: self.invocations.load(Ordering::Relaxed),
            cold_starts: self.cold_starts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// Holds a slot's concurrency place and marks one invocation in flight until dropped.
pub struct Running {
    slot: Arc<Slot>,
    scaler: Weak<Scaler>,
    _place: Place,
}

impl Running {
    /// Records the outcome: `failed` counts an error.
    pub fn finish(self, failed: bool) {
        if failed {
            self.slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(scaler) = self.scaler.upgrade() {
            self.slot.last_used_ms.store(scaler.now_ms(), Ordering::Relaxed);
        }
        self.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The table of deployed functions and their warm state, and what it takes to wake them.
pub struct Scaler {
    slots: Mutex<HashMap<(String, String), Arc<Slot>>>,
    started: Instant,
    /// Wakes the reaper when a function turns warm, so it can plan its next check.
    turned_warm: Arc<Notify>,
    host: Arc<Host>,
    registry: Registry,
    models: Arc<ModelCache>,
    pool: Pool,
    metrics: Arc<Metrics>,
}

impl Scaler {
    /// An empty table that wakes functions with `host`, from `registry`, sharing loaded models
    /// through `models`, on `pool`, recording in `metrics`; call [`Scaler::spawn_reaper`] to
    /// start scaling to zero.
    pub fn new(
        host: Arc<Host>,
        registry: Registry,
        models: Arc<ModelCache>,
        pool: Pool,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            started: Instant::now(),
            turned_warm: Arc::new(Notify::new()),
            host,
            registry,
            models,
            pool,
            metrics,
        })
    }

    /// The models loaded by warm functions.
    pub fn models(&self) -> &ModelCache {
        &self.models
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The slot of `tenant/function`, loading the record from the registry on first use.
    /// `None` when no such function is deployed; [`Error::Registry`] `NotFound` when there is no
    /// such tenant.
    pub fn slot(&self, tenant: &str, function: &str) -> Result<Option<Arc<Slot>>> {
        let key = (tenant.to_string(), function.to_string());
        if let Some(slot) = self.slots.lock().expect("scaler lock").get(&key) {
            return Ok(Some(slot.clone()));
        }
        let Some(record) = self.registry.function(tenant, function)? else {
            return Ok(None);
        };
        let mut slots = self.slots.lock().expect("scaler lock");
        Ok(Some(slots.entry(key).or_insert_with(|| Arc::new(Slot::new(record, &self.metrics))).clone()))
    }

    /// The slot of `tenant/function` if the server already holds it; never reads the registry.
    pub fn held(&self, tenant: &str, function: &str) -> Option<Arc<Slot>> {
        self.slots.lock().expect("scaler lock").get(&(tenant.to_string(), function.to_string())).cloned()
    }

    /// Every slot the server holds, for the metrics.
    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.lock().expect("scaler lock").values().cloned().collect()
    }

    /// The slot of a function the platform defines itself rather than a deploy (the OIP
    /// endpoint of a model), made from `record` on first use and again when `record`'s
    /// manifest changes (a new tenant quota). Its name is not a valid function name, so it
    /// never meets a deployed one.
    pub fn implicit(&self, record: FunctionRecord) -> Arc<Slot> {
        let key = (record.tenant.clone(), record.name.clone());
        let mut slots = self.slots.lock().expect("scaler lock");
        match slots.get(&key) {
            Some(slot) if slot.record().manifest == record.manifest => slot.clone(),
            _ => {
                let slot = Arc::new(Slot::new(record, &self.metrics));
                slots.insert(key, slot.clone());
                slot
            }
        }
    }

    /// A function was (re)deployed: keep its counters, take the new record, drop warm state
    /// built from the old one.
    pub fn deployed(&self, record: FunctionRecord) {
        let key = (record.tenant.clone(), record.name.clone());
        let mut slots = self.slots.lock().expect("scaler lock");
        match slots.get(&key) {
            // A changed concurrency limit needs a new lane, hence a new slot.
            Some(slot) if slot.record().manifest.limits.max_concurrency == record.manifest.limits.max_concurrency => {
                *slot.record.lock().expect("slot lock") = Arc::new(record);
                slot.warm.lock().expect("slot lock").take();
            }
            _ => {
                slots.insert(key, Arc::new(Slot::new(record, &self.metrics)));
            }
        }
    }

    /// A function was deleted.
    pub fn removed(&self, tenant: &str, function: &str) {
        self.slots.lock().expect("scaler lock").remove(&(tenant.to_string(), function.to_string()));
        self.metrics.forget_function(tenant, function);
    }

    /// Model `name`'s `version` (`None`: the whole model) was deleted: its Open Inference
    /// Protocol endpoints go, and the model's series.
    pub fn model_removed(&self, tenant: &str, name: &str, version: Option<u32>) {
        let mut slots = self.slots.lock().expect("scaler lock");
        slots.retain(|(t, f), _| t != tenant || !crate::metrics::is_endpoint(f, name, version));
        self.metrics.forget_model(tenant, name, version);
    }

    /// A tenant was deleted: forget all its functions.
    pub fn tenant_removed(&self, tenant: &str) {
        self.slots.lock().expect("scaler lock").retain(|(t, _), _| t != tenant);
        self.metrics.forget_tenant(tenant);
    }

    /// A tenant's quota changed: its functions go cold, so that they wake under the new one.
    pub fn tenant_changed(&self, tenant: &str) {
        let slots = self.slots.lock().expect("scaler lock");
        for ((t, _), slot) in slots.iter() {
            if t == tenant {
                slot.warm.lock().expect("slot lock").take();
            }
        }
    }

    /// A new version of `model` was uploaded: functions of `tenant` naming it without a
    /// version go cold so their next request picks the new version up.
    pub fn model_changed(&self, tenant: &str, model: &str) {
        let slots = self.slots.lock().expect("scaler lock");
        for ((t, _), slot) in slots.iter() {
            let uses = slot.record().manifest.models.values().any(|r| r.name == model && r.version.is_none());
            if t == tenant && uses {
                slot.warm.lock().expect("slot lock").take();
            }
        }
    }

    /// Takes one of the function's `max_concurrency` places, waiting behind earlier requests
    /// when none is free, at most `wait`. Refused with [`Error::RateLimited`] when
    /// `queue_depth` requests already wait (half of it for an `anonymous` caller, so that
    /// anonymous calls cannot fill a public function's queue) or the wait runs out.
    pub async fn queue(&self, slot: &Slot, anonymous: bool, wait: Duration) -> Result<Place> {
        let limits = slot.record().manifest.limits.clone();
        let depth = if anonymous { limits.queue_depth / 2 } else { limits.queue_depth };
        slot.lane.enter(depth, wait).await.map_err(|refused| {
            let n = limits.max_concurrency;
            match refused {
                Refused::Full => Error::rate_limited(
                    Limit::Concurrency,
                    format!("the function runs its max_concurrency of {n} and {} more wait", limits.queue_depth),
                    1,
                ),
                Refused::Expired => Error::rate_limited(
                    Limit::Concurrency,
                    format!("the function ran its max_concurrency of {n} for the whole wait of {wait:?}"),
                    wait.as_secs().max(1),
                ),
            }
        })
    }

    /// Marks an invocation that holds `place` (from [`Scaler::queue`]) in flight.
    pub fn start(self: &Arc<Self>, slot: &Arc<Slot>, place: Place) -> Running {
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        slot.invocations.fetch_add(1, Ordering::Relaxed);
        *slot.last_invoked_at.lock().expect("slot lock") = Some(SystemTime::now());
        Running { slot: slot.clone(), scaler: Arc::downgrade(self), _place: place }
    }

    /// The function's warm state, and whether this request found it cold or woke it; a cold
    /// function wakes ([`wake`]) on the bounded pool.
    pub async fn warm(self: &Arc<Self>, slot: &Arc<Slot>) -> Result<Woken> {
        self.warm_with(slot, |record| {
            let scaler = self.clone();
            async move {
                let pool = scaler.pool.clone();
                let tenant = record.tenant.clone();
                pool.run_for(&tenant, move || {
                    tracing::debug_span!("cold_start")
                        .in_scope(|| wake::wake(&scaler.host, &scaler.registry, &scaler.models, &record))
                })
                .await?
            }
        })
        .await
    }

    /// [`Scaler::warm`] with `wake` building the state: it runs at most once at a time per
    /// function, and requests that wait for it share what it built.
    pub(crate) async fn warm_with<F, Fut>(&self, slot: &Arc<Slot>, wake: F) -> Result<Woken>
    where
        F: FnOnce(Arc<FunctionRecord>) -> Fut,
        Fut: std::future::Future<Output = Result<Warm>>,
    {
        if let Some(warm) = slot.warm_state() {
            return Ok(Woken { warm, cold: false, woke: false });
        }
        let _waking = slot.waking.lock().await;
        // Someone else may have finished waking it while we waited.
        if let Some(warm) = slot.warm_state() {
            return Ok(Woken { warm, cold: true, woke: false });
        }
        let warm = Arc::new(wake(slot.record()).await?);
        slot.cold_starts.fetch_add(1, Ordering::Relaxed);
        slot.last_used_ms.store(self.now_ms(), Ordering::Relaxed);
        *slot.warm.lock().expect("slot lock") = Some(warm.clone());
        self.turned_warm.notify_one();
        Ok(Woken { warm, cold: true, woke: true })
    }

    /// Starts the reaper task; it stops when the scaler is dropped.
    pub fn spawn_reaper(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(scaler) = weak.upgrade() else { return };
                let (next, dropped) = scaler.reap();
                if dropped > 0 {
                    tracing::info!(functions = dropped, "scaled to zero");
                    // Give the freed model and code memory back to the OS so an idle server
                    // returns to its baseline.
                    scaler.pool.spawn(crate::memory::release_free);
                }
                let turned_warm = scaler.turned_warm.clone();
                drop(scaler);
                let notified = turned_warm.notified();
                match next {
                    Some(wait) => {
                        let _ = tokio::time::timeout(wait, notified).await;
                    }
                    // Nothing warm: sleep until something turns warm (or a long while, to
                    // notice the scaler being dropped).
                    None => {
                        let _ = tokio::time::timeout(Duration::from_secs(60), notified).await;
                    }
                }
            }
        })
    }

    /// Drops expired warm state; returns how long until the next expiry and how many went cold.
    fn reap(&self) -> (Option<Duration>, usize) {
        self.reap_at(self.now_ms())
    }

    /// [`Scaler::reap`] as if it were `now` (milliseconds since the scaler started).
    pub(crate) fn reap_at(&self, now: u64) -> (Option<Duration>, usize) {
        let mut next: Option<u64> = None;
        let mut dropped = Vec::new();
        for slot in self.slots.lock().expect("scaler lock").values() {
            let mut warm = slot.warm.lock().expect("slot lock");
            if warm.is_none() {
                continue;
            }
            let idle_ms = slot.record().manifest.scale.idle_timeout_s.saturating_mul(1000);
            let expires = slot.last_used_ms.load(Ordering::Relaxed).saturating_add(idle_ms);
            if slot.in_flight.load(Ordering::Acquire) == 0 && expires <= now {
                dropped.extend(warm.take());
            } else {
                // In-flight work: look again one idle period after it (at the earliest).
                let at = if expires <= now { now + idle_ms.max(100) } else { expires };
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let count = dropped.len();
        drop(dropped);
        (next.map(|at| Duration::from_millis(at.saturating_sub(now).max(10))), count)
    }
}

//! One invocation of a function, from admission to the guest's answer, in domain terms; the
//! API reads the request and renders the answer around it.
//!
//! 1. [`Platform::charge`]: the tenant's daily energy budget and the caller's rate (the
//!    tenant's for a key, the function's anonymous budget otherwise; see [`crate::admission`]).
//!    Refused at once, before the body is read.
//! 2. The API reads the body, under its size limit and read timeouts, holding no place yet: a
//!    slow or stalled client keeps nobody else waiting.
//! 3. [`Platform::admit`]: a place among the function's `max_concurrency` ([`crate::scale`])
//!    and the tenant's, waiting in their bounded FIFO queues ([`crate::queue`]) when none is
//!    free.
//! 4. [`Admitted::invoke`]: the warm state (a cold start if needed), a fresh instance on the
//!    bounded pool, and metering of what it cost, whatever the outcome.
//!
//! Explanations and audits, which run models in the host rather than in a function, are
//! admitted and metered the same way through [`Platform::admit_work`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use maas_registry::{FunctionRecord, ModelVersion};
use maas_types::names::validate_function_name;
use maas_types::{ComponentRef, Limits, Manifest, ModelRef, Quota, Scale, Tenant};
use tracing::Instrument;

use crate::admission::{Caller, TENANT_QUEUE_DEPTH, TenantPermit, Ticket};
use crate::cpu::thread_cpu;
use crate::error::{Error, Limit, Result};
use crate::host::{self, InvocationReport};
use crate::metering::Sample;
use crate::metrics::{Outcome, Queue, Rejection};
use crate::platform::Platform;
use crate::pool::Handoff;
use crate::scale::{Running, Slot};

/// Memory cap of the implicit inference functions (further capped by the tenant's
/// `max_memory_mb`): room for a request at the default `max_request_bytes`, its tensors and
/// the outputs.
const OIP_MEMORY_MB: u32 = 256;

/// An invocation let in: it holds the tenant's and the function's concurrency permits until
/// it is done.
pub struct Admitted {
    platform: Arc<Platform>,
    slot: Arc<Slot>,
    started: Instant,
    running: Running,
    _tenant: TenantPermit,
    _ticket: Ticket,
}

/// What an invocation produced, for the API to render.
pub struct Invoked {
    /// The function's answer, or why there is none.
    pub result: Result<Answer>,
    /// The parts of the cold start, when this request woke the function.
    pub cold_start: Option<ColdStart>,
    /// The energy the invocation took, joules (its CPU time, the cold start's included).
    pub joules: f64,
}

/// The answer of a function that ran.
pub struct Answer {
    /// What the guest returned.
    pub response: host::Response,
    /// `name@version sha256:<hex>` of each model its inference used, in first-use order.
    pub models: Vec<String>,
    /// With batching: the rows of the largest batch its inference ran in.
    pub batch_rows: Option<usize>,
}

/// Where a cold start's time went.
#[derive(Clone, Copy, Debug)]
pub struct ColdStart {
    /// Loading the component (deserializing, linking).
    pub component: Duration,
    /// Loading and optimizing the models.
    pub models: Duration,
    /// The first run: fresh instance, guest, inference.
    pub run: Duration,
}

impl Platform {
    /// Charges one invocation of `slot`'s function under `quota` (the function's tenant's) to
    /// `caller`: the tenant's energy budget and the caller's rate. Refused at once with
    /// [`Error::RateLimited`].
    pub fn charge(&self, slot: &Slot, quota: &Quota, caller: Caller) -> Result<Ticket> {
        let record = slot.record();
        self.meter.check_budget(&self.registry, &record.tenant, quota)?;
        self.admission.charge_invocation(&record.tenant, &record.name, quota, caller)
    }

    /// Admits a charged invocation: a place among the function's concurrency, then the
    /// tenant's, waiting in their queues when none is free. `started` is when the request
    /// arrived.
    pub async fn admit(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        quota: &Quota,
        ticket: Ticket,
        started: Instant,
    ) -> Result<Admitted> {
        let record = slot.record();
        // One wait for both queues, the function's then the tenant's.
        let wait = Duration::from_millis(record.manifest.limits.queue_timeout_ms);
        let queued = Instant::now();
        let until = queued + wait;
        let admitted = async {
            let place = self.scaler.queue(slot, ticket.is_anonymous(), wait).await?;
            let left = until.saturating_duration_since(Instant::now());
            let tenant = self.admission.enter(&record.tenant, quota, &ticket, TENANT_QUEUE_DEPTH, left).await?;
            Ok::<_, Error>((place, tenant))
        }
        .instrument(tracing::debug_span!("admission"))
        .await;
        // Refused waits too: they are the longest.
        slot.series().waited(Queue::Admission, queued.elapsed());
        let (place, tenant) = admitted?;
        let running = self.scaler.start(slot, place);
        Ok(Admitted { platform: self.clone(), slot: slot.clone(), started, running, _tenant: tenant, _ticket: ticket })
    }

    /// The slot of the function that serves Open Inference Protocol requests for `version` of a
    /// model of `tenant`: `builtin:tensor` on the version, under the tenant's limits. Made on
    /// first use, and again when the tenant's quota changes; scaled to zero like any other.
    pub fn oip_slot(&self, tenant: &Tenant, version: &ModelVersion) -> Arc<Slot> {
        let quota = &tenant.quota;
        let mut manifest = Manifest::new(ComponentRef::TENSOR);
        manifest.models = BTreeMap::from([(
            "model".to_string(),
            ModelRef { name: version.name.clone(), version: Some(version.version) },
        )]);
        manifest.config = BTreeMap::from([
            ("model_name".into(), version.name.clone()),
            ("model_version".into(), version.version.to_string()),
            // A compressed body may not grow past what an uncompressed one may be.
            ("max_decompressed_bytes".into(), quota.max_request_bytes.to_string()),
        ]);
        manifest.limits = Limits {
            memory_mb: quota.max_memory_mb.min(OIP_MEMORY_MB),
            timeout_ms: quota.max_timeout_ms,
            max_concurrency: quota.max_concurrency,
            ..Limits::default()
        };
        manifest.scale = Scale::default();
        self.scaler.implicit(FunctionRecord {
            tenant: tenant.name.clone(),
            // `:` is not allowed in function names, so this never meets a deployed function.
            name: format!("v2:{}", version.label()),
            manifest,
            revision: 1,
            created_at: version.created_at.clone(),
            updated_at: version.created_at.clone(),
        })
    }

    /// Admits model work done in the host (an explanation, an audit) for `tenant`: its energy
    /// budget and its concurrency, as for an invocation by a key (the request paid its rate
    /// when it was dispatched).
    pub async fn admit_work(self: &Arc<Self>, tenant: &Tenant) -> Result<WorkPermit> {
        self.meter.check_budget(&self.registry, &tenant.name, &tenant.quota)?;
        let wait = Duration::from_millis(Limits::default().queue_timeout_ms);
        let permit = self.admission.enter_work(&tenant.name, &tenant.quota, wait).await?;
        Ok(WorkPermit { platform: self.clone(), tenant: tenant.name.clone(), started: Instant::now(), _permit: permit })
    }
}

impl Admitted {
    /// Runs the invocation: the function is woken if cold, and a fresh instance handles
    /// `request` on the pool. Metered whatever the outcome.
    pub async fn invoke(self, request: host::Request) -> Invoked {
        let Admitted { platform, slot, started, running, _tenant: tenant, _ticket: ticket } = self;
        let mut sample = Sample::default();
        let mut cold_start = None;
        // The permits go into the pool job and come back with it: if the request goes away
        // while the guest runs, they are held until the guest is done, not released under it.
        let mut permits = Some((running, tenant, ticket));
        let result = async {
            let woken = platform.scaler.warm(&slot).await?;
            let warm = woken.warm.clone();
            if woken.woke {
                // The request that ran the cold start pays for it; those that waited for it
                // only saw it in their latency.
                sample.cpu += warm.wake_cpu;
                sample.cold_start = true;
            }
            // The guest runs on this task, with no thread hop, unless it runs long or its
            // model is slow (see `Pool::run_inline`). The permits go with it and come back:
            // if the request goes away after the call moved to the pool, they are held until
            // the guest is done there, not released under it.
            let (platform2, warm2, held) = (platform.clone(), warm.clone(), permits.take());
            let tenant = &slot.record().tenant;
            let handoff = Handoff::inline(&platform.pool, tenant);
            // A function whose calls run long, or a tenant held to one job for its timeouts,
            // starts on the pool: its next call would only hold a worker until it moved.
            let starts_pooled = slot.runs_long() || platform.pool.is_capped(tenant);
            if starts_pooled {
                handoff.ask();
            }
            let invoked = Instant::now();
            let job = {
                let handoff = handoff.clone();
                async move {
                    let warm = warm2;
                    let outcome =
                        platform2.host.invoke(&warm.pre, warm.caps.clone(), warm.limits, request, handoff).await;
                    (outcome, held)
                }
            };
            let ran = platform.pool.run_inline(tenant, &handoff, job).in_current_span().await?;
            let ((outcome, held), waited) = (ran.output, ran.waited);
            // Long: it moved, or started on the pool and used more than an inline call may.
            slot.set_runs_long(if starts_pooled { ran.cpu >= host::INLINE_BUDGET } else { handoff.moved() });
            permits = held;
            sample.cpu += ran.cpu;
            if let Ok((_, report)) = &outcome {
                sample.cpu += report.offloaded_cpu;
            }
            slot.series().waited(Queue::Pool, waited);
            if woken.cold {
                // The first run: instance, guest, inference; not the wait for a pool worker.
                let run = invoked.elapsed().saturating_sub(waited);
                cold_start = Some(ColdStart { component: warm.wake_component, models: warm.wake_models, run });
                if woken.woke {
                    slot.series().cold_start(warm.wake_time + run, warm.wake_component, warm.wake_models, run);
                }
            }
            if let Err(host::InvokeError::Timeout(_)) = &outcome {
                // A call that ran to its timeout held a core all along: past a few, the tenant
                // runs one call at a time (see `pool`). Traps are cheap, and are not counted:
                // anyone could make a public function trap.
                platform.pool.strike(&slot.record().tenant);
            }
            let (response, report): (host::Response, InvocationReport) = outcome?;
            // An answer HTTP cannot carry is the function's failure, counted as one.
            response.check().map_err(Error::BadResponse)?;
            sample.inference_cpu = report.inference_cpu;
            let models = report.models_used.iter().filter_map(|alias| warm.model_labels.get(alias).cloned()).collect();
            let batch_rows = (warm.caps.batching.is_some() && report.batch_rows > 0).then_some(report.batch_rows);
            Ok(Answer { response, models, batch_rows })
        }
        .await;
        if let Some((running, _tenant, _ticket)) = permits {
            running.finish(result.is_err());
        }
        sample.wall = started.elapsed();
        sample.error = result.is_err();
        let record = slot.record();
        // Implicit functions (OIP) have names no deployed function can have: their usage is the
        // tenant's direct inference.
        let function = Some(record.name.as_str()).filter(|name| validate_function_name(name).is_ok());
        let joules = platform.meter.record(&record.tenant, function, &sample);
        let series = slot.series();
        series.invoked(outcome(&result), sample.wall);
        series.energy(joules);
        Invoked { result, cold_start, joules }
    }
}

/// Model work in the host let in: holds the tenant's concurrency permit until it is done.
pub struct WorkPermit {
    platform: Arc<Platform>,
    tenant: String,
    started: Instant,
    _permit: TenantPermit,
}

/// What metered host work produced.
pub struct Worked<T> {
    /// The work's outcome.
    pub result: Result<T>,
    /// The energy it took, joules.
    pub joules: f64,
}

impl WorkPermit {
    /// Runs `job` on the pool and meters its CPU time as the tenant's direct inference.
    pub async fn run<T, F>(self, job: F) -> Result<Worked<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        let WorkPermit { platform, tenant, started, _permit: permit } = self;
        // The permit is held by the job: it lasts as long as the work, even if the request
        // goes away first.
        let (result, cpu) = platform
            .pool
            .run_for(&tenant.clone(), move || {
                let _permit = permit;
                let cpu = thread_cpu();
                let result = job();
                (result, thread_cpu().saturating_sub(cpu))
            })
            .await?;
        let sample = Sample {
            wall: started.elapsed(),
            cpu,
            // All of it is model work but the decoding: close enough to call it inference.
            inference_cpu: cpu,
            cold_start: false,
            error: result.is_err(),
        };
        let joules = platform.meter.record(&tenant, None, &sample);
        platform.metrics.host_energy(&tenant, joules);
        Ok(Worked { result, joules })
    }
}

/// How an invocation that reached its function ended, for the metrics.
fn outcome(result: &Result<Answer>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(Error::Invoke(host::InvokeError::Trapped(_))) => Outcome::Trapped,
        Err(Error::Invoke(host::InvokeError::Timeout(_))) => Outcome::Timeout,
        Err(Error::Invoke(host::InvokeError::MemoryLimit { .. })) => Outcome::MemoryLimit,
        Err(_) => Outcome::Failed,
    }
}

/// Why an invocation was refused before it reached its function, for the metrics; `None` for
/// what is not a refusal (a malformed or unreadable request).
pub fn rejection(e: &Error) -> Option<Rejection> {
    Some(match e {
        Error::Unauthenticated | Error::Forbidden | Error::ForbiddenBecause(_) => Rejection::Auth,
        Error::Suspended(_) | Error::PayloadTooLarge(_) => Rejection::Quota,
        Error::RateLimited { limit, .. } => match limit {
            Limit::Rate => Rejection::Rate,
            Limit::Concurrency => Rejection::Concurrency,
            Limit::Budget => Rejection::Budget,
            Limit::Quota => Rejection::Quota,
        },
        _ => return None,
    })
}

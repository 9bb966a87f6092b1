//! The bounded pool that CPU-bound and blocking work runs on: wasm, inference, compiling,
//! model loads, blob I/O.
//!
//! tokio's blocking pool grows a thread per waiting job; this puts a bound in front of it, so
//! that at most `size` jobs run at once and the rest wait here, as futures, not as threads.
//!
//! The pool is fair between tenants, in three ways:
//!
//! - each job waits in its tenant's lane (the platform's own work has a lane too), and a freed
//!   slot goes to the lanes in turn, so a tenant's burst waits behind its own jobs, not in
//!   front of everyone else's;
//! - while another tenant has work running or waiting, a tenant runs at most as many jobs as
//!   there are cores (alone, it may use every slot, which dynamic batching needs): the slots
//!   outnumber the cores, and without this cap the operating system would share the cores by
//!   thread, so the tenant with the most threads would take them;
//! - a tenant whose calls keep running to their timeout ([`Pool::strike`]) is held to one
//!   running job until its strikes fade: such calls hold a core for as long as they are let,
//!   and once started they cannot be preempted.
//!
//! Invocations start elsewhere: [`Pool::run_inline`] polls them on the request's own task, with
//! no thread hop, and moves them here only when they ask to be ([`Handoff`]): once they have
//! run for an epoch tick. Short calls, nearly all of them, never reach the pool.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::cpu::thread_cpu;
use crate::error::{Error, Result};

/// The lane of the platform's own work (no tenant).
const PLATFORM: &str = "";

/// Strikes at or above which a tenant is held to one running job (with the fading, about
/// three timeouts in quick succession).
const STRIKES_TO_CAP: f64 = 2.0;

/// Lanes kept past which idle ones are swept.
const IDLE_LANES: usize = 64;

/// How fast strikes fade: they halve in this time.
const STRIKE_HALF_LIFE: Duration = Duration::from_secs(10);

/// A bounded, tenant-fair front of tokio's blocking pool. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("size", &self.inner.size).finish_non_exhaustive()
    }
}

struct Inner {
    size: usize,
    /// What one tenant may run while others have work too: the number of cores.
    share: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    running: usize,
    lanes: HashMap<String, Lane>,
    /// Lanes with waiting jobs, in the order they are served next.
    turn: VecDeque<String>,
}

struct Lane {
    running: usize,
    waiting: VecDeque<oneshot::Sender<Slot>>,
    strikes: f64,
    struck_at: Instant,
}

impl Lane {
    fn new() -> Self {
        Self { running: 0, waiting: VecDeque::new(), strikes: 0.0, struck_at: Instant::now() }
    }

    /// The strikes left at `now`.
    fn strikes(&self, now: Instant) -> f64 {
        let halvings = now.saturating_duration_since(self.struck_at).as_secs_f64() / STRIKE_HALF_LIFE.as_secs_f64();
        self.strikes * 0.5f64.powf(halvings)
    }

    /// How many jobs of this lane may run at once: `limit`, or one while struck.
    fn cap(&self, limit: usize, now: Instant) -> usize {
        if self.strikes(now) >= STRIKES_TO_CAP { 1 } else { limit }
    }

    fn active(&self) -> bool {
        self.running > 0 || !self.waiting.is_empty()
    }

    fn idle(&self, now: Instant) -> bool {
        self.running == 0 && self.waiting.is_empty() && self.strikes(now) < 0.01
    }
}

/// One of the pool's slots, held by a running job; given back (and handed on) when dropped.
struct Slot {
    inner: Arc<Inner>,
    lane: String,
    /// False for a slot that never reached its job (it was counted back already).
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.inner.state.lock().expect("pool lock");
        state.running -= 1;
        if let Some(lane) = state.lanes.get_mut(&self.lane) {
            lane.running -= 1;
        }
        // Idle lanes are kept for their next job (no allocation then), and swept when many.
        if state.lanes.len() > IDLE_LANES {
            let now = Instant::now();
            state.lanes.retain(|_, lane| !lane.idle(now));
        }
        self.inner.dispatch(&mut state);
    }
}

impl State {
    /// Whether a tenant other than `key` has work running or waiting.
    fn contended(&self, key: &str) -> bool {
        self.lanes.iter().any(|(other, lane)| other != key && other != PLATFORM && lane.active())
    }
}

impl Inner {
    /// How many jobs lane `key` may run now (before strikes).
    fn limit(&self, state: &State, key: &str) -> usize {
        if key != PLATFORM && state.contended(key) { self.share } else { self.size }
    }

    /// Hands free slots to waiting jobs, one lane at a time in turn.
    fn dispatch(self: &Arc<Self>, state: &mut State) {
        let now = Instant::now();
        // Each pass over the turn either grants a slot or finds no lane that may take one.
        let mut passes_without_grant = 0;
        while state.running < self.size && !state.turn.is_empty() && passes_without_grant < state.turn.len() {
            let key = state.turn.pop_front().expect("non-empty turn");
            let limit = self.limit(state, &key);
            let Some(lane) = state.lanes.get_mut(&key) else { continue };
            if lane.waiting.is_empty() {
                passes_without_grant = 0;
                continue;
            }
            if lane.running >= lane.cap(limit, now) {
                state.turn.push_back(key);
                passes_without_grant += 1;
                continue;
            }
            let waiter = lane.waiting.pop_front().expect("a waiter");
            lane.running += 1;
            let more = !lane.waiting.is_empty();
            state.running += 1;
            let slot = Slot { inner: self.clone(), lane: key.clone(), armed: true };
            if let Err(mut slot) = waiter.send(slot) {
                // The job went away while it waited: count the slot back, try again.
                slot.armed = false;
                state.running -= 1;
                if let Some(lane) = state.lanes.get_mut(&key) {
                    lane.running -= 1;
                }
            }
            if more {
                state.turn.push_back(key);
            }
            passes_without_grant = 0;
        }
    }
}

impl Pool {
    /// A pool running at most `size` jobs at once, one tenant at most as many as the machine
    /// has cores while other tenants have work.
    pub fn new(size: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_share(size, cores)
    }

    /// A pool of `size` slots whose tenants run at most `share` jobs each under contention.
    pub fn with_share(size: usize, share: usize) -> Self {
        let size = size.max(1);
        let inner = Inner { size, share: share.clamp(1, size), state: Mutex::new(State::default()) };
        Self { inner: Arc::new(inner) }
    }

    /// Runs `job`, the platform's own work, on a blocking thread once a slot is free.
    pub async fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.run_for(PLATFORM, job).await
    }

    /// Runs `job`, work of `tenant`, on a blocking thread once a slot is free and it is the
    /// tenant's turn; waiting callers queue here, not on threads. The job runs inside the
    /// caller's tracing span, so its logs and spans belong to the caller's request.
    pub async fn run_for<T, F>(&self, tenant: &str, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let slot = self.acquire(tenant).await?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            crate::cpu::mark_pool_thread();
            let _slot = slot;
            span.in_scope(job)
        })
        .await
        .map_err(|e| Error::internal(format!("a pool job failed: {e}")))
    }

    async fn acquire(&self, tenant: &str) -> Result<Slot> {
        let waiting = {
            let mut state = self.inner.state.lock().expect("pool lock");
            let now = Instant::now();
            let free = state.running < self.inner.size;
            let limit = self.inner.limit(&state, tenant);
            if !state.lanes.contains_key(tenant) {
                state.lanes.insert(tenant.to_string(), Lane::new());
            }
            let lane = state.lanes.get_mut(tenant).expect("inserted above");
            if free && lane.waiting.is_empty() && lane.running < lane.cap(limit, now) {
                lane.running += 1;
                state.running += 1;
                return Ok(Slot { inner: self.inner.clone(), lane: tenant.to_string(), armed: true });
            }
            let (sender, receiver) = oneshot::channel();
            lane.waiting.push_back(sender);
            if lane.waiting.len() == 1 {
                state.turn.push_back(tenant.to_string());
            }
            // Slots may be free for lanes that were held back (their strikes have faded, or
            // the contention that capped them is over): hand them out now.
            if state.running < self.inner.size {
                self.inner.dispatch(&mut state);
            }
            receiver
        };
        waiting.await.map_err(|_| Error::internal("the pool went away"))
    }

    /// Runs `job`, an invocation of `tenant`, on the caller's task while it is short, and on
    /// the pool from the moment it asks through `handoff` ([`Handoff::ask`]): the future is
    /// then moved, suspended, to a pool thread, which drives it to the end. `job` must only
    /// ask at a point where it returns `Pending` (a wasm fiber yielding at an epoch tick). A
    /// `handoff` that asked already starts `job` on the pool.
    ///
    /// Meters the CPU time `job` took, on whichever threads polled it (not what it sent to
    /// the pool through [`Handoff::offload`]), and how long it waited for a pool slot.
    pub async fn run_inline<F>(&self, tenant: &str, handoff: &Handoff, job: F) -> Result<Ran<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut job = Box::pin(job);
        let mut cpu = Duration::ZERO;
        let done = std::future::poll_fn(|cx| {
            if handoff.asked() {
                return Poll::Ready(None);
            }
            let before = thread_cpu();
            let polled = job.as_mut().poll(cx);
            cpu += thread_cpu().saturating_sub(before);
            match polled {
                Poll::Ready(out) => Poll::Ready(Some(out)),
                Poll::Pending if handoff.asked() => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if let Some(output) = done {
            return Ok(Ran { output, cpu, waited: Duration::ZERO });
        }
        let (runtime, handoff, asked) = (tokio::runtime::Handle::current(), handoff.clone(), Instant::now());
        let (output, pooled, waited) = self
            .run_for(tenant, move || {
                let (waited, before) = (asked.elapsed(), thread_cpu());
                handoff.state.store(POOLED, Ordering::Release);
                let output = runtime.block_on(job);
                (output, thread_cpu().saturating_sub(before), waited)
            })
            .await?;
        Ok(Ran { output, cpu: cpu + pooled, waited })
    }

    /// Runs `job` on the pool in the background, for work nobody waits on (cleaning up after
    /// a dropped upload). Call from within the runtime.
    pub fn spawn<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        let pool = self.clone();
        drop(tokio::spawn(async move {
            if let Err(e) = pool.run(job).await {
                tracing::warn!(error = %e, "a background pool job failed");
            }
        }));
    }

    /// Records that a call of `tenant` ran to its timeout. Past a few recent strikes, the
    /// tenant runs one job at a time.
    pub fn strike(&self, tenant: &str) {
        let mut state = self.inner.state.lock().expect("pool lock");
        let now = Instant::now();
        let lane = state.lanes.entry(tenant.to_string()).or_insert_with(Lane::new);
        lane.strikes = lane.strikes(now) + 1.0;
        lane.struck_at = now;
    }

    /// Whether `tenant` is held to one running job now.
    pub fn is_capped(&self, tenant: &str) -> bool {
        let state = self.inner.state.lock().expect("pool lock");
        state.lanes.get(tenant).is_some_and(|lane| lane.cap(self.inner.size, Instant::now()) == 1)
    }

    /// Jobs running and jobs waiting for a slot, right now.
    pub fn load(&self) -> (usize, usize) {
        let state = self.inner.state.lock().expect("pool lock");
        (state.running, state.lanes.values().map(|lane| lane.waiting.len()).sum())
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        let state = self.inner.state.lock().expect("pool lock");
        self.inner.size - state.running
    }
}

/// What [`Pool::run_inline`] ran.
pub struct Ran<T> {
    /// What the job returned.
    pub output: T,
    /// The CPU time it took on the threads that polled it.
    pub cpu: Duration,
    /// How long it waited for a pool slot (zero when it never moved).
    pub waited: Duration,
}

/// [`Handoff`] states: polled on the request's task; asked to move; on a pool thread.
const INLINE: u8 = 0;
const ASKED: u8 = 1;
const POOLED: u8 = 2;

/// Where an invocation run by [`Pool::run_inline`] is, shared between it and the pool: it
/// asks to move once it has run long, and learns whether it is on a pool thread (where
/// blocking work may run in place) or on an async worker (where it must not). Also the way
/// such an invocation sends blocking work to the pool while it stays inline.
#[derive(Clone)]
pub struct Handoff {
    state: Arc<AtomicU8>,
    /// The pool and the lane that blocking work goes to; `None` for a caller that is on a
    /// blocking thread already (tests, benches).
    pool: Option<(Pool, Arc<str>)>,
}

impl Handoff {
    /// A handoff for an invocation of `tenant` starting inline.
    pub fn inline(pool: &Pool, tenant: &str) -> Self {
        Self { state: Arc::new(AtomicU8::new(INLINE)), pool: Some((pool.clone(), tenant.into())) }
    }

    /// A handoff for a caller that drives the invocation on a blocking thread of its own:
    /// blocking work runs in place and nothing moves.
    pub fn blocking() -> Self {
        Self { state: Arc::new(AtomicU8::new(POOLED)), pool: None }
    }

    /// Asks to move to the pool; true when this call asked (it was inline and had not
    /// asked yet), and the invocation must now yield.
    pub fn ask(&self) -> bool {
        self.state.compare_exchange(INLINE, ASKED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    fn asked(&self) -> bool {
        self.state.load(Ordering::Acquire) == ASKED
    }

    /// Whether the invocation runs on an async worker, where blocking work must not run.
    pub fn is_inline(&self) -> bool {
        self.state.load(Ordering::Acquire) != POOLED
    }

    /// Whether the invocation moved (or started) on a pool thread.
    pub fn moved(&self) -> bool {
        !self.is_inline()
    }

    /// Runs the blocking `job`: on the pool, in the invocation's lane, while the invocation
    /// is inline; in place once it is on a pool thread.
    pub async fn offload<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match &self.pool {
            Some((pool, tenant)) if self.is_inline() => pool.run_for(tenant, job).await,
            _ => Ok(job()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Runs `n` jobs of `tenant` that sleep `ms`, recording their start order in `starts`.
    fn jobs(
        pool: &Pool,
        tenant: &'static str,
        n: usize,
        ms: u64,
        starts: &Arc<Mutex<Vec<&'static str>>>,
        running: &Arc<AtomicUsize>,
        peak: &Arc<AtomicUsize>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n)
            .map(|_| {
                let (pool, starts, running, peak) = (pool.clone(), starts.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    pool.run_for(tenant, move || {
                        starts.lock().unwrap().push(tenant);
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(ms));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap()
                })
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_size_jobs_run_at_once() {
        let pool = Pool::with_share(2, 2);
        let (starts, running, peak) = Default::default();
        for job in jobs(&pool, "a", 6, 20, &starts, &running, &peak) {
            job.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(pool.available(), 2);
        let state = pool.inner.state.lock().unwrap();
        assert!(state.lanes.values().all(|lane| lane.running == 0 && lane.waiting.is_empty()));
        assert_eq!(state.running, 0);
    }

    /// A tenant arriving behind another's burst is served at the next free slot, not after
    /// the whole burst.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lanes_take_turns() {
        let pool = Pool::with_share(1, 1);
        let (starts, running, peak) = Default::default();
        let mut all = jobs(&pool, "a", 6, 20, &starts, &running, &peak);
        tokio::time::sleep(Duration::from_millis(5)).await;
        all.extend(jobs(&pool, "b", 1, 1, &starts, &running, &peak));
        for job in all {
            job.await.unwrap();
        }
        let starts = starts.lock().unwrap().clone();
        let b = starts.iter().position(|t| *t == "b").unwrap();
        assert!(b <= 2, "b started {b}th: {starts:?}");
    }

    /// A tenant struck often runs one job at a time; others still use the whole pool.
    /// While another tenant has work, a tenant runs at most its share of jobs; alone, it may
    /// use every slot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tenant_runs_its_share_while_others_have_work() {
        let pool = Pool::with_share(8, 2);
        let (starts, running, peak) = Default::default();
        for job in jobs(&pool, "a", 8, 30, &starts, &running, &peak) {
            job.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 8, "alone, every slot");
        let (b_starts, b_running, b_peak) = Default::default();
        let b = jobs(&pool, "b", 1, 400, &b_starts, &b_running, &b_peak);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (starts, running, peak) = Default::default();
        for job in jobs(&pool, "a", 8, 30, &starts, &running, &peak) {
            job.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2, "with b running, a's share");
        for job in b {
            job.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn struck_tenants_run_one_job_at_a_time() {
        let pool = Pool::with_share(4, 4);
        for _ in 0..3 {
            pool.strike("bad");
        }
        assert!(pool.is_capped("bad") && !pool.is_capped("good"));
        let (starts, running, peak) = Default::default();
        for job in jobs(&pool, "bad", 4, 10, &starts, &running, &peak) {
            job.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 1);
        let (starts, running, peak) = Default::default();
        for job in jobs(&pool, "good", 4, 20, &starts, &running, &peak) {
            job.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    /// A job that finishes without asking runs on the caller's thread; one that asks moves,
    /// suspended, to a pool thread and finishes there, knowing it moved; blocking work it
    /// sends while inline runs on the pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inline_jobs_stay_until_they_ask_to_move() {
        let pool = Pool::with_share(2, 2);
        let here = std::thread::current().id();
        let handoff = Handoff::inline(&pool, "a");
        let job = {
            let handoff = handoff.clone();
            async move {
                let offloaded = handoff.offload(|| std::thread::current().id()).await.unwrap();
                (std::thread::current().id(), offloaded, handoff.is_inline())
            }
        };
        let ran = pool.run_inline("a", &handoff, job).await.unwrap();
        let (ran_on, offloaded_on, inline) = ran.output;
        assert_eq!(ran_on, here);
        assert_ne!(offloaded_on, here, "blocking work of an inline job goes to the pool");
        assert!(inline && ran.waited == Duration::ZERO);

        let handoff = Handoff::inline(&pool, "a");
        let job = {
            let handoff = handoff.clone();
            async move {
                let before = std::thread::current().id();
                assert!(handoff.ask() && !handoff.ask(), "asks once");
                tokio::task::yield_now().await;
                let offloaded = handoff.offload(|| std::thread::current().id()).await.unwrap();
                (before, std::thread::current().id(), offloaded, handoff.moved())
            }
        };
        let (before, after, offloaded, moved) = pool.run_inline("a", &handoff, job).await.unwrap().output;
        assert_eq!(before, here);
        assert_ne!(after, here, "after asking, the job finishes on a pool thread");
        assert_eq!(offloaded, after, "on the pool, blocking work runs in place");
        assert!(moved);
        assert_eq!(pool.available(), 2);
    }
}

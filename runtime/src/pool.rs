//! The bounded pool that runs CPU work (wasm, inference, compilation) off the async workers.
//!
//! Like tokio's blocking pool, but the thread that went idle **last** takes the next job.
//! tokio wakes the thread idle the longest, so consecutive requests rotate over every thread
//! the pool ever started, each time on a thread whose stack, thread-local scratch space (tract
//! keeps its matmul buffers per thread) and CPU caches have gone cold. Measured on the warm
//! MLP over HTTP (docs/performance.md), an invocation took about 245 µs of CPU that way and
//! about 200 µs when every call ran on one thread.
//!
//! At most `max` jobs run at once; more wait in arrival order. Threads start on demand and
//! exit after `keep_alive` idle, so an idle server holds no threads here.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A job computes, then returns how to hand its result over; the pool runs that only after the
/// thread has made itself available again, so a caller that submits its next job as soon as
/// it has the result finds this same thread idle.
type Job = Box<dyn FnOnce() -> Deliver + Send + 'static>;
type Deliver = Box<dyn FnOnce() + Send + 'static>;

/// A bounded pool of threads for CPU-bound jobs, waking the most recently idle thread first.
pub struct WorkPool {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    max: usize,
    keep_alive: Duration,
}

#[derive(Default)]
struct State {
    /// Jobs waiting for a thread (all `max` are busy).
    queue: VecDeque<Job>,
    /// Idle threads, the most recently idle last.
    idle: Vec<Arc<Parker>>,
    /// Threads alive, busy or idle.
    threads: usize,
    shutdown: bool,
}

/// Where an idle thread waits for its next job. A job is handed over while the pool's state
/// lock is held, so a thread that times out can tell whether it was picked in the meantime.
#[derive(Default)]
struct Parker {
    job: Mutex<Option<Job>>,
    handed: Condvar,
}

/// A job panicked; the pool and its thread carry on.
#[derive(Debug)]
pub struct Panicked;

impl WorkPool {
    /// A pool running at most `max` jobs at once, whose idle threads exit after `keep_alive`.
    pub fn new(max: usize, keep_alive: Duration) -> Self {
        let state = Mutex::new(State::default());
        Self { shared: Arc::new(Shared { state, max: max.max(1), keep_alive }) }
    }

    /// Runs `job` on the pool and waits (asynchronously) for its result; `Err` if it panicked.
    /// The job runs to the end even if the returned future is dropped.
    pub async fn run<T, F>(&self, job: F) -> Result<T, Panicked>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(job));
            Box::new(move || {
                let _ = tx.send(result);
            })
        }));
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            // A panic, or (never expected) a job dropped without running.
            Ok(Err(_)) | Err(_) => Err(Panicked),
        }
    }

    fn submit(&self, job: Job) {
        let mut state = self.shared.state.lock().expect("pool lock");
        if let Some(parker) = state.idle.pop() {
            *parker.job.lock().expect("parker lock") = Some(job);
            parker.handed.notify_one();
        } else if state.threads < self.shared.max {
            state.threads += 1;
            drop(state);
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new().name("maas-work".into()).spawn(move || shared.work(job));
            if let Err(e) = spawned {
                // Out of threads: the job was lost with the closure; nothing sensible is left
                // but to say so loudly. The caller sees `Panicked`.
                tracing::error!(error = %e, "could not start a pool thread");
                self.shared.state.lock().expect("pool lock").threads -= 1;
            }
        } else {
            state.queue.push_back(job);
        }
    }
}

impl Shared {
    /// A pool thread: runs `job`, then queued jobs, then waits idle for the next one.
    fn work(&self, mut job: Job) {
        let parker = Arc::new(Parker::default());
        loop {
            let deliver = job();
            let mut state = self.state.lock().expect("pool lock");
            if let Some(next) = state.queue.pop_front() {
                drop(state);
                deliver();
                job = next;
                continue;
            }
            if state.shutdown {
                state.threads -= 1;
                drop(state);
                deliver();
                return;
            }
            state.idle.push(parker.clone());
            drop(state);
            deliver();
            match self.wait(&parker) {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// Waits until a job is handed to `parker`, or gives up after `keep_alive` (or at
    /// shutdown) and leaves the pool: `None`.
    fn wait(&self, parker: &Arc<Parker>) -> Option<Job> {
        let slot = parker.job.lock().expect("parker lock");
        let (mut slot, _) =
            parker.handed.wait_timeout_while(slot, self.keep_alive, |job| job.is_none()).expect("parker lock");
        if let Some(job) = slot.take() {
            return Some(job);
        }
        drop(slot);
        // Timed out (or woken for shutdown): leave, unless picked meanwhile. Jobs are handed
        // over under the state lock, so holding it settles which.
        let mut state = self.state.lock().expect("pool lock");
        if let Some(job) = parker.job.lock().expect("parker lock").take() {
            return Some(job);
        }
        state.idle.retain(|p| !Arc::ptr_eq(p, parker));
        state.threads -= 1;
        None
    }
}

impl Drop for WorkPool {
    /// Lets idle threads exit now rather than after `keep_alive`; busy ones finish first.
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().expect("pool lock");
        state.shutdown = true;
        for parker in state.idle.drain(..) {
            parker.handed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_max_at_once_and_every_job_once() {
        let pool = Arc::new(WorkPool::new(3, Duration::from_secs(5)));
        let (running, peak, done) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let (pool, running, peak, done) = (pool.clone(), running.clone(), peak.clone(), done.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        done.fetch_add(1, Ordering::SeqCst);
                        i * 2
                    })
                    .await
                })
            })
            .collect();
        for (i, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap().unwrap(), i * 2);
        }
        assert_eq!(done.load(Ordering::SeqCst), 40);
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "{peak} jobs ran at once with a pool of 3");
        assert!(pool.shared.state.lock().unwrap().threads <= 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_idle_thread_takes_the_next_job_and_idle_threads_exit() {
        let pool = WorkPool::new(4, Duration::from_millis(300));
        // Two jobs at once start two threads.
        let (a, b) = tokio::join!(
            pool.run(|| {
                std::thread::sleep(Duration::from_millis(50));
                std::thread::current().id()
            }),
            pool.run(|| {
                std::thread::sleep(Duration::from_millis(100));
                std::thread::current().id()
            })
        );
        let (first_idle, last_idle) = (a.unwrap(), b.unwrap());
        assert_ne!(first_idle, last_idle);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // One job at a time from now on: always the thread that went idle last.
        for _ in 0..5 {
            assert_eq!(pool.run(|| std::thread::current().id()).await.unwrap(), last_idle);
        }
        // A panic is the caller's error, and the pool goes on.
        assert!(pool.run(|| panic!("job panics")).await.is_err());
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
        // Idle past keep_alive: every thread leaves.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let state = pool.shared.state.lock().unwrap();
            if (state.threads, state.idle.len()) == (0, 0) {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{} threads still alive", state.threads);
        }
    }
}

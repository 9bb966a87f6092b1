//! The bounded pool that CPU-bound and blocking work runs on: wasm, inference, compiling,
//! model loads, blob I/O.
//!
//! tokio's blocking pool grows a thread per waiting job; this puts a bound in front of it, so
//! that at most `size` jobs run at once and the rest wait here, as futures, not as threads.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// A bounded front of tokio's blocking pool. Cheap to clone; clones share the bound.
#[derive(Clone, Debug)]
pub struct Pool {
    permits: Arc<Semaphore>,
}

impl Pool {
    /// A pool running at most `size` jobs at once.
    pub fn new(size: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(size.max(1))) }
    }

    /// Runs `job` on a blocking thread once one of the pool's slots is free; waiting callers
    /// queue here, not on threads.
    pub async fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await.map_err(Error::internal)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        })
        .await
        .map_err(|e| Error::internal(format!("a pool job failed: {e}")))
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

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn at_most_size_jobs_run_at_once() {
        let pool = Pool::new(2);
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..6).map(|_| {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            })
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
        assert_eq!(pool.available(), 2);
    }
}

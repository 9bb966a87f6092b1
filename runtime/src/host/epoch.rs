//! The epoch ticker that enforces timeouts, asleep whenever no guest runs.
//!
//! Epoch interruption is cheap for the guest (a counter check at loop heads and calls) but
//! needs someone to advance the epoch. A thread ticking forever would wake the CPU hundreds
//! of times a second on an idle server; this one parks while no invocation is in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::Duration;

use wasmtime::Engine;

/// Period between epoch increments: the timeout's resolution, and how often a running guest
/// checks whether to move off the request's task.
const TICK: Duration = Duration::from_millis(1);

pub(crate) struct EpochTicker {
    running: Arc<AtomicUsize>,
    thread: Thread,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> Self {
        let running = Arc::new(AtomicUsize::new(0));
        let weak_engine = engine.weak();
        drop(engine);
        let counter = running.clone();
        let handle = thread::Builder::new()
            .name("maas-epoch".into())
            .spawn(move || {
                loop {
                    if counter.load(Ordering::Acquire) == 0 {
                        thread::park();
                        continue;
                    }
                    thread::sleep(TICK);
                    // The engine is gone once the host is dropped: stop ticking.
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .expect("spawn epoch thread");
        Self { running, thread: handle.thread().clone() }
    }

    /// Marks one invocation as running until the guard drops; wakes the ticker if it slept.
    pub(crate) fn running(&self) -> RunningGuard<'_> {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.thread.unpark();
        }
        RunningGuard(self)
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        // Wake the thread so it notices the engine is gone and exits.
        self.running.fetch_add(1, Ordering::AcqRel);
        self.thread.unpark();
    }
}

pub(crate) struct RunningGuard<'a>(&'a EpochTicker);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

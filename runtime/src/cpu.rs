//! The CPU clock of the calling thread: what metering charges, and what the host reports of
//! the time spent in tract.

use std::time::Duration;

/// CPU time the calling thread has used so far (`CLOCK_THREAD_CPUTIME_ID`): time spent
/// waiting (for the pool, the network, other tenants) does not count.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How long a pool thread runs a model before it offers its core at the next node boundary.
const YIELD_EVERY: Duration = Duration::from_micros(250);

thread_local! {
    /// On a pool thread: when it last offered its core. `None` elsewhere.
    static POOL_THREAD: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// Marks the calling thread as a pool thread, on which [`offer_core`] yields.
pub fn mark_pool_thread() {
    if POOL_THREAD.get().is_none() {
        POOL_THREAD.set(Some(std::time::Instant::now()));
    }
}

/// On a pool thread that has run for [`YIELD_EVERY`] since it last did, yields its core to
/// any thread waiting for one; elsewhere, nothing. Called between two nodes of a model run.
///
/// The pool's runs are long by design (what is short runs on the async workers). The OS lets
/// a running thread finish its time slice, milliseconds, before a thread it woke runs, so a
/// request for a small model arriving beside long runs waited that long: in the platform
/// bench its p99 rose ×6.7 beside a 10 ms model, and ×1.1 with this. (A lower priority for
/// pool threads, nice 5, changed nothing measurable, and was dropped.)
pub fn offer_core() {
    let Some(last) = POOL_THREAD.get() else { return };
    if last.elapsed() >= YIELD_EVERY {
        std::thread::yield_now();
        POOL_THREAD.set(Some(std::time::Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_counts_work_not_sleep() {
        let start = thread_cpu();
        std::thread::sleep(Duration::from_millis(30));
        let slept = thread_cpu() - start;
        let start = thread_cpu();
        let mut x = 0u64;
        while thread_cpu() - start < Duration::from_millis(20) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(slept < Duration::from_millis(10), "sleeping used {slept:?} of CPU");
    }
}

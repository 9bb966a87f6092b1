//! WASI's monotonic clock, bounded by the request's deadline.
//!
//! Epoch interruption stops a guest only while it runs wasm. A guest that sleeps
//! (`std::thread::sleep`, which is `subscribe-duration` then `pollable.block`) waits inside
//! the host, where no epoch reaches it: with WASI's own clock, a sleep of an hour pins a pool
//! thread for an hour. Here every subscription ends by the request's deadline at the latest;
//! the guest then returns to wasm, past its epoch deadline, and traps as a timeout.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::HostMonotonicClock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use super::state::HostState;

/// The version of `wasi:clocks` that wasmtime-wasi links; guests importing any 0.2.x version
/// resolve to it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// The guest's monotonic clock: nanoseconds since the instance was made.
pub(crate) struct Clock {
    pub(crate) origin: Instant,
}

impl HostMonotonicClock for Clock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

/// A pollable that is ready at `until`.
struct Sleep {
    until: tokio::time::Instant,
}

impl Pollable for Sleep {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(tokio::time::sleep_until(self.until))
    }
}

/// Replaces the clock's `subscribe-duration` and `subscribe-instant` in `linker` (which holds
/// WASI already) by ones that end by the request's deadline.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |mut store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
        let state = store.data_mut();
        let until = Instant::now().checked_add(Duration::from_nanos(nanos)).unwrap_or(state.deadline);
        Ok((state.sleep(until)?,))
    })?;
    clock.func_wrap("subscribe-instant", |mut store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
        let state = store.data_mut();
        let until = state.clock_origin.checked_add(Duration::from_nanos(when)).unwrap_or(state.deadline);
        Ok((state.sleep(until)?,))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

impl HostState {
    /// A pollable ready at `until` or the request's deadline, whichever comes first.
    fn sleep(&mut self, until: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        let until = tokio::time::Instant::from_std(until.min(self.deadline));
        let resource = self.table.push(Sleep { until })?;
        subscribe(&mut self.table, resource)
    }
}

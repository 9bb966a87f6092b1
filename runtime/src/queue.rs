//! A concurrency limit with a bounded FIFO queue in front of it: under a burst, requests wait
//! their turn (as Knative's queue-proxy and Triton do) instead of being refused while the
//! server has capacity a millisecond later. Only a full queue or an expired wait refuses.
//!
//! Each function has one ([`crate::scale::Slot`]), and each tenant ([`crate::admission`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `limit` holders at once; others wait in arrival order.
#[derive(Debug)]
pub struct Lane {
    permits: Arc<Semaphore>,
    limit: u32,
    waiting: AtomicU32,
}

/// Why a request did not get in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// `depth` requests were already waiting.
    Full,
    /// It waited the longest time it may.
    Expired,
}

/// One of the lane's `limit` places, given back when dropped.
#[derive(Debug)]
pub struct Place(#[allow(dead_code)] OwnedSemaphorePermit);

impl Lane {
    /// A lane of `limit` places (at least one).
    pub fn new(limit: u32) -> Self {
        let limit = limit.max(1);
        Self { permits: Arc::new(Semaphore::new(limit as usize)), limit, waiting: AtomicU32::new(0) }
    }

    /// The number of places.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Places taken now.
    pub fn taken(&self) -> u32 {
        self.limit - self.permits.available_permits().min(self.limit as usize) as u32
    }

    /// A place: at once when one is free, else after waiting behind earlier requests, when
    /// fewer than `depth` wait and one frees up within `wait`.
    pub async fn enter(&self, depth: u32, wait: Duration) -> Result<Place, Refused> {
        // Only when nobody waits: a newcomer must not overtake the queue.
        if self.waiting.load(Ordering::Acquire) == 0
            && let Ok(permit) = self.permits.clone().try_acquire_owned()
        {
            return Ok(Place(permit));
        }
        let queued = self.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < depth).then_some(n + 1));
        if queued.is_err() {
            return Err(Refused::Full);
        }
        let _leave = Leave(&self.waiting);
        // tokio's semaphore serves waiters in the order they asked.
        match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Place(permit)),
            Ok(Err(_)) | Err(_) => Err(Refused::Expired),
        }
    }
}

/// Leaves the queue when the wait ends, however it ends (the request may go away).
struct Leave<'a>(&'a AtomicU32);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_in_order_then_refuses_when_full_or_expired() {
        let lane = Arc::new(Lane::new(1));
        let first = lane.enter(0, Duration::ZERO).await.unwrap();
        // No queue: refused at once.
        assert_eq!(lane.enter(0, Duration::from_secs(1)).await.unwrap_err(), Refused::Full);
        // A queue of two: two wait, the third is refused.
        let (a, b) = (lane.clone(), lane.clone());
        let second = tokio::spawn(async move { a.enter(2, Duration::from_secs(10)).await.map(|_| 2) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let third = tokio::spawn(async move { b.enter(2, Duration::from_secs(10)).await.map(|_| 3) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(lane.waiting(), 2);
        assert_eq!(lane.enter(2, Duration::from_secs(1)).await.unwrap_err(), Refused::Full);
        // Freed places go to the waiters first come, first served.
        drop(first);
        assert_eq!(second.await.unwrap(), Ok(2));
        assert_eq!(third.await.unwrap(), Ok(3));
        assert_eq!(lane.waiting(), 0);
        // A wait that outlasts its limit is refused, and leaves the queue.
        let held = lane.enter(0, Duration::ZERO).await.unwrap();
        assert_eq!(lane.enter(4, Duration::from_millis(30)).await.unwrap_err(), Refused::Expired);
        assert_eq!(lane.waiting(), 0);
        drop(held);
        assert_eq!(lane.taken(), 0);
    }
}

//! Admission control per tenant: a token bucket for `rate_per_second` and a count of running
//! invocations for `max_concurrency`. Both refuse with [`Error::RateLimited`] (a `429` with
//! `Retry-After`) before any work is done for the request.
//!
//! A tenant pays one token for every request made with one of its keys and for every
//! invocation of one of its functions (whoever calls, public functions included). The admin's
//! own management requests are not charged: the operator is not a tenant.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use maas_types::Quota;

use crate::error::{Error, Result};

/// The gates of every tenant that made a request since the server started (or since the
/// tenant was deleted and recreated).
#[derive(Default)]
pub struct Admission {
    tenants: Mutex<HashMap<String, Arc<Gate>>>,
}

struct Gate {
    bucket: Mutex<Bucket>,
    running: AtomicU32,
}

/// A token bucket holding at most `max(1, rate)` tokens, refilled at `rate` per second.
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    /// Takes one token, or says how many whole seconds until one is there.
    fn take(&mut self, rate: f64, now: Instant) -> Result<(), u64> {
        let capacity = rate.max(1.0);
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - self.tokens) / rate).ceil() as u64).max(1))
        }
    }
}

/// One running invocation of a tenant; the count goes down when it is dropped.
pub struct TenantPermit {
    gate: Arc<Gate>,
}

impl Drop for TenantPermit {
    fn drop(&mut self) {
        self.gate.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    fn gate(&self, tenant: &str, quota: &Quota) -> Arc<Gate> {
        let mut tenants = self.tenants.lock().expect("admission lock");
        tenants
            .entry(tenant.to_string())
            .or_insert_with(|| {
                let bucket = Bucket { tokens: quota.rate_per_second.max(1.0), refilled: Instant::now() };
                Arc::new(Gate { bucket: Mutex::new(bucket), running: AtomicU32::new(0) })
            })
            .clone()
    }

    /// Charges one request to `tenant`'s rate: refused when its bucket is empty.
    pub fn charge(&self, tenant: &str, quota: &Quota) -> Result<()> {
        self.take_token(&self.gate(tenant, quota), tenant, quota)
    }

    /// Admits one invocation of `tenant`: charges its rate, then counts it against its
    /// `max_concurrency` until the permit is dropped.
    pub fn enter(&self, tenant: &str, quota: &Quota) -> Result<TenantPermit> {
        let gate = self.gate(tenant, quota);
        self.take_token(&gate, tenant, quota)?;
        let limit = quota.max_concurrency;
        let admitted = gate.running.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1));
        if admitted.is_err() {
            return Err(Error::rate_limited(
                format!("tenant {tenant} already runs {limit} invocations, its max_concurrency"),
                1,
            ));
        }
        Ok(TenantPermit { gate })
    }

    /// Forgets a deleted tenant, so that a tenant created again under its name starts afresh.
    pub fn forget(&self, tenant: &str) {
        self.tenants.lock().expect("admission lock").remove(tenant);
    }

    fn take_token(&self, gate: &Gate, tenant: &str, quota: &Quota) -> Result<()> {
        let rate = quota.rate_per_second;
        gate.bucket.lock().expect("bucket lock").take(rate, Instant::now()).map_err(|wait| {
            Error::rate_limited(format!("tenant {tenant} is over its rate of {rate} requests per second"), wait)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket { tokens: 2.0, refilled: start };
        assert_eq!(bucket.take(2.0, start), Ok(()));
        assert_eq!(bucket.take(2.0, start), Ok(()));
        assert_eq!(bucket.take(2.0, start), Err(1));
        // Half a second at 2 per second is one token, and the bucket never holds more than 2.
        assert_eq!(bucket.take(2.0, start + Duration::from_millis(500)), Ok(()));
        assert_eq!(bucket.take(2.0, start + Duration::from_secs(100)), Ok(()));
        assert_eq!(bucket.take(2.0, start + Duration::from_secs(100)), Ok(()));
        assert!(bucket.take(2.0, start + Duration::from_secs(100)).is_err());
    }

    #[test]
    fn slow_rates_ask_for_a_longer_wait() {
        let start = Instant::now();
        let mut bucket = Bucket { tokens: 1.0, refilled: start };
        assert_eq!(bucket.take(0.1, start), Ok(()));
        assert_eq!(bucket.take(0.1, start), Err(10));
    }

    #[test]
    fn concurrency_is_counted_until_the_permit_drops() {
        let admission = Admission::default();
        let quota = Quota { max_concurrency: 2, rate_per_second: 1000.0, ..Quota::default() };
        let a = admission.enter("acme", &quota).unwrap();
        let _b = admission.enter("acme", &quota).unwrap();
        let refused = admission.enter("acme", &quota).err().unwrap();
        assert!(matches!(refused, Error::RateLimited { retry_after: 1, .. }), "{refused}");
        // Another tenant has its own count.
        assert!(admission.enter("other", &quota).is_ok());
        drop(a);
        assert!(admission.enter("acme", &quota).is_ok());
    }
}

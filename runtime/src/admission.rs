//! Admission control per tenant: a token bucket for `rate_per_second` and a bounded FIFO
//! queue ([`Lane`]) in front of `max_concurrency`. A request over the rate is refused at once
//! with [`Error::RateLimited`] (a `429` with `Retry-After`); one over the concurrency waits its
//! turn, and is refused only when the queue is full or its wait expired.
//!
//! A tenant pays one token for every request made with one of its keys and for every
//! invocation of one of its functions by a key. Anonymous calls of public functions have a
//! budget of their own, so that a flood of them cannot drain the owner's: a bucket per
//! function at the tenant's rate, at most [`ANONYMOUS_PER_CLIENT`] calls in flight per client
//! address, and at most half of the tenant's queue. The admin's own management requests are
//! not charged: the operator is not a tenant.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use maas_types::Quota;

use crate::error::{Error, Limit, Result};
use crate::queue::{Lane, Place, Refused};

/// Anonymous calls one client address may have in flight (body, queue and run), server-wide.
pub const ANONYMOUS_PER_CLIENT: u32 = 8;

/// Invocations of one tenant that may wait for one of its `max_concurrency` places, beyond
/// what each function's own `queue_depth` allows.
pub const TENANT_QUEUE_DEPTH: u32 = 256;

/// Uploads (models and components) one tenant may have in progress at once.
pub const UPLOADS_PER_TENANT: u32 = 4;

/// Request bodies one tenant's requests may hold in memory at once, in multiples of its
/// `max_request_bytes`: bodies are read before a request waits for a place, so without this
/// a fast sender could park a body in every queue slot.
pub const BODIES_PER_TENANT: u64 = 4;

/// The gates of every tenant that made a request since the server started (or since the
/// tenant was deleted and recreated), and the budgets of anonymous callers.
#[derive(Default)]
pub struct Admission {
    tenants: Mutex<HashMap<String, Arc<Gate>>>,
    /// Per public function (tenant, function): the anonymous callers' bucket.
    anonymous: Mutex<HashMap<(String, String), Bucket>>,
    /// Per client address: anonymous calls in flight.
    clients: Clients,
    /// Per tenant: uploads in progress and the storage they have reserved.
    uploads: Uploads,
    /// Per tenant: bytes of request bodies held in memory.
    bodies: Bodies,
}

/// Bytes of request bodies held per tenant: one counter per tenant, shared with the holds.
type Bodies = Mutex<HashMap<String, Arc<AtomicU64>>>;

/// The bytes of request bodies one request holds in memory, counted against its tenant's
/// [`BODIES_PER_TENANT`] × `max_request_bytes`; given back when dropped (the request done).
pub struct BodyHold {
    total: Arc<AtomicU64>,
    held: u64,
    limit: u64,
}

impl BodyHold {
    /// Holds `more` bytes, or refuses with [`Error::RateLimited`] when the tenant's requests
    /// already hold their share.
    pub fn grow(&mut self, more: u64) -> Result<()> {
        let limit = self.limit;
        let grown = self.total.fetch_update(AtomicOrdering::AcqRel, AtomicOrdering::Acquire, |total| {
            total.checked_add(more).filter(|&t| t <= limit)
        });
        if let Err(total) = grown {
            return Err(Error::rate_limited(
                Limit::Quota,
                format!(
                    "the tenant's requests already hold {total} bytes of bodies in memory, its share \
                     ({BODIES_PER_TENANT} × max_request_bytes)"
                ),
                1,
            ));
        }
        self.held += more;
        Ok(())
    }
}

impl Drop for BodyHold {
    fn drop(&mut self) {
        self.total.fetch_sub(self.held, AtomicOrdering::AcqRel);
    }
}

/// Uploads in progress per tenant, shared with the permits that hold them.
type Uploads = Arc<Mutex<HashMap<String, UploadsInProgress>>>;

#[derive(Default)]
struct UploadsInProgress {
    count: u32,
    /// Bytes the uploads have received so far, together.
    reserved: u64,
}

/// One of a tenant's [`UPLOADS_PER_TENANT`] uploads, with the storage it has reserved; both
/// are given back when it is dropped (the upload committed or failed).
pub struct UploadPermit {
    uploads: Uploads,
    tenant: String,
    reserved: u64,
}

impl UploadPermit {
    /// Grows this upload's reservation to `total` bytes. Refused, with what the tenant's other
    /// uploads in progress hold, when together they would need more than `left` bytes (the
    /// tenant's storage left when this upload began): concurrent uploads cannot all count on
    /// the same room.
    pub fn reserve(&mut self, total: u64, left: u64) -> Result<(), u64> {
        let mut uploads = self.uploads.lock().expect("uploads lock");
        let state = uploads.entry(self.tenant.clone()).or_default();
        let others = state.reserved - self.reserved;
        if others.saturating_add(total) > left {
            return Err(others);
        }
        state.reserved = others + total;
        self.reserved = total;
        Ok(())
    }
}

impl Drop for UploadPermit {
    fn drop(&mut self) {
        let mut uploads = self.uploads.lock().expect("uploads lock");
        if let Some(state) = uploads.get_mut(&self.tenant) {
            state.count -= 1;
            state.reserved -= self.reserved;
            if state.count == 0 {
                uploads.remove(&self.tenant);
            }
        }
    }
}

/// Anonymous calls in flight per client address, shared with the tickets that hold them.
type Clients = Arc<Mutex<HashMap<IpAddr, u32>>>;

struct Gate {
    bucket: Mutex<Bucket>,
    /// Replaced when the tenant's `max_concurrency` changes; places of the old one drain.
    lane: Mutex<Arc<Lane>>,
}

/// A token bucket holding at most `max(1, rate)` tokens, refilled at `rate` per second.
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn full(rate: f64) -> Self {
        Self { tokens: rate.max(1.0), refilled: Instant::now() }
    }

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

/// Who an invocation is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A key (of the tenant, or the admin's).
    Keyed,
    /// Nobody: a public function's anonymous caller, from this address when known.
    Anonymous(Option<IpAddr>),
}

/// An invocation whose rate was paid; it holds its body's bytes, and for an anonymous caller
/// one of the client's [`ANONYMOUS_PER_CLIENT`] places, until dropped.
pub struct Ticket {
    caller: Caller,
    client: Option<(IpAddr, Clients)>,
    /// The request's body, as it is read.
    pub body: BodyHold,
}

impl Ticket {
    /// Whether the call is anonymous.
    pub fn is_anonymous(&self) -> bool {
        matches!(self.caller, Caller::Anonymous(_))
    }
}

/// The address anonymous budgets are kept by: an IPv6 client by its /64 (one machine usually
/// has a whole /64 to pick addresses from), an IPv4 one by its address.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((ip, clients)) = self.client.take() {
            let mut clients = clients.lock().expect("clients lock");
            if let Some(n) = clients.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    clients.remove(&ip);
                }
            }
        }
    }
}

/// One of a tenant's `max_concurrency` places, held while the work runs.
pub struct TenantPermit {
    _place: Place,
}

impl Admission {
    fn gate(&self, tenant: &str, quota: &Quota) -> Arc<Gate> {
        let mut tenants = self.tenants.lock().expect("admission lock");
        tenants
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(Gate {
                    bucket: Mutex::new(Bucket::full(quota.rate_per_second)),
                    lane: Mutex::new(Arc::new(Lane::new(quota.max_concurrency))),
                })
            })
            .clone()
    }

    /// Charges one request to `tenant`'s rate: refused when its bucket is empty.
    pub fn charge(&self, tenant: &str, quota: &Quota) -> Result<()> {
        let rate = quota.rate_per_second;
        let gate = self.gate(tenant, quota);
        let mut bucket = gate.bucket.lock().expect("bucket lock");
        bucket.take(rate, Instant::now()).map_err(|wait| {
            Error::rate_limited(
                Limit::Rate,
                format!("tenant {tenant} is over its rate of {rate} requests per second"),
                wait,
            )
        })
    }

    /// Charges an invocation of `tenant/function` by `caller`: the tenant's bucket for a key;
    /// for an anonymous caller, the function's anonymous bucket and one of the client's places.
    pub fn charge_invocation(&self, tenant: &str, function: &str, quota: &Quota, caller: Caller) -> Result<Ticket> {
        let body = self.hold_bodies(tenant, quota);
        let Caller::Anonymous(ip) = caller else {
            self.charge(tenant, quota)?;
            return Ok(Ticket { caller, client: None, body });
        };
        let client = match ip.map(client_key) {
            Some(ip) => {
                let mut clients = self.clients.lock().expect("clients lock");
                let n = clients.entry(ip).or_insert(0);
                if *n >= ANONYMOUS_PER_CLIENT {
                    return Err(Error::rate_limited(
                        Limit::Concurrency,
                        format!("this client already has {ANONYMOUS_PER_CLIENT} anonymous calls in flight"),
                        1,
                    ));
                }
                *n += 1;
                Some((ip, self.clients.clone()))
            }
            None => None,
        };
        let ticket = Ticket { caller, client, body };
        let rate = quota.rate_per_second;
        let mut buckets = self.anonymous.lock().expect("anonymous lock");
        let bucket = buckets.entry((tenant.to_string(), function.to_string())).or_insert_with(|| Bucket::full(rate));
        bucket.take(rate, Instant::now()).map_err(|wait| {
            Error::rate_limited(
                Limit::Rate,
                format!("anonymous calls of {tenant}/{function} are over {rate} per second"),
                wait,
            )
        })?;
        Ok(ticket)
    }

    /// One of `tenant`'s `max_concurrency` places for work that paid its rate (`ticket`),
    /// waiting behind earlier work when none is free: at most `depth` wait (half of it for
    /// anonymous callers) and none longer than `wait`.
    pub async fn enter(
        &self,
        tenant: &str,
        quota: &Quota,
        ticket: &Ticket,
        depth: u32,
        wait: Duration,
    ) -> Result<TenantPermit> {
        let lane = {
            let gate = self.gate(tenant, quota);
            let mut lane = gate.lane.lock().expect("lane lock");
            if lane.limit() != quota.max_concurrency.max(1) {
                *lane = Arc::new(Lane::new(quota.max_concurrency));
            }
            lane.clone()
        };
        let depth = match ticket.caller {
            Caller::Keyed => depth,
            Caller::Anonymous(_) => depth / 2,
        };
        let limit = quota.max_concurrency;
        match lane.enter(depth, wait).await {
            Ok(place) => Ok(TenantPermit { _place: place }),
            Err(Refused::Full) => Err(Error::rate_limited(
                Limit::Concurrency,
                format!("tenant {tenant} runs its max_concurrency of {limit} and its queue is full"),
                1,
            )),
            Err(Refused::Expired) => Err(Error::rate_limited(
                Limit::Concurrency,
                format!("tenant {tenant} ran its max_concurrency of {limit} for the whole wait of {wait:?}"),
                wait.as_secs().max(1),
            )),
        }
    }

    /// One of `tenant`'s places for work done in the host (an explanation, an audit; its
    /// request paid its rate already), queueing like a keyed invocation.
    pub async fn enter_work(&self, tenant: &str, quota: &Quota, wait: Duration) -> Result<TenantPermit> {
        let ticket = Ticket { caller: Caller::Keyed, client: None, body: self.hold_bodies(tenant, quota) };
        self.enter(tenant, quota, &ticket, TENANT_QUEUE_DEPTH, wait).await
    }

    /// An empty hold on `tenant`'s share of request bodies in memory.
    pub fn hold_bodies(&self, tenant: &str, quota: &Quota) -> BodyHold {
        let limit = quota.max_request_bytes.saturating_mul(BODIES_PER_TENANT);
        let mut bodies = self.bodies.lock().expect("bodies lock");
        let total = match bodies.get(tenant) {
            Some(total) => total.clone(),
            None => bodies.entry(tenant.to_string()).or_default().clone(),
        };
        BodyHold { total, held: 0, limit }
    }

    /// One of `tenant`'s [`UPLOADS_PER_TENANT`] upload places, or [`Error::RateLimited`].
    pub fn begin_upload(&self, tenant: &str) -> Result<UploadPermit> {
        let mut uploads = self.uploads.lock().expect("uploads lock");
        let state = uploads.entry(tenant.to_string()).or_default();
        if state.count >= UPLOADS_PER_TENANT {
            return Err(Error::rate_limited(
                Limit::Quota,
                format!("tenant {tenant} already has {UPLOADS_PER_TENANT} uploads in progress"),
                1,
            ));
        }
        state.count += 1;
        Ok(UploadPermit { uploads: self.uploads.clone(), tenant: tenant.to_string(), reserved: 0 })
    }

    /// Forgets a deleted tenant, so that a tenant created again under its name starts afresh.
    pub fn forget(&self, tenant: &str) {
        self.tenants.lock().expect("admission lock").remove(tenant);
        self.anonymous.lock().expect("anonymous lock").retain(|(t, _), _| t != tenant);
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

    #[tokio::test]
    async fn concurrency_queues_then_refuses() {
        let admission = Admission::default();
        let quota = Quota { max_concurrency: 2, rate_per_second: 1000.0, ..Quota::default() };
        let keyed = || admission.charge_invocation("acme", "f", &quota, Caller::Keyed).unwrap();
        let ticket = keyed();
        let wait = Duration::from_millis(20);
        let a = admission.enter("acme", &quota, &ticket, 0, wait).await.unwrap();
        let _b = admission.enter("acme", &quota, &ticket, 0, wait).await.unwrap();
        // No queue: refused at once; a queue whose wait runs out: refused after it.
        let refused = admission.enter("acme", &quota, &ticket, 0, wait).await.err().unwrap();
        assert!(matches!(refused, Error::RateLimited { retry_after: 1, .. }), "{refused}");
        assert!(admission.enter("acme", &quota, &ticket, 4, wait).await.is_err());
        // Another tenant has its own places.
        assert!(admission.enter("other", &quota, &ticket, 0, wait).await.is_ok());
        drop(a);
        assert!(admission.enter("acme", &quota, &ticket, 0, wait).await.is_ok());
    }

    #[test]
    fn anonymous_callers_have_their_own_budget() {
        let admission = Admission::default();
        let quota = Quota { rate_per_second: 2.0, ..Quota::default() };
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let anonymous = |ip| admission.charge_invocation("acme", "f", &quota, Caller::Anonymous(Some(ip)));
        let tickets = [anonymous(ip).unwrap(), anonymous(ip).unwrap()];
        assert!(anonymous(ip).is_err(), "the function's anonymous bucket is empty");
        // The owner's keyed bucket is untouched.
        assert!(admission.charge("acme", &quota).is_ok());
        assert!(admission.charge("acme", &quota).is_ok());
        drop(tickets);
        assert!(admission.clients.lock().unwrap().is_empty(), "the client's places are given back");

        // One client holds at most ANONYMOUS_PER_CLIENT calls in flight.
        let quota = Quota { rate_per_second: 1000.0, ..Quota::default() };
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let held: Vec<Ticket> = (0..ANONYMOUS_PER_CLIENT)
            .map(|_| admission.charge_invocation("acme", "g", &quota, Caller::Anonymous(Some(other))).unwrap())
            .collect();
        assert!(admission.charge_invocation("acme", "g", &quota, Caller::Anonymous(Some(other))).is_err());
        drop(held);
        assert!(admission.charge_invocation("acme", "g", &quota, Caller::Anonymous(Some(other))).is_ok());

        // Addresses of one IPv6 /64 are one client.
        let v6 = |s: &str| Caller::Anonymous(Some(s.parse().unwrap()));
        let held: Vec<Ticket> = (0..ANONYMOUS_PER_CLIENT)
            .map(|i| admission.charge_invocation("acme", "g", &quota, v6(&format!("2001:db8::{i:x}"))).unwrap())
            .collect();
        assert!(admission.charge_invocation("acme", "g", &quota, v6("2001:db8::ffff:1")).is_err());
        assert!(admission.charge_invocation("acme", "g", &quota, v6("2001:db8:0:1::1")).is_ok());
        drop(held);
    }

    #[test]
    fn uploads_are_counted_and_reserve_storage_together() {
        let admission = Admission::default();
        let mut permits: Vec<UploadPermit> =
            (0..UPLOADS_PER_TENANT).map(|_| admission.begin_upload("acme").unwrap()).collect();
        assert!(matches!(admission.begin_upload("acme"), Err(Error::RateLimited { .. })));
        assert!(admission.begin_upload("other").is_ok(), "another tenant has its own places");
        // Two uploads with 100 bytes of room left: together they may not pass it.
        assert_eq!(permits[0].reserve(60, 100), Ok(()));
        assert_eq!(permits[1].reserve(50, 100), Err(60));
        assert_eq!(permits[1].reserve(40, 100), Ok(()));
        assert_eq!(permits[0].reserve(61, 100), Err(40));
        // Done uploads give back their place and their reservation.
        permits.remove(0);
        assert_eq!(permits[0].reserve(100, 100), Ok(()));
        assert!(admission.begin_upload("acme").is_ok());
        drop(permits);
        assert!(admission.uploads.lock().unwrap().get("acme").is_none());
    }

    /// A tenant's requests hold at most BODIES_PER_TENANT × max_request_bytes of bodies in
    /// memory together; each request gives its share back when it is done.
    #[test]
    fn request_bodies_share_a_budget_per_tenant() {
        let admission = Admission::default();
        let quota = Quota { max_request_bytes: 100, ..Quota::default() };
        let mut holds: Vec<BodyHold> = (0..BODIES_PER_TENANT).map(|_| admission.hold_bodies("acme", &quota)).collect();
        for hold in &mut holds {
            hold.grow(100).unwrap();
        }
        let mut one_more = admission.hold_bodies("acme", &quota);
        assert!(matches!(one_more.grow(1), Err(Error::RateLimited { .. })));
        assert!(admission.hold_bodies("other", &quota).grow(100).is_ok(), "another tenant has its own");
        holds.pop();
        assert!(one_more.grow(100).is_ok());
        drop((holds, one_more));
        assert!(admission.bodies.lock().unwrap().values().all(|total| total.load(AtomicOrdering::Relaxed) == 0));
    }
}

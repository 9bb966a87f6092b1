//! The request body as handlers see it: any [`http_body::Body`] of bytes (hyper's, or an
//! in-memory one in tests), boxed, plus a way to get back what a handler left unread.
//!
//! Many refusals (401, 403, 413, 429, quota) are decided before the body is read. Closing the
//! connection on a client that is still sending makes most clients report a broken pipe
//! instead of the answer. So a handler that drops an unfinished body hands it back here, and
//! [`super::handle`] reads and discards a small remainder ([`DRAIN_LIMIT`], briefly) before
//! the answer goes out. A larger one is not read: the connection closes. Neither is the body of
//! a client that sent `Expect: 100-continue` and was never asked to continue: it sends nothing
//! unless told to, and reading would tell it to.
//!
//! A body that stalls fails: nothing for the idle timeout, or, after [`RATE_GRACE`], less than
//! [`MIN_RATE`] bytes per second on average. So a client cannot hold what a request holds
//! while its body is read (a connection, a task, an upload's place) by sending slowly.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};

/// The error of a request body: whatever the transport's was.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed request body of any transport.
type Inner = UnsyncBoxBody<Bytes, BodyError>;

/// Most unread body bytes discarded to let a refused client read its answer.
pub const DRAIN_LIMIT: u64 = 1 << 20;
/// Longest time spent discarding them.
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// The slowest average a body may arrive at, bytes per second, once [`RATE_GRACE`] has passed.
pub const MIN_RATE: u64 = 8 << 10;
/// How long a body may take before [`MIN_RATE`] applies.
pub const RATE_GRACE: Duration = Duration::from_secs(10);

/// A request body that returns itself to its [`Leftover`] when dropped unfinished, and fails
/// when the client stalls.
pub struct RequestBody {
    inner: Option<Inner>,
    polled: bool,
    finished: bool,
    leftover: Leftover,
    idle_timeout: Duration,
    /// Time spent waiting for the client's frames (not the handler's own time between two
    /// reads), and the bytes received.
    waited: Duration,
    received: u64,
    /// When the current wait for a frame began.
    asked: Option<Instant>,
    /// Fires when the client has sent nothing for `idle_timeout`.
    idle: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Why a body read failed on the server's side: the client stalled.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Stalled(String);

/// Where an unfinished [`RequestBody`] goes when dropped, with whether it was ever read.
#[derive(Clone, Default)]
pub struct Leftover(Arc<Mutex<Rest>>);

#[derive(Default)]
struct Rest {
    /// The unread body and whether it was ever polled.
    body: Option<(Inner, bool)>,
    /// A body was given up on (it stalled): the connection cannot carry another request.
    abandoned: bool,
}

impl RequestBody {
    /// Wraps `body`, which fails after `idle_timeout` without data; an unread rest ends up
    /// in `leftover`.
    pub fn new<B>(body: B, leftover: Leftover, idle_timeout: Duration) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BodyError>,
    {
        Self {
            inner: Some(body.map_err(Into::into).boxed_unsync()),
            polled: false,
            finished: false,
            leftover,
            idle_timeout,
            waited: Duration::ZERO,
            received: 0,
            asked: None,
            idle: None,
        }
    }

    fn stall(&mut self, why: String) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // Not worth draining: the client is not sending.
        self.finished = true;
        self.inner = None;
        self.leftover.0.lock().expect("leftover lock").abandoned = true;
        Poll::Ready(Some(Err(Box::new(Stalled(why)))))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        this.polled = true;
        let asked = *this.asked.get_or_insert_with(Instant::now);
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.finished = true,
            Poll::Ready(Some(Ok(frame))) => {
                this.idle = None;
                this.asked = None;
                this.waited += asked.elapsed();
                this.received += frame.data_ref().map_or(0, |d| d.len() as u64);
                let waited = this.waited;
                if waited > RATE_GRACE && this.received < MIN_RATE * waited.as_secs() {
                    let why = format!(
                        "the request body arrived at less than {MIN_RATE} bytes per second ({} bytes in {waited:.0?})",
                        this.received
                    );
                    return this.stall(why);
                }
            }
            Poll::Pending => {
                let timeout = this.idle_timeout;
                let idle = this.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if idle.as_mut().poll(cx).is_ready() {
                    return this.stall(format!("the client sent nothing of the request body for {timeout:?}"));
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(Body::size_hint).unwrap_or_default()
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !self.finished
            && !inner.is_end_stream()
        {
            self.leftover.0.lock().expect("leftover lock").body = Some((inner, self.polled));
        }
    }
}

impl Leftover {
    /// Reads and discards what the handler left unread, when it is small enough and the
    /// client is sending it (`expects_continue`: it waits to be asked). Returns whether the
    /// connection can carry another request: false when part of the body stays unread.
    pub async fn drain(&self, expects_continue: bool) -> bool {
        let (rest, abandoned) = {
            let mut rest = self.0.lock().expect("leftover lock");
            (rest.body.take(), rest.abandoned)
        };
        let Some((body, polled)) = rest else { return !abandoned };
        if expects_continue && !polled {
            // The client sends nothing unless asked, and hyper closes the connection rather
            // than ask it now.
            return false;
        }
        if body.size_hint().lower() > DRAIN_LIMIT {
            return false;
        }
        let mut limited = http_body_util::Limited::new(body, DRAIN_LIMIT as usize);
        let drained = tokio::time::timeout(DRAIN_TIME, async {
            loop {
                match limited.frame().await {
                    Some(Ok(_)) => {}
                    Some(Err(_)) => return false,
                    None => return true,
                }
            }
        })
        .await;
        drained.unwrap_or(false)
    }
}

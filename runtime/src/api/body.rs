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

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

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

/// A request body that returns itself to its [`Leftover`] when dropped unfinished.
pub struct RequestBody {
    inner: Option<Inner>,
    polled: bool,
    finished: bool,
    leftover: Leftover,
}

/// Where an unfinished [`RequestBody`] goes when dropped, with whether it was ever read.
#[derive(Clone, Default)]
pub struct Leftover(Arc<Mutex<Option<(Inner, bool)>>>);

impl RequestBody {
    /// Wraps `body`; an unread rest ends up in `leftover`.
    pub fn new<B>(body: B, leftover: Leftover) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BodyError>,
    {
        Self { inner: Some(body.map_err(Into::into).boxed_unsync()), polled: false, finished: false, leftover }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        this.polled = true;
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finished = true;
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
            *self.leftover.0.lock().expect("leftover lock") = Some((inner, self.polled));
        }
    }
}

impl Leftover {
    /// Reads and discards what the handler left unread, when it is small enough and the
    /// client is sending it (`expects_continue`: it waits to be asked).
    pub async fn drain(&self, expects_continue: bool) {
        let Some((body, polled)) = self.0.lock().expect("leftover lock").take() else { return };
        if body.size_hint().lower() > DRAIN_LIMIT || (expects_continue && !polled) {
            return;
        }
        let mut limited = http_body_util::Limited::new(body, DRAIN_LIMIT as usize);
        let _ = tokio::time::timeout(DRAIN_TIME, async { while let Some(Ok(_)) = limited.frame().await {} }).await;
    }
}

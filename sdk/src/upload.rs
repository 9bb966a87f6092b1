//! Streaming uploads: a file or any [`AsyncRead`] becomes the request body piece by piece,
//! hashed and counted as it goes, so memory stays bounded by one buffer whatever the file's size.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Bytes read from the source per body frame.
const CHUNK: usize = 256 << 10;

/// How long to wait for the server's `100 Continue` before sending the body anyway (for
/// proxies that do not forward it; curl waits one second too).
const CONTINUE_TIMEOUT: Duration = Duration::from_secs(1);

/// Progress callback: `(bytes sent so far, total when known)`.
pub type ProgressFn = Box<dyn FnMut(u64, Option<u64>) + Send>;

/// What to upload: a model's ONNX file or a component's `.wasm`, read as it is sent.
///
/// ```no_run
/// # async fn f(client: maas_sdk::Client) -> maas_sdk::Result<()> {
/// use maas_sdk::Upload;
/// let upload = Upload::file("mlp.onnx").await?.on_progress(|sent, total| {
///     eprintln!("{sent} of {total:?} bytes");
/// });
/// let model = client.upload_model("acme", "mlp", upload).await?;
/// # Ok(()) }
/// ```
pub struct Upload {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    len: Option<u64>,
    progress: Option<ProgressFn>,
    what: String,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload").field("what", &self.what).field("len", &self.len).finish_non_exhaustive()
    }
}

impl Upload {
    /// The file at `path`; its size becomes the `Content-Length`.
    pub async fn file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let context = || format!("opening {}", path.display());
        let file = tokio::fs::File::open(path).await.map_err(|e| Error::io(context(), e))?;
        let meta = file.metadata().await.map_err(|e| Error::io(context(), e))?;
        if !meta.is_file() {
            return Err(Error::io(context(), std::io::Error::other("not a regular file")));
        }
        Ok(Upload { reader: Box::pin(file), len: Some(meta.len()), progress: None, what: path.display().to_string() })
    }

    /// Any reader. With `len`, the body is sent with that `Content-Length` (and the upload fails
    /// if the reader gives another number of bytes); without, it is sent chunked and the server
    /// can only refuse an oversized upload once it has read past its limit.
    pub fn reader(reader: impl AsyncRead + Send + 'static, len: Option<u64>) -> Self {
        Upload { reader: Box::pin(reader), len, progress: None, what: "the upload's reader".into() }
    }

    /// Bytes already in memory (small files, tests).
    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        let len = bytes.len() as u64;
        Upload { reader: Box::pin(std::io::Cursor::new(bytes)), len: Some(len), progress: None, what: "bytes".into() }
    }

    /// Calls `progress(sent, total)` after each piece is handed to the connection.
    pub fn on_progress(mut self, progress: impl FnMut(u64, Option<u64>) + Send + 'static) -> Self {
        self.progress = Some(Box::new(progress));
        self
    }

    /// The size, when known.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Whether the upload is known to be empty.
    pub fn is_empty(&self) -> bool {
        self.len == Some(0)
    }

    /// The body, the shared record of what it sent, and the sender that opens its gate (the
    /// server's `100 Continue`). `stopped` is set by the connection when the server stopped
    /// reading (its answer is on the way): the body then sends nothing more.
    pub(crate) fn into_body(self, stopped: Arc<AtomicBool>) -> (UploadBody, Arc<Mutex<Sent>>, oneshot::Sender<()>) {
        let sent = Arc::new(Mutex::new(Sent::default()));
        let (open, gate) = oneshot::channel();
        let body = UploadBody {
            reader: self.reader,
            declared: self.len,
            progress: self.progress,
            what: self.what,
            buf: vec![0; CHUNK].into_boxed_slice(),
            hasher: Some(Sha256::new()),
            count: 0,
            gate: Some(Gate { continued: gate, timeout: None, answered: false }),
            sent: sent.clone(),
            stopped,
        };
        (body, sent, open)
    }
}

/// What an upload body sent, for the caller to check against the server's answer.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    /// Bytes handed to the connection.
    pub bytes: u64,
    /// The sha256 of everything sent, once the source reached its end.
    pub sha256: Option<String>,
}

/// Holds the body back until the server's `100 Continue` (or [`CONTINUE_TIMEOUT`]), so that
/// a refusal decided from the headers (a quota, a bad key) arrives before any body byte is
/// sent, and the client reads that answer instead of failing on a closed connection.
struct Gate {
    /// Resolves with the `100 Continue`; closes (the sender dropped) when the final answer's
    /// head arrived instead.
    continued: oneshot::Receiver<()>,
    timeout: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The final answer came first: the body must never be sent.
    answered: bool,
}

impl Gate {
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.answered {
            return Poll::Pending;
        }
        match Pin::new(&mut self.continued).poll(cx) {
            Poll::Ready(Ok(())) => return Poll::Ready(()),
            Poll::Ready(Err(_)) => {
                // Nothing wakes this body again; the connection drops it once it closes.
                self.answered = true;
                return Poll::Pending;
            }
            Poll::Pending => {}
        }
        // The clock starts when hyper first asks for the body: the request head is on its way.
        let timeout = self.timeout.get_or_insert_with(|| Box::pin(tokio::time::sleep(CONTINUE_TIMEOUT)));
        timeout.as_mut().poll(cx)
    }
}

/// The request body of an upload: reads the source, hashes and counts what it hands on.
pub(crate) struct UploadBody {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    declared: Option<u64>,
    progress: Option<ProgressFn>,
    what: String,
    buf: Box<[u8]>,
    /// `None` once the end was reached.
    hasher: Option<Sha256>,
    count: u64,
    gate: Option<Gate>,
    sent: Arc<Mutex<Sent>>,
    stopped: Arc<AtomicBool>,
}

impl UploadBody {
    fn fail(&mut self, message: String) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        self.hasher = None;
        Poll::Ready(Some(Err(std::io::Error::other(message))))
    }

    /// Records the digest of everything sent and ends the body.
    fn finish(&mut self) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        if let Some(hasher) = self.hasher.take() {
            self.sent.lock().unwrap_or_else(|e| e.into_inner()).sha256 = Some(hex::encode(hasher.finalize()));
        }
        Poll::Ready(None)
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        if let Some(gate) = &mut this.gate {
            ready!(gate.poll_open(cx));
            this.gate = None;
        }
        if this.stopped.load(Ordering::Relaxed) {
            // The server stopped reading and its answer is on the way; nothing wakes this body
            // again, the connection drops it.
            return Poll::Pending;
        }
        if this.hasher.is_none() {
            return Poll::Ready(None);
        }
        if this.declared == Some(this.count) {
            return this.finish(); // an empty upload
        }
        let to_read = match this.declared {
            Some(declared) => this.buf.len().min((declared - this.count) as usize),
            None => this.buf.len(),
        };
        let mut buf = ReadBuf::new(&mut this.buf[..to_read]);
        if let Err(e) = ready!(this.reader.as_mut().poll_read(cx, &mut buf)) {
            let message = format!("reading {}: {e}", this.what);
            return this.fail(message);
        }
        let n = buf.filled().len() as u64;
        if n == 0 {
            if let Some(declared) = this.declared {
                let message = format!(
                    "{} ended after {} bytes, {declared} were announced (did it change?)",
                    this.what, this.count
                );
                return this.fail(message);
            }
            return this.finish();
        }
        let data = Bytes::copy_from_slice(buf.filled());
        this.hasher.as_mut().expect("checked above").update(&data);
        this.count += n;
        this.sent.lock().unwrap_or_else(|e| e.into_inner()).bytes = this.count;
        if let Some(progress) = &mut this.progress {
            progress(this.count, this.declared);
        }
        // With a declared size, the body ends at that size: the connection does not ask again
        // once `Content-Length` bytes are out, so the digest is taken with the last piece.
        if this.declared == Some(this.count) {
            let _ = this.finish();
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.hasher.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.count)),
            None => SizeHint::default(),
        }
    }
}

/// The upload's TCP stream. When the server stops reading (it answered early: a quota hit
/// mid-stream) writes fail with a broken pipe or a reset; this stream then tells the body to
/// stop ([`UploadBody`] goes quiet) and reports further writes as done, so that hyper goes on
/// reading the answer the server sent instead of failing the request on the write error.
pub(crate) struct UploadStream {
    inner: tokio::net::TcpStream,
    stopped: Arc<AtomicBool>,
}

impl UploadStream {
    pub(crate) fn new(inner: tokio::net::TcpStream, stopped: Arc<AtomicBool>) -> Self {
        UploadStream { inner, stopped }
    }

    /// Turns "the server closed its side" into success (remembering it), passes the rest on.
    fn tolerate<T>(&self, result: Poll<std::io::Result<T>>, done: T) -> Poll<std::io::Result<T>> {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
        match result {
            Poll::Ready(Err(e)) if matches!(e.kind(), BrokenPipe | ConnectionReset | ConnectionAborted) => {
                self.stopped.store(true, Ordering::Relaxed);
                Poll::Ready(Ok(done))
            }
            other => other,
        }
    }
}

impl AsyncRead for UploadStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for UploadStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.stopped.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.tolerate(result, buf.len())
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let len = bufs.iter().map(|b| b.len()).sum();
        if this.stopped.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(len));
        }
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.tolerate(result, len)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.stopped.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.tolerate(result, ())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.tolerate(result, ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn hashes_counts_and_reports_progress() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| i as u8).collect();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let upload =
            Upload::bytes(data.clone()).on_progress(move |sent, total| seen2.lock().unwrap().push((sent, total)));
        let (body, sent, open) = upload.into_body(Arc::default());
        open.send(()).unwrap();
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(collected, data);
        let sent = sent.lock().unwrap();
        assert_eq!(sent.bytes, data.len() as u64);
        assert_eq!(sent.sha256.as_deref(), Some(hex::encode(Sha256::digest(&data)).as_str()));
        let total = Some(data.len() as u64);
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(CHUNK as u64, total), (2 * CHUNK as u64, total), (data.len() as u64, total)]
        );
    }

    #[tokio::test]
    async fn a_short_reader_fails() {
        let (body, sent, open) = Upload::reader(&b"abc"[..], Some(5)).into_body(Arc::default());
        open.send(()).unwrap();
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("ended after 3 bytes, 5 were announced"), "{err}");
        assert_eq!(sent.lock().unwrap().sha256, None);
    }

    #[tokio::test]
    async fn the_gate_opens_after_the_timeout() {
        let (body, _sent, _open) = Upload::bytes(&b"xyz"[..]).into_body(Arc::default());
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"xyz");
    }

    #[tokio::test]
    async fn a_final_answer_keeps_the_body_back() {
        let (body, sent, open) = Upload::bytes(&b"xyz"[..]).into_body(Arc::default());
        drop(open);
        let outcome = tokio::time::timeout(CONTINUE_TIMEOUT * 2, body.collect()).await;
        assert!(outcome.is_err(), "the body must stay pending");
        assert_eq!(sent.lock().unwrap().bytes, 0);
    }

    #[tokio::test]
    async fn an_unknown_size_ends_at_eof() {
        let (body, sent, open) = Upload::reader(&b"abcdef"[..], None).into_body(Arc::default());
        open.send(()).unwrap();
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"abcdef");
        assert_eq!(sent.lock().unwrap().sha256.as_deref(), Some(hex::encode(Sha256::digest(b"abcdef")).as_str()));
    }
}

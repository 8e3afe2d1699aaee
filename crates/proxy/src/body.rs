//! The body types that cross the proxy: [`RequestBody`] (a client's body on its way to a target)
//! and [`ResponseBody`] (a target's body, or a generated one, on its way to the client).
//!
//! Both stream frame by frame — data and trailers alike — without buffering: backpressure is
//! hyper's (HTTP/1.1 reads only what the other side takes, HTTP/2 flow-control windows bound what
//! is in flight). The wrappers exist for what has to happen at the end of a body: a pooled
//! HTTP/1.1 connection goes back to the pool once the target's response is fully read, the
//! target's in-flight count drops, and the client connection's active-request count drops (its
//! idle timer starts only when no response is streaming).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Instant;
use trellis_health::InFlight;

use crate::conn::ActiveRequest;
use crate::error::BodyFault;
use crate::upstream::Pooled;

/// A client's request body on its way to a target. When the upload is being watched (see
/// [`Progress`]), every frame records the time it passed, and a failure of the client's body
/// is recorded so that the request's failure is blamed on the client, not the target.
pub struct RequestBody {
    inner: Incoming,
    progress: Option<Arc<Progress>>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, progress: Option<Arc<Progress>>) -> RequestBody {
        RequestBody { inner, progress }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(progress) = &this.progress {
            progress.mark();
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
                && let Some(data) = data
            {
                progress
                    .bytes
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            if let Some(Err(error)) = &frame {
                tracing::debug!(%error, "client request body failed");
                progress.fail(BodyFault::of(error));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// When a request body last moved towards the target, and whether it failed. The response
/// timeout counts from the last movement, so a long upload to a target that answers only after
/// reading all of it is not cut off while bytes still flow. Only requests with a body pay for it
/// (one small allocation).
#[derive(Debug)]
pub(crate) struct Progress {
    base: Instant,
    /// Nanoseconds since `base` of the latest frame.
    last: AtomicU64,
    /// How the client's body failed: 0 while it has not, else [`Progress::FAULTS`]'s index + 1.
    fault: AtomicU8,
    /// Body bytes that passed (the access log's `bytesReceived`).
    bytes: AtomicU64,
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            base: Instant::now(),
            last: AtomicU64::new(0),
            fault: AtomicU8::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    const FAULTS: [BodyFault; 2] = [BodyFault::Malformed, BodyFault::BrokenOff];

    fn fail(&self, fault: BodyFault) {
        let code = Self::FAULTS.iter().position(|f| *f == fault).unwrap_or(0) as u8 + 1;
        self.fault.store(code, Ordering::Release);
    }

    /// How the client's body failed, if it did. Set before the failure reaches the exchange
    /// with the target, so whoever sees that exchange fail sees this too.
    pub(crate) fn fault(&self) -> Option<BodyFault> {
        let code = self.fault.load(Ordering::Acquire);
        code.checked_sub(1)
            .and_then(|i| Self::FAULTS.get(usize::from(i)).copied())
    }

    fn mark(&self) {
        let since = Instant::now().saturating_duration_since(self.base);
        self.last.store(
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Body bytes that passed so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The instant of the latest frame (the creation time when none passed yet).
    pub(crate) fn last(&self) -> Instant {
        self.base + std::time::Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

/// The body of a response to a client.
pub struct ResponseBody {
    kind: Kind,
    /// Keeps the client connection's request active until the body is done (or dropped).
    active: Option<ActiveRequest>,
    /// The request's access-log record, completed and delivered when the body is dropped (its
    /// last byte was handed to the connection, or the client went away).
    log: Option<Box<crate::access_log::Pending>>,
}

enum Kind {
    /// Generated bodies: errors, fixed responses.
    Full(Option<Bytes>),
    /// A target's response body.
    Upstream(UpstreamBody),
}

impl ResponseBody {
    /// A generated body (empty when `bytes` is).
    pub(crate) fn text(bytes: Bytes) -> ResponseBody {
        let kind = Kind::Full((!bytes.is_empty()).then_some(bytes));
        ResponseBody {
            kind,
            active: None,
            log: None,
        }
    }

    pub(crate) fn empty() -> ResponseBody {
        ResponseBody {
            kind: Kind::Full(None),
            active: None,
            log: None,
        }
    }

    /// A target's body; `pooled` is its HTTP/1.1 connection, returned to the pool once the body
    /// has been read to the end; `in_flight` counts the request against the target until then.
    pub(crate) fn upstream(
        inner: Incoming,
        pooled: Option<Pooled>,
        in_flight: InFlight,
    ) -> ResponseBody {
        let mut body = UpstreamBody {
            inner,
            pooled,
            _in_flight: in_flight,
        };
        // A response without a body (204, 304, HEAD, `content-length: 0`) is complete already:
        // the connection can serve the next request at once.
        if body.inner.is_end_stream() {
            body.release();
        }
        ResponseBody {
            kind: Kind::Upstream(body),
            active: None,
            log: None,
        }
    }

    /// Ties the client request's activity to this body's lifetime.
    pub(crate) fn hold(&mut self, active: ActiveRequest) {
        self.active = Some(active);
    }

    /// Counts the body's bytes into `log`, which delivers the record when the body is dropped.
    pub(crate) fn log_on_end(&mut self, log: crate::access_log::Pending) {
        self.log = Some(Box::new(log));
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => body.poll_frame(cx),
        };
        if let (Some(log), Poll::Ready(Some(Ok(frame)))) = (&mut this.log, &frame) {
            if let Some(data) = frame.data_ref() {
                log.sent(data.len());
            } else if let Some(trailers) = frame.trailers_ref() {
                log.trailers(trailers);
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(body) => body.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(body) => body.inner.size_hint(),
        }
    }
}

struct UpstreamBody {
    inner: Incoming,
    pooled: Option<Pooled>,
    _in_flight: InFlight,
}

impl UpstreamBody {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            // The end, or the last frame of a body whose length is known: the connection is
            // free for the next request.
            None => self.release(),
            Some(Ok(_)) if self.inner.is_end_stream() => self.release(),
            Some(Ok(_)) => {}
            // A broken body leaves the connection in an unknown state: it is not reused.
            Some(Err(_)) => self.pooled = None,
        }
        Poll::Ready(frame)
    }

    fn release(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            pooled.checkin();
        }
    }
}

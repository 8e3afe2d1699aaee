//! The one response body type: a closed enum instead of a boxed trait object, so the static
//! and echo responses cost no allocation beyond their bytes.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// Filler for `?bytes=N` bodies, sent in slices of at most this size.
static FILL: [u8; 64 * 1024] = [b'x'; 64 * 1024];

#[derive(Debug)]
pub enum Body {
    /// One chunk, or nothing.
    Full(Option<Bytes>),
    /// This many filler bytes, streamed in 64 KiB frames.
    Repeat(u64),
    /// Prepared frames, trailers included (gRPC responses).
    Frames(VecDeque<Frame<Bytes>>),
    /// Chunks produced by a task as they become ready (slow streams); ends when the sender drops.
    Channel(mpsc::Receiver<Bytes>),
}

impl Body {
    pub fn empty() -> Body {
        Body::Full(None)
    }

    pub fn full(bytes: impl Into<Bytes>) -> Body {
        Body::Full(Some(bytes.into()))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            Body::Full(bytes) => bytes.take().map(Frame::data),
            Body::Repeat(remaining) => {
                if *remaining == 0 {
                    None
                } else {
                    let n = (*remaining).min(FILL.len() as u64) as usize;
                    *remaining -= n as u64;
                    Some(Frame::data(Bytes::from_static(&FILL[..n])))
                }
            }
            Body::Frames(frames) => frames.pop_front(),
            Body::Channel(rx) => match rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(chunk) => chunk.map(Frame::data),
            },
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Repeat(remaining) => *remaining == 0,
            Body::Frames(frames) => frames.is_empty(),
            Body::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Repeat(remaining) => SizeHint::with_exact(*remaining),
            // Unknown length: gRPC frames end in trailers, slow streams are open-ended.
            Body::Frames(_) | Body::Channel(_) => SizeHint::default(),
        }
    }
}

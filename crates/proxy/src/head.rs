//! The header-read deadline: a request head (or HTTP/2's connection preface and first SETTINGS
//! frame) must be complete within the header-read timeout of its first byte.
//!
//! hyper's own `header_read_timeout` cannot be used: it runs whenever hyper waits for a head,
//! including the wait between keep-alive requests, so it would close idle HTTP/1.1 connections
//! long before the (Lattice) idle timeout. This clock starts at the first byte of a head
//! instead, as Envoy's `request_headers_timeout` and Go's `ReadHeaderTimeout` do: [`Watched`]
//! sees every byte read from the client and starts the [`HeadClock`] when bytes arrive while no
//! request is active; the request reaching the pipeline stops it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::conn::ConnCtx;

/// HTTP/2's client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The preface and the header of the frame after it (RFC 9113 §4.1).
const PREFACE_AND_FRAME_HEADER: usize = 24 + 9;

/// When the pending request head started, if one is pending.
pub(crate) struct HeadClock {
    base: Instant,
    /// Nanoseconds after `base`, plus one, at which the pending head started; 0 when none is.
    since: AtomicU64,
    started: Notify,
}

impl HeadClock {
    pub(crate) fn new() -> HeadClock {
        HeadClock {
            base: Instant::now(),
            since: AtomicU64::new(0),
            started: Notify::new(),
        }
    }

    /// Starts the clock unless a head is already pending.
    pub(crate) fn start(&self) {
        if self.since.load(Ordering::Acquire) != 0 {
            return;
        }
        let nanos = Instant::now()
            .saturating_duration_since(self.base)
            .as_nanos();
        let since = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.since.store(since, Ordering::Release);
        // `notify_one` keeps a permit when nobody waits yet, so the start is never missed.
        self.started.notify_one();
    }

    /// The pending head is complete.
    pub(crate) fn stop(&self) {
        self.since.store(0, Ordering::Release);
    }

    /// Completes when a head has been pending for `limit`.
    pub(crate) async fn expired(&self, limit: Duration) {
        loop {
            let since = self.since.load(Ordering::Acquire);
            if since == 0 {
                self.started.notified().await;
                continue;
            }
            tokio::time::sleep_until(self.base + Duration::from_nanos(since - 1) + limit).await;
            if self.since.load(Ordering::Acquire) == since {
                return;
            }
        }
    }
}

/// What the bytes read so far say about the connection's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// Clear text, protocol not known yet: `matched` bytes of the HTTP/2 preface seen so far.
    Detect { matched: usize },
    /// HTTP/1.x: bytes read while no request is active begin a request head.
    Http1,
    /// HTTP/2 before the client's first SETTINGS frame is complete: `seen` bytes read so far,
    /// `frame_header` the first frame's header as far as it was read.
    Preface { seen: usize, frame_header: [u8; 9] },
    /// HTTP/2 after the first SETTINGS frame: reads never start the clock (requests are streams
    /// the idle timer and hyper's stream limits bound).
    Http2,
}

impl Scan {
    pub(crate) fn http2() -> Scan {
        Scan::Preface {
            seen: 0,
            frame_header: [0; 9],
        }
    }

    /// Advances over `bytes`; returns whether the HTTP/2 preface and first frame just ended.
    fn advance(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match self {
                Scan::Detect { matched } => {
                    let want = &H2_PREFACE[*matched..];
                    let n = want.len().min(bytes.len());
                    if bytes[..n] != want[..n] {
                        *self = Scan::Http1;
                        return false;
                    }
                    *matched += n;
                    bytes = &bytes[n..];
                    if *matched == H2_PREFACE.len() {
                        *self = Scan::Preface {
                            seen: H2_PREFACE.len(),
                            frame_header: [0; 9],
                        };
                    }
                }
                Scan::Preface { seen, frame_header } => {
                    // Bytes of the preface and the frame header are looked at; the rest of the
                    // frame is only counted. hyper's HTTP/2 server validates all of it.
                    if *seen < PREFACE_AND_FRAME_HEADER {
                        let n = (PREFACE_AND_FRAME_HEADER - *seen).min(bytes.len());
                        for (i, byte) in bytes[..n].iter().enumerate() {
                            if let Some(slot) = (*seen + i)
                                .checked_sub(H2_PREFACE.len())
                                .and_then(|at| frame_header.get_mut(at))
                            {
                                *slot = *byte;
                            }
                        }
                        *seen += n;
                        bytes = &bytes[n..];
                        continue;
                    }
                    let length = usize::from(frame_header[0]) << 16
                        | usize::from(frame_header[1]) << 8
                        | usize::from(frame_header[2]);
                    let end = PREFACE_AND_FRAME_HEADER + length;
                    let n = end.saturating_sub(*seen).min(bytes.len());
                    *seen += n;
                    if *seen >= end {
                        *self = Scan::Http2;
                        return true;
                    }
                    return false;
                }
                Scan::Http1 | Scan::Http2 => return false,
            }
        }
        // A frame with an empty payload ends with its header.
        if let Scan::Preface { seen, frame_header } = *self
            && seen == PREFACE_AND_FRAME_HEADER
            && frame_header[..3] == [0, 0, 0]
        {
            *self = Scan::Http2;
            return true;
        }
        false
    }
}

/// A client connection's byte stream, watched for the start and end of request heads.
pub(crate) struct Watched<S> {
    inner: S,
    ctx: Arc<ConnCtx>,
    scan: Scan,
}

impl<S> Watched<S> {
    /// Wraps `inner`; the first request's (or the preface's) clock starts now.
    pub(crate) fn new(inner: S, ctx: Arc<ConnCtx>, scan: Scan) -> Watched<S> {
        ctx.head.start();
        Watched { inner, ctx, scan }
    }

    fn saw(&mut self, bytes: &[u8]) {
        match self.scan {
            Scan::Http2 => {}
            Scan::Http1 | Scan::Detect { .. } => {
                if !self.ctx.has_active_request() {
                    self.ctx.head.start();
                }
                if self.scan.advance(bytes) {
                    self.ctx.head.stop();
                }
            }
            Scan::Preface { .. } => {
                if self.scan.advance(bytes) {
                    self.ctx.head.stop();
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && buf.filled().len() > before
        {
            this.saw(&buf.filled()[before..]);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one by one; returns the chunk index at which the preface ended, if it did,
    /// and the final scan.
    fn feed(mut scan: Scan, chunks: &[&[u8]]) -> (Option<usize>, Scan) {
        let mut ended = None;
        for (i, chunk) in chunks.iter().enumerate() {
            if scan.advance(chunk) && ended.is_none() {
                ended = Some(i);
            }
        }
        (ended, scan)
    }

    #[test]
    fn scan_table() {
        let settings_6 = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";
        let settings_0 = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
        let detect = Scan::Detect { matched: 0 };
        let whole: Vec<u8> = [&H2_PREFACE[..], &settings_6[..]].concat();
        /// (start, chunks, chunk index where the preface ends, final scan)
        type Case<'a> = (Scan, Vec<&'a [u8]>, Option<usize>, Scan);
        let cases: Vec<Case> = vec![
            (detect, vec![b"GET / HTTP/1.1\r\n"], None, Scan::Http1),
            (detect, vec![b"P"], None, Scan::Detect { matched: 1 }),
            (detect, vec![b"P", b"OST"], None, Scan::Http1),
            (detect, vec![&whole], Some(0), Scan::Http2),
            (
                detect,
                vec![
                    &H2_PREFACE[..10],
                    &H2_PREFACE[10..],
                    &settings_6[..4],
                    &settings_6[4..],
                ],
                Some(3),
                Scan::Http2,
            ),
            (
                detect,
                vec![&H2_PREFACE[..], &settings_6[..14]],
                None,
                Scan::Preface {
                    seen: 38,
                    frame_header: *b"\x00\x00\x06\x04\x00\x00\x00\x00\x00",
                },
            ),
            (
                detect,
                vec![&H2_PREFACE[..], settings_0],
                Some(1),
                Scan::Http2,
            ),
            (
                Scan::http2(),
                vec![&whole[..20], &whole[20..]],
                Some(1),
                Scan::Http2,
            ),
            (Scan::Http1, vec![&whole], None, Scan::Http1),
        ];
        for (start, chunks, ended, scan) in cases {
            assert_eq!(feed(start, &chunks), (ended, scan), "{start:?} {chunks:?}");
        }
    }
}

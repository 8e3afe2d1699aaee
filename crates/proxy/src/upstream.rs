//! Connections to targets: a pool of HTTP/1.1 and HTTP/2 connections per target address, and one
//! exchange (request out, response head back) over it.
//!
//! The pool is Trellis's own rather than hyper-util's legacy `Client`, for three reasons:
//!
//! * **Retry before the first byte.** A request whose connection fails before any byte of it was
//!   written is retried on another target. The legacy client takes ownership of the request and
//!   does not hand it back when connecting fails, and its streamed body cannot be cloned; here
//!   connecting happens before the request is handed over, and hyper's `try_send_request` returns
//!   the request when a connection closes before writing it.
//! * **Targets are addresses.** The pool is keyed by socket address, protocol and TLS, so no URI
//!   is built or resolved to choose a connection, and HTTP/1.1 ⇄ HTTP/2 shaping of the request
//!   depends on the connection actually obtained (ALPN may settle on another protocol than the
//!   target group asked for).
//! * **No hidden tasks per request.** The legacy client spawns a task to return a connection that
//!   is not ready yet; here a connection returns to the pool when its response body ends, from
//!   the body itself ([`crate::body::ResponseBody`]).
//!
//! HTTP/1.1 connections are exclusive: one request at a time, idle ones kept in a LIFO stack (the
//! most recently used one is the least likely to have been closed by the target). HTTP/2
//! connections are shared: one per key, multiplexing every request. The pool's lock is a plain
//! mutex held for a few pointer moves, never across an `.await`; a background sweeper drops
//! connections idle for longer than [`POOL_IDLE_TIMEOUT`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use trellis_telemetry::lattice::TargetGroupSeries;

use crate::body::{Progress, RequestBody};
use crate::error::ProxyError;

/// How long connecting to a target (TCP and, for HTTPS, the TLS handshake) may take. A dead
/// address would otherwise hold the request for the kernel's SYN retries (about two minutes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pooled connections unused for this long are closed. Shorter than the keep-alive timeout of
/// most servers' defaults (nginx 75 s, Go 90 s), so the pool usually closes first and a request
/// rarely meets a connection the target is closing.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle HTTP/1.1 connections kept per target; past it the oldest is closed.
pub const MAX_IDLE_PER_TARGET: usize = 256;

/// Pooled connections a request tries (each found closed before the request was written)
/// before it opens a new one.
const MAX_STALE_PER_REQUEST: usize = 3;

/// How often the sweeper looks for expired idle connections.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// What a pooled connection is for: one target address, clear text or TLS, and whether the
/// target group speaks HTTP/2 (h2c prior knowledge, or ALPN `h2` over TLS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub addr: SocketAddr,
    pub tls: bool,
    pub h2: bool,
}

/// A connection to a target.
enum Conn {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

#[derive(Default)]
struct Slot {
    /// The shared HTTP/2 connection, if one is open.
    h2: Option<http2::SendRequest<RequestBody>>,
    /// Idle HTTP/1.1 connections, most recently used last.
    idle: Vec<Idle>,
    /// Set while a request opens this key's HTTP/2 connection; its sender is held by that
    /// request and dropped when it is done (or cancelled).
    connecting: Option<watch::Receiver<()>>,
}

/// What the pool offers a request.
enum Checkout {
    Pooled(Conn),
    /// Another request is opening the shared HTTP/2 connection: wait for it.
    Wait(watch::Receiver<()>),
    /// Open a connection; for HTTP/2 keys, with the claim that makes others wait.
    Connect(Option<watch::Sender<()>>),
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// The upstream side of the proxy: the pool, and how to make new connections.
pub(crate) struct Upstreams {
    pool: Mutex<HashMap<Key, Slot>>,
    tls_h1: TlsConnector,
    tls_h2: TlsConnector,
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
    /// Connections opened (for tests and, later, metrics).
    connects: AtomicU64,
}

/// An HTTP/1.1 connection lent to one exchange, returned to the pool by [`Pooled::checkin`] once
/// the response body has been read; dropped instead (and so closed) if the exchange broke.
pub(crate) struct Pooled {
    upstreams: Weak<Upstreams>,
    key: Key,
    sender: http1::SendRequest<RequestBody>,
}

impl Pooled {
    pub(crate) fn checkin(self) {
        if let Some(upstreams) = self.upstreams.upgrade() {
            upstreams.checkin(self.key, self.sender);
        }
    }
}

/// A failed exchange: either nothing of the request reached the target (the request is handed
/// back and may go to another target), or the target may have seen some of it.
pub(crate) enum Failure {
    /// The request is boxed so the common `Ok` path does not carry a large error type around;
    /// the allocation happens only when a connection failed.
    NotSent(ProxyError, Box<Request<RequestBody>>),
    Failed(ProxyError),
}

/// A response head from a target, and its HTTP/1.1 connection to return to the pool once the
/// body is read (HTTP/2 connections stay in the pool, shared).
pub(crate) type Exchange = (Response<Incoming>, Option<Pooled>);

impl Upstreams {
    pub(crate) fn new() -> Arc<Upstreams> {
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            // Large enough windows that one stream can fill a fast link; hyper's defaults
            // (64 KiB, the protocol's initial window) throttle bulk transfers on any latency.
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20)
            // A target that stops answering pings within 20 s is dead; requests waiting on
            // the connection then fail instead of hanging.
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20));
        Arc::new(Upstreams {
            pool: Mutex::new(HashMap::new()),
            tls_h1: TlsConnector::from(trellis_tls::insecure_client_config(vec![
                trellis_tls::ALPN_HTTP_1_1.to_vec(),
            ])),
            tls_h2: TlsConnector::from(trellis_tls::insecure_client_config(vec![
                trellis_tls::ALPN_H2.to_vec(),
            ])),
            h1: http1::Builder::new(),
            h2,
            connects: AtomicU64::new(0),
        })
    }

    pub(crate) fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }

    /// Starts the task that closes expired idle connections; it ends when the pool is dropped.
    pub(crate) fn spawn_sweeper(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(upstreams) = weak.upgrade() else {
                    return;
                };
                upstreams.sweep(Instant::now());
            }
        });
    }

    fn sweep(&self, now: Instant) {
        // The connections are dropped after the lock is released: dropping a sender can wake
        // its connection task, which needs no lock but has no reason to wait for ours.
        let mut expired = Vec::new();
        {
            let mut pool = self.lock();
            pool.retain(|_, slot| {
                if slot.h2.as_ref().is_some_and(|h2| h2.is_closed()) {
                    slot.h2 = None;
                }
                let (keep, gone): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut slot.idle)
                    .into_iter()
                    .partition(|idle| idle.usable(now));
                slot.idle = keep;
                expired.extend(gone);
                if slot
                    .connecting
                    .as_ref()
                    .is_some_and(|c| c.has_changed().is_err())
                {
                    slot.connecting = None;
                }
                slot.h2.is_some() || !slot.idle.is_empty() || slot.connecting.is_some()
            });
        }
        drop(expired);
    }

    /// Sends `req` to the target of `key` and waits for the response head.
    ///
    /// The response head must arrive within `timeout` of the request being handed over or, while
    /// the request body is still moving (`progress`), of its latest frame. A pooled connection
    /// found closed before the request was written is replaced by another one to the same target;
    /// a new connection that fails before writing hands the request back ([`Failure::NotSent`]).
    pub(crate) async fn send(
        self: &Arc<Self>,
        key: Key,
        mut req: Request<RequestBody>,
        timeout: Duration,
        progress: Option<&Progress>,
        series: Option<&TargetGroupSeries>,
    ) -> Result<Exchange, Failure> {
        let scheme = if key.tls { Scheme::HTTPS } else { Scheme::HTTP };
        // Pooled connections found closed before the request was written, each replaced by
        // the next; after a few, a new connection is opened instead of searching further.
        let mut stale = 0;
        // Whether this request already waited for another request's HTTP/2 connect; it waits
        // once at most, so a target that fails to connect costs each request one attempt.
        let mut waited = false;
        loop {
            let checkout = if stale < MAX_STALE_PER_REQUEST {
                self.checkout(key, !waited)
            } else {
                Checkout::Connect(None)
            };
            let (conn, reused) = match checkout {
                Checkout::Pooled(conn) => (conn, true),
                Checkout::Wait(mut connecting) => {
                    // Ends when the connecting request stored its connection, failed, or was
                    // cancelled: the sender is dropped in every case.
                    let _ = connecting.changed().await;
                    waited = true;
                    continue;
                }
                Checkout::Connect(claim) => {
                    // Boxed: connecting (TCP, TLS, an HTTP/2 handshake) is a ~7.5 KB future, and
                    // inline it would make every request's future that large. Each request's
                    // future is moved several times (into its HTTP/2 stream task, into hyper's
                    // HTTP/1.1 dispatcher), so its size costs a memcpy per move on every request,
                    // while a connect is rare; see docs/benchmarks.md, "HTTP/2 profile".
                    let connected = Box::pin(self.connect(key)).await;
                    drop(claim);
                    match connected {
                        Ok(conn) => {
                            if let Some(series) = series {
                                series.connection_opened(matches!(conn, Conn::H2(_)));
                            }
                            (conn, false)
                        }
                        Err(error) => return Err(Failure::NotSent(error, Box::new(req))),
                    }
                }
            };
            let h2 = matches!(conn, Conn::H2(_));
            let (sent, h1_sender) = match conn {
                Conn::H1(mut sender) => {
                    shape_for_http1(&mut req);
                    let sent = within(sender.try_send_request(req), timeout, progress).await;
                    (sent, Some(sender))
                }
                Conn::H2(mut sender) => {
                    shape_for_http2(&mut req, &scheme);
                    (
                        within(sender.try_send_request(req), timeout, progress).await,
                        None,
                    )
                }
            };
            let mut error = match sent {
                None => return Err(Failure::Failed(timeout_error(key, timeout))),
                Some(Ok(response)) => {
                    let pooled = h1_sender.map(|sender| Pooled {
                        upstreams: Arc::downgrade(self),
                        key,
                        sender,
                    });
                    return Ok((response, pooled));
                }
                Some(Err(error)) => error,
            };
            if h2 {
                self.forget_closed_h2(key);
            }
            match error.take_message() {
                // A pooled connection the target had closed: try the next one.
                Some(back) if reused => {
                    stale += 1;
                    req = back;
                }
                Some(back) => {
                    let source = error.into_error();
                    let error = ProxyError::NotSent {
                        addr: key.addr,
                        source,
                    };
                    return Err(Failure::NotSent(error, Box::new(back)));
                }
                None => return Err(Failure::Failed(upstream_error(key, error.into_error()))),
            }
        }
    }

    /// A pooled connection for `key`: the shared HTTP/2 one, or the most recently used ready
    /// HTTP/1.1 one. Closed and expired connections met on the way are dropped.
    ///
    /// Without one, the caller connects. For HTTP/2 keys only one request connects at a time
    /// (the others `Wait` for its connection, when `may_wait`): otherwise a burst of requests to a
    /// new target would open one connection each, where one multiplexed connection serves all.
    fn checkout(&self, key: Key, may_wait: bool) -> Checkout {
        let now = Instant::now();
        let mut pool = self.lock();
        let Some(slot) = pool.get_mut(&key) else {
            return self.claim(&mut pool, key, may_wait);
        };
        if let Some(h2) = &slot.h2 {
            if h2.is_ready() {
                return Checkout::Pooled(Conn::H2(h2.clone()));
            }
            slot.h2 = None;
        }
        // Most recently used first. Closed and expired connections are dropped. One that is
        // open but not ready is still finishing its previous exchange: its response body was
        // read to the end (that is when it came back) but its connection task has not run since
        // to take the next request, or the target answered before reading the whole request.
        // It is skipped and stays pooled: dropping it would close a healthy connection and make
        // the next request open a new one, which under load churns connections.
        let mut i = slot.idle.len();
        while i > 0 {
            i -= 1;
            let idle = &slot.idle[i];
            if !idle.usable(now) {
                slot.idle.remove(i);
            } else if idle.sender.is_ready() {
                return Checkout::Pooled(Conn::H1(slot.idle.remove(i).sender));
            }
        }
        self.claim(&mut pool, key, may_wait)
    }

    /// Decides who connects when the pool has nothing for `key`.
    fn claim(&self, pool: &mut HashMap<Key, Slot>, key: Key, may_wait: bool) -> Checkout {
        if !key.h2 {
            return Checkout::Connect(None);
        }
        let slot = pool.entry(key).or_default();
        if let Some(connecting) = &slot.connecting
            && connecting.has_changed().is_ok()
        {
            // Someone is connecting (its sender is alive).
            return if may_wait {
                Checkout::Wait(connecting.clone())
            } else {
                Checkout::Connect(None)
            };
        }
        let (claim, connecting) = watch::channel(());
        slot.connecting = Some(connecting);
        Checkout::Connect(Some(claim))
    }

    fn checkin(&self, key: Key, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let evicted = {
            let mut pool = self.lock();
            let slot = pool.entry(key).or_default();
            slot.idle.push(Idle {
                sender,
                since: Instant::now(),
            });
            (slot.idle.len() > MAX_IDLE_PER_TARGET).then(|| slot.idle.remove(0))
        };
        drop(evicted);
    }

    fn forget_closed_h2(&self, key: Key) {
        let mut pool = self.lock();
        if let Some(slot) = pool.get_mut(&key)
            && slot.h2.as_ref().is_some_and(|h2| !h2.is_ready())
        {
            slot.h2 = None;
        }
    }

    /// Opens a connection to the target: TCP, TLS for HTTPS groups (certificates are not
    /// verified, as Lattice does not verify targets), then the HTTP/1.1 or HTTP/2 handshake. A new
    /// HTTP/2 connection becomes the key's shared one.
    async fn connect(&self, key: Key) -> Result<Conn, ProxyError> {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let addr = key.addr;
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(ProxyError::Connect { addr, source }),
            Err(_) => {
                return Err(ProxyError::Connect {
                    addr,
                    source: std::io::ErrorKind::TimedOut.into(),
                });
            }
        };
        // Requests and responses are written whole by hyper; Nagle would only add latency.
        let _ = tcp.set_nodelay(true);
        if !key.tls {
            return self.handshake(key, TokioIo::new(tcp), key.h2).await;
        }
        let connector = if key.h2 { &self.tls_h2 } else { &self.tls_h1 };
        let server_name = ServerName::IpAddress(addr.ip().into());
        let tls = match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name, tcp))
            .await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(source)) => return Err(ProxyError::Tls { addr, source }),
            Err(_) => {
                return Err(ProxyError::Tls {
                    addr,
                    source: std::io::ErrorKind::TimedOut.into(),
                });
            }
        };
        // The target's ALPN choice wins; without ALPN, the group's protocol version decides.
        let h2 = match tls.get_ref().1.alpn_protocol() {
            Some(protocol) => protocol == trellis_tls::ALPN_H2,
            None => key.h2,
        };
        self.handshake(key, TokioIo::new(tls), h2).await
    }

    async fn handshake<I>(&self, key: Key, io: I, h2: bool) -> Result<Conn, ProxyError>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let addr = key.addr;
        if h2 {
            let (sender, conn) = self
                .h2
                .handshake(io)
                .await
                .map_err(|source| ProxyError::NotSent { addr, source })?;
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%addr, %error, "HTTP/2 connection to target ended");
                }
            });
            self.lock().entry(key).or_default().h2 = Some(sender.clone());
            Ok(Conn::H2(sender))
        } else {
            let (sender, conn) = self
                .h1
                .handshake(io)
                .await
                .map_err(|source| ProxyError::NotSent { addr, source })?;
            tokio::spawn(async move {
                if let Err(error) = conn.await {
                    tracing::debug!(%addr, %error, "HTTP/1.1 connection to target ended");
                }
            });
            Ok(Conn::H1(sender))
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Slot>> {
        // Every critical section leaves the map consistent, so a panic inside one cannot leave
        // anything half-done: a poisoned lock is as good as a healthy one.
        self.pool.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Idle {
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.saturating_duration_since(self.since) < POOL_IDLE_TIMEOUT
    }
}

fn timeout_error(key: Key, timeout: Duration) -> ProxyError {
    ProxyError::ResponseTimeout {
        addr: key.addr,
        timeout,
    }
}

fn upstream_error(key: Key, source: hyper::Error) -> ProxyError {
    ProxyError::Upstream {
        addr: key.addr,
        source,
    }
}

/// `fut`'s output, or `None` once `timeout` has passed since the later of now and the request
/// body's latest frame.
async fn within<F: Future>(
    fut: F,
    timeout: Duration,
    progress: Option<&Progress>,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut sleep = std::pin::pin!(tokio::time::sleep(timeout));
    loop {
        tokio::select! {
            biased;
            output = &mut fut => return Some(output),
            () = &mut sleep => {
                let progress = progress?;
                let deadline = progress.last() + timeout;
                if deadline <= Instant::now() {
                    return None;
                }
                sleep.as_mut().reset(deadline);
            }
        }
    }
}

/// Gives the request the HTTP/1.1 shape: origin-form target (`/path?query`) and a `Host` header
/// (from `:authority` when the client spoke HTTP/2). A request that already has it is untouched.
fn shape_for_http1<B>(req: &mut Request<B>) {
    *req.version_mut() = Version::HTTP_11;
    if req.uri().authority().is_none() {
        return;
    }
    if !req.headers().contains_key(header::HOST)
        && let Some(authority) = req.uri().authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(header::HOST, host);
    }
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(path);
}

/// Gives the request the HTTP/2 shape: `:scheme` of the target group's protocol, `:authority`
/// (from `Host` when the client spoke HTTP/1.1, which is then removed as HTTP/2 prefers), path.
fn shape_for_http2<B>(req: &mut Request<B>, scheme: &Scheme) {
    *req.version_mut() = Version::HTTP_2;
    if req.uri().scheme() == Some(scheme) && req.uri().authority().is_some() {
        req.headers_mut().remove(header::HOST);
        return;
    }
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    let host = req.headers_mut().remove(header::HOST);
    if parts.authority.is_none() {
        parts.authority = host
            .as_ref()
            .and_then(|h| Authority::try_from(h.as_bytes()).ok());
    }
    parts.scheme = Some(scheme.clone());
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    match Uri::from_parts(parts) {
        Ok(uri) => *req.uri_mut() = uri,
        // Without an authority there is no valid HTTP/2 URI; hyper's HTTP/2 client then fails
        // the request, which is reported as an upstream error. The pipeline always provides one.
        Err(error) => tracing::debug!(%error, "request has no authority for HTTP/2"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&str>, version: Version) -> Request<()> {
        let mut builder = Request::builder().uri(uri).version(version);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(()).unwrap()
    }

    fn host(req: &Request<()>) -> Option<&str> {
        req.headers().get(header::HOST).map(|h| h.to_str().unwrap())
    }

    #[test]
    fn http1_shape_table() {
        // (uri, Host header) → (uri, Host header)
        let cases = [
            (
                "/a?b=1",
                Some("svc.example:8080"),
                "/a?b=1",
                Some("svc.example:8080"),
            ),
            (
                "http://svc.example/a?b=1",
                None,
                "/a?b=1",
                Some("svc.example"),
            ),
            (
                "https://svc.example:443/",
                Some("other"),
                "/",
                Some("other"),
            ),
        ];
        for (uri, host_in, uri_out, host_out) in cases {
            for version in [Version::HTTP_11, Version::HTTP_2] {
                let mut req = request(uri, host_in, version);
                shape_for_http1(&mut req);
                assert_eq!(req.uri().to_string(), uri_out, "{uri}");
                assert_eq!(host(&req), host_out, "{uri}");
                assert_eq!(req.version(), Version::HTTP_11);
            }
        }
    }

    #[test]
    fn http2_shape_table() {
        // (uri, Host header, scheme) → uri; Host is always removed
        let cases = [
            (
                "/a?b=1",
                Some("svc.example:8080"),
                Scheme::HTTP,
                "http://svc.example:8080/a?b=1",
            ),
            (
                "/",
                Some("svc.example"),
                Scheme::HTTPS,
                "https://svc.example/",
            ),
            (
                "http://svc.example/x",
                None,
                Scheme::HTTPS,
                "https://svc.example/x",
            ),
            (
                "https://svc.example/x",
                Some("svc.example"),
                Scheme::HTTPS,
                "https://svc.example/x",
            ),
        ];
        for (uri, host_in, scheme, uri_out) in cases {
            let mut req = request(uri, host_in, Version::HTTP_11);
            shape_for_http2(&mut req, &scheme);
            assert_eq!(req.uri().to_string(), uri_out, "{uri}");
            assert_eq!(host(&req), None, "{uri}");
            assert_eq!(req.version(), Version::HTTP_2);
        }
    }

    #[test]
    fn shapes_round_trip() {
        let mut req = request("/p", Some("svc.example:81"), Version::HTTP_11);
        shape_for_http2(&mut req, &Scheme::HTTP);
        shape_for_http1(&mut req);
        assert_eq!(req.uri().to_string(), "/p");
        assert_eq!(host(&req), Some("svc.example:81"));
    }
}

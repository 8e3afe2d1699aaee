//! The API's HTTP server: an accept loop that serves the axum router over hyper-util's
//! HTTP/1.1-or-HTTP/2 connections, with every connection bounded in time and number.
//!
//! `axum::serve` has neither a header-read nor an idle timeout, so a client that sends one byte
//! holds a connection (and a file descriptor) for ever. Here:
//!
//! * **Header-read timeout.** A new connection must deliver its first complete request head within
//!   it (this also bounds hyper-util's HTTP/1-versus-HTTP/2 detection, which has no timer of its
//!   own). On HTTP/1.1, hyper restarts the same timer after every response, so a keep-alive
//!   connection that sends nothing, or half a head, for this long is closed too.
//! * **Idle timeout.** A connection with no request in progress for this long is closed: HTTP/2
//!   clients get a GOAWAY. (HTTP/1.1 connections meet the header-read timeout first when it is
//!   the shorter.) HTTP/2 connections are also pinged, so dead peers are noticed.
//! * **Connection cap.** At most `max_connections` connections are open. When a connection
//!   arrives at the cap, the oldest connection that has no request in progress (an idle
//!   keep-alive connection, or one still sending its head) is closed to make room; only when
//!   every connection is in the middle of a request is the newcomer closed at once. Slow or
//!   silent clients therefore cannot lock anyone out: `/_trellis/health` and the API stay
//!   reachable however many such sockets are open, and an unauthenticated client cannot keep a
//!   request in progress (the SigV4 gate answers it from the head).
//! * **Graceful shutdown.** When `shutdown` resolves the listener closes, requests in progress
//!   finish, and idle connections close.
//!
//! Request bodies are bounded by the SigV4 gate ([`crate::auth`]), not here.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// How long a connection that is being closed (idle, evicted, or at shutdown) may take to finish
/// writing once it has no request in progress, before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How often an HTTP/2 connection is pinged, and how long the answer may take.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent streams per HTTP/2 connection: API clients make one call at a time per connection,
/// and each stream may carry a body the gate reads.
const H2_MAX_CONCURRENT_STREAMS: u32 = 32;
/// The most an HTTP/1.1 connection buffers (a request head must fit): API request heads are a
/// few KiB, and 1,024 connections each holding hyper's default ~400 KiB would be 400 MiB of
/// unauthenticated memory.
const H1_MAX_BUF: usize = 64 << 10;
/// Pause after a failed `accept` (out of descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The API listener's limits (`trellis serve --api-header-read-timeout`, `--api-idle-timeout`,
/// `--api-max-connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ServerLimits {
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// One open connection, as the accept loop and the connection's own task see it.
#[derive(Default)]
struct ConnState {
    /// Requests whose response is not finished yet.
    active: AtomicUsize,
    /// Signalled when `active` drops to 0.
    went_idle: Notify,
    /// Set once a complete request head has arrived.
    started: AtomicBool,
    /// Set (and `evict` signalled) when the accept loop needs this connection's slot.
    evicted: AtomicBool,
    evict: Notify,
}

/// Counts a request as in progress until the response body is dropped.
struct Active(Arc<ConnState>);

impl Active {
    fn enter(conn: &Arc<ConnState>) -> Active {
        conn.started.store(true, Ordering::Release);
        conn.active.fetch_add(1, Ordering::AcqRel);
        Active(Arc::clone(conn))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.went_idle.notify_waiters();
        }
    }
}

/// The open connections, oldest first (ids increase).
#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<ConnState>>>,
}

impl Registry {
    /// Registers a new connection, making room at the cap by evicting the oldest connection
    /// without a request in progress. `None` when there is no room to make.
    fn admit(&self, id: u64, max: usize) -> Option<Arc<ConnState>> {
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        // Connections already told to go are on their way out and do not hold a slot.
        let live = conns
            .values()
            .filter(|c| !c.evicted.load(Ordering::Acquire))
            .count();
        if live >= max {
            let victim = conns.values().find(|c| {
                !c.evicted.load(Ordering::Acquire) && c.active.load(Ordering::Acquire) == 0
            })?;
            victim.evicted.store(true, Ordering::Release);
            victim.evict.notify_one();
        }
        let conn = Arc::new(ConnState::default());
        conns.insert(id, Arc::clone(&conn));
        Some(conn)
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    fn len(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A connection's place in the registry, given up when its task ends.
struct Slot {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// The HTTP server every connection is served with.
fn builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(H1_MAX_BUF)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in progress finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = Arc::new(builder(&limits));
    let registry = Arc::new(Registry::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: the pending connection stays queued; try again shortly.
                tracing::warn!(%error, "API listener cannot accept");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        next_id += 1;
        let id = next_id;
        let Some(conn) = registry.admit(id, limits.max_connections) else {
            tracing::debug!(%peer, "API connection cap reached with every connection busy; refusing");
            drop(stream);
            continue;
        };
        let builder = Arc::clone(&builder);
        let registry = Arc::clone(&registry);
        let app = app.clone();
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            // Removed from the registry however the task ends, a panicking handler included.
            let _slot = Slot { registry, id };
            serve_connection(&builder, stream, app, &conn, &limits, stop).await;
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracing::debug!(
        open = registry.len(),
        "API listener closed; finishing open connections"
    );
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    app: Router,
    conn: &Arc<ConnState>,
    limits: &ServerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service_conn = Arc::clone(conn);
    let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let active = Active::enter(&service_conn);
        let app = app.clone();
        async move {
            let resp = match app.oneshot(req.map(Body::new)).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            // The guard lives as long as the response body, so a streamed response keeps the
            // connection busy until it is sent.
            let resp = resp.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &active;
                    frame
                }))
            });
            Ok::<_, Infallible>(resp)
        }
    });
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    {
        let mut reason = pin!(close_reason(conn, limits, &mut stop));
        tokio::select! {
            _ = connection.as_mut() => return,
            () = &mut reason => {}
        }
    }
    if !conn.started.load(Ordering::Acquire) && conn.active.load(Ordering::Acquire) == 0 {
        // No request ever arrived, so none is owed an answer: drop it at once (a graceful
        // HTTP/2 shutdown would wait for a silent client to acknowledge a ping).
        return;
    }
    // In-flight requests finish; HTTP/2 clients get a GOAWAY; an idle HTTP/1.1 connection closes.
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        () = quiet_for(conn, CLOSE_GRACE) => {}
    }
}

/// Resolves when the connection should close: it was evicted, the server is stopping, or it has
/// had no request in progress for too long (the header-read timeout before its first request,
/// the idle timeout after).
async fn close_reason(conn: &ConnState, limits: &ServerLimits, stop: &mut watch::Receiver<bool>) {
    let idle = async {
        loop {
            // Registered before `active` is read, so a request ending in between is not missed.
            let mut ended = pin!(conn.went_idle.notified());
            ended.as_mut().enable();
            if conn.active.load(Ordering::Acquire) == 0 {
                let limit = if conn.started.load(Ordering::Acquire) {
                    limits.idle_timeout
                } else {
                    limits.header_read_timeout
                };
                // A request that starts meanwhile does not signal; it is seen when the timer
                // fires.
                let timed_out = tokio::time::timeout(limit, ended).await.is_err();
                if timed_out && conn.active.load(Ordering::Acquire) == 0 {
                    return;
                }
            } else {
                ended.await;
            }
        }
    };
    tokio::select! {
        () = idle => {}
        () = conn.evict.notified() => {}
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
}

/// Completes once the connection has had no request in progress for `grace`.
async fn quiet_for(conn: &ConnState, grace: Duration) {
    loop {
        let mut ended = pin!(conn.went_idle.notified());
        ended.as_mut().enable();
        if conn.active.load(Ordering::Acquire) == 0 {
            if tokio::time::timeout(grace, ended).await.is_err()
                && conn.active.load(Ordering::Acquire) == 0
            {
                return;
            }
        } else {
            ended.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    struct Running {
        addr: std::net::SocketAddr,
        stop: tokio::sync::oneshot::Sender<()>,
        done: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    /// A server with `/ok`, and `/slow`, which signals `entered` and then answers 300 ms later.
    async fn start(limits: ServerLimits) -> (Running, Arc<Notify>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let entered = Arc::new(Notify::new());
        let signal = Arc::clone(&entered);
        let app = Router::new().route("/ok", get(|| async { "ok" })).route(
            "/slow",
            get(move || async move {
                signal.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                "slow"
            }),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        (Running { addr, stop, done }, entered)
    }

    fn short() -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(600),
            max_connections: 4,
        }
    }

    /// Reads until EOF (or an error such as a reset) and returns what arrived and when it ended,
    /// failing if the server keeps the socket open for `limit`.
    async fn read_to_close(
        stream: &mut TcpStream,
        limit: Duration,
        what: &str,
    ) -> (Vec<u8>, Duration) {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout(limit, stream.read(&mut buf)).await {
                Err(_) => panic!("{what}: the server kept the connection open for {limit:?}"),
                Ok(Ok(0) | Err(_)) => return (out, start.elapsed()),
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    async fn get_ok(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (out, _) = read_to_close(&mut s, Duration::from_secs(5), "GET /ok").await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn slow_and_silent_connections_are_closed_after_the_header_read_timeout() {
        let (server, _) = start(short()).await;
        // (what the client sends before going silent, what that is)
        let cases: &[(&[u8], &str)] = &[
            (b"", "silent"),
            (b"G", "one byte (still in protocol detection)"),
            (b"GET /ok HTTP/1.1\r\nHost: x", "half a head"),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                "the HTTP/2 preface, then nothing",
            ),
        ];
        for (sent, what) in cases {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            s.write_all(sent).await.unwrap();
            let (_, took) = read_to_close(&mut s, Duration::from_secs(5), what).await;
            assert!(
                took >= Duration::from_millis(200),
                "{what}: closed after {took:?}, before the timeout"
            );
        }
        let _ = server.stop.send(());
        server.done.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
        let (server, _) = start(short()).await;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        let driving = tokio::spawn(connection);
        let request = http::Request::get(format!("http://{}/ok", server.addr))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = sender.send_request(request).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        let start = Instant::now();
        // The server sends GOAWAY once the connection has been idle for 600 ms, and closes it.
        tokio::time::timeout(Duration::from_secs(5), driving)
            .await
            .expect("the idle HTTP/2 connection stayed open")
            .unwrap()
            .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(500));
    }

    #[tokio::test]
    async fn an_oversized_head_is_refused() {
        let (server, _) = start(short()).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let head = format!(
            "GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(2 * H1_MAX_BUF)
        );
        // The server may close before taking it all.
        let _ = s.write_all(head.as_bytes()).await;
        let (out, _) = read_to_close(&mut s, Duration::from_secs(5), "an oversized head").await;
        assert!(
            out.starts_with(b"HTTP/1.1 431"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[tokio::test]
    async fn a_keep_alive_connection_is_closed_when_idle_and_serves_until_then() {
        let (server, _) = start(short()).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        for _ in 0..3 {
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        }
        let (rest, _) = read_to_close(&mut s, Duration::from_secs(5), "idle keep-alive").await;
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
        let _ = server.stop.send(());
        server.done.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn silent_sockets_beyond_the_cap_do_not_lock_out_a_real_client() {
        let limits = ServerLimits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            max_connections: 4,
        };
        let (server, _) = start(limits).await;
        let mut silent = Vec::new();
        for _ in 0..12 {
            let mut s = TcpStream::connect(server.addr).await.unwrap();
            s.write_all(b"G").await.unwrap();
            silent.push(s);
        }
        assert!(get_ok(server.addr).await.contains("200 OK"));
        // Only the newest few silent sockets can still be open; the oldest were evicted.
        let mut closed = 0;
        for s in &mut silent[..8] {
            read_to_close(s, Duration::from_secs(5), "an evicted silent socket").await;
            closed += 1;
        }
        assert_eq!(closed, 8);
        let _ = server.stop.send(());
        server.done.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn shutdown_lets_a_request_in_progress_finish() {
        let (server, entered) = start(ServerLimits::default()).await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), entered.notified())
            .await
            .unwrap();
        let _ = server.stop.send(());
        let (out, _) = read_to_close(&mut s, Duration::from_secs(5), "GET /slow").await;
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("HTTP/1.1 200") && out.ends_with("slow"),
            "{out}"
        );
        tokio::time::timeout(Duration::from_secs(5), server.done)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

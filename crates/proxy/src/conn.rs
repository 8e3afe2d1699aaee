//! One client connection: clear text or TLS (told apart by the first byte), HTTP/1.1 or HTTP/2,
//! its deadlines (the handshake deadline, the header-read timeout, the idle timeout), and graceful
//! shutdown when its port is removed or the proxy stops.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use crate::Shared;
use crate::head::{HeadClock, Scan, Watched};
use crate::limits::Slot;
use crate::listener::Phase;
use crate::pipeline;

/// The first byte of every TLS connection: a handshake record (RFC 8446 §5.1). No HTTP/1.x
/// method and not the HTTP/2 preface starts with it.
const TLS_HANDSHAKE: u8 = 0x16;

/// What the request path knows about the connection a request came on. Built once per
/// connection; every request holds it through an `Arc`.
pub(crate) struct ConnCtx {
    pub shared: Arc<Shared>,
    /// The client's address: the TCP peer, or the one a trusted PROXY protocol sender gave.
    pub peer: SocketAddr,
    /// The ingress address and port the connection arrived on.
    pub local: SocketAddr,
    pub local_port: u16,
    /// Where the connection comes from (`peer`, and the VPC a trusted sender named).
    pub origin: crate::clients::Origin,
    /// The client network admitting the connection, as of the last snapshot a request saw.
    pub clients: crate::clients::ClientCache,
    /// Set on TLS connections.
    pub tls: Option<TlsInfo>,
    /// `x-forwarded-for` and `x-forwarded-port`, formatted once per connection.
    pub forwarded_for: HeaderValue,
    pub forwarded_port: HeaderValue,
    /// Requests whose response is not finished yet; the idle timer runs only while it is 0.
    active: AtomicUsize,
    /// Signalled when `active` drops to 0, to restart the idle timer.
    idle: Notify,
    /// The header-read deadline's clock.
    pub head: HeadClock,
}

impl ConnCtx {
    pub(crate) fn has_active_request(&self) -> bool {
        self.active.load(Ordering::Acquire) != 0
    }
}

pub(crate) struct TlsInfo {
    /// The SNI, lower-cased (TLS connections without SNI are refused in the handshake).
    pub server_name: Arc<str>,
    /// The negotiated cipher suite's OpenSSL name and the protocol version (`TLSv1.3`), as
    /// the access log's `sslCipher` and `tlsVersion` spell them.
    pub cipher: &'static str,
    pub version: &'static str,
}

/// A rustls cipher suite's OpenSSL name (Lattice's `sslCipher`), `-` for one Trellis does not
/// offer.
pub(crate) fn openssl_cipher(suite: tokio_rustls::rustls::CipherSuite) -> &'static str {
    use tokio_rustls::rustls::CipherSuite as C;
    match suite {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "-",
    }
}

/// `TLSv1.2`, `TLSv1.3` (Lattice's `tlsVersion`).
pub(crate) fn tls_version(v: tokio_rustls::rustls::ProtocolVersion) -> &'static str {
    use tokio_rustls::rustls::ProtocolVersion as V;
    match v {
        V::TLSv1_3 => "TLSv1.3",
        V::TLSv1_2 => "TLSv1.2",
        V::TLSv1_1 => "TLSv1.1",
        V::TLSv1_0 => "TLSv1",
        _ => "-",
    }
}

/// Counts a request as active on its connection until dropped. It is dropped with the
/// response body, so a connection streaming a long response is not idle.
pub(crate) struct ActiveRequest(Arc<ConnCtx>);

impl ActiveRequest {
    pub(crate) fn enter(conn: &Arc<ConnCtx>) -> ActiveRequest {
        conn.active.fetch_add(1, Ordering::AcqRel);
        // The request's head is complete: it reached the pipeline.
        conn.head.stop();
        ActiveRequest(Arc::clone(conn))
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The HTTP servers connections are served with: protocol detection (HTTP/1.1, or HTTP/2 with
/// prior knowledge) for clear text; the ALPN-chosen protocol for TLS.
pub(crate) struct Servers {
    pub auto: auto::Builder<TokioExecutor>,
    pub h1: auto::Builder<TokioExecutor>,
    pub h2: auto::Builder<TokioExecutor>,
}

/// The most concurrent streams a client may open on one HTTP/2 connection (nginx's default).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// An HTTP/2 connection that has received nothing for this long is sent a PING; one that does
/// not answer it within [`H2_KEEP_ALIVE_TIMEOUT`] is closed. This finds peers that vanished
/// while a response was streaming to them, which the idle timer (it waits for the response to
/// end) never would.
pub const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams a client may open and reset before the server accepted them, before the connection
/// is closed with GOAWAY (the "rapid reset" bound; h2's default, made explicit).
pub const H2_MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server may reset for a client's protocol errors on one connection before it
/// closes the connection (hyper's default, made explicit).
pub const H2_MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

impl Servers {
    /// `max_headers` / `max_header_bytes` are Lattice's limits, which the pipeline enforces with
    /// a 400.
    ///
    /// HTTP/1.1 keeps hyper's own field limit, 100 (Lattice's): a request with more fields gets
    /// hyper's 431 from the parser, not the pipeline's 400 (docs/decisions.md). Any
    /// `max_headers` setting, even 100, makes hyper initialise its two header index arrays for
    /// every request it parses (and put them on the heap above 100); left unset they are
    /// uninitialised stack arrays. The larger limit cost about 15% of the proxy's instructions
    /// per request. Requests within 100 fields still meet the pipeline's 60 KB check.
    ///
    /// HTTP/2's header list limit is four times Lattice's so that the pipeline sees (and
    /// answers with 400) requests over Lattice's limits; beyond it, hyper resets the stream.
    pub(crate) fn new(max_headers: usize, max_header_bytes: usize) -> Servers {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            // hyper's header-read timer also runs between keep-alive requests, which would cut
            // the idle timeout short; the connection's own clock (`head`) bounds heads instead.
            .header_read_timeout(None)
            .keep_alive(true);
        let header_list = (max_header_bytes + 32 * max_headers).saturating_mul(4);
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
            .max_pending_accept_reset_streams(H2_MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESET_STREAMS)
            .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT)
            .max_header_list_size(u32::try_from(header_list).unwrap_or(u32::MAX))
            // Windows large enough for fast uploads; the defaults (64 KiB) throttle them.
            .initial_stream_window_size(1 << 20)
            .initial_connection_window_size(4 << 20);
        Servers {
            auto: builder.clone(),
            h1: builder.clone().http1_only(),
            h2: builder.http2_only(),
        }
    }
}

/// Serves one accepted connection until it closes, misses a deadline, times out idle, or is
/// told to stop. `slot` holds its place under the connection caps until then.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    proxied: bool,
    local: SocketAddr,
    forwarded_port: HeaderValue,
    mut phase: watch::Receiver<Phase>,
    slot: Slot,
) {
    let _slot = slot;
    // One deadline from accept for the first byte and the TLS handshake: a client that trickles
    // its handshake cannot stretch it.
    let handshake = tokio::time::Instant::now() + shared.config.limits.handshake_timeout;
    // Responses are written whole by hyper; Nagle would only delay them.
    let _ = stream.set_nodelay(true);

    // A trusted sender's PROXY header (within the same deadline) says who the client is; the
    // connection is then admitted by that client's network, as others were at accept.
    let origin = if proxied {
        let read = tokio::select! {
            read = tokio::time::timeout_at(handshake, crate::clients::read_header(&mut stream, peer)) => read,
            _ = phase.changed() => return,
        };
        let origin = match read {
            Ok(Ok(origin)) => origin,
            Ok(Err(error)) => {
                crate::listener::refused_by_network(&shared, local, peer, &error);
                return;
            }
            Err(_) => {
                crate::listener::refused_by_network(
                    &shared,
                    local,
                    peer,
                    &"no PROXY header by the handshake deadline",
                );
                return;
            }
        };
        if !shared.config.open_network
            && let Err(refusal) = shared.snapshots.load().clients.admit(
                local.ip(),
                local.port(),
                origin.peer.ip(),
                origin.claimed_vpc.as_deref(),
            )
        {
            crate::listener::refused_by_network(&shared, local, origin.peer, &refusal);
            return;
        }
        origin
    } else {
        crate::clients::Origin {
            peer,
            claimed_vpc: None,
        }
    };
    let peer = origin.peer;
    let local_port = local.port();

    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        peeked = tokio::time::timeout_at(handshake, stream.peek(&mut first)) => peeked,
        _ = phase.changed() => return,
    };
    if !matches!(peeked, Ok(Ok(1))) {
        return; // closed, failed, or silent until the handshake deadline
    }

    let forwarded_for = HeaderValue::from_str(&peer.ip().to_canonical().to_string())
        .expect("an IP address is a valid header value");
    let ctx = |tls| {
        Arc::new(ConnCtx {
            shared: Arc::clone(&shared),
            peer,
            local,
            local_port,
            origin: origin.clone(),
            clients: crate::clients::ClientCache::default(),
            tls,
            forwarded_for: forwarded_for.clone(),
            forwarded_port: forwarded_port.clone(),
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            head: HeadClock::new(),
        })
    };

    if first[0] != TLS_HANDSHAKE {
        let ctx = ctx(None);
        let io = Watched::new(stream, Arc::clone(&ctx), Scan::Detect { matched: 0 });
        drive(&shared.servers.auto, TokioIo::new(io), ctx, phase).await;
        return;
    }

    let accepted = tokio::select! {
        accepted = tokio::time::timeout_at(handshake, shared.tls.accept(stream)) => accepted,
        _ = phase.changed() => return,
    };
    let metrics = shared.metrics.get().map(|m| m.metrics());
    let tls = match accepted {
        Ok(Ok(tls)) => {
            if let Some(m) = metrics {
                m.tls_handshakes.inc();
            }
            tls
        }
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            if let Some(m) = metrics {
                m.tls_connection_errors.inc();
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not complete by the handshake deadline");
            if let Some(m) = metrics {
                m.tls_connection_errors.inc();
            }
            return;
        }
    };
    let (server_name, h2, cipher, version) = {
        let (_, session) = tls.get_ref();
        (
            session
                .server_name()
                .map(|name| Arc::<str>::from(name.to_ascii_lowercase())),
            session.alpn_protocol() == Some(trellis_tls::ALPN_H2),
            session
                .negotiated_cipher_suite()
                .map_or("-", |s| openssl_cipher(s.suite())),
            session.protocol_version().map_or("-", tls_version),
        )
    };
    let Some(server_name) = server_name else {
        return; // the resolver refuses handshakes without SNI; nothing to route by
    };
    let (builder, scan) = if h2 {
        (&shared.servers.h2, Scan::http2())
    } else {
        (&shared.servers.h1, Scan::Http1)
    };
    let ctx = ctx(Some(TlsInfo {
        server_name,
        cipher,
        version,
    }));
    let io = Watched::new(tls, Arc::clone(&ctx), scan);
    drive(builder, TokioIo::new(io), ctx, phase).await;
}

/// Runs the HTTP connection with the pipeline as its service, closing it gracefully (in-flight
/// requests finish, HTTP/2 clients get GOAWAY) when it has been idle for the idle timeout or its
/// port is drained, and at once when the proxy's shutdown grace has run out, when a request head
/// is not complete within the header-read timeout, or when a connection being closed gracefully
/// has had no request for the header-read timeout (it can only be sending a head nobody will
/// read, or ignoring the close).
async fn drive<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    ctx: Arc<ConnCtx>,
    mut phase: watch::Receiver<Phase>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service_ctx = Arc::clone(&ctx);
    let service = service_fn(move |req| {
        // Boxed once here rather than moved around by value: hyper's HTTP/2 server spawns a task
        // per stream with this future inside, and tokio moves a task's future several times
        // while spawning and completing it (a memcpy of the whole future each time). A pointer
        // moves for free; the request pays one allocation instead.
        let handling = Box::pin(pipeline::handle(Arc::clone(&service_ctx), req));
        async move { Ok::<_, Infallible>(handling.await) }
    });
    let limits = &ctx.shared.config.limits;
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut idle = pin!(idle_timer(&ctx, ctx.shared.config.idle_timeout));
    let mut head = pin!(ctx.head.expired(limits.header_read_timeout));
    let mut closing = false;
    let mut watching = true;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(peer = %ctx.peer, %error, "client connection ended with an error");
                }
                return;
            }
            () = &mut head => {
                tracing::debug!(peer = %ctx.peer, "request head not complete within the header-read timeout");
                return;
            }
            () = &mut idle => {
                if closing {
                    tracing::debug!(peer = %ctx.peer, "closing client connection did not close");
                    return;
                }
                tracing::debug!(peer = %ctx.peer, "closing idle client connection");
                conn.as_mut().graceful_shutdown();
                closing = true;
                idle.set(idle_timer(&ctx, limits.header_read_timeout));
            }
            changed = phase.changed(), if watching => {
                // A dropped sender (the proxy is gone) drains like a removed port.
                let next = match changed {
                    Ok(()) => *phase.borrow_and_update(),
                    Err(_) => {
                        watching = false;
                        Phase::Draining
                    }
                };
                match next {
                    Phase::Serving => {}
                    Phase::Draining => {
                        if !closing {
                            conn.as_mut().graceful_shutdown();
                            closing = true;
                            idle.set(idle_timer(&ctx, limits.header_read_timeout));
                        }
                    }
                    Phase::Closing => return,
                }
            }
        }
    }
}

/// Completes once the connection has had no active request for `idle`.
async fn idle_timer(ctx: &ConnCtx, idle: Duration) {
    loop {
        // Registered before `active` is read, so a request ending in between is not missed.
        let mut ended = pin!(ctx.idle.notified());
        ended.as_mut().enable();
        if ctx.active.load(Ordering::Acquire) == 0 {
            // A request that starts meanwhile does not signal; it is seen when the timer fires.
            let timed_out = tokio::time::timeout(idle, ended).await.is_err();
            if timed_out && ctx.active.load(Ordering::Acquire) == 0 {
                return;
            }
        } else {
            ended.await;
        }
    }
}

#[cfg(test)]
mod tls_name_tests {
    use tokio_rustls::rustls::{CipherSuite as C, ProtocolVersion as V};

    use super::{openssl_cipher, tls_version};

    #[test]
    fn openssl_names_table() {
        for (suite, want) in [
            (C::TLS13_AES_128_GCM_SHA256, "TLS_AES_128_GCM_SHA256"),
            (
                C::TLS13_CHACHA20_POLY1305_SHA256,
                "TLS_CHACHA20_POLY1305_SHA256",
            ),
            (
                C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                "ECDHE-ECDSA-AES256-GCM-SHA384",
            ),
            (
                C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                "ECDHE-RSA-CHACHA20-POLY1305",
            ),
            (C::TLS_RSA_WITH_AES_128_CBC_SHA, "-"),
        ] {
            assert_eq!(openssl_cipher(suite), want, "{suite:?}");
        }
        for (v, want) in [
            (V::TLSv1_3, "TLSv1.3"),
            (V::TLSv1_2, "TLSv1.2"),
            (V::SSLv3, "-"),
        ] {
            assert_eq!(tls_version(v), want, "{v:?}");
        }
    }
}

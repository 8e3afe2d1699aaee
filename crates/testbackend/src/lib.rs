//! trellis-testbackend: a fast, configurable backend that Trellis's end-to-end tests and
//! benchmarks put behind the proxy as targets.
//!
//! One process serves one address in one of four connection modes ([`Protocol`]): HTTP/1.1 only,
//! HTTP/2 with prior knowledge only (h2c), either of them detected from the first bytes (auto), or
//! TLS with a freshly generated self-signed certificate and ALPN `h2`/`http/1.1` (https). With
//! `grpc` set it also answers a tiny gRPC service without protobuf code generation. The endpoints
//! are listed in [`handler`]; the gRPC methods in [`grpc`].
//!
//! It logs nothing per request: the benchmarks use it as the "fast static responder", so the cost
//! of a request is hyper's plus a few atomic counters.

pub mod body;
pub mod grpc;
pub mod handler;
pub mod tls;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use body::Body;

/// How connections are spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// HTTP/1.1 only (an HTTP/2 preface is a protocol error).
    Http1,
    /// HTTP/2 with prior knowledge only.
    H2c,
    /// HTTP/1.1 or HTTP/2 with prior knowledge, detected from the connection preface.
    Auto,
    /// TLS with a self-signed certificate; ALPN `h2` selects HTTP/2, anything else HTTP/1.1.
    Https,
}

/// What a backend serves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Reported in the `x-backend` response header and the JSON echo, so tests can tell
    /// backends apart.
    pub name: String,
    pub protocol: Protocol,
    /// Answer `application/grpc` requests with the test gRPC service.
    pub grpc: bool,
}

/// Why a backend cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--name {0:?} cannot be sent as an HTTP header value")]
    Name(String),
    #[error("cannot generate the self-signed certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Shared by every connection: the configuration and the few mutable knobs tests turn.
#[derive(Debug)]
pub struct State {
    pub(crate) name: String,
    /// Pre-built once: every response carries it.
    pub(crate) name_header: HeaderValue,
    pub(crate) grpc: bool,
    /// The status `GET /health` answers with; set by `POST /_control/health?status=N`.
    pub(crate) health_status: AtomicU16,
    /// Requests served, not counting `/health` and `/_control/*`.
    pub(crate) requests: AtomicU64,
    /// `/health` requests served.
    pub(crate) health_checks: AtomicU64,
    /// `/slow-stream?wait=KEY` holds its response until `POST /_control/release?key=KEY`; a
    /// watch per key makes a release that arrives first still count. Never held across an await.
    pub(crate) releases: Mutex<HashMap<String, watch::Sender<bool>>>,
}

impl State {
    fn new(config: &Config) -> Result<State, Error> {
        let name_header =
            HeaderValue::from_str(&config.name).map_err(|_| Error::Name(config.name.clone()))?;
        Ok(State {
            name: config.name.clone(),
            name_header,
            grpc: config.grpc,
            health_status: AtomicU16::new(200),
            requests: AtomicU64::new(0),
            health_checks: AtomicU64::new(0),
            releases: Mutex::new(HashMap::new()),
        })
    }

    /// The release flag of `key`, created on first use by either side.
    pub(crate) fn release_flag(&self, key: &str) -> watch::Sender<bool> {
        let mut map = self.releases.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_owned())
            .or_insert_with(|| watch::channel(false).0)
            .clone()
    }
}

/// A bound backend, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
    /// The builder for clear-text connections, restricted according to [`Protocol`].
    plain: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
    tls: Option<(TlsAcceptor, CertificateDer<'static>)>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub fn new(listener: TcpListener, config: Config) -> Result<Server, Error> {
        let state = Arc::new(State::new(&config)?);
        let mut base = auto::Builder::new(TokioExecutor::new());
        // Generous limits: the proxy enforces Lattice's header limits (100 headers, 60 KB) and
        // adds its own headers on top, so a request just under them must still reach the target.
        base.http1().max_headers(1000).max_buf_size(1 << 20);
        base.http2()
            .max_header_list_size(1 << 20)
            .max_concurrent_streams(1000);
        let h1 = base.clone().http1_only();
        let h2 = base.clone().http2_only();
        let plain = match config.protocol {
            Protocol::Http1 => h1.clone(),
            Protocol::H2c => h2.clone(),
            Protocol::Auto | Protocol::Https => base,
        };
        let tls = match config.protocol {
            Protocol::Https => {
                let (server_config, cert) = tls::self_signed()?;
                Some((TlsAcceptor::from(server_config), cert))
            }
            _ => None,
        };
        Ok(Server {
            listener,
            state,
            plain,
            h1,
            h2,
            tls,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The self-signed certificate of an HTTPS backend, for clients that want to trust it.
    pub fn certificate(&self) -> Option<&CertificateDer<'static>> {
        self.tls.as_ref().map(|(_, cert)| cert)
    }

    /// Accepts connections until the task is dropped; each connection runs on its own task.
    pub async fn run(self) {
        let server = Arc::new(self);
        loop {
            let (stream, peer) = match server.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset while queued: back off briefly
                    // instead of spinning, and keep serving.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(Arc::clone(&server).serve_connection(stream, peer));
        }
    }

    async fn serve_connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let state = Arc::clone(&self.state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(handler::handle(&state, peer, req).await) }
        });
        // Connection errors (a client that went away, a protocol error) end the connection and
        // are deliberately not logged: tests and benchmarks provoke them on purpose.
        match &self.tls {
            None => {
                let _ = self
                    .plain
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
            Some((acceptor, _)) => {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let builder = match tls.get_ref().1.alpn_protocol() {
                    Some(b"h2") => &self.h2,
                    _ => &self.h1,
                };
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            }
        }
    }
}

//! Shared test fixtures: a CA in a temporary directory, a tiny TLS responder on an ephemeral
//! loopback port, and a rustls client that fetches from it.

#![allow(dead_code)] // Each test binary uses a different subset of these helpers.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ProtocolVersion, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use trellis_tls::{CertificateAuthority, SniResolver};

/// The body every successful request gets back.
pub const BODY: &str = "hello from trellis-tls\n";

/// Upper bound on any single network step, so a broken handshake fails the test instead of
/// hanging it. Nothing waits for this long on success.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// A CA in its own temporary directory, and a resolver serving from it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ca: Arc<CertificateAuthority>,
    pub resolver: Arc<SniResolver>,
}

impl Fixture {
    /// A fresh CA whose resolver serves `names`.
    pub fn new(names: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(CertificateAuthority::load_or_create(dir.path()).unwrap());
        let resolver = Arc::new(SniResolver::new(Arc::clone(&ca)));
        resolver.set_names(names.iter().map(|n| n.to_string()));
        Fixture { dir, ca, resolver }
    }

    /// The path of the CA certificate, for external clients.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join(trellis_tls::CA_CERT_FILE)
    }

    /// A client configuration trusting this fixture's CA and offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let base = trellis_tls::client_config_trusting(&self.ca.certificate_pem()).unwrap();
        let mut config = (*base).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Starts a responder with the HTTPS listener configuration of this fixture.
    pub async fn serve(&self) -> Responder {
        Responder::spawn(trellis_tls::server_config(Arc::clone(&self.resolver))).await
    }
}

/// What the server side saw of one connection.
#[derive(Debug)]
pub struct Accepted {
    pub server_name: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<ProtocolVersion>,
}

/// A TLS server on 127.0.0.1 that reports each handshake and answers any HTTP/1.1 request with
/// [`BODY`]. Connections that negotiated `h2` are closed after the handshake: the responder
/// speaks no HTTP/2, and tests only need to see the negotiation.
pub struct Responder {
    pub addr: SocketAddr,
    accepted: mpsc::UnboundedReceiver<Result<Accepted, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Responder {
    pub async fn spawn(config: Arc<ServerConfig>) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        let acceptor = TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            let _ = tx.send(Err(e.to_string()));
                            return;
                        }
                    };
                    let (_, conn) = tls.get_ref();
                    let accepted = Accepted {
                        server_name: conn.server_name().map(str::to_owned),
                        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                        version: conn.protocol_version(),
                    };
                    let h2 = accepted.alpn.as_deref() == Some(b"h2".as_slice());
                    let _ = tx.send(Ok(accepted));
                    if h2 {
                        let _ = tls.shutdown().await;
                        return;
                    }
                    respond_http11(&mut tls).await;
                });
            }
        });
        Responder {
            addr,
            accepted,
            task,
        }
    }

    /// The server side of the next connection: what it negotiated, or why the handshake failed.
    pub async fn next(&mut self) -> Result<Accepted, String> {
        tokio::time::timeout(STEP_TIMEOUT, self.accepted.recv())
            .await
            .expect("the responder reports every connection")
            .expect("the responder is running")
    }
}

/// Reads one request head (bounded) and writes the fixed response.
async fn respond_http11<S: AsyncReadExt + AsyncWriteExt + Unpin>(stream: &mut S) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What the client side saw of a successful exchange.
#[derive(Debug)]
pub struct Fetched {
    pub response: String,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<ProtocolVersion>,
}

/// Connects to `addr` with `config`, sending `server_name` as SNI (unless the configuration
/// disables SNI), and, unless `h2` was negotiated, makes one HTTP/1.1 request.
pub async fn fetch(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
) -> Result<Fetched, String> {
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from(server_name.to_owned()).map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (_, conn) = tls.get_ref();
        let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
        let version = conn.protocol_version();
        if alpn.as_deref() == Some(b"h2".as_slice()) {
            return Ok(Fetched {
                response: String::new(),
                alpn,
                version,
            });
        }
        let request = format!("GET / HTTP/1.1\r\nhost: {server_name}\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = String::new();
        tls.read_to_string(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Fetched {
            response,
            alpn,
            version,
        })
    };
    tokio::time::timeout(STEP_TIMEOUT, exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

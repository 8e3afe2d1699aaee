//! Whole-server tests: a backend on an ephemeral port in each connection mode, driven by hyper
//! clients over HTTP/1.1, h2c and TLS (trusting the backend's own certificate).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use trellis_testbackend::grpc::{code, encode};
use trellis_testbackend::handler::STATIC_BODY;
use trellis_testbackend::{Config, Protocol, Server};

/// How the client speaks to the backend.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Client {
    H1,
    H2c,
    TlsH1,
    TlsH2,
}

struct Backend {
    addr: SocketAddr,
    cert: Option<CertificateDer<'static>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start(name: &str, protocol: Protocol, grpc: bool) -> Backend {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        name: name.to_owned(),
        protocol,
        grpc,
    };
    let server = Server::new(listener, config).unwrap();
    let addr = server.local_addr().unwrap();
    let cert = server.certificate().cloned();
    let task = tokio::spawn(server.run());
    Backend { addr, cert, task }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Sends one request on a new connection.
async fn send(
    backend: &Backend,
    client: Client,
    req: Request<Full<Bytes>>,
) -> Result<Answer, hyper::Error> {
    let tcp = TcpStream::connect(backend.addr).await.unwrap();
    let resp = match client {
        Client::H1 => h1(TokioIo::new(tcp), req).await?,
        Client::H2c => h2(TokioIo::new(tcp), req).await?,
        Client::TlsH1 | Client::TlsH2 => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(backend.cert.clone().unwrap()).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![if client == Client::TlsH2 {
                b"h2".to_vec()
            } else {
                b"http/1.1".to_vec()
            }];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = ServerName::try_from("localhost").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            if client == Client::TlsH2 {
                assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
                h2(TokioIo::new(tls), req).await?
            } else {
                h1(TokioIo::new(tls), req).await?
            }
        }
    };
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

async fn h1<T>(
    io: TokioIo<T>,
    req: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    sender.send_request(req).await
}

async fn h2<T>(
    io: TokioIo<T>,
    req: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
    tokio::spawn(conn);
    sender.send_request(req).await
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    request("GET", uri, Bytes::new())
}

fn request(method: &str, uri: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("http://backend.test{uri}"))
        .header("x-test", "one")
        .body(Full::new(body.into()))
        .unwrap()
}

/// Every connection mode with every client that should work against it.
const MODES: &[(Protocol, &[Client])] = &[
    (Protocol::Http1, &[Client::H1]),
    (Protocol::H2c, &[Client::H2c]),
    (Protocol::Auto, &[Client::H1, Client::H2c]),
    (Protocol::Https, &[Client::TlsH1, Client::TlsH2]),
];

#[tokio::test]
async fn echo_in_every_mode() {
    for &(protocol, clients) in MODES {
        let backend = start("alpha", protocol, false).await;
        for &client in clients {
            let case = format!("{protocol:?} {client:?}");
            let answer = send(
                &backend,
                client,
                request("POST", "/a/b?x=1&y=2", vec![7u8; 100_000]),
            )
            .await
            .unwrap();
            assert_eq!(answer.status, StatusCode::OK, "{case}");
            assert_eq!(answer.headers["x-backend"], "alpha", "{case}");
            let doc = answer.json();
            let protocol_name = match client {
                Client::H1 | Client::TlsH1 => "HTTP/1.1",
                Client::H2c | Client::TlsH2 => "HTTP/2",
            };
            assert_eq!(doc["backend"], "alpha", "{case}");
            assert_eq!(doc["method"], "POST", "{case}");
            assert_eq!(doc["path"], "/a/b", "{case}");
            assert_eq!(doc["query"], "x=1&y=2", "{case}");
            assert_eq!(doc["protocol"], protocol_name, "{case}");
            assert_eq!(doc["bodyLength"], 100_000, "{case}");
            assert_eq!(doc["headers"]["x-test"], "one", "{case}");
            assert_eq!(doc["authority"], "backend.test", "{case}");
        }
    }
}

#[tokio::test]
async fn restricted_modes_refuse_the_other_protocol() {
    let cases = [(Protocol::Http1, Client::H2c), (Protocol::H2c, Client::H1)];
    for (protocol, client) in cases {
        let backend = start("alpha", protocol, false).await;
        assert!(
            send(&backend, client, get("/")).await.is_err(),
            "{protocol:?} must refuse {client:?}"
        );
    }
}

#[tokio::test]
async fn query_knobs_static_body_and_repeated_headers() {
    let backend = start("beta", Protocol::Auto, false).await;
    for client in [Client::H1, Client::H2c] {
        let answer = send(&backend, client, get("/big?bytes=200001"))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body.len(), 200_001);
        assert!(answer.body.iter().all(|&b| b == b'x'));

        let answer = send(&backend, client, get("/?status=418&delay_ms=1"))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::IM_A_TEAPOT);
        assert_eq!(answer.json()["backend"], "beta");

        let answer = send(&backend, client, get("/?bytes=many")).await.unwrap();
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);

        let answer = send(&backend, client, get("/static")).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(&answer.body[..], STATIC_BODY);
        assert_eq!(answer.headers["x-backend"], "beta");

        let mut req = get("/");
        req.headers_mut()
            .append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        req.headers_mut()
            .append("x-forwarded-for", "5.6.7.8".parse().unwrap());
        let answer = send(&backend, client, req).await.unwrap();
        assert_eq!(
            answer.json()["headers"]["x-forwarded-for"],
            "1.2.3.4, 5.6.7.8"
        );
    }
}

#[tokio::test]
async fn health_status_is_controllable() {
    let backend = start("gamma", Protocol::Auto, false).await;
    let cases: &[(&str, &str, StatusCode)] = &[
        ("GET", "/health", StatusCode::OK),
        ("POST", "/_control/health?status=503", StatusCode::OK),
        ("GET", "/health", StatusCode::SERVICE_UNAVAILABLE),
        (
            "POST",
            "/_control/health?status=99",
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/_control/health", StatusCode::BAD_REQUEST),
        ("GET", "/health", StatusCode::SERVICE_UNAVAILABLE),
        ("POST", "/_control/health?status=200", StatusCode::OK),
        ("GET", "/health", StatusCode::OK),
    ];
    for (method, uri, want) in cases {
        let answer = send(&backend, Client::H1, request(method, uri, Bytes::new()))
            .await
            .unwrap();
        assert_eq!(answer.status, *want, "{method} {uri}");
    }
    let stats = send(&backend, Client::H1, get("/_control/stats"))
        .await
        .unwrap();
    let stats = stats.json();
    assert_eq!(stats["healthChecks"], 4);
    assert_eq!(stats["requests"], 0);
}

#[tokio::test]
async fn slow_stream_waits_for_its_release() {
    let backend = start("delta", Protocol::Auto, false).await;
    let tcp = TcpStream::connect(backend.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(get("/slow-stream?chunks=3&interval_ms=1&wait=k1"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"chunk 0\n");

    let released = send(
        &backend,
        Client::H1,
        request("POST", "/_control/release?key=k1", Bytes::new()),
    )
    .await
    .unwrap();
    assert_eq!(released.status, StatusCode::OK);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"chunk 1\nchunk 2\n");
}

fn grpc(path: &str, messages: &[&[u8]], metadata: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut wire = Vec::new();
    for m in messages {
        wire.extend_from_slice(&encode(m));
    }
    let mut req = request("POST", path, wire);
    req.headers_mut()
        .insert("content-type", "application/grpc".parse().unwrap());
    req.headers_mut().insert("te", "trailers".parse().unwrap());
    for (name, value) in metadata {
        req.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    req
}

#[tokio::test]
async fn grpc_methods() {
    struct Case {
        path: &'static str,
        messages: &'static [&'static [u8]],
        metadata: &'static [(&'static str, &'static str)],
        want_messages: &'static [&'static [u8]],
        want_status: u32,
    }
    let cases = [
        Case {
            path: "/test.Echo/Unary",
            messages: &[b"ping"],
            metadata: &[],
            want_messages: &[b"ping"],
            want_status: code::OK,
        },
        Case {
            path: "/test.Echo/ServerStream",
            messages: &[b"tick"],
            metadata: &[("x-count", "4")],
            want_messages: &[b"tick", b"tick", b"tick", b"tick"],
            want_status: code::OK,
        },
        Case {
            path: "/test.Echo/ClientStream",
            messages: &[b"ab", b"", b"cd"],
            metadata: &[],
            want_messages: &[b"abcd"],
            want_status: code::OK,
        },
        Case {
            path: "/test.Echo/Fail",
            messages: &[b"x"],
            metadata: &[],
            want_messages: &[],
            want_status: code::INTERNAL,
        },
        Case {
            path: "/test.Echo/Fail",
            messages: &[b"x"],
            metadata: &[("x-grpc-status", "14")],
            want_messages: &[],
            want_status: 14,
        },
        Case {
            path: "/test.Echo/Unary",
            messages: &[b"a", b"b"],
            metadata: &[],
            want_messages: &[],
            want_status: code::INVALID_ARGUMENT,
        },
        Case {
            path: "/test.Echo/Nope",
            messages: &[b"x"],
            metadata: &[],
            want_messages: &[],
            want_status: code::UNIMPLEMENTED,
        },
    ];
    for protocol in [Protocol::H2c, Protocol::Https] {
        let backend = start("grpc", protocol, true).await;
        let client = if protocol == Protocol::Https {
            Client::TlsH2
        } else {
            Client::H2c
        };
        for case in &cases {
            let what = format!("{protocol:?} {} {:?}", case.path, case.metadata);
            let answer = send(
                &backend,
                client,
                grpc(case.path, case.messages, case.metadata),
            )
            .await
            .unwrap();
            assert_eq!(answer.status, StatusCode::OK, "{what}");
            assert_eq!(answer.headers["content-type"], "application/grpc", "{what}");
            assert_eq!(answer.headers["x-backend"], "grpc", "{what}");
            let mut want = Vec::new();
            for m in case.want_messages {
                want.extend_from_slice(&encode(m));
            }
            assert_eq!(&answer.body[..], &want[..], "{what}");
            let trailers = answer.trailers.expect("grpc-status comes in trailers");
            assert_eq!(
                trailers["grpc-status"],
                case.want_status.to_string().as_str(),
                "{what}"
            );
        }
        // Without the gRPC content type the same path is an ordinary echo.
        let answer = send(&backend, client, get("/test.Echo/Unary"))
            .await
            .unwrap();
        assert_eq!(answer.json()["path"], "/test.Echo/Unary");
    }
}

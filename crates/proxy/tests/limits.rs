//! Connection limits over real sockets: the handshake deadline (silent connections, a TLS
//! ClientHello that never ends), the header-read timeout (one byte, half a head, a head trickled
//! byte by byte, half an HTTP/2 preface) and that it leaves idle keep-alive connections to the
//! idle timeout; the connection caps (per client address, per port, total) closing excess
//! connections at accept while admitted ones are still served; and request bodies the client
//! breaks (a bad chunk size, a body cut short) answered with 400, not 502.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use trellis_model::resources::AuthType;
use trellis_model::resources::listener::ListenerProtocol::{Http, Https};
use trellis_model::resources::target_group::ProtocolVersion::Http1;
use trellis_model::resources::target_group::TargetGroupProtocol;
use trellis_proxy::{ConnLimits, ProxyConfig};

const TG: &str = "tg-0000000000000000b";
/// The most any close the tests wait for may take: far above every configured deadline, so a
/// slow machine does not fail them, and far below "never".
const CLOSE_BOUND: Duration = Duration::from_secs(15);

fn config(limits: ConnLimits, idle: Duration) -> ProxyConfig {
    ProxyConfig {
        idle_timeout: idle,
        limits,
        ..ProxyConfig::default()
    }
}

fn limits(handshake: Duration, header: Duration) -> ConnLimits {
    ConnLimits {
        handshake_timeout: handshake,
        header_read_timeout: header,
        ..ConnLimits::default()
    }
}

/// One service `name` with an HTTP and an HTTPS listener on `port` answering 404 to everything.
fn fixed_world(name: &str, port: u16) -> World {
    World::default().with_service(service(
        name,
        AuthType::None,
        vec![listener(port, Http, fixed(404), vec![])],
    ))
}

/// A client socket bound to `source` (any 127/8 address is loopback) connected to the proxy.
async fn connect_from(source: &str, port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// Reads until the proxy closes the connection (EOF or reset) and returns what it sent, or
/// panics when it is still open after `bound`.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!("{what}: still open after {bound:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return received,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Whether the connection stays open (nothing read, no EOF) for `period`.
async fn stays_open(stream: &mut TcpStream, period: Duration) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(period, stream.read(&mut buf))
        .await
        .is_err()
}

fn request(name: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nhost: {}\r\n\r\n", host(name)).into_bytes()
}

/// How a slow client behaves after connecting.
#[derive(Clone, Copy, Debug)]
enum Slow {
    /// Sends these bytes, then nothing.
    Sends(&'static [u8]),
    /// Sends these bytes one at a time, 100 ms apart, over and over, until the proxy closes.
    Trickles(&'static [u8]),
}

/// HTTP/2's preface followed by the header of a 6-byte SETTINGS frame and half its payload.
const PREFACE_HALF_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00";
/// The start of a TLS record carrying a ClientHello (type 0x16, TLS 1.0 record version, 512
/// bytes announced) and the first bytes of the handshake message; the rest never comes.
const PARTIAL_CLIENT_HELLO: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";

/// Every way of holding a connection without completing a request is cut off by the deadline
/// that covers it, with the idle timeout far away: silence and a stalled TLS handshake by the
/// handshake deadline (from accept), everything after the first byte of a head by the
/// header-read timeout — even a head that keeps trickling in (progress does not extend it).
#[tokio::test]
async fn slow_connections_are_closed_by_their_deadline() {
    let handshake = Duration::from_millis(400);
    let header = Duration::from_millis(1200);
    let harness = Harness::with_config(config(limits(handshake, header), Duration::from_secs(600)));
    let port = free_port();
    harness.apply_ok(&fixed_world("slow", port)).await;

    // (case, behaviour, the deadline that must close it)
    let cases: Vec<(&str, Slow, Duration)> = vec![
        ("silent", Slow::Sends(b""), handshake),
        (
            "partial ClientHello",
            Slow::Sends(PARTIAL_CLIENT_HELLO),
            handshake,
        ),
        ("one byte", Slow::Sends(b"G"), header),
        (
            "half a head",
            Slow::Sends(b"GET / HTTP/1.1\r\nhost: slow.trellis.test\r\n"),
            header,
        ),
        (
            "a trickled head",
            Slow::Trickles(b"GET / HTTP/1.1\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            header,
        ),
        (
            "a prefix of both HTTP/1.1 and HTTP/2",
            Slow::Sends(b"P"),
            header,
        ),
        (
            "half the HTTP/2 preface",
            Slow::Sends(b"PRI * HTTP/2.0\r\n"),
            header,
        ),
        (
            "the HTTP/2 preface and half a SETTINGS frame",
            Slow::Sends(PREFACE_HALF_SETTINGS),
            header,
        ),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for (case, slow, deadline) in cases {
        tasks.spawn(async move {
            let started = Instant::now();
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (mut read, mut write) = stream.into_split();
            let writer = tokio::spawn(async move {
                match slow {
                    Slow::Sends(bytes) => {
                        let _ = write.write_all(bytes).await;
                        // Keep the write half open (dropping it would send FIN).
                        std::future::pending::<()>().await;
                    }
                    Slow::Trickles(bytes) => {
                        for byte in bytes.iter().cycle() {
                            if write.write_all(&[*byte]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
            let mut buf = [0u8; 256];
            let closed = tokio::time::timeout(CLOSE_BOUND, async {
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            writer.abort();
            let elapsed = started.elapsed();
            assert!(closed.is_ok(), "{case}: still open after {CLOSE_BOUND:?}");
            // Closed by its deadline, not before (a little slack for timer granularity).
            assert!(
                elapsed + Duration::from_millis(50) >= deadline,
                "{case}: closed after {elapsed:?}, before its deadline {deadline:?}"
            );
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
}

/// The header-read timeout counts from a head's first byte: a keep-alive HTTP/1.1 connection
/// idle between requests, and an HTTP/2 connection past its preface and SETTINGS, are left to
/// the idle timeout.
#[tokio::test]
async fn idle_connections_wait_for_the_idle_timeout_not_the_header_timeout() {
    let header = Duration::from_millis(300);
    let idle = Duration::from_secs(2);
    let harness = Harness::with_config(config(limits(Duration::from_secs(5), header), idle));
    let port = free_port();
    harness.apply_ok(&fixed_world("keep", port)).await;

    // HTTP/1.1: two requests, with three header-read timeouts between them.
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    for _ in 0..2 {
        stream.write_all(&request("keep")).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(text.starts_with("HTTP/1.1 404"), "{text}");
        assert!(
            stays_open(&mut stream, header * 3).await,
            "an idle keep-alive connection was closed before the idle timeout"
        );
    }

    // HTTP/2: the preface and an empty SETTINGS frame; then the connection is idle, and only
    // the idle timeout (GOAWAY, then close) ends it.
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let frames = read_until_closed(&mut stream, CLOSE_BOUND, "idle HTTP/2").await;
    let elapsed = started.elapsed();
    assert!(
        elapsed + Duration::from_millis(50) >= idle,
        "an idle HTTP/2 connection was closed after {elapsed:?}, before the idle timeout"
    );
    assert!(
        h2_frame_types(&frames).contains(&0x7),
        "no GOAWAY before the close: {frames:?}"
    );
}

/// The types of the HTTP/2 frames in `bytes`.
fn h2_frame_types(mut bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    while bytes.len() >= 9 {
        let length =
            (usize::from(bytes[0]) << 16) | (usize::from(bytes[1]) << 8) | usize::from(bytes[2]);
        types.push(bytes[3]);
        bytes = &bytes[(9 + length).min(bytes.len())..];
    }
    types
}

/// Over TLS the first request's head is timed from the end of the handshake: a client that
/// completes the handshake and sends nothing is closed after the header-read timeout.
#[tokio::test]
async fn tls_connection_without_a_request_is_closed_after_the_header_timeout() {
    let header = Duration::from_millis(500);
    let harness = Harness::with_config(config(
        limits(Duration::from_secs(5), header),
        Duration::from_secs(600),
    ));
    let port = free_port();
    let world = World::default().with_service(service(
        "quiet",
        AuthType::None,
        vec![listener(port, Https, fixed(404), vec![])],
    ));
    harness.apply_ok(&world).await;

    let config = trellis_tls::client_config_trusting(&harness.ca_pem).unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(host("quiet")).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(CLOSE_BOUND, tls.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() + Duration::from_millis(50) >= header);
}

/// Per client address: the connection over the cap is closed at once (long before any
/// deadline), the admitted ones are still served, and another address is not affected.
#[tokio::test]
async fn per_source_cap_closes_the_excess_connection_only() {
    let harness = Harness::with_config(config(
        ConnLimits {
            max_connections_per_source: 2,
            ..limits(Duration::from_secs(60), Duration::from_secs(60))
        },
        Duration::from_secs(600),
    ));
    let port = free_port();
    harness.apply_ok(&fixed_world("capped", port)).await;

    let mut first = connect_from("127.0.0.1", port).await;
    let mut second = connect_from("127.0.0.1", port).await;
    // Admission happens at accept; the third is refused whatever it sends.
    let mut third = connect_from("127.0.0.1", port).await;
    let _ = third.write_all(&request("capped")).await;
    let started = Instant::now();
    let answer = read_until_closed(&mut third, CLOSE_BOUND, "the third connection").await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(harness.proxy.stats().refused_connections, 1);

    for (what, stream) in [("first", &mut first), ("second", &mut second)] {
        stream.write_all(&request("capped")).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 404"), "{what}: {text}");
    }
    let mut other = connect_from("127.0.0.2", port).await;
    other.write_all(&request("capped")).await.unwrap();
    let mut buf = [0u8; 1024];
    let n = other.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"));

    // A closed connection frees its place.
    drop(first);
    wait_for_connections(&harness, 2).await;
    let mut again = connect_from("127.0.0.1", port).await;
    again.write_all(&request("capped")).await.unwrap();
    let n = again.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"));
}

/// Waits (bounded) until the proxy counts `n` open client connections.
async fn wait_for_connections(harness: &Harness, n: usize) {
    let deadline = Instant::now() + CLOSE_BOUND;
    while harness.proxy.stats().client_connections != n {
        assert!(
            Instant::now() < deadline,
            "client connections: {} (want {n})",
            harness.proxy.stats().client_connections
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The total and per-port caps: a full port refuses while another port still admits, until the
/// data plane's total is reached; every admitted connection is still served.
#[tokio::test]
async fn total_and_per_port_caps() {
    let harness = Harness::with_config(config(
        ConnLimits {
            max_connections: 3,
            max_connections_per_port: 2,
            ..limits(Duration::from_secs(60), Duration::from_secs(60))
        },
        Duration::from_secs(600),
    ));
    let (a, b) = (free_port(), free_port());
    let world = World::default()
        .with_service(service(
            "port-a",
            AuthType::None,
            vec![listener(a, Http, fixed(404), vec![])],
        ))
        .with_service(service(
            "port-b",
            AuthType::None,
            vec![listener(b, Http, fixed(404), vec![])],
        ));
    harness.apply_ok(&world).await;

    // Distinct sources, so that only the port and total caps are in play.
    let mut on_a1 = connect_from("127.0.0.11", a).await;
    let mut on_a2 = connect_from("127.0.0.12", a).await;
    wait_for_connections(&harness, 2).await;
    let mut refused_a = connect_from("127.0.0.13", a).await;
    read_until_closed(&mut refused_a, Duration::from_secs(10), "over the port cap").await;

    let mut on_b = connect_from("127.0.0.14", b).await;
    wait_for_connections(&harness, 3).await;
    let mut refused_b = connect_from("127.0.0.15", b).await;
    read_until_closed(
        &mut refused_b,
        Duration::from_secs(10),
        "over the total cap",
    )
    .await;
    assert_eq!(harness.proxy.stats().refused_connections, 2);

    for (name, stream) in [
        ("port-a", &mut on_a1),
        ("port-a", &mut on_a2),
        ("port-b", &mut on_b),
    ] {
        stream.write_all(&request(name)).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"));
    }
}

/// A request body the client breaks is the client's failure: an invalid chunk size, and a body
/// shorter than its Content-Length when the client stops sending, get 400 — not the 502 of a
/// failed target exchange. The target (`/never` never answers) cannot have caused either.
#[tokio::test]
async fn broken_request_bodies_are_400() {
    let harness = Harness::new();
    let backend = Backend::start("bodies", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    let world = World::default()
        .with_service(service(
            "bodies",
            AuthType::None,
            vec![listener(port, Http, forward(&[(TG, 100)]), vec![])],
        ))
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Http1,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;

    let head = |framing: &str| {
        format!(
            "POST /never HTTP/1.1\r\nhost: {}\r\n{framing}\r\n\r\n",
            host("bodies")
        )
    };
    // (case, what the client sends before it stops writing (a half-close, so that it can
    // still read the answer))
    let cases: Vec<(&str, String)> = vec![
        (
            "bad chunk size",
            head("transfer-encoding: chunked") + "zz\r\n",
        ),
        (
            "chunk size overflow",
            head("transfer-encoding: chunked") + "fffffffffffffffff0\r\n",
        ),
        (
            "bad chunk after good data",
            head("transfer-encoding: chunked") + "5\r\nhello\r\n-3\r\n",
        ),
        (
            "body shorter than its content-length",
            head("content-length: 100") + "only ten b",
        ),
        (
            "chunked body cut short",
            head("transfer-encoding: chunked") + "a\r\nabc",
        ),
    ];
    for (case, bytes) in cases {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.write_all(bytes.as_bytes()).await.unwrap();
        stream.shutdown().await.unwrap();
        let answer = read_until_closed(&mut stream, CLOSE_BOUND, case).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 400"), "{case}: {text}");
    }
}

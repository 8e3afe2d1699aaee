//! One authority and one path (issue 9, defects 5 and 6): the Host a target sees is the one
//! Trellis routed on, whatever the client combined (absolute-form targets, repeated `Host`,
//! HTTP/2 `:authority` with `host`, `Connection: host`, TLS server name), and path rules see the
//! same normalised path the target receives, so no spelling of `/admin` gets past a rule on it.
//! HTTP/1.1 requests go over raw sockets, byte for byte as written; HTTP/2 through hyper's
//! client.

mod support;

use std::time::Duration;

use http::{HeaderValue, StatusCode};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis_model::resources::AuthType;
use trellis_model::resources::listener::ListenerProtocol::{Http, Https};
use trellis_model::resources::target_group::ProtocolVersion::Http1;
use trellis_model::resources::target_group::TargetGroupProtocol;

const TG: &str = "tg-0000000000000000a";

/// Two services on one port forwarding to the same backend: `open` (auth NONE, with an
/// `/admin` prefix rule answering a fixed 404) and `locked` (AWS_IAM). A target serving both
/// names by virtual host must never answer for `locked` through `open`.
async fn two_services(protocol: trellis_model::resources::listener::ListenerProtocol) -> Setup {
    let harness = Harness::new();
    let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    let world = World::default()
        .with_service(service(
            "open",
            AuthType::None,
            vec![listener(
                port,
                protocol,
                forward(&[(TG, 1)]),
                vec![prefix_rule(10, "/admin", fixed(404))],
            )],
        ))
        .with_service(service(
            "locked",
            AuthType::AwsIam,
            vec![listener(port, protocol, forward(&[(TG, 1)]), vec![])],
        ))
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Http1,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;
    Setup {
        harness,
        backend,
        port,
    }
}

struct Setup {
    harness: Harness,
    backend: Backend,
    port: u16,
}

impl Setup {
    fn authority(&self, name: &str) -> String {
        format!("{}:{}", host(name), self.port)
    }
}

/// Sends `head` (request line and fields, without the final blank line) plus
/// `Connection: close` on a new connection; the status and body of the answer.
async fn raw(port: u16, head: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("{head}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the proxy closes the connection after answering")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The `Host` fields a backend request carried.
fn hosts(seen: &Seen) -> Vec<&str> {
    seen.headers
        .get_all("host")
        .iter()
        .map(|h| h.to_str().unwrap())
        .collect()
}

/// HTTP/1.1 host tricks over a raw socket: each refused one is a 400 that reaches no target;
/// each served one reaches the target with exactly one Host, the routed service's.
#[tokio::test]
async fn http1_host_tricks() {
    let s = two_services(Http).await;
    let (open, locked) = (s.authority("open"), s.authority("locked"));

    // (request head, status)
    let refused = [
        (
            format!("GET / HTTP/1.1\r\nHost: {open}\r\nHost: {locked}"),
            "two Host fields",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: {open}\r\nHost: {open}"),
            "two equal Host fields",
        ),
        (
            format!("GET http://{locked}/ HTTP/1.1\r\nHost: {open}"),
            "absolute-form naming the IAM service, Host the open one",
        ),
        (
            format!("GET http://{open}/ HTTP/1.1\r\nHost: {locked}"),
            "absolute-form naming the open service, Host the IAM one",
        ),
        (
            format!("GET http://{open}/ HTTP/1.1\r\nHost: {}", host("open")),
            "absolute-form with a port, Host without",
        ),
        (
            format!("GET http://x@{open}/ HTTP/1.1\r\nHost: {open}"),
            "user information in the target",
        ),
        (
            format!("GET / HTTP/1.1\r\nHost: x@{open}"),
            "user information in Host",
        ),
    ];
    for (head, why) in &refused {
        let (status, body) = raw(s.port, head).await;
        assert_eq!(status, 400, "{why}");
        assert_eq!(body, "Bad Request", "{why}");
    }
    assert!(
        s.backend.seen().is_empty(),
        "a refused request reached the target"
    );

    // (request head, URI the target sees)
    let served = [
        (
            format!("GET http://{open}/x?y=1 HTTP/1.1\r\nHost: {open}"),
            "/x?y=1",
        ),
        (
            format!(
                "GET http://{}/x HTTP/1.1\r\nHost: {open}",
                open.to_ascii_uppercase()
            ),
            "/x",
        ),
        (format!("GET http://{open}/x HTTP/1.1"), "/x"),
        (
            format!("GET /x HTTP/1.1\r\nHost: {open}\r\nConnection: host"),
            "/x",
        ),
        (
            format!("GET /x HTTP/1.1\r\nHost: {open}\r\nConnection: Host, x-forwarded-for"),
            "/x",
        ),
    ];
    for (n, (head, uri)) in served.iter().enumerate() {
        let (status, _) = raw(s.port, head).await;
        assert_eq!(status, 200, "{head}");
        let seen = s.backend.seen();
        assert_eq!(seen.len(), n + 1, "{head}");
        let last = seen.last().unwrap();
        assert_eq!(last.uri, *uri, "{head}");
        let hosts = hosts(last);
        assert_eq!(hosts.len(), 1, "{head}: {hosts:?}");
        assert!(hosts[0].eq_ignore_ascii_case(&open), "{head}: {hosts:?}");
        assert_eq!(last.header("x-forwarded-for"), Some("127.0.0.1"), "{head}");
    }
}

/// HTTP/2: a `host` field that differs from `:authority` is a 400; an equal one is served and
/// the target gets one Host.
#[tokio::test]
async fn h2_authority_and_host_must_agree() {
    let s = two_services(Http).await;
    let mut client =
        Client::connect(ClientKind::H2c, s.port, &host("open"), &s.harness.ca_pem).await;

    let mut req = client.request("GET", "/x").body(empty()).unwrap();
    req.headers_mut().insert(
        "host",
        HeaderValue::from_str(&s.authority("locked")).unwrap(),
    );
    let reply = client.send(req).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.header("x-amzn-requestid").is_some());
    assert!(s.backend.seen().is_empty());

    let mut req = client.request("GET", "/x").body(empty()).unwrap();
    req.headers_mut()
        .insert("host", HeaderValue::from_str(&s.authority("open")).unwrap());
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    let seen = s.backend.last();
    assert_eq!(hosts(&seen), [s.authority("open")]);
    assert_eq!(seen.uri, "/x");

    // `:authority` alone: the target gets it as Host.
    assert_eq!(client.get("/y").await.status, StatusCode::OK);
    assert_eq!(hosts(&s.backend.last()), [s.authority("open")]);
}

/// Over TLS the server name picks the service; a Host naming another served service, or one
/// Trellis does not serve at all, is 421, so the target only ever sees a name of the service
/// routed on.
#[tokio::test]
async fn tls_host_must_name_the_server_names_service() {
    let s = two_services(Https).await;
    for (served, kind) in [ClientKind::TlsH1, ClientKind::TlsH2]
        .into_iter()
        .enumerate()
    {
        let mut client = Client::connect(kind, s.port, &host("open"), &s.harness.ca_pem).await;
        for other in [s.authority("locked"), "nobody.trellis.test".to_string()] {
            let req = if kind == ClientKind::TlsH2 {
                http::Request::get(format!("https://{other}/x"))
                    .version(http::Version::HTTP_2)
                    .body(empty())
                    .unwrap()
            } else {
                let mut req = client.request("GET", "/x").body(empty()).unwrap();
                req.headers_mut()
                    .insert("host", HeaderValue::from_str(&other).unwrap());
                req
            };
            let reply = client.send(req).await;
            assert_eq!(
                reply.status,
                StatusCode::MISDIRECTED_REQUEST,
                "{other} {kind:?}"
            );
        }
        assert_eq!(s.backend.seen().len(), served, "{kind:?}");
        assert_eq!(client.get("/x").await.status, StatusCode::OK, "{kind:?}");
        assert_eq!(hosts(&s.backend.last()), [s.authority("open")], "{kind:?}");
    }
    // An HTTP/1.1 client that sends no Host over TLS: the target gets the server name.
    let mut client =
        Client::connect(ClientKind::TlsH1, s.port, &host("open"), &s.harness.ca_pem).await;
    let req = http::Request::get("/x").body(empty()).unwrap();
    assert_eq!(client.send(req).await.status, StatusCode::OK);
    assert_eq!(hosts(&s.backend.last()), [host("open")]);
}

/// Every spelling of `/admin` meets the `/admin` rule (404) or is refused as ambiguous (400);
/// none reaches the target. Over raw HTTP/1.1 and over HTTP/2.
#[tokio::test]
async fn path_rules_see_the_normalised_path() {
    let s = two_services(Http).await;
    let open = s.authority("open");
    // (path, status)
    let cases = [
        ("/admin/x", 404),
        ("/ADMIN/x", 404),
        ("/./admin/x", 404),
        ("//admin/x", 404),
        ("/x/../admin/x", 404),
        ("/%61dmin/x", 404),
        ("/%41DMIN/x", 404),
        ("/%2e%2e/admin/x", 404),
        ("/%2E%2E/admin/x", 404),
        ("/.%2e/admin/x", 404),
        ("/x/%2e%2e/admin", 404),
        ("/x/..", 200),
        ("/.%2fadmin/x", 400),
        ("/.%2Fadmin/x", 400),
        ("/x/..;/admin/x", 400),
        ("/x/..%3b/admin/x", 400),
        ("/admin%2fx", 400),
        ("/x%00/../admin", 400),
        ("/%zz/admin", 400),
    ];
    let mut forwarded = 0;
    for (path, status) in cases {
        let (got, _) = raw(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {open}")).await;
        assert_eq!(got, status, "HTTP/1.1 {path}");
        let mut client =
            Client::connect(ClientKind::H2c, s.port, &host("open"), &s.harness.ca_pem).await;
        assert_eq!(client.get(path).await.status.as_u16(), status, "h2 {path}");
        if status == 200 {
            forwarded += 2;
        }
    }
    let seen = s.backend.seen();
    assert_eq!(seen.len(), forwarded);
    assert!(seen.iter().all(|r| r.uri == "/"), "{seen:?}");

    // An allowed path reaches the target normalised, its query string untouched.
    // (path sent, URI the target sees)
    let allowed = [
        ("/x/./y/../z?q=%2e%2E/../&a=b", "/x/z?q=%2e%2E/../&a=b"),
        ("/%7Euser//docs/", "/~user/docs/"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/adminx/../admin-not", "/admin-not"),
    ];
    for (path, expected) in allowed {
        let (got, _) = raw(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {open}")).await;
        let expected_status = if expected.starts_with("/admin") {
            404
        } else {
            200
        };
        assert_eq!(got, expected_status, "{path}");
        if expected_status == 200 {
            assert_eq!(s.backend.last().uri, expected, "{path}");
        }
    }
}

/// The auth stage names the normalised path in the resource it denies.
#[tokio::test]
async fn auth_resource_uses_the_normalised_path() {
    let s = two_services(Http).await;
    let locked = s.authority("locked");
    let (status, body) = raw(
        s.port,
        &format!("GET /x/../orders/%31?a=%2e HTTP/1.1\r\nHost: {locked}"),
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        body.contains(&format!(
            "on resource: {}/orders/1 because",
            service_arn("locked")
        )),
        "{body}"
    );
    assert!(s.backend.seen().is_empty());
}

//! The proxy over real sockets: protocols and conversions between them, TLS, streaming and
//! trailers, routing outcomes, headers, limits, auth, retries and failures, and listener
//! reconciliation. Every test builds its snapshot by hand, serves it on ephemeral ports and
//! talks to hyper backends that record what they receive.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Frame;
use support::*;
use trellis_model::resources::AuthType;
use trellis_model::resources::listener::ListenerProtocol::{Http, Https};
use trellis_model::resources::target_group::ProtocolVersion::{Grpc, Http1, Http2};
use trellis_model::resources::target_group::TargetGroupProtocol;
use trellis_proxy::{NON_EXISTENT_SERVICE, ProxyConfig};

const TG: &str = "tg-0000000000000000a";

/// One service `name` with an HTTP listener on `port` forwarding everything to group `TG`.
fn simple_world(name: &str, port: u16, group: trellis_snapshot::TargetGroupEntry) -> World {
    World::default()
        .with_service(service(
            name,
            AuthType::None,
            vec![listener(port, Http, forward(&[(TG, 100)]), vec![])],
        ))
        .with_group(group)
}

fn assert_forwarded(seen: &Seen, port: u16, proto: &str, name: &str) {
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(
        seen.header("x-forwarded-port"),
        Some(port.to_string().as_str())
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some(proto));
    assert_eq!(
        seen.header("x-amzn-lattice-target"),
        Some(
            format!(
                "ServiceArn={}; ServiceNetworkArn={}; TargetGroupArn={}",
                service_arn(name),
                network_arn(name),
                group_arn(TG)
            )
            .as_str()
        )
    );
    assert_eq!(seen.header("x-amzn-lattice-network"), Some("SourceVpcArn="));
    assert!(seen.header("x-amzn-requestid").is_some());
}

/// Every combination of client protocol and target protocol: the target receives the request
/// in its own protocol with the authority carried over, and the client gets the answer in its.
#[tokio::test]
async fn protocol_conversions_between_client_and_target() {
    // (client, target group protocol version, backend, version the backend must see)
    let cases = [
        (ClientKind::H1, Http1, BackendKind::H1, Version::HTTP_11),
        (ClientKind::H2c, Http1, BackendKind::H1, Version::HTTP_11),
        (ClientKind::H1, Http2, BackendKind::H2c, Version::HTTP_2),
        (ClientKind::H2c, Http2, BackendKind::H2c, Version::HTTP_2),
        (ClientKind::H2c, Grpc, BackendKind::H2c, Version::HTTP_2),
    ];
    for (client_kind, version, backend_kind, seen_version) in cases {
        let harness = Harness::new();
        let backend = Backend::start("b", backend_kind, &harness.ca).await;
        let port = free_port();
        let world = simple_world(
            "conv",
            port,
            target_group(TG, TargetGroupProtocol::Http, version, &[backend.addr]),
        );
        harness.apply_ok(&world).await;

        let mut client = Client::connect(client_kind, port, &host("conv"), &harness.ca_pem).await;
        let reply = client.get("/hello?x=1").await;
        let case = format!("{client_kind:?} → {version:?}");
        assert_eq!(reply.status, StatusCode::OK, "{case}");
        assert_eq!(reply.text(), "b", "{case}");
        assert!(reply.header("x-amzn-requestid").is_some(), "{case}");
        assert_eq!(
            reply.version,
            if client_kind.is_h2() {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            },
            "{case}"
        );

        let seen = backend.last();
        assert_eq!(seen.version, seen_version, "{case}");
        assert_eq!(seen.method, "GET", "{case}");
        assert_forwarded(&seen, port, "http", "conv");
        let authority = format!("{}:{port}", host("conv"));
        if seen_version == Version::HTTP_2 {
            assert_eq!(seen.uri, format!("http://{authority}/hello?x=1"), "{case}");
            assert_eq!(seen.header("host"), None, "{case}");
        } else {
            assert_eq!(seen.uri, "/hello?x=1", "{case}");
            assert_eq!(seen.header("host"), Some(authority.as_str()), "{case}");
        }
        assert_eq!(
            seen.header("x-amzn-requestid"),
            reply.header("x-amzn-requestid"),
            "{case}"
        );
    }
}

/// HTTPS listeners: TLS with the Trellis CA, ALPN h2 and http/1.1, to clear-text and TLS targets
/// (the latter with a certificate no one verifies).
#[tokio::test]
async fn https_listener_with_alpn_to_targets() {
    // (client, target protocol, version, backend)
    let cases = [
        (
            ClientKind::TlsH1,
            TargetGroupProtocol::Http,
            Http1,
            BackendKind::H1,
        ),
        (
            ClientKind::TlsH2,
            TargetGroupProtocol::Http,
            Http1,
            BackendKind::H1,
        ),
        (
            ClientKind::TlsH2,
            TargetGroupProtocol::Http,
            Http2,
            BackendKind::H2c,
        ),
        (
            ClientKind::TlsH1,
            TargetGroupProtocol::Https,
            Http1,
            BackendKind::Tls,
        ),
        (
            ClientKind::TlsH2,
            TargetGroupProtocol::Https,
            Http2,
            BackendKind::Tls,
        ),
    ];
    for (client_kind, protocol, version, backend_kind) in cases {
        let harness = Harness::new();
        let backend = Backend::start("secure", backend_kind, &harness.ca).await;
        let port = free_port();
        let world = World::default()
            .with_service(service(
                "tls",
                AuthType::None,
                vec![listener(port, Https, forward(&[(TG, 100)]), vec![])],
            ))
            .with_group(target_group(TG, protocol, version, &[backend.addr]));
        harness.apply_ok(&world).await;

        let case = format!("{client_kind:?} → {protocol:?} {version:?}");
        let mut client = Client::connect(client_kind, port, &host("tls"), &harness.ca_pem).await;
        let reply = client.get("/").await;
        assert_eq!(reply.status, StatusCode::OK, "{case}");
        assert_eq!(reply.text(), "secure", "{case}");
        let seen = backend.last();
        assert_forwarded(&seen, port, "https", "tls");
        let want = if version == Http1 {
            Version::HTTP_11
        } else {
            Version::HTTP_2
        };
        assert_eq!(seen.version, want, "{case}");
        if want == Version::HTTP_2 {
            let scheme = if protocol == TargetGroupProtocol::Https {
                "https"
            } else {
                "http"
            };
            assert!(
                seen.uri.starts_with(&format!("{scheme}://{}", host("tls"))),
                "{case}: {}",
                seen.uri
            );
        }
    }
}

/// Bodies stream both ways: the client receives the first echoed chunk before it sends the
/// second, which only works if neither direction is buffered whole.
#[tokio::test]
async fn bodies_stream_both_ways() {
    for (client_kind, version, backend_kind) in [
        (ClientKind::H1, Http1, BackendKind::H1),
        (ClientKind::H2c, Http2, BackendKind::H2c),
        (ClientKind::H1, Http2, BackendKind::H2c),
        (ClientKind::H2c, Http1, BackendKind::H1),
    ] {
        let harness = Harness::new();
        let backend = Backend::start("echo", backend_kind, &harness.ca).await;
        let port = free_port();
        let world = simple_world(
            "stream",
            port,
            target_group(TG, TargetGroupProtocol::Http, version, &[backend.addr]),
        );
        harness.apply_ok(&world).await;

        let mut client = Client::connect(client_kind, port, &host("stream"), &harness.ca_pem).await;
        let (mut tx, body) =
            http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(1);
        let req = client
            .request("POST", "/echo")
            .body(body.boxed_unsync())
            .unwrap();
        let case = format!("{client_kind:?} → {version:?}");
        let (response, ()) = tokio::join!(client.send_streaming(req), async {
            tx.send_data(Bytes::from_static(b"first")).await.unwrap();
        });
        assert_eq!(response.status(), StatusCode::OK, "{case}");
        let mut body = response.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "first", "{case}");
        tx.send_data(Bytes::from_static(b"second")).await.unwrap();
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(second, "second", "{case}");
        drop(tx);
        let rest = body.collect().await.unwrap().to_bytes();
        assert!(rest.is_empty(), "{case}");
    }
}

/// Trailers pass through HTTP/2 both ways (gRPC's `grpc-status`): the target's trailers reach the
/// client, and the client's trailers reach the target (echoed back).
#[tokio::test]
async fn trailers_pass_through_http2() {
    let harness = Harness::new();
    let backend = Backend::start("grpc", BackendKind::H2c, &harness.ca).await;
    let port = free_port();
    let world = World::default()
        .with_service(service(
            "grpc",
            AuthType::None,
            vec![listener(port, Https, forward(&[(TG, 100)]), vec![])],
        ))
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Grpc,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;

    let mut client = Client::connect(ClientKind::TlsH2, port, &host("grpc"), &harness.ca_pem).await;
    let req = client
        .request("POST", "/trailers")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(empty())
        .unwrap();
    let reply = client.send(req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, Bytes::from_static(b"\0\0\0\0\x02hi"));
    let trailers = reply.trailers.expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "fine");
    assert_eq!(backend.last().header("te"), Some("trailers"));

    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let body = Frames::new(vec![
        Frame::data(Bytes::from_static(b"payload")),
        Frame::trailers(trailers),
    ])
    .map_err(|_| unreachable!())
    .boxed_unsync();
    let req = client.request("POST", "/echo").body(body).unwrap();
    let reply = client.send(req).await;
    assert_eq!(reply.body, "payload");
    assert_eq!(
        reply.trailers.expect("echoed trailers")["x-checksum"],
        "abc"
    );
}

/// Rules pick the action: fixed responses carry their status and no body; forward rules reach
/// the target.
#[tokio::test]
async fn rules_fixed_responses_and_forwarding() {
    let harness = Harness::new();
    let backend = Backend::start("api", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    let world = World::default()
        .with_service(service(
            "rules",
            AuthType::None,
            vec![listener(
                port,
                Http,
                fixed(404),
                vec![
                    prefix_rule(10, "/api", forward(&[(TG, 1)])),
                    prefix_rule(20, "/broken", fixed(500)),
                ],
            )],
        ))
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Http1,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;

    let mut client = Client::connect(ClientKind::H1, port, &host("rules"), &harness.ca_pem).await;
    // (path, status, body)
    for (path, status, body) in [
        ("/api/users", 200, "api"),
        ("/broken/x", 500, ""),
        ("/other", 404, ""),
        ("/API", 200, "api"),
    ] {
        let reply = client.get(path).await;
        assert_eq!(reply.status.as_u16(), status, "{path}");
        assert_eq!(reply.text(), body, "{path}");
        assert!(reply.header("x-amzn-requestid").is_some(), "{path}");
    }
    assert_eq!(backend.seen().len(), 2);
}

/// Lattice's 404 for names that are not served, for a served name on a port where it has no
/// listener, and for a listener of the other protocol on the port.
#[tokio::test]
async fn unknown_host_and_missing_listener_are_404() {
    let harness = Harness::new();
    let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
    let (port_a, port_b) = (free_port(), free_port());
    let world = World::default()
        .with_service(service(
            "alpha",
            AuthType::None,
            vec![listener(port_a, Http, forward(&[(TG, 1)]), vec![])],
        ))
        .with_service(service(
            "beta",
            AuthType::None,
            vec![listener(port_b, Https, forward(&[(TG, 1)]), vec![])],
        ))
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Http1,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;

    // (client host, port, why)
    for (name, port, why) in [
        ("nobody.trellis.test".to_string(), port_a, "unknown host"),
        (host("beta"), port_a, "no listener of beta on alpha's port"),
        (
            host("alpha"),
            port_b,
            "alpha has no listener on beta's port",
        ),
    ] {
        for kind in [ClientKind::H1, ClientKind::H2c] {
            let mut client = Client::connect(kind, port, &name, &harness.ca_pem).await;
            let reply = client.get("/").await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{why} ({kind:?})");
            assert_eq!(reply.text(), NON_EXISTENT_SERVICE, "{why}");
            assert!(reply.header("x-amzn-requestid").is_some(), "{why}");
        }
    }
    // beta's HTTPS listener is on port_b; clear text to it is served by no HTTP listener.
    let mut client = Client::connect(ClientKind::H1, port_b, &host("beta"), &harness.ca_pem).await;
    assert_eq!(client.get("/").await.status, StatusCode::NOT_FOUND);
    // ...while TLS to it works.
    let mut client =
        Client::connect(ClientKind::TlsH1, port_b, &host("beta"), &harness.ca_pem).await;
    assert_eq!(client.get("/").await.status, StatusCode::OK);
    assert_eq!(backend.seen().len(), 1);
}

/// Over TLS, a Host naming another served service than the SNI is 421 Misdirected Request.
#[tokio::test]
async fn tls_host_of_another_service_is_misdirected() {
    let harness = Harness::new();
    let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    let world = World::default()
        .with_service(service(
            "one",
            AuthType::None,
            vec![listener(port, Https, forward(&[(TG, 1)]), vec![])],
        ))
        .with_service(service(
            "two",
            AuthType::None,
            vec![listener(port, Https, forward(&[(TG, 1)]), vec![])],
        ))
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Http1,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;

    let mut client = Client::connect(ClientKind::TlsH1, port, &host("one"), &harness.ca_pem).await;
    let mut req = client.request("GET", "/").body(empty()).unwrap();
    req.headers_mut()
        .insert("host", HeaderValue::from_str(&host("two")).unwrap());
    assert_eq!(
        client.send(req).await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
    assert_eq!(client.get("/").await.status, StatusCode::OK);
}

/// Clients cannot spoof the headers Trellis owns; x-forwarded-* are Trellis's; a client request
/// ID is kept (truncated at 512 bytes) and echoed; Host is preserved.
#[tokio::test]
async fn owned_headers_cannot_be_spoofed() {
    let harness = Harness::new();
    let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    harness
        .apply_ok(&simple_world(
            "spoof",
            port,
            target_group(TG, TargetGroupProtocol::Http, Http1, &[backend.addr]),
        ))
        .await;

    for kind in [ClientKind::H1, ClientKind::H2c] {
        let mut client = Client::connect(kind, port, &host("spoof"), &harness.ca_pem).await;
        let req = client
            .request("GET", "/")
            .header("x-amzn-lattice-identity", "Principal=arn:aws:iam::1:root")
            .header("x-amzn-lattice-target", "ServiceArn=evil")
            .header("x-amzn-lattice-network", "SourceVpcArn=evil")
            .header("x-amzn-source-vpc", "vpc-evil")
            .header("x-forwarded-for", "6.6.6.6")
            .header("x-forwarded-port", "1")
            .header("x-forwarded-proto", "https")
            .header("x-amzn-requestid", "client-chosen-id")
            .header("connection", "x-private")
            .header("x-private", "secret")
            .body(empty())
            .unwrap();
        let reply = client.send(req).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-amzn-requestid"), Some("client-chosen-id"));

        let seen = backend.last();
        assert_forwarded(&seen, port, "http", "spoof");
        assert_eq!(seen.header("x-amzn-lattice-identity"), None);
        assert_eq!(seen.header("x-amzn-source-vpc"), None);
        assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(seen.header("x-amzn-requestid"), Some("client-chosen-id"));
        assert_eq!(seen.header("x-private"), None);
        assert_eq!(
            seen.header("host"),
            Some(format!("{}:{port}", host("spoof")).as_str())
        );

        let long = "r".repeat(600);
        let req = client
            .request("GET", "/")
            .header("x-amzn-requestid", long.as_str())
            .body(empty())
            .unwrap();
        let reply = client.send(req).await;
        assert_eq!(reply.header("x-amzn-requestid"), Some(&long[..512]));
        assert_eq!(
            backend.last().header("x-amzn-requestid"),
            Some(&long[..512])
        );
    }
}

/// More than 60 KB of header fields is 400, and so is more than 100 fields over HTTP/2; over
/// HTTP/1.1 more than 100 fields is hyper's 431 from the parser (the same limit; see
/// docs/decisions.md). At the limits neither.
#[tokio::test]
async fn header_limits() {
    let harness = Harness::new();
    let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    harness
        .apply_ok(&simple_world(
            "limits",
            port,
            target_group(TG, TargetGroupProtocol::Http, Http1, &[backend.addr]),
        ))
        .await;

    for kind in [ClientKind::H1, ClientKind::H2c] {
        // HTTP/1.1 requests carry Host (one field) besides the added ones; HTTP/2 requests carry
        // the authority as a pseudo-header, which is not a field.
        let base = usize::from(!kind.is_h2());
        let too_many = if kind.is_h2() { 400 } else { 431 };
        // (extra fields, bytes per value, status)
        for (fields, value_len, status) in [
            (100 - base, 8, 200),
            (101 - base, 8, too_many),
            (150, 8, too_many),
            (10, 6000, 200),
            (12, 6000, 400),
        ] {
            let mut client = Client::connect(kind, port, &host("limits"), &harness.ca_pem).await;
            let mut req = client.request("GET", "/").body(empty()).unwrap();
            let value = HeaderValue::from_str(&"v".repeat(value_len)).unwrap();
            for i in 0..fields {
                req.headers_mut().insert(
                    http::HeaderName::from_bytes(format!("x-h{i:03}").as_bytes()).unwrap(),
                    value.clone(),
                );
            }
            let reply = client.send(req).await;
            assert_eq!(
                reply.status.as_u16(),
                status,
                "{kind:?}: {fields} fields of {value_len} bytes"
            );
            // hyper's 431 is answered before the pipeline, so it has no request ID; every
            // response of the pipeline has one.
            assert_eq!(
                reply.header("x-amzn-requestid").is_some(),
                status != 431,
                "{kind:?}: {fields} fields of {value_len} bytes"
            );
        }
    }
    // Two requests within the limits per protocol; none of the others reached the target.
    assert_eq!(backend.seen().len(), 4);
}

/// AWS_IAM on the service or on one of its networks without an auth policy denies every request.
#[tokio::test]
async fn aws_iam_fails_closed_with_403() {
    let harness = Harness::new();
    let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    let mut network_iam = service(
        "netiam",
        AuthType::None,
        vec![listener(port, Http, forward(&[(TG, 1)]), vec![])],
    );
    network_iam.networks[0].auth_type = AuthType::AwsIam;
    let world = World::default()
        .with_service(service(
            "svciam",
            AuthType::AwsIam,
            vec![listener(port, Http, forward(&[(TG, 1)]), vec![])],
        ))
        .with_service(network_iam)
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Http1,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;

    for (name, layer) in [("svciam", "service"), ("netiam", "network")] {
        let mut client = Client::connect(ClientKind::H1, port, &host(name), &harness.ca_pem).await;
        let reply = client.get("/orders/1").await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(
            reply.text(),
            format!(
                "AccessDeniedException: User: anonymous is not authorized to perform: \
                 vpc-lattice-svcs:Invoke on resource: {}/orders/1 because no {layer}-based \
                 policy allows the vpc-lattice-svcs:Invoke action",
                service_arn(name)
            )
        );
    }
    assert!(backend.seen().is_empty());
}

/// A target whose port is closed fails before any byte is sent: each such request is retried
/// on the other target and succeeds.
#[tokio::test]
async fn connection_failures_are_retried_on_another_target() {
    let harness = Harness::new();
    let alive = Backend::start("alive", BackendKind::H1, &harness.ca).await;
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    harness
        .apply_ok(&simple_world(
            "retry",
            port,
            target_group(TG, TargetGroupProtocol::Http, Http1, &[dead, alive.addr]),
        ))
        .await;

    let mut client = Client::connect(ClientKind::H1, port, &host("retry"), &harness.ca_pem).await;
    for i in 0..10 {
        let req = client.request("POST", "/").body(full("body")).unwrap();
        let reply = client.send(req).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}");
        assert_eq!(reply.text(), "alive");
    }
    assert_eq!(alive.seen().len(), 10);
    // Round robin sends every other request to the dead target first.
    assert!(
        harness.proxy.stats().retries >= 4,
        "{:?}",
        harness.proxy.stats()
    );
}

/// Upstream failures map to Lattice's statuses: all targets dead → 502, no target → 503,
/// every weight 0 → 503, LAMBDA without a function host → 500.
#[tokio::test]
async fn upstream_failures_map_to_statuses() {
    let harness = Harness::new();
    let dead1: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let dead2: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let mut lambda = target_group("tg-lambda", TargetGroupProtocol::Http, Http1, &[]);
    lambda.target_type = trellis_model::resources::target_group::TargetGroupType::Lambda;
    let world = World::default()
        .with_service(service(
            "fail",
            AuthType::None,
            vec![listener(
                port,
                Http,
                fixed(404),
                vec![
                    prefix_rule(1, "/dead", forward(&[("tg-dead", 1)])),
                    prefix_rule(2, "/empty", forward(&[("tg-empty", 1)])),
                    prefix_rule(3, "/lambda", forward(&[("tg-lambda", 1)])),
                    prefix_rule(4, "/zero", forward(&[("tg-dead", 0), ("tg-empty", 0)])),
                ],
            )],
        ))
        .with_group(target_group(
            "tg-dead",
            TargetGroupProtocol::Http,
            Http1,
            &[dead1, dead2],
        ))
        .with_group(target_group(
            "tg-empty",
            TargetGroupProtocol::Http,
            Http1,
            &[],
        ))
        .with_group(lambda);
    harness.apply_ok(&world).await;

    let mut client = Client::connect(ClientKind::H1, port, &host("fail"), &harness.ca_pem).await;
    for (path, status) in [
        ("/dead", 502),
        ("/empty", 503),
        ("/lambda", 500),
        ("/zero", 503),
    ] {
        let reply = client.get(path).await;
        assert_eq!(reply.status.as_u16(), status, "{path}");
        assert!(reply.header("x-amzn-requestid").is_some(), "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{path}"
        );
    }
    // Both dead targets were tried: the first, then the retry.
    assert_eq!(harness.proxy.stats().retries, 1);
}

/// A target that does not start its response within the idle timeout gets 504.
#[tokio::test]
async fn silent_target_is_504() {
    let harness = Harness::with_config(ProxyConfig {
        // The target never answers, so the timeout's length decides nothing but the test's
        // duration.
        idle_timeout: Duration::from_secs(1),
        ..ProxyConfig::default()
    });
    let silent = Backend::start("silent", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    harness
        .apply_ok(&simple_world(
            "silent",
            port,
            target_group(TG, TargetGroupProtocol::Http, Http1, &[silent.addr]),
        ))
        .await;
    let mut client = Client::connect(ClientKind::H1, port, &host("silent"), &harness.ca_pem).await;
    let reply = client.get("/never").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.text(), "Gateway Timeout");
}

/// Sequential requests over one client connection reuse one pooled connection to the target.
#[tokio::test]
async fn upstream_connections_are_pooled() {
    for (version, kind) in [(Http1, BackendKind::H1), (Http2, BackendKind::H2c)] {
        let harness = Harness::new();
        let backend = Backend::start("pool", kind, &harness.ca).await;
        let port = free_port();
        harness
            .apply_ok(&simple_world(
                "pool",
                port,
                target_group(TG, TargetGroupProtocol::Http, version, &[backend.addr]),
            ))
            .await;
        for _ in 0..3 {
            let mut client =
                Client::connect(ClientKind::H1, port, &host("pool"), &harness.ca_pem).await;
            for _ in 0..5 {
                assert_eq!(client.get("/").await.status, StatusCode::OK);
            }
        }
        assert_eq!(backend.seen().len(), 15);
        assert_eq!(backend.connections(), 1, "{version:?}");
        assert_eq!(harness.proxy.stats().upstream_connects, 1, "{version:?}");
    }
}

/// Reconcile binds new ports and unbinds removed ones: a removed port refuses connections at
/// once, while a request already in flight on it completes.
#[tokio::test]
async fn reconcile_binds_and_drains_ports() {
    let harness = Harness::new();
    let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
    let (port_a, port_b) = (free_port(), free_port());
    let group = || target_group(TG, TargetGroupProtocol::Http, Http1, &[backend.addr]);
    let both = World::default()
        .with_service(service(
            "svc",
            AuthType::None,
            vec![
                listener(port_a, Http, forward(&[(TG, 1)]), vec![]),
                listener(port_b, Http, forward(&[(TG, 1)]), vec![]),
            ],
        ))
        .with_group(group());
    harness.apply_ok(&both).await;
    let mut ports = vec![port_a, port_b];
    ports.sort_unstable();
    assert_eq!(harness.proxy.ports(), ports);

    // A slow request in flight on port_b.
    let mut slow_client =
        Client::connect(ClientKind::H1, port_b, &host("svc"), &harness.ca_pem).await;
    let slow_req = slow_client.request("GET", "/slow").body(empty()).unwrap();
    let slow = tokio::spawn(async move { slow_client.send(slow_req).await });
    backend.arrival().await;

    // Remove port_b.
    let only_a = World::default()
        .with_service(service(
            "svc",
            AuthType::None,
            vec![listener(port_a, Http, forward(&[(TG, 1)]), vec![])],
        ))
        .with_group(group());
    harness.apply_ok(&only_a).await;
    assert_eq!(harness.proxy.ports(), vec![port_a]);
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port_b)).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );

    // The in-flight request still completes.
    backend.release();
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "b");

    // port_a serves on; port_b can be bound again.
    let mut client = Client::connect(ClientKind::H1, port_a, &host("svc"), &harness.ca_pem).await;
    assert_eq!(client.get("/").await.status, StatusCode::OK);
    harness.apply_ok(&both).await;
    let mut client = Client::connect(ClientKind::H1, port_b, &host("svc"), &harness.ca_pem).await;
    assert_eq!(client.get("/").await.status, StatusCode::OK);

    harness.proxy.shutdown().await;
    assert!(harness.proxy.ports().is_empty());
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port_a)).await;
    assert!(refused.is_err());
}

/// A port that cannot be bound is reported, and bound on a later reconcile once it is free.
#[tokio::test]
async fn bind_failures_are_reported_and_retried() {
    let harness = Harness::new();
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let world = World::default().with_service(service(
        "busy",
        AuthType::None,
        vec![listener(port, Http, fixed(500), vec![])],
    ));
    let failures = harness.apply(&world).await;
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].0, port);
    assert_eq!(failures[0].1.kind(), std::io::ErrorKind::AddrInUse);
    assert!(harness.proxy.ports().is_empty());

    drop(blocker);
    harness.apply_ok(&world).await;
    assert_eq!(harness.proxy.ports(), vec![port]);
    let mut client = Client::connect(ClientKind::H1, port, &host("busy"), &harness.ca_pem).await;
    assert_eq!(
        client.get("/").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

/// A connection without an active request is closed after the idle timeout.
#[tokio::test]
async fn idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let harness = Harness::with_config(ProxyConfig {
        idle_timeout: Duration::from_millis(500),
        ..ProxyConfig::default()
    });
    let port = free_port();
    let world = World::default().with_service(service(
        "idle",
        AuthType::None,
        vec![listener(port, Http, fixed(404), vec![])],
    ));
    harness.apply_ok(&world).await;

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(format!("GET / HTTP/1.1\r\nhost: {}\r\n\r\n", host("idle")).as_bytes())
        .await
        .unwrap();
    // Read the response, then wait for the server to close the idle connection (EOF).
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(received).unwrap();
    assert!(text.starts_with("HTTP/1.1 404"), "{text}");
}

/// One port carries the HTTP listener of one service and the HTTPS listener of another: the
/// first byte tells the connections apart, and each request reaches only its own listener.
#[tokio::test]
async fn one_port_serves_http_and_https_listeners() {
    let harness = Harness::new();
    let backend = Backend::start("shared", BackendKind::H1, &harness.ca).await;
    let port = free_port();
    let world = World::default()
        .with_service(service(
            "plain",
            AuthType::None,
            vec![listener(port, Http, forward(&[(TG, 1)]), vec![])],
        ))
        .with_service(service(
            "secure",
            AuthType::None,
            vec![listener(port, Https, forward(&[(TG, 1)]), vec![])],
        ))
        .with_group(target_group(
            TG,
            TargetGroupProtocol::Http,
            Http1,
            &[backend.addr],
        ));
    harness.apply_ok(&world).await;

    // (client, service, status, x-forwarded-proto at the target)
    for (kind, name, status, proto) in [
        (ClientKind::H1, "plain", 200, Some("http")),
        (ClientKind::H2c, "plain", 200, Some("http")),
        (ClientKind::TlsH1, "secure", 200, Some("https")),
        (ClientKind::TlsH2, "secure", 200, Some("https")),
        (ClientKind::H1, "secure", 404, None),
    ] {
        let before = backend.seen().len();
        let mut client = Client::connect(kind, port, &host(name), &harness.ca_pem).await;
        let reply = client.get("/").await;
        assert_eq!(reply.status.as_u16(), status, "{kind:?} {name}");
        match proto {
            Some(proto) => {
                assert_eq!(backend.last().header("x-forwarded-proto"), Some(proto));
            }
            None => assert_eq!(backend.seen().len(), before, "{kind:?} {name}"),
        }
    }
}

/// Shutdown stops accepting at once and lets a request in flight finish.
#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    for kind in [ClientKind::H1, ClientKind::H2c] {
        let harness = Harness::new();
        let backend = Backend::start("b", BackendKind::H1, &harness.ca).await;
        let port = free_port();
        harness
            .apply_ok(&simple_world(
                "bye",
                port,
                target_group(TG, TargetGroupProtocol::Http, Http1, &[backend.addr]),
            ))
            .await;

        let mut client = Client::connect(kind, port, &host("bye"), &harness.ca_pem).await;
        let req = client.request("GET", "/slow").body(empty()).unwrap();
        let slow = tokio::spawn(async move { client.send(req).await });
        backend.arrival().await;

        let proxy = std::sync::Arc::clone(&harness.proxy);
        let shutdown = tokio::spawn(async move { proxy.shutdown().await });
        backend.release();
        assert_eq!(slow.await.unwrap().status, StatusCode::OK, "{kind:?}");
        shutdown.await.unwrap();
        let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        assert!(refused.is_err(), "{kind:?}");
    }
}

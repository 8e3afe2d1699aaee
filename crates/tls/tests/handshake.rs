//! Real TLS handshakes over loopback between `server_config` and rustls clients: versions, ALPN,
//! SNI rules, wildcard names and name-set changes.

mod support;

use std::sync::Arc;

use rustls::{ClientConfig, ProtocolVersion, RootCertStore};
use support::{BODY, Fixture, fetch};
use trellis_tls::{client_config_trusting, insecure_client_config, provider};

const NAME: &str = "api.example.com";

fn assert_ok_response(response: &str) {
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response:?}");
    assert!(response.ends_with(BODY), "{response:?}");
}

#[tokio::test]
async fn tls13_handshake_for_an_allowed_name() {
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;

    let fetched = fetch(fixture.client(&[]), server.addr, NAME).await.unwrap();
    assert_eq!(fetched.version, Some(ProtocolVersion::TLSv1_3));
    assert_ok_response(&fetched.response);

    let accepted = server.next().await.unwrap();
    assert_eq!(accepted.server_name.as_deref(), Some(NAME));
    assert_eq!(accepted.version, Some(ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn tls12_handshake_when_the_client_forces_it() {
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;

    let mut roots = RootCertStore::empty();
    for cert in
        rustls::pki_types::pem::PemObject::pem_slice_iter(fixture.ca.certificate_pem().as_bytes())
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let fetched = fetch(Arc::new(config), server.addr, NAME).await.unwrap();
    assert_eq!(fetched.version, Some(ProtocolVersion::TLSv1_2));
    assert_ok_response(&fetched.response);
    assert_eq!(
        server.next().await.unwrap().version,
        Some(ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn alpn_prefers_h2_then_http11_and_none_means_http11() {
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    // (offered by the client, selected by the server)
    type Case = (&'static [&'static [u8]], Option<&'static [u8]>);
    let cases: &[Case] = &[
        // The server's order wins: h2 even when the client lists it last.
        (&[b"http/1.1", b"h2"], Some(b"h2")),
        (&[b"h2"], Some(b"h2")),
        (&[b"http/1.1"], Some(b"http/1.1")),
        (&[], None),
    ];
    for (offered, expected) in cases {
        let fetched = fetch(fixture.client(offered), server.addr, NAME)
            .await
            .unwrap();
        assert_eq!(fetched.alpn.as_deref(), *expected, "offered {offered:?}");
        assert_eq!(
            server.next().await.unwrap().alpn.as_deref(),
            *expected,
            "offered {offered:?}"
        );
        if expected != &Some(b"h2".as_slice()) {
            // No ALPN and http/1.1 both carry an HTTP/1.1 exchange.
            assert_ok_response(&fetched.response);
        }
    }
}

#[tokio::test]
async fn alpn_with_no_common_protocol_fails() {
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    let err = fetch(fixture.client(&[b"spdy/3"]), server.addr, NAME)
        .await
        .unwrap_err();
    assert!(err.contains("NoApplicationProtocol"), "{err}");
    server.next().await.unwrap_err();
}

#[tokio::test]
async fn unknown_sni_fails() {
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    let err = fetch(fixture.client(&[]), server.addr, "other.example.com")
        .await
        .unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    let server_err = server.next().await.unwrap_err();
    assert!(server_err.contains("no server certificate"), "{server_err}");
}

#[tokio::test]
async fn missing_sni_fails() {
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    let mut config = (*fixture.client(&[])).clone();
    config.enable_sni = false;
    let err = fetch(Arc::new(config), server.addr, NAME)
        .await
        .unwrap_err();
    assert!(err.contains("AccessDenied"), "{err}");
    let server_err = server.next().await.unwrap_err();
    assert!(server_err.contains("no server certificate"), "{server_err}");
}

#[tokio::test]
async fn names_match_case_insensitively_and_wildcards_cover_one_label() {
    let fixture = Fixture::new(&["API.Example.com", "*.apps.example.com"]);
    let mut server = fixture.serve().await;
    for name in [
        "api.example.com",
        "API.EXAMPLE.COM",
        "orders.apps.example.com",
    ] {
        let fetched = fetch(fixture.client(&[]), server.addr, name).await;
        assert_ok_response(&fetched.unwrap_or_else(|e| panic!("{name}: {e}")).response);
        server.next().await.unwrap();
    }
    for name in [
        "apps.example.com",
        "a.b.apps.example.com",
        "www.example.com",
    ] {
        let fetched = fetch(fixture.client(&[]), server.addr, name).await;
        assert!(fetched.is_err(), "{name} must not be served");
        server.next().await.unwrap_err();
    }
}

#[tokio::test]
async fn set_names_takes_effect_for_new_handshakes() {
    let fixture = Fixture::new(&[]);
    let mut server = fixture.serve().await;
    let client = fixture.client(&[]);

    fetch(Arc::clone(&client), server.addr, NAME)
        .await
        .unwrap_err();
    server.next().await.unwrap_err();

    fixture.resolver.set_names([NAME.to_owned()]);
    let fetched = fetch(Arc::clone(&client), server.addr, NAME).await.unwrap();
    assert_ok_response(&fetched.response);
    server.next().await.unwrap();

    fixture.resolver.set_names(["other.example.com".to_owned()]);
    fetch(Arc::clone(&client), server.addr, NAME)
        .await
        .unwrap_err();
    server.next().await.unwrap_err();
    let fetched = fetch(client, server.addr, "other.example.com")
        .await
        .unwrap();
    assert_ok_response(&fetched.response);
}

#[tokio::test]
async fn clients_trusting_another_ca_reject_the_certificate() {
    let fixture = Fixture::new(&[NAME]);
    let stranger = Fixture::new(&[]);
    let mut server = fixture.serve().await;
    let err = fetch(stranger.client(&[]), server.addr, NAME)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
    server.next().await.unwrap_err();
}

#[tokio::test]
async fn the_insecure_client_accepts_any_certificate_and_offers_its_alpn() {
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;

    let fetched = fetch(insecure_client_config(vec![]), server.addr, NAME)
        .await
        .unwrap();
    assert_ok_response(&fetched.response);
    assert_eq!(fetched.alpn, None);
    server.next().await.unwrap();

    let fetched = fetch(
        insecure_client_config(vec![b"h2".to_vec()]),
        server.addr,
        NAME,
    )
    .await
    .unwrap();
    assert_eq!(fetched.alpn.as_deref(), Some(b"h2".as_slice()));
    server.next().await.unwrap();
}

#[tokio::test]
async fn a_reloaded_ca_issues_certificates_that_the_first_pem_trusts() {
    let fixture = Fixture::new(&[]);
    let trusted_pem = fixture.ca.certificate_pem();
    drop(fixture.resolver);

    let reloaded =
        Arc::new(trellis_tls::CertificateAuthority::load_or_create(fixture.dir.path()).unwrap());
    let resolver = Arc::new(trellis_tls::SniResolver::new(reloaded));
    resolver.set_names([NAME.to_owned()]);
    let mut server = support::Responder::spawn(trellis_tls::server_config(resolver)).await;

    let fetched = fetch(
        client_config_trusting(&trusted_pem).unwrap(),
        server.addr,
        NAME,
    )
    .await
    .unwrap();
    assert_ok_response(&fetched.response);
    server.next().await.unwrap();
}

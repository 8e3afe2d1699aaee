//! Interoperability with TLS stacks other than rustls: the real `curl` and `openssl s_client`
//! binaries (both OpenSSL-based) against an HTTPS listener configuration, trusting only the CA
//! file Trellis wrote. Outside CI a test is skipped, with a note, when its binary is not
//! installed; in CI (`CI` set, where `.ci/run` installs both) a missing binary fails the test.

mod support;

use std::process::Output;

use rustls::ProtocolVersion;
use support::{BODY, Fixture, STEP_TIMEOUT};
use tokio::process::Command;

const NAME: &str = "checkout.example.com";

/// Whether `program` runs (asked for its version with `version_arg`); prints why a test is
/// skipped when it does not.
async fn available(program: &str, version_arg: &str) -> bool {
    let found = Command::new(program)
        .arg(version_arg)
        .output()
        .await
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "`{program}` is required in CI (.ci/run installs it)"
        );
        eprintln!("skipping: `{program}` is not installed");
    }
    found
}

async fn run(command: &mut Command) -> Output {
    command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(STEP_TIMEOUT, command.output())
        .await
        .expect("the client finishes")
        .expect("the client runs")
}

/// `curl --cacert ca.pem --resolve NAME:PORT:127.0.0.1 https://NAME:PORT/` plus `extra` flags.
async fn curl(fixture: &Fixture, port: u16, name: &str, extra: &[&str]) -> Output {
    run(Command::new("curl")
        .args(["--silent", "--show-error", "--verbose", "--max-time", "15"])
        .arg("--cacert")
        .arg(fixture.ca_path())
        .arg("--resolve")
        .arg(format!("{name}:{port}:127.0.0.1"))
        .args(extra)
        .arg(format!("https://{name}:{port}/")))
    .await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn curl_fetches_over_https_trusting_the_ca_file() {
    if !available("curl", "--version").await {
        return;
    }
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    let port = server.addr.port();

    let output = curl(&fixture, port, NAME, &["--http1.1"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), BODY);
    let accepted = server.next().await.unwrap();
    assert_eq!(accepted.server_name.as_deref(), Some(NAME));
    assert_eq!(accepted.alpn.as_deref(), Some(b"http/1.1".as_slice()));
    assert_eq!(accepted.version, Some(ProtocolVersion::TLSv1_3));

    let output = curl(
        &fixture,
        port,
        NAME,
        &["--http1.1", "--tlsv1.2", "--tls-max", "1.2"],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), BODY);
    assert_eq!(
        server.next().await.unwrap().version,
        Some(ProtocolVersion::TLSv1_2)
    );
}

#[tokio::test]
async fn curl_negotiates_h2_when_it_offers_it() {
    if !available("curl", "--version").await {
        return;
    }
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    // The responder closes h2 connections after the handshake (it speaks no HTTP/2), so curl's
    // exit status says nothing here; what matters is what both sides agreed on.
    let output = curl(&fixture, server.addr.port(), NAME, &["--http2"]).await;
    let accepted = server.next().await.unwrap();
    assert_eq!(accepted.alpn.as_deref(), Some(b"h2".as_slice()));
    assert!(
        stderr(&output).contains("ALPN: server accepted h2"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn curl_fails_for_unknown_names_without_sni_and_without_the_ca() {
    if !available("curl", "--version").await {
        return;
    }
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    let port = server.addr.port();

    // Exit code 35: the TLS handshake failed.
    let output = curl(&fixture, port, "unknown.example.com", &[]).await;
    assert_eq!(output.status.code(), Some(35), "{}", stderr(&output));
    server.next().await.unwrap_err();

    // An IP address in the URL makes curl send no SNI.
    let output = run(Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "15", "--cacert"])
        .arg(fixture.ca_path())
        .arg(format!("https://127.0.0.1:{port}/")))
    .await;
    assert_eq!(output.status.code(), Some(35), "{}", stderr(&output));
    server.next().await.unwrap_err();

    // Exit code 60: the certificate is not trusted. Only the Trellis CA file makes it so.
    let output = run(Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "15"])
        .args(["--capath", "/nonexistent", "--cacert"])
        .arg(other_installations_ca(&fixture))
        .arg("--resolve")
        .arg(format!("{NAME}:{port}:127.0.0.1"))
        .arg(format!("https://{NAME}:{port}/")))
    .await;
    assert_eq!(output.status.code(), Some(60), "{}", stderr(&output));
}

/// A CA file holding another installation's CA certificate.
fn other_installations_ca(fixture: &Fixture) -> std::path::PathBuf {
    let other = Fixture::new(&[]);
    let path = fixture.dir.path().join("other-ca.pem");
    std::fs::write(&path, other.ca.certificate_pem()).unwrap();
    path
}

#[tokio::test]
async fn openssl_s_client_verifies_the_chain_and_negotiates_alpn() {
    if !available("openssl", "version").await {
        return;
    }
    let fixture = Fixture::new(&[NAME]);
    let mut server = fixture.serve().await;
    let connect = format!("127.0.0.1:{}", server.addr.port());

    // OpenSSL lists AES-256 first; the server's (Lattice's) preference for AES-128 wins.
    let cases: &[(&[&str], &str, &str, &str)] = &[
        (
            &["-alpn", "h2,http/1.1"],
            "TLSv1.3",
            "TLS_AES_128_GCM_SHA256",
            "ALPN protocol: h2",
        ),
        (
            &["-alpn", "http/1.1", "-tls1_2"],
            "TLSv1.2",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "ALPN protocol: http/1.1",
        ),
        (
            &["-tls1_2"],
            "TLSv1.2",
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "No ALPN negotiated",
        ),
    ];
    for (flags, version, cipher, alpn) in cases {
        let output = run(Command::new("openssl")
            .args(["s_client", "-connect", &connect, "-servername", NAME])
            .arg("-CAfile")
            .arg(fixture.ca_path())
            .args(["-verify_return_error", "-verify_hostname", NAME])
            .args(*flags))
        .await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );
        assert!(output.status.success(), "{flags:?}: {text}");
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{flags:?}: {text}"
        );
        let negotiated = format!("New, {version}, Cipher is {cipher}");
        assert!(text.contains(&negotiated), "{flags:?}: {text}");
        assert!(text.contains(alpn), "{flags:?}: {text}");
        server.next().await.unwrap();
    }
}

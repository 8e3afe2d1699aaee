//! rustls configurations: the server side of HTTPS listeners, and the client side towards
//! Trellis (trusting its CA) and towards HTTPS targets (verifying nothing, as Lattice does).

use std::sync::{Arc, LazyLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::{SniResolver, TlsError};

/// The ALPN protocol id of HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// The ALPN protocol id of HTTP/1.1.
pub const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Both TLS versions Lattice terminates.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider of every configuration here: rustls's *ring* provider, with the cipher
/// suites in Lattice's preference order (AES-128-GCM, then AES-256-GCM, then ChaCha20 in TLS 1.3;
/// the ECDHE AES-GCM suites of its TLS 1.2 list, ECDSA first because the leaves are ECDSA).
///
/// Passing it explicitly, instead of relying on rustls's process-wide default, keeps these
/// configurations on *ring* even if some other dependency enables another provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::clone(&PROVIDER)
}

/// Built once: certificates are issued and configurations built with it all the time.
static PROVIDER: LazyLock<Arc<CryptoProvider>> = LazyLock::new(|| {
    use ring::cipher_suite::*;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    })
});

/// The rustls server configuration of HTTPS listeners: TLS 1.2 and 1.3, certificates from
/// `resolver` by SNI, and ALPN `h2` then `http/1.1` (Lattice's `HTTP2Preferred` policy). A client
/// that offers no ALPN gets no protocol selected and speaks HTTP/1.1; one that offers only
/// protocols outside that list is refused with rustls's `no_application_protocol` alert.
///
/// The server's cipher-suite order wins over the client's, as in Lattice, whose documented suite
/// list is a preference order.
pub fn server_config(resolver: Arc<SniResolver>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("the ring provider supports TLS 1.2 and TLS 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP_1_1.to_vec()];
    config.ignore_client_order = true;
    Arc::new(config)
}

/// A client configuration (TLS 1.2 and 1.3, no ALPN) that trusts exactly the CA certificates in
/// `ca_pem`, e.g. [`crate::CertificateAuthority::certificate_pem`]. Set `alpn_protocols` on a
/// clone to offer protocols.
pub fn client_config_trusting(ca_pem: &str) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| TlsError::InvalidPem(e.to_string()))?;
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(TlsError::InvalidPem(
            "no CERTIFICATE block found".to_owned(),
        ));
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client configuration that accepts any server certificate, offering the `alpn` protocols.
///
/// This is Lattice's documented behaviour towards targets: HTTPS target groups and HTTPS health
/// checks encrypt but do not validate the target's certificate (targets are addressed by IP and
/// commonly use self-signed certificates). Handshake signatures are still checked, which keeps
/// rustls's protocol guarantees, but they prove nothing about who the target is. Use it only for
/// traffic to targets, never where the peer's identity matters.
pub fn insecure_client_config(alpn: Vec<Vec<u8>>) -> Arc<ClientConfig> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(VERSIONS)
        .expect("the ring provider supports TLS 1.2 and TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert { provider }))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Arc::new(config)
}

/// The verifier of [`insecure_client_config`]: every certificate is accepted.
#[derive(Debug)]
struct AcceptAnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_trusting_rejects_pem_without_certificates() {
        for pem in [
            "",
            "not pem at all",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let err = client_config_trusting(pem).unwrap_err();
            assert!(matches!(err, TlsError::InvalidPem(_)), "{pem:?}: {err}");
        }
    }

    #[test]
    fn server_config_offers_h2_then_http11() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::CertificateAuthority::load_or_create(dir.path()).unwrap();
        let config = server_config(Arc::new(SniResolver::new(Arc::new(ca))));
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(config.ignore_client_order);
    }
}

//! The HTTPS mode's TLS configuration: a self-signed certificate generated at start (the proxy
//! does not verify target certificates, as Lattice does not), TLS 1.2 and 1.3, ALPN `h2` then
//! `http/1.1`.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::Error;

/// The names the certificate is valid for: a client that does verify can use either.
const NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A server configuration with a fresh self-signed certificate, and that certificate.
pub fn self_signed() -> Result<(Arc<ServerConfig>, CertificateDer<'static>), Error> {
    let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
    let generated = rcgen::generate_simple_self_signed(names)?;
    let cert = generated.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    // The ring provider explicitly: the workspace builds rustls without a process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.into())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), cert))
}

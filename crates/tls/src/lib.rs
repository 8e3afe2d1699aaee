//! Trellis certificate authority and server-side TLS configuration for HTTPS listeners.
//!
//! VPC Lattice terminates TLS on HTTPS listeners with certificates it manages itself: every
//! service's generated name gets an AWS-managed certificate, and a custom domain gets the ACM
//! certificate named on the service. A self-hosted Trellis has no public CA behind it, so it runs a
//! small local one instead:
//!
//! * [`CertificateAuthority`] is the "Trellis Local CA": a self-signed root. `trellis serve` keeps
//!   it in the store, shared by every node (the `trellis` crate's `cluster_secrets`); this crate
//!   can also keep one in a directory (`ca.pem`, `ca-key.pem`), which is where earlier versions
//!   kept it and where the proxy's tests keep theirs. `trellis ca` prints its certificate so
//!   clients can add it to their trust store.
//! * [`SniResolver`] picks the server certificate for a handshake by SNI among the names the
//!   current configuration serves, issuing leaf certificates from the CA lazily and caching them.
//!   Lattice endpoints are multi-tenant, so SNI is required: a handshake without SNI, or for a name
//!   that is not served, fails.
//! * [`server_config`] is the rustls configuration of every HTTPS listener: TLS 1.2 and 1.3, ALPN
//!   `h2` then `http/1.1` (Lattice's `HTTP2Preferred` policy).
//! * [`client_config_trusting`] and [`insecure_client_config`] are the client side: the first
//!   trusts the CA (tests, tools), the second verifies nothing, which is what Lattice does towards
//!   HTTPS targets and HTTPS health checks.
//!
//! Cryptography comes from rustls's *ring* provider, always passed explicitly (see [`provider`]),
//! so the result does not depend on which provider some other crate in the build enables, and no
//! C/cmake toolchain (aws-lc) is needed.
//!
//! Key and validity choices, and how they differ from Lattice:
//! * Keys are ECDSA P-256, for the CA and for leaves. Lattice's certificates are RSA 2048, but
//!   *ring* cannot generate RSA keys, and P-256 is accepted by every current TLS client. The
//!   consequence is that TLS 1.2 handshakes use `ECDHE-ECDSA-*` suites where Lattice lists
//!   `ECDHE-RSA-*`; the CBC and static-RSA suites in Lattice's list are not offered at all, since
//!   rustls does not implement them.
//! * The CA is valid for 10 years, leaves for 90 days. The resolver replaces a cached leaf 30 days
//!   before it expires, so a long-running server never serves an expired certificate.
//! * The leaf cache holds at most [`MAX_CACHED_CERTIFICATES`] certificates and only for names the
//!   configuration serves (a wildcard name is one entry however many host names it covers), so a
//!   client cannot grow it by sending made-up SNI values.

mod ca;
mod config;
mod error;
mod names;
mod resolver;

pub use ca::{CA_CERT_FILE, CA_COMMON_NAME, CA_KEY_FILE, CertificateAuthority};
pub use config::{
    ALPN_H2, ALPN_HTTP_1_1, client_config_trusting, insecure_client_config, provider, server_config,
};
pub use error::TlsError;
pub use resolver::{MAX_CACHED_CERTIFICATES, SniResolver};

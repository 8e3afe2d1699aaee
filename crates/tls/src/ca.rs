//! The Trellis Local CA: a self-signed root kept in the data directory, and the leaf
//! certificates it issues for HTTPS listeners.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use time::OffsetDateTime;

use crate::names::normalize_cert_name;
use crate::{TlsError, provider};

/// The CA certificate's file name inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key's file name inside the CA directory (PKCS#8 PEM, mode 0600).
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// The common name of a CA created by [`CertificateAuthority::load_or_create`].
pub const CA_COMMON_NAME: &str = "Trellis Local CA";

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// A local root is added to trust stores by hand, so it should outlive most installations.
const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);
/// Leaf lifetime: the 90 days public ACME CAs use. Leaves live only in memory and are reissued by
/// the resolver well before they expire, so a short lifetime costs nothing.
pub(crate) const LEAF_VALIDITY: Duration = Duration::from_secs(90 * 24 * 60 * 60);
/// Certificates start an hour in the past so a client whose clock is a little behind the
/// server's still accepts a certificate issued a moment ago.
const BACKDATE: Duration = Duration::from_secs(60 * 60);
/// X.509's upper bound for a common name; longer names (generated Lattice names can be) go only
/// into the subject alternative names, which is where clients look anyway.
const MAX_COMMON_NAME_LEN: usize = 64;
/// The name the load-time self test issues a throw-away leaf for (`.invalid` never resolves).
const SELF_TEST_NAME: &str = "trellis-ca-self-test.invalid";

/// A certificate authority that issues the server certificates of HTTPS listeners.
///
/// Keys are ECDSA P-256 (see the crate documentation for why not RSA). The CA may also be one the
/// operator put in place, with any key type *ring* can sign with; leaves are P-256 regardless.
pub struct CertificateAuthority {
    /// The CA certificate file's contents, as clients should install them.
    cert_pem: String,
    /// The CA's subject, key identifier and key usages, with its signing key.
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate with its key, and when it stops being valid.
pub(crate) struct Issued {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) not_after: SystemTime,
}

impl fmt::Debug for CertificateAuthority {
    // The signing key stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads `dir/ca.pem` and `dir/ca-key.pem`, or creates them (a self-signed CA named
    /// "Trellis Local CA", valid for 10 years, with the key file readable by its owner only).
    ///
    /// When only the key exists (a first start interrupted between the two writes) a new
    /// certificate is made for it: no client can trust a certificate that was never written, so
    /// nothing is lost. When only the certificate exists, loading fails rather than replacing a CA
    /// that clients may already trust. Errors name the file they are about.
    ///
    /// One process owns a CA directory: two processes creating the same CA at the same moment
    /// can leave a mismatched pair, which the next load reports as such.
    pub fn load_or_create(dir: &Path) -> Result<CertificateAuthority, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = read_optional(&cert_path)?;
        let key_pem = read_optional(&key_path)?;
        match (cert_pem, key_pem) {
            (Some(cert_pem), Some(key_pem)) => {
                warn_if_key_readable_by_others(&key_path);
                let key = parse_key(&key_path, &key_pem)?;
                CertificateAuthority::from_parts(cert_pem, key, &cert_path, &key_path)
            }
            (None, Some(key_pem)) => {
                let key = parse_key(&key_path, &key_pem)?;
                let cert_pem = self_signed_ca_pem(&key)?;
                write_file(&cert_path, &cert_pem, 0o644)?;
                tracing::info!(path = %cert_path.display(), "created a CA certificate for the existing CA key");
                CertificateAuthority::from_parts(cert_pem, key, &cert_path, &key_path)
            }
            (Some(_), None) => Err(TlsError::invalid_file(
                &key_path,
                format!(
                    "missing, but {} exists: restore the CA key, or delete {CA_CERT_FILE} as well \
                     to create a new CA (clients must then trust the new certificate)",
                    cert_path.display()
                ),
            )),
            (None, None) => {
                fs::create_dir_all(dir).map_err(|e| TlsError::io("creating directory", dir, e))?;
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| TlsError::Issue(format!("generating the CA key: {e}")))?;
                // The key goes first: see the key-only case above for why that order recovers.
                write_file(&key_path, &key.serialize_pem(), 0o600)?;
                let cert_pem = self_signed_ca_pem(&key)?;
                write_file(&cert_path, &cert_pem, 0o644)?;
                tracing::info!(path = %cert_path.display(), "created the {CA_COMMON_NAME}");
                CertificateAuthority::from_parts(cert_pem, key, &cert_path, &key_path)
            }
        }
    }

    /// A new CA in memory (the same kind [`CertificateAuthority::load_or_create`] creates),
    /// for a caller that keeps it elsewhere than in files, such as the cluster's store.
    pub fn create() -> Result<CertificateAuthority, TlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| TlsError::Issue(format!("generating the CA key: {e}")))?;
        let cert_pem = self_signed_ca_pem(&key)?;
        let label = Path::new("new CA");
        CertificateAuthority::from_parts(cert_pem, key, label, label)
    }

    /// A CA from its certificate and PKCS#8 private key in PEM, checked as a loaded one is.
    /// `origin` names where they came from in errors (e.g. "store record trellis-ca").
    pub fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        origin: &str,
    ) -> Result<CertificateAuthority, TlsError> {
        let cert_label = Path::new(origin).join(CA_CERT_FILE);
        let key_label = Path::new(origin).join(CA_KEY_FILE);
        let key = parse_key(&key_label, key_pem)?;
        CertificateAuthority::from_parts(cert_pem.to_owned(), key, &cert_label, &key_label)
    }

    /// Reads `dir/ca.pem` and `dir/ca-key.pem` when both exist, without creating anything:
    /// `None` when either is missing. For importing a CA a data dir held before the CA moved
    /// into the store.
    pub fn load_existing(dir: &Path) -> Result<Option<CertificateAuthority>, TlsError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let (Some(cert_pem), Some(key_pem)) =
            (read_optional(&cert_path)?, read_optional(&key_path)?)
        else {
            return Ok(None);
        };
        let key = parse_key(&key_path, &key_pem)?;
        CertificateAuthority::from_parts(cert_pem, key, &cert_path, &key_path).map(Some)
    }

    /// The CA certificate in PEM, as found in `ca.pem`: what clients add to their trust store.
    pub fn certificate_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// The CA's private key (PKCS#8 PEM). Secret: whoever holds it can impersonate every
    /// service to every client that trusts the CA; callers store it only encrypted.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf certificate for the DNS names (the subject alternative names, the first
    /// also the common name when short enough), signed by the CA and valid for 90 days.
    ///
    /// Names are lower-cased and may be wildcards of one label (`*.example.com`). The key is a
    /// fresh ECDSA P-256 key, and the chain served is the leaf alone: clients hold the root.
    pub fn issue(&self, names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
        Ok(self.issue_at(names, SystemTime::now())?.key)
    }

    /// [`CertificateAuthority::issue`] with the validity counted from `now`.
    pub(crate) fn issue_at(&self, names: &[String], now: SystemTime) -> Result<Issued, TlsError> {
        let mut sans: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let name = normalize_cert_name(name)?;
            if !sans.contains(&name) {
                sans.push(name);
            }
        }
        let Some(first) = sans.first().cloned() else {
            return Err(TlsError::NoNames);
        };

        let issue_error = |e: rcgen::Error| TlsError::Issue(e.to_string());
        let mut params = CertificateParams::new(sans).map_err(issue_error)?;
        params.distinguished_name = DistinguishedName::new();
        if first.len() <= MAX_COMMON_NAME_LEN {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let not_after = now + LEAF_VALIDITY;
        params.not_before = OffsetDateTime::from(now - BACKDATE);
        params.not_after = OffsetDateTime::from(not_after);

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(issue_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_error)?;
        let signing_key = provider()
            .key_provider
            .load_private_key(PrivatePkcs8KeyDer::from(key.serialize_der()).into())?;
        Ok(Issued {
            key: Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing_key)),
            not_after,
        })
    }

    /// Builds the CA from its certificate PEM and key, and checks that they can work together.
    fn from_parts(
        cert_pem: String,
        key: KeyPair,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<CertificateAuthority, TlsError> {
        let cert_der = match CertificateDer::pem_slice_iter(cert_pem.as_bytes()).next() {
            Some(Ok(der)) => der,
            Some(Err(e)) => {
                return Err(TlsError::invalid_file(
                    cert_path,
                    format!("malformed PEM: {e}"),
                ));
            }
            None => {
                return Err(TlsError::invalid_file(
                    cert_path,
                    "no CERTIFICATE block found",
                ));
            }
        };

        // Compare public keys first: a mismatched pair is the likeliest operator mistake and
        // deserves its own message rather than a generic verification failure.
        let signing_key = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .map_err(|e| TlsError::invalid_file(key_path, format!("unusable key: {e}")))?;
        match CertifiedKey::new(vec![cert_der.clone()], signing_key).keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::KeyMismatch {
                    cert: cert_path.to_owned(),
                    key: key_path.to_owned(),
                });
            }
            Err(e) => {
                return Err(TlsError::invalid_file(
                    cert_path,
                    format!("not a usable certificate: {e}"),
                ));
            }
        }

        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| {
            TlsError::invalid_file(cert_path, format!("cannot read the CA certificate: {e}"))
        })?;
        let usages = issuer.key_usages();
        if !usages.is_empty() && !usages.contains(&KeyUsagePurpose::KeyCertSign) {
            return Err(TlsError::invalid_file(
                cert_path,
                "not a CA certificate: its key usage does not allow signing certificates",
            ));
        }

        let ca = CertificateAuthority { cert_pem, issuer };
        ca.self_test(&cert_der).map_err(|reason| {
            TlsError::invalid_file(
                cert_path,
                format!(
                    "certificates issued by this CA do not verify against it ({reason}); delete \
                     {CA_CERT_FILE} and {CA_KEY_FILE} to create a new CA"
                ),
            )
        })?;
        Ok(ca)
    }

    /// Issues a throw-away leaf and verifies it the way a client trusting `cert_der` would, so a
    /// CA that cannot serve (unsupported signature algorithm, broken extensions) fails at start
    /// rather than in every client's handshake.
    fn self_test(&self, cert_der: &CertificateDer<'static>) -> Result<(), String> {
        let leaf = self
            .issue_at(&[SELF_TEST_NAME.to_owned()], SystemTime::now())
            .map_err(|e| e.to_string())?;
        let mut roots = RootCertStore::empty();
        roots.add(cert_der.clone()).map_err(|e| e.to_string())?;
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| e.to_string())?;
        let server_name = ServerName::try_from(SELF_TEST_NAME).map_err(|e| e.to_string())?;
        verifier
            .verify_server_cert(&leaf.key.cert[0], &[], &server_name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The PEM of a new self-signed CA certificate for `key`.
fn self_signed_ca_pem(key: &KeyPair) -> Result<String, TlsError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Trellis");
    // Every installation's CA has the same common name, so a unit derived from the key tells
    // them apart: clients that trust two installations look issuers up by name, and with equal
    // names would try the wrong CA first and report a bad signature instead of finding the right one.
    let key_id = params.key_identifier(key);
    let unit: String = key_id.iter().take(8).map(|b| format!("{b:02x}")).collect();
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, format!("CA {unit}"));
    // Path length 0: this CA signs leaves only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = OffsetDateTime::from(now - DAY);
    params.not_after = OffsetDateTime::from(now + CA_VALIDITY);
    let cert = params
        .self_signed(key)
        .map_err(|e| TlsError::Issue(format!("self-signing the CA certificate: {e}")))?;
    Ok(cert.pem())
}

/// Parses a PKCS#8 PEM private key, naming the file on failure.
fn parse_key(path: &Path, pem: &str) -> Result<KeyPair, TlsError> {
    KeyPair::from_pem(pem).map_err(|e| {
        TlsError::invalid_file(
            path,
            format!("not a usable private key (expected PKCS#8 PEM, \"BEGIN PRIVATE KEY\"): {e}"),
        )
    })
}

/// The file's contents, or `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, TlsError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TlsError::io("reading", path, e)),
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written key or certificate behind. The temporary file is created with `mode` already
/// set, so the key is never readable by others, not even for a moment.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    // A leftover from an earlier crash may have other permissions; start afresh.
    match fs::remove_file(tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(TlsError::io("removing", tmp, e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(tmp)
        .map_err(|e| TlsError::io("creating", tmp, e))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| TlsError::io("writing", tmp, e))?;
    fs::rename(tmp, path).map_err(|e| TlsError::io("renaming to", path, e))
}

/// Warns when the CA key can be read by anyone but its owner: whoever reads it can impersonate
/// every service to every client that trusts the CA. A warning, not an error, because the
/// operator may have reasons (a group-shared secret mount) that Trellis cannot see.
fn warn_if_key_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "the CA private key is readable by users other than its owner; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (tempfile::TempDir, CertificateAuthority) {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        (dir, ca)
    }

    #[test]
    fn leaf_validity_counts_from_now() {
        let (_dir, ca) = ca();
        let now = SystemTime::now();
        let issued = ca.issue_at(&["a.example.com".to_owned()], now).unwrap();
        assert_eq!(issued.not_after, now + LEAF_VALIDITY);
        assert_eq!(issued.key.cert.len(), 1, "the chain is the leaf alone");
    }

    #[test]
    fn issue_rejects_bad_names_and_empty_lists() {
        let (_dir, ca) = ca();
        assert!(matches!(ca.issue(&[]), Err(TlsError::NoNames)));
        let err = ca.issue(&["a.*.example.com".to_owned()]).unwrap_err();
        assert!(
            matches!(&err, TlsError::InvalidName(n) if n == "a.*.example.com"),
            "{err}"
        );
        // Long names (generated Lattice names can exceed 64 characters) still issue, with no CN.
        let long = format!(
            "{}.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
            "a".repeat(60)
        );
        ca.issue(&[long]).unwrap();
    }

    #[test]
    fn a_ca_round_trips_through_its_pem() {
        let ca = CertificateAuthority::create().unwrap();
        let again =
            CertificateAuthority::from_pem(&ca.certificate_pem(), &ca.key_pem(), "test").unwrap();
        assert_eq!(again.certificate_pem(), ca.certificate_pem());
        let other = CertificateAuthority::create().unwrap();
        let err = CertificateAuthority::from_pem(&ca.certificate_pem(), &other.key_pem(), "test")
            .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn load_existing_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            CertificateAuthority::load_existing(dir.path())
                .unwrap()
                .is_none()
        );
        assert!(!dir.path().join(CA_CERT_FILE).exists());
        let created = CertificateAuthority::load_or_create(dir.path()).unwrap();
        let loaded = CertificateAuthority::load_existing(dir.path())
            .unwrap()
            .unwrap();
        assert_eq!(loaded.certificate_pem(), created.certificate_pem());
    }
}

//! The CA's files: creation, persistence across loads, permissions, and clear errors for
//! damaged or incomplete CA directories.

use std::fs;
use std::path::Path;

use trellis_tls::{CA_CERT_FILE, CA_KEY_FILE, CertificateAuthority, TlsError};

fn load(dir: &Path) -> Result<CertificateAuthority, TlsError> {
    CertificateAuthority::load_or_create(dir)
}

#[test]
fn the_ca_is_created_once_and_persists_across_loads() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("nested").join("tls");
    let first = load(&ca_dir).unwrap();
    let pem = first.certificate_pem();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert_eq!(fs::read_to_string(ca_dir.join(CA_CERT_FILE)).unwrap(), pem);
    let key = fs::read_to_string(ca_dir.join(CA_KEY_FILE)).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));

    let second = load(&ca_dir).unwrap();
    assert_eq!(second.certificate_pem(), pem);
    assert_eq!(fs::read_to_string(ca_dir.join(CA_KEY_FILE)).unwrap(), key);

    // No temporary files are left behind.
    let mut files: Vec<String> = fs::read_dir(&ca_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, [CA_KEY_FILE, CA_CERT_FILE]);
}

#[cfg(unix)]
#[test]
fn the_key_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    load(dir.path()).unwrap();
    let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_corrupt_key_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path()).unwrap();
    let key_path = dir.path().join(CA_KEY_FILE);
    for garbage in [
        "not a key\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "",
    ] {
        fs::write(&key_path, garbage).unwrap();
        let err = load(dir.path()).unwrap_err();
        match &err {
            TlsError::InvalidFile { path, .. } => assert_eq!(path, &key_path),
            other => panic!("unexpected error {other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&key_path.display().to_string()),
            "{message}"
        );
        assert!(message.contains("private key"), "{message}");
    }
}

#[test]
fn a_corrupt_certificate_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path()).unwrap();
    let cert_path = dir.path().join(CA_CERT_FILE);
    for garbage in [
        "garbage\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        fs::write(&cert_path, garbage).unwrap();
        let err = load(dir.path()).unwrap_err();
        assert!(
            matches!(&err, TlsError::InvalidFile { path, .. } if path == &cert_path),
            "{err:?}"
        );
        assert!(err.to_string().contains(CA_CERT_FILE), "{err}");
    }
}

#[test]
fn a_certificate_without_its_key_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pem = load(dir.path()).unwrap().certificate_pem();
    fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
    let err = load(dir.path()).unwrap_err();
    assert!(
        matches!(&err, TlsError::InvalidFile { path, .. } if path.ends_with(CA_KEY_FILE)),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing"), "{err}");
    // Clients may trust this certificate already: it must survive the failed load.
    assert_eq!(
        fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap(),
        pem
    );
}

#[test]
fn a_key_without_its_certificate_gets_a_new_certificate() {
    let dir = tempfile::tempdir().unwrap();
    load(dir.path()).unwrap();
    let key = fs::read_to_string(dir.path().join(CA_KEY_FILE)).unwrap();
    fs::remove_file(dir.path().join(CA_CERT_FILE)).unwrap();
    let ca = load(dir.path()).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join(CA_CERT_FILE)).unwrap(),
        ca.certificate_pem()
    );
    assert_eq!(
        fs::read_to_string(dir.path().join(CA_KEY_FILE)).unwrap(),
        key
    );
}

#[test]
fn a_key_from_another_ca_is_a_mismatch() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    load(a.path()).unwrap();
    load(b.path()).unwrap();
    fs::copy(b.path().join(CA_KEY_FILE), a.path().join(CA_KEY_FILE)).unwrap();
    let err = load(a.path()).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(CA_KEY_FILE) && message.contains(CA_CERT_FILE),
        "{message}"
    );
}

#[test]
fn an_unusable_directory_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, "").unwrap();
    let err = load(&not_a_dir).unwrap_err();
    assert!(matches!(err, TlsError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&not_a_dir.display().to_string()),
        "{err}"
    );
}

#[test]
fn issued_leaves_carry_the_requested_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = load(dir.path()).unwrap();
    let names = ["A.example.com".to_owned(), "*.apps.example.com".to_owned()];
    let key = ca.issue(&names).unwrap();
    assert_eq!(key.cert.len(), 1);
    key.keys_match().unwrap();
    let der = key.cert[0].as_ref();
    // SANs are stored lower-cased, as IA5 strings inside the DER.
    let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
    assert!(contains(b"a.example.com"));
    assert!(contains(b"*.apps.example.com"));
    assert!(!contains(b"A.example.com"));
}

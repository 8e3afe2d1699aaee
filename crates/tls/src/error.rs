//! The one error type of this crate: every failure names the file or the name it is about.

use std::io;
use std::path::PathBuf;

/// Why a CA could not be loaded or created, a certificate could not be issued, or a TLS
/// configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading, writing or creating a file or directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "reading".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file exists but its contents are unusable (bad PEM, a key of an unsupported type, ...).
    #[error("{}: {reason}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, including what to do about it where that is not obvious.
        reason: String,
    },

    /// The CA key and certificate do not belong together.
    #[error(
        "{} does not hold the private key of the certificate in {} (restore the matching pair, \
         or delete both files to create a new CA that clients must then trust again)",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },

    /// A name cannot go into a certificate (not a DNS name, or a wildcard other than `*.domain`).
    #[error(
        "invalid certificate name {0:?}: expected a DNS name, or `*.` followed by one \
         (a single wildcard label)"
    )]
    InvalidName(String),

    /// A certificate was requested for no name at all.
    #[error("a certificate needs at least one DNS name")]
    NoNames,

    /// Generating a key or signing a certificate failed.
    #[error("issuing a certificate: {0}")]
    Issue(String),

    /// PEM text meant to hold CA certificates holds none, or is malformed.
    #[error("CA certificate PEM: {0}")]
    InvalidPem(String),

    /// rustls rejected a key, certificate or configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// The error for a failed I/O `action` on `path`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        TlsError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The error for a file whose contents are unusable.
    pub(crate) fn invalid_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TlsError::InvalidFile {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

//! Host names as certificates and SNI see them: normalisation, validation and wildcard coverage.
//!
//! DNS names compare case-insensitively and a trailing dot means the same name, so every name is
//! kept lower-case and without the dot. A wildcard name `*.example.com` covers exactly one extra
//! label (`api.example.com`, not `example.com` and not `a.b.example.com`), which is both the X.509
//! rule clients apply and the rule Lattice documents for custom-domain certificates.

use std::collections::HashSet;

use rustls_pki_types::DnsName;

use crate::TlsError;

/// Lower-cases `name` and drops one trailing dot.
fn canonical(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.to_ascii_lowercase()
}

/// Normalises and validates a name that may appear in a certificate or in the set of served
/// names: a DNS name, or `*.` followed by a DNS name of at least two labels.
///
/// The two-label minimum keeps out names such as `*.com` that clients refuse to match anyway.
pub(crate) fn normalize_cert_name(name: &str) -> Result<String, TlsError> {
    let canonical = canonical(name);
    let invalid = || TlsError::InvalidName(name.to_owned());
    let host = match canonical.strip_prefix("*.") {
        Some(parent) if parent.contains('.') => parent,
        Some(_) => return Err(invalid()),
        None => &canonical,
    };
    // `DnsName` rejects `*` anywhere, so a second wildcard, or one that is not a whole leftmost
    // label, fails here. It also rejects IP addresses, which Lattice never serves by SNI.
    DnsName::try_from(host).map_err(|_| invalid())?;
    Ok(canonical)
}

/// The set of names a listener may serve, split so that an SNI lookup costs two hash probes.
#[derive(Debug, Default)]
pub(crate) struct NameSet {
    /// Names served as they are.
    exact: HashSet<String>,
    /// For each `*.parent` in the configuration, `parent`.
    wildcard_parents: HashSet<String>,
}

impl NameSet {
    /// Builds the set from configured names. A name that cannot be served is skipped with a
    /// warning rather than failing the whole set: the control plane validates names already, and
    /// one bad name must not take every other service's HTTPS down.
    pub(crate) fn new(names: impl IntoIterator<Item = String>) -> NameSet {
        let mut set = NameSet::default();
        for name in names {
            match normalize_cert_name(&name) {
                Ok(name) => match name.strip_prefix("*.") {
                    Some(parent) => {
                        set.wildcard_parents.insert(parent.to_owned());
                    }
                    None => {
                        set.exact.insert(name);
                    }
                },
                Err(error) => tracing::warn!(%error, "not serving TLS for this name"),
            }
        }
        set
    }

    /// The configured name whose certificate serves `server_name` (an SNI value): the name itself
    /// when it is configured, else the wildcard `*.parent` covering it, else `None`.
    ///
    /// An exact name wins over a wildcard, so a service with its own name keeps its own
    /// certificate even when a wildcard also covers it.
    pub(crate) fn covering(&self, server_name: &str) -> Option<String> {
        let name = canonical(server_name);
        if self.exact.contains(&name) {
            return Some(name);
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() || label.contains('*') || !self.wildcard_parents.contains(parent) {
            return None;
        }
        Some(format!("*.{parent}"))
    }

    /// Whether `cert_name` (as returned by [`NameSet::covering`]) is still in the set.
    pub(crate) fn contains(&self, cert_name: &str) -> bool {
        match cert_name.strip_prefix("*.") {
            Some(parent) => self.wildcard_parents.contains(parent),
            None => self.exact.contains(cert_name),
        }
    }

    /// How many names (exact and wildcard) the set holds.
    pub(crate) fn len(&self) -> usize {
        self.exact.len() + self.wildcard_parents.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_validates_certificate_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("example.com", Some("example.com")),
            ("API.Example.COM.", Some("api.example.com")),
            ("*.Example.com", Some("*.example.com")),
            (
                "rates-0b1f56d26672bf677.7d67968.vpc-lattice-svcs.us-east-1.on.aws",
                Some("rates-0b1f56d26672bf677.7d67968.vpc-lattice-svcs.us-east-1.on.aws"),
            ),
            ("under_score.example.com", Some("under_score.example.com")),
            ("*.com", None),
            ("*", None),
            ("a.*.example.com", None),
            ("*.*.example.com", None),
            ("x*.example.com", None),
            ("", None),
            (".", None),
            ("127.0.0.1", None),
            ("-bad.example.com", None),
            ("bad..example.com", None),
            ("sp ace.example.com", None),
        ];
        for (input, expected) in cases {
            let got = normalize_cert_name(input).ok();
            assert_eq!(got.as_deref(), *expected, "{input:?}");
        }
    }

    #[test]
    fn covering_matches_exact_names_and_one_wildcard_label() {
        let set = NameSet::new(
            [
                "API.example.com",
                "*.Wild.example.com",
                "*.example.org",
                "bad name",
            ]
            .map(String::from),
        );
        assert_eq!(set.len(), 3);
        let cases: &[(&str, Option<&str>)] = &[
            ("api.example.com", Some("api.example.com")),
            ("API.EXAMPLE.COM", Some("api.example.com")),
            ("api.example.com.", Some("api.example.com")),
            ("other.example.com", None),
            ("example.com", None),
            ("a.wild.example.com", Some("*.wild.example.com")),
            ("A.Wild.Example.Com", Some("*.wild.example.com")),
            ("wild.example.com", None),
            ("a.b.wild.example.com", None),
            ("*.wild.example.com", None),
            ("x.example.org", Some("*.example.org")),
            ("example.org", None),
            ("", None),
            (".example.org", None),
        ];
        for (sni, expected) in cases {
            assert_eq!(set.covering(sni).as_deref(), *expected, "{sni:?}");
        }
    }

    #[test]
    fn exact_name_wins_over_wildcard() {
        let set = NameSet::new(["*.example.com", "api.example.com"].map(String::from));
        assert_eq!(
            set.covering("api.example.com").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            set.covering("web.example.com").as_deref(),
            Some("*.example.com")
        );
        assert!(set.contains("*.example.com"));
        assert!(set.contains("api.example.com"));
        assert!(!set.contains("web.example.com"));
    }
}

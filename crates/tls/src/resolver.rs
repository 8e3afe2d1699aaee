//! Server certificate selection by SNI: which names may be served, and the cache of leaf
//! certificates issued for them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::CertificateAuthority;
use crate::names::NameSet;

/// The most leaf certificates the resolver keeps. Lattice's default quotas allow 500 services per
/// account, each with a generated name and at most one custom domain, so this covers a full
/// account several times over; past it the soonest-to-expire certificate makes room, and is
/// simply issued again if it is needed again.
pub const MAX_CACHED_CERTIFICATES: usize = 4096;

/// A cached certificate is replaced once it has less than this left, a third of its 90 days, so
/// an expired certificate is never served however long the process runs.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Resolves the server certificate of a handshake by its SNI.
///
/// The names it may serve are replaced wholesale by [`SniResolver::set_names`] as the
/// configuration changes; handshakes read them without taking a lock. A certificate is issued by
/// the CA the first time a name is asked for, then cached and reissued before it expires. A
/// handshake without SNI, or for a name not in the set, gets no certificate and fails (rustls
/// sends an `access_denied` alert): Lattice endpoints are shared by many services, so the SNI is
/// how the service is known.
pub struct SniResolver {
    ca: Arc<CertificateAuthority>,
    names: ArcSwap<NameSet>,
    /// Keyed by the configured name the certificate is for (a wildcard name is one entry), never
    /// by the client's SNI, so clients cannot add entries. A plain mutex is enough: it is held
    /// for a hash-map probe, never while a certificate is being issued.
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    key: Arc<CertifiedKey>,
    renew_after: SystemTime,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("names", &self.names.load().len())
            .field("cached", &self.lock_cache().len())
            .finish_non_exhaustive()
    }
}

impl SniResolver {
    /// A resolver issuing from `ca` that serves no name until [`SniResolver::set_names`].
    pub fn new(ca: Arc<CertificateAuthority>) -> Self {
        SniResolver {
            ca,
            names: ArcSwap::from_pointee(NameSet::default()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the set of names that may be served: host names, and wildcards of one label
    /// (`*.example.com`), matched case-insensitively. Names that cannot be in a certificate are
    /// skipped with a warning. Takes effect for the next handshake; certificates of names no
    /// longer in the set are dropped from the cache.
    pub fn set_names(&self, names: impl IntoIterator<Item = String>) {
        let names = Arc::new(NameSet::new(names));
        self.names.store(Arc::clone(&names));
        self.lock_cache()
            .retain(|cert_name, _| names.contains(cert_name));
    }

    /// The certificate for `server_name` as of `now`: cached, or issued and cached.
    pub(crate) fn resolve_at(
        &self,
        server_name: Option<&str>,
        now: SystemTime,
    ) -> Option<Arc<CertifiedKey>> {
        let Some(server_name) = server_name else {
            tracing::debug!("TLS handshake without SNI refused");
            return None;
        };
        let Some(cert_name) = self.names.load().covering(server_name) else {
            tracing::debug!(server_name, "TLS handshake for a name not served refused");
            return None;
        };

        if let Some(cached) = self.lock_cache().get(&cert_name)
            && now < cached.renew_after
        {
            return Some(Arc::clone(&cached.key));
        }

        // Issue outside the lock so other names' handshakes do not wait on key generation. Two
        // handshakes racing for a new name may both issue; either certificate is valid and the
        // later one stays cached.
        let issued = match self.ca.issue_at(std::slice::from_ref(&cert_name), now) {
            Ok(issued) => issued,
            Err(error) => {
                tracing::warn!(%error, name = cert_name, "cannot issue a server certificate");
                return None;
            }
        };
        let key = Arc::clone(&issued.key);
        let cached = Cached {
            key: issued.key,
            renew_after: issued.not_after - RENEW_BEFORE_EXPIRY,
        };
        let mut cache = self.lock_cache();
        // `set_names` may have dropped the name while the certificate was being issued; this
        // handshake still gets it (it began under the old set), but it is not kept.
        if self.names.load().contains(&cert_name) {
            if cache.len() >= MAX_CACHED_CERTIFICATES && !cache.contains_key(&cert_name) {
                evict_soonest_renewal(&mut cache);
            }
            cache.insert(cert_name, cached);
        }
        Some(key)
    }

    fn lock_cache(&self) -> MutexGuard<'_, HashMap<String, Cached>> {
        // The cache holds no invariant a panicking holder could break halfway, so a poisoned
        // lock is as good as a healthy one.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Makes room in a full cache by dropping the entry that would be replaced soonest anyway.
fn evict_soonest_renewal(cache: &mut HashMap<String, Cached>) {
    let victim = cache
        .iter()
        .min_by_key(|(_, cached)| cached.renew_after)
        .map(|(name, _)| name.clone());
    if let Some(victim) = victim {
        cache.remove(&victim);
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_at(client_hello.server_name(), SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::LEAF_VALIDITY;

    fn resolver() -> (tempfile::TempDir, SniResolver) {
        let dir = tempfile::tempdir().unwrap();
        let ca = CertificateAuthority::load_or_create(dir.path()).unwrap();
        (dir, SniResolver::new(Arc::new(ca)))
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_sni_and_unknown_names_get_no_certificate() {
        let (_dir, resolver) = resolver();
        let now = SystemTime::now();
        assert!(resolver.resolve_at(Some("a.example.com"), now).is_none());
        resolver.set_names(names(&["a.example.com"]));
        assert!(resolver.resolve_at(None, now).is_none());
        assert!(resolver.resolve_at(Some("b.example.com"), now).is_none());
        assert!(resolver.resolve_at(Some("a.example.com"), now).is_some());
    }

    #[test]
    fn certificates_are_cached_per_configured_name() {
        let (_dir, resolver) = resolver();
        resolver.set_names(names(&["a.example.com", "*.wild.example.com"]));
        let now = SystemTime::now();
        let first = resolver.resolve_at(Some("a.example.com"), now).unwrap();
        let again = resolver.resolve_at(Some("A.Example.Com"), now).unwrap();
        assert!(Arc::ptr_eq(&first, &again));

        // Every host under a wildcard shares the wildcard's one certificate and cache entry.
        let x = resolver
            .resolve_at(Some("x.wild.example.com"), now)
            .unwrap();
        let y = resolver
            .resolve_at(Some("y.wild.example.com"), now)
            .unwrap();
        assert!(Arc::ptr_eq(&x, &y));
        assert!(!Arc::ptr_eq(&x, &first));
        assert_eq!(resolver.lock_cache().len(), 2);
    }

    #[test]
    fn certificates_are_reissued_before_they_expire() {
        let (_dir, resolver) = resolver();
        resolver.set_names(names(&["a.example.com"]));
        let now = SystemTime::now();
        let first = resolver.resolve_at(Some("a.example.com"), now).unwrap();
        let renew_at = now + LEAF_VALIDITY - RENEW_BEFORE_EXPIRY;

        let before = resolver
            .resolve_at(Some("a.example.com"), renew_at - Duration::from_secs(1))
            .unwrap();
        assert!(Arc::ptr_eq(&first, &before));

        let renewed = resolver
            .resolve_at(Some("a.example.com"), renew_at)
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &renewed));
        let cached = resolver
            .resolve_at(Some("a.example.com"), renew_at)
            .unwrap();
        assert!(Arc::ptr_eq(&renewed, &cached));
    }

    #[test]
    fn set_names_drops_certificates_of_removed_names() {
        let (_dir, resolver) = resolver();
        resolver.set_names(names(&["a.example.com", "b.example.com"]));
        let now = SystemTime::now();
        let a = resolver.resolve_at(Some("a.example.com"), now).unwrap();
        resolver.resolve_at(Some("b.example.com"), now).unwrap();
        assert_eq!(resolver.lock_cache().len(), 2);

        resolver.set_names(names(&["a.example.com"]));
        assert_eq!(resolver.lock_cache().len(), 1);
        assert!(resolver.resolve_at(Some("b.example.com"), now).is_none());
        let a_again = resolver.resolve_at(Some("a.example.com"), now).unwrap();
        assert!(
            Arc::ptr_eq(&a, &a_again),
            "a kept name keeps its certificate"
        );
    }

    #[test]
    fn a_full_cache_evicts_the_soonest_renewal() {
        let (_dir, resolver) = resolver();
        let all: Vec<String> = (0..=MAX_CACHED_CERTIFICATES)
            .map(|i| format!("s{i}.example.com"))
            .collect();
        resolver.set_names(all.clone());
        // Fill the cache with placeholder entries (issuing thousands of real certificates would
        // only slow the test down); the oldest renews first.
        let filler = resolver
            .resolve_at(Some("s0.example.com"), SystemTime::now())
            .unwrap();
        let base = SystemTime::now();
        {
            let mut cache = resolver.lock_cache();
            for (i, name) in all.iter().take(MAX_CACHED_CERTIFICATES).enumerate() {
                let cached = Cached {
                    key: Arc::clone(&filler),
                    renew_after: base + Duration::from_secs(i as u64 + 1),
                };
                cache.insert(name.clone(), cached);
            }
            assert_eq!(cache.len(), MAX_CACHED_CERTIFICATES);
        }
        let last = &all[MAX_CACHED_CERTIFICATES];
        resolver.resolve_at(Some(last), base).unwrap();
        let cache = resolver.lock_cache();
        assert_eq!(cache.len(), MAX_CACHED_CERTIFICATES);
        assert!(
            !cache.contains_key("s0.example.com"),
            "soonest renewal evicted"
        );
        assert!(cache.contains_key(last.as_str()));
    }
}

//! Signing-key derivation and the bounded cache of derived keys.
//!
//! A SigV4 signing key is `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
//! "aws4_request")`. It depends only on the secret and the credential scope, which change at most
//! daily for a given client, so a busy verifier sees the same few keys over and over. Caching
//! them saves four HMACs per request.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Derives the SigV4 signing key for a secret and a credential scope
/// (`date` is the scope's `YYYYMMDD`).
pub fn derive_signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut seed = Vec::with_capacity(4 + secret.len());
    seed.extend_from_slice(b"AWS4");
    seed.extend_from_slice(secret.as_bytes());
    let k_date = hmac_sha256(&seed, date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// A bounded cache of derived signing keys, shareable across threads through `&self`.
///
/// Entries are keyed by a SHA-256 digest of (secret, date, region, service): including the secret
/// means a rotated secret for the same access key id can never hit a stale key, and hashing it
/// means the cache does not keep extra plaintext copies of long-term secrets. When the cache is
/// full, the least recently used entry is evicted (a linear scan, which is cheap at the sizes a
/// key cache needs and happens only on a miss).
pub struct KeyCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<[u8; 32], Entry>,
    tick: u64,
}

struct Entry {
    key: [u8; 32],
    last_used: u64,
}

impl KeyCache {
    /// The capacity [`KeyCache::default`] uses: enough for a thousand distinct
    /// (secret, day, region, service) combinations.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A cache holding at most `capacity` keys. A capacity of 0 disables caching (every lookup
    /// derives the key afresh), which is handy for tests and benchmarks.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The maximum number of keys held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The number of keys currently held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cached key (e.g. after credentials were revoked, to be thorough; stale
    /// entries are unreachable anyway because the secret is part of the cache key).
    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Returns the signing key for this secret and scope, deriving and caching it on a miss.
    pub fn signing_key(&self, secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
        if self.capacity == 0 {
            return derive_signing_key(secret, date, region, service);
        }
        let id = cache_id(secret, date, region, service);
        {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(entry) = inner.entries.get_mut(&id) {
                entry.last_used = tick;
                return entry.key;
            }
        }
        // Derive outside the lock so concurrent misses on different keys do not serialise on
        // the HMAC work; a duplicate derivation on a racing miss is harmless.
        let key = derive_signing_key(secret, date, region, service);
        let mut inner = self.lock();
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&id) {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(id, _)| *id);
            if let Some(oldest) = oldest {
                inner.entries.remove(&oldest);
            }
        }
        inner.tick += 1;
        let last_used = inner.tick;
        inner.entries.insert(id, Entry { key, last_used });
        key
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is always left consistent (no panics between mutations), so a poisoned lock
        // carries no broken invariant and recovering it is safe.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for KeyCache {
    // Never print key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

fn cache_id(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    // Length prefixes keep the encoding unambiguous ("ab"+"c" differs from "a"+"bc").
    for part in [secret, date, region, service] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_documented_example_key() {
        // The signing-key example from the AWS SigV4 documentation ("Examples of how to derive a
        // signing key"): secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY, 20120215/us-east-1/iam.
        let key = derive_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn evicts_least_recently_used() {
        let cache = KeyCache::new(2);
        let a = cache.signing_key("s", "20150830", "r", "a");
        cache.signing_key("s", "20150830", "r", "b");
        // Touch "a" so that "b" is the eviction victim.
        assert_eq!(cache.signing_key("s", "20150830", "r", "a"), a);
        cache.signing_key("s", "20150830", "r", "c");
        assert_eq!(cache.len(), 2);
        let inner = cache.lock();
        assert!(
            inner
                .entries
                .contains_key(&cache_id("s", "20150830", "r", "a"))
        );
        assert!(
            inner
                .entries
                .contains_key(&cache_id("s", "20150830", "r", "c"))
        );
        assert!(
            !inner
                .entries
                .contains_key(&cache_id("s", "20150830", "r", "b"))
        );
    }

    #[test]
    fn zero_capacity_disables_caching() {
        let cache = KeyCache::new(0);
        let key = cache.signing_key("s", "20150830", "r", "a");
        assert_eq!(key, derive_signing_key("s", "20150830", "r", "a"));
        assert!(cache.is_empty());
    }
}

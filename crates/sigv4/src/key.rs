//! Signing-key derivation and the bounded cache of derived keys.
//!
//! A SigV4 signing key is `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
//! "aws4_request")`. It depends only on the secret and the credential scope, which change at most
//! daily for a given client, so a busy verifier sees the same few keys over and over. Caching
//! them saves four HMACs per request.
//!
//! A SigV4A key pair is derived from the secret and the access key id alone (no date, no scope),
//! by AWS's counter-mode KDF (see [`derive_sigv4a_public_key`]). The verifier only needs the
//! public half, but computing it costs a P-256 scalar multiplication, tens of microseconds, so
//! the cache keeps those public keys too (never the private scalar).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use p256::ecdsa::VerifyingKey;
use p256::elliptic_curve::PrimeField;
use p256::{NonZeroScalar, PublicKey, Scalar};
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

/// The SigV4A algorithm name, which is also the KDF's label.
pub(crate) const SIGV4A_ALGORITHM: &str = "AWS4-ECDSA-P256-SHA256";

/// The KDF's counter runs from 1 to this value (the CRT gives up after it; so do we).
const MAX_KDF_COUNTER: u8 = 254;

/// One KDF output: `HMAC-SHA256("AWS4A" + secret, fixed input)`, where the fixed input is
/// NIST SP 800-108 counter mode's `[i]₃₂ || label || 0x00 || context || [L]₃₂` with `i` = 1,
/// label `AWS4-ECDSA-P256-SHA256`, context the access key id followed by the one-byte
/// `counter`, and `L` = 256.
fn kdf_candidate(access_key_id: &str, secret: &str, counter: u8) -> [u8; 32] {
    let mut input_key = Vec::with_capacity(5 + secret.len());
    input_key.extend_from_slice(b"AWS4A");
    input_key.extend_from_slice(secret.as_bytes());
    let mut mac = HmacSha256::new_from_slice(&input_key).expect("HMAC takes keys of any length");
    mac.update(&1u32.to_be_bytes());
    mac.update(SIGV4A_ALGORITHM.as_bytes());
    mac.update(&[0]);
    mac.update(access_key_id.as_bytes());
    mac.update(&[counter]);
    mac.update(&256u32.to_be_bytes());
    mac.finalize().into_bytes().into()
}

/// The private scalar for one KDF candidate `k0` (a big-endian 256-bit integer): `k0 + 1` when
/// `k0 <= n - 2` (`n` being the order of P-256), so that the key lies in `[1, n - 1]`, and `None`
/// when the candidate is too large and the KDF must try the next counter.
///
/// `Scalar::from_repr` refuses `k0 >= n`; of the rest, only `k0 = n - 1` wraps to zero when one
/// is added, which `NonZeroScalar::new` refuses. So the two checks together are `k0 <= n - 2`,
/// without hand-written big-integer arithmetic.
fn private_scalar_from_candidate(k0: [u8; 32]) -> Option<NonZeroScalar> {
    let k0 = Option::<Scalar>::from(Scalar::from_repr(k0.into()))?;
    Option::from(NonZeroScalar::new(k0 + Scalar::ONE))
}

/// Runs the KDF's retry loop over `candidate(counter)` for counters 1 to 254.
fn derive_private_scalar(candidate: impl Fn(u8) -> [u8; 32]) -> Option<NonZeroScalar> {
    (1..=MAX_KDF_COUNTER).find_map(|counter| private_scalar_from_candidate(candidate(counter)))
}

/// The SigV4A verifying (public) key of an access key, derived as AWS signers derive the key
/// pair; `None` only if all 254 KDF candidates were out of range, which for a real secret has a
/// probability below 2^-8000 (each candidate fails with probability about 2^-32).
pub(crate) fn derive_sigv4a_verifying_key(
    access_key_id: &str,
    secret: &str,
) -> Option<VerifyingKey> {
    let scalar = derive_private_scalar(|counter| kdf_candidate(access_key_id, secret, counter))?;
    Some(VerifyingKey::from(PublicKey::from_secret_scalar(&scalar)))
}

/// Derives the SigV4A public key of an access key exactly as AWS's signers derive the key pair
/// (the CRT's `aws_ecc_key_pair_new_ecdsa_p256_key_from_aws_credentials`, `aws-sigv4`'s
/// `generate_signing_key`): HMAC-SHA256 in counter mode over `"AWS4A" + secret`, with label
/// `AWS4-ECDSA-P256-SHA256` and context access key id plus a counter byte, retried with the next
/// counter until the 256-bit output `k0` is at most `n - 2`; the private key is `k0 + 1`.
///
/// Returns the public key as an uncompressed SEC1 point (`0x04 || X || Y`, 65 bytes), or `None`
/// if no counter up to 254 gives a usable candidate, which never happens in practice (see
/// [`KeyCache`] for where the verifier keeps these keys).
pub fn derive_sigv4a_public_key(access_key_id: &str, secret: &str) -> Option<[u8; 65]> {
    let key = derive_sigv4a_verifying_key(access_key_id, secret)?;
    let point = key.to_sec1_point(false);
    point.as_bytes().try_into().ok()
}

/// A bounded cache of derived signing keys, shareable across threads through `&self`.
///
/// It holds SigV4 signing keys and SigV4A public keys side by side, sharing one capacity.
/// SigV4 entries are keyed by a SHA-256 digest of (secret, date, region, service), SigV4A entries
/// by a digest of (algorithm name, access key id, secret): including the secret means a rotated secret for the same access key id can never hit a stale key, and hashing it
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
    key: CachedKey,
    last_used: u64,
}

#[derive(Clone, Copy)]
enum CachedKey {
    /// A SigV4 signing key (an HMAC key).
    V4([u8; 32]),
    /// A SigV4A public key.
    V4a(VerifyingKey),
}

impl KeyCache {
    /// The capacity [`KeyCache::default`] uses: enough for a thousand distinct
    /// (secret, day, region, service) combinations and SigV4A access keys together.
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
        let id = cache_id(secret, date, region, service);
        let derive = || {
            Some(CachedKey::V4(derive_signing_key(
                secret, date, region, service,
            )))
        };
        match self.get_or_derive(id, derive) {
            Some(CachedKey::V4(key)) => key,
            // SigV4 ids and SigV4A ids never collide (see `sigv4a_cache_id`), and SigV4
            // derivation cannot fail, so this arm only guards against a logic error.
            _ => derive_signing_key(secret, date, region, service),
        }
    }

    /// Returns the SigV4A public key of this access key and secret, deriving and caching it on a
    /// miss; `None` when the KDF fails (never in practice; not cached).
    pub(crate) fn sigv4a_key(&self, access_key_id: &str, secret: &str) -> Option<VerifyingKey> {
        let id = sigv4a_cache_id(access_key_id, secret);
        let derive = || derive_sigv4a_verifying_key(access_key_id, secret).map(CachedKey::V4a);
        match self.get_or_derive(id, derive)? {
            CachedKey::V4a(key) => Some(key),
            CachedKey::V4(_) => derive_sigv4a_verifying_key(access_key_id, secret),
        }
    }

    fn get_or_derive(
        &self,
        id: [u8; 32],
        derive: impl FnOnce() -> Option<CachedKey>,
    ) -> Option<CachedKey> {
        if self.capacity == 0 {
            return derive();
        }
        {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(entry) = inner.entries.get_mut(&id) {
                entry.last_used = tick;
                return Some(entry.key);
            }
        }
        // Derive outside the lock so concurrent misses on different keys do not serialise on
        // the derivation work; a duplicate derivation on a racing miss is harmless.
        let key = derive()?;
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
        Some(key)
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

/// The cache id of a SigV4A key. It hashes three length-prefixed parts where SigV4 ids hash
/// four, so no SigV4A id can be the digest of the same bytes as a SigV4 id.
fn sigv4a_cache_id(access_key_id: &str, secret: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [SIGV4A_ALGORITHM, access_key_id, secret] {
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

    /// The order of P-256, big-endian.
    const N: [u8; 32] =
        hex_literal("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

    const fn hex_literal(hex: &str) -> [u8; 32] {
        let bytes = hex.as_bytes();
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = (nibble(bytes[2 * i]) << 4) | nibble(bytes[2 * i + 1]);
            i += 1;
        }
        out
    }

    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            _ => c - b'a' + 10,
        }
    }

    /// `N - k` for small `k` (no borrow past the last byte, since N's low byte is 0x51).
    fn n_minus(k: u8) -> [u8; 32] {
        let mut out = N;
        out[31] -= k;
        out
    }

    fn scalar_bytes(candidate: [u8; 32]) -> Option<[u8; 32]> {
        private_scalar_from_candidate(candidate).map(|s| s.to_repr().into())
    }

    #[test]
    fn candidate_bound_is_n_minus_two_inclusive() {
        // k0 = n - 2 is the largest accepted candidate and gives the largest key, n - 1.
        assert_eq!(scalar_bytes(n_minus(2)), Some(n_minus(1)));
        assert_eq!(scalar_bytes(n_minus(3)), Some(n_minus(2)));
        // n - 1 would give the key n = 0 (mod n); n and above are not scalars at all.
        assert_eq!(scalar_bytes(n_minus(1)), None);
        assert_eq!(scalar_bytes(N), None);
        let mut n_plus_one = N;
        n_plus_one[31] += 1;
        assert_eq!(scalar_bytes(n_plus_one), None);
        assert_eq!(scalar_bytes([0xff; 32]), None);
    }

    #[test]
    fn candidate_plus_one_carries() {
        let mut one = [0u8; 32];
        one[31] = 1;
        assert_eq!(scalar_bytes([0; 32]), Some(one));
        let mut low_ff = [0u8; 32];
        low_ff[30] = 0x12;
        low_ff[31] = 0xff;
        let mut expected = [0u8; 32];
        expected[30] = 0x13;
        assert_eq!(scalar_bytes(low_ff), Some(expected));
        // A carry through every byte below the top one.
        let mut long_carry = [0xff; 32];
        long_carry[0] = 0x7f;
        let mut expected = [0u8; 32];
        expected[0] = 0x80;
        assert_eq!(scalar_bytes(long_carry), Some(expected));
    }

    #[test]
    fn kdf_retries_with_the_next_counter() {
        let tried = std::cell::RefCell::new(Vec::new());
        let scalar = derive_private_scalar(|counter| {
            tried.borrow_mut().push(counter);
            match counter {
                1 => n_minus(1),
                2 => [0xff; 32],
                _ => {
                    let mut k0 = [0u8; 32];
                    k0[31] = 5;
                    k0
                }
            }
        })
        .expect("the third candidate is in range");
        let mut six = [0u8; 32];
        six[31] = 6;
        assert_eq!(<[u8; 32]>::from(scalar.to_repr()), six);
        assert_eq!(*tried.borrow(), [1, 2, 3]);
    }

    #[test]
    fn kdf_gives_up_after_counter_254() {
        let tried = std::cell::RefCell::new(Vec::new());
        let scalar = derive_private_scalar(|counter| {
            tried.borrow_mut().push(counter);
            N
        });
        assert!(scalar.is_none());
        assert_eq!(*tried.borrow(), (1..=254).collect::<Vec<u8>>());
    }

    #[test]
    fn derives_the_test_suite_public_key() {
        // public-key.json of every case in aws-c-auth's tests/aws-signing-test-suite/v4a.
        let key =
            derive_sigv4a_public_key("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
                .unwrap();
        assert_eq!(key[0], 0x04);
        assert_eq!(
            hex::encode(&key[1..33]),
            "b6618f6a65740a99e650b33b6b4b5bd0d43b176d721a3edfea7e7d2d56d936b1"
        );
        assert_eq!(
            hex::encode(&key[33..]),
            "865ed22a7eadc9c5cb9d2cbaca1b3699139fedc5043dc6661864218330c8e518"
        );
    }

    #[test]
    fn sigv4a_keys_are_cached_beside_sigv4_keys() {
        let cache = KeyCache::new(8);
        let v4a = cache.sigv4a_key("AKID", "secret").unwrap();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.sigv4a_key("AKID", "secret"), Some(v4a));
        assert_eq!(cache.len(), 1);
        // Another secret for the same access key id is another key, never the stale one.
        let rotated = cache.sigv4a_key("AKID", "rotated").unwrap();
        assert_ne!(rotated, v4a);
        assert_eq!(cache.len(), 2);
        cache.signing_key("secret", "20150830", "r", "s");
        assert_eq!(cache.len(), 3);
        assert_eq!(
            cache.sigv4a_key("AKID", "secret"),
            derive_sigv4a_verifying_key("AKID", "secret")
        );
        let uncached = KeyCache::new(0);
        assert_eq!(uncached.sigv4a_key("AKID", "secret"), Some(v4a));
        assert!(uncached.is_empty());
    }
}

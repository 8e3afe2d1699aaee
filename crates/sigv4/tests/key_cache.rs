//! The signing-key cache: verification with it must agree with verification without it, it must
//! stay within its bound, and it must never serve a key derived from a stale secret.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Spec, TOKEN, now, options, sha256_hex, sign_request};
use trellis_sigv4::{KeyCache, SecretLookup, derive_signing_key, verify, verify_with_cache};

const BASE: &str = "https://vpc-lattice.us-west-2.amazonaws.com";

/// A mix of requests that verify and requests that fail for different reasons.
fn requests() -> Vec<common::Received> {
    let mut tampered = sign_request(&Spec::post(&format!("{BASE}/services"), b"{}"));
    tampered.body = b"{\"x\":1}".to_vec();
    vec![
        sign_request(&Spec::get(&format!("{BASE}/services"))),
        sign_request(&Spec {
            token: Some(TOKEN),
            ..Spec::get(&format!("{BASE}/services?maxResults=3"))
        }),
        sign_request(&Spec {
            presign: Some(Duration::from_secs(60)),
            ..Spec::get(&format!("{BASE}/services"))
        }),
        sign_request(&Spec {
            access_key_id: "AKIDOTHER",
            secret: "otherSecretKeyotherSecretKey",
            ..Spec::get(&format!("{BASE}/services"))
        }),
        sign_request(&Spec {
            secret: "wrong",
            ..Spec::get(&format!("{BASE}/services"))
        }),
        sign_request(&Spec {
            access_key_id: "AKIDUNKNOWN",
            ..Spec::get(&format!("{BASE}/services"))
        }),
        tampered,
    ]
}

/// The outcome reduced to something comparable.
fn outcome(
    result: Result<trellis_sigv4::Verified, trellis_sigv4::SigV4Error>,
) -> Result<String, &'static str> {
    result.map(|v| v.access_key_id).map_err(|e| e.aws_code())
}

#[test]
fn cached_and_uncached_verification_agree() {
    let cache = KeyCache::default();
    let keys = common::keys();
    let mut accepted = 0;
    // Twice, so the second round is served from a warm cache.
    for _ in 0..2 {
        for received in requests() {
            let payload = sha256_hex(&received.body);
            let plain = outcome(verify(&received.parts, &payload, &keys, &options()));
            let cached = outcome(verify_with_cache(
                &received.parts,
                &payload,
                &keys,
                &options(),
                &cache,
            ));
            assert_eq!(plain, cached);
            accepted += usize::from(plain.is_ok());
        }
    }
    // The mix really contains both outcomes (4 good requests per round).
    assert_eq!(accepted, 8);
    // Keys are derived from the secrets on file, so only the two known users' keys exist: the
    // wrong-secret request reuses AKIDEXAMPLE's key, and the unknown key id never gets that far.
    assert_eq!(cache.len(), 2);
}

#[test]
fn repeated_requests_hit_the_cache() {
    let cache = KeyCache::new(8);
    let received = sign_request(&Spec::get(&format!("{BASE}/services")));
    for _ in 0..5 {
        verify_with_cache(
            &received.parts,
            &sha256_hex(&received.body),
            &common::keys(),
            &options(),
            &cache,
        )
        .unwrap();
    }
    assert_eq!(cache.len(), 1);
}

#[test]
fn cache_is_bounded() {
    let cache = KeyCache::new(4);
    // `Spec` holds `&'static str` credentials; leaking twenty short strings in a test is fine.
    let users: Vec<(&'static str, &'static str)> = (0..20)
        .map(|i| {
            let id: &'static str = format!("AKID{i:04}").leak();
            let secret: &'static str = format!("secret-{i}").leak();
            (id, secret)
        })
        .collect();
    let keys: HashMap<String, String> = users
        .iter()
        .map(|(id, secret)| ((*id).to_owned(), (*secret).to_owned()))
        .collect();
    for (id, secret) in &users {
        let received = sign_request(&Spec {
            access_key_id: id,
            secret,
            ..Spec::get(&format!("{BASE}/services"))
        });
        let verified = verify_with_cache(
            &received.parts,
            &sha256_hex(&received.body),
            &keys,
            &options(),
            &cache,
        )
        .unwrap();
        assert_eq!(verified.access_key_id, *id);
        assert!(cache.len() <= 4, "cache grew to {}", cache.len());
    }
    assert_eq!(cache.len(), 4);
    assert_eq!(cache.capacity(), 4);
}

/// A key store whose secret can be rotated between calls.
struct Rotating(std::sync::Mutex<String>);

impl SecretLookup for Rotating {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        (access_key_id == common::AKID).then(|| self.0.lock().unwrap().clone())
    }
}

#[test]
fn rotated_secret_never_hits_a_stale_key() {
    let cache = KeyCache::default();
    let store = Rotating(std::sync::Mutex::new("old-secret".to_owned()));
    let signed_old = sign_request(&Spec {
        secret: "old-secret",
        ..Spec::get(&format!("{BASE}/services"))
    });
    let signed_new = sign_request(&Spec {
        secret: "new-secret",
        ..Spec::get(&format!("{BASE}/services"))
    });
    let run = |received: &common::Received| {
        outcome(verify_with_cache(
            &received.parts,
            &sha256_hex(&received.body),
            &store,
            &options(),
            &cache,
        ))
    };

    assert!(run(&signed_old).is_ok());
    *store.0.lock().unwrap() = "new-secret".to_owned();
    assert_eq!(run(&signed_old), Err("InvalidSignatureException"));
    assert!(run(&signed_new).is_ok());
}

#[test]
fn cache_is_shared_across_threads() {
    let cache = KeyCache::new(16);
    let received = sign_request(&Spec::get(&format!("{BASE}/services")));
    let payload = sha256_hex(&received.body);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..20 {
                    verify_with_cache(
                        &received.parts,
                        &payload,
                        &common::keys(),
                        &options(),
                        &cache,
                    )
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(cache.len(), 1);
}

#[test]
fn cache_serves_the_derived_key() {
    let cache = KeyCache::new(2);
    let date = now().date();
    let date = format!(
        "{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    );
    let expected = derive_signing_key(common::SECRET, &date, common::REGION, common::SERVICE);
    assert_eq!(
        cache.signing_key(common::SECRET, &date, common::REGION, common::SERVICE),
        expected
    );
    // Second call is a hit and returns the same key.
    assert_eq!(
        cache.signing_key(common::SECRET, &date, common::REGION, common::SERVICE),
        expected
    );
    assert_eq!(cache.len(), 1);
    cache.clear();
    assert!(cache.is_empty());
    // Debug output never shows key material.
    let debug = format!("{cache:?}");
    assert!(!debug.contains(&hex::encode(expected)), "{debug}");
}

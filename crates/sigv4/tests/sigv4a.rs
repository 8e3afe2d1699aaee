//! SigV4A against a real signer: requests signed by the `aws-sigv4` crate (feature `sigv4a`), as
//! clients of VPC Lattice's `vpc-lattice-svcs` send them, must verify, and every alteration must
//! be refused with the right error.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    AKID, Received, SECRET, Spec, TOKEN, expect_code, keys, now, sha256_hex, sign_request,
};
use trellis_sigv4::{
    KeyCache, SigV4Error, Verified, VerifyOptions, precheck, verify, verify_with_cache,
};

const SERVICE: &str = "vpc-lattice-svcs";
const REGION: &str = "us-west-2";
const BASE: &str = "https://svc-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws";

const MISMATCH: &str = "InvalidSignatureException";
const INCOMPLETE: &str = "IncompleteSignatureException";

fn url(path_and_query: &str) -> String {
    format!("{BASE}{path_and_query}")
}

/// A SigV4A signing of `GET url` for the region set `us-west-2`.
fn get(path_and_query: &str) -> Spec {
    Spec {
        service: SERVICE,
        region: REGION,
        sigv4a: true,
        ..Spec::get(&url(path_and_query))
    }
}

fn post(path: &str, body: &[u8]) -> Spec {
    Spec {
        service: SERVICE,
        region: REGION,
        sigv4a: true,
        ..Spec::post(&url(path), body)
    }
}

fn presigned(spec: Spec) -> Spec {
    Spec {
        presign: Some(Duration::from_secs(300)),
        ..spec
    }
}

fn options() -> VerifyOptions<'static> {
    VerifyOptions {
        service: SERVICE,
        region: Some(REGION),
        now: now(),
        max_skew: trellis_sigv4::DEFAULT_MAX_SKEW,
    }
}

fn check(received: &Received) -> Result<Verified, SigV4Error> {
    verify(
        &received.parts,
        &sha256_hex(&received.body),
        &keys(),
        &options(),
    )
}

fn check_any_region(received: &Received) -> Result<Verified, SigV4Error> {
    let opts = VerifyOptions {
        region: None,
        ..options()
    };
    verify(&received.parts, &sha256_hex(&received.body), &keys(), &opts)
}

/// Replaces (or adds) a query parameter in the request target, keeping everything else.
fn set_query_param(received: Received, name: &str, value: &str) -> Received {
    let path = received.parts.uri.path().to_owned();
    let query = received.parts.uri.query().unwrap_or("");
    let mut pieces: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    pieces.push(format!("{name}={value}"));
    let uri = format!("{path}?{}", pieces.join("&"));
    received.uri(&uri)
}

fn authorization(received: &Received) -> String {
    received.parts.headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[test]
fn header_form_verifies() {
    let received = sign_request(&get("/orders?limit=3&b=x%20y"));
    let auth = authorization(&received);
    assert!(
        auth.starts_with(
            "AWS4-ECDSA-P256-SHA256 Credential=AKIDEXAMPLE/20250314/vpc-lattice-svcs/aws4_request"
        ),
        "{auth}"
    );
    assert!(auth.contains("x-amz-region-set"), "{auth}");
    let verified = check(&received).expect("a SigV4A request verifies");
    assert_eq!(verified.access_key_id, AKID);
    assert_eq!(verified.service, SERVICE);
    assert_eq!(verified.region, REGION);
    assert_eq!(verified.region_set, Some(vec![REGION.to_owned()]));
    assert!(!verified.presigned);
    assert!(verified.covers_region(REGION));
    assert!(!verified.covers_region("us-east-1"));
    assert!(
        verified
            .signed_headers
            .iter()
            .any(|h| h == "x-amz-region-set")
    );
}

#[test]
fn bodies_tokens_and_digest_headers_verify() {
    let body = br#"{"item":"book","qty":2}"#;
    let specs = [
        post("/orders", body),
        Spec {
            content_sha_header: true,
            ..post("/orders", body)
        },
        Spec {
            body_mode: common::Body::Unsigned,
            content_sha_header: true,
            ..post("/orders", body)
        },
        Spec {
            token: Some(TOKEN),
            ..post("/orders", body)
        },
        Spec {
            http2: true,
            ..post("/orders", body)
        },
    ];
    for spec in specs {
        let received = sign_request(&spec);
        let verified = check(&received).unwrap_or_else(|e| panic!("{spec:?}: {e:?}"));
        assert_eq!(verified.security_token.as_deref(), spec.token);
    }
}

#[test]
fn presigned_form_verifies() {
    for spec in [
        presigned(get("/orders?limit=3")),
        presigned(Spec {
            token: Some(TOKEN),
            ..get("/orders")
        }),
    ] {
        let received = sign_request(&spec);
        let query = received.parts.uri.query().unwrap().to_owned();
        assert!(
            query.contains("X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256"),
            "{query}"
        );
        assert!(query.contains("X-Amz-Region-Set=us-west-2"), "{query}");
        assert!(!received.parts.headers.contains_key("authorization"));
        let verified = check(&received).unwrap_or_else(|e| panic!("{query}: {e:?}"));
        assert!(verified.presigned);
        assert_eq!(verified.region_set, Some(vec![REGION.to_owned()]));
        assert_eq!(verified.security_token.as_deref(), spec.token);
    }
}

#[test]
fn region_sets_with_wildcards_and_lists_match() {
    for set in [
        "*",
        "us-*",
        "us-west-*",
        "eu-west-1,us-west-2",
        "ap-*,us-*-2",
    ] {
        for spec in [get("/x"), presigned(get("/x"))] {
            let received = sign_request(&Spec {
                region: set,
                ..spec
            });
            let verified = check(&received).unwrap_or_else(|e| panic!("{set}: {e:?}"));
            assert_eq!(verified.region, REGION, "the region it was accepted for");
            let entries: Vec<String> = set.split(',').map(str::to_owned).collect();
            assert_eq!(verified.region_set, Some(entries));
        }
    }
}

#[test]
fn region_set_not_including_the_region_is_refused() {
    for set in ["eu-west-1", "us-east-*", "eu-*,ap-*", "us-west-22"] {
        for spec in [get("/x"), presigned(get("/x"))] {
            let received = sign_request(&Spec {
                region: set,
                ..spec
            });
            let e = expect_code(check(&received), MISMATCH);
            assert!(
                matches!(&e, SigV4Error::RegionSetMismatch { region_set, region }
                    if region_set == set && region == REGION),
                "{e:?}"
            );
            assert_eq!(e.http_status(), 403);
            // The head alone decides it.
            let early = precheck(&received.parts, &keys(), &options()).unwrap_err();
            assert!(matches!(early, SigV4Error::RegionSetMismatch { .. }));
        }
    }
}

#[test]
fn without_a_required_region_the_set_is_reported() {
    let received = sign_request(&Spec {
        region: "eu-west-1, us-*",
        ..get("/x")
    });
    let verified = check_any_region(&received).unwrap();
    assert_eq!(verified.region, "eu-west-1, us-*", "the set as sent");
    assert_eq!(
        verified.region_set,
        Some(vec!["eu-west-1".to_owned(), "us-*".to_owned()])
    );
    assert!(verified.covers_region("us-east-1"));
    assert!(verified.covers_region("eu-west-1"));
    assert!(!verified.covers_region("eu-west-2"));
    assert!(trellis_sigv4::region_set_matches(
        verified.region_set.as_deref().unwrap(),
        "us-west-2"
    ));
}

#[test]
fn malformed_region_sets_are_incomplete() {
    for set in [
        "us-west-2,",
        "us-west-2,,eu-west-1",
        "us_west_2",
        "us-west-2;eu-west-1",
    ] {
        for spec in [get("/x"), presigned(get("/x"))] {
            let received = sign_request(&Spec {
                region: set,
                ..spec
            });
            let e = expect_code(check(&received), INCOMPLETE);
            assert!(e.to_string().contains("X-Amz-Region-Set"), "{e}");
        }
    }
}

#[test]
fn tampering_is_refused() {
    let good = || sign_request(&get("/orders?limit=3"));
    let cases: Vec<(&str, Received)> = vec![
        ("path", good().uri("/orders/1?limit=3")),
        ("query", good().uri("/orders?limit=4")),
        ("added query", good().uri("/orders?limit=3&admin=true")),
        ("host", good().header("host", "evil.example.com")),
        ("region set widened", good().header("x-amz-region-set", "*")),
        (
            "region set changed",
            good().header("x-amz-region-set", "us-west-2,eu-west-1"),
        ),
        ("date", good().header("x-amz-date", "20250314T151000Z")),
        ("method", {
            let mut r = good();
            r.parts.method = http::Method::DELETE;
            r
        }),
    ];
    for (what, received) in cases {
        let e = expect_code(check(&received), MISMATCH);
        assert!(
            matches!(e, SigV4Error::SignatureDoesNotMatch { .. }),
            "{what}: {e:?}"
        );
    }

    // A signed header other than the region set.
    let received = sign_request(&get("/x").header("x-tenant", "a")).header("x-tenant", "b");
    expect_code(check(&received), MISMATCH);

    // The body.
    let mut received = sign_request(&post("/orders", b"{\"qty\":1}"));
    received.body = b"{\"qty\":9}".to_vec();
    expect_code(check(&received), MISMATCH);
}

#[test]
fn presigned_tampering_is_refused() {
    let good = || sign_request(&presigned(get("/orders?limit=3")));
    for (name, value) in [
        ("X-Amz-Region-Set", "%2A"),
        ("X-Amz-Region-Set", "us-west-2%2Ceu-west-1"),
        ("limit", "4"),
        ("X-Amz-Expires", "600"),
    ] {
        let received = set_query_param(good(), name, value);
        expect_code(check(&received), MISMATCH);
    }
    let received = good();
    let moved = format!("/orders/1?{}", received.parts.uri.query().unwrap());
    expect_code(check(&received.uri(&moved)), MISMATCH);
    expect_code(check(&good().header("host", "evil.example.com")), MISMATCH);
}

#[test]
fn region_set_must_be_present_and_signed() {
    // Header removed: the request names SigV4A but carries no region set.
    let mut received = sign_request(&get("/x"));
    received.parts.headers.remove("x-amz-region-set");
    let e = expect_code(check(&received), INCOMPLETE);
    assert!(e.to_string().contains("X-Amz-Region-Set"), "{e}");

    // Header present but left out of SignedHeaders: it could be widened freely.
    let received = sign_request(&get("/x"));
    let auth = authorization(&received).replace(";x-amz-region-set", "");
    let received = received.header("authorization", &auth);
    let e = expect_code(check(&received), INCOMPLETE);
    assert!(
        e.to_string()
            .contains("'X-Amz-Region-Set' must be a 'SignedHeader'"),
        "{e}"
    );

    // Presigned without the parameter.
    let received = sign_request(&presigned(get("/x")));
    let query: Vec<&str> = received
        .parts
        .uri
        .query()
        .unwrap()
        .split('&')
        .filter(|p| !p.starts_with("X-Amz-Region-Set="))
        .collect();
    let uri = format!("/x?{}", query.join("&"));
    let received = received.uri(&uri);
    let e = expect_code(check(&received), INCOMPLETE);
    assert!(e.to_string().contains("X-Amz-Region-Set"), "{e}");
}

#[test]
fn wrong_or_unknown_keys_are_refused() {
    for spec in [get("/x"), presigned(get("/x"))] {
        let wrong_secret = sign_request(&Spec {
            secret: "not-the-secret-not-the-secret-000",
            ..spec.clone()
        });
        expect_code(check(&wrong_secret), MISMATCH);

        // The other user's key pair does not verify AKIDEXAMPLE's signature.
        let other_user = sign_request(&Spec {
            access_key_id: "AKIDOTHER",
            secret: SECRET,
            ..spec.clone()
        });
        expect_code(check(&other_user), MISMATCH);

        let unknown = sign_request(&Spec {
            access_key_id: "AKIDNOBODY",
            ..spec
        });
        expect_code(check(&unknown), "UnrecognizedClientException");
    }
}

#[test]
fn time_and_service_are_checked() {
    let expired = sign_request(&Spec {
        presign: Some(Duration::from_secs(60)),
        time: now() - time::Duration::seconds(61),
        ..get("/x")
    });
    let e = expect_code(check(&expired), MISMATCH);
    assert!(matches!(e, SigV4Error::SignatureExpired { .. }), "{e:?}");
    // Still within its lifetime one second earlier.
    let live = sign_request(&Spec {
        presign: Some(Duration::from_secs(60)),
        time: now() - time::Duration::seconds(59),
        ..get("/x")
    });
    check(&live).expect("a live presigned URL verifies");

    let stale = sign_request(&Spec {
        time: now() - time::Duration::minutes(16),
        ..get("/x")
    });
    let e = expect_code(check(&stale), MISMATCH);
    assert!(matches!(e, SigV4Error::SignatureExpired { .. }), "{e:?}");

    let other_service = sign_request(&Spec {
        service: "vpc-lattice",
        ..get("/x")
    });
    let e = expect_code(check(&other_service), MISMATCH);
    assert!(
        matches!(e, SigV4Error::InvalidCredentialScope { .. }),
        "{e:?}"
    );
}

#[test]
fn malformed_signatures_are_mismatches() {
    let received = sign_request(&get("/x"));
    let auth = authorization(&received);
    let start = auth.find("Signature=").unwrap() + "Signature=".len();
    for bad in ["zz", "", "3045", "00", &"ab".repeat(72)] {
        let forged = format!("{}{bad}", &auth[..start]);
        let received = sign_request(&get("/x")).header("authorization", &forged);
        let e = expect_code(check(&received), MISMATCH);
        assert!(
            matches!(e, SigV4Error::SignatureDoesNotMatch { .. }),
            "{bad}: {e:?}"
        );
    }
    // Upper-case hex is the same signature (signatures are randomized, so reuse one).
    let received = sign_request(&get("/x"));
    let own = authorization(&received);
    let upper = format!("{}{}", &own[..start], own[start..].to_ascii_uppercase());
    check(&received.header("authorization", &upper)).expect("hex case does not matter");
}

#[test]
fn sigv4a_scope_shapes_are_enforced() {
    // A SigV4A header with a SigV4-shaped (five-part) scope.
    let received = sign_request(&get("/x"));
    let auth = authorization(&received).replace(
        "AKIDEXAMPLE/20250314/vpc-lattice-svcs/",
        "AKIDEXAMPLE/20250314/us-west-2/vpc-lattice-svcs/",
    );
    let e = expect_code(check(&received.header("authorization", &auth)), INCOMPLETE);
    assert!(e.to_string().contains("exactly 4 slash-delimited"), "{e}");

    // SigV4 requests are untouched by a stray region-set header.
    let v4 = sign_request(&Spec {
        sigv4a: false,
        ..get("/x")
    })
    .header("x-amz-region-set", "*");
    let verified = check(&v4).expect("SigV4 still verifies");
    assert_eq!(verified.region_set, None);
    assert!(verified.covers_region(REGION));
    assert!(!verified.covers_region("us-east-1"));
}

#[test]
fn two_steps_and_the_cache_agree_with_verify() {
    let body = b"{\"qty\":1}";
    let requests = vec![
        sign_request(&post("/orders", body)),
        sign_request(&presigned(get("/orders"))),
        sign_request(&Spec {
            region: "eu-west-1",
            ..get("/x")
        }),
        sign_request(&Spec {
            secret: "wrong",
            ..get("/x")
        }),
        {
            let mut r = sign_request(&post("/orders", body));
            r.body = b"{}".to_vec();
            r
        },
    ];
    let cache = KeyCache::default();
    let outcome = |r: Result<Verified, SigV4Error>| r.map_err(|e| e.aws_code());
    let mut accepted = 0;
    for _ in 0..2 {
        for received in &requests {
            let digest = sha256_hex(&received.body);
            let plain = outcome(verify(&received.parts, &digest, &keys(), &options()));
            let cached = outcome(verify_with_cache(
                &received.parts,
                &digest,
                &keys(),
                &options(),
                &cache,
            ));
            let two_step = outcome(
                precheck(&received.parts, &keys(), &options())
                    .and_then(|p| p.finish(&received.parts, &digest, Some(&cache))),
            );
            assert_eq!(plain, cached);
            assert_eq!(plain, two_step);
            accepted += usize::from(plain.is_ok());
        }
    }
    assert_eq!(accepted, 4, "two good requests, twice");
    // One SigV4A key (AKIDEXAMPLE's): the region-set mismatch is refused before any key work.
    assert_eq!(cache.len(), 1);

    // A changed body passes the precheck and fails when finished.
    let mut tampered = sign_request(&post("/orders", body));
    tampered.body = b"{\"qty\":2}".to_vec();
    let prechecked = precheck(&tampered.parts, &keys(), &options()).expect("head is fine");
    assert_eq!(prechecked.access_key_id(), AKID);
    let e = prechecked
        .finish(&tampered.parts, &sha256_hex(&tampered.body), None)
        .unwrap_err();
    assert_eq!(e.aws_code(), MISMATCH);
}

#[test]
fn a_rotated_secret_never_hits_a_stale_cached_key() {
    let cache = KeyCache::default();
    let old = HashMap::from([(AKID.to_owned(), SECRET.to_owned())]);
    let new_secret = "rotatedSecretKeyrotatedSecretKey00";
    let new = HashMap::from([(AKID.to_owned(), new_secret.to_owned())]);

    let signed_with_old = sign_request(&get("/x"));
    let signed_with_new = sign_request(&Spec {
        secret: new_secret,
        ..get("/x")
    });
    let run = |received: &Received, lookup: &HashMap<String, String>| {
        verify_with_cache(
            &received.parts,
            &sha256_hex(&received.body),
            lookup,
            &options(),
            &cache,
        )
        .map(|v| v.access_key_id)
        .map_err(|e| e.aws_code())
    };
    assert!(run(&signed_with_old, &old).is_ok());
    // After rotation the old key's signature must fail even though the old key is cached.
    assert_eq!(run(&signed_with_old, &new), Err(MISMATCH));
    assert!(run(&signed_with_new, &new).is_ok());
    assert_eq!(run(&signed_with_new, &old), Err(MISMATCH));
    assert_eq!(cache.len(), 2);
}

//! Signature forms the SDK signers do not produce but AWS accepts: the time in a `Date` header or
//! in an `X-Amz-Date` query parameter next to an Authorization header.
//!
//! These requests are signed by hand here, from canonical requests written out literally, so the
//! test does not reuse the verifier's own canonicalisation.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use trellis_sigv4::{VerifyOptions, derive_signing_key, verify};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn sign(canonical_request: &str, amz_date: &str) -> String {
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n20150830/us-east-1/service/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let key = derive_signing_key(SECRET, "20150830", "us-east-1", "service");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn options() -> VerifyOptions<'static> {
    VerifyOptions {
        region: Some("us-east-1"),
        ..VerifyOptions::new("service", time::macros::datetime!(2015-08-30 12:40:00 UTC))
    }
}

fn keys() -> HashMap<String, String> {
    HashMap::from([(AKID.to_owned(), SECRET.to_owned())])
}

#[test]
fn date_header_carries_the_time() {
    let canonical = format!(
        "GET\n/\n\ndate:Sun, 30 Aug 2015 12:36:00 GMT\nhost:example.amazonaws.com\n\ndate;host\n{EMPTY_SHA256}"
    );
    let signature = sign(&canonical, "20150830T123600Z");
    let (parts, ()) = http::Request::get("/")
        .header("host", "example.amazonaws.com")
        .header("date", "Sun, 30 Aug 2015 12:36:00 GMT")
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/service/aws4_request,SignedHeaders=date;host,Signature={signature}"
            ),
        )
        .body(())
        .unwrap()
        .into_parts();
    let verified = verify(&parts, EMPTY_SHA256, &keys(), &options()).unwrap();
    assert_eq!(
        verified.request_time,
        time::macros::datetime!(2015-08-30 12:36:00 UTC)
    );
    assert_eq!(verified.signed_headers, ["date", "host"]);

    // The same request read at 12:52 is 16 minutes old.
    let late = VerifyOptions {
        now: time::macros::datetime!(2015-08-30 12:52:00 UTC),
        ..options()
    };
    let e = verify(&parts, EMPTY_SHA256, &keys(), &late).unwrap_err();
    assert_eq!(e.aws_code(), "InvalidSignatureException");
    assert!(
        e.to_string()
            .starts_with("Signature expired: 20150830T123600Z"),
        "{e}"
    );
}

#[test]
fn x_amz_date_query_parameter_carries_the_time() {
    let canonical = format!(
        "GET\n/\nAction=ListUsers&Version=2010-05-08&X-Amz-Date=20150830T123600Z\nhost:example.amazonaws.com\n\nhost\n{EMPTY_SHA256}"
    );
    let signature = sign(&canonical, "20150830T123600Z");
    let (parts, ()) =
        http::Request::get("/?Version=2010-05-08&Action=ListUsers&X-Amz-Date=20150830T123600Z")
            .header("host", "example.amazonaws.com")
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/service/aws4_request, SignedHeaders=host, Signature={signature}"
                ),
            )
            .body(())
            .unwrap()
            .into_parts();
    let verified = verify(&parts, EMPTY_SHA256, &keys(), &options()).unwrap();
    assert!(!verified.presigned);
    assert_eq!(verified.access_key_id, AKID);
}

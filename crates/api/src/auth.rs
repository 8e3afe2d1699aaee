//! The SigV4 gate: every API call must be signed with the root credentials, for service `lambda`
//! on the Lambda API's paths (`/2015-03-31/…`, `/2017-03-31/tags/…`, …) and `vpc-lattice`
//! everywhere else; a request signed for the other service is `InvalidSignatureException`. The
//! body is buffered here because the signature covers its hash.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

/// Request bodies larger than this are refused before hashing (the largest modelled member, an
/// auth policy, is 36,864 characters).
const MAX_BODY: usize = 1 << 20;

/// The Lambda API's request limit (a CreateFunction carrying a 50 MB zip in base64, Lambda's
/// own limit).
const MAX_LAMBDA_BODY: usize = 70_167_211;

/// Whether `path` is on the Lambda API: its operations' URIs start with the API version that
/// introduced them (`/2015-03-31/functions`, `/2017-03-31/tags/…`, `/2020-06-30/…`), a date;
/// no VPC Lattice path does.
fn is_lambda_path(path: &str) -> bool {
    let Some(first) = path.strip_prefix('/').and_then(|p| p.split('/').next()) else {
        return false;
    };
    let b = first.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
        && path.len() > 11
}

struct RootLookup<'a>(&'a crate::RootCredentials);

impl trellis_sigv4::SecretLookup for RootLookup<'_> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        (access_key_id == self.0.access_key_id).then(|| self.0.secret_access_key.clone())
    }
}

pub async fn sigv4_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let lambda = is_lambda_path(parts.uri.path());
    // Only the function operations (`/2015-03-31/…`) carry deployment packages.
    let limit = if parts.uri.path().starts_with("/2015-03-31/") {
        MAX_LAMBDA_BODY
    } else {
        MAX_BODY
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) if lambda => {
            return ApiError::Auth {
                code: "RequestEntityTooLargeException",
                status: 413,
                message: format!("Request must be smaller than {limit} bytes"),
            }
            .into_response();
        }
        Err(_) => {
            return ApiError::validation_other(format!("Request body exceeds {MAX_BODY} bytes"))
                .into_response();
        }
    };
    let hash = hex::encode(Sha256::digest(&bytes));
    let opts = trellis_sigv4::VerifyOptions {
        service: if lambda { "lambda" } else { "vpc-lattice" },
        region: Some(&state.ctx.region),
        now: time::OffsetDateTime::now_utc(),
        max_skew: time::Duration::minutes(15),
    };
    let lookup = RootLookup(&state.credentials);
    if let Err(e) =
        trellis_sigv4::verify_with_cache(&parts, &hash, &lookup, &opts, &state.key_cache)
    {
        return ApiError::Auth {
            code: e.aws_code(),
            status: e.http_status(),
            message: e.to_string(),
        }
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod lambda_path_tests {
    #[test]
    fn lambda_paths_are_the_date_prefixed_ones() {
        for (path, lambda) in [
            ("/2015-03-31/functions", true),
            (
                "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-west-2%3A111122223333%3Afunction%3Af",
                true,
            ),
            ("/2020-06-30/functions/f/code-signing-config", true),
            ("/2015-03-31", false),
            ("/services", false),
            ("/tags/arn%3Aaws%3Avpc-lattice", false),
            ("/servicenetworks/sn-0123456789abcdef0", false),
            ("/2015-3-31/functions", false),
            ("/", false),
        ] {
            assert_eq!(super::is_lambda_path(path), lambda, "{path}");
        }
    }
}

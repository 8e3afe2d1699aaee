//! The SigV4 gate: every Lattice API call must be signed (service `vpc-lattice`) with the root
//! credentials. The body is buffered here because the signature covers its hash.

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

struct RootLookup<'a>(&'a crate::RootCredentials);

impl trellis_sigv4::SecretLookup for RootLookup<'_> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        (access_key_id == self.0.access_key_id).then(|| self.0.secret_access_key.clone())
    }
}

pub async fn sigv4_gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::validation_other(format!("Request body exceeds {MAX_BODY} bytes"))
                .into_response();
        }
    };
    let hash = hex::encode(Sha256::digest(&bytes));
    let opts = trellis_sigv4::VerifyOptions {
        service: "vpc-lattice",
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

//! The Lambda API subset (`lambda/2015-03-31`, rest-json) on the API address, so `aws lambda …`,
//! boto3 and the SDKs work against Trellis with an endpoint override.
//!
//! [`routes`] holds the operations; the API crate serves them behind its SigV4 gate (service
//! `lambda` for paths under `/2015-03-31/`). [`public_routes`] serves the one unsigned resource:
//! the `Code.Location` download link GetFunction returns, which carries its own signature and
//! expiry like the presigned S3 URL Lambda returns.
//!
//! The Lambda wire shapes live here rather than in the API crate: they are the function host's
//! own interface and change with it (see ARCHITECTURE.md).

pub mod aliases;
pub mod error;
pub mod functions;
pub mod invoke;
pub mod tags;
pub mod wire;

use std::sync::{Arc, LazyLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::FunctionHost;
use crate::names::{FunctionRef, parse_function_name};
use error::{LambdaError, LambdaResult};

/// The largest request the Lambda API accepts: Lambda's limit for a CreateFunction request
/// carrying a 50 MB zip in base64.
pub const MAX_REQUEST_BYTES: usize = 70_167_211;

/// How long a `Code.Location` link stays valid (as Lambda's presigned URLs do).
const CODE_LINK_SECONDS: u64 = 600;

/// The Lambda operations, with their own state; serve them behind the SigV4 gate.
pub fn routes(host: Arc<FunctionHost>) -> Router {
    let f = "/2015-03-31/functions/{function_name}";
    let mut router = Router::new()
        .route(
            "/2015-03-31/functions",
            post(functions::create_function).get(functions::list_functions),
        )
        .route(
            "/2015-03-31/functions/",
            post(functions::create_function).get(functions::list_functions),
        )
        .route(
            f,
            get(functions::get_function).delete(functions::delete_function),
        )
        .route(
            &format!("{f}/configuration"),
            get(functions::get_function_configuration)
                .put(functions::update_function_configuration),
        )
        .route(&format!("{f}/code"), put(functions::update_function_code))
        .route(
            &format!("{f}/versions"),
            post(functions::publish_version).get(functions::list_versions),
        )
        .route(
            &format!("{f}/aliases"),
            post(aliases::create_alias).get(aliases::list_aliases),
        )
        .route(
            &format!("{f}/aliases/{{alias}}"),
            get(aliases::get_alias)
                .put(aliases::update_alias)
                .delete(aliases::delete_alias),
        )
        .route(&format!("{f}/invocations"), post(invoke::invoke))
        .route(
            "/2017-03-31/tags/{resource}",
            get(tags::list_tags)
                .post(tags::tag_resource)
                .delete(tags::untag_resource),
        )
        .route(
            "/2020-06-30/functions/{function_name}/code-signing-config",
            get(tags::get_function_code_signing_config),
        );
    // Every other Lambda operation is answered as one Trellis does not implement, in Lambda's
    // error shape (rather than as an unknown VPC Lattice operation).
    for prefix in API_VERSION_PREFIXES {
        router = router.route(
            &format!("/{prefix}/{{*rest}}"),
            axum::routing::any(unknown_operation),
        );
    }
    router
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(host)
}

/// The first path segments of the Lambda API (`lambda/2015-03-31`): each operation's URI starts
/// with the API version that introduced it (`/2015-03-31/functions`, `/2017-03-31/tags/…`,
/// `/2020-06-30/functions/…/code-signing-config`). Lattice paths never start with a date.
pub const API_VERSION_PREFIXES: &[&str] = &[
    "2014-11-13",
    "2015-03-31",
    "2016-08-19",
    "2017-03-31",
    "2017-10-31",
    "2018-10-31",
    "2019-09-25",
    "2019-09-30",
    "2020-04-22",
    "2020-06-30",
    "2021-07-20",
    "2021-10-31",
    "2021-11-15",
    "2024-08-31",
    "2025-11-30",
    "2025-12-01",
];

/// Unsigned routes: the `Code.Location` download.
pub fn public_routes(host: Arc<FunctionHost>) -> Router {
    Router::new()
        .route("/_trellis/functions/code/{sha256}", get(download_code))
        .with_state(host)
}

async fn unknown_operation(method: axum::http::Method, uri: axum::http::Uri) -> LambdaError {
    LambdaError::InvalidParameter(format!(
        "Trellis does not implement the Lambda operation {method} {}",
        uri.path()
    ))
}

/// Parses a `FunctionName` path member that must name a function of this Trellis.
pub fn local_ref(
    host: &FunctionHost,
    raw: &str,
    allow_qualifier: bool,
) -> LambdaResult<FunctionRef> {
    let fref = parse_function_name(raw, allow_qualifier)?;
    if !fref.is_local(host.ctx()) {
        return Err(LambdaError::NotFound(format!(
            "Function not found: {}",
            fref.arn(host.ctx())
        )));
    }
    Ok(fref)
}

/// Signs code links; a new key per process, so links are valid on the node that issued them.
static LINK_KEY: LazyLock<[u8; 32]> = LazyLock::new(rand::random);

fn link_signature(sha256_hex: &str, expires: u64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*LINK_KEY).expect("any key length");
    mac.update(format!("{sha256_hex}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A `Code.Location` link to download the deployment package, on the address the client used.
pub fn code_location(_host: &FunctionHost, headers: &HeaderMap, sha256_hex: &str) -> String {
    let authority = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + CODE_LINK_SECONDS;
    format!(
        "http://{authority}/_trellis/functions/code/{sha256_hex}?Expires={expires}&Signature={}",
        link_signature(sha256_hex, expires)
    )
}

async fn download_code(
    State(host): State<Arc<FunctionHost>>,
    Path(sha256): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let expires: u64 = params
        .get("Expires")
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let signature = params.get("Signature").map(String::as_str).unwrap_or("");
    let expected = link_signature(&sha256, expires);
    let valid = signature.len() == expected.len()
        && signature
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !valid {
        return (StatusCode::FORBIDDEN, "SignatureDoesNotMatch\n").into_response();
    }
    if now > expires {
        return (StatusCode::FORBIDDEN, "Request has expired\n").into_response();
    }
    let blob = match host.store().read().await {
        Ok(mut tx) => tx.get_blob(&sha256).await,
        Err(e) => Err(e),
    };
    match blob {
        Ok(Some(zip)) => {
            (StatusCode::OK, [("content-type", "application/zip")], zip).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "NoSuchKey\n").into_response(),
        Err(e) => LambdaError::from(e).into_response(),
    }
}

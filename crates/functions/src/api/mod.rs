//! The Lambda API subset (`lambda/2015-03-31`, rest-json) on the API address, so `aws lambda …`,
//! boto3 and the SDKs work against Trellis with an endpoint override.
//!
//! [`operations`] declares the operations for the front door's table ([`trellis_wire::Table`]);
//! the API crate serves them behind its SigV4 gate (signing name `lambda`). [`public_routes`] serves the one unsigned resource:
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

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use trellis_wire::{AwsError, Operation, Protocol, Service, ServiceErrors};

use trellis_model::Context;
use trellis_store::Store;

use crate::FunctionHost;
use crate::names::{FunctionRef, parse_function_name};
use error::{LambdaError, LambdaResult};

/// The largest request the Lambda API accepts: Lambda's limit for a CreateFunction request
/// carrying a 50 MB zip in base64.
pub const MAX_REQUEST_BYTES: usize = 70_167_211;

/// How long a `Code.Location` link stays valid (as Lambda's presigned URLs do).
const CODE_LINK_SECONDS: u64 = 600;

/// Lambda as the front door knows it.
pub static LAMBDA: Service = Service {
    id: "Lambda",
    signing_name: "lambda",
    endpoint_prefix: "lambda",
    api_version: "2015-03-31",
    protocol: Protocol::RestJson1,
    target_prefix: None,
    xml_namespace: None,
    path_prefixes: API_VERSION_PREFIXES,
    errors: ServiceErrors {
        unknown_operation,
        bad_input: |m| LambdaError::InvalidRequestContent(m).into(),
        internal_code: "ServiceException",
        throttling_code: "TooManyRequestsException",
        too_large: |cap| {
            LambdaError::RequestEntityTooLarge(format!("Request must be smaller than {cap} bytes"))
                .into()
        },
        // Lambda's front end answers a member outside its modelled constraints (a name too long,
        // a null required member) with `ValidationException` for every operation; the model
        // lists it for none.
        // Identity-based authorization (the API's SigV4 gate) refuses any operation with
        // `AccessDeniedException`.
        common: &["ValidationException", "AccessDeniedException"],
    },
};

/// CreateFunction and UpdateFunctionCode carry a zip of up to 50 MB in base64, Lambda's own limit.
pub const CODE_BODY_CAP: usize = MAX_REQUEST_BYTES;
/// A synchronous Invoke's payload limit (Lambda's 6 MB).
pub const INVOKE_BODY_CAP: usize = 6_291_456;

fn invoke_too_large(cap: usize) -> AwsError {
    LambdaError::RequestTooLarge(format!(
        "Request must be smaller than {cap} bytes for the InvokeFunction operation"
    ))
    .into()
}

/// The errors each Lambda operation can raise, as the model lists them (a test checks each
/// operation's list against botocore's).
mod errors {
    /// CreateFunction.
    pub const CREATE_FUNCTION: &[&str] = &[
        "CodeSigningConfigNotFoundException",
        "CodeStorageExceededException",
        "CodeVerificationFailedException",
        "FunctionVersionsPerCapacityProviderLimitExceededException",
        "InvalidCodeSignatureException",
        "InvalidParameterValueException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// ListFunctions.
    pub const LIST_FUNCTIONS: &[&str] = &[
        "InvalidParameterValueException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// GetFunction, GetFunctionConfiguration, ListVersionsByFunction, ListAliases, GetAlias, ListTags, GetFunctionCodeSigningConfig.
    pub const READ: &[&str] = &[
        "InvalidParameterValueException",
        "ResourceNotFoundException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// DeleteFunction, CreateAlias, TagResource, UntagResource.
    pub const CHANGE: &[&str] = &[
        "InvalidParameterValueException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// UpdateFunctionConfiguration.
    pub const UPDATE_FUNCTION_CONFIGURATION: &[&str] = &[
        "CodeSigningConfigNotFoundException",
        "CodeVerificationFailedException",
        "InvalidCodeSignatureException",
        "InvalidParameterValueException",
        "PreconditionFailedException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// UpdateFunctionCode.
    pub const UPDATE_FUNCTION_CODE: &[&str] = &[
        "CodeSigningConfigNotFoundException",
        "CodeStorageExceededException",
        "CodeVerificationFailedException",
        "InvalidCodeSignatureException",
        "InvalidParameterValueException",
        "PreconditionFailedException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// PublishVersion.
    pub const PUBLISH_VERSION: &[&str] = &[
        "CodeStorageExceededException",
        "FunctionVersionsPerCapacityProviderLimitExceededException",
        "InvalidParameterValueException",
        "PreconditionFailedException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// UpdateAlias.
    pub const UPDATE_ALIAS: &[&str] = &[
        "InvalidParameterValueException",
        "PreconditionFailedException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// DeleteAlias.
    pub const DELETE_ALIAS: &[&str] = &[
        "InvalidParameterValueException",
        "ResourceConflictException",
        "ServiceException",
        "TooManyRequestsException",
    ];
    /// Invoke.
    pub const INVOKE: &[&str] = &[
        "DurableExecutionAlreadyStartedException",
        "EC2AccessDeniedException",
        "EC2ThrottledException",
        "EC2UnexpectedException",
        "EFSIOException",
        "EFSMountConnectivityException",
        "EFSMountFailureException",
        "EFSMountTimeoutException",
        "ENILimitReachedException",
        "InvalidParameterValueException",
        "InvalidRequestContentException",
        "InvalidRuntimeException",
        "InvalidSecurityGroupIDException",
        "InvalidSubnetIDException",
        "InvalidZipFileException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "NoPublishedVersionException",
        "RecursiveInvocationException",
        "RequestTooLargeException",
        "ResourceConflictException",
        "ResourceNotFoundException",
        "ResourceNotReadyException",
        "S3FilesMountConnectivityException",
        "S3FilesMountFailureException",
        "S3FilesMountTimeoutException",
        "SerializedRequestEntityTooLargeException",
        "ServiceException",
        "SnapStartException",
        "SnapStartNotReadyException",
        "SnapStartTimeoutException",
        "SubnetIPAddressLimitReachedException",
        "TooManyRequestsException",
        "UnsupportedMediaTypeException",
    ];
}

/// `op!(Name, METHOD "uri" status, handler, ERRORS)`: one Lambda operation with a typed input (the
/// JSON body, the query members and the URI labels, named as the model names them) and a typed
/// output, written with the model's success status (204: no body), and the errors it can raise.
macro_rules! op {
    ($name:ident, $method:ident $uri:literal $status:literal, $handler:path, $errors:ident) => {
        Operation::rest(
            &LAMBDA,
            stringify!($name),
            (Method::$method, $uri, $status),
            $handler,
        )
        .errors(errors::$errors)
    };
}

/// What a Lambda API handler works with: the host, and its caller's account — the context its
/// ARNs name and the store scoped to it, so a handler sees and changes only that account's
/// functions. The table derives it per request ([`Api::for_request`]).
#[derive(Clone)]
pub struct Api {
    host: Arc<FunctionHost>,
    ctx: Context,
    store: Store,
}

impl std::ops::Deref for Api {
    type Target = FunctionHost;
    fn deref(&self) -> &FunctionHost {
        &self.host
    }
}

impl Api {
    /// The API over `host`, acting for the management account until a request says otherwise.
    pub fn new(host: Arc<FunctionHost>) -> Api {
        let ctx = host.home_ctx().clone();
        let store = host.global_store().scoped(&ctx.account_id);
        Api { host, ctx, store }
    }

    /// The state of a request: the caller's account, which the gate put in the request's
    /// extensions as a [`Context`]. A request without one (which the table refuses before any
    /// handler runs) acts for no account and sees no function.
    pub fn for_request(&self, extensions: &axum::http::Extensions) -> Api {
        let ctx = extensions
            .get::<Context>()
            .cloned()
            .unwrap_or_else(|| Context {
                account_id: String::new(),
                ..self.host.home_ctx().clone()
            });
        Api {
            host: Arc::clone(&self.host),
            store: self.host.global_store().scoped(&ctx.account_id),
            ctx,
        }
    }

    /// The caller's account.
    pub fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// The store as the caller's account sees it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The host itself.
    pub fn host(&self) -> &Arc<FunctionHost> {
        &self.host
    }
}

/// The Lambda operations Trellis serves (`lambda/2015-03-31`), bindings from the model.
pub fn operations() -> Vec<Operation<Api>> {
    vec![
        op!(CreateFunction, POST "/2015-03-31/functions" 201, functions::create_function, CREATE_FUNCTION)
            .body_cap(CODE_BODY_CAP, None),
        op!(ListFunctions, GET "/2015-03-31/functions" 200, functions::list_functions, LIST_FUNCTIONS),
        op!(GetFunction, GET "/2015-03-31/functions/{FunctionName}" 200, functions::get_function, READ),
        // The model says 200 with a `StatusCode` member bound to the HTTP status; Lambda answers
        // 204 with no body, and so does Trellis.
        op!(DeleteFunction, DELETE "/2015-03-31/functions/{FunctionName}" 204, functions::delete_function, CHANGE),
        op!(GetFunctionConfiguration, GET "/2015-03-31/functions/{FunctionName}/configuration" 200, functions::get_function_configuration, READ),
        op!(UpdateFunctionConfiguration, PUT "/2015-03-31/functions/{FunctionName}/configuration" 200, functions::update_function_configuration, UPDATE_FUNCTION_CONFIGURATION),
        op!(UpdateFunctionCode, PUT "/2015-03-31/functions/{FunctionName}/code" 200, functions::update_function_code, UPDATE_FUNCTION_CODE)
            .body_cap(CODE_BODY_CAP, None),
        op!(PublishVersion, POST "/2015-03-31/functions/{FunctionName}/versions" 201, functions::publish_version, PUBLISH_VERSION),
        op!(ListVersionsByFunction, GET "/2015-03-31/functions/{FunctionName}/versions" 200, functions::list_versions, READ),
        op!(CreateAlias, POST "/2015-03-31/functions/{FunctionName}/aliases" 201, aliases::create_alias, CHANGE),
        op!(ListAliases, GET "/2015-03-31/functions/{FunctionName}/aliases" 200, aliases::list_aliases, READ),
        op!(GetAlias, GET "/2015-03-31/functions/{FunctionName}/aliases/{Name}" 200, aliases::get_alias, READ),
        op!(UpdateAlias, PUT "/2015-03-31/functions/{FunctionName}/aliases/{Name}" 200, aliases::update_alias, UPDATE_ALIAS),
        op!(DeleteAlias, DELETE "/2015-03-31/functions/{FunctionName}/aliases/{Name}" 204, aliases::delete_alias, DELETE_ALIAS),
        // Invoke's payload is the function's event, not a JSON document of members (any bytes,
        // up to 6 MB), its options are headers, and its answer is the function's payload with
        // its own status (200, 202, 204) and headers: so it stays a handler of the request.
        Operation::axum(
            &LAMBDA,
            "Invoke",
            (Method::POST, "/2015-03-31/functions/{FunctionName}/invocations", 200),
            invoke::invoke,
        )
        .body_cap(INVOKE_BODY_CAP, Some(invoke_too_large))
        .errors(errors::INVOKE),
        op!(ListTags, GET "/2017-03-31/tags/{Resource}" 200, tags::list_tags, READ),
        op!(TagResource, POST "/2017-03-31/tags/{Resource}" 204, tags::tag_resource, CHANGE),
        op!(UntagResource, DELETE "/2017-03-31/tags/{Resource}" 204, tags::untag_resource, CHANGE),
        op!(GetFunctionCodeSigningConfig, GET "/2020-06-30/functions/{FunctionName}/code-signing-config" 200, tags::get_function_code_signing_config, READ),
    ]
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

fn unknown_operation(what: &str) -> AwsError {
    LambdaError::InvalidParameter(format!(
        "Trellis does not implement the Lambda operation {what}"
    ))
    .into()
}

/// Parses a `FunctionName` path member that must name a function of this Trellis.
pub fn local_ref(host: &Api, raw: &str, allow_qualifier: bool) -> LambdaResult<FunctionRef> {
    let fref = parse_function_name(raw, allow_qualifier)?;
    if !fref.is_local(host.ctx()) {
        return Err(LambdaError::NotFound(format!(
            "Function not found: {}",
            fref.arn(host.ctx())
        )));
    }
    Ok(fref)
}

/// Signs a code link with the host's key ([`crate::host::HostConfig::code_link_key`]: shared
/// by every node of one store, so a link one node issued downloads from any).
fn link_signature(host: &FunctionHost, sha256_hex: &str, expires: u64) -> String {
    let key = &host.config().code_link_key.0;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(format!("{sha256_hex}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A `Code.Location` link to download the deployment package, on the address the client used.
pub fn code_location(host: &Api, headers: &HeaderMap, sha256_hex: &str) -> String {
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
        link_signature(host, sha256_hex, expires)
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
    let expected = link_signature(&host, &sha256, expires);
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
    let blob = match host.global_store().read().await {
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

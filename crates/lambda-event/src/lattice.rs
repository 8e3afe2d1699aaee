//! Lattice's LAMBDA target groups as pure mappings: an HTTP request → the Lambda event of
//! structure `V1` or `V2` (reference §5.5), and the function's result → the HTTP response, with
//! every way an invocation can fail classified once ([`LambdaTargetError`]).
//!
//! Nothing here does I/O; the data plane buffers the request, calls [`request_event`], invokes
//! the function through a [`crate::FunctionInvoker`] and hands the result to [`response`].
//!
//! # The event
//!
//! * `V1` (snake_case): `raw_path` (path and query as sent, percent-encoding kept), `method`,
//!   `headers` (one string per name: repeated fields joined with `", "`, `cookie` fields with
//!   `"; "`), `query_string_parameters` (one string per key; a repeated key keeps its **last**
//!   value), `body`, `is_base64_encoded`. No request context: §5.5 documents none for `V1`.
//! * `V2` (camelCase, `version` `"2.0"`): `path` (with the query), `method`, `headers` (a list
//!   of values per name), `queryStringParameters` (a list of values per key, in request order),
//!   `body`, `isBase64Encoded`, and `requestContext` with the service network, service and
//!   target group ARNs, `identity`, `region` and `timeEpoch` (microseconds, as a string).
//!
//! Decisions (docs/decisions.md, "Lambda targets"):
//! * Header names are lower case (HTTP/2 requires it, and hyper normalizes HTTP/1.1 names).
//! * Several `cookie` fields (HTTP/2 sends one per cookie) are joined with `"; "` into one value,
//!   in `V2` too, so a function sees the `Cookie` header an HTTP/1.1 client would send.
//! * Query keys and values are percent-decoded (invalid UTF-8 after decoding is replaced by
//!   U+FFFD); `+` is kept as it is (RFC 3986 gives it no meaning). A key without `=` has the
//!   value `""`; empty `&&` segments are skipped. The raw form stays in `raw_path` / `path`.
//!   Without a query, the parameters are `{}`.
//! * The body is sent as text when it is valid UTF-8 **and** its `content-type` is text-like
//!   (`text/*`, `application/json`, `application/xml`, `application/javascript`; parameters such
//!   as `charset` ignored) — §5.5's rule, under which `content-encoding` changes nothing for
//!   text-like types, and the UTF-8 check keeps a compressed body (never valid UTF-8 in
//!   practice) from being mangled. Everything else is base64. An empty body is `""`, not base64.
//! * `is_base64_encoded` / `isBase64Encoded` are always present (`false` included): the §5.5
//!   examples show them, and Powertools' `V1` class reads the key without a default.
//! * `identity` is `{}` for an anonymous caller from an unknown network (no member applies),
//!   which satisfies both the Go type (optional) and Powertools' schema (an object).
//!
//! # The response
//!
//! The function must return a JSON object with an integer `statusCode` (200–599); `headers`
//! (string values), `multiValueHeaders` (lists of strings), `body` (a string), `isBase64Encoded`
//! (a boolean) and `statusDescription` (`"200 OK"` — its reason phrase is sent over HTTP/1.1) are
//! optional, and `null` counts as absent. A name in both header maps takes the
//! `multiValueHeaders` values. `Content-Length` (computed from the body) and hop-by-hop fields
//! (`Connection`, `Transfer-Encoding`, …) from the function are dropped. Anything else —
//! not JSON, not an object, a wrong type, a missing `statusCode`, invalid base64, a header name or
//! value HTTP cannot carry — is a [`LambdaTargetError::MalformedResponse`] (502).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};
use trellis_model::resources::target_group::LambdaEventStructureVersion;

use crate::{InvokeError, InvokeOutcome, MAX_SYNC_PAYLOAD};

/// The largest request body a LAMBDA target group accepts (Lattice: 6 MB). The event that
/// carries it must also fit Lambda's 6 MB payload limit, so a base64-encoded body (a third
/// larger) is refused from about 4.5 MB.
pub const MAX_REQUEST_BODY: usize = MAX_SYNC_PAYLOAD;
/// The largest function response Lattice accepts (6 MB of JSON).
pub const MAX_RESPONSE: usize = MAX_SYNC_PAYLOAD;

/// The `errorType` Lambda reports for a function that ran out of time.
pub const TIMEOUT_ERROR_TYPE: &str = "Sandbox.Timedout";
/// The `errorType` Lambda reports for a result over 6 MB.
pub const RESPONSE_TOO_LARGE_ERROR_TYPE: &str = "Function.ResponseSizeTooLarge";

/// The HTTP request as the event describes it. `headers` are those the target receives (the
/// data plane has already removed hop-by-hop fields and added `x-forwarded-for`).
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    pub method: &'a str,
    /// Path and query exactly as the client sent them (`/a%20b?x=1&y=2`).
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// What Lattice knows about the request beyond HTTP (`V2`'s `requestContext`).
#[derive(Clone, Copy, Debug)]
pub struct RequestContext<'a> {
    /// The service network the request came through (empty when unknown).
    pub service_network_arn: &'a str,
    pub service_arn: &'a str,
    pub target_group_arn: &'a str,
    pub region: &'a str,
    /// When the request arrived.
    pub time: SystemTime,
    pub identity: Identity<'a>,
}

/// The caller as `requestContext.identity` reports it; every member is omitted when unknown.
/// The default is an anonymous caller from an unknown network.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity<'a> {
    pub source_vpc_arn: Option<&'a str>,
    /// `AWS_IAM` when a SigV4 signature was verified under an auth policy.
    pub auth_type: Option<&'a str>,
    pub principal: Option<&'a str>,
    pub principal_org_id: Option<&'a str>,
    pub session_name: Option<&'a str>,
}

/// The Lambda event for `request`, in the target group's event structure.
pub fn request_event(
    version: LambdaEventStructureVersion,
    request: &HttpRequest<'_>,
    context: &RequestContext<'_>,
) -> Bytes {
    let (body, base64) = event_body(request.headers, request.body);
    let query = request
        .path_and_query
        .split_once('?')
        .map_or("", |(_, q)| q);
    let event = match version {
        LambdaEventStructureVersion::V1 => json!({
            "raw_path": request.path_and_query,
            "method": request.method,
            "headers": headers_v1(request.headers),
            "query_string_parameters": query_v1(query),
            "body": body,
            "is_base64_encoded": base64,
        }),
        LambdaEventStructureVersion::V2 => json!({
            "version": "2.0",
            "path": request.path_and_query,
            "method": request.method,
            "headers": headers_v2(request.headers),
            "queryStringParameters": query_v2(query),
            "body": body,
            "isBase64Encoded": base64,
            "requestContext": request_context(context),
        }),
    };
    // Serializing a `Value` cannot fail.
    Bytes::from(serde_json::to_vec(&event).unwrap_or_default())
}

/// Whether a body goes into the event as text (else base64): see the module docs.
pub fn body_is_text(headers: &HeaderMap, body: &[u8]) -> bool {
    if body.is_empty() {
        return true;
    }
    let text_like = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_text_like);
    text_like && std::str::from_utf8(body).is_ok()
}

/// `text/*`, `application/json`, `application/xml`, `application/javascript` (§5.5's list),
/// compared case-insensitively, parameters ignored.
fn is_text_like(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || matches!(
            media.as_str(),
            "application/json" | "application/xml" | "application/javascript"
        )
}

fn event_body(headers: &HeaderMap, body: &[u8]) -> (String, bool) {
    if body_is_text(headers, body) {
        // Checked above: valid UTF-8.
        (String::from_utf8_lossy(body).into_owned(), false)
    } else {
        (base64::engine::general_purpose::STANDARD.encode(body), true)
    }
}

fn header_text(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes()).into_owned()
}

/// The values of one header name; `cookie` fields joined into one.
fn header_values(headers: &HeaderMap, name: &HeaderName) -> Vec<String> {
    let values = headers.get_all(name).iter().map(header_text);
    if *name == header::COOKIE {
        vec![values.collect::<Vec<_>>().join("; ")]
    } else {
        values.collect()
    }
}

fn headers_v1(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .keys()
        .map(|name| {
            let joined = header_values(headers, name).join(", ");
            (name.as_str().to_owned(), Value::String(joined))
        })
        .collect()
}

fn headers_v2(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .keys()
        .map(|name| {
            let values = header_values(headers, name)
                .into_iter()
                .map(Value::String)
                .collect();
            (name.as_str().to_owned(), Value::Array(values))
        })
        .collect()
}

/// The query's `(key, value)` pairs in order, percent-decoded.
fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|s| !s.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(key), decode(value))
    })
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn query_v1(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in query_pairs(query) {
        // The last value wins; the key keeps the place of its first appearance.
        map.insert(key, Value::String(value));
    }
    map
}

fn query_v2(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in query_pairs(query) {
        if let Value::Array(values) = map.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
            values.push(Value::String(value));
        }
    }
    map
}

fn request_context(context: &RequestContext<'_>) -> Value {
    let micros = context
        .time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let identity = &context.identity;
    let mut id = Map::new();
    for (key, value) in [
        ("sourceVpcArn", identity.source_vpc_arn),
        ("type", identity.auth_type),
        ("principal", identity.principal),
        ("principalOrgID", identity.principal_org_id),
        ("sessionName", identity.session_name),
    ] {
        if let Some(value) = value {
            id.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
    json!({
        "serviceNetworkArn": context.service_network_arn,
        "serviceArn": context.service_arn,
        "targetGroupArn": context.target_group_arn,
        "identity": id,
        "region": context.region,
        "timeEpoch": micros.to_string(),
    })
}

/// Why a LAMBDA target produced no response of its own. [`LambdaTargetError::status`] is the
/// status the client gets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LambdaTargetError {
    /// The request body, or the event carrying it, is over the 6 MB limit (413).
    #[error("the request is too large for a Lambda function: {0}")]
    RequestTooLarge(String),
    /// The function failed: an unhandled error, a crash, an init failure (502).
    #[error("the function failed with {error_type}: {message}")]
    FunctionError { error_type: String, message: String },
    /// The function ran out of time (504).
    #[error("the function timed out: {message}")]
    Timeout { message: String },
    /// The function's result is not a response Lattice can send (502).
    #[error("the function returned a malformed response: {0}")]
    MalformedResponse(String),
    /// The function's result is over the 6 MB limit (502).
    #[error("the function's response is too large: {0}")]
    ResponseTooLarge(String),
    /// The function could not be invoked at all (see [`LambdaTargetError::status`]).
    #[error("the function could not be invoked: {0} ({code})", code = .0.code())]
    Invoke(InvokeError),
}

impl LambdaTargetError {
    /// The status of the response the client gets.
    ///
    /// Lattice documents none of these (reference §5.5, §15): Trellis answers as ALB does for
    /// Lambda targets — 502 for anything the function or its invocation got wrong, 504 for a
    /// timeout — plus 413 for a request over the limit, 503 when the function's concurrency is
    /// exhausted (try again later), and 500 for a failure inside Trellis.
    pub fn status(&self) -> StatusCode {
        match self {
            LambdaTargetError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            LambdaTargetError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            LambdaTargetError::FunctionError { .. }
            | LambdaTargetError::MalformedResponse(_)
            | LambdaTargetError::ResponseTooLarge(_) => StatusCode::BAD_GATEWAY,
            LambdaTargetError::Invoke(e) => match e {
                InvokeError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                InvokeError::TooManyRequests => StatusCode::SERVICE_UNAVAILABLE,
                InvokeError::Remote { status: 413, .. } => StatusCode::PAYLOAD_TOO_LARGE,
                InvokeError::Remote { status: 429, .. } => StatusCode::SERVICE_UNAVAILABLE,
                InvokeError::InvalidName(_)
                | InvokeError::InvalidParameter(_)
                | InvokeError::NotFound(_)
                | InvokeError::Remote { .. }
                | InvokeError::Unavailable(_)
                | InvokeError::IsolationUnavailable(_) => StatusCode::BAD_GATEWAY,
                InvokeError::InvalidRequestContent(_) | InvokeError::Internal(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }
}

/// The HTTP response for an invocation's result: the function's response, or why there is none.
pub fn response(
    result: Result<InvokeOutcome, InvokeError>,
) -> Result<Response<Bytes>, LambdaTargetError> {
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(InvokeError::RequestTooLarge(message)) => {
            return Err(LambdaTargetError::RequestTooLarge(message));
        }
        Err(e) => return Err(LambdaTargetError::Invoke(e)),
    };
    if outcome.function_error.is_some() {
        return Err(function_error(&outcome.payload));
    }
    parse_response(&outcome.payload)
}

/// Classifies a function's error document (`{"errorType", "errorMessage", …}`).
fn function_error(payload: &[u8]) -> LambdaTargetError {
    let doc: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
    let field = |name: &str| doc.get(name).and_then(Value::as_str).unwrap_or("");
    let error_type = field("errorType").to_owned();
    let message = field("errorMessage").to_owned();
    if error_type == TIMEOUT_ERROR_TYPE || message.contains("Task timed out after") {
        LambdaTargetError::Timeout { message }
    } else if error_type == RESPONSE_TOO_LARGE_ERROR_TYPE {
        LambdaTargetError::ResponseTooLarge(message)
    } else {
        LambdaTargetError::FunctionError {
            error_type: if error_type.is_empty() {
                "Unhandled".to_owned()
            } else {
                error_type
            },
            message,
        }
    }
}

/// Hop-by-hop fields a function's response may not set (Lattice ignores them), and
/// `Content-Length`, which is computed from the body.
const DROPPED_RESPONSE_HEADERS: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
    header::CONTENT_LENGTH,
];

/// Parses a function's successful result into the HTTP response (see the module docs).
pub fn parse_response(payload: &[u8]) -> Result<Response<Bytes>, LambdaTargetError> {
    if payload.len() > MAX_RESPONSE {
        return Err(LambdaTargetError::ResponseTooLarge(format!(
            "{} bytes, more than {MAX_RESPONSE}",
            payload.len()
        )));
    }
    let malformed = |m: String| LambdaTargetError::MalformedResponse(m);
    let doc: Value = serde_json::from_slice(payload)
        .map_err(|e| malformed(format!("the result is not JSON: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(malformed(format!(
            "the result is a JSON {}, not an object",
            kind(&doc)
        )));
    };
    let member = |name: &str| doc.get(name).filter(|v| !v.is_null());

    let status = match member("statusCode") {
        None => return Err(malformed("statusCode is missing".into())),
        Some(v) => v
            .as_u64()
            .filter(|code| (200..=599).contains(code))
            .and_then(|code| StatusCode::from_u16(code as u16).ok())
            .ok_or_else(|| {
                malformed(format!(
                    "statusCode must be an integer from 200 to 599, not {v}"
                ))
            })?,
    };
    let base64 = match member("isBase64Encoded") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(malformed(format!(
                "isBase64Encoded must be a boolean, not a {}",
                kind(v)
            )));
        }
    };
    let body = match member("body") {
        None => Bytes::new(),
        Some(Value::String(s)) if base64 => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| malformed(format!("body is not valid base64: {e}")))?,
        ),
        Some(Value::String(s)) => Bytes::from(s.clone()),
        Some(v) => {
            return Err(malformed(format!(
                "body must be a string, not a {}",
                kind(v)
            )));
        }
    };

    let mut headers = HeaderMap::new();
    if let Some(multi) = member("multiValueHeaders") {
        let Value::Object(multi) = multi else {
            return Err(malformed(format!(
                "multiValueHeaders must be an object, not a {}",
                kind(multi)
            )));
        };
        for (name, values) in multi {
            let Value::Array(values) = values else {
                return Err(malformed(format!(
                    "multiValueHeaders.{name} must be a list of strings"
                )));
            };
            let name = header_name(name).map_err(malformed)?;
            for value in values {
                let value = header_value(&name, value, "multiValueHeaders").map_err(malformed)?;
                headers.append(name.clone(), value);
            }
        }
    }
    let from_multi: Vec<HeaderName> = headers.keys().cloned().collect();
    if let Some(single) = member("headers") {
        let Value::Object(single) = single else {
            return Err(malformed(format!(
                "headers must be an object, not a {}",
                kind(single)
            )));
        };
        for (name, value) in single {
            let name = header_name(name).map_err(malformed)?;
            let value = header_value(&name, value, "headers").map_err(malformed)?;
            // multiValueHeaders wins for a name both maps set.
            if !from_multi.contains(&name) {
                headers.append(name, value);
            }
        }
    }
    for name in DROPPED_RESPONSE_HEADERS {
        headers.remove(name);
    }

    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    if let Some(reason) = member("statusDescription") {
        let Value::String(description) = reason else {
            return Err(malformed(format!(
                "statusDescription must be a string, not a {}",
                kind(reason)
            )));
        };
        if let Some(phrase) = reason_phrase(status, description) {
            response.extensions_mut().insert(phrase);
        }
    }
    Ok(response)
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))
}

fn header_value(name: &HeaderName, value: &Value, map: &str) -> Result<HeaderValue, String> {
    let Value::String(text) = value else {
        return Err(format!(
            "{map}.{name} must be a string, not a {}",
            kind(value)
        ));
    };
    HeaderValue::from_str(text).map_err(|_| format!("{map}.{name} is not a valid header value"))
}

/// The reason phrase a `statusDescription` like `"200 OK"` carries, when it is not the
/// standard one for the status (hyper sends the standard one by itself). A description that
/// does not start with the status code is taken as the phrase whole.
fn reason_phrase(status: StatusCode, description: &str) -> Option<hyper::ext::ReasonPhrase> {
    let description = description.trim();
    let phrase = description
        .strip_prefix(status.as_str())
        .map_or(description, str::trim_start);
    if phrase.is_empty() || Some(phrase) == status.canonical_reason() {
        return None;
    }
    hyper::ext::ReasonPhrase::try_from(phrase.as_bytes().to_vec()).ok()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;

//! The protocol codecs: a request's input members as one JSON document, and an output or an
//! error as the response botocore's parser for the service's protocol expects.
//!
//! Inputs of every protocol become a `serde_json::Value` object keyed by the members' wire
//! names; [`crate::de::from_value`] turns it into the operation's typed input (coercing the
//! strings that query strings, labels and form bodies carry into numbers and booleans).
//!
//! Outputs are written from their `Serialize` impl: the JSON protocols through `serde_json`, the
//! query protocols' XML directly (see [`Map`] for how an output marks a map, and [`Timestamp`]).

mod json;
mod query;
mod rest_json;
mod xml;

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::error::AwsError;
use crate::operation::OperationMeta;
use crate::request_id::RequestId;
use crate::service::{Protocol, Service};

pub use json::body_members as json_body_members;
pub use query::{
    MAX_FORM_PAIRS, MAX_LIST_INDEX, MAX_NAME_SEGMENTS, action as query_action, decode_form,
    pairs as query_pairs,
};
pub use xml::{Map, Timestamp};

/// The request's input members.
pub(crate) async fn decode_input(
    meta: &OperationMeta,
    parts: &mut Parts,
    body: &Bytes,
) -> Result<Value, String> {
    match meta.service.protocol {
        Protocol::RestJson1 => rest_json::decode(parts, body).await,
        Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => json::decode(body),
        Protocol::AwsQuery | Protocol::Ec2Query => query::decode(meta.service.protocol, body),
    }
}

/// The request's input members, as the operation's handler would get them before
/// [`crate::de::from_value`]: for tests and tools that drive a codec without the table. REST
/// labels are read from the request's route (`parts` must have been routed by axum on the
/// operation's URI template).
pub async fn decode_request(
    meta: &OperationMeta,
    parts: &mut Parts,
    body: &Bytes,
) -> Result<Value, String> {
    decode_input(meta, parts, body).await
}

/// A successful response carrying `output`.
pub fn output_response<O: Serialize>(
    meta: &OperationMeta,
    request_id: &RequestId,
    output: &O,
) -> Response {
    let service = meta.service;
    let written = match service.protocol {
        Protocol::RestJson1 => serde_json::to_value(output)
            .map(|v| rest_json::output(meta, v))
            .map_err(|e| e.to_string()),
        Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => serde_json::to_value(output)
            .map(|v| json::output(service, v))
            .map_err(|e| e.to_string()),
        Protocol::AwsQuery | Protocol::Ec2Query => {
            query::output(service, meta.name, request_id, output).map_err(|e| e.to_string())
        }
    };
    written.unwrap_or_else(|e| {
        error_response(
            service,
            request_id,
            AwsError::internal(
                service.errors.internal_code,
                format!("{} output did not serialize: {e}", meta.name),
            ),
        )
    })
}

/// An error response in the service's protocol. Internal errors are logged here, with the
/// request ID, and answered without their detail.
pub fn error_response(service: &Service, request_id: &RequestId, err: AwsError) -> Response {
    if let Some(detail) = &err.internal_detail {
        if err.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(request_id = %request_id, code = %err.code, detail = %detail, "service unavailable");
        } else {
            tracing::error!(request_id = %request_id, code = %err.code, detail = %detail, "internal error");
        }
    }
    let mut resp = match service.protocol {
        Protocol::RestJson1 => rest_json::error(&err, request_id),
        Protocol::AwsJson1_0 | Protocol::AwsJson1_1 => json::error(service, &err, request_id),
        Protocol::AwsQuery | Protocol::Ec2Query => query::error(service, &err, request_id),
    };
    for (k, v) in &err.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp.extensions_mut().insert(Raised(err.code));
    resp
}

/// The code of the error a response carries, for the table's check that an operation raises
/// only the errors it declares.
#[derive(Clone, Debug)]
pub(crate) struct Raised(pub(crate) String);

/// The members of a JSON error body: the message under its modelled name, then the others.
fn json_error_members(err: &AwsError, request_id: &RequestId) -> serde_json::Map<String, Value> {
    let mut body = serde_json::Map::new();
    body.insert(
        err.message_member.to_string(),
        Value::String(err.public_message(request_id.as_str())),
    );
    for (k, v) in &err.members {
        body.insert(k.clone(), v.clone());
    }
    body
}

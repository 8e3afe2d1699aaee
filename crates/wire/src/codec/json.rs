//! `awsJson1_0` / `awsJson1_1`: the whole input is the JSON body; outputs are JSON bodies with
//! status 200; errors carry `__type` (botocore reads the code from it).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::AwsError;
use crate::request_id::RequestId;
use crate::service::{Protocol, Service};

pub(super) fn decode(body: &Bytes) -> Result<Value, String> {
    body_members(body).map(Value::Object)
}

/// A JSON request body's members, as both JSON protocols read them: a blank body is no members,
/// anything but an object is an error.
pub fn body_members(body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("The request body must be a JSON object".into()),
        Err(e) => Err(format!("Could not parse request body: {e}")),
    }
}

fn content_type(service: &Service) -> &'static str {
    match service.protocol {
        Protocol::AwsJson1_0 => "application/x-amz-json-1.0",
        _ => "application/x-amz-json-1.1",
    }
}

pub(super) fn output(service: &Service, value: Value) -> Response {
    let body = match value {
        Value::Null => Value::Object(Map::new()),
        v => v,
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(service)),
        )],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn error(service: &Service, err: &AwsError, request_id: &RequestId) -> Response {
    let mut members = Map::new();
    members.insert("__type".into(), Value::String(err.code.clone()));
    members.extend(super::json_error_members(err, request_id));
    (
        err.status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(service)),
        )],
        Value::Object(members).to_string(),
    )
        .into_response()
}

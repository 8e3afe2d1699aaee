//! `restJson1`: labels from the URI template, members from the query string, the rest from a JSON
//! body; outputs as a JSON body with the modelled status; errors with `x-amzn-ErrorType`.

use axum::extract::{FromRequestParts as _, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::error::AwsError;
use crate::operation::OperationMeta;
use crate::request_id::RequestId;

pub(super) async fn decode(parts: &mut Parts, body: &Bytes) -> Result<Value, String> {
    let mut members = super::json::body_members(body)?;
    // Query members: a repeated key is a list. A body member of the same name gives way, as
    // the query string is where the model binds it.
    let mut query: Map<String, Value> = Map::new();
    for (k, v) in crate::codec::query::pairs(parts.uri.query().unwrap_or("")) {
        match query.get_mut(&k) {
            Some(Value::Array(a)) => a.push(Value::String(v)),
            Some(first) => {
                let f = first.take();
                *first = Value::Array(vec![f, Value::String(v)]);
            }
            None => {
                query.insert(k, Value::String(v));
            }
        }
    }
    members.extend(query);
    // Labels last: they are what the request was routed on.
    let labels = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| format!("Could not decode the request path: {e}"))?;
    for (k, v) in &labels {
        members.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(Value::Object(members))
}

pub(super) fn output(meta: &OperationMeta, value: Value) -> Response {
    let status = meta
        .http
        .as_ref()
        .and_then(|h| StatusCode::from_u16(h.success).ok())
        .unwrap_or(StatusCode::OK);
    if status == StatusCode::NO_CONTENT {
        return status.into_response();
    }
    let body = match value {
        Value::Null => Value::Object(Map::new()),
        v => v,
    };
    json_response(status, &body)
}

pub(super) fn error(err: &AwsError, request_id: &RequestId) -> Response {
    let body = Value::Object(super::json_error_members(err, request_id));
    let mut resp = json_response(err.status, &body);
    if let Ok(v) = HeaderValue::from_str(&err.code) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    resp
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

//! `Invoke` (`POST /2015-03-31/functions/{FunctionName}/invocations`): the HTTP face of
//! [`FunctionHost::invoke_with`].
//!
//! `X-Amz-Invocation-Type` selects `RequestResponse` (200 with the payload), `Event` (202,
//! run in the background) or `DryRun` (204, checks only). A function error is still a 200, with
//! `X-Amz-Function-Error: Unhandled` and the error document as the payload; `LogType: Tail`
//! adds `X-Amz-Log-Result`, base64 of the last 4 KB of the invocation's log.

use crate::api::Api;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::error::{LambdaError, LambdaResult};
use crate::config::constraint;
use crate::host::{InvocationType, InvokeOptions};
use crate::names::check_qualifier;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The invocation options of the request's headers and query.
pub fn options(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> LambdaResult<InvokeOptions> {
    let invocation_type = match header(headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(LambdaError::Validation(constraint(
                "invocationType",
                other,
                "Member must satisfy enum value set: [Event, RequestResponse, DryRun]",
            )));
        }
    };
    let log_tail = match header(headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(LambdaError::Validation(constraint(
                "logType",
                other,
                "Member must satisfy enum value set: [None, Tail]",
            )));
        }
    };
    let qualifier = match params.get("Qualifier") {
        Some(q) => {
            check_qualifier(q)?;
            Some(q.clone())
        }
        None => None,
    };
    Ok(InvokeOptions {
        invocation_type,
        log_tail,
        client_context_base64: header(headers, "x-amz-client-context").map(str::to_string),
        qualifier,
    })
}

pub async fn invoke(
    State(host): State<Api>,
    Path(function_name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> LambdaResult<Response> {
    let options = options(&headers, &params)?;
    let outcome = host
        .invoke_with(host.ctx(), &function_name, body, &options)
        .await?;
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
    let mut resp = if status == StatusCode::OK {
        (status, outcome.payload).into_response()
    } else {
        status.into_response()
    };
    let h = resp.headers_mut();
    if status == StatusCode::OK {
        h.insert("content-type", HeaderValue::from_static("application/json"));
    }
    let mut set = |name: &'static str, value: Option<&str>| {
        if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            h.insert(name, v);
        }
    };
    set(
        "x-amz-executed-version",
        outcome.executed_version.as_deref(),
    );
    set("x-amz-function-error", outcome.function_error.as_deref());
    set("x-amz-log-result", outcome.log_tail.as_deref());
    Ok(resp)
}

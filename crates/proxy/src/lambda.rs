//! LAMBDA target groups: the request is buffered (at most 6 MB), turned into the Lattice event of
//! the group's structure version, sent to the group's function through a [`FunctionInvoker`],
//! and the function's result becomes the response. The mappings themselves are
//! `trellis_lambda_event::lattice`'s; this module is the I/O around them.
//!
//! Decisions (docs/decisions.md, "Lambda targets"):
//! * The function sees the client's headers minus hop-by-hop fields and client copies of the
//!   fields Trellis owns, plus `x-forwarded-for` (§5.5) and `x-amzn-requestid` (§6.2: propagated
//!   to targets); `Host` is filled in from `:authority` or the TLS server name when the client
//!   sent none. `x-forwarded-port`/`-proto` and `x-amzn-lattice-*` are not added: the
//!   `V2` request context carries the ARNs, and §5.5 names only `x-forwarded-for`.
//! * The invocation runs in its own task: a client that goes away does not cancel a function
//!   halfway (Lambda lets an invocation finish whatever its caller does).
//! * The body read waits at most the idle timeout for each frame (408 when it runs out), as the
//!   wait for a target's response does for IP targets.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use trellis_lambda_event::lattice::{
    self, HttpRequest, Identity, LambdaTargetError, RequestContext,
};
use trellis_lambda_event::{FunctionInvoker, InvokeError};
use trellis_snapshot::{ServiceEntry, Snapshot, TargetGroupEntry};

use crate::body::ResponseBody;
use crate::conn::ConnCtx;
use crate::error::{BodyFault, ProxyError};
use crate::headers::{self, X_AMZN_REQUESTID};
use crate::pipeline::AccessRecord;

/// Serves a request whose route chose a LAMBDA group.
pub(crate) async fn forward(
    conn: &ConnCtx,
    snapshot: &Snapshot,
    service: &ServiceEntry,
    group: &TargetGroupEntry,
    req: Request<Incoming>,
    request_id: &HeaderValue,
    record: &mut AccessRecord,
) -> Result<Response<ResponseBody>, ProxyError> {
    let shared = &conn.shared;
    let invoker = shared
        .invoker
        .get()
        .cloned()
        .ok_or(ProxyError::NoFunctionHost)?;
    // A LAMBDA group has one target, the function; the pick counts the request in flight
    // (draining reports it) until the response is made.
    let picked = shared
        .health
        .pick(&group.id, &[])
        .ok_or_else(|| ProxyError::NoTarget {
            target_group: group.id.clone(),
        })?;
    let function = picked.target.id.clone();

    let (mut parts, body) = req.into_parts();
    prepare_headers(&mut parts, conn, request_id);
    headers::ensure_trace(&mut parts.headers, record.start_time);
    let client = record.client.clone();
    let client = client.as_deref();
    let arrived = client.and_then(|c| c.vpc.association.as_ref());
    if let Some(client) = client {
        parts
            .headers
            .insert(headers::X_AMZN_SOURCE_VPC, client.source_vpc_header.clone());
    }
    let caller = record.caller.clone();
    if let Some(caller) = &caller {
        headers::insert_identity(&mut parts.headers, caller.as_ref());
    }
    let body = read_body(body, &parts.headers, shared.config.idle_timeout).await?;
    record.body_read = Some(body.len() as u64);

    let version = group
        .config
        .lambda_event_structure_version
        .unwrap_or(trellis_model::resources::target_group::LambdaEventStructureVersion::V1);
    let event = lattice::request_event(
        version,
        &HttpRequest {
            method: parts.method.as_str(),
            path_and_query: parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            headers: &parts.headers,
            body: &body,
        },
        &RequestContext {
            // The network the request came through (its client's VPC's); for a client in no
            // VPC (development mode), the service's first, as in `x-amzn-lattice-target`.
            service_network_arn: match arrived {
                Some(a) => a.network_arn.as_str(),
                None => service.networks.first().map_or("", |n| n.arn.as_str()),
            },
            service_arn: &service.arn,
            target_group_arn: &group.arn,
            region: &snapshot.ctx.region,
            time: record.start_time,
            identity: Identity {
                auth_type: caller.as_ref().map(|_| "AWS_IAM"),
                principal: caller.as_ref().map(|c| c.arn()),
                session_name: caller.as_ref().and_then(|c| c.session_name()),
                principal_org_id: caller.as_ref().and_then(|c| c.org()).map(|(id, _)| id),
                source_vpc_arn: client.map(|c| c.vpc.arn.as_str()),
            },
        },
    );
    drop(body);

    let task = {
        let function = function.clone();
        tokio::spawn(async move { invoker.invoke(&function, event).await })
    };
    let result = task.await.unwrap_or_else(|e| {
        Err(InvokeError::Internal(format!(
            "the invocation task failed: {e}"
        )))
    });
    drop(picked.guard);

    match lattice::response(result) {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            headers::strip_response_hop_by_hop(&mut parts.headers);
            Ok(Response::from_parts(parts, ResponseBody::text(body)))
        }
        Err(error) => {
            log_failure(&function, &error);
            Err(ProxyError::Lambda { function, error })
        }
    }
}

/// The function's own failures (bad output, errors, timeouts) are the user's to fix: they are
/// logged at `warn` with the function and the reason; failures of the invocation at `debug`
/// like other upstream failures (the function host logs its own).
fn log_failure(function: &str, error: &LambdaTargetError) {
    match error {
        LambdaTargetError::MalformedResponse(_)
        | LambdaTargetError::FunctionError { .. }
        | LambdaTargetError::Timeout { .. }
        | LambdaTargetError::ResponseTooLarge(_) => tracing::warn!(
            function,
            status = error.status().as_u16(),
            %error,
            "LAMBDA target failed"
        ),
        LambdaTargetError::RequestTooLarge(_) | LambdaTargetError::Invoke(_) => tracing::debug!(
            function,
            status = error.status().as_u16(),
            %error,
            "LAMBDA target not invoked"
        ),
    }
}

/// The headers the function sees (see the module docs).
fn prepare_headers(parts: &mut http::request::Parts, conn: &ConnCtx, request_id: &HeaderValue) {
    let headers = &mut parts.headers;
    if !headers.contains_key(header::HOST) {
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or(conn.tls.as_ref().map(|t| &*t.server_name));
        if let Some(host) = host.and_then(|h| HeaderValue::from_str(h).ok()) {
            headers.insert(header::HOST, host);
        }
    }
    headers::strip_request(headers);
    headers.insert(headers::X_FORWARDED_FOR, conn.forwarded_for.clone());
    headers.insert(X_AMZN_REQUESTID, request_id.clone());
}

/// Reads the whole request body, refusing more than [`lattice::MAX_REQUEST_BODY`] bytes (a
/// `Content-Length` over it is refused before anything is read).
async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    timeout: std::time::Duration,
) -> Result<Bytes, ProxyError> {
    let limit = lattice::MAX_REQUEST_BODY;
    let too_large = || ProxyError::RequestBodyTooLarge { limit };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buffer = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(ProxyError::RequestBodyTimeout(timeout)),
            Ok(None) => break,
            Ok(Some(frame)) => {
                frame.map_err(|error| ProxyError::RequestBody(BodyFault::of(&error)))?
            }
        };
        // Trailers are not part of the event.
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(too_large());
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

/// Sets the invoker once; later calls are ignored (and logged).
pub(crate) fn set(
    slot: &std::sync::OnceLock<Arc<dyn FunctionInvoker>>,
    invoker: Arc<dyn FunctionInvoker>,
) {
    if slot.set(invoker).is_err() {
        tracing::warn!("the proxy's function invoker is already set; keeping the first");
    }
}

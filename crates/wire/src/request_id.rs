//! The request ID every response carries (`x-amzn-RequestId`, and `RequestId` in XML bodies),
//! assigned once by [`assign`] before anything else sees the request.

use std::fmt;

use axum::extract::Request;
use axum::http::{Extensions, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::AwsError;
use crate::service::Service;

/// A request's ID: a random UUID, as AWS services use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn new() -> RequestId {
        RequestId(uuid::Uuid::new_v4().to_string())
    }

    /// The ID [`assign`] gave the request (a fresh one where none was assigned, as in unit tests).
    pub fn of(extensions: &Extensions) -> RequestId {
        extensions.get::<RequestId>().cloned().unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Middleware: gives the request its ID (in its extensions), renders a [`deferred`] error with
/// it, and stamps it on the response.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = RequestId::new();
    req.extensions_mut().insert(id.clone());
    let mut resp = next.run(req).await;
    if let Some(Deferred(service, err)) = resp.extensions_mut().remove::<Deferred>() {
        // The placeholder's headers (`Connection: close` from the gate) and extensions (the
        // operation's name) stay; the rendering adds the body and its own headers.
        let (placeholder, _) = resp.into_parts();
        let mut rendered = crate::codec::error_response(service, &id, err);
        for (k, v) in &placeholder.headers {
            if !rendered.headers().contains_key(k) {
                rendered.headers_mut().insert(k.clone(), v.clone());
            }
        }
        rendered.extensions_mut().extend(placeholder.extensions);
        resp = rendered;
    }
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

/// An error answered by code that does not see the request ID (an `IntoResponse` impl, a
/// middleware): [`assign`] renders it in `service`'s protocol with the ID.
#[derive(Clone, Debug)]
struct Deferred(&'static Service, AwsError);

/// The error code a response answers with, when it is an error rendered by the front door
/// (deferred or already rendered by [`crate::codec::error_response`]).
pub(crate) fn raised_code(resp: &Response) -> Option<&str> {
    if let Some(Deferred(_, err)) = resp.extensions().get::<Deferred>() {
        return Some(&err.code);
    }
    resp.extensions()
        .get::<crate::codec::Raised>()
        .map(|r| r.0.as_str())
}

/// A response that [`assign`] replaces with `err` rendered for `service` and the request's ID.
pub fn deferred(service: &'static Service, err: AwsError) -> Response {
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = err.status;
    resp.extensions_mut().insert(Deferred(service, err));
    resp
}

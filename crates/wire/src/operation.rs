//! [`Operation`]: one AWS operation declared once — its service, name, HTTP binding, body cap,
//! the errors it can raise and its handler. Typed handlers take a `Deserialize` input and return
//! a `Serialize` output; the codec of the service's protocol does the rest.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Extensions, HeaderMap, Method};
use axum::response::Response;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AwsError;
use crate::request_id::RequestId;
use crate::service::Service;
use crate::{codec, de};

/// The REST binding of an operation (`http` in the botocore model).
#[derive(Clone, Debug)]
pub struct Http {
    pub method: Method,
    /// The URI template, labels in braces as the model writes it (`/services/{serviceIdentifier}`).
    pub uri: &'static str,
    /// The modelled success status (`responseCode`, 200 when the model is silent).
    pub success: u16,
}

/// Everything about an operation except its handler: what the router, the SigV4 gate, the
/// metrics and the docs read.
#[derive(Clone, Debug)]
pub struct OperationMeta {
    pub service: &'static Service,
    pub name: &'static str,
    /// Set for REST protocols; query and JSON protocols bind by name.
    pub http: Option<Http>,
    /// The largest request body (bytes) the operation accepts; `None` is [`crate::DEFAULT_BODY_CAP`].
    pub body_cap: Option<usize>,
    /// The error for a body over the cap, when it is not the service's usual one.
    pub too_large: Option<fn(usize) -> AwsError>,
    /// The modelled errors the handler can raise (the model's `errors`): the docs list them,
    /// and the table logs any other error the operation answers with (see [`Self::declares`]).
    pub errors: &'static [&'static str],
    /// Whether [`Operation::errors`] was called: an operation whose model lists no errors
    /// (`sts:GetCallerIdentity`) declares the empty list, and the table refuses one that said
    /// nothing.
    pub errors_declared: bool,
}

impl OperationMeta {
    pub fn body_cap(&self) -> usize {
        self.body_cap.unwrap_or(crate::DEFAULT_BODY_CAP)
    }

    pub fn too_large_error(&self) -> AwsError {
        (self.too_large.unwrap_or(self.service.errors.too_large))(self.body_cap())
    }

    /// Whether the operation may answer with error `code`: one it declares, or one the front
    /// door raises for any operation of its service (an undecodable or oversized input, an
    /// internal failure, throttling, the store being unavailable, the service's `common` codes).
    pub fn declares(&self, code: &str) -> bool {
        let e = &self.service.errors;
        // The query protocols answer an exception's `error.code`, which the IAM model gives as
        // the shape name without its `Exception` suffix (`NoSuchEntityException` → `NoSuchEntity`).
        let query_code = |shape: &&str| {
            self.service.protocol.is_query() && shape.strip_suffix("Exception") == Some(code)
        };
        self.errors.contains(&code)
            || self.errors.iter().any(query_code)
            || e.common.contains(&code)
            || code == e.internal_code
            || code == e.throttling_code
            || code == crate::error::SERVICE_UNAVAILABLE
            || code == (e.bad_input)(String::new()).code
            || code == self.too_large_error().code
            || code == (e.unknown_operation)("").code
    }
}

/// What a handler may want to know about the call besides its input.
#[derive(Clone, Debug)]
pub struct Call {
    pub request_id: RequestId,
    pub operation: &'static str,
    pub headers: HeaderMap,
    /// The request's extensions: what the layers in front of the table learnt about it (the
    /// SigV4 gate puts the authenticated caller there).
    pub extensions: Extensions,
}

/// Decides whether the caller may perform an operation with the input it sent. The layer in
/// front of the table (the SigV4 gate) puts an [`Authorizer`] in the request's extensions; the
/// table asks it once the input is decoded into its document of members and before the typed
/// input is built or the handler runs, so that the resources an input names (its identifiers
/// and ARNs) can be what is authorized. A raw operation is asked with the document of its URI
/// labels and query members. A request without an `Authorizer` is refused as an internal error
/// (fail closed): the gate inserts one for every request it lets through, and tests that drive
/// the table without the gate insert their own.
///
/// Asynchronous, because a decision may need more than the input: a condition on the tags of
/// the resource a call names (`aws:ResourceTag/…`) reads them from the store.
pub trait Authorize: Send + Sync {
    /// `Err` is the refusal, in the operation's service's vocabulary (boxed: it is the rare path).
    fn authorize<'a>(
        &'a self,
        meta: &'a OperationMeta,
        input: &'a serde_json::Value,
    ) -> AuthorizeFuture<'a>;
}

/// What [`Authorize::authorize`] returns.
pub type AuthorizeFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<(), Box<AwsError>>> + Send + 'a>>;

/// The request extension that carries the caller's [`Authorize`].
#[derive(Clone)]
pub struct Authorizer(pub Arc<dyn Authorize>);

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorizer")
    }
}

/// Asks the request's [`Authorizer`], if it has one.
async fn authorize(
    meta: &OperationMeta,
    extensions: &Extensions,
    input: &serde_json::Value,
) -> Result<(), Box<AwsError>> {
    match extensions.get::<Authorizer>() {
        Some(a) => a.0.authorize(meta, input).await,
        None => Err(Box::new(AwsError::internal(
            meta.service.errors.internal_code,
            format!(
                "{} reached the table without an authorizer: the gate did not see it",
                meta.name
            ),
        ))),
    }
}

pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = Response> + Send>>;
/// A handler over state `S`, given its operation's final declaration (with the body cap and
/// errors the builder methods set) when called.
pub(crate) type Erased<S> = Arc<dyn Fn(S, Arc<OperationMeta>, Request) -> BoxFuture + Send + Sync>;

/// An operation with a handler over state `S`; [`crate::Table::add`] binds the state.
pub struct Operation<S> {
    pub meta: OperationMeta,
    pub(crate) handler: Erased<S>,
}

impl<S: Clone + Send + Sync + 'static> Operation<S> {
    /// A REST operation (`method`, URI template, success status) with a typed handler.
    pub fn rest<I, O, E, F, Fut>(
        service: &'static Service,
        name: &'static str,
        (method, uri, success): (Method, &'static str, u16),
        handler: F,
    ) -> Operation<S>
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Into<AwsError> + Send + 'static,
        F: Fn(S, I, Call) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let http = Http {
            method,
            uri,
            success,
        };
        Operation::typed(service, name, Some(http), handler)
    }

    /// An operation of a JSON or query protocol service (bound by `X-Amz-Target` or `Action`).
    pub fn rpc<I, O, E, F, Fut>(
        service: &'static Service,
        name: &'static str,
        handler: F,
    ) -> Operation<S>
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Into<AwsError> + Send + 'static,
        F: Fn(S, I, Call) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        Operation::typed(service, name, None, handler)
    }

    /// A REST operation whose handler takes the request and answers it itself: for operations
    /// whose input or output is not a document (Lambda's `Invoke` streams a payload with its
    /// own headers). The request's body is already read and authenticated.
    pub fn raw<F, Fut>(
        service: &'static Service,
        name: &'static str,
        (method, uri, success): (Method, &'static str, u16),
        handler: F,
    ) -> Operation<S>
    where
        F: Fn(S, Request) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        Operation {
            meta: OperationMeta {
                service,
                name,
                http: Some(Http {
                    method,
                    uri,
                    success,
                }),
                body_cap: None,
                too_large: None,
                errors: &[],
                errors_declared: false,
            },
            handler: Arc::new(move |s, meta: Arc<OperationMeta>, req: Request| {
                let handler = handler.clone();
                Box::pin(async move {
                    // The document of labels and query members: the body is the operation's own
                    // (Invoke's payload), not members.
                    let (mut parts, body) = req.into_parts();
                    let request_id = RequestId::of(&parts.extensions);
                    let labels =
                        match codec::decode_input(&meta, &mut parts, &bytes::Bytes::new()).await {
                            Ok(doc) => authorize(&meta, &parts.extensions, &doc).await,
                            Err(m) => Err(Box::new((meta.service.errors.bad_input)(m))),
                        };
                    if let Err(e) = labels {
                        return codec::error_response(meta.service, &request_id, *e);
                    }
                    handler(s, Request::from_parts(parts, body)).await
                })
            }),
        }
    }

    /// A REST operation served by an axum handler (its extractors see the route's labels). A
    /// bridge for handlers not yet written against typed inputs.
    pub fn axum<H, T>(
        service: &'static Service,
        name: &'static str,
        binding: (Method, &'static str, u16),
        handler: H,
    ) -> Operation<S>
    where
        H: axum::handler::Handler<T, S> + Send + Sync,
        T: 'static,
    {
        Operation::raw(service, name, binding, move |s: S, req: Request| {
            axum::handler::Handler::call(handler.clone(), req, s)
        })
    }

    fn typed<I, O, E, F, Fut>(
        service: &'static Service,
        name: &'static str,
        http: Option<Http>,
        handler: F,
    ) -> Operation<S>
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        E: Into<AwsError> + Send + 'static,
        F: Fn(S, I, Call) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
    {
        let meta = OperationMeta {
            service,
            name,
            http,
            body_cap: None,
            too_large: None,
            errors: &[],
            errors_declared: false,
        };
        let handler: Erased<S> =
            Arc::new(move |state: S, meta: Arc<OperationMeta>, req: Request| {
                let handler = handler.clone();
                Box::pin(async move {
                    let (mut parts, body) = req.into_parts();
                    let request_id = RequestId::of(&parts.extensions);
                    let input = match decode_input::<I>(&meta, &mut parts, body).await {
                        Ok(i) => i,
                        Err(e) => return codec::error_response(meta.service, &request_id, e),
                    };
                    let call = Call {
                        request_id: request_id.clone(),
                        operation: meta.name,
                        headers: parts.headers,
                        extensions: parts.extensions,
                    };
                    match handler(state, input, call).await {
                        Ok(out) => codec::output_response(&meta, &request_id, &out),
                        Err(e) => codec::error_response(meta.service, &request_id, e.into()),
                    }
                })
            });
        Operation { meta, handler }
    }

    /// The request body cap, when it is not [`crate::DEFAULT_BODY_CAP`], and the error for a
    /// body over it when that is not the service's usual one.
    pub fn body_cap(
        mut self,
        cap: usize,
        too_large: Option<fn(usize) -> AwsError>,
    ) -> Operation<S> {
        self.meta.body_cap = Some(cap);
        self.meta.too_large = too_large;
        self
    }

    /// The modelled errors the handler raises.
    pub fn errors(mut self, errors: &'static [&'static str]) -> Operation<S> {
        self.meta.errors = errors;
        self.meta.errors_declared = true;
        self
    }
}

async fn decode_input<I: DeserializeOwned>(
    meta: &OperationMeta,
    parts: &mut axum::http::request::Parts,
    body: Body,
) -> Result<I, AwsError> {
    let bad = meta.service.errors.bad_input;
    // The SigV4 gate has already read the body within the operation's cap; this only collects it.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| bad(format!("Could not read the request body: {e}")))?;
    let value = codec::decode_input(meta, parts, &bytes)
        .await
        .map_err(bad)?;
    authorize(meta, &parts.extensions, &value)
        .await
        .map_err(|e| *e)?;
    de::from_value(value).map_err(|e| bad(format!("Could not parse the request: {e}")))
}

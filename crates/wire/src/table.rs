//! [`Table`]: every operation Trellis serves, declared once. The router, the SigV4 gate's
//! service-name check and body caps ([`Table::head`]), the metric operation names
//! ([`OperationName`]), the "unknown operation" answer and the docs' list of supported
//! operations ([`Table::markdown`]) all come from it.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, post};

use crate::codec;
use crate::operation::{BoxFuture, Operation, OperationMeta};
use crate::request_id::RequestId;
use crate::service::Service;

/// The operation a response answered (for metrics and logs), set in the response's extensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperationName(pub &'static str);

/// The service a query-protocol request was signed for, set by the SigV4 gate: `POST /` with a
/// form body is told apart by its credential scope (`iam`, `sts`, `ec2`) before the body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedService(pub &'static str);

type Bound = Arc<dyn Fn(Request) -> BoxFuture + Send + Sync>;

/// What the server logs when an operation answers with an error its entry does not declare.
pub const UNDECLARED_ERROR: &str = "an operation raised an error it does not declare";

struct Entry {
    meta: OperationMeta,
    handler: Bound,
}

/// Collects operations; [`TableBuilder::build`] checks and indexes them.
pub struct TableBuilder {
    default_rest: &'static Service,
    entries: Vec<Entry>,
}

/// The operation table.
pub struct Table {
    default_rest: &'static Service,
    entries: Vec<Entry>,
    /// REST paths (the templates and their slash-toggled twins) → indexes into `entries`.
    rest: matchit::Router<Vec<usize>>,
    /// The URI templates as registered with `rest`, for the axum router.
    rest_paths: BTreeMap<String, Vec<usize>>,
}

/// What the head of a request (method, path, headers) says about its operation, before the body
/// is read.
#[derive(Debug)]
pub enum Head<'a> {
    /// A served operation.
    Operation(&'a OperationMeta),
    /// A service's request for an operation Trellis does not serve.
    Unknown(&'static Service),
    /// `POST /` with a form body: the operation is in the body, the service is the one among
    /// these whose signing name the credential scope names.
    Query(Vec<&'static Service>),
}

impl Head<'_> {
    /// The signing names a valid signature may use.
    pub fn signing_names(&self) -> Vec<&'static str> {
        match self {
            Head::Operation(m) => vec![m.service.signing_name],
            Head::Unknown(s) => vec![s.signing_name],
            Head::Query(ss) => ss.iter().map(|s| s.signing_name).collect(),
        }
    }
}

impl TableBuilder {
    /// `default_rest` answers REST requests no service claims (as an unknown operation of it).
    pub fn new(default_rest: &'static Service) -> TableBuilder {
        TableBuilder {
            default_rest,
            entries: Vec::new(),
        }
    }

    /// Adds operations whose handlers share `state`.
    pub fn add<S: Clone + Send + Sync + 'static>(
        self,
        state: S,
        ops: Vec<Operation<S>>,
    ) -> TableBuilder {
        self.add_scoped(state, ops, |s, _| s.clone())
    }

    /// Adds operations whose handlers each get the state `for_request` derives from the shared
    /// one and the request's extensions (what the gate put there: the caller, its account), so
    /// that a handler cannot forget to scope what it reads to the caller.
    pub fn add_scoped<S: Clone + Send + Sync + 'static>(
        mut self,
        state: S,
        ops: Vec<Operation<S>>,
        for_request: fn(&S, &axum::http::Extensions) -> S,
    ) -> TableBuilder {
        for op in ops {
            let state = state.clone();
            let handler = op.handler;
            let meta = Arc::new(op.meta.clone());
            let bound: Bound = Arc::new(move |req: Request| {
                let scoped = for_request(&state, req.extensions());
                let fut = handler(scoped, meta.clone(), req);
                let meta = meta.clone();
                Box::pin(async move {
                    let mut resp = fut.await;
                    if let Some(code) = crate::request_id::raised_code(&resp)
                        && !meta.declares(code)
                    {
                        // Clients' SDKs only know the declared errors as typed exceptions; the
                        // end-to-end suite fails on this line in any server's log.
                        tracing::error!(
                            service = meta.service.id,
                            operation = meta.name,
                            code,
                            "{UNDECLARED_ERROR}"
                        );
                    }
                    resp.extensions_mut().insert(OperationName(meta.name));
                    resp
                })
            });
            self.entries.push(Entry {
                meta: op.meta,
                handler: bound,
            });
        }
        self
    }

    /// Indexes the table. Panics on a table that cannot be served (two operations with one
    /// binding, a REST operation without one, one that declares no errors): a programming error
    /// every test catches.
    pub fn build(self) -> Table {
        let mut rest_paths: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            let m = &e.meta;
            assert_eq!(
                m.http.is_some(),
                m.service.protocol.is_rest(),
                "{}: REST operations have an HTTP binding, others none",
                m.name
            );
            assert!(
                m.errors_declared,
                "{}: every operation declares the errors it can raise",
                m.name
            );
            for (j, other) in self.entries[..i].iter().enumerate() {
                let same = match (&m.http, &other.meta.http) {
                    (Some(a), Some(b)) => a.method == b.method && a.uri == b.uri,
                    (None, None) => {
                        std::ptr::eq(m.service, other.meta.service) && m.name == other.meta.name
                    }
                    _ => false,
                };
                assert!(!same, "{} and entry {j} share a binding", m.name);
            }
            if let Some(http) = &m.http {
                rest_paths.entry(route_path(http.uri)).or_default().push(i);
            }
        }
        // Clients differ on a trailing slash (`/2015-03-31/functions/` is ListFunctions' modelled
        // URI, `/2015-03-31/functions` CreateFunction's): each path also answers its twin, unless
        // the twin binds the same method to another operation.
        let declared: Vec<(String, Vec<usize>)> = rest_paths
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (path, idxs) in declared {
            if path.contains("{*") {
                continue;
            }
            let twin = match path.strip_suffix('/') {
                Some(p) if !p.is_empty() => p.to_string(),
                Some(_) => continue,
                None => format!("{path}/"),
            };
            for i in idxs {
                let method = &self.entries[i].meta.http.as_ref().expect("REST").method;
                let slot = rest_paths.entry(twin.clone()).or_default();
                let taken = slot
                    .iter()
                    .any(|&k| self.entries[k].meta.http.as_ref().expect("REST").method == *method);
                if !taken {
                    slot.push(i);
                }
            }
        }
        let mut rest = matchit::Router::new();
        for (path, idxs) in &rest_paths {
            rest.insert(path.clone(), idxs.clone())
                .unwrap_or_else(|e| panic!("REST path {path}: {e}"));
        }
        Table {
            default_rest: self.default_rest,
            entries: self.entries,
            rest,
            rest_paths,
        }
    }
}

impl Table {
    /// Every operation, in declaration order.
    pub fn operations(&self) -> impl Iterator<Item = &OperationMeta> {
        self.entries.iter().map(|e| &e.meta)
    }

    /// Every service with at least one operation, in declaration order.
    pub fn services(&self) -> Vec<&'static Service> {
        let mut out: Vec<&'static Service> = Vec::new();
        for e in &self.entries {
            if !out.iter().any(|s| std::ptr::eq(*s, e.meta.service)) {
                out.push(e.meta.service);
            }
        }
        out
    }

    /// What the head of a request says about its operation.
    pub fn head(&self, method: &Method, path: &str, headers: &HeaderMap) -> Head<'_> {
        if path == "/" && *method == Method::POST {
            if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
                return self.by_target(target);
            }
            let query: Vec<&'static Service> = self
                .services()
                .into_iter()
                .filter(|s| s.protocol.is_query())
                .collect();
            if !query.is_empty() {
                return Head::Query(query);
            }
        }
        if let Ok(m) = self.rest.at(path) {
            let ops = m.value;
            if let Some(&i) = ops.iter().find(|&&i| {
                self.entries[i]
                    .meta
                    .http
                    .as_ref()
                    .is_some_and(|h| h.method == *method)
            }) {
                return Head::Operation(&self.entries[i].meta);
            }
            return Head::Unknown(self.entries[ops[0]].meta.service);
        }
        Head::Unknown(self.rest_service_of(path))
    }

    fn by_target(&self, target: &str) -> Head<'_> {
        let (prefix, name) = target.split_once('.').unwrap_or((target, ""));
        let services = self.services();
        let Some(service) = services
            .into_iter()
            .find(|s| s.target_prefix == Some(prefix))
        else {
            return Head::Unknown(self.default_rest);
        };
        match self
            .entries
            .iter()
            .find(|e| std::ptr::eq(e.meta.service, service) && e.meta.name == name)
        {
            Some(e) => Head::Operation(&e.meta),
            None => Head::Unknown(service),
        }
    }

    /// The REST service a path belongs to even when no operation matches it.
    fn rest_service_of(&self, path: &str) -> &'static Service {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        self.services()
            .into_iter()
            .find(|s| s.path_prefixes.contains(&first))
            .unwrap_or(self.default_rest)
    }

    fn find(&self, service: &Service, name: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| std::ptr::eq(e.meta.service, service) && e.meta.name == name)
    }

    /// The axum router for every operation in the table, with the unknown-operation answer as
    /// its fallback.
    pub fn router(self: &Arc<Table>) -> Router {
        let mut router = Router::new();
        for (path, idxs) in &self.rest_paths {
            let mut mr: MethodRouter = MethodRouter::new();
            for &i in idxs {
                let method = self.entries[i]
                    .meta
                    .http
                    .as_ref()
                    .expect("REST")
                    .method
                    .clone();
                let filter = MethodFilter::try_from(method).expect("a routable method");
                let h = self.entries[i].handler.clone();
                mr = mr.on(filter, move |req: Request| h(req));
            }
            let table = self.clone();
            mr = mr.fallback(move |req: Request| {
                let table = table.clone();
                async move { table.unknown(req) }
            });
            router = router.route(path, mr);
        }
        let has_rpc = self.entries.iter().any(|e| e.meta.http.is_none());
        if has_rpc && !self.rest_paths.contains_key("/") {
            let table = self.clone();
            router = router.route(
                "/",
                post(move |req: Request| {
                    let table = table.clone();
                    async move { table.dispatch_rpc(req).await }
                }),
            );
        }
        let table = self.clone();
        router
            .fallback(move |req: Request| {
                let table = table.clone();
                async move { table.unknown(req) }
            })
            // The SigV4 gate in front of the table bounds every body by its operation's cap.
            .layer(axum::extract::DefaultBodyLimit::disable())
    }

    /// `POST /` for the JSON and query protocols: the operation is named by `X-Amz-Target` or by
    /// the form body's `Action`.
    async fn dispatch_rpc(&self, req: Request) -> Response {
        let head_target = req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(target) = head_target {
            return match self.by_target(&target) {
                Head::Operation(m) => {
                    let e = self
                        .find(m.service, m.name)
                        .expect("an entry of this table");
                    (e.handler)(req).await
                }
                _ => self.unknown(req),
            };
        }
        let (parts, body) = req.into_parts();
        let request_id = RequestId::of(&parts.extensions);
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let signed = parts.extensions.get::<SignedService>().map(|s| s.0);
        let services: Vec<&Service> = self
            .services()
            .into_iter()
            .filter(|s| s.protocol.is_query() && signed.is_none_or(|n| n == s.signing_name))
            .collect();
        let Some(&service) = services.first() else {
            return self.unknown(Request::from_parts(parts, Body::from(bytes)));
        };
        let action = codec::query_action(&bytes);
        let entry = action
            .as_deref()
            .and_then(|a| services.iter().find_map(|s| self.find(s, a)));
        match entry {
            Some(e) => (e.handler)(Request::from_parts(parts, Body::from(bytes))).await,
            None => codec::error_response(
                service,
                &request_id,
                (service.errors.unknown_operation)(action.as_deref().unwrap_or("(no Action)")),
            ),
        }
    }

    /// The answer to a request for an operation the table does not hold, in the vocabulary of
    /// the service the request was for.
    fn unknown(&self, req: Request) -> Response {
        let request_id = RequestId::of(req.extensions());
        let head = self.head(req.method(), req.uri().path(), req.headers());
        let service = match head {
            Head::Operation(m) => m.service,
            Head::Unknown(s) => s,
            Head::Query(ss) => ss[0],
        };
        let what = match req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
        {
            Some(t) if req.uri().path() == "/" => t.to_string(),
            _ => format!("{} {}", req.method(), req.uri().path()),
        };
        codec::error_response(
            service,
            &request_id,
            (service.errors.unknown_operation)(&what),
        )
    }

    /// The supported operations as a Markdown list per service, for the docs (a test keeps the
    /// docs equal to it).
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        for s in self.services() {
            out.push_str(&format!(
                "### {} (`{}`, {}, signing name `{}`)\n\n",
                s.id,
                s.api_version,
                s.protocol.model_name(),
                s.signing_name
            ));
            out.push_str("| Operation | Binding | Errors |\n|---|---|---|\n");
            for m in self.operations().filter(|m| std::ptr::eq(m.service, s)) {
                let binding = match (&m.http, s.target_prefix) {
                    (Some(h), _) => format!("`{} {}`", h.method, h.uri),
                    (None, Some(p)) => format!("`X-Amz-Target: {p}.{}`", m.name),
                    (None, None) => format!("`Action={}`", m.name),
                };
                let errors = if m.errors.is_empty() {
                    "—".to_string()
                } else {
                    m.errors.join(", ")
                };
                out.push_str(&format!("| {} | {binding} | {errors} |\n", m.name));
            }
            out.push('\n');
        }
        out
    }
}

/// A model URI template as the router writes it: a greedy label `{name+}` (which may contain
/// `/`) is a catch-all `{*name}`.
fn route_path(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    for (i, seg) in uri.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            Some(name) => {
                out.push_str("{*");
                out.push_str(name);
                out.push('}');
            }
            None => out.push_str(seg),
        }
    }
    out
}

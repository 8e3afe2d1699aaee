//! The per-request pipeline: one phase function, [`proxy_request`], that reads top to bottom in
//! the order of DESIGN.md's request path, and [`handle`], which runs it and does what every
//! request needs whatever happened: the request ID on the response, the error mapping, the
//! access-log record.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use hyper::body::{Body, Incoming};
use trellis_model::resources::listener::ListenerProtocol;
use trellis_model::resources::target_group::{
    ProtocolVersion, TargetGroupProtocol, TargetGroupType,
};
use trellis_router::path::PathError;
use trellis_router::{Action, RequestHead};
use trellis_snapshot::{ListenerEntry, ServiceEntry, Snapshot, TargetGroupEntry};

use crate::body::{Progress, RequestBody, ResponseBody};
use crate::conn::{ActiveRequest, ConnCtx};
use crate::error::{self, ProxyError};
use crate::headers::{self, X_AMZN_REQUESTID};
use crate::lambda;
use crate::upstream::{Failure, Key};
use crate::{Shared, auth, rng};

/// Serves one request: runs the pipeline, turns a failure into its response, stamps the request
/// ID on whatever goes back, and fills the access-log record.
pub(crate) async fn handle(conn: Arc<ConnCtx>, req: Request<Incoming>) -> Response<ResponseBody> {
    let active = ActiveRequest::enter(&conn);
    let request_id = headers::request_id(req.headers());
    let mut record = AccessRecord::start(&conn, &req, &request_id);
    let grpc = is_grpc(req.headers());

    let mut status = None;
    let mut response = match proxy_request(&conn, req, &request_id, &mut record).await {
        Ok(response) => response,
        Err(error) => {
            record.failure = Some(error.failure_reason());
            tracing::debug!(%error, side = ?error.side(), "request failed");
            if grpc {
                // The access log keeps the HTTP status the error stands for.
                status = Some(error.status());
                error::respond_grpc(&error)
            } else {
                error::respond(&error)
            }
        }
    };
    response.headers_mut().insert(X_AMZN_REQUESTID, request_id);
    *response.version_mut() = record.protocol;
    response.body_mut().hold(active);

    record.status = status.unwrap_or(response.status()).as_u16();
    record.duration = record.started.elapsed();
    // The target group's ActiveRequestCount covers the wait for the response head, as
    // RequestTime does.
    record.active = None;
    if let Some(metrics) = conn.shared.metrics.get() {
        metrics.request(&record);
    }
    record.emit();
    if let Some(sink) = conn.shared.access_logs.get()
        && crate::access_log::wanted(sink.as_ref(), &record)
    {
        let pending = crate::access_log::Pending::new(record, Arc::clone(sink), &response);
        response.body_mut().log_on_end(pending);
    }
    response
}

/// Whether a request is a gRPC call (`content-type: application/grpc`, `application/grpc+…`,
/// `application/grpc;…`).
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.as_bytes().get(..16))
        .is_some_and(|p| p.eq_ignore_ascii_case(b"application/grpc"))
}

/// The request path, phase by phase. Each phase either passes the request on or ends it with a
/// typed error; nothing here builds an error response itself.
async fn proxy_request(
    conn: &ConnCtx,
    mut req: Request<Incoming>,
    request_id: &HeaderValue,
    record: &mut AccessRecord,
) -> Result<Response<ResponseBody>, ProxyError> {
    let shared: &Shared = &conn.shared;

    // 1. One snapshot for the whole request: a configuration change published meanwhile does
    //    not affect it.
    let snapshot = shared.snapshots.load_full();

    // 1b. The client network: the VPC admitting this connection under this snapshot (a
    //     connection accepted under an older one may no longer be admitted: 403), and so the
    //     service network its requests arrive through.
    let client = conn
        .clients
        .admitted(
            &snapshot,
            conn.local,
            &conn.origin,
            shared.config.open_network,
        )
        .map_err(ProxyError::ClientNetwork)?;
    record.client = client.clone();

    // 2. One authority and one path: conflicting or repeated authorities and ambiguous paths
    //    are refused; the path is replaced by its normal form, which every later stage
    //    (service, rules, auth policy, access log, Lambda event) and the target see alike.
    //    The header limits (step 4) measure what the client sent, before a Host is added.
    let header_size = headers::header_size(req.headers());
    record.head_bytes = crate::access_log::request_head_bytes(record, header_size.1);
    // The URI as received, when its normal form differs: a signature covers what was sent.
    let mut received = None;
    if canonicalize(&mut req, conn)? {
        received = Some(std::mem::replace(&mut record.uri, req.uri().clone()));
        record.host = req.headers().get(header::HOST).cloned();
    }

    // 2b. The service: by TLS server name on TLS connections, else by Host.
    let service = select_service(&snapshot, conn, &req)?;
    // A service outside the client's service network does not exist for it (Lattice: 404), and
    // its access logs and metrics never see the request.
    let network = match &client {
        Some(client) => Some(
            service
                .networks
                .iter()
                .find(|n| n.id == client.network_id())
                .ok_or(ProxyError::UnknownService)?,
        ),
        None => None,
    };
    record.service = Some(Arc::clone(service));

    // 3. The listener: the service's listener on this port, speaking this connection's
    //    protocol (HTTP listeners for clear text, HTTPS listeners for TLS).
    let listener = select_listener(service, conn)?;
    record.listener = Some(Arc::clone(listener));

    // 4. Header limits (Lattice: more than 100 fields or 60 KB → 400).
    check_header_limits(header_size, shared)?;

    // 5. Authentication and authorization (`auth`): when the service or a network of it uses
    //    AWS_IAM, a signed request must verify, and every enabled layer must allow the caller.
    let (mut head, body) = req.into_parts();
    let authenticated = auth::authorize(
        shared.credentials.get().map(|c| c.as_ref()),
        &shared.key_cache,
        &snapshot.ctx.region,
        service,
        &mut head,
        received.as_ref(),
        &auth::Connection {
            peer: conn.peer.ip(),
            port: conn.local_port,
            tls: conn.tls.is_some(),
            network,
            vpc: client.as_ref().map(|c| &*c.vpc),
        },
    )
    .inspect_err(|e| {
        if let ProxyError::AccessDenied { layer, caller, .. } = e {
            record.auth_denied = Some(layer.reason());
            record.caller = caller.clone();
            record.anonymous = caller.is_none();
        }
    })?;
    let mut req = Request::from_parts(head, body);
    record.caller = authenticated.caller().cloned();
    record.anonymous = matches!(authenticated, auth::Authenticated::Anonymous);

    // 6. Rules: the first matching rule's action, else the default action.
    let action = {
        let head = RequestHead {
            method: req.method().as_str(),
            path: req.uri().path(),
            headers: req.headers(),
        };
        listener.routes.route(&head).action
    };
    let groups = match action {
        Action::FixedResponse { status } => return Ok(fixed_response(*status)),
        Action::Forward(groups) => groups,
    };

    // 7. The target group: a weighted pick (weight 0 never chosen).
    let group_id = groups
        .pick(rng::next_u32())
        .ok_or(ProxyError::AllWeightsZero)?;
    let group = snapshot
        .target_groups
        .get(group_id)
        .ok_or_else(|| ProxyError::UnknownTargetGroup(group_id.to_owned()))?;
    record.target_group = Some(Arc::clone(group));
    if let Some(metrics) = shared.metrics.get() {
        let series = metrics.target_group(&group.id);
        record.active = Some(series.enter());
        record.group_series = Some(series);
    }

    // 7b. A LAMBDA group invokes its function instead: the buffered request becomes the event,
    //     the function's result the response.
    if group.target_type == TargetGroupType::Lambda {
        return lambda::forward(conn, &snapshot, service, group, req, request_id, record).await;
    }

    // 8. Headers towards the target: connection-level fields out, client copies of the fields
    //    Trellis owns out, Trellis's own in. Host is the one authority of step 2.
    let lattice_target = shared
        .target_headers
        .get(&snapshot, service, network, group);
    prepare_request(
        &mut req,
        conn,
        request_id,
        lattice_target,
        record.caller.as_deref(),
        client.as_deref(),
    );
    headers::ensure_trace(req.headers_mut(), record.start_time);

    // 9. The target and the exchange: round robin over routable targets; a connection that
    //    fails before any byte of the request was sent is retried once on another target.
    let (upstream, pooled, in_flight) = forward(shared, group, req, record).await?;

    // 10. The response, streamed back as it comes.
    let (mut parts, body) = upstream.into_parts();
    headers::strip_response_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(
        parts,
        ResponseBody::upstream(body, pooled, in_flight),
    ))
}

/// Gives the request one authority and one path, or refuses it (docs/decisions.md, "One
/// authority, one path"):
///
/// * at most one `Host` field; an authority in the target (absolute-form HTTP/1.1, HTTP/2
///   `:authority`) must equal `Host` when both are present (ASCII case-insensitively, port
///   included), and neither may carry user information;
/// * the path is [`trellis_router::path::normalize`]d; the query string is kept byte for byte.
///
/// Afterwards the request has one authority, [`request_host`] (the target's when it has one,
/// which any `Host` equals; else `Host`; else, on TLS, the server name, added as `Host`), and
/// the upstream code gives the target exactly that as its `Host` or `:authority`. A request that
/// is already in this form (the common one) is left untouched, with no allocation; the result
/// says whether the request was changed.
fn canonicalize(req: &mut Request<Incoming>, conn: &ConnCtx) -> Result<bool, ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::DuplicateHost);
    }
    // An empty Host is what RFC 9112 §3.2 asks of a request whose URI has no authority.
    let host = host.filter(|h| !h.is_empty());
    if let Some(host) = host
        && !is_plain_authority(host.as_bytes())
    {
        return Err(ProxyError::InvalidHost);
    }
    let uri = req.uri();
    match (uri.authority(), host) {
        (Some(authority), _) if !is_plain_authority(authority.as_str().as_bytes()) => {
            return Err(ProxyError::InvalidHost);
        }
        (Some(authority), Some(host))
            if !authority
                .as_str()
                .as_bytes()
                .eq_ignore_ascii_case(host.as_bytes()) =>
        {
            return Err(ProxyError::AuthorityMismatch);
        }
        _ => {}
    }
    let add_server_name = host.is_none() && uri.authority().is_none();

    let path = trellis_router::path::normalize(uri.path()).map_err(ProxyError::InvalidPath)?;
    let mut changed = false;
    if let std::borrow::Cow::Owned(path) = path {
        changed = true;
        let target = match uri.query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        // The normal form holds only characters a URI path allows and the query is the one
        // already parsed, so neither step can fail; should one, the request is refused rather
        // than sent with its old path.
        parts.path_and_query = Some(
            http::uri::PathAndQuery::try_from(target)
                .map_err(|_| ProxyError::InvalidPath(PathError::NotAbsolute))?,
        );
        *req.uri_mut() =
            Uri::from_parts(parts).map_err(|_| ProxyError::InvalidPath(PathError::NotAbsolute))?;
    }

    if add_server_name
        && let Some(tls) = &conn.tls
        && let Ok(name) = HeaderValue::from_str(&tls.server_name)
    {
        // HTTP/1.0 and HTTP/1.1 clients may omit the host on TLS connections (the service
        // comes from SNI); targets still get one.
        req.headers_mut().insert(header::HOST, name);
        changed = true;
    }
    Ok(changed)
}

/// The one authority of a request [`canonicalize`] accepted: the target's (`:authority`, an
/// absolute-form URI), else the `Host` field.
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
}

/// Whether a `Host` value or URI authority is `host[:port]` and nothing else: only characters a
/// host name, an IP literal or a port can hold (RFC 3986 §3.2.2), and so no user information
/// (`user@`), which HTTP/2 forbids in `:authority` and which would let the name Trellis reads
/// and the name a target reads differ. A byte scan, no allocation (this runs on every request).
fn is_plain_authority(value: &[u8]) -> bool {
    !value.is_empty()
        && value.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'['
                        | b']'
                        | b'%'
                )
        })
}

fn select_service<'s>(
    snapshot: &'s Snapshot,
    conn: &ConnCtx,
    req: &Request<Incoming>,
) -> Result<&'s Arc<ServiceEntry>, ProxyError> {
    let host = request_host(req);
    let Some(tls) = &conn.tls else {
        return host
            .and_then(|host| snapshot.service_by_host(host))
            .ok_or(ProxyError::UnknownService);
    };
    let service = snapshot
        .service_by_host(&tls.server_name)
        .ok_or(ProxyError::UnknownService)?;
    // A client may reuse a TLS connection for another name its certificate covers (HTTP/2
    // connection coalescing); sending that request to the SNI's service would be a misroute,
    // and 421 tells the client to retry on a new connection (RFC 9110 §15.5.20). A Host that
    // names no served service is refused the same way: the target would otherwise receive a
    // Host other than a name of the service Trellis routed on, and a target serving several
    // names by virtual host would answer for one Trellis never authorised.
    match host.and_then(|host| snapshot.service_by_host(host)) {
        Some(other) if Arc::ptr_eq(other, service) => Ok(service),
        _ => Err(ProxyError::Misdirected),
    }
}

fn select_listener<'s>(
    service: &'s ServiceEntry,
    conn: &ConnCtx,
) -> Result<&'s Arc<ListenerEntry>, ProxyError> {
    let protocol = if conn.tls.is_some() {
        ListenerProtocol::Https
    } else {
        ListenerProtocol::Http
    };
    service
        .listeners
        .get(&conn.local_port)
        .filter(|listener| listener.protocol == protocol)
        .ok_or(ProxyError::NoListener {
            port: conn.local_port,
            protocol: protocol.as_str(),
        })
}

fn check_header_limits((count, bytes): (usize, usize), shared: &Shared) -> Result<(), ProxyError> {
    let config = &shared.config;
    if count > config.max_headers || bytes > config.max_header_bytes {
        return Err(ProxyError::HeadersTooLarge {
            count,
            bytes,
            max_count: config.max_headers,
            max_bytes: config.max_header_bytes,
        });
    }
    Ok(())
}

/// A rule's fixed response: the status, an empty body.
fn fixed_response(status: u16) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
    response
}

fn prepare_request(
    req: &mut Request<Incoming>,
    conn: &ConnCtx,
    request_id: &HeaderValue,
    lattice_target: HeaderValue,
    caller: Option<&dyn auth::Caller>,
    client: Option<&crate::clients::Admitted>,
) {
    let headers = req.headers_mut();
    headers::strip_request(headers);
    // Room for the seven fields below at once, rather than growing the map as they arrive.
    headers.reserve(7);
    if let Some(caller) = caller {
        headers::insert_identity(headers, caller);
    }
    headers.insert(headers::X_FORWARDED_FOR, conn.forwarded_for.clone());
    headers.insert(headers::X_FORWARDED_PORT, conn.forwarded_port.clone());
    headers.insert(
        headers::X_FORWARDED_PROTO,
        if conn.tls.is_some() {
            headers::PROTO_HTTPS
        } else {
            headers::PROTO_HTTP
        },
    );
    headers.insert(headers::X_AMZN_LATTICE_TARGET, lattice_target);
    match client {
        Some(client) => {
            headers.insert(
                headers::X_AMZN_LATTICE_NETWORK,
                client.network_header.clone(),
            );
            headers.insert(headers::X_AMZN_SOURCE_VPC, client.source_vpc_header.clone());
        }
        None => {
            headers.insert(headers::X_AMZN_LATTICE_NETWORK, headers::LATTICE_NETWORK);
        }
    }
    headers.insert(X_AMZN_REQUESTID, request_id.clone());
}

/// Picks a target and exchanges the request with it; on a failure before any byte was sent,
/// picks another target (excluding the first) and tries once more.
async fn forward(
    shared: &Shared,
    group: &TargetGroupEntry,
    req: Request<Incoming>,
    record: &mut AccessRecord,
) -> Result<
    (
        Response<Incoming>,
        Option<crate::upstream::Pooled>,
        trellis_health::InFlight,
    ),
    ProxyError,
> {
    let tls = group.config.protocol == Some(TargetGroupProtocol::Https);
    let h2 = matches!(
        group.config.protocol_version,
        Some(ProtocolVersion::Http2 | ProtocolVersion::Grpc)
    );
    let timeout = shared.config.idle_timeout;
    // Only a request that still has a body to send needs its upload watched.
    let progress = (!req.body().is_end_stream()).then(|| Arc::new(Progress::new()));
    record.progress = progress.clone();
    let mut req = req.map(|body| RequestBody::new(body, progress.clone()));

    let no_target = || ProxyError::NoTarget {
        target_group: group.id.clone(),
    };
    let mut picked = shared.health.pick(&group.id, &[]).ok_or_else(no_target)?;
    let mut retried = false;
    loop {
        record.target = picked.target.addr;
        let attempt = match picked.target.addr {
            Some(addr) => {
                let key = Key { addr, tls, h2 };
                shared
                    .upstreams
                    .send(
                        key,
                        req,
                        timeout,
                        progress.as_deref(),
                        record.group_series.as_deref(),
                    )
                    .await
            }
            None => Err(Failure::NotSent(
                ProxyError::NoAddress {
                    target: picked.target.id.clone(),
                },
                Box::new(req),
            )),
        };
        if let (Err(Failure::NotSent(error, _) | Failure::Failed(error)), Some(series)) =
            (&attempt, &record.group_series)
            && error.is_connection_error()
        {
            series.connection_error(error.is_connect_timeout());
        }
        match attempt {
            Ok((response, pooled)) => return Ok((response, pooled, picked.guard)),
            Err(Failure::NotSent(error, back)) if error.retryable() && !retried => {
                let exclude = [picked.target.key.as_str()];
                let Some(next) = shared.health.pick(&group.id, &exclude) else {
                    return Err(error);
                };
                tracing::debug!(%error, target = %picked.target.key, retry = %next.target.key, "retrying on another target");
                shared.retries.fetch_add(1, Ordering::Relaxed);
                record.retries += 1;
                req = *back;
                retried = true;
                picked = next;
            }
            Err(Failure::NotSent(error, _)) | Err(Failure::Failed(error)) => {
                // A client body that broke is why the exchange failed, whatever it reports.
                return Err(error.or_body_fault(progress.as_ref().and_then(|p| p.fault())));
            }
        }
    }
}

/// What the access log will record about a request (reference §8.2). Filled as the pipeline
/// goes and completed when the response head is ready; `AccessRecord::emit` writes a `tracing`
/// debug line and [`crate::access_log`] turns it into Lattice's JSON record for the access-log
/// sink.
#[derive(Debug)]
pub struct AccessRecord {
    pub start_time: SystemTime,
    pub started: Instant,
    pub source: std::net::SocketAddr,
    pub listener_port: u16,
    pub server_name: Option<Arc<str>>,
    /// The TLS connection's cipher suite (OpenSSL name) and protocol version.
    pub tls: Option<(&'static str, &'static str)>,
    pub protocol: Version,
    pub method: Method,
    /// The request target: as received until the request passed step 2, then its normal form
    /// (origin form, normalised path, query as sent): Lattice's `requestPath` is its path.
    pub uri: Uri,
    /// The `Host` field (on TLS, the server name when the client sent none). HTTP/2 requests
    /// carry their authority in `uri` instead; when both are present they are equal.
    pub host: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub request_id: HeaderValue,
    pub service: Option<Arc<ServiceEntry>>,
    pub listener: Option<Arc<ListenerEntry>>,
    pub target_group: Option<Arc<TargetGroupEntry>>,
    pub target: Option<std::net::SocketAddr>,
    pub retries: u8,
    pub status: u16,
    /// The request head's size as received (request line and header fields), and whether the
    /// request had no body.
    pub head_bytes: u64,
    /// The gRPC status of the response (`grpc-status` in its head or trailers).
    pub grpc_status: Option<u64>,
    pub body_empty: bool,
    /// The forwarded request body's progress (its bytes, when it last moved).
    pub(crate) progress: Option<Arc<Progress>>,
    /// The size of a request body read whole (LAMBDA targets).
    pub body_read: Option<u64>,
    /// Set when the response body ends: the bytes sent (head and body), and the time from the
    /// response head to the end.
    pub bytes_sent: Option<u64>,
    pub to_client: Option<Duration>,
    /// Lattice's `failureReason` when the request failed in the proxy.
    pub failure: Option<&'static str>,
    /// The authenticated caller (`resolvedUser` is its ARN), when the request was signed and
    /// the service or a network of it uses AWS_IAM.
    pub caller: Option<Arc<dyn auth::Caller>>,
    /// Which layer denied the request (`authDeniedReason`: `Network`, `Service`, `Identity`).
    pub auth_denied: Option<&'static str>,
    /// An unsigned request the auth stage let through (`resolvedUser` is `Anonymous`).
    pub anonymous: bool,
    /// The client network that admitted the connection (`sourceVpcId`, `sourceVpcArn`, and the
    /// service network the request arrived through).
    pub(crate) client: Option<Arc<crate::clients::Admitted>>,
    /// Until the response head was ready (the body may still be streaming); for the access log,
    /// until the response body ended.
    pub duration: Duration,
    /// The target group's metric handles, once a group was picked and metrics are on.
    pub group_series: Option<Arc<trellis_telemetry::lattice::TargetGroupSeries>>,
    /// Counts the request in the group's `ActiveRequestCount` until dropped.
    pub active: Option<trellis_telemetry::lattice::ActiveGuard>,
}

impl AccessRecord {
    fn start(conn: &ConnCtx, req: &Request<Incoming>, request_id: &HeaderValue) -> AccessRecord {
        AccessRecord {
            start_time: SystemTime::now(),
            started: Instant::now(),
            source: conn.peer,
            listener_port: conn.local_port,
            server_name: conn.tls.as_ref().map(|t| Arc::clone(&t.server_name)),
            tls: conn.tls.as_ref().map(|t| (t.cipher, t.version)),
            protocol: req.version(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            host: req.headers().get(header::HOST).cloned(),
            user_agent: req.headers().get(header::USER_AGENT).cloned(),
            request_id: request_id.clone(),
            service: None,
            listener: None,
            target_group: None,
            target: None,
            retries: 0,
            status: 0,
            head_bytes: 0,
            grpc_status: None,
            body_empty: req.body().is_end_stream(),
            progress: None,
            body_read: None,
            bytes_sent: None,
            to_client: None,
            failure: None,
            caller: None,
            auth_denied: None,
            anonymous: false,
            client: None,
            duration: Duration::ZERO,
            group_series: None,
            active: None,
        }
    }

    /// The access-log hook.
    fn emit(&self) {
        tracing::debug!(
            status = self.status,
            method = %self.method,
            uri = %self.uri,
            host = ?self.host,
            protocol = ?self.protocol,
            source = %self.source,
            port = self.listener_port,
            service = self.service.as_ref().map(|s| s.id.as_str()),
            target_group = self.target_group.as_ref().map(|g| g.id.as_str()),
            target = ?self.target,
            retries = self.retries,
            failure = self.failure,
            request_id = ?self.request_id,
            duration_us = self.duration.as_micros() as u64,
            "request"
        );
    }
}

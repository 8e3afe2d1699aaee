//! The Lambda Runtime API (`2018-06-01`) as one runtime process sees it: a small HTTP server on
//! `127.0.0.1` whose address the process gets in `AWS_LAMBDA_RUNTIME_API`.
//!
//! Each runtime process has its own server, so the server knows which process is asking without
//! any identification in the protocol — the same arrangement Lambda uses, which is what lets an
//! unmodified runtime interface client (`awslambdaric`, `aws-lambda-ric`, the Rust and Go
//! runtimes) work against it. The endpoints:
//!
//! * `GET /2018-06-01/runtime/invocation/next` — long poll; answers with the event and the
//!   `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id`
//!   headers once an invocation is dispatched.
//! * `POST /2018-06-01/runtime/invocation/{id}/response` — the result (at most
//!   [`MAX_RESPONSE_BYTES`]; larger is refused with 413 and reported to the invoker).
//! * `POST /2018-06-01/runtime/invocation/{id}/error` — a function error (JSON
//!   `{errorMessage, errorType, stackTrace}`, error type also in
//!   `Lambda-Runtime-Function-Error-Type`).
//! * `POST /2018-06-01/runtime/init/error` — the runtime could not initialize; it exits next.
//!
//! The port is on the host's loopback, which every local process can reach. With isolation each
//! sandbox runs as a uid of its own, and its server accepts only connections whose socket that
//! uid owns (the kernel's `/proc/net/tcp` says who owns each socket); any other connection — a
//! second sandbox that found the port in `/proc` or by scanning — is closed before a byte is
//! read. The protocol stays unauthenticated, so unmodified runtime clients keep working.
//!
//! [`RuntimeApi::dispatch`] is the other side: it hands one invocation to the runtime and yields
//! the moment the runtime took it (with its deadline) and the outcome.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

/// Lambda's limit for a synchronous response payload.
pub const MAX_RESPONSE_BYTES: usize = 6_291_556;

/// One invocation as the runtime receives it.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// The ARN the caller used (qualified with the alias or version when it was).
    pub invoked_arn: String,
    /// The `X-Amz-Client-Context` of the invoke request, decoded from base64.
    pub client_context: Option<String>,
    pub timeout: Duration,
}

/// What the runtime reported for an invocation.
#[derive(Clone, Debug, PartialEq)]
pub enum RuntimeOutcome {
    Response(Bytes),
    /// A function error: the runtime's JSON error document and its error type header.
    Error {
        payload: Bytes,
        error_type: Option<String>,
    },
    /// The runtime tried to post a response larger than [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge,
}

/// The invoker's view of one dispatched invocation.
#[derive(Debug)]
pub struct Dispatched {
    /// Fires with the deadline when the runtime takes the invocation from `/next`.
    pub started: oneshot::Receiver<Instant>,
    /// Fires when the runtime posts a response or an error.
    pub done: oneshot::Receiver<RuntimeOutcome>,
}

struct Dispatch {
    invocation: Invocation,
    started: oneshot::Sender<Instant>,
    done: oneshot::Sender<RuntimeOutcome>,
}

struct InFlight {
    request_id: String,
    done: oneshot::Sender<RuntimeOutcome>,
}

/// The state one runtime process's Runtime API serves.
pub struct RuntimeApi {
    sender: mpsc::Sender<Dispatch>,
    /// Only one `/next` waits at a time; a runtime that polls twice waits its turn.
    queue: tokio::sync::Mutex<mpsc::Receiver<Dispatch>>,
    current: Mutex<Option<InFlight>>,
    init_error: watch::Sender<Option<Bytes>>,
    /// Set once the runtime has asked for its first invocation: initialization is over.
    initialized: watch::Sender<bool>,
}

impl std::fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeApi").finish_non_exhaustive()
    }
}

/// A running Runtime API server; dropping it stops the server.
#[derive(Debug)]
pub struct RuntimeApiServer {
    pub api: Arc<RuntimeApi>,
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RuntimeApi {
    fn new() -> Arc<RuntimeApi> {
        // Capacity 1: a runtime process runs one invocation at a time, and the pool never
        // dispatches to a process that is busy.
        let (sender, receiver) = mpsc::channel(1);
        Arc::new(RuntimeApi {
            sender,
            queue: tokio::sync::Mutex::new(receiver),
            current: Mutex::new(None),
            init_error: watch::channel(None).0,
            initialized: watch::channel(false).0,
        })
    }

    /// Binds a new server on `127.0.0.1` with an ephemeral port, open to any local process.
    pub async fn bind() -> std::io::Result<RuntimeApiServer> {
        RuntimeApi::bind_for(None).await
    }

    /// Binds a new server on `127.0.0.1`; with `owner`, only connections from sockets owned by
    /// that uid are served.
    pub async fn bind_for(owner: Option<u32>) -> std::io::Result<RuntimeApiServer> {
        let api = RuntimeApi::new();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = router(api.clone());
        let listener = OwnerListener { listener, owner };
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "runtime API server stopped");
            }
        });
        Ok(RuntimeApiServer { api, addr, task })
    }

    /// Hands `invocation` to the runtime's next (or pending) `/next` call. Fails only if an
    /// invocation is already waiting to be taken, which the pool never does.
    pub fn dispatch(&self, invocation: Invocation) -> Result<Dispatched, Invocation> {
        let (started_tx, started) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        self.sender
            .try_send(Dispatch {
                invocation,
                started: started_tx,
                done: done_tx,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d) => {
                    d.invocation
                }
            })?;
        Ok(Dispatched { started, done })
    }

    /// The document the runtime posted to `/init/error`, once it has.
    pub fn init_error(&self) -> watch::Receiver<Option<Bytes>> {
        self.init_error.subscribe()
    }

    /// Becomes true when the runtime first calls `/next`.
    pub fn initialized(&self) -> watch::Receiver<bool> {
        self.initialized.subscribe()
    }
}

/// A listener that drops connections not owned by `owner`.
struct OwnerListener {
    listener: tokio::net::TcpListener,
    owner: Option<u32>,
}

impl axum::serve::Listener for OwnerListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "runtime API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(owner) = self.owner else {
                return (stream, peer);
            };
            let local = match stream.local_addr() {
                Ok(a) => a,
                Err(_) => continue,
            };
            match socket_owner(peer, local) {
                Some(uid) if uid == owner => return (stream, peer),
                found => {
                    tracing::warn!(%peer, owner, found = ?found, "refused a Runtime API connection from another user");
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// The uid owning the local TCP socket `peer` connected to `local`, from `/proc/net/tcp{,6}`.
pub fn socket_owner(peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Option<u32> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        if let Some(uid) = find_owner(&text, peer, local) {
            return Some(uid);
        }
    }
    None
}

/// Parses `ADDR:PORT` as the kernel prints it: the address's bytes in memory order, in hex.
fn parse_proc_addr(s: &str) -> Option<std::net::SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip: std::net::IpAddr = match addr.len() {
        8 => std::net::Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.to_ne_bytes()).into(),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok()?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_ne_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            v6.to_ipv4_mapped()
                .map(std::net::IpAddr::from)
                .unwrap_or(v6.into())
        }
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

fn find_owner(table: &str, peer: std::net::SocketAddr, local: std::net::SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid …
        let (l, r, uid) = (cols.get(1)?, cols.get(2)?, cols.get(7)?);
        (parse_proc_addr(l)? == peer && parse_proc_addr(r)? == local)
            .then(|| uid.parse().ok())
            .flatten()
    })
}

fn router(api: Arc<RuntimeApi>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(|| async { runtime_error(StatusCode::NOT_FOUND, "NotFound", "Not found") })
        .with_state(api)
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({ "errorMessage": message, "errorType": error_type })),
    )
        .into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

/// A trace header in X-Ray's format, so runtimes that forward it find what they expect.
fn trace_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        &a[..24],
        &b[..16]
    )
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    api.initialized.send_replace(true);
    let dispatch = {
        let mut queue = api.queue.lock().await;
        queue.recv().await
    };
    // From here to the return there is no await point, so a dispatched invocation cannot be lost
    // to a cancelled request future.
    let Some(Dispatch {
        invocation,
        started,
        done,
    }) = dispatch
    else {
        return runtime_error(StatusCode::GONE, "Shutdown", "The sandbox is shutting down");
    };
    let deadline = Instant::now() + invocation.timeout;
    let deadline_ms = SystemTime::now()
        .checked_add(invocation.timeout)
        .unwrap_or_else(SystemTime::now)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    *api.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(InFlight {
        request_id: invocation.request_id.clone(),
        done,
    });
    let _ = started.send(deadline);

    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("content-type", "application/json");
    set("lambda-runtime-aws-request-id", &invocation.request_id);
    set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        &invocation.invoked_arn,
    );
    set("lambda-runtime-trace-id", &trace_id());
    if let Some(cc) = &invocation.client_context {
        set("lambda-runtime-client-context", cc);
    }
    let body = if invocation.payload.is_empty() {
        Bytes::from_static(b"{}")
    } else {
        invocation.payload
    };
    (StatusCode::OK, headers, body).into_response()
}

/// Reads a posted body of at most `limit` bytes; `None` when it is larger.
async fn read_body(body: Body, limit: usize) -> Result<Option<Bytes>, Response> {
    match axum::body::to_bytes(body, limit.saturating_add(1)).await {
        Ok(bytes) if bytes.len() > limit => Ok(None),
        Ok(bytes) => Ok(Some(bytes)),
        // `to_bytes` reports a body over the limit as an error too.
        Err(e) if is_length_limit(&e) => Ok(None),
        Err(_) => Err(runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Could not read the request body",
        )),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("length limit") {
            return true;
        }
        source = err.source();
    }
    false
}

/// Takes the in-flight invocation if `request_id` names it.
fn take_current(api: &RuntimeApi, request_id: &str) -> Option<InFlight> {
    let mut current = api.current.lock().unwrap_or_else(|e| e.into_inner());
    if current.as_ref().is_some_and(|c| c.request_id == request_id) {
        current.take()
    } else {
        None
    }
}

fn invalid_request_id() -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    Path(request_id): Path<String>,
    req: Request,
) -> Response {
    let body = match read_body(req.into_body(), MAX_RESPONSE_BYTES).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let Some(in_flight) = take_current(&api, &request_id) else {
        return invalid_request_id();
    };
    match body {
        Some(bytes) => {
            let _ = in_flight.done.send(RuntimeOutcome::Response(bytes));
            accepted()
        }
        None => {
            let _ = in_flight.done.send(RuntimeOutcome::ResponseTooLarge);
            runtime_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
            )
        }
    }
}

fn error_type_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The error document to return: what the runtime posted, or one built from the error type
/// header when the runtime posted nothing usable.
fn error_document(body: Option<Bytes>, error_type: Option<&str>) -> Bytes {
    match body {
        Some(b) if serde_json::from_slice::<serde_json::Value>(&b).is_ok() => b,
        _ => Bytes::from(
            json!({
                "errorMessage": "The runtime reported an error without details",
                "errorType": error_type.unwrap_or("Runtime.Unknown"),
            })
            .to_string(),
        ),
    }
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(request_id): Path<String>,
    req: Request,
) -> Response {
    let error_type = error_type_header(req.headers());
    let body = match read_body(req.into_body(), MAX_RESPONSE_BYTES).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    let Some(in_flight) = take_current(&api, &request_id) else {
        return invalid_request_id();
    };
    let payload = error_document(body, error_type.as_deref());
    let _ = in_flight.done.send(RuntimeOutcome::Error {
        payload,
        error_type,
    });
    accepted()
}

async fn init_error(State(api): State<Arc<RuntimeApi>>, req: Request) -> Response {
    let error_type = error_type_header(req.headers());
    let body = match read_body(req.into_body(), MAX_RESPONSE_BYTES).await {
        Ok(body) => body,
        Err(resp) => return resp,
    };
    api.init_error
        .send_replace(Some(error_document(body, error_type.as_deref())));
    accepted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_owner_of_a_socket_in_proc_net_tcp() {
        // Two lines as Linux prints them: 127.0.0.1:40000 → 127.0.0.1:8080 (uid 2000000001)
        // and the reverse direction (the server's side, uid 0).
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 2000000001        0 1 1 0000000000000000 20 4 30 10 -1\n\
   1: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1\n";
        let client: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let server: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(find_owner(table, client, server), Some(2_000_000_001));
        assert_eq!(find_owner(table, server, client), Some(0));
        let other: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(find_owner(table, other, server), None);
        let v6 = "  sl  local_address                         remote_address                        st\n\
   0: 0000000000000000FFFF00000100007F:9C40 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  1234 0 3\n";
        assert_eq!(find_owner(v6, client, server), Some(1234));
    }

    #[tokio::test]
    async fn a_connection_of_another_user_is_refused() {
        // This process owns its sockets: a server for another uid closes them unserved, one for
        // this uid answers.
        let me = rustix::process::geteuid().as_raw();
        let url = |addr: std::net::SocketAddr| format!("http://{addr}/2018-06-01/runtime/nope");
        let get = |url: String| async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("curl")
                    .args([
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        "--max-time",
                        "10",
                        &url,
                    ])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                    .unwrap_or_default()
            })
            .await
            .unwrap()
        };
        let mine = RuntimeApi::bind_for(Some(me)).await.unwrap();
        assert_eq!(get(url(mine.addr)).await, "404");
        let theirs = RuntimeApi::bind_for(Some(me.wrapping_add(1)))
            .await
            .unwrap();
        assert_eq!(
            get(url(theirs.addr)).await,
            "000",
            "connection closed without an answer"
        );
    }
}

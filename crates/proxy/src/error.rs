//! The proxy's typed failures and the one place they become HTTP responses.
//!
//! Every failure of the request path is a [`ProxyError`], created where it arises and carrying
//! what the response, the access log and a retry decision need: the [`Side`] at fault, whether
//! retrying on another target is safe, the status, Lattice's access-log `failureReason`.
//! [`respond`] is the only function that turns one into a response, so every status and body the
//! data plane generates can be read in one table.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use trellis_lambda_event::lattice::LambdaTargetError;

use crate::body::ResponseBody;

/// Who is at fault: the client (downstream), the target (upstream), or Trellis itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Downstream,
    Upstream,
    Internal,
}

/// How a client's request body failed. Classified here, once, from the error hyper's server
/// reports for the body; either way the client is at fault and gets 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFault {
    /// The body broke HTTP's framing: an invalid chunk size or chunk line.
    Malformed,
    /// The body ended before its end: the client closed or reset the connection or stream
    /// before sending all of it.
    BrokenOff,
}

impl BodyFault {
    pub(crate) fn of(error: &hyper::Error) -> BodyFault {
        // hyper's HTTP/1.1 body decoder reports bad framing as `InvalidData`; a body cut short
        // is `UnexpectedEof` (or a reset, or an HTTP/2 stream error).
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(cause) = source {
            if let Some(io) = cause.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::InvalidData
            {
                return BodyFault::Malformed;
            }
            source = cause.source();
        }
        BodyFault::BrokenOff
    }
}

impl std::fmt::Display for BodyFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BodyFault::Malformed => "is malformed (bad chunked framing)",
            BodyFault::BrokenOff => "ended before its end (the client closed or reset)",
        })
    }
}

/// Lattice's body for requests that name no served service (reference §3.3, §6.3).
pub const NON_EXISTENT_SERVICE: &str = "Non Existent Service";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No served service has the request's host name (Host/`:authority`, or the TLS server name).
    #[error("no served service for this host name")]
    UnknownService,
    /// The service has no listener on the connection's port speaking its protocol.
    #[error("the service has no {protocol} listener on port {port}")]
    NoListener { port: u16, protocol: &'static str },
    /// Over TLS, the Host/`:authority` names another served service than the TLS server name
    /// (a client reusing a connection for a name it does not belong to).
    #[error("the request's host names another service than the TLS server name")]
    Misdirected,
    /// The request has more than one `Host` field.
    #[error("the request has more than one Host field")]
    DuplicateHost,
    /// The request's target carries an authority (absolute-form HTTP/1.1, HTTP/2 `:authority`)
    /// that differs from its `Host` field.
    #[error("the request target's authority differs from its Host field")]
    AuthorityMismatch,
    /// The `Host` field or the target's authority is not `host[:port]` (user information,
    /// characters an authority cannot hold).
    #[error("the request's host is not a plain host[:port]")]
    InvalidHost,
    /// The path has no single reading (see `trellis_router::path`).
    #[error("ambiguous request path: {0}")]
    InvalidPath(trellis_router::path::PathError),
    /// More header fields, or more header bytes, than Lattice accepts.
    #[error(
        "request headers over the limit: {count} fields, {bytes} bytes (at most {max_count} and {max_bytes})"
    )]
    HeadersTooLarge {
        count: usize,
        bytes: usize,
        max_count: usize,
        max_bytes: usize,
    },
    /// The auth stage denied the request; `message` is the Lattice-format 403 body.
    #[error("{message}")]
    AccessDenied {
        message: String,
        layer: crate::auth::Layer,
        /// The authenticated caller who was denied (`None`: an unsigned request), for the
        /// access log's `resolvedUser`.
        caller: Option<std::sync::Arc<dyn crate::auth::Caller>>,
    },
    /// The connection's client network no longer admits it (its VPC's association was removed
    /// or its security groups changed since the connection was accepted; new connections are
    /// closed at accept instead).
    #[error("client network refused: {0}")]
    ClientNetwork(trellis_snapshot::clients::Refusal),
    /// A signed request to an `AWS_IAM` service or network whose signature or credentials do
    /// not authenticate anyone; `message` is the 403 body (`<code>: <message>`).
    #[error("{message}")]
    AuthenticationFailed { message: String },
    /// Every target group of the forward action has weight 0.
    #[error("every target group of the action has weight 0")]
    AllWeightsZero,
    /// The chosen target group has no registered (non-draining) target left to try.
    #[error("no target available in target group {target_group}")]
    NoTarget { target_group: String },
    /// The chosen group is a LAMBDA group and this proxy was given no function host.
    #[error("no function host to invoke LAMBDA targets with")]
    NoFunctionHost,
    /// A request to a LAMBDA group has a body over the 6 MB limit.
    #[error("the request body is larger than {limit} bytes")]
    RequestBodyTooLarge { limit: usize },
    /// The client's request body is malformed or broke off before its end. This wins over
    /// whatever the exchange with the target reported meanwhile: the target only saw the
    /// client's broken body.
    #[error("the client's request body {0}")]
    RequestBody(BodyFault),
    /// The client's request body made no progress for the idle timeout.
    #[error("the request body made no progress for {0:?}")]
    RequestBodyTimeout(Duration),
    /// A LAMBDA target gave no response of its own: the function failed, timed out, returned
    /// something malformed, or could not be invoked.
    #[error("function {function}: {error}")]
    Lambda {
        function: String,
        error: LambdaTargetError,
    },
    /// The route names a target group the snapshot does not have (a snapshot compiler bug).
    #[error("target group {0} is not in the snapshot")]
    UnknownTargetGroup(String),
    /// The picked target has no address to connect to (an INSTANCE or ALB target).
    #[error("target {target} has no address to connect to")]
    NoAddress { target: String },
    /// The TCP connection to the target failed (refused, unreachable, timed out).
    #[error("cannot connect to target {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The TLS handshake with an HTTPS target failed.
    #[error("TLS handshake with target {addr} failed: {source}")]
    Tls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The HTTP/1.1 or HTTP/2 handshake with the target failed, or the connection closed before
    /// any byte of the request was written.
    #[error("connection to target {addr} failed before the request was sent: {source}")]
    NotSent {
        addr: SocketAddr,
        source: hyper::Error,
    },
    /// The target sent no response head within the timeout while the request made no progress.
    #[error("target {addr} sent no response within {timeout:?}")]
    ResponseTimeout { addr: SocketAddr, timeout: Duration },
    /// The exchange with the target failed after the request (or part of it) was sent.
    #[error("exchange with target {addr} failed: {source}")]
    Upstream {
        addr: SocketAddr,
        source: hyper::Error,
    },
}

impl ProxyError {
    /// The failure to report for a request whose forwarding failed with `self`: the client's
    /// own body fault when its body broke (`fault`), else `self`.
    pub(crate) fn or_body_fault(self, fault: Option<BodyFault>) -> ProxyError {
        match fault {
            Some(fault) => ProxyError::RequestBody(fault),
            None => self,
        }
    }

    pub fn side(&self) -> Side {
        use ProxyError::*;
        match self {
            UnknownService
            | NoListener { .. }
            | Misdirected
            | DuplicateHost
            | AuthorityMismatch
            | InvalidHost
            | InvalidPath(_)
            | HeadersTooLarge { .. }
            | AccessDenied { .. }
            | AuthenticationFailed { .. }
            | ClientNetwork(_)
            | RequestBodyTooLarge { .. }
            | RequestBody(_)
            | RequestBodyTimeout(_) => Side::Downstream,
            AllWeightsZero
            | NoTarget { .. }
            | NoAddress { .. }
            | Connect { .. }
            | Tls { .. }
            | NotSent { .. }
            | ResponseTimeout { .. }
            | Upstream { .. } => Side::Upstream,
            Lambda { error, .. } if error.status() == StatusCode::INTERNAL_SERVER_ERROR => {
                Side::Internal
            }
            Lambda { error, .. } if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Side::Downstream
            }
            Lambda { .. } => Side::Upstream,
            NoFunctionHost | UnknownTargetGroup(_) => Side::Internal,
        }
    }

    /// Whether the request may be sent to another target: only when nothing of it reached the
    /// failed one, so a retry can never duplicate a request.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::NoAddress { .. }
                | ProxyError::Connect { .. }
                | ProxyError::Tls { .. }
                | ProxyError::NotSent { .. }
        )
    }

    /// The status of the generated response.
    ///
    /// Connection failures are 502 rather than the 500 the Lattice guide lists for them: 502 is
    /// what every other proxy answers and tells the client the target, not the proxy, failed.
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            HeadersTooLarge { .. }
            | RequestBody(_)
            | DuplicateHost
            | AuthorityMismatch
            | InvalidHost
            | InvalidPath(_) => StatusCode::BAD_REQUEST,
            RequestBodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            RequestBodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Lambda { error, .. } => error.status(),
            AccessDenied { .. } | AuthenticationFailed { .. } | ClientNetwork(_) => {
                StatusCode::FORBIDDEN
            }
            UnknownService | NoListener { .. } => StatusCode::NOT_FOUND,
            Misdirected => StatusCode::MISDIRECTED_REQUEST,
            UnknownTargetGroup(_) | NoFunctionHost => StatusCode::INTERNAL_SERVER_ERROR,
            NoAddress { .. } | Connect { .. } | Tls { .. } | NotSent { .. } | Upstream { .. } => {
                StatusCode::BAD_GATEWAY
            }
            AllWeightsZero | NoTarget { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ResponseTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Lattice's access-log `failureReason` for this failure.
    /// Whether this is a failure to reach a target (Lattice's `ConnectionErrorCount`): no
    /// connection, no TLS session, or a connection that failed before the request was sent.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            ProxyError::NoAddress { .. }
                | ProxyError::Connect { .. }
                | ProxyError::Tls { .. }
                | ProxyError::NotSent { .. }
        )
    }

    /// Whether this is a connect that timed out (Lattice's `ConnectionTimeoutCount`).
    pub fn is_connect_timeout(&self) -> bool {
        matches!(self, ProxyError::Connect { source, .. } if source.kind() == std::io::ErrorKind::TimedOut)
    }

    pub fn failure_reason(&self) -> &'static str {
        use ProxyError::*;
        match self {
            UnknownService
            | NoListener { .. }
            | Misdirected
            | DuplicateHost
            | AuthorityMismatch
            | InvalidHost
            | InvalidPath(_)
            | HeadersTooLarge { .. }
            | RequestBodyTooLarge { .. }
            | RequestBodyTimeout(_) => "ClientProtocolError",
            RequestBody(BodyFault::Malformed) => "ClientProtocolError",
            RequestBody(BodyFault::BrokenOff) => "ClientConnectionClosed",
            AccessDenied { .. } | AuthenticationFailed { .. } | ClientNetwork(_) => {
                "ClientAccessDenied"
            }
            AllWeightsZero
            | NoTarget { .. }
            | NoAddress { .. }
            | Connect { .. }
            | Tls { .. }
            | NotSent { .. } => "TargetConnectionError",
            ResponseTimeout { .. } => "TargetDataTimeout",
            Upstream { .. } => "TargetProtocolError",
            Lambda { error, .. } => lambda_failure_reason(error),
            NoFunctionHost | UnknownTargetGroup(_) => "InternalError",
        }
    }
}

/// The access-log `failureReason` of a LAMBDA target's failure: the function's own failures are
/// protocol errors of the target, an invocation that could not start is a connection error.
fn lambda_failure_reason(error: &LambdaTargetError) -> &'static str {
    match error {
        LambdaTargetError::RequestTooLarge(_) => "ClientProtocolError",
        LambdaTargetError::Timeout { .. } => "TargetDataTimeout",
        LambdaTargetError::FunctionError { .. }
        | LambdaTargetError::MalformedResponse(_)
        | LambdaTargetError::ResponseTooLarge(_) => "TargetProtocolError",
        LambdaTargetError::Invoke(_) if error.status() == StatusCode::INTERNAL_SERVER_ERROR => {
            "InternalError"
        }
        LambdaTargetError::Invoke(_) => "TargetConnectionError",
    }
}

/// The response for a failure: its status and a short plain-text body. This is the only place
/// generated error responses are made.
pub(crate) fn respond(error: &ProxyError) -> Response<ResponseBody> {
    use ProxyError::*;
    let body: Bytes = match error {
        UnknownService | NoListener { .. } => Bytes::from_static(NON_EXISTENT_SERVICE.as_bytes()),
        HeadersTooLarge { .. }
        | RequestBody(_)
        | DuplicateHost
        | AuthorityMismatch
        | InvalidHost
        | InvalidPath(_) => Bytes::from_static(b"Bad Request"),
        RequestBodyTimeout(_) => Bytes::from_static(b"Request Timeout"),
        RequestBodyTooLarge { .. } => Bytes::from_static(b"Payload Too Large"),
        Lambda { error, .. } => Bytes::from_static(
            error
                .status()
                .canonical_reason()
                .unwrap_or("Bad Gateway")
                .as_bytes(),
        ),
        Misdirected => Bytes::from_static(b"Misdirected Request"),
        AccessDenied { message, .. } | AuthenticationFailed { message } => {
            Bytes::from(message.clone())
        }
        ClientNetwork(refusal) => Bytes::from(format!("Access denied: {refusal}")),
        AllWeightsZero | NoTarget { .. } => Bytes::from_static(b"Service Unavailable"),
        UnknownTargetGroup(_) | NoFunctionHost => Bytes::from_static(b"Internal Server Error"),
        NoAddress { .. } | Connect { .. } | Tls { .. } | NotSent { .. } | Upstream { .. } => {
            Bytes::from_static(b"Bad Gateway")
        }
        ResponseTimeout { .. } => Bytes::from_static(b"Gateway Timeout"),
    };
    let mut response = Response::new(ResponseBody::text(body));
    *response.status_mut() = error.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The response to a gRPC client (`content-type: application/grpc…`) for `error`: a
/// trailers-only response (status 200, `grpc-status` and `grpc-message` in the head, no body), as
/// the gRPC protocol carries errors, with the code the gRPC spec maps the HTTP status to (403 →
/// `PERMISSION_DENIED`, 404 → `UNIMPLEMENTED`, 502/503/504 → `UNAVAILABLE`, …) and the text body
/// of [`respond`] as the message. A client that only understood HTTP statuses would see a 403
/// as an opaque stream reset.
pub(crate) fn respond_grpc(error: &ProxyError) -> Response<ResponseBody> {
    use ProxyError::*;
    let plain = respond(error);
    let code: u16 = match plain.status().as_u16() {
        400 => 13,             // INTERNAL
        401 => 16,             // UNAUTHENTICATED
        403 => 7,              // PERMISSION_DENIED
        404 => 12,             // UNIMPLEMENTED
        429 | 502..=504 => 14, // UNAVAILABLE
        _ => 2,                // UNKNOWN
    };
    let message = match error {
        AccessDenied { message, .. } | AuthenticationFailed { message } => message.clone(),
        other => {
            plain
                .status()
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
                + &format!(" ({})", other.failure_reason())
        }
    };
    let mut response = Response::new(ResponseBody::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code));
    // gRPC's percent-encoding: every byte outside printable ASCII, and `%` itself.
    const GRPC_MESSAGE: &percent_encoding::AsciiSet =
        &percent_encoding::CONTROLS.add(b'%').add(0x7f);
    let encoded = percent_encoding::utf8_percent_encode(&message, GRPC_MESSAGE).to_string();
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        headers.insert("grpc-message", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_clients_get_trailers_only_errors() {
        let denied = ProxyError::AccessDenied {
            message: "AccessDeniedException: User: anonymous … 100%".into(),
            layer: crate::auth::Layer::Service,
            caller: None,
        };
        let r = respond_grpc(&denied);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["grpc-status"], "7");
        assert_eq!(
            r.headers()["grpc-message"],
            "AccessDeniedException: User: anonymous %E2%80%A6 100%25"
        );
        let r = respond_grpc(&ProxyError::UnknownService);
        assert_eq!(r.headers()["grpc-status"], "12");
        let r = respond_grpc(&ProxyError::AllWeightsZero);
        assert_eq!(r.headers()["grpc-status"], "14");
    }

    fn io_error() -> std::io::Error {
        std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
    }

    #[test]
    fn body_faults_are_the_clients() {
        let cases = [
            (BodyFault::Malformed, "ClientProtocolError"),
            (BodyFault::BrokenOff, "ClientConnectionClosed"),
        ];
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for (fault, reason) in cases {
            let error = ProxyError::ResponseTimeout {
                addr,
                timeout: Duration::from_secs(1),
            }
            .or_body_fault(Some(fault));
            assert_eq!(error.failure_reason(), reason, "{fault:?}");
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{fault:?}");
            assert_eq!(error.side(), Side::Downstream, "{fault:?}");
        }
        let untouched = ProxyError::NoFunctionHost.or_body_fault(None);
        assert!(matches!(untouched, ProxyError::NoFunctionHost));
    }

    #[test]
    fn status_side_and_retry_table() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let cases: Vec<(ProxyError, u16, Side, bool)> = vec![
            (ProxyError::UnknownService, 404, Side::Downstream, false),
            (
                ProxyError::NoListener {
                    port: 80,
                    protocol: "HTTP",
                },
                404,
                Side::Downstream,
                false,
            ),
            (ProxyError::Misdirected, 421, Side::Downstream, false),
            (ProxyError::DuplicateHost, 400, Side::Downstream, false),
            (ProxyError::AuthorityMismatch, 400, Side::Downstream, false),
            (ProxyError::InvalidHost, 400, Side::Downstream, false),
            (
                ProxyError::InvalidPath(trellis_router::path::PathError::EncodedSeparator),
                400,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::HeadersTooLarge {
                    count: 101,
                    bytes: 10,
                    max_count: 100,
                    max_bytes: 61440,
                },
                400,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::AccessDenied {
                    message: "AccessDeniedException: …".into(),
                    layer: crate::auth::Layer::Service,
                    caller: None,
                },
                403,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::AuthenticationFailed {
                    message: "InvalidSignatureException: Signed payloads are not supported".into(),
                },
                403,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::NoTarget {
                    target_group: "tg-1".into(),
                },
                503,
                Side::Upstream,
                false,
            ),
            (ProxyError::AllWeightsZero, 503, Side::Upstream, false),
            (ProxyError::NoFunctionHost, 500, Side::Internal, false),
            (
                ProxyError::RequestBodyTooLarge { limit: 6 },
                413,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::RequestBodyTimeout(Duration::from_secs(1)),
                408,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::RequestBody(BodyFault::Malformed),
                400,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::RequestBody(BodyFault::BrokenOff),
                400,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::Lambda {
                    function: "f".into(),
                    error: LambdaTargetError::MalformedResponse("not JSON".into()),
                },
                502,
                Side::Upstream,
                false,
            ),
            (
                ProxyError::Lambda {
                    function: "f".into(),
                    error: LambdaTargetError::Timeout {
                        message: "Task timed out after 3.00 seconds".into(),
                    },
                },
                504,
                Side::Upstream,
                false,
            ),
            (
                ProxyError::Lambda {
                    function: "f".into(),
                    error: LambdaTargetError::RequestTooLarge("big".into()),
                },
                413,
                Side::Downstream,
                false,
            ),
            (
                ProxyError::Lambda {
                    function: "f".into(),
                    error: LambdaTargetError::Invoke(trellis_lambda_event::InvokeError::Internal(
                        "x".into(),
                    )),
                },
                500,
                Side::Internal,
                false,
            ),
            (
                ProxyError::UnknownTargetGroup("tg-1".into()),
                500,
                Side::Internal,
                false,
            ),
            (
                ProxyError::NoAddress {
                    target: "i-1".into(),
                },
                502,
                Side::Upstream,
                true,
            ),
            (
                ProxyError::Connect {
                    addr,
                    source: io_error(),
                },
                502,
                Side::Upstream,
                true,
            ),
            (
                ProxyError::Tls {
                    addr,
                    source: io_error(),
                },
                502,
                Side::Upstream,
                true,
            ),
            (
                ProxyError::ResponseTimeout {
                    addr,
                    timeout: Duration::from_secs(1),
                },
                504,
                Side::Upstream,
                false,
            ),
        ];
        for (error, status, side, retryable) in cases {
            assert_eq!(error.status().as_u16(), status, "{error}");
            assert_eq!(error.side(), side, "{error}");
            assert_eq!(error.retryable(), retryable, "{error}");
            let response = respond(&error);
            assert_eq!(response.status().as_u16(), status, "{error}");
            assert!(
                response.headers()[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/plain"),
                "{error}"
            );
        }
    }
}

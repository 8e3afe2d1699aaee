//! The call the data plane makes to run a LAMBDA target's function, and what it returns: the
//! [`FunctionInvoker`] trait, the invocation's outcome and its errors (each one Lambda error).
//! `trellis-functions` implements the trait; the proxy sees only this call, so the request path
//! does not depend on the host's internals (its store, its processes, its API).

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

/// Lambda's limit for a synchronous invocation's request payload.
pub const MAX_SYNC_PAYLOAD: usize = 6_291_456;

/// The future [`FunctionInvoker::invoke`] returns.
pub type InvokeFuture<'a> =
    Pin<Box<dyn Future<Output = Result<InvokeOutcome, InvokeError>> + Send + 'a>>;

/// What invokes the functions of LAMBDA target groups: `function` is the registered target, a
/// function ARN (unqualified, or qualified with a version or alias); `event` the Lattice event.
/// The invocation is synchronous (`RequestResponse`).
///
/// `trellis_functions::FunctionHost` is the implementation `trellis serve` uses; tests use fakes.
pub trait FunctionInvoker: Send + Sync + 'static {
    fn invoke<'a>(&'a self, function: &'a str, event: Bytes) -> InvokeFuture<'a>;
}

/// The result of an invocation that ran (or was accepted to run).
#[derive(Clone, Debug, PartialEq)]
pub struct InvokeOutcome {
    /// 200 (`RequestResponse`), 202 (`Event`) or 204 (`DryRun`).
    pub status: u16,
    /// The function's result, or its error document when `function_error` is set.
    pub payload: Bytes,
    /// `Unhandled` when the function failed (an error, a crash, a timeout).
    pub function_error: Option<String>,
    /// Base64 of the end of the invocation's log, as in `X-Amz-Log-Result` (with `log_tail`).
    pub log_tail: Option<String>,
    /// The version that ran (`$LATEST` or a number).
    pub executed_version: Option<String>,
}

/// Why an invocation did not run. Each maps to one Lambda error (see [`InvokeError::code`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvokeError {
    /// The function name does not parse (`ValidationException`).
    #[error("{0}")]
    InvalidName(String),
    /// `InvalidParameterValueException`.
    #[error("{0}")]
    InvalidParameter(String),
    /// `ResourceNotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// The payload is over Lambda's limit (`RequestTooLargeException`).
    #[error("{0}")]
    RequestTooLarge(String),
    /// The payload is not JSON (`InvalidRequestContentException`).
    #[error("{0}")]
    InvalidRequestContent(String),
    /// The function's concurrency and queue are full (`TooManyRequestsException`).
    #[error("Rate Exceeded.")]
    TooManyRequests,
    /// The remote endpoint answered with an error, passed on as it is.
    #[error("{error_type}: {message}")]
    Remote {
        status: u16,
        error_type: String,
        message: String,
        body: Bytes,
    },
    /// The remote endpoint could not be reached (`ServiceException`, 502).
    #[error("{0}")]
    Unavailable(String),
    /// Something on this side failed (`ServiceException`, 500).
    #[error("{0}")]
    Internal(String),
    /// This host cannot isolate runtime processes (`InvalidRuntimeException`, 502).
    #[error("{0}")]
    IsolationUnavailable(String),
}

impl InvokeError {
    /// The Lambda error code.
    pub fn code(&self) -> &str {
        match self {
            InvokeError::InvalidName(_) => "ValidationException",
            InvokeError::InvalidParameter(_) => "InvalidParameterValueException",
            InvokeError::NotFound(_) => "ResourceNotFoundException",
            InvokeError::RequestTooLarge(_) => "RequestTooLargeException",
            InvokeError::InvalidRequestContent(_) => "InvalidRequestContentException",
            InvokeError::TooManyRequests => "TooManyRequestsException",
            InvokeError::Remote { error_type, .. } => error_type,
            InvokeError::Unavailable(_) | InvokeError::Internal(_) => "ServiceException",
            InvokeError::IsolationUnavailable(_) => "InvalidRuntimeException",
        }
    }

    /// The HTTP status Lambda answers with.
    pub fn status(&self) -> u16 {
        match self {
            InvokeError::InvalidName(_)
            | InvokeError::InvalidParameter(_)
            | InvokeError::InvalidRequestContent(_) => 400,
            InvokeError::NotFound(_) => 404,
            InvokeError::RequestTooLarge(_) => 413,
            InvokeError::TooManyRequests => 429,
            InvokeError::Remote { status, .. } => *status,
            InvokeError::Unavailable(_) | InvokeError::IsolationUnavailable(_) => 502,
            InvokeError::Internal(_) => 500,
        }
    }
}

//! [`AwsError`]: an error as every protocol renders it. Each service keeps its own error enum,
//! classified once, and converts it into this; the codecs turn it into the protocol's shape.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

/// Who is at fault: `Sender` errors are the client's (4xx), `Receiver` errors the server's. The
/// query protocols write it as `<Type>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Sender,
    Receiver,
}

/// The code of [`AwsError::unavailable`]. AWS's JSON services model it under this name (CloudWatch
/// Logs, among others); SDKs retry it as a transient error. Every service Trellis serves may
/// answer it, whatever the operation declares.
pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailableException";

/// An error response before a protocol shapes it.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsError {
    /// The exception's shape name, also the error code (`ValidationException`).
    pub code: String,
    pub status: StatusCode,
    pub message: String,
    /// The name of the message member in the JSON body. Most models say `message`; some Lambda
    /// exceptions spell it `Message`.
    pub message_member: &'static str,
    /// The exception's other members (`reason`, `fieldList`, `resourceId`, …), for JSON bodies.
    pub members: Map<String, Value>,
    /// Headers the error carries (`Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Set for internal errors: the real cause, logged with the request ID, never sent.
    pub internal_detail: Option<String>,
}

impl AwsError {
    pub fn new(
        code: impl Into<String>,
        status: StatusCode,
        message: impl Into<String>,
    ) -> AwsError {
        AwsError {
            code: code.into(),
            status,
            message: message.into(),
            message_member: "message",
            members: Map::new(),
            headers: Vec::new(),
            internal_detail: None,
        }
    }

    /// An internal failure: clients get `code` with a generic message naming the request ID;
    /// `detail` goes only to the server's log.
    pub fn internal(code: impl Into<String>, detail: impl Into<String>) -> AwsError {
        let mut e = AwsError::new(
            code,
            StatusCode::INTERNAL_SERVER_ERROR,
            "An internal error occurred",
        );
        e.internal_detail = Some(detail.into());
        e
    }

    /// The server cannot answer now but may later — its store is unreachable, busy or held by
    /// a stuck node: [`SERVICE_UNAVAILABLE`] with HTTP 503, in every service and protocol.
    /// Nothing was changed. Clients see a fixed message with the request ID; `detail` goes only
    /// to the log.
    pub fn unavailable(detail: impl Into<String>) -> AwsError {
        AwsError::unavailable_with(
            "The service is temporarily unavailable: its database cannot be reached or did not \
             answer in time. Nothing was changed; retry the request.",
            detail,
        )
    }

    /// As [`AwsError::unavailable`] for a write whose `COMMIT` was cut off: it may or may not
    /// have been applied. A retry with the same `clientToken` (where the operation takes one)
    /// is answered from the first attempt if that one was applied.
    pub fn outcome_unknown(detail: impl Into<String>) -> AwsError {
        AwsError::unavailable_with(
            "The service is temporarily unavailable: the connection to its database failed while \
             this write was being committed, so it may or may not have been applied. Retry with \
             the same client token, or read the resource to find out.",
            detail,
        )
    }

    fn unavailable_with(message: &str, detail: impl Into<String>) -> AwsError {
        let mut e = AwsError::new(
            SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE,
            message,
        );
        e.internal_detail = Some(detail.into());
        e
    }

    pub fn with_member(mut self, name: &str, value: impl Into<Value>) -> AwsError {
        self.members.insert(name.to_string(), value.into());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> AwsError {
        self.headers.push((name, value));
        self
    }

    pub fn with_message_member(mut self, member: &'static str) -> AwsError {
        self.message_member = member;
        self
    }

    pub fn fault(&self) -> Fault {
        if self.status.is_server_error() {
            Fault::Receiver
        } else {
            Fault::Sender
        }
    }

    /// The message clients see: an internal error's names the request so that an operator can
    /// find the logged cause.
    pub fn public_message(&self, request_id: &str) -> String {
        if self.internal_detail.is_some() {
            format!("{} (request ID {request_id})", self.message)
        } else {
            self.message.clone()
        }
    }
}

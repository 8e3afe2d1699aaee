//! Lambda API errors in Lambda's rest-json shape: the code in `x-amzn-ErrorType`, a JSON body
//! with `Type` (`User` or `Service`) and the message member as the model spells it (`Message`
//! for some exceptions, `message` for others), so botocore raises the modelled exception.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;
use trellis_store::StoreError;
use trellis_wire::AwsError;

use crate::config::ConfigError;
use crate::host::InvokeError;
use crate::names::NameError;

#[derive(Debug, Clone, PartialEq)]
pub enum LambdaError {
    /// A member outside the model's constraints (`ValidationException`, 400).
    Validation(String),
    InvalidParameter(String),
    InvalidRequestContent(String),
    NotFound(String),
    Conflict(String),
    PreconditionFailed(String),
    /// An `Invoke` payload over the limit (`RequestTooLargeException`, 413).
    RequestTooLarge(String),
    /// Any other request body over the limit (`RequestEntityTooLargeException`, 413).
    RequestEntityTooLarge(String),
    TooManyRequests,
    Service(String),
    /// The function's runtime cannot run here (`InvalidRuntimeException`, 502): this host
    /// cannot isolate runtime processes.
    InvalidRuntime(String),
    /// The store is unavailable (HTTP 503, [`AwsError::unavailable`]).
    Unavailable(Box<AwsError>),
    /// An error from the remote Lambda endpoint, passed on unchanged.
    Remote {
        status: u16,
        error_type: String,
        body: Bytes,
    },
}

pub type LambdaResult<T> = Result<T, LambdaError>;

impl LambdaError {
    pub fn code(&self) -> &str {
        match self {
            LambdaError::Validation(_) => "ValidationException",
            LambdaError::InvalidParameter(_) => "InvalidParameterValueException",
            LambdaError::InvalidRequestContent(_) => "InvalidRequestContentException",
            LambdaError::NotFound(_) => "ResourceNotFoundException",
            LambdaError::Conflict(_) => "ResourceConflictException",
            LambdaError::PreconditionFailed(_) => "PreconditionFailedException",
            LambdaError::RequestTooLarge(_) => "RequestTooLargeException",
            LambdaError::RequestEntityTooLarge(_) => "RequestEntityTooLargeException",
            LambdaError::TooManyRequests => "TooManyRequestsException",
            LambdaError::Service(_) => "ServiceException",
            LambdaError::InvalidRuntime(_) => "InvalidRuntimeException",
            LambdaError::Unavailable(_) => trellis_wire::SERVICE_UNAVAILABLE,
            LambdaError::Remote { error_type, .. } => error_type,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            LambdaError::Validation(_)
            | LambdaError::InvalidParameter(_)
            | LambdaError::InvalidRequestContent(_) => StatusCode::BAD_REQUEST,
            LambdaError::NotFound(_) => StatusCode::NOT_FOUND,
            LambdaError::Conflict(_) => StatusCode::CONFLICT,
            LambdaError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            LambdaError::RequestTooLarge(_) | LambdaError::RequestEntityTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            LambdaError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            LambdaError::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
            LambdaError::InvalidRuntime(_) => StatusCode::BAD_GATEWAY,
            LambdaError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            LambdaError::Remote { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        }
    }

    fn message(&self) -> &str {
        match self {
            LambdaError::Validation(m)
            | LambdaError::InvalidParameter(m)
            | LambdaError::InvalidRequestContent(m)
            | LambdaError::NotFound(m)
            | LambdaError::Conflict(m)
            | LambdaError::PreconditionFailed(m)
            | LambdaError::RequestTooLarge(m)
            | LambdaError::RequestEntityTooLarge(m)
            | LambdaError::Service(m)
            | LambdaError::InvalidRuntime(m) => m,
            LambdaError::TooManyRequests => "Rate Exceeded.",
            LambdaError::Unavailable(e) => &e.message,
            LambdaError::Remote { .. } => "",
        }
    }

    /// The body members: `Type` and the message under the member name the model uses.
    pub fn body(&self) -> serde_json::Value {
        let kind = if self.status().is_server_error() {
            "Service"
        } else {
            "User"
        };
        // The exceptions whose model spells the member `Message`.
        let member = match self {
            LambdaError::NotFound(_) | LambdaError::Service(_) => "Message",
            _ => "message",
        };
        let mut body = json!({ "Type": kind });
        body[member] = json!(self.message());
        if let LambdaError::TooManyRequests = self {
            body["Reason"] = json!("ReservedFunctionConcurrentInvocationLimitExceeded");
        }
        body
    }
}

impl From<LambdaError> for AwsError {
    fn from(e: LambdaError) -> AwsError {
        if let LambdaError::Unavailable(err) = e {
            return (*err).with_member("Type", "Service");
        }
        if let LambdaError::Service(detail) = &e {
            return AwsError::internal("ServiceException", detail.clone())
                .with_message_member("Message")
                .with_member("Type", "Service");
        }
        let mut err = AwsError::new(e.code(), e.status(), e.message());
        if let serde_json::Value::Object(members) = e.body() {
            for (k, v) in members {
                if k == "message" || k == "Message" {
                    err.message_member = if k == "Message" { "Message" } else { "message" };
                } else {
                    err.members.insert(k, v);
                }
            }
        }
        if let LambdaError::TooManyRequests = e {
            err = err.with_header(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            );
        }
        err
    }
}

impl IntoResponse for LambdaError {
    /// Rendered by the front door once the request ID is known; an error from a remote Lambda
    /// endpoint is passed on as it came.
    fn into_response(self) -> Response {
        if let LambdaError::Remote {
            error_type, body, ..
        } = &self
        {
            let mut resp = (self.status(), body.clone()).into_response();
            if let Ok(v) = HeaderValue::from_str(error_type) {
                resp.headers_mut().insert("x-amzn-ErrorType", v);
            }
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            return resp;
        }
        trellis_wire::deferred(&crate::api::LAMBDA, self.into())
    }
}

impl From<StoreError> for LambdaError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => LambdaError::Conflict(format!(
                "The operation cannot be performed at this time: {m}"
            )),
            StoreError::NotFound => LambdaError::NotFound("Resource not found".into()),
            StoreError::Backend(m) => LambdaError::Service(format!("store: {m}")),
            StoreError::Unavailable(m) => {
                LambdaError::Unavailable(Box::new(AwsError::unavailable(m)))
            }
            StoreError::CommitUnknown(m) => {
                LambdaError::Unavailable(Box::new(AwsError::outcome_unknown(m)))
            }
        }
    }
}

impl From<NameError> for LambdaError {
    fn from(e: NameError) -> Self {
        LambdaError::Validation(e.to_string())
    }
}

impl From<ConfigError> for LambdaError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Validation(m) => LambdaError::Validation(m),
            ConfigError::InvalidParameter(m) => LambdaError::InvalidParameter(m),
        }
    }
}

impl From<InvokeError> for LambdaError {
    fn from(e: InvokeError) -> Self {
        match e {
            InvokeError::InvalidName(m) => LambdaError::Validation(m),
            InvokeError::InvalidParameter(m) => LambdaError::InvalidParameter(m),
            InvokeError::NotFound(m) => LambdaError::NotFound(m),
            InvokeError::RequestTooLarge(m) => LambdaError::RequestTooLarge(m),
            InvokeError::InvalidRequestContent(m) => LambdaError::InvalidRequestContent(m),
            InvokeError::TooManyRequests => LambdaError::TooManyRequests,
            InvokeError::Remote {
                status,
                error_type,
                body,
                ..
            } => LambdaError::Remote {
                status,
                error_type,
                body,
            },
            InvokeError::Unavailable(m) | InvokeError::Internal(m) => LambdaError::Service(m),
            InvokeError::IsolationUnavailable(m) => LambdaError::InvalidRuntime(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_model() {
        let cases = [
            (
                LambdaError::NotFound("Function not found: x".into()),
                404,
                "ResourceNotFoundException",
                json!({"Type": "User", "Message": "Function not found: x"}),
            ),
            (
                LambdaError::InvalidParameter("bad".into()),
                400,
                "InvalidParameterValueException",
                json!({"Type": "User", "message": "bad"}),
            ),
            (
                LambdaError::Conflict("exists".into()),
                409,
                "ResourceConflictException",
                json!({"Type": "User", "message": "exists"}),
            ),
            (
                LambdaError::RequestTooLarge("big".into()),
                413,
                "RequestTooLargeException",
                json!({"Type": "User", "message": "big"}),
            ),
            (
                LambdaError::TooManyRequests,
                429,
                "TooManyRequestsException",
                json!({"Type": "User", "message": "Rate Exceeded.", "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"}),
            ),
            (
                LambdaError::Service("boom".into()),
                500,
                "ServiceException",
                json!({"Type": "Service", "Message": "boom"}),
            ),
        ];
        for (error, status, code, body) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.code(), code);
            assert_eq!(error.body(), body);
        }
    }
}

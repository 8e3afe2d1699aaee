//! The one place Lattice API failures are classified: every failure is an [`ApiError`], which
//! becomes an [`AwsError`] (code, status, message and the exception's members) that the front
//! door renders in the rest-json error shape, so that botocore and the SDKs raise the modelled
//! exception class. Internal errors reach clients only as a generic message with the request ID.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use trellis_model::{ResourceKind, ValidationError};
use trellis_store::StoreError;
use trellis_wire::AwsError;

/// Quota codes are opaque to clients; Trellis names them after the quota (docs/decisions.md).
pub const SERVICE_CODE: &str = "vpc-lattice";

#[derive(Debug)]
pub enum ApiError {
    Validation(ValidationError),
    NotFound {
        message: String,
        resource_id: String,
        resource_type: String,
    },
    Conflict {
        message: String,
        resource_id: String,
        resource_type: String,
    },
    QuotaExceeded {
        message: String,
        resource_id: Option<String>,
        resource_type: String,
        quota_code: String,
    },
    AccessDenied(String),
    /// SigV4 and other authentication failures: (AWS error code, HTTP status, message).
    Auth {
        code: &'static str,
        status: u16,
        message: String,
    },
    Internal(String),
    /// The store is unavailable or a write's outcome is unknown: already in its wire form
    /// ([`AwsError::unavailable`], [`AwsError::outcome_unknown`]), the same in every service.
    Unavailable(Box<AwsError>),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn not_found(kind: ResourceKind, identifier: &str) -> ApiError {
        ApiError::NotFound {
            message: format!("{} not found: {identifier}", human(kind)),
            resource_id: identifier.to_string(),
            resource_type: kind.error_type().to_string(),
        }
    }

    pub fn conflict(kind: ResourceKind, resource_id: &str, message: impl Into<String>) -> ApiError {
        ApiError::Conflict {
            message: message.into(),
            resource_id: resource_id.to_string(),
            resource_type: kind.error_type().to_string(),
        }
    }

    /// `quota_code` is a stable name for the quota, `limit` its value.
    pub fn quota(
        kind: ResourceKind,
        resource_id: Option<&str>,
        quota_code: &str,
        what: &str,
        limit: u64,
    ) -> ApiError {
        ApiError::QuotaExceeded {
            message: format!("Service quota exceeded: at most {limit} {what}"),
            resource_id: resource_id.map(str::to_string),
            resource_type: kind.error_type().to_string(),
            quota_code: quota_code.to_string(),
        }
    }

    pub fn validation_field(name: &str, message: impl Into<String>) -> ApiError {
        ApiError::Validation(ValidationError::field(name, message))
    }

    pub fn validation_other(message: impl Into<String>) -> ApiError {
        ApiError::Validation(ValidationError::other(message))
    }

    /// The AWS error code, also the exception's shape name.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "ValidationException",
            ApiError::NotFound { .. } => "ResourceNotFoundException",
            ApiError::Conflict { .. } => "ConflictException",
            ApiError::QuotaExceeded { .. } => "ServiceQuotaExceededException",
            ApiError::AccessDenied(_) => "AccessDeniedException",
            ApiError::Auth { code, .. } => code,
            ApiError::Internal(_) => "InternalServerException",
            ApiError::Unavailable(_) => trellis_wire::SERVICE_UNAVAILABLE,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            // Lattice models ServiceQuotaExceededException with HTTP 402, and clients expect it.
            ApiError::QuotaExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::AccessDenied(_) => StatusCode::FORBIDDEN,
            ApiError::Auth { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::FORBIDDEN)
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            ApiError::Validation(v) => {
                let mut body = json!({ "message": v.message, "reason": v.reason });
                if !v.fields.is_empty() {
                    body["fieldList"] = v
                        .fields
                        .iter()
                        .map(|f| json!({ "name": f.name, "message": f.message }))
                        .collect();
                }
                body
            }
            ApiError::NotFound {
                message,
                resource_id,
                resource_type,
            }
            | ApiError::Conflict {
                message,
                resource_id,
                resource_type,
            } => {
                json!({ "message": message, "resourceId": resource_id, "resourceType": resource_type })
            }
            ApiError::QuotaExceeded {
                message,
                resource_id,
                resource_type,
                quota_code,
            } => {
                let mut body = json!({
                    "message": message,
                    "resourceType": resource_type,
                    "serviceCode": SERVICE_CODE,
                    "quotaCode": quota_code,
                });
                if let Some(id) = resource_id {
                    body["resourceId"] = json!(id);
                }
                body
            }
            ApiError::Unavailable(e) => json!({ "message": e.message }),
            ApiError::AccessDenied(m)
            | ApiError::Internal(m)
            | ApiError::Auth { message: m, .. } => {
                json!({ "message": m })
            }
        }
    }
}

/// "service network", "target group", … for messages.
pub fn human(kind: ResourceKind) -> String {
    kind.error_type().replace('_', " ").to_lowercase()
}

/// `(failureCode, failureMessage)` of a batch item that failed with `e`. Lattice does not
/// document failure codes; Trellis uses the name of the exception the single-item operation
/// would have raised: `ValidationException` (default rule, rule repeated in the batch, action
/// unsuitable for the listener, target not valid for the group), `ResourceNotFoundException`
/// (unknown rule or target group, target not registered), `ConflictException` (priority taken
/// after the batch, target group of another service, second LAMBDA/ALB target) and
/// `ServiceQuotaExceededException` (target groups per service).
/// An internal error's cause is logged, never answered (as for whole requests).
pub(crate) fn failure_of(e: &ApiError) -> (String, String) {
    if let ApiError::Internal(detail) = e {
        tracing::error!(detail = %detail, "internal error in one item of a batch");
        return (
            e.code().to_string(),
            "An internal error occurred".to_string(),
        );
    }
    let msg = e
        .body()
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (e.code().to_string(), msg)
}

impl From<ValidationError> for ApiError {
    fn from(v: ValidationError) -> ApiError {
        ApiError::Validation(v)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        // Handlers check uniqueness and existence themselves and answer with the resource's own
        // error; reaching here means a race lost at commit time or a backend failure.
        match e {
            StoreError::Conflict(what) => ApiError::Conflict {
                message: format!("The request conflicts with the current state: {what}"),
                resource_id: String::new(),
                resource_type: String::new(),
            },
            StoreError::NotFound => ApiError::Internal("record vanished during the request".into()),
            StoreError::Backend(m) => ApiError::Internal(format!("store failure: {m}")),
            StoreError::Unavailable(m) => ApiError::Unavailable(Box::new(AwsError::unavailable(m))),
            StoreError::CommitUnknown(m) => {
                ApiError::Unavailable(Box::new(AwsError::outcome_unknown(m)))
            }
        }
    }
}

impl From<ApiError> for AwsError {
    fn from(e: ApiError) -> AwsError {
        match e {
            ApiError::Internal(detail) => {
                return AwsError::internal("InternalServerException", detail);
            }
            ApiError::Unavailable(err) => return *err,
            _ => {}
        }
        let mut err = AwsError::new(e.code(), e.status(), String::new());
        if let Value::Object(members) = e.body() {
            for (k, v) in members {
                if k == "message" {
                    err.message = v.as_str().unwrap_or_default().to_string();
                } else {
                    err.members.insert(k, v);
                }
            }
        }
        err
    }
}

impl IntoResponse for ApiError {
    /// Rendered by the front door once the request ID is known ([`trellis_wire::deferred`]).
    fn into_response(self) -> Response {
        trellis_wire::deferred(&crate::operations::LATTICE, self.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_causes_never_reach_clients() {
        let e = ApiError::Internal("store failure: disk /var/lib/x is full".into());
        let (code, message) = failure_of(&e);
        assert_eq!(code, "InternalServerException");
        assert!(!message.contains("disk"), "{message}");
        let aws: AwsError = e.into();
        assert_eq!(aws.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!aws.public_message("req-1").contains("disk"));
        assert!(aws.public_message("req-1").contains("req-1"));
        assert!(
            aws.internal_detail.unwrap().contains("disk"),
            "the cause is kept for the log"
        );
    }

    /// An unavailable store is 503 ServiceUnavailableException whose message says to retry and
    /// names the request, not the cause; a cut-off commit says the write may have been applied.
    #[test]
    fn an_unavailable_store_is_a_503_that_keeps_its_cause_in_the_log() {
        let aws: AwsError = ApiError::from(StoreError::Unavailable(
            "pool timed out at db.internal".into(),
        ))
        .into();
        assert_eq!(aws.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(aws.code, trellis_wire::SERVICE_UNAVAILABLE);
        let public = aws.public_message("req-1");
        assert!(
            public.contains("retry") && public.contains("req-1"),
            "{public}"
        );
        assert!(!public.contains("db.internal"), "{public}");
        let aws: AwsError = ApiError::from(StoreError::CommitUnknown("eof".into())).into();
        assert_eq!(aws.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            aws.message.contains("may or may not have been applied"),
            "{}",
            aws.message
        );
    }

    #[test]
    fn client_errors_keep_their_members() {
        let e = ApiError::Validation(ValidationError::field("name", "Member must have length 3"));
        let aws: AwsError = e.into();
        assert_eq!(aws.code, "ValidationException");
        assert_eq!(aws.members["reason"], "fieldValidationFailed");
        assert_eq!(aws.members["fieldList"][0]["name"], "name");
        let aws: AwsError = ApiError::not_found(ResourceKind::Service, "svc-1").into();
        assert_eq!(
            (aws.status, aws.members["resourceId"].as_str()),
            (StatusCode::NOT_FOUND, Some("svc-1"))
        );
    }
}

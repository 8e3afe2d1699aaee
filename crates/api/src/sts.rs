//! STS (`sts/2011-06-15`, awsQuery): GetCallerIdentity, which tells a caller who the gate
//! authenticated it as — root (`arn:aws:iam::<account>:root`, user ID the account ID) or an IAM
//! user. AWS never denies it, and neither does [`crate::authorize`].

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use trellis_wire::{AwsError, Call, Operation, Protocol, Service, ServiceErrors};

use crate::AppState;
use crate::identity::{Caller, root_arn};

/// STS as the front door knows it.
pub static STS: Service = Service {
    id: "STS",
    signing_name: "sts",
    endpoint_prefix: "sts",
    api_version: "2011-06-15",
    protocol: Protocol::AwsQuery,
    target_prefix: None,
    xml_namespace: Some("https://sts.amazonaws.com/doc/2011-06-15/"),
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            AwsError::new(
                "InvalidAction",
                StatusCode::BAD_REQUEST,
                format!(
                    "Trellis does not implement the STS operation {what}: it serves GetCallerIdentity"
                ),
            )
        },
        bad_input: |m| AwsError::new("ValidationError", StatusCode::BAD_REQUEST, m),
        internal_code: "InternalFailure",
        throttling_code: "Throttling",
        too_large: |cap| {
            AwsError::new(
                "ValidationError",
                StatusCode::BAD_REQUEST,
                format!("Request body exceeds {cap} bytes"),
            )
        },
        common: &["AccessDenied"],
    },
};

/// Every STS operation Trellis serves.
pub fn operations() -> Vec<Operation<AppState>> {
    // The model lists no errors for GetCallerIdentity.
    vec![Operation::rpc(&STS, "GetCallerIdentity", get_caller_identity).errors(&[])]
}

#[derive(Debug, Deserialize)]
pub struct GetCallerIdentityInput {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetCallerIdentityOutput {
    pub user_id: String,
    pub account: String,
    pub arn: String,
}

async fn get_caller_identity(
    state: AppState,
    _: GetCallerIdentityInput,
    call: Call,
) -> Result<GetCallerIdentityOutput, AwsError> {
    let caller = call
        .extensions
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller::Root);
    let (user_id, arn) = match &caller {
        Caller::Root => (state.ctx.account_id.clone(), root_arn(&state.ctx)),
        Caller::User { user, .. } => (user.id.clone(), user.arn.clone()),
    };
    Ok(GetCallerIdentityOutput {
        user_id,
        account: state.ctx.account_id.clone(),
        arn,
    })
}

//! Helpers shared by the API's unit tests.

use trellis_model::{Context, ValidationError};

/// The context the unit tests mint ARNs in (the server's defaults).
pub fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: "us-west-2".into(),
        account_id: "111122223333".into(),
    }
}

/// The `fieldList` names of a validation result (empty when it passed).
pub fn names(r: Result<(), ValidationError>) -> Vec<String> {
    r.err()
        .map(|e| e.fields.into_iter().map(|f| f.name).collect())
        .unwrap_or_default()
}

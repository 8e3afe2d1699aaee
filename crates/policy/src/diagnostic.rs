//! Validation findings: one [`Diagnostic`] per problem, located by a path into the document.

use std::fmt;

use serde::Serialize;

/// One problem found while validating a policy document.
///
/// `path` points into the JSON document in a compact, human-readable form: `Version`,
/// `Statement[1].Action[0]`, `Statement.Effect` (when `Statement` is a single object),
/// `Statement[0].Condition.StringEquals.aws:PrincipalType`. The empty path means the whole document
/// (for example invalid JSON or an over-long text).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Diagnostic {
    pub path: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for Diagnostic {}

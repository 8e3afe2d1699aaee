//! The stored documents of the function host — a function (its `$LATEST` configuration), a
//! published version (an immutable snapshot of code and configuration) and an alias — and the
//! validation of the configuration members the Lambda API accepts.
//!
//! These documents are what the store holds; the Lambda wire shapes are built from them in
//! `api::wire`, so a change to either side is explicit.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Record kinds in the store.
pub const KIND_FUNCTION: &str = "lambda-function";
pub const KIND_VERSION: &str = "lambda-version";
pub const KIND_ALIAS: &str = "lambda-alias";

/// Lambda's limits.
pub const MIN_TIMEOUT: i64 = 1;
pub const MAX_TIMEOUT: i64 = 900;
pub const DEFAULT_TIMEOUT: u32 = 3;
pub const MIN_MEMORY: i64 = 128;
/// The model allows 32768; Lambda's service limit is 10240.
pub const MAX_MEMORY: i64 = 10240;
pub const DEFAULT_MEMORY: u32 = 128;
pub const MAX_DESCRIPTION: usize = 256;
pub const MAX_HANDLER: usize = 128;
/// All environment variables together, as JSON, may not exceed 4 KB.
pub const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// How a runtime is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    /// The machine's `node`, running Trellis's bootstrap that loads `file.export`.
    Node,
    /// The machine's `python3`, running Trellis's bootstrap that imports `module.function`.
    Python,
    /// The deployment package's own `bootstrap` executable.
    Provided,
}

/// The runtimes Trellis can run; every other `Runtime` value of the model is refused.
pub const SUPPORTED_RUNTIMES: &[&str] = &[
    "nodejs18.x",
    "nodejs20.x",
    "nodejs22.x",
    "nodejs24.x",
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "provided",
    "provided.al2",
    "provided.al2023",
];

pub fn runtime_kind(runtime: &str) -> Option<RuntimeKind> {
    if !SUPPORTED_RUNTIMES.contains(&runtime) {
        return None;
    }
    if runtime.starts_with("nodejs") {
        Some(RuntimeKind::Node)
    } else if runtime.starts_with("python") {
        Some(RuntimeKind::Python)
    } else {
        Some(RuntimeKind::Provided)
    }
}

/// Environment variable names Lambda sets itself and refuses in a function's `Environment`.
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The configuration of one function version. `$LATEST` changes it in place; a published
/// version keeps a copy forever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionConfig {
    pub runtime: String,
    /// Empty for `provided` runtimes that were created without one.
    pub handler: String,
    /// Accepted and reported, never enforced: Trellis has no IAM.
    pub role: String,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub environment: BTreeMap<String, String>,
    /// Lowercase hex SHA-256 of the deployment package; the key of its blob in the store.
    pub code_sha256: String,
    pub code_size: u64,
    /// Lambda's format: `2024-05-01T12:34:56.789+0000`.
    pub last_modified: String,
    /// Changes with every update; `RevisionId` preconditions compare against it.
    pub revision_id: String,
}

impl FunctionConfig {
    /// A digest of everything that decides how the function runs (code, runtime, handler,
    /// environment, limits). Warm runtime processes are reused only for the same digest, and
    /// PublishVersion publishes a new version only when it differs from the last one.
    pub fn execution_digest(&self) -> String {
        let doc = serde_json::json!({
            "runtime": self.runtime,
            "handler": self.handler,
            "timeout": self.timeout,
            "memorySize": self.memory_size,
            "environment": self.environment,
            "code": self.code_sha256,
        });
        hex::encode(Sha256::digest(doc.to_string().as_bytes()))
    }

    /// What PublishVersion compares: the execution digest plus the remaining configuration.
    pub fn publish_digest(&self) -> String {
        let doc = serde_json::json!({
            "execution": self.execution_digest(),
            "role": self.role,
            "description": self.description,
        });
        hex::encode(Sha256::digest(doc.to_string().as_bytes()))
    }
}

/// A function: its `$LATEST` configuration and bookkeeping for versions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionDoc {
    pub name: String,
    pub config: FunctionConfig,
    /// The highest version number ever published; numbers are never reused.
    pub last_version: u64,
    /// `publish_digest` of `$LATEST` when version `last_version` was published from it.
    #[serde(default)]
    pub last_published_digest: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A published version: an immutable snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionDoc {
    pub name: String,
    pub version: u64,
    pub config: FunctionConfig,
}

/// An alias: a name for a version, optionally splitting traffic with a second version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasDoc {
    pub function: String,
    pub name: String,
    /// A version number or `$LATEST`.
    pub function_version: String,
    pub description: String,
    /// Additional version → share of invocations (0.0–1.0) routed to it instead.
    #[serde(default)]
    pub additional_version_weights: BTreeMap<String, f64>,
    pub revision_id: String,
}

/// Record ids: versions and aliases are scoped by their function's name.
pub fn version_id(name: &str, version: u64) -> String {
    format!("{name}:{version}")
}

pub fn alias_id(name: &str, alias: &str) -> String {
    format!("{name}:{alias}")
}

/// The `refs` entry through which a function or version keeps its code blob alive.
pub fn blob_ref(sha256_hex: &str) -> String {
    format!("blob:{sha256_hex}")
}

/// A new revision id (a random UUID, as Lambda's are).
pub fn new_revision_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Now in Lambda's `LastModified` format.
pub fn now_last_modified() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// A model-validation failure, in the words AWS services use.
pub fn constraint(member: &str, value: impl std::fmt::Display, rule: &str) -> String {
    format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {rule}"
    )
}

/// Which of the two Lambda client errors a configuration problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Outside the model's constraints: `ValidationException`.
    Validation(String),
    /// Within the model but refused by the service: `InvalidParameterValueException`.
    InvalidParameter(String),
}

pub fn check_timeout(timeout: i64) -> Result<u32, ConfigError> {
    if timeout < MIN_TIMEOUT {
        return Err(ConfigError::Validation(constraint(
            "timeout",
            timeout,
            "Member must have value greater than or equal to 1",
        )));
    }
    if timeout > MAX_TIMEOUT {
        return Err(ConfigError::InvalidParameter(format!(
            "Timeout value {timeout} is too large: the maximum is {MAX_TIMEOUT} seconds"
        )));
    }
    Ok(u32::try_from(timeout).unwrap_or(DEFAULT_TIMEOUT))
}

pub fn check_memory(memory: i64) -> Result<u32, ConfigError> {
    if memory < MIN_MEMORY {
        return Err(ConfigError::Validation(constraint(
            "memorySize",
            memory,
            "Member must have value greater than or equal to 128",
        )));
    }
    if memory > 32768 {
        return Err(ConfigError::Validation(constraint(
            "memorySize",
            memory,
            "Member must have value less than or equal to 32768",
        )));
    }
    if memory > MAX_MEMORY {
        return Err(ConfigError::InvalidParameter(format!(
            "'MemorySize' value failed to satisfy constraint: Member must have value less than or \
             equal to {MAX_MEMORY}"
        )));
    }
    Ok(u32::try_from(memory).unwrap_or(DEFAULT_MEMORY))
}

pub fn check_description(description: &str) -> Result<(), ConfigError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(ConfigError::Validation(constraint(
            "description",
            description,
            "Member must have length less than or equal to 256",
        )));
    }
    Ok(())
}

pub fn check_handler(handler: &str) -> Result<(), ConfigError> {
    if handler.len() > MAX_HANDLER {
        return Err(ConfigError::Validation(constraint(
            "handler",
            handler,
            "Member must have length less than or equal to 128",
        )));
    }
    if handler.chars().any(char::is_whitespace) {
        return Err(ConfigError::Validation(constraint(
            "handler",
            handler,
            "Member must satisfy regular expression pattern: [^\\s]+",
        )));
    }
    Ok(())
}

/// botocore's `RoleArn` pattern, anchored.
static ROLE_PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"^arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+$")
        .expect("role pattern")
});

pub fn check_role(role: &str) -> Result<(), ConfigError> {
    if !ROLE_PATTERN.is_match(role) {
        return Err(ConfigError::Validation(constraint(
            "role",
            role,
            "Member must satisfy regular expression pattern: \
             arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        )));
    }
    Ok(())
}

pub fn check_runtime(runtime: &str) -> Result<RuntimeKind, ConfigError> {
    runtime_kind(runtime).ok_or_else(|| {
        ConfigError::InvalidParameter(format!(
            "The runtime parameter of {runtime} is not supported by Trellis. Supported runtimes: {}",
            SUPPORTED_RUNTIMES.join(", ")
        ))
    })
}

/// Node.js and Python handlers are `file.export`/`module.function`; `provided` runtimes may
/// leave the handler to their bootstrap.
pub fn check_handler_for_runtime(kind: RuntimeKind, handler: &str) -> Result<(), ConfigError> {
    if kind != RuntimeKind::Provided && handler.is_empty() {
        return Err(ConfigError::InvalidParameter(
            "Runtime and Handler are mandatory parameters for functions created with deployment \
             packages."
                .to_string(),
        ));
    }
    Ok(())
}

pub fn check_environment(vars: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for key in vars.keys() {
        let mut chars = key.chars();
        let ok = key.len() >= 2
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(ConfigError::Validation(constraint(
                "environment.variables",
                "[SENSITIVE]",
                "Map keys must satisfy constraint: [Member must satisfy regular expression \
                 pattern: [a-zA-Z]([a-zA-Z0-9_])+]",
            )));
        }
    }
    let reserved: Vec<&str> = vars
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_ENV.contains(k))
        .collect();
    if !reserved.is_empty() {
        return Err(ConfigError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided contains reserved keys that are currently not supported \
             for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let size = serde_json::to_string(vars).map(|s| s.len()).unwrap_or(0);
    if size > MAX_ENVIRONMENT_BYTES {
        return Err(ConfigError::InvalidParameter(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_validation(r: Result<impl std::fmt::Debug, ConfigError>) -> bool {
        matches!(r, Err(ConfigError::Validation(_)))
    }

    fn is_invalid(r: Result<impl std::fmt::Debug, ConfigError>) -> bool {
        matches!(r, Err(ConfigError::InvalidParameter(_)))
    }

    #[test]
    fn timeouts() {
        for (t, expect) in [(1, Ok(1)), (3, Ok(3)), (900, Ok(900))] {
            assert_eq!(check_timeout(t), expect);
        }
        assert!(is_validation(check_timeout(0)));
        assert!(is_validation(check_timeout(-5)));
        assert!(is_invalid(check_timeout(901)));
    }

    #[test]
    fn memory_sizes() {
        assert_eq!(check_memory(128), Ok(128));
        assert_eq!(check_memory(10240), Ok(10240));
        assert!(is_validation(check_memory(127)));
        assert!(is_invalid(check_memory(10241)));
        assert!(is_validation(check_memory(40000)));
    }

    #[test]
    fn runtimes() {
        let cases = [
            ("nodejs18.x", Some(RuntimeKind::Node)),
            ("nodejs20.x", Some(RuntimeKind::Node)),
            ("nodejs22.x", Some(RuntimeKind::Node)),
            ("python3.12", Some(RuntimeKind::Python)),
            ("python3.9", Some(RuntimeKind::Python)),
            ("provided", Some(RuntimeKind::Provided)),
            ("provided.al2", Some(RuntimeKind::Provided)),
            ("provided.al2023", Some(RuntimeKind::Provided)),
            ("java21", None),
            ("python2.7", None),
            ("nodejs", None),
            ("", None),
        ];
        for (runtime, kind) in cases {
            assert_eq!(runtime_kind(runtime), kind, "{runtime}");
            assert_eq!(check_runtime(runtime).ok(), kind, "{runtime}");
        }
        assert!(is_invalid(check_handler_for_runtime(
            RuntimeKind::Python,
            ""
        )));
        assert!(check_handler_for_runtime(RuntimeKind::Provided, "").is_ok());
        assert!(check_handler_for_runtime(RuntimeKind::Node, "index.handler").is_ok());
    }

    #[test]
    fn handlers_descriptions_roles() {
        assert!(check_handler("index.handler").is_ok());
        assert!(check_handler("").is_ok());
        assert!(is_validation(check_handler("has space")));
        assert!(is_validation(check_handler(&"h".repeat(129))));
        assert!(check_description(&"d".repeat(256)).is_ok());
        assert!(is_validation(check_description(&"d".repeat(257))));
        assert!(check_role("arn:aws:iam::123456789012:role/lambda-role").is_ok());
        assert!(check_role("arn:aws:iam::123456789012:role/service-role/x.y@z").is_ok());
        assert!(is_validation(check_role("lambda-role")));
        assert!(is_validation(check_role("arn:aws:iam::1234:role/x")));
    }

    #[test]
    fn environments() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        assert!(check_environment(&env(&[])).is_ok());
        assert!(check_environment(&env(&[("GREETING", "hi"), ("a1_b", "")])).is_ok());
        assert!(is_validation(check_environment(&env(&[("1BAD", "x")]))));
        assert!(is_validation(check_environment(&env(&[("A", "x")]))));
        assert!(is_validation(check_environment(&env(&[("HAS-DASH", "x")]))));
        let reserved = check_environment(&env(&[("AWS_REGION", "x"), ("OK", "y")]));
        assert!(
            matches!(&reserved, Err(ConfigError::InvalidParameter(m)) if m.contains("AWS_REGION"))
        );
        assert!(is_invalid(check_environment(&env(&[(
            "BIG",
            &"x".repeat(5000)
        )]))));
    }

    #[test]
    fn digests_follow_what_matters() {
        let base = FunctionConfig {
            runtime: "python3.12".into(),
            handler: "app.handler".into(),
            role: "arn:aws:iam::123456789012:role/r".into(),
            description: String::new(),
            timeout: 3,
            memory_size: 128,
            environment: BTreeMap::new(),
            code_sha256: "ab".repeat(32),
            code_size: 10,
            last_modified: now_last_modified(),
            revision_id: new_revision_id(),
        };
        let mut other = base.clone();
        other.revision_id = new_revision_id();
        other.last_modified = "2000-01-01T00:00:00.000+0000".into();
        assert_eq!(base.execution_digest(), other.execution_digest());
        assert_eq!(base.publish_digest(), other.publish_digest());
        other.description = "changed".into();
        assert_eq!(base.execution_digest(), other.execution_digest());
        assert_ne!(base.publish_digest(), other.publish_digest());
        other.environment.insert("K1".into(), "v".into());
        assert_ne!(base.execution_digest(), other.execution_digest());
    }

    #[test]
    fn last_modified_format() {
        let s = now_last_modified();
        assert_eq!(s.len(), "2024-05-01T12:34:56.789+0000".len(), "{s}");
        assert!(s.ends_with("+0000"));
    }
}

//! Lambda wire shapes (botocore's `lambda/2015-03-31`): the members requests share, the
//! `FunctionConfiguration` and `AliasConfiguration` outputs built from stored documents, and
//! `Marker`/`MaxItems` pagination. Each operation's own input type lives with its handler.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::{LambdaError, LambdaResult};
use crate::config::{AliasDoc, FunctionConfig, constraint};

/// A required member that the request left out.
pub fn required<T>(value: Option<T>, member: &str) -> LambdaResult<T> {
    value.ok_or_else(|| {
        LambdaError::Validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: \
             Member must not be null"
        ))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentInput {
    pub variables: Option<BTreeMap<String, String>>,
}

/// `FunctionCode`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CodeInput {
    /// Base64 of the zip, as botocore serializes a blob member in JSON.
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    #[serde(rename = "S3Key")]
    pub s3_key: Option<String>,
    pub image_uri: Option<String>,
}

/// `AliasRoutingConfiguration`, in and out.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_version_weights: Option<BTreeMap<String, f64>>,
}

/// The operations the model answers with 204 and no members.
#[derive(Debug, Serialize)]
pub struct NoContent {}

/// Decodes the base64 `ZipFile` member.
pub fn decode_zip(zip_file: &str) -> LambdaResult<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(zip_file.trim())
        .map_err(|_| {
            LambdaError::InvalidParameter(
                "Could not unzip uploaded file. Please check your file, then try to upload again."
                    .into(),
            )
        })
}

/// `CodeSha256` as Lambda reports it: base64 of the digest (the store keys by hex).
pub fn code_sha256_base64(hex_digest: &str) -> String {
    let bytes = hex::decode(hex_digest).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The architecture Trellis runs functions on: this machine's.
pub fn architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

/// `FunctionConfiguration`: what Trellis reports of a function version. The members Trellis
/// does not model have Lambda's values for a zip function without those features.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionConfiguration {
    pub function_name: String,
    pub function_arn: String,
    pub runtime: String,
    pub role: String,
    pub handler: String,
    pub code_size: u64,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub last_modified: String,
    pub code_sha256: String,
    pub version: String,
    /// Only when the function has variables, as Lambda answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentResponse>,
    pub tracing_config: TracingConfig,
    pub revision_id: String,
    pub state: &'static str,
    pub last_update_status: &'static str,
    pub package_type: &'static str,
    pub architectures: [&'static str; 1],
    pub ephemeral_storage: EphemeralStorage,
    pub snap_start: SnapStart,
    pub logging_config: LoggingConfig,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnvironmentResponse {
    pub variables: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TracingConfig {
    pub mode: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    pub size: u32,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapStart {
    pub apply_on: &'static str,
    pub optimization_status: &'static str,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LoggingConfig {
    pub log_format: &'static str,
    pub log_group: String,
}

impl FunctionConfiguration {
    pub fn new(
        name: &str,
        function_arn: &str,
        version: &str,
        config: &FunctionConfig,
    ) -> FunctionConfiguration {
        FunctionConfiguration {
            function_name: name.to_string(),
            function_arn: function_arn.to_string(),
            runtime: config.runtime.clone(),
            role: config.role.clone(),
            handler: config.handler.clone(),
            code_size: config.code_size,
            description: config.description.clone(),
            timeout: config.timeout,
            memory_size: config.memory_size,
            last_modified: config.last_modified.clone(),
            code_sha256: code_sha256_base64(&config.code_sha256),
            version: version.to_string(),
            environment: (!config.environment.is_empty()).then(|| EnvironmentResponse {
                variables: config.environment.clone(),
            }),
            tracing_config: TracingConfig {
                mode: "PassThrough",
            },
            revision_id: config.revision_id.clone(),
            state: "Active",
            last_update_status: "Successful",
            package_type: "Zip",
            architectures: [architecture()],
            ephemeral_storage: EphemeralStorage { size: 512 },
            snap_start: SnapStart {
                apply_on: "None",
                optimization_status: "Off",
            },
            logging_config: LoggingConfig {
                log_format: "Text",
                log_group: format!("/aws/lambda/{name}"),
            },
        }
    }
}

/// `AliasConfiguration`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasConfiguration {
    pub alias_arn: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    /// Only when the alias routes to an additional version, as Lambda answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_config: Option<RoutingConfig>,
    pub revision_id: String,
}

impl AliasConfiguration {
    pub fn new(alias_arn: &str, alias: &AliasDoc) -> AliasConfiguration {
        AliasConfiguration {
            alias_arn: alias_arn.to_string(),
            name: alias.name.clone(),
            function_version: alias.function_version.clone(),
            description: alias.description.clone(),
            routing_config: (!alias.additional_version_weights.is_empty()).then(|| RoutingConfig {
                additional_version_weights: Some(alias.additional_version_weights.clone()),
            }),
            revision_id: alias.revision_id.clone(),
        }
    }
}

/// `Marker` and `MaxItems` of a list operation. Lists are in creation order; the marker is the
/// creation sequence number of the last item returned, opaque to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub after_seq: Option<i64>,
    pub size: usize,
}

/// Lambda returns at most 50 items per page, whatever `MaxItems` asks for.
pub const MAX_PAGE: usize = 50;

pub fn page(marker: Option<&str>, max_items: Option<&str>) -> LambdaResult<Page> {
    let size = match max_items {
        None => MAX_PAGE,
        Some(raw) => {
            let n: i64 = raw.parse().map_err(|_| {
                LambdaError::Validation(constraint("maxItems", raw, "Member must be a number"))
            })?;
            if !(1..=10000).contains(&n) {
                return Err(LambdaError::Validation(constraint(
                    "maxItems",
                    n,
                    "Member must have value between 1 and 10000",
                )));
            }
            usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE)
        }
    };
    let after_seq = match marker.filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(
            decode_marker(m)
                .ok_or_else(|| LambdaError::InvalidParameter(format!("Invalid Marker: {m}")))?,
        ),
    };
    Ok(Page { after_seq, size })
}

pub fn encode_marker(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("trellis:{seq}"))
}

fn decode_marker(marker: &str) -> Option<i64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(marker)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("trellis:")?
        .parse()
        .ok()
}

/// Applies a page to items in creation order (`seq` of each); returns the page and the next
/// marker.
pub fn paginate<T>(items: Vec<(i64, T)>, page: Page) -> (Vec<T>, Option<String>) {
    let mut rest = items
        .into_iter()
        .filter(|(seq, _)| page.after_seq.is_none_or(|after| *seq > after))
        .peekable();
    let mut out = Vec::new();
    let mut last = None;
    while out.len() < page.size {
        match rest.next() {
            Some((seq, item)) => {
                last = Some(seq);
                out.push(item);
            }
            None => break,
        }
    }
    let next = if rest.peek().is_some() {
        last.map(encode_marker)
    } else {
        None
    };
    (out, next)
}

/// A `RevisionId` precondition.
pub fn check_revision(given: Option<&str>, current: &str) -> LambdaResult<()> {
    match given {
        Some(given) if given != current => Err(LambdaError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
                .into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let items: Vec<(i64, i64)> = (1..=7).map(|i| (i * 10, i)).collect();
        let p = page(None, Some("3")).unwrap();
        let (first, next) = paginate(items.clone(), p);
        assert_eq!(first, vec![1, 2, 3]);
        let next = next.unwrap();
        let (second, next) = paginate(items.clone(), page(Some(&next), Some("3")).unwrap());
        assert_eq!(second, vec![4, 5, 6]);
        let (third, next) = paginate(items.clone(), page(next.as_deref(), Some("3")).unwrap());
        assert_eq!(third, vec![7]);
        assert_eq!(next, None);
        // Exactly one full page: no marker.
        let (all, next) = paginate(items.clone(), page(None, Some("7")).unwrap());
        assert_eq!(all.len(), 7);
        assert_eq!(next, None);
        // Default and cap.
        assert_eq!(page(None, None).unwrap().size, MAX_PAGE);
        assert_eq!(page(None, Some("10000")).unwrap().size, MAX_PAGE);
        for bad in ["0", "10001", "x", "-1"] {
            assert!(
                matches!(page(None, Some(bad)), Err(LambdaError::Validation(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            page(Some("garbage!"), None),
            Err(LambdaError::InvalidParameter(_))
        ));
    }

    #[test]
    fn configurations_carry_the_model_member_names() {
        let mut config = FunctionConfig {
            runtime: "python3.12".into(),
            handler: "app.handler".into(),
            role: "arn:aws:iam::123456789012:role/r".into(),
            description: String::new(),
            timeout: 3,
            memory_size: 128,
            environment: BTreeMap::new(),
            code_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
            code_size: 22,
            last_modified: "2024-05-01T12:34:56.789+0000".into(),
            revision_id: "rev".into(),
        };
        let doc =
            serde_json::to_value(FunctionConfiguration::new("f", "arn:f", "$LATEST", &config))
                .unwrap();
        assert_eq!(doc["FunctionName"], "f");
        assert_eq!(
            doc["CodeSha256"],
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(doc["Description"], "");
        assert_eq!(doc["TracingConfig"]["Mode"], "PassThrough");
        assert_eq!(doc["EphemeralStorage"]["Size"], 512);
        assert_eq!(doc["SnapStart"]["OptimizationStatus"], "Off");
        assert_eq!(doc["LoggingConfig"]["LogGroup"], "/aws/lambda/f");
        assert_eq!(doc["Architectures"][0], architecture());
        assert!(doc.get("Environment").is_none());
        config.environment.insert("A".into(), "b".into());
        let doc =
            serde_json::to_value(FunctionConfiguration::new("f", "arn:f", "1", &config)).unwrap();
        assert_eq!(doc["Environment"]["Variables"]["A"], "b");

        let mut alias = AliasDoc {
            function: "f".into(),
            name: "live".into(),
            function_version: "1".into(),
            description: String::new(),
            additional_version_weights: BTreeMap::new(),
            revision_id: "r".into(),
        };
        let doc = serde_json::to_value(AliasConfiguration::new("arn:f:live", &alias)).unwrap();
        assert_eq!(doc["AliasArn"], "arn:f:live");
        assert!(doc.get("RoutingConfig").is_none());
        alias.additional_version_weights.insert("2".into(), 0.25);
        let doc = serde_json::to_value(AliasConfiguration::new("arn:f:live", &alias)).unwrap();
        assert_eq!(doc["RoutingConfig"]["AdditionalVersionWeights"]["2"], 0.25);
    }

    #[test]
    fn code_sha_is_base64_of_the_digest() {
        assert_eq!(
            code_sha256_base64("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn revision_preconditions() {
        assert!(check_revision(None, "a").is_ok());
        assert!(check_revision(Some("a"), "a").is_ok());
        assert!(matches!(
            check_revision(Some("b"), "a"),
            Err(LambdaError::PreconditionFailed(_))
        ));
    }
}

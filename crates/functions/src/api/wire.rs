//! Lambda wire shapes (botocore's `lambda/2015-03-31`): request bodies, the
//! `FunctionConfiguration` and `AliasConfiguration` documents built from stored documents, and
//! `Marker`/`MaxItems` pagination.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::error::{LambdaError, LambdaResult};
use crate::config::{AliasDoc, FunctionConfig, constraint};

/// Parses a JSON request body (an empty body is an empty object).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> LambdaResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        LambdaError::InvalidRequestContent(format!("Could not parse request body into json: {e}"))
    })
}

/// A required member that the body left out.
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

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionInput {
    pub function_name: Option<String>,
    pub runtime: Option<String>,
    pub role: Option<String>,
    pub handler: Option<String>,
    pub code: Option<CodeInput>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub publish: Option<bool>,
    pub environment: Option<EnvironmentInput>,
    pub package_type: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCodeInput {
    pub zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    pub s3_bucket: Option<String>,
    pub image_uri: Option<String>,
    pub publish: Option<bool>,
    pub dry_run: Option<bool>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfigurationInput {
    pub role: Option<String>,
    pub handler: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<i64>,
    pub memory_size: Option<i64>,
    pub environment: Option<EnvironmentInput>,
    pub runtime: Option<String>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishVersionInput {
    pub code_sha256: Option<String>,
    pub description: Option<String>,
    pub revision_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoutingConfigInput {
    pub additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasInput {
    pub name: Option<String>,
    pub function_version: Option<String>,
    pub description: Option<String>,
    pub routing_config: Option<RoutingConfigInput>,
    pub revision_id: Option<String>,
}

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

/// A `FunctionConfiguration` document.
pub fn function_configuration(
    name: &str,
    function_arn: &str,
    version: &str,
    config: &FunctionConfig,
) -> Value {
    let mut doc = json!({
        "FunctionName": name,
        "FunctionArn": function_arn,
        "Runtime": config.runtime,
        "Role": config.role,
        "Handler": config.handler,
        "CodeSize": config.code_size,
        "Description": config.description,
        "Timeout": config.timeout,
        "MemorySize": config.memory_size,
        "LastModified": config.last_modified,
        "CodeSha256": code_sha256_base64(&config.code_sha256),
        "Version": version,
        "TracingConfig": { "Mode": "PassThrough" },
        "RevisionId": config.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [architecture()],
        "EphemeralStorage": { "Size": 512 },
        "SnapStart": { "ApplyOn": "None", "OptimizationStatus": "Off" },
        "LoggingConfig": { "LogFormat": "Text", "LogGroup": format!("/aws/lambda/{name}") },
    });
    if !config.environment.is_empty() {
        doc["Environment"] = json!({ "Variables": config.environment });
    }
    doc
}

/// An `AliasConfiguration` document.
pub fn alias_configuration(alias_arn: &str, alias: &AliasDoc) -> Value {
    let mut doc = json!({
        "AliasArn": alias_arn,
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    });
    if !alias.additional_version_weights.is_empty() {
        doc["RoutingConfig"] =
            json!({ "AdditionalVersionWeights": alias.additional_version_weights });
    }
    doc
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

/// A List response: the page of `items` under `key`, with `NextMarker` when more follow.
pub fn list_doc(key: &str, items: Vec<(i64, Value)>, page: Page) -> Value {
    let (items, next) = paginate(items, page);
    let mut doc = json!({ key: items });
    if let Some(next) = next {
        doc["NextMarker"] = json!(next);
    }
    doc
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
    fn bodies_and_members() {
        let input: CreateFunctionInput = parse_body(
            br#"{"FunctionName":"f","Code":{"ZipFile":"UEsFBg=="},"Timeout":5,"Environment":{"Variables":{"A1":"b"}},"Unknown":1}"#,
        )
        .unwrap();
        assert_eq!(input.function_name.as_deref(), Some("f"));
        assert_eq!(input.timeout, Some(5));
        assert_eq!(input.code.unwrap().zip_file.as_deref(), Some("UEsFBg=="));
        assert!(parse_body::<CreateFunctionInput>(b"{not json").is_err());
        assert!(parse_body::<CreateFunctionInput>(br#"{"Timeout":"x"}"#).is_err());
        let empty: UpdateConfigurationInput = parse_body(b"").unwrap();
        assert!(empty.handler.is_none());
        assert!(
            matches!(required::<u8>(None, "role"), Err(LambdaError::Validation(m)) if m.contains("'role'"))
        );
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

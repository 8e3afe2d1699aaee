//! Function tags and the per-function settings that Trellis does not support but clients read:
//! TagResource, UntagResource, ListTags (`/2017-03-31/tags/{ARN}`) and
//! GetFunctionCodeSigningConfig (`/2020-06-30/functions/{name}/code-signing-config`).
//!
//! The Terraform provider reads the code-signing configuration of every zip function it manages
//! and changes tags with TagResource/UntagResource, so `aws_lambda_function` needs all of them.
//! Tags live on the function's document (CreateFunction sets them, GetFunction returns them).

use crate::api::Api;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trellis_wire::Call;

use super::error::{LambdaError, LambdaResult};
use super::functions::load_function;
use super::local_ref;
use super::wire::{NoContent, required};
use crate::catalog::{self, Loaded};
use crate::names::FunctionRef;

/// Lambda's tag limits: 50 tags per function, keys 1–128 and values 0–256 characters, and no
/// keys under the reserved `aws:` prefix.
const MAX_TAGS: usize = 50;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

/// ListTags: the `Resource` label (an ARN).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsInput {
    resource: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsOutput {
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    resource: String,
    tags: Option<BTreeMap<String, String>>,
}

impl TagResourceInput {
    fn validate(self, host: &Api) -> LambdaResult<(FunctionRef, BTreeMap<String, String>)> {
        let fref = tagged_function(host, &self.resource)?;
        let tags = required(self.tags, "tags")?;
        check_tags(&tags)?;
        Ok((fref, tags))
    }
}

#[derive(Debug, Deserialize)]
pub struct UntagResourceInput {
    #[serde(rename = "Resource")]
    resource: String,
    /// A repeated query member (`?tagKeys=a&tagKeys=b`), named as the model's `locationName`.
    #[serde(rename = "tagKeys")]
    tag_keys: Option<Vec<String>>,
}

impl UntagResourceInput {
    fn validate(self, host: &Api) -> LambdaResult<(FunctionRef, Vec<String>)> {
        let fref = tagged_function(host, &self.resource)?;
        match self.tag_keys {
            Some(keys) if !keys.is_empty() => Ok((fref, keys)),
            _ => Err(LambdaError::Validation(
                "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null".into(),
            )),
        }
    }
}

/// GetFunctionCodeSigningConfig: the `FunctionName` label.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionNameInput {
    function_name: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionCodeSigningConfigOutput {
    code_signing_config_arn: &'static str,
    function_name: String,
}

/// The function a `Resource` (TaggableResource) names: only unqualified function ARNs of this
/// Trellis; tags on versions and aliases are not supported, as in Lambda.
fn tagged_function(host: &Api, resource: &str) -> LambdaResult<FunctionRef> {
    if !resource.starts_with("arn:") {
        return Err(LambdaError::Validation(format!(
            "1 validation error detected: Value '{resource}' at 'resource' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:[a-z]{{2}}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{{1}}:\\d{{12}}:(function:[a-zA-Z0-9-_]+(:(\\$LATEST|[a-zA-Z0-9-_]+))?|code-signing-config:csc-[a-z0-9]{{17}}|event-source-mapping:[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}|capacity-provider:[a-zA-Z0-9-_]+)"
        )));
    }
    let fref = local_ref(host, resource, true)?;
    if fref.qualifier.is_some() {
        return Err(LambdaError::InvalidParameter(
            "Tags on function aliases and versions are not supported. Please specify a function ARN."
                .into(),
        ));
    }
    Ok(fref)
}

fn check_tags(tags: &BTreeMap<String, String>) -> LambdaResult<()> {
    for (k, v) in tags {
        let key_chars = k.chars().count();
        if key_chars == 0 || key_chars > MAX_KEY_CHARS {
            return Err(LambdaError::InvalidParameter(format!(
                "Tag key must be between 1 and {MAX_KEY_CHARS} characters: {k}"
            )));
        }
        if k.starts_with("aws:") {
            return Err(LambdaError::InvalidParameter(format!(
                "Tag keys beginning with 'aws:' are reserved: {k}"
            )));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(LambdaError::InvalidParameter(format!(
                "Tag value for key {k} must be at most {MAX_VALUE_CHARS} characters"
            )));
        }
    }
    Ok(())
}

pub(crate) async fn tag_resource(
    host: Api,
    input: TagResourceInput,
    _: Call,
) -> LambdaResult<NoContent> {
    let (fref, tags) = input.validate(&host)?;
    let mut tx = host.store().write().await?;
    let Loaded { record, mut doc } = load_function(&host, &mut tx, &fref.name).await?;
    doc.tags.extend(tags);
    if doc.tags.len() > MAX_TAGS {
        return Err(LambdaError::InvalidParameter(format!(
            "A function can have at most {MAX_TAGS} tags"
        )));
    }
    let mut updated = catalog::function_record(host.ctx(), &doc);
    updated.seq = record.seq;
    tx.update(&updated).await?;
    tx.commit().await?;
    Ok(NoContent {})
}

pub(crate) async fn untag_resource(
    host: Api,
    input: UntagResourceInput,
    _: Call,
) -> LambdaResult<NoContent> {
    let (fref, keys) = input.validate(&host)?;
    let mut tx = host.store().write().await?;
    let Loaded { record, mut doc } = load_function(&host, &mut tx, &fref.name).await?;
    for k in &keys {
        doc.tags.remove(k);
    }
    let mut updated = catalog::function_record(host.ctx(), &doc);
    updated.seq = record.seq;
    tx.update(&updated).await?;
    tx.commit().await?;
    Ok(NoContent {})
}

pub(crate) async fn list_tags(
    host: Api,
    input: ListTagsInput,
    _: Call,
) -> LambdaResult<ListTagsOutput> {
    let fref = tagged_function(&host, &input.resource)?;
    let mut tx = host.store().read().await?;
    let doc = load_function(&host, &mut tx, &fref.name).await?.doc;
    Ok(ListTagsOutput { tags: doc.tags })
}

/// GetFunctionCodeSigningConfig: Trellis has no code signing, so every function answers with
/// Lambda's "none" (an empty `CodeSigningConfigArn`; the model allows 0 characters).
pub(crate) async fn get_function_code_signing_config(
    host: Api,
    input: FunctionNameInput,
    _: Call,
) -> LambdaResult<GetFunctionCodeSigningConfigOutput> {
    let fref = local_ref(&host, &input.function_name, false)?;
    let mut tx = host.store().read().await?;
    let doc = load_function(&host, &mut tx, &fref.name).await?.doc;
    Ok(GetFunctionCodeSigningConfigOutput {
        code_signing_config_arn: "",
        function_name: doc.name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tagKeys` given once is a one-element list; left out, it is the model's missing member.
    #[test]
    fn untag_keys_from_the_query() {
        let input: UntagResourceInput = trellis_wire::de::from_value(serde_json::json!({
            "Resource": "arn:aws:lambda:us-west-2:111122223333:function:f",
            "tagKeys": "a",
        }))
        .unwrap();
        assert_eq!(input.tag_keys, Some(vec!["a".to_string()]));
        let input: UntagResourceInput = trellis_wire::de::from_value(serde_json::json!({
            "Resource": "arn:aws:lambda:us-west-2:111122223333:function:f",
            "tagKeys": ["a", "b"],
        }))
        .unwrap();
        assert_eq!(input.tag_keys.map(|k| k.len()), Some(2));
    }

    #[test]
    fn tag_limits() {
        let ok: BTreeMap<String, String> = [("env".to_string(), "v".repeat(256))].into();
        assert!(check_tags(&ok).is_ok());
        let cases = [
            ("", "v"),
            ("aws:reserved", "v"),
            (&*"k".repeat(129), "v"),
            ("k", &*"v".repeat(257)),
        ];
        for (k, v) in cases {
            let tags: BTreeMap<String, String> = [(k.to_string(), v.to_string())].into();
            assert!(
                matches!(check_tags(&tags), Err(LambdaError::InvalidParameter(_))),
                "{k:?}={v:?}"
            );
        }
    }
}

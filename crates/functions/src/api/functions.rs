//! Function and version operations: CreateFunction, GetFunction, GetFunctionConfiguration,
//! ListFunctions, DeleteFunction, UpdateFunctionCode, UpdateFunctionConfiguration,
//! PublishVersion and ListVersionsByFunction.
//!
//! Each operation's input is a `*Input` type (the JSON body, the query members and the
//! `FunctionName` label in one document); `validate` checks it in Lambda's order and returns
//! what the handler needs. Each mutating operation does its reads, checks and writes in one
//! store transaction, so a failed request changes nothing and concurrent writers cannot both
//! pass a check.

use crate::api::Api;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trellis_store::Tx;
use trellis_wire::Call;

use super::error::{LambdaError, LambdaResult};
use super::wire::{
    self, CodeInput, EnvironmentInput, FunctionConfiguration, NoContent, Page, check_revision,
    required,
};
use super::{code_location, local_ref};
use crate::catalog::{self, Loaded};
use crate::code::{self, CodeError};
use crate::config::{
    self, DEFAULT_MEMORY, DEFAULT_TIMEOUT, FunctionConfig, FunctionDoc, VersionDoc,
    new_revision_id, now_last_modified,
};
use crate::names::{
    FunctionRef, LATEST, check_qualifier, function_arn, qualified_arn, version_number,
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionInput {
    function_name: Option<String>,
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    code: Option<CodeInput>,
    description: Option<String>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
    publish: Option<bool>,
    environment: Option<EnvironmentInput>,
    package_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// A checked CreateFunction: the new function's document and its package.
struct NewFunction {
    doc: FunctionDoc,
    zip: Vec<u8>,
    publish: bool,
}

impl CreateFunctionInput {
    fn validate(self, host: &Api) -> LambdaResult<NewFunction> {
        let fref = local_ref(host, &required(self.function_name, "functionName")?, false)?;
        let role = required(self.role, "role")?;
        config::check_role(&role)?;
        let code_input = required(self.code, "code")?;
        if self.package_type.as_deref().is_some_and(|p| p != "Zip") {
            return Err(LambdaError::InvalidParameter(
                "Trellis runs .zip deployment packages only (PackageType Zip)".into(),
            ));
        }
        let runtime = self.runtime.ok_or_else(|| {
            LambdaError::InvalidParameter(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages."
                    .into(),
            )
        })?;
        let kind = config::check_runtime(&runtime)?;
        let handler = self.handler.unwrap_or_default();
        config::check_handler(&handler)?;
        config::check_handler_for_runtime(kind, &handler)?;
        let description = self.description.unwrap_or_default();
        config::check_description(&description)?;
        let timeout = match self.timeout {
            Some(t) => config::check_timeout(t)?,
            None => DEFAULT_TIMEOUT,
        };
        let memory_size = match self.memory_size {
            Some(m) => config::check_memory(m)?,
            None => DEFAULT_MEMORY,
        };
        let environment = self
            .environment
            .and_then(|e| e.variables)
            .unwrap_or_default();
        config::check_environment(&environment)?;
        let (zip, info) = zip_from(
            code_input.zip_file.as_deref(),
            code_input.s3_bucket.is_some() || code_input.s3_key.is_some(),
            code_input.image_uri.is_some(),
        )?;
        Ok(NewFunction {
            doc: FunctionDoc {
                name: fref.name,
                config: FunctionConfig {
                    runtime,
                    handler,
                    role,
                    description,
                    timeout,
                    memory_size,
                    environment,
                    code_sha256: info.sha256_hex,
                    code_size: info.size,
                    last_modified: now_last_modified(),
                    revision_id: new_revision_id(),
                },
                last_version: 0,
                last_published_digest: None,
                tags: self.tags.unwrap_or_default(),
            },
            zip,
            publish: self.publish.unwrap_or(false),
        })
    }
}

/// GetFunction, GetFunctionConfiguration and DeleteFunction: a function name that may carry a
/// qualifier, and a separate `Qualifier` that must agree with it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct QualifiedFunctionInput {
    function_name: String,
    qualifier: Option<String>,
}

impl QualifiedFunctionInput {
    fn validate(&self, host: &Api) -> LambdaResult<FunctionRef> {
        let fref = local_ref(host, &self.function_name, true)?;
        if let Some(q) = &self.qualifier {
            check_qualifier(q)?;
        }
        fref.with_qualifier(self.qualifier.as_deref())
            .map_err(LambdaError::InvalidParameter)
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetFunctionOutput {
    configuration: FunctionConfiguration,
    code: FunctionCodeLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionCodeLocation {
    repository_type: &'static str,
    location: String,
}

/// `MasterRegion` is not a member here: Trellis has no Lambda@Edge replicas, so it is ignored
/// (as an unknown member is).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsInput {
    function_version: Option<String>,
    marker: Option<String>,
    max_items: Option<String>,
}

impl ListFunctionsInput {
    /// The page, and whether published versions are listed too.
    fn validate(&self) -> LambdaResult<(Page, bool)> {
        let page = wire::page(self.marker.as_deref(), self.max_items.as_deref())?;
        let all_versions = match self.function_version.as_deref() {
            None => false,
            Some("ALL") => true,
            Some(other) => {
                return Err(LambdaError::Validation(config::constraint(
                    "functionVersion",
                    other,
                    "Member must satisfy enum value set: [ALL]",
                )));
            }
        };
        Ok((page, all_versions))
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsOutput {
    functions: Vec<FunctionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersionsByFunctionInput {
    function_name: String,
    marker: Option<String>,
    max_items: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListVersionsByFunctionOutput {
    versions: Vec<FunctionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFunctionCodeInput {
    function_name: String,
    zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    image_uri: Option<String>,
    publish: Option<bool>,
    dry_run: Option<bool>,
    revision_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateFunctionConfigurationInput {
    function_name: String,
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<i64>,
    memory_size: Option<i64>,
    environment: Option<EnvironmentInput>,
    runtime: Option<String>,
    revision_id: Option<String>,
}

impl UpdateFunctionConfigurationInput {
    /// Applies the given members to the stored configuration, checking each and then the
    /// runtime/handler pair they make together (which may need the stored values).
    fn apply(self, c: &mut FunctionConfig) -> LambdaResult<()> {
        if let Some(role) = self.role {
            config::check_role(&role)?;
            c.role = role;
        }
        if let Some(runtime) = self.runtime {
            config::check_runtime(&runtime)?;
            c.runtime = runtime;
        }
        if let Some(handler) = self.handler {
            config::check_handler(&handler)?;
            c.handler = handler;
        }
        let kind = config::check_runtime(&c.runtime)?;
        config::check_handler_for_runtime(kind, &c.handler)?;
        if let Some(description) = self.description {
            config::check_description(&description)?;
            c.description = description;
        }
        if let Some(timeout) = self.timeout {
            c.timeout = config::check_timeout(timeout)?;
        }
        if let Some(memory) = self.memory_size {
            c.memory_size = config::check_memory(memory)?;
        }
        if let Some(environment) = self.environment {
            let vars = environment.variables.unwrap_or_default();
            config::check_environment(&vars)?;
            c.environment = vars;
        }
        c.last_modified = now_last_modified();
        c.revision_id = new_revision_id();
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublishVersionInput {
    function_name: String,
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

/// The `FunctionConfiguration` of `$LATEST`.
fn latest_configuration(host: &Api, doc: &FunctionDoc) -> FunctionConfiguration {
    FunctionConfiguration::new(
        &doc.name,
        &function_arn(host.ctx(), &doc.name),
        LATEST,
        &doc.config,
    )
}

fn version_configuration(host: &Api, doc: &VersionDoc) -> FunctionConfiguration {
    let n = doc.version.to_string();
    FunctionConfiguration::new(
        &doc.name,
        &qualified_arn(host.ctx(), &doc.name, &n),
        &n,
        &doc.config,
    )
}

fn code_error(e: CodeError) -> LambdaError {
    match e {
        CodeError::TooLarge => LambdaError::RequestEntityTooLarge(e.to_string()),
        CodeError::UnzippedTooLarge
        | CodeError::NotAZip
        | CodeError::UnsafePath(_)
        | CodeError::Corrupt(_)
        | CodeError::TooManyEntries => LambdaError::InvalidParameter(e.to_string()),
    }
}

/// The zip of a `ZipFile` member, checked; other code sources are not supported.
fn zip_from(
    zip_file: Option<&str>,
    s3: bool,
    image: bool,
) -> LambdaResult<(Vec<u8>, code::CodeInfo)> {
    if image {
        return Err(LambdaError::InvalidParameter(
            "Trellis runs .zip deployment packages only; container images are not supported".into(),
        ));
    }
    let Some(zip_file) = zip_file else {
        return Err(LambdaError::InvalidParameter(if s3 {
            "Trellis accepts code only as ZipFile; S3Bucket/S3Key are not supported".into()
        } else {
            "Please provide a source for function code.".into()
        }));
    };
    let zip = wire::decode_zip(zip_file)?;
    let info = code::inspect(&zip).map_err(code_error)?;
    Ok((zip, info))
}

/// Loads a function's document; an unknown name is ResourceNotFoundException.
pub(super) async fn load_function(
    host: &Api,
    tx: &mut Tx,
    name: &str,
) -> LambdaResult<Loaded<FunctionDoc>> {
    catalog::get_function(tx, name)
        .await?
        .ok_or_else(|| LambdaError::NotFound(catalog::not_found_message(host.ctx(), name, None)))
}

/// Publishes `$LATEST` of `function` as a new version unless it is unchanged since the last
/// one; returns the version. `function` is updated in place and must be written back.
async fn publish(
    host: &Api,
    tx: &mut Tx,
    function: &mut FunctionDoc,
    description: Option<String>,
) -> LambdaResult<VersionDoc> {
    let digest = function.config.publish_digest();
    if function.last_published_digest.as_deref() == Some(digest.as_str())
        && function.last_version > 0
        && let Some(existing) =
            catalog::get_version(tx, &function.name, function.last_version).await?
    {
        return Ok(existing.doc);
    }
    let version = function.last_version + 1;
    let mut config = function.config.clone();
    if let Some(d) = description {
        config::check_description(&d)?;
        config.description = d;
    }
    let doc = VersionDoc {
        name: function.name.clone(),
        version,
        config,
    };
    tx.insert(&catalog::version_record(host.ctx(), &doc))
        .await?;
    function.last_version = version;
    function.last_published_digest = Some(digest);
    Ok(doc)
}

pub(crate) async fn create_function(
    host: Api,
    input: CreateFunctionInput,
    _: Call,
) -> LambdaResult<FunctionConfiguration> {
    let NewFunction {
        mut doc,
        zip,
        publish: publish_now,
    } = input.validate(&host)?;
    let mut tx = host.store().write().await?;
    if catalog::get_function(&mut tx, &doc.name).await?.is_some() {
        return Err(LambdaError::Conflict(format!(
            "Function already exist: {}",
            doc.name
        )));
    }
    tx.put_blob(&doc.config.code_sha256, &zip).await?;
    let published = if publish_now {
        Some(publish(&host, &mut tx, &mut doc, None).await?)
    } else {
        None
    };
    tx.insert(&catalog::function_record(host.ctx(), &doc))
        .await?;
    tx.commit().await?;
    Ok(match &published {
        Some(v) => version_configuration(&host, v),
        None => latest_configuration(&host, &doc),
    })
}

/// The configuration a qualified GetFunction/GetFunctionConfiguration returns, and the hex
/// digest of its package.
async fn configuration_for(
    host: &Api,
    tx: &mut Tx,
    name: &str,
    qualifier: Option<&str>,
) -> LambdaResult<(FunctionConfiguration, String)> {
    let function = load_function(host, tx, name).await?.doc;
    match qualifier {
        None => Ok((
            latest_configuration(host, &function),
            function.config.code_sha256,
        )),
        Some(q) if q == LATEST => {
            let doc = FunctionConfiguration::new(
                name,
                &qualified_arn(host.ctx(), name, LATEST),
                LATEST,
                &function.config,
            );
            Ok((doc, function.config.code_sha256))
        }
        Some(q) => {
            let resolution = catalog::resolve(tx, host.ctx(), name, Some(q))
                .await
                .map_err(|e| match e {
                    catalog::ResolveError::NotFound(m) => LambdaError::NotFound(m),
                    catalog::ResolveError::Store(e) => e.into(),
                })?;
            let target = &resolution.primary;
            let doc = FunctionConfiguration::new(
                name,
                &qualified_arn(host.ctx(), name, q),
                &target.version,
                &target.config,
            );
            Ok((doc, target.config.code_sha256.clone()))
        }
    }
}

pub(crate) async fn get_function(
    host: Api,
    input: QualifiedFunctionInput,
    call: Call,
) -> LambdaResult<GetFunctionOutput> {
    let fref = input.validate(&host)?;
    let mut tx = host.store().read().await?;
    let (configuration, sha) =
        configuration_for(&host, &mut tx, &fref.name, fref.qualifier.as_deref()).await?;
    let function = load_function(&host, &mut tx, &fref.name).await?.doc;
    Ok(GetFunctionOutput {
        configuration,
        code: FunctionCodeLocation {
            repository_type: "S3",
            // The link is on the address the client used, so it needs the request's Host.
            location: code_location(&host, &call.headers, &sha),
        },
        tags: (!function.tags.is_empty()).then_some(function.tags),
    })
}

pub(crate) async fn get_function_configuration(
    host: Api,
    input: QualifiedFunctionInput,
    _: Call,
) -> LambdaResult<FunctionConfiguration> {
    let fref = input.validate(&host)?;
    let mut tx = host.store().read().await?;
    let (configuration, _) =
        configuration_for(&host, &mut tx, &fref.name, fref.qualifier.as_deref()).await?;
    Ok(configuration)
}

pub(crate) async fn list_functions(
    host: Api,
    input: ListFunctionsInput,
    _: Call,
) -> LambdaResult<ListFunctionsOutput> {
    let (page, all_versions) = input.validate()?;
    let mut tx = host.store().read().await?;
    let mut items = Vec::new();
    for function in catalog::list_functions(&mut tx).await? {
        items.push((
            function.record.seq,
            latest_configuration(&host, &function.doc),
        ));
    }
    if all_versions {
        // Published versions follow their function's $LATEST, in the order they were created.
        let mut versions = Vec::new();
        for (seq, latest) in items {
            let name = latest.function_name.clone();
            versions.push((seq, latest));
            for v in catalog::list_versions(&mut tx, &name).await? {
                versions.push((v.record.seq, version_configuration(&host, &v.doc)));
            }
        }
        // Keep the marker monotonic: renumber in output order.
        items = versions
            .into_iter()
            .enumerate()
            .map(|(i, (_, doc))| (i64::try_from(i).unwrap_or(i64::MAX), doc))
            .collect();
    }
    let (functions, next_marker) = wire::paginate(items, page);
    Ok(ListFunctionsOutput {
        functions,
        next_marker,
    })
}

pub(crate) async fn list_versions(
    host: Api,
    input: ListVersionsByFunctionInput,
    _: Call,
) -> LambdaResult<ListVersionsByFunctionOutput> {
    let fref = local_ref(&host, &input.function_name, false)?;
    let page = wire::page(input.marker.as_deref(), input.max_items.as_deref())?;
    let mut tx = host.store().read().await?;
    let function = load_function(&host, &mut tx, &fref.name).await?;
    let mut items = vec![(
        0,
        FunctionConfiguration::new(
            &fref.name,
            &qualified_arn(host.ctx(), &fref.name, LATEST),
            LATEST,
            &function.doc.config,
        ),
    )];
    for v in catalog::list_versions(&mut tx, &fref.name).await? {
        items.push((v.record.seq, version_configuration(&host, &v.doc)));
    }
    let (versions, next_marker) = wire::paginate(items, page);
    Ok(ListVersionsByFunctionOutput {
        versions,
        next_marker,
    })
}

/// DeleteFunction answers 204 with no body, as Lambda does (the model's output has only
/// `StatusCode`, bound to the HTTP status).
pub(crate) async fn delete_function(
    host: Api,
    input: QualifiedFunctionInput,
    _: Call,
) -> LambdaResult<NoContent> {
    let fref = input.validate(&host)?;
    let name = fref.name.clone();
    let mut tx = host.store().write().await?;
    let function = load_function(&host, &mut tx, &name).await?;
    match fref.qualifier.as_deref() {
        None => {
            let mut blobs = vec![function.doc.config.code_sha256.clone()];
            for alias in catalog::list_aliases(&mut tx, &name).await? {
                tx.delete(&alias.record.kind, &alias.record.id).await?;
            }
            for version in catalog::list_versions(&mut tx, &name).await? {
                blobs.push(version.doc.config.code_sha256.clone());
                tx.delete(&version.record.kind, &version.record.id).await?;
            }
            tx.delete(&function.record.kind, &function.record.id)
                .await?;
            blobs.sort();
            blobs.dedup();
            for sha in blobs {
                catalog::release_blob(&mut tx, &sha).await?;
            }
        }
        Some(LATEST) => {
            return Err(LambdaError::InvalidParameter(
                "$LATEST version cannot be deleted without deleting the function.".into(),
            ));
        }
        Some(q) => {
            let Some(n) = version_number(q) else {
                return Err(LambdaError::InvalidParameter(
                    "Deletion of aliases is not currently supported.".into(),
                ));
            };
            let version = catalog::get_version(&mut tx, &name, n)
                .await?
                .ok_or_else(|| {
                    LambdaError::NotFound(catalog::not_found_message(host.ctx(), &name, Some(q)))
                })?;
            let aliases = catalog::aliases_using(&mut tx, &name, n).await?;
            if !aliases.is_empty() {
                return Err(LambdaError::Conflict(format!(
                    "Unable to delete version because the following aliases reference it: [{}]",
                    aliases.join(", ")
                )));
            }
            tx.delete(&version.record.kind, &version.record.id).await?;
            catalog::release_blob(&mut tx, &version.doc.config.code_sha256).await?;
        }
    }
    tx.commit().await?;
    host.forget(&host.ctx().account_id, &name);
    Ok(NoContent {})
}

pub(crate) async fn update_function_code(
    host: Api,
    input: UpdateFunctionCodeInput,
    _: Call,
) -> LambdaResult<FunctionConfiguration> {
    let fref = local_ref(&host, &input.function_name, false)?;
    let (zip, info) = zip_from(
        input.zip_file.as_deref(),
        input.s3_bucket.is_some(),
        input.image_uri.is_some(),
    )?;
    let mut tx = host.store().write().await?;
    let Loaded { record, mut doc } = load_function(&host, &mut tx, &fref.name).await?;
    check_revision(input.revision_id.as_deref(), &doc.config.revision_id)?;
    let old_sha = doc.config.code_sha256.clone();
    doc.config.code_sha256 = info.sha256_hex.clone();
    doc.config.code_size = info.size;
    doc.config.last_modified = now_last_modified();
    doc.config.revision_id = new_revision_id();
    if input.dry_run.unwrap_or(false) {
        // Validated, nothing written.
        return Ok(latest_configuration(&host, &doc));
    }
    tx.put_blob(&info.sha256_hex, &zip).await?;
    let published = if input.publish.unwrap_or(false) {
        Some(publish(&host, &mut tx, &mut doc, None).await?)
    } else {
        None
    };
    let mut updated = catalog::function_record(host.ctx(), &doc);
    updated.seq = record.seq;
    tx.update(&updated).await?;
    if old_sha != info.sha256_hex {
        catalog::release_blob(&mut tx, &old_sha).await?;
    }
    tx.commit().await?;
    Ok(match &published {
        Some(v) => version_configuration(&host, v),
        None => latest_configuration(&host, &doc),
    })
}

pub(crate) async fn update_function_configuration(
    host: Api,
    input: UpdateFunctionConfigurationInput,
    _: Call,
) -> LambdaResult<FunctionConfiguration> {
    let fref = local_ref(&host, &input.function_name, false)?;
    let mut tx = host.store().write().await?;
    let Loaded { record, mut doc } = load_function(&host, &mut tx, &fref.name).await?;
    check_revision(input.revision_id.as_deref(), &doc.config.revision_id)?;
    input.apply(&mut doc.config)?;
    let mut updated = catalog::function_record(host.ctx(), &doc);
    updated.seq = record.seq;
    tx.update(&updated).await?;
    tx.commit().await?;
    Ok(latest_configuration(&host, &doc))
}

pub(crate) async fn publish_version(
    host: Api,
    input: PublishVersionInput,
    _: Call,
) -> LambdaResult<FunctionConfiguration> {
    let fref = local_ref(&host, &input.function_name, false)?;
    let mut tx = host.store().write().await?;
    let Loaded { record, mut doc } = load_function(&host, &mut tx, &fref.name).await?;
    check_revision(input.revision_id.as_deref(), &doc.config.revision_id)?;
    if let Some(sha) = &input.code_sha256 {
        let current = wire::code_sha256_base64(&doc.config.code_sha256);
        if *sha != current {
            return Err(LambdaError::InvalidParameter(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({current}). Please try again with the CodeSHA256 in $LATEST."
            )));
        }
    }
    let version = publish(&host, &mut tx, &mut doc, input.description).await?;
    let mut updated = catalog::function_record(host.ctx(), &doc);
    updated.seq = record.seq;
    tx.update(&updated).await?;
    tx.commit().await?;
    Ok(version_configuration(&host, &version))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use base64::Engine as _;
    use serde_json::{Value, json};
    use trellis_model::Context;
    use trellis_store::Store;

    use super::*;
    use crate::HostConfig;

    const ROLE: &str = "arn:aws:iam::111122223333:role/fn";

    async fn host() -> (tempfile::TempDir, Api) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&Store::sqlite_url(&dir.path().join("t.db")))
            .await
            .unwrap();
        let ctx = Context {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account_id: "111122223333".into(),
        };
        let host = crate::FunctionHost::new(store, HostConfig::new(dir.path().to_path_buf(), ctx))
            .unwrap();
        (dir, Api::new(host))
    }

    fn zip_base64() -> String {
        let mut out = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut out);
            w.start_file("app.py", zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(b"def handler(e, c):\n    return 1\n").unwrap();
            w.finish().unwrap();
        }
        base64::engine::general_purpose::STANDARD.encode(out.into_inner())
    }

    /// A CreateFunction document with `patch` merged over a valid one (`null` removes a member).
    fn create_doc(patch: Value) -> Value {
        let mut doc = json!({
            "FunctionName": "f",
            "Runtime": "python3.12",
            "Role": ROLE,
            "Handler": "app.handler",
            "Code": {"ZipFile": zip_base64()},
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                doc.as_object_mut().unwrap().remove(k);
            } else {
                doc[k] = v.clone();
            }
        }
        doc
    }

    /// CreateFunction's checks, in Lambda's order: each case's first failing member decides
    /// the error code and message.
    #[tokio::test]
    async fn create_function_inputs() {
        let (_dir, host) = host().await;
        let cases: &[(Value, &str, &str)] = &[
            (
                json!({"FunctionName": null}),
                "ValidationException",
                "Value null at 'functionName'",
            ),
            (
                json!({"FunctionName": null, "Role": null}),
                "ValidationException",
                "'functionName'",
            ),
            (
                json!({"FunctionName": "bad name"}),
                "ValidationException",
                "functionName",
            ),
            (
                json!({"FunctionName": "arn:aws:lambda:us-west-2:999999999999:function:f"}),
                "ResourceNotFoundException",
                "Function not found",
            ),
            (
                json!({"Role": null}),
                "ValidationException",
                "1 validation error detected: Value null at 'role' failed to satisfy constraint: Member must not be null",
            ),
            (json!({"Role": "nope"}), "ValidationException", "at 'role'"),
            (
                json!({"Code": null}),
                "ValidationException",
                "Value null at 'code'",
            ),
            (
                json!({"PackageType": "Image"}),
                "InvalidParameterValueException",
                "PackageType Zip",
            ),
            (
                json!({"Runtime": null}),
                "InvalidParameterValueException",
                "Runtime and Handler are mandatory",
            ),
            (
                json!({"Runtime": "cobol"}),
                "InvalidParameterValueException",
                "cobol",
            ),
            (
                json!({"Handler": "a b"}),
                "ValidationException",
                "at 'handler'",
            ),
            (json!({"Timeout": 0}), "ValidationException", "at 'timeout'"),
            (
                json!({"MemorySize": 64}),
                "ValidationException",
                "at 'memorySize'",
            ),
            (
                json!({"Code": {"S3Bucket": "b", "S3Key": "k"}}),
                "InvalidParameterValueException",
                "S3Bucket/S3Key",
            ),
            (
                json!({"Code": {}}),
                "InvalidParameterValueException",
                "Please provide a source",
            ),
            (
                json!({"Code": {"ImageUri": "x"}}),
                "InvalidParameterValueException",
                "container images",
            ),
            (
                json!({"Code": {"ZipFile": "not base64!"}}),
                "InvalidParameterValueException",
                "Could not unzip",
            ),
        ];
        for (patch, code, message) in cases {
            let input: CreateFunctionInput =
                trellis_wire::de::from_value(create_doc(patch.clone())).unwrap();
            match input.validate(&host) {
                Ok(_) => panic!("{patch} was accepted"),
                Err(e) => {
                    assert_eq!(e.code(), *code, "{patch}: {e:?}");
                    let aws = trellis_wire::AwsError::from(e);
                    assert!(aws.message.contains(message), "{patch}: {}", aws.message);
                }
            }
        }
        // Defaults, and numbers given as strings (as the lenient decoder allows).
        let input: CreateFunctionInput =
            trellis_wire::de::from_value(create_doc(json!({"MemorySize": "256", "Publish": true})))
                .unwrap();
        let new = input.validate(&host).unwrap();
        assert_eq!(new.doc.name, "f");
        assert_eq!(new.doc.config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(new.doc.config.memory_size, 256);
        assert!(new.publish);
        assert!(!new.zip.is_empty());
        // A member of the wrong type is an input the decoder refuses.
        assert!(
            trellis_wire::de::from_value::<CreateFunctionInput>(create_doc(
                json!({"Timeout": "x"})
            ))
            .is_err()
        );
    }

    /// The name and qualifier a case resolves to, or the error code it is refused with.
    type Resolved = Result<(&'static str, Option<&'static str>), &'static str>;

    /// The `Qualifier` query member is checked and must agree with a qualified name.
    #[tokio::test]
    async fn qualified_names() {
        let (_dir, host) = host().await;
        let cases: &[(Value, Resolved)] = &[
            (json!({"FunctionName": "f"}), Ok(("f", None))),
            (
                json!({"FunctionName": "f", "Qualifier": "1"}),
                Ok(("f", Some("1"))),
            ),
            (json!({"FunctionName": "f:live"}), Ok(("f", Some("live")))),
            (
                json!({"FunctionName": "f:1", "Qualifier": "1"}),
                Ok(("f", Some("1"))),
            ),
            (
                json!({"FunctionName": "f:1", "Qualifier": "2"}),
                Err("InvalidParameterValueException"),
            ),
            (
                json!({"FunctionName": "f", "Qualifier": "a b"}),
                Err("ValidationException"),
            ),
        ];
        for (doc, want) in cases {
            let input: QualifiedFunctionInput = trellis_wire::de::from_value(doc.clone()).unwrap();
            match (input.validate(&host), want) {
                (Ok(fref), Ok((name, qualifier))) => {
                    assert_eq!(fref.name, *name, "{doc}");
                    assert_eq!(fref.qualifier.as_deref(), *qualifier, "{doc}");
                }
                (Err(e), Err(code)) => assert_eq!(e.code(), *code, "{doc}"),
                (got, _) => panic!("{doc}: {got:?}"),
            }
        }
    }

    #[test]
    fn list_functions_inputs() {
        let input: ListFunctionsInput = trellis_wire::de::from_value(
            json!({"MaxItems": "2", "FunctionVersion": "ALL", "MasterRegion": "ALL"}),
        )
        .unwrap();
        let (page, all) = input.validate().unwrap();
        assert_eq!(page.size, 2);
        assert!(all);
        let input: ListFunctionsInput =
            trellis_wire::de::from_value(json!({"FunctionVersion": "SOME"})).unwrap();
        assert!(
            matches!(input.validate(), Err(LambdaError::Validation(m)) if m.contains("functionVersion"))
        );
        let input: ListFunctionsInput =
            trellis_wire::de::from_value(json!({"MaxItems": "0"})).unwrap();
        assert!(
            matches!(input.validate(), Err(LambdaError::Validation(m)) if m.contains("maxItems"))
        );
    }
}

//! Function and version operations: CreateFunction, GetFunction, GetFunctionConfiguration,
//! ListFunctions, DeleteFunction, UpdateFunctionCode, UpdateFunctionConfiguration,
//! PublishVersion and ListVersionsByFunction.
//!
//! Each mutating operation does its reads, checks and writes in one store transaction, so a
//! failed request changes nothing and concurrent writers cannot both pass a check.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use trellis_store::Tx;

use super::error::{LambdaError, LambdaResult};
use super::wire::{
    self, CreateFunctionInput, PublishVersionInput, UpdateCodeInput, UpdateConfigurationInput,
    check_revision, function_configuration, parse_body, required,
};
use super::{code_location, local_ref};
use crate::FunctionHost;
use crate::catalog::{self, Loaded};
use crate::code::{self, CodeError};
use crate::config::{
    self, DEFAULT_MEMORY, DEFAULT_TIMEOUT, FunctionConfig, FunctionDoc, VersionDoc,
    new_revision_id, now_last_modified,
};
use crate::names::{LATEST, check_qualifier, function_arn, qualified_arn, version_number};

type Params = Query<HashMap<String, String>>;

fn created(doc: Value) -> Response {
    (StatusCode::CREATED, axum::Json(doc)).into_response()
}

fn ok(doc: Value) -> Response {
    (StatusCode::OK, axum::Json(doc)).into_response()
}

/// The `FunctionConfiguration` of `$LATEST`.
fn latest_configuration(host: &FunctionHost, doc: &FunctionDoc) -> Value {
    function_configuration(
        &doc.name,
        &function_arn(host.ctx(), &doc.name),
        LATEST,
        &doc.config,
    )
}

fn version_configuration(host: &FunctionHost, doc: &VersionDoc) -> Value {
    let n = doc.version.to_string();
    function_configuration(
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
    host: &FunctionHost,
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
    host: &FunctionHost,
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

pub async fn create_function(
    State(host): State<Arc<FunctionHost>>,
    body: Bytes,
) -> LambdaResult<Response> {
    let input: CreateFunctionInput = parse_body(&body)?;
    let fref = local_ref(
        &host,
        &required(input.function_name, "functionName")?,
        false,
    )?;
    let role = required(input.role, "role")?;
    config::check_role(&role)?;
    let code_input = required(input.code, "code")?;
    if input.package_type.as_deref().is_some_and(|p| p != "Zip") {
        return Err(LambdaError::InvalidParameter(
            "Trellis runs .zip deployment packages only (PackageType Zip)".into(),
        ));
    }
    let runtime = input.runtime.ok_or_else(|| {
        LambdaError::InvalidParameter(
            "Runtime and Handler are mandatory parameters for functions created with deployment packages."
                .into(),
        )
    })?;
    let kind = config::check_runtime(&runtime)?;
    let handler = input.handler.unwrap_or_default();
    config::check_handler(&handler)?;
    config::check_handler_for_runtime(kind, &handler)?;
    let description = input.description.unwrap_or_default();
    config::check_description(&description)?;
    let timeout = match input.timeout {
        Some(t) => config::check_timeout(t)?,
        None => DEFAULT_TIMEOUT,
    };
    let memory_size = match input.memory_size {
        Some(m) => config::check_memory(m)?,
        None => DEFAULT_MEMORY,
    };
    let environment = input
        .environment
        .and_then(|e| e.variables)
        .unwrap_or_default();
    config::check_environment(&environment)?;
    let (zip, info) = zip_from(
        code_input.zip_file.as_deref(),
        code_input.s3_bucket.is_some() || code_input.s3_key.is_some(),
        code_input.image_uri.is_some(),
    )?;

    let mut doc = FunctionDoc {
        name: fref.name.clone(),
        config: FunctionConfig {
            runtime,
            handler,
            role,
            description,
            timeout,
            memory_size,
            environment,
            code_sha256: info.sha256_hex.clone(),
            code_size: info.size,
            last_modified: now_last_modified(),
            revision_id: new_revision_id(),
        },
        last_version: 0,
        last_published_digest: None,
        tags: input.tags.unwrap_or_default(),
    };
    let mut tx = host.store().write().await?;
    if catalog::get_function(&mut tx, &fref.name).await?.is_some() {
        return Err(LambdaError::Conflict(format!(
            "Function already exist: {}",
            fref.name
        )));
    }
    tx.put_blob(&info.sha256_hex, &zip).await?;
    let published = if input.publish.unwrap_or(false) {
        Some(publish(&host, &mut tx, &mut doc, None).await?)
    } else {
        None
    };
    tx.insert(&catalog::function_record(host.ctx(), &doc))
        .await?;
    tx.commit().await?;
    Ok(created(match &published {
        Some(v) => version_configuration(&host, v),
        None => latest_configuration(&host, &doc),
    }))
}

/// The configuration a qualified GetFunction/GetFunctionConfiguration returns.
async fn configuration_for(
    host: &FunctionHost,
    tx: &mut Tx,
    name: &str,
    qualifier: Option<&str>,
) -> LambdaResult<(Value, String)> {
    let function = load_function(host, tx, name).await?.doc;
    match qualifier {
        None => Ok((
            latest_configuration(host, &function),
            function.config.code_sha256,
        )),
        Some(q) if q == LATEST => {
            let doc = function_configuration(
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
            let doc = function_configuration(
                name,
                &qualified_arn(host.ctx(), name, q),
                &target.version,
                &target.config,
            );
            Ok((doc, target.config.code_sha256.clone()))
        }
    }
}

fn qualifier_param(params: &HashMap<String, String>) -> LambdaResult<Option<String>> {
    match params.get("Qualifier") {
        Some(q) => {
            check_qualifier(q)?;
            Ok(Some(q.clone()))
        }
        None => Ok(None),
    }
}

pub async fn get_function(
    State(host): State<Arc<FunctionHost>>,
    Path(function_name): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> LambdaResult<Response> {
    let fref = local_ref(&host, &function_name, true)?
        .with_qualifier(qualifier_param(&params)?.as_deref())
        .map_err(LambdaError::InvalidParameter)?;
    let mut tx = host.store().read().await?;
    let (configuration, sha) =
        configuration_for(&host, &mut tx, &fref.name, fref.qualifier.as_deref()).await?;
    let function = load_function(&host, &mut tx, &fref.name).await?.doc;
    let mut doc = json!({
        "Configuration": configuration,
        "Code": {
            "RepositoryType": "S3",
            "Location": code_location(&host, &headers, &sha),
        },
    });
    if !function.tags.is_empty() {
        doc["Tags"] = json!(function.tags);
    }
    Ok(ok(doc))
}

pub async fn get_function_configuration(
    State(host): State<Arc<FunctionHost>>,
    Path(function_name): Path<String>,
    Query(params): Params,
) -> LambdaResult<Response> {
    let fref = local_ref(&host, &function_name, true)?
        .with_qualifier(qualifier_param(&params)?.as_deref())
        .map_err(LambdaError::InvalidParameter)?;
    let mut tx = host.store().read().await?;
    let (configuration, _) =
        configuration_for(&host, &mut tx, &fref.name, fref.qualifier.as_deref()).await?;
    Ok(ok(configuration))
}

pub async fn list_functions(
    State(host): State<Arc<FunctionHost>>,
    Query(params): Params,
) -> LambdaResult<Response> {
    let page = wire::page(
        params.get("Marker").map(String::as_str),
        params.get("MaxItems").map(String::as_str),
    )?;
    let all_versions = match params.get("FunctionVersion").map(String::as_str) {
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
            versions.push((seq, latest.clone()));
            let name = latest["FunctionName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
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
    Ok(ok(wire::list_doc("Functions", items, page)))
}

pub async fn list_versions(
    State(host): State<Arc<FunctionHost>>,
    Path(function_name): Path<String>,
    Query(params): Params,
) -> LambdaResult<Response> {
    let fref = local_ref(&host, &function_name, false)?;
    let page = wire::page(
        params.get("Marker").map(String::as_str),
        params.get("MaxItems").map(String::as_str),
    )?;
    let mut tx = host.store().read().await?;
    let function = load_function(&host, &mut tx, &fref.name).await?;
    let mut items = vec![(
        0,
        function_configuration(
            &fref.name,
            &qualified_arn(host.ctx(), &fref.name, LATEST),
            LATEST,
            &function.doc.config,
        ),
    )];
    for v in catalog::list_versions(&mut tx, &fref.name).await? {
        items.push((v.record.seq, version_configuration(&host, &v.doc)));
    }
    Ok(ok(wire::list_doc("Versions", items, page)))
}

pub async fn delete_function(
    State(host): State<Arc<FunctionHost>>,
    Path(function_name): Path<String>,
    Query(params): Params,
) -> LambdaResult<Response> {
    let fref = local_ref(&host, &function_name, true)?
        .with_qualifier(qualifier_param(&params)?.as_deref())
        .map_err(LambdaError::InvalidParameter)?;
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
    host.forget(&name);
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn update_function_code(
    State(host): State<Arc<FunctionHost>>,
    Path(function_name): Path<String>,
    body: Bytes,
) -> LambdaResult<Response> {
    let input: UpdateCodeInput = parse_body(&body)?;
    let fref = local_ref(&host, &function_name, false)?;
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
        return Ok(ok(latest_configuration(&host, &doc)));
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
    Ok(ok(match &published {
        Some(v) => version_configuration(&host, v),
        None => latest_configuration(&host, &doc),
    }))
}

pub async fn update_function_configuration(
    State(host): State<Arc<FunctionHost>>,
    Path(function_name): Path<String>,
    body: Bytes,
) -> LambdaResult<Response> {
    let input: UpdateConfigurationInput = parse_body(&body)?;
    let fref = local_ref(&host, &function_name, false)?;
    let mut tx = host.store().write().await?;
    let Loaded { record, mut doc } = load_function(&host, &mut tx, &fref.name).await?;
    check_revision(input.revision_id.as_deref(), &doc.config.revision_id)?;
    let c = &mut doc.config;
    if let Some(role) = input.role {
        config::check_role(&role)?;
        c.role = role;
    }
    if let Some(runtime) = input.runtime {
        config::check_runtime(&runtime)?;
        c.runtime = runtime;
    }
    if let Some(handler) = input.handler {
        config::check_handler(&handler)?;
        c.handler = handler;
    }
    let kind = config::check_runtime(&c.runtime)?;
    config::check_handler_for_runtime(kind, &c.handler)?;
    if let Some(description) = input.description {
        config::check_description(&description)?;
        c.description = description;
    }
    if let Some(timeout) = input.timeout {
        c.timeout = config::check_timeout(timeout)?;
    }
    if let Some(memory) = input.memory_size {
        c.memory_size = config::check_memory(memory)?;
    }
    if let Some(environment) = input.environment {
        let vars = environment.variables.unwrap_or_default();
        config::check_environment(&vars)?;
        c.environment = vars;
    }
    c.last_modified = now_last_modified();
    c.revision_id = new_revision_id();
    let mut updated = catalog::function_record(host.ctx(), &doc);
    updated.seq = record.seq;
    tx.update(&updated).await?;
    tx.commit().await?;
    Ok(ok(latest_configuration(&host, &doc)))
}

pub async fn publish_version(
    State(host): State<Arc<FunctionHost>>,
    Path(function_name): Path<String>,
    body: Bytes,
) -> LambdaResult<Response> {
    let input: PublishVersionInput = parse_body(&body)?;
    let fref = local_ref(&host, &function_name, false)?;
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
    Ok(created(version_configuration(&host, &version)))
}

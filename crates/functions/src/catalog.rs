//! Functions, versions and aliases in the store: record layout, loading, and resolving a name
//! and qualifier to the version that runs.
//!
//! Layout: a function is a `lambda-function` record with id and name = the function name and the
//! unqualified ARN; a version is a `lambda-version` record `NAME:N` under it (name `N`, the
//! version ARN); an alias is a `lambda-alias` record `NAME:ALIAS` under it (name `ALIAS`, the
//! alias ARN). Functions and versions reference `blob:SHA` (their code); aliases reference the
//! versions they route to, so a version an alias uses cannot be deleted.
//!
//! Accounts: records are in their account (the API's transactions are scoped to the caller's),
//! parents and names are the plain function name, and record IDs — unique across the whole
//! store — are the function name qualified by the account (`ACCOUNT/NAME`, `ACCOUNT/NAME:N`),
//! except for the management account ([`set_home_account`]), whose IDs stay the plain names
//! its records had before accounts existed.

use std::sync::OnceLock;

use serde::Serialize;
use serde::de::DeserializeOwned;
use trellis_model::Context;
use trellis_store::{Record, StoreError, Tx};

use crate::config::{
    AliasDoc, FunctionConfig, FunctionDoc, KIND_ALIAS, KIND_FUNCTION, KIND_VERSION, VersionDoc,
    alias_id, blob_ref, version_id,
};
use crate::names::{LATEST, function_arn, qualified_arn, version_number};

/// A document and the record it was read from.
#[derive(Clone, Debug)]
pub struct Loaded<T> {
    pub record: Record,
    pub doc: T,
}

fn decode<T: DeserializeOwned>(record: Record) -> Result<Loaded<T>, StoreError> {
    let doc = serde_json::from_value(record.body.clone()).map_err(|e| {
        StoreError::Backend(format!("corrupt {} record {}: {e}", record.kind, record.id))
    })?;
    Ok(Loaded { record, doc })
}

fn body<T: Serialize>(doc: &T) -> serde_json::Value {
    serde_json::to_value(doc).unwrap_or_default()
}

/// The management account: its records' IDs are plain function names.
static HOME_ACCOUNT: OnceLock<String> = OnceLock::new();

/// Names the management account (the host does, when it starts; the first call wins).
pub fn set_home_account(account: &str) {
    let _ = HOME_ACCOUNT.set(account.to_string());
}

/// The record-ID form of function `name` of `account` (`None`: an unscoped transaction, which
/// only the management account's records are written through).
fn record_name(account: Option<&str>, name: &str) -> String {
    match account {
        Some(a) if !a.is_empty() && HOME_ACCOUNT.get().map(String::as_str) != Some(a) => {
            format!("{a}/{name}")
        }
        _ => name.to_string(),
    }
}

pub async fn get_function(
    tx: &mut Tx,
    name: &str,
) -> Result<Option<Loaded<FunctionDoc>>, StoreError> {
    let id = record_name(tx.account(), name);
    tx.get(KIND_FUNCTION, &id).await?.map(decode).transpose()
}

pub async fn get_version(
    tx: &mut Tx,
    name: &str,
    version: u64,
) -> Result<Option<Loaded<VersionDoc>>, StoreError> {
    let id = version_id(&record_name(tx.account(), name), version);
    tx.get(KIND_VERSION, &id).await?.map(decode).transpose()
}

pub async fn get_alias(
    tx: &mut Tx,
    name: &str,
    alias: &str,
) -> Result<Option<Loaded<AliasDoc>>, StoreError> {
    let id = alias_id(&record_name(tx.account(), name), alias);
    tx.get(KIND_ALIAS, &id).await?.map(decode).transpose()
}

pub async fn list_functions(tx: &mut Tx) -> Result<Vec<Loaded<FunctionDoc>>, StoreError> {
    tx.list(KIND_FUNCTION, None)
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

pub async fn list_versions(tx: &mut Tx, name: &str) -> Result<Vec<Loaded<VersionDoc>>, StoreError> {
    tx.list(KIND_VERSION, Some(name))
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

pub async fn list_aliases(tx: &mut Tx, name: &str) -> Result<Vec<Loaded<AliasDoc>>, StoreError> {
    tx.list(KIND_ALIAS, Some(name))
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

pub fn function_record(ctx: &Context, doc: &FunctionDoc) -> Record {
    Record {
        kind: KIND_FUNCTION.into(),
        id: record_name(Some(&ctx.account_id), &doc.name),
        parent: None,
        name: Some(doc.name.clone()),
        arn: Some(function_arn(ctx, &doc.name)),
        refs: vec![blob_ref(&doc.config.code_sha256)],
        body: body(doc),
        seq: 0,
    }
}

pub fn version_record(ctx: &Context, doc: &VersionDoc) -> Record {
    let n = doc.version.to_string();
    Record {
        kind: KIND_VERSION.into(),
        id: version_id(&record_name(Some(&ctx.account_id), &doc.name), doc.version),
        parent: Some(doc.name.clone()),
        name: Some(n.clone()),
        arn: Some(qualified_arn(ctx, &doc.name, &n)),
        refs: vec![blob_ref(&doc.config.code_sha256)],
        body: body(doc),
        seq: 0,
    }
}

/// The record ids of the versions an alias of `account` routes to (`$LATEST` is no record).
fn alias_refs(account: &str, doc: &AliasDoc) -> Vec<String> {
    let function = record_name(Some(account), &doc.function);
    std::iter::once(&doc.function_version)
        .chain(doc.additional_version_weights.keys())
        .filter_map(|v| version_number(v).map(|n| version_id(&function, n)))
        .collect()
}

pub fn alias_record(ctx: &Context, doc: &AliasDoc) -> Record {
    Record {
        kind: KIND_ALIAS.into(),
        id: alias_id(
            &record_name(Some(&ctx.account_id), &doc.function),
            &doc.name,
        ),
        parent: Some(doc.function.clone()),
        name: Some(doc.name.clone()),
        arn: Some(qualified_arn(ctx, &doc.function, &doc.name)),
        refs: alias_refs(&ctx.account_id, doc),
        body: body(doc),
        seq: 0,
    }
}

/// Deletes the code blob unless a function or version — of any account: blobs are shared by
/// content — still uses it.
pub async fn release_blob(tx: &mut Tx, sha256_hex: &str) -> Result<(), StoreError> {
    let reference = blob_ref(sha256_hex);
    let account = tx.account().map(str::to_string);
    tx.set_account(None);
    let mut used = false;
    for kind in [KIND_FUNCTION, KIND_VERSION] {
        match tx.list_referencing(kind, &reference).await {
            Ok(users) if users.is_empty() => {}
            Ok(_) => {
                used = true;
                break;
            }
            Err(e) => {
                tx.set_account(account.as_deref());
                return Err(e);
            }
        }
    }
    tx.set_account(account.as_deref());
    if !used {
        tx.delete_blob(sha256_hex).await?;
    }
    Ok(())
}

/// Aliases that route to `version` of `name`.
pub async fn aliases_using(
    tx: &mut Tx,
    name: &str,
    version: u64,
) -> Result<Vec<String>, StoreError> {
    let id = version_id(&record_name(tx.account(), name), version);
    Ok(tx
        .list_referencing(KIND_ALIAS, &id)
        .await?
        .into_iter()
        .filter_map(|r| r.name)
        .collect())
}

/// One version that can run: `$LATEST` or a published number, with its configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The account the function belongs to.
    pub account: String,
    pub name: String,
    pub version: String,
    pub config: FunctionConfig,
}

impl Target {
    /// The function's name qualified by its account: what the host keys its pools and
    /// admission by (two accounts may each have a function `web`).
    pub fn key(&self) -> String {
        format!("{}/{}", self.account, self.name)
    }
}

/// What a name and qualifier resolve to.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    pub name: String,
    /// The qualifier as given (version, `$LATEST` or alias).
    pub qualifier: Option<String>,
    pub primary: Target,
    /// An alias's weighted second version: share of invocations and target.
    pub additional: Option<(f64, Target)>,
}

/// Why a name did not resolve.
#[derive(Debug)]
pub enum ResolveError {
    /// `ResourceNotFoundException` with this message.
    NotFound(String),
    Store(StoreError),
}

impl From<StoreError> for ResolveError {
    fn from(e: StoreError) -> Self {
        ResolveError::Store(e)
    }
}

/// Lambda's message for a function, version or alias that is not there.
pub fn not_found_message(ctx: &Context, name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => format!("Function not found: {}", qualified_arn(ctx, name, q)),
        None => format!("Function not found: {}", function_arn(ctx, name)),
    }
}

async fn version_target(
    tx: &mut Tx,
    ctx: &Context,
    function: &FunctionDoc,
    version: &str,
) -> Result<Target, ResolveError> {
    if version == LATEST {
        return Ok(Target {
            account: ctx.account_id.clone(),
            name: function.name.clone(),
            version: LATEST.into(),
            config: function.config.clone(),
        });
    }
    let n = version_number(version).ok_or_else(|| {
        ResolveError::NotFound(not_found_message(ctx, &function.name, Some(version)))
    })?;
    let loaded = get_version(tx, &function.name, n).await?.ok_or_else(|| {
        ResolveError::NotFound(not_found_message(ctx, &function.name, Some(version)))
    })?;
    Ok(Target {
        account: ctx.account_id.clone(),
        name: function.name.clone(),
        version: n.to_string(),
        config: loaded.doc.config,
    })
}

/// Resolves a local function name and optional qualifier to what runs.
pub async fn resolve(
    tx: &mut Tx,
    ctx: &Context,
    name: &str,
    qualifier: Option<&str>,
) -> Result<Resolution, ResolveError> {
    let function = get_function(tx, name)
        .await?
        .ok_or_else(|| ResolveError::NotFound(not_found_message(ctx, name, qualifier)))?
        .doc;
    let (primary, additional) = match qualifier {
        None => (version_target(tx, ctx, &function, LATEST).await?, None),
        Some(q) if q == LATEST || version_number(q).is_some() => {
            (version_target(tx, ctx, &function, q).await?, None)
        }
        Some(alias) => {
            let alias_doc = get_alias(tx, name, alias)
                .await?
                .ok_or_else(|| ResolveError::NotFound(not_found_message(ctx, name, Some(alias))))?
                .doc;
            let primary = version_target(tx, ctx, &function, &alias_doc.function_version).await?;
            let additional = match alias_doc.additional_version_weights.iter().next() {
                Some((version, weight)) => {
                    Some((*weight, version_target(tx, ctx, &function, version).await?))
                }
                None => None,
            };
            (primary, additional)
        }
    };
    Ok(Resolution {
        name: name.to_string(),
        qualifier: qualifier.map(str::to_string),
        primary,
        additional,
    })
}

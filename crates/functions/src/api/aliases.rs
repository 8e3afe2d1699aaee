//! Alias operations: CreateAlias, GetAlias, ListAliases, UpdateAlias and DeleteAlias.
//!
//! An alias names `$LATEST` or a published version and may send a share of invocations to one
//! additional version (`RoutingConfig.AdditionalVersionWeights`).

use crate::api::Api;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use trellis_store::Tx;
use trellis_wire::Call;

use super::error::{LambdaError, LambdaResult};
use super::functions::load_function;
use super::local_ref;
use super::wire::{self, AliasConfiguration, NoContent, RoutingConfig, check_revision, required};
use crate::catalog::{self, Loaded};
use crate::config::{self, AliasDoc, new_revision_id};
use crate::names::{FunctionRef, LATEST, check_alias_name, qualified_arn, version_number};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAliasInput {
    function_name: String,
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
}

/// A checked CreateAlias; the versions it names are checked against the store.
struct NewAlias {
    fref: FunctionRef,
    name: String,
    function_version: String,
    description: String,
    weights: BTreeMap<String, f64>,
}

impl CreateAliasInput {
    fn validate(self, host: &Api) -> LambdaResult<NewAlias> {
        let fref = local_ref(host, &self.function_name, false)?;
        let name = required(self.name, "name")?;
        check_alias_name(&name)?;
        let function_version = required(self.function_version, "functionVersion")?;
        let description = self.description.unwrap_or_default();
        config::check_description(&description)?;
        Ok(NewAlias {
            fref,
            name,
            function_version,
            description,
            weights: self
                .routing_config
                .and_then(|r| r.additional_version_weights)
                .unwrap_or_default(),
        })
    }
}

/// GetAlias and DeleteAlias: the function and alias labels.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AliasNameInput {
    function_name: String,
    name: String,
}

impl AliasNameInput {
    fn validate(&self, host: &Api) -> LambdaResult<FunctionRef> {
        let fref = local_ref(host, &self.function_name, false)?;
        check_alias_name(&self.name)?;
        Ok(fref)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesInput {
    function_name: String,
    function_version: Option<String>,
    marker: Option<String>,
    max_items: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListAliasesOutput {
    aliases: Vec<AliasConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateAliasInput {
    function_name: String,
    name: String,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

fn alias_not_found(host: &Api, name: &str, alias: &str) -> LambdaError {
    LambdaError::NotFound(format!(
        "Cannot find alias arn: {}",
        qualified_arn(host.ctx(), name, alias)
    ))
}

/// Checks that `version` (`$LATEST` or a number) exists for `name`.
async fn check_version(host: &Api, tx: &mut Tx, name: &str, version: &str) -> LambdaResult<()> {
    if version == LATEST {
        return Ok(());
    }
    let exists = match version_number(version) {
        Some(n) => catalog::get_version(tx, name, n).await?.is_some(),
        None => {
            return Err(LambdaError::Validation(config::constraint(
                "functionVersion",
                version,
                "Member must satisfy regular expression pattern: (\\$LATEST|[0-9]+)",
            )));
        }
    };
    if exists {
        Ok(())
    } else {
        Err(LambdaError::NotFound(catalog::not_found_message(
            host.ctx(),
            name,
            Some(version),
        )))
    }
}

/// Checks a routing configuration against the alias's primary version.
async fn check_routing(
    host: &Api,
    tx: &mut Tx,
    name: &str,
    primary: &str,
    weights: &BTreeMap<String, f64>,
) -> LambdaResult<()> {
    if weights.len() > 1 {
        return Err(LambdaError::InvalidParameter(
            "Number of items in AdditionalVersionWeights cannot be greater than 1".into(),
        ));
    }
    for (version, weight) in weights {
        if !(0.0..=1.0).contains(weight) {
            return Err(LambdaError::Validation(config::constraint(
                "routingConfig.additionalVersionWeights",
                weight,
                "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]",
            )));
        }
        if version == primary {
            return Err(LambdaError::InvalidParameter(format!(
                "Invalid function version {version}. Function version {version} is already included in routing configuration."
            )));
        }
        if version == LATEST || primary == LATEST {
            return Err(LambdaError::InvalidParameter(
                "$LATEST is not supported for an alias pointing to more than 1 version".into(),
            ));
        }
        check_version(host, tx, name, version).await?;
    }
    Ok(())
}

pub(crate) async fn create_alias(
    host: Api,
    input: CreateAliasInput,
    _: Call,
) -> LambdaResult<AliasConfiguration> {
    let NewAlias {
        fref,
        name: alias,
        function_version,
        description,
        weights,
    } = input.validate(&host)?;
    let mut tx = host.store().write().await?;
    load_function(&host, &mut tx, &fref.name).await?;
    check_version(&host, &mut tx, &fref.name, &function_version).await?;
    check_routing(&host, &mut tx, &fref.name, &function_version, &weights).await?;
    if catalog::get_alias(&mut tx, &fref.name, &alias)
        .await?
        .is_some()
    {
        return Err(LambdaError::Conflict(format!(
            "Alias already exists: {}",
            qualified_arn(host.ctx(), &fref.name, &alias)
        )));
    }
    let doc = AliasDoc {
        function: fref.name.clone(),
        name: alias.clone(),
        function_version,
        description,
        additional_version_weights: weights,
        revision_id: new_revision_id(),
    };
    tx.insert(&catalog::alias_record(host.ctx(), &doc)).await?;
    tx.commit().await?;
    let arn = qualified_arn(host.ctx(), &fref.name, &alias);
    Ok(AliasConfiguration::new(&arn, &doc))
}

pub(crate) async fn get_alias(
    host: Api,
    input: AliasNameInput,
    _: Call,
) -> LambdaResult<AliasConfiguration> {
    let fref = input.validate(&host)?;
    let alias = input.name;
    let mut tx = host.store().read().await?;
    load_function(&host, &mut tx, &fref.name).await?;
    let doc = catalog::get_alias(&mut tx, &fref.name, &alias)
        .await?
        .ok_or_else(|| alias_not_found(&host, &fref.name, &alias))?
        .doc;
    let arn = qualified_arn(host.ctx(), &fref.name, &alias);
    Ok(AliasConfiguration::new(&arn, &doc))
}

pub(crate) async fn list_aliases(
    host: Api,
    input: ListAliasesInput,
    _: Call,
) -> LambdaResult<ListAliasesOutput> {
    let fref = local_ref(&host, &input.function_name, false)?;
    let page = wire::page(input.marker.as_deref(), input.max_items.as_deref())?;
    let version = input.function_version;
    let mut tx = host.store().read().await?;
    load_function(&host, &mut tx, &fref.name).await?;
    let items: Vec<_> = catalog::list_aliases(&mut tx, &fref.name)
        .await?
        .into_iter()
        .filter(|a| {
            version
                .as_ref()
                .is_none_or(|v| a.doc.function_version == *v)
        })
        .map(|a| {
            let arn = qualified_arn(host.ctx(), &fref.name, &a.doc.name);
            (a.record.seq, AliasConfiguration::new(&arn, &a.doc))
        })
        .collect();
    let (aliases, next_marker) = wire::paginate(items, page);
    Ok(ListAliasesOutput {
        aliases,
        next_marker,
    })
}

pub(crate) async fn update_alias(
    host: Api,
    input: UpdateAliasInput,
    _: Call,
) -> LambdaResult<AliasConfiguration> {
    let fref = local_ref(&host, &input.function_name, false)?;
    let alias = input.name;
    check_alias_name(&alias)?;
    let mut tx = host.store().write().await?;
    load_function(&host, &mut tx, &fref.name).await?;
    let Loaded { record, mut doc } = catalog::get_alias(&mut tx, &fref.name, &alias)
        .await?
        .ok_or_else(|| alias_not_found(&host, &fref.name, &alias))?;
    check_revision(input.revision_id.as_deref(), &doc.revision_id)?;
    if let Some(version) = input.function_version {
        check_version(&host, &mut tx, &fref.name, &version).await?;
        doc.function_version = version;
    }
    if let Some(description) = input.description {
        config::check_description(&description)?;
        doc.description = description;
    }
    if let Some(routing) = input.routing_config {
        doc.additional_version_weights = routing.additional_version_weights.unwrap_or_default();
    }
    check_routing(
        &host,
        &mut tx,
        &fref.name,
        &doc.function_version,
        &doc.additional_version_weights,
    )
    .await?;
    doc.revision_id = new_revision_id();
    let mut updated = catalog::alias_record(host.ctx(), &doc);
    updated.seq = record.seq;
    tx.update(&updated).await?;
    tx.commit().await?;
    let arn = qualified_arn(host.ctx(), &fref.name, &alias);
    Ok(AliasConfiguration::new(&arn, &doc))
}

pub(crate) async fn delete_alias(
    host: Api,
    input: AliasNameInput,
    _: Call,
) -> LambdaResult<NoContent> {
    let fref = input.validate(&host)?;
    let alias = input.name;
    let mut tx = host.store().write().await?;
    load_function(&host, &mut tx, &fref.name).await?;
    // Deleting an alias that is not there succeeds, as in Lambda (the operation models no
    // ResourceNotFoundException).
    if let Some(existing) = catalog::get_alias(&mut tx, &fref.name, &alias).await? {
        tx.delete(&existing.record.kind, &existing.record.id)
            .await?;
        tx.commit().await?;
    }
    Ok(NoContent {})
}

//! Loading a snapshot from the store: the records of [`trellis_snapshot::KINDS`] read in one read transaction (one
//! consistent revision), each kind's pages of JSON text decoded straight into the model
//! documents, then the pure [`trellis_snapshot::build`] on a blocking thread.

use serde::de::DeserializeOwned;
use trellis_model::Context;
use trellis_model::resources::target_group::Target;
use trellis_snapshot::{
    ACCESS_LOG_KIND, AUTH_POLICY_KIND, CompileError, Documents, LOG_GROUP_KIND, Snapshot,
    TARGET_KIND, clients,
};
use trellis_store::{Store, StoreError, Tx};

/// Why a load produced no snapshot. A store failure is worth retrying; the others are not until
/// the configuration changes.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The runtime shut down while the build ran on its blocking thread.
    #[error("the snapshot build was interrupted: {0}")]
    Interrupted(String),
}

/// The pages [`load`] asks the store for: large enough that a page is cheap per record, small
/// enough that one page's JSON text stays a few megabytes.
const PAGE: u32 = 5_000;

/// Reads the whole desired state in one read transaction and compiles it.
pub async fn load(store: &Store, ctx: &Context) -> Result<Snapshot, LoadError> {
    let mut tx = store.read().await?;
    let revision = tx.revision();
    // Each kind's records come as a few pages of JSON text decoded straight into the model
    // types (`Tx::list_json`): one row per page instead of one per record, and no
    // `serde_json::Value` tree per record, which at 10,000 services was most of a compile's
    // time and memory.
    let docs = read_documents(&mut tx).await;
    // Everything is read; ending the transaction now keeps the reader short (an open SQLite
    // reader holds back WAL checkpoints). A failed rollback cannot make the reads wrong.
    if let Err(e) = tx.rollback().await {
        tracing::debug!(error = %e, "ending the snapshot read transaction failed");
    }
    let docs = docs?;
    // Building is pure CPU: about half a second at 10,000 services. On a blocking thread it
    // does not stall the runtime's workers, which with `--worker-threads 1` would otherwise
    // stop every proxied request and API call for the whole build.
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || trellis_snapshot::build(revision, &ctx, docs))
        .await
        .map_err(|e| match e.try_into_panic() {
            // A bug in the build stays a panic of the caller, as when it ran inline.
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => LoadError::Interrupted(e.to_string()),
        })
}

/// Reads every record of [`trellis_snapshot::KINDS`] from the store, page by page, decoding each page's JSON text
/// straight into the documents: only one page's text is held at a time.
async fn read_documents(tx: &mut Tx) -> Result<Documents, LoadError> {
    let mut d = Documents::default();
    read_kind(tx, "service-network", &mut d.networks, |_, doc| doc).await?;
    read_kind(tx, "service", &mut d.services, |_, doc| doc).await?;
    read_kind(
        tx,
        "service-network-service-association",
        &mut d.associations,
        |_, doc| doc,
    )
    .await?;
    read_kind(tx, "listener", &mut d.listeners, |_, doc| doc).await?;
    read_kind(tx, "rule", &mut d.rules, |_, doc| doc).await?;
    read_kind(tx, "target-group", &mut d.target_groups, |_, doc| doc).await?;
    let mut read: Vec<(Option<String>, Target, String)> = Vec::new();
    read_kind(tx, TARGET_KIND, &mut read, |(id, parent), doc| {
        (parent, doc, id)
    })
    .await?;
    d.targets.reserve_exact(read.len());
    for (parent, target, id) in read {
        let Some(tg) = parent else {
            return Err(trellis_snapshot::no_parent(TARGET_KIND, id).into());
        };
        d.targets.push((tg, target));
    }
    read_kind(tx, AUTH_POLICY_KIND, &mut d.auth_policies, |_, doc| doc).await?;
    read_kind(
        tx,
        trellis_snapshot::INSTANCE_KIND,
        &mut d.instances,
        |_, doc| doc,
    )
    .await?;
    read_kind(tx, ACCESS_LOG_KIND, &mut d.access_logs, |_, doc| doc).await?;
    read_kind(tx, LOG_GROUP_KIND, &mut d.log_groups, |_, doc| doc).await?;
    read_kind(tx, clients::VPC_KIND, &mut d.vpcs, |_, doc| doc).await?;
    read_kind(
        tx,
        clients::SECURITY_GROUP_KIND,
        &mut d.security_groups,
        |_, doc| doc,
    )
    .await?;
    read_kind(
        tx,
        clients::VPC_ASSOCIATION_KIND,
        &mut d.vpc_associations,
        |_, doc| doc,
    )
    .await?;
    Ok(d)
}

/// Appends every record of `kind` to `out`, `make` turning (id and parent, document) into an
/// element.
async fn read_kind<T: DeserializeOwned, E>(
    tx: &mut Tx,
    kind: &str,
    out: &mut Vec<E>,
    make: impl Fn((String, Option<String>), T) -> E,
) -> Result<(), LoadError> {
    let mut after = 0;
    while let Some(page) = tx.list_json(kind, after, PAGE).await? {
        after = page.last_seq;
        let rows: Vec<(String, Option<String>, T)> = match serde_json::from_str(&page.json) {
            Ok(rows) => rows,
            Err(e) => return Err(page_error::<T>(kind, &page.json, e).into()),
        };
        out.reserve(rows.len());
        out.extend(
            rows.into_iter()
                .map(|(id, parent, doc)| make((id, parent), doc)),
        );
    }
    Ok(())
}

/// Names the record of a page that failed to decode (the error path only: the page is decoded
/// again record by record).
fn page_error<T: DeserializeOwned>(kind: &str, json: &str, e: serde_json::Error) -> CompileError {
    let rows: Vec<(String, Option<String>, serde_json::Value)> = match serde_json::from_str(json) {
        Ok(rows) => rows,
        Err(_) => {
            return CompileError::Document {
                kind: kind.to_string(),
                id: "?".into(),
                reason: e.to_string(),
            };
        }
    };
    for (id, _, body) in rows {
        if let Err(e) = T::deserialize(&body) {
            return CompileError::Document {
                kind: kind.to_string(),
                id,
                reason: e.to_string(),
            };
        }
    }
    CompileError::Document {
        kind: kind.to_string(),
        id: "?".into(),
        reason: e.to_string(),
    }
}

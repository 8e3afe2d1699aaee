//! The function host: the one entry point for invoking functions, used by the Lambda `Invoke`
//! API and by the data plane's LAMBDA target groups alike.
//!
//! [`FunctionHost::invoke`] takes what a target names — a function name, partial ARN or full
//! ARN, optionally qualified with a version or alias — and returns the function's payload with
//! Lambda's error signalling. Functions this Trellis holds in its store run in local runtime
//! processes; any other function goes to the remote endpoint when one is configured.
//!
//! Resolution (name + qualifier → version and configuration) reads the store, and is cached
//! per store revision: the cache is dropped whenever the change feed moves, so an update is seen
//! by the next invocation on this node, and by other nodes as soon as their feed follows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::watch;
use trellis_model::Context;
use trellis_store::{Revision, Store, StoreError};

use crate::catalog::{self, Resolution, ResolveError, Target};
use crate::code;
use crate::config::runtime_kind;
use crate::isolation::{Isolation, IsolationConfig};
use crate::logs::FunctionLog;
use crate::names::{FunctionRef, parse_function_name};
use crate::pool::{PoolKey, Pools};
use crate::remote::{RemoteClient, RemoteConfig};
use crate::runtime_api::Invocation;
use crate::sandbox::{
    Failure, NODE_BOOTSTRAP, NODE_BOOTSTRAP_FILE, PYTHON_BOOTSTRAP, PYTHON_BOOTSTRAP_FILE,
    SandboxSpec,
};

pub use trellis_lambda_event::{InvokeError, InvokeOutcome, MAX_SYNC_PAYLOAD};
/// Lambda's limit for an asynchronous (`Event`) invocation's payload.
pub const MAX_ASYNC_PAYLOAD: usize = 1_048_576;

/// Defaults of [`HostConfig`].
pub const DEFAULT_CONCURRENCY: usize = 10;
pub const DEFAULT_QUEUE_DEPTH: usize = 100;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// How the host runs.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The data dir: logs go to `logs/functions/`.
    pub data_dir: PathBuf,
    /// Where code is unpacked (and the bootstrap scripts written); emptied at start.
    pub code_dir: PathBuf,
    /// How runtime processes are confined.
    pub isolation: IsolationConfig,
    /// Partition, region and account of local functions' ARNs.
    pub ctx: Context,
    /// Concurrent invocations per function (the runtime processes it may have busy at once).
    pub concurrency: usize,
    /// Invocations per function that may wait for a free slot before further ones are
    /// throttled.
    pub queue_depth: usize,
    /// Idle runtime processes are stopped after this long.
    pub idle_timeout: Duration,
    /// Programs for the Node.js and Python runtimes.
    pub node: String,
    pub python: String,
    /// Where invocations of functions not in the store go.
    pub remote: Option<RemoteConfig>,
    /// Signs `Code.Location` download links. Every node of one store must use the same key for
    /// a link one node issued to work on another (`trellis serve` takes it from the store);
    /// the default is random, valid in this process only.
    pub code_link_key: CodeLinkKey,
}

/// The HMAC key of code-download links; kept out of `Debug` output.
#[derive(Clone)]
pub struct CodeLinkKey(pub [u8; 32]);

impl std::fmt::Debug for CodeLinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeLinkKey(..)")
    }
}

impl HostConfig {
    pub fn new(data_dir: PathBuf, ctx: Context) -> HostConfig {
        HostConfig {
            code_dir: data_dir.join("functions"),
            isolation: IsolationConfig::default(),
            data_dir,
            ctx,
            concurrency: DEFAULT_CONCURRENCY,
            queue_depth: DEFAULT_QUEUE_DEPTH,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            node: "node".into(),
            python: "python3".into(),
            remote: None,
            code_link_key: CodeLinkKey(rand::random()),
        }
    }
}

/// `X-Amz-Invocation-Type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InvocationType {
    #[default]
    RequestResponse,
    Event,
    DryRun,
}

/// Everything about an invocation besides the target and the payload.
#[derive(Clone, Debug, Default)]
pub struct InvokeOptions {
    pub invocation_type: InvocationType,
    /// `LogType: Tail`: return the last 4 KB of the invocation's log.
    pub log_tail: bool,
    /// `X-Amz-Client-Context` as sent (base64 of a JSON document).
    pub client_context_base64: Option<String>,
    /// A `Qualifier` given separately from the function name; must agree with one in the name.
    pub qualifier: Option<String>,
}

/// Store failures while resolving or fetching code are the host's own (`ServiceException`).
/// A function rather than a `From` impl: [`InvokeError`] is `trellis_lambda_event`'s, which
/// knows no store.
fn store_error(e: StoreError) -> InvokeError {
    InvokeError::Internal(format!("store: {e}"))
}

struct ResolutionCache {
    revision: Revision,
    entries: HashMap<(String, String, Option<String>), Arc<Resolution>>,
}

/// The Lambda-compatible function host.
pub struct FunctionHost {
    store: Store,
    config: HostConfig,
    pools: Pools,
    remote: Option<RemoteClient>,
    runtime_dir: PathBuf,
    isolation: Arc<Isolation>,
    /// The tree digest of every code dir this process unpacked, checked before a version's
    /// processes start.
    unpacked: Mutex<HashMap<String, String>>,
    /// Held while a code dir is checked or unpacked: an unpack replaces the dir, which must not
    /// happen under another invocation that has just been handed it.
    unpacking: tokio::sync::Mutex<()>,
    feed: watch::Receiver<Revision>,
    cache: Mutex<ResolutionCache>,
    logs: Mutex<HashMap<String, Arc<FunctionLog>>>,
    sweeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// This host, for tasks that outlive the call that started them (asynchronous invocations).
    me: Weak<FunctionHost>,
}

impl std::fmt::Debug for FunctionHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionHost")
            .field("data_dir", &self.config.data_dir)
            .field("concurrency", &self.config.concurrency)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// The data plane's LAMBDA target groups invoke through this (synchronously, `RequestResponse`).
impl trellis_lambda_event::FunctionInvoker for FunctionHost {
    fn invoke<'a>(
        &'a self,
        function: &'a str,
        event: Bytes,
    ) -> trellis_lambda_event::InvokeFuture<'a> {
        Box::pin(async move {
            // A target group names its function by ARN, and RegisterTargets checked it is a
            // function of the group's own account: the ARN's account is the one to look in.
            let account = parse_function_name(function, true)
                .ok()
                .and_then(|f| f.account)
                .unwrap_or_else(|| self.config.ctx.account_id.clone());
            let ctx = Context {
                account_id: account,
                ..self.config.ctx.clone()
            };
            FunctionHost::invoke(self, &ctx, function, event).await
        })
    }
}

impl FunctionHost {
    /// Prepares the data dir (bootstrap scripts, leftovers of interrupted unpacks) and starts the
    /// idle-process sweep. Must be called inside a Tokio runtime.
    pub fn new(store: Store, config: HostConfig) -> Result<Arc<FunctionHost>, String> {
        let remote = match &config.remote {
            Some(remote) => Some(RemoteClient::new(remote.clone())?),
            None => None,
        };
        let root = config.code_dir.clone();
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        // Unpacked code is a cache, and what an earlier run left is not trusted.
        code::reset(&root).map_err(|e| format!("cannot empty {}: {e}", root.display()))?;
        let runtime_dir = root.join(code::RUNTIME_DIR);
        std::fs::create_dir_all(&runtime_dir)
            .map_err(|e| format!("cannot create {}: {e}", runtime_dir.display()))?;
        for (file, content) in [
            (PYTHON_BOOTSTRAP_FILE, PYTHON_BOOTSTRAP),
            (NODE_BOOTSTRAP_FILE, NODE_BOOTSTRAP),
        ] {
            let path = runtime_dir.join(file);
            std::fs::write(&path, content)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        code::seal_dir(&runtime_dir)
            .map_err(|e| format!("cannot seal {}: {e}", runtime_dir.display()))?;
        let isolation = Arc::new(Isolation::probe(
            config.isolation.clone(),
            &config.python,
            &config.node,
        ));
        crate::catalog::set_home_account(&config.ctx.account_id);
        let feed = store.subscribe();
        let revision = *feed.borrow();
        let host = Arc::new_cyclic(|me| FunctionHost {
            me: me.clone(),
            store,
            pools: Pools::new(config.concurrency, config.queue_depth),
            remote,
            runtime_dir,
            isolation,
            unpacked: Mutex::new(HashMap::new()),
            unpacking: tokio::sync::Mutex::new(()),
            feed,
            cache: Mutex::new(ResolutionCache {
                revision,
                entries: HashMap::new(),
            }),
            logs: Mutex::new(HashMap::new()),
            sweeper: Mutex::new(None),
            config,
        });
        let sweeper = tokio::spawn(sweep(Arc::downgrade(&host)));
        *host.sweeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(sweeper);
        Ok(host)
    }

    /// The store as a whole (every account's functions, and the code blobs); the Lambda API's
    /// handlers use their caller's account's view ([`crate::api::Api`]).
    pub fn global_store(&self) -> &Store {
        &self.store
    }

    /// The management account's context (`--account-id`, the region).
    pub fn home_ctx(&self) -> &Context {
        &self.config.ctx
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// How runtime processes are confined here, and what is missing when they cannot be.
    pub fn isolation(&self) -> &Arc<Isolation> {
        &self.isolation
    }

    /// Whether invocations of unknown functions go to a remote endpoint.
    pub fn has_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Invokes synchronously (`RequestResponse`) without a log tail: what a LAMBDA target group
    /// needs. `target` is a function name, partial or full ARN, optionally qualified.
    /// `ctx` is the account the function is looked up in (the caller's).
    pub async fn invoke(
        &self,
        ctx: &Context,
        target: &str,
        payload: Bytes,
    ) -> Result<InvokeOutcome, InvokeError> {
        self.invoke_with(ctx, target, payload, &InvokeOptions::default())
            .await
    }

    /// Invokes with every option of the `Invoke` API.
    pub async fn invoke_with(
        &self,
        ctx: &Context,
        target: &str,
        payload: Bytes,
        options: &InvokeOptions,
    ) -> Result<InvokeOutcome, InvokeError> {
        let fref = parse_function_name(target, true)
            .map_err(|e| InvokeError::InvalidName(e.to_string()))?
            .with_qualifier(options.qualifier.as_deref())
            .map_err(InvokeError::InvalidParameter)?;
        check_payload(&payload, options.invocation_type)?;

        // The remote endpoint is called with the operator's credentials: only for the
        // management account (the operator's own), never on a member account's behalf.
        let remote_allowed = self.remote.is_some() && ctx.account_id == self.config.ctx.account_id;
        if !fref.is_local(ctx) {
            if !remote_allowed {
                return Err(InvokeError::NotFound(format!(
                    "Function not found: {}",
                    fref.arn(ctx)
                )));
            }
            return self.invoke_remote(ctx, &fref, payload, options).await;
        }
        let resolution = match self
            .resolve(ctx, &fref.name, fref.qualifier.as_deref())
            .await
        {
            Ok(r) => r,
            Err(ResolveError::NotFound(_)) if remote_allowed => {
                return self.invoke_remote(ctx, &fref, payload, options).await;
            }
            Err(ResolveError::NotFound(message)) => return Err(InvokeError::NotFound(message)),
            Err(ResolveError::Store(e)) => return Err(store_error(e)),
        };
        let target = pick(&resolution);
        let invoked_arn = fref.arn(ctx);
        match options.invocation_type {
            InvocationType::DryRun => Ok(InvokeOutcome {
                status: 204,
                payload: Bytes::new(),
                function_error: None,
                log_tail: None,
                executed_version: Some(target.version.clone()),
            }),
            InvocationType::Event => {
                let host = self.me.clone();
                let target = target.clone();
                let options = options.clone();
                let executed_version = target.version.clone();
                tokio::spawn(async move {
                    let Some(host) = host.upgrade() else { return };
                    match host
                        .run_local(&target, &invoked_arn, payload, &options)
                        .await
                    {
                        Ok(outcome) if outcome.function_error.is_some() => tracing::info!(
                            function = %target.name,
                            version = %target.version,
                            "asynchronous invocation failed (see the function log)"
                        ),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(function = %target.name, error = %e, "asynchronous invocation was not run")
                        }
                    }
                });
                Ok(InvokeOutcome {
                    status: 202,
                    payload: Bytes::new(),
                    function_error: None,
                    log_tail: None,
                    executed_version: Some(executed_version),
                })
            }
            InvocationType::RequestResponse => {
                self.run_local(target, &invoked_arn, payload, options).await
            }
        }
    }

    async fn invoke_remote(
        &self,
        ctx: &Context,
        fref: &FunctionRef,
        payload: Bytes,
        options: &InvokeOptions,
    ) -> Result<InvokeOutcome, InvokeError> {
        match &self.remote {
            Some(remote) => remote.invoke(fref, payload, options).await,
            None => Err(InvokeError::NotFound(format!(
                "Function not found: {}",
                fref.arn(ctx)
            ))),
        }
    }

    /// Resolves a local function, from the cache when the store has not moved since.
    pub async fn resolve(
        &self,
        ctx: &Context,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Arc<Resolution>, ResolveError> {
        let key = (
            ctx.account_id.clone(),
            name.to_string(),
            qualifier.map(str::to_string),
        );
        let revision = *self.feed.borrow();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.revision != revision {
                cache.revision = revision;
                cache.entries.clear();
            }
            if let Some(hit) = cache.entries.get(&key) {
                return Ok(hit.clone());
            }
        }
        let mut tx = self.store.scoped(&ctx.account_id).read().await?;
        let resolution = Arc::new(catalog::resolve(&mut tx, ctx, name, qualifier).await?);
        let seen = tx.revision();
        drop(tx);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Only cache what was read at the revision the cache stands for; a newer read is
        // right but the cache would mix revisions.
        if cache.revision == seen {
            cache.entries.insert(key, resolution.clone());
        }
        Ok(resolution)
    }

    fn log_for(&self, target: &Target) -> Arc<FunctionLog> {
        // The management account's functions log where they always did; another account's in
        // a directory of its own.
        let account =
            (target.account != self.config.ctx.account_id).then_some(target.account.as_str());
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(target.key())
            .or_insert_with(|| {
                Arc::new(FunctionLog::at(crate::logs::log_path_in(
                    &self.config.data_dir,
                    account,
                    &target.name,
                )))
            })
            .clone()
    }

    /// The unpacked code of `sha256_hex`: the dir this process unpacked if it is unchanged
    /// (its tree digest is checked), else fetched from the store (its SHA-256 checked) and
    /// unpacked afresh.
    async fn code_dir(&self, sha256_hex: &str) -> Result<(PathBuf, String), InvokeError> {
        let _unpacking = self.unpacking.lock().await;
        let dir = code::code_dir(&self.config.code_dir, sha256_hex);
        let recorded = self
            .unpacked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(sha256_hex)
            .cloned();
        if let Some(recorded) = recorded {
            let check = dir.clone();
            let current = tokio::task::spawn_blocking(move || code::tree_digest(&check))
                .await
                .ok()
                .and_then(Result::ok);
            if current.as_ref() == Some(&recorded) {
                return Ok((dir, recorded));
            }
            tracing::warn!(code = %sha256_hex, dir = %dir.display(), "unpacked code changed on disk; unpacking it again");
        }
        let zip = {
            let mut tx = self.store.read().await.map_err(store_error)?;
            tx.get_blob(sha256_hex).await.map_err(store_error)?
        }
        .ok_or_else(|| {
            InvokeError::Internal(format!("the code {sha256_hex} is missing from the store"))
        })?;
        let root = self.config.code_dir.clone();
        let sha = sha256_hex.to_string();
        let (dir, digest) = tokio::task::spawn_blocking(move || code::unpack(&root, &sha, &zip))
            .await
            .map_err(|e| InvokeError::Internal(format!("unpacking code: {e}")))?
            .map_err(|e| InvokeError::Internal(format!("unpacking code {sha256_hex}: {e}")))?;
        self.unpacked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(sha256_hex.to_string(), digest.clone());
        Ok((dir, digest))
    }

    async fn spec_for(&self, target: &Target) -> Result<Arc<SandboxSpec>, InvokeError> {
        let config = &target.config;
        let kind = runtime_kind(&config.runtime).ok_or_else(|| {
            InvokeError::InvalidParameter(format!(
                "The runtime {} is not supported by Trellis",
                config.runtime
            ))
        })?;
        let (code_dir, code_digest) = self.code_dir(&config.code_sha256).await?;
        Ok(Arc::new(SandboxSpec {
            function_name: target.name.clone(),
            version: target.version.clone(),
            runtime: config.runtime.clone(),
            kind,
            handler: config.handler.clone(),
            code_dir,
            code_digest,
            runtime_dir: self.runtime_dir.clone(),
            environment: config.environment.clone(),
            region: self.config.ctx.region.clone(),
            timeout: Duration::from_secs(u64::from(config.timeout)),
            memory_mb: config.memory_size,
            node: self.config.node.clone(),
            python: self.config.python.clone(),
            log: self.log_for(target),
            isolation: self.isolation.clone(),
        }))
    }

    async fn run_local(
        &self,
        target: &Target,
        invoked_arn: &str,
        payload: Bytes,
        options: &InvokeOptions,
    ) -> Result<InvokeOutcome, InvokeError> {
        if let Some(missing) = &self.isolation.unavailable {
            return Err(InvokeError::IsolationUnavailable(format!(
                "Trellis cannot isolate function runtimes on this host; missing: {missing}. \
                 Provide it, or start trellis with --function-isolation none (development only: \
                 functions then run unconfined as the server's user)."
            )));
        }
        let _permit = self
            .pools
            .admit(&target.key())
            .await
            .map_err(|_| InvokeError::TooManyRequests)?;
        let key: PoolKey = (target.key(), target.version.clone());
        let digest = target.config.execution_digest();
        let client_context = options.client_context_base64.as_ref().and_then(|cc| {
            base64::engine::general_purpose::STANDARD
                .decode(cc)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        });
        let mut attempt = 0;
        let completed = loop {
            attempt += 1;
            let pool = match self.pools.existing(&key, &digest) {
                Some(pool) => pool,
                None => {
                    let spec = self.spec_for(target).await?;
                    self.pools.install(key.clone(), digest.clone(), spec)
                }
            };
            let invocation = Invocation {
                request_id: uuid::Uuid::new_v4().to_string(),
                payload: payload.clone(),
                invoked_arn: invoked_arn.to_string(),
                client_context: client_context.clone(),
                timeout: pool.spec.timeout,
            };
            let completed = self.pools.run(&key, &pool, invocation).await.map_err(|e| {
                InvokeError::Internal(format!("cannot start a runtime process: {e}"))
            })?;
            // The code changed on disk under a new process: nothing ran. Its pools go, and the
            // next attempt unpacks the stored package again.
            if attempt == 1 && matches!(completed.outcome, Err(Failure::CodeChanged)) {
                self.pools.retire_function(&target.key());
                continue;
            }
            break completed;
        };
        let log_tail = options
            .log_tail
            .then(|| base64::engine::general_purpose::STANDARD.encode(&completed.tail));
        let (payload, function_error) = completed.into_payload();
        Ok(InvokeOutcome {
            status: 200,
            payload,
            function_error,
            log_tail,
            executed_version: Some(target.version.clone()),
        })
    }

    /// Stops the runtime processes of `account`'s function `name` (after a delete, or when its
    /// code changed).
    pub fn forget(&self, account: &str, name: &str) {
        self.pools.retire_function(&format!("{account}/{name}"));
    }

    /// Process ids of the idle runtime processes of one version of the management account's
    /// function `name` (diagnostics, tests).
    pub fn idle_pids(&self, name: &str, version: &str) -> Vec<u32> {
        let key = format!("{}/{name}", self.config.ctx.account_id);
        self.pools
            .get(&(key, version.to_string()))
            .map(|p| p.idle_pids())
            .unwrap_or_default()
    }

    /// How many invocations of the management account's function `name` wait for a free
    /// concurrency slot (diagnostics, tests).
    pub fn queued(&self, name: &str) -> usize {
        self.pools
            .waiting(&format!("{}/{name}", self.config.ctx.account_id))
    }

    /// Kills every runtime process. Call at shutdown.
    pub fn shutdown(&self) {
        if let Some(task) = self
            .sweeper
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
        self.pools.shutdown();
        // Busy sandboxes too, and their cgroups, which their exit tasks would not live to remove.
        self.isolation.shutdown();
        // Unpacked code is a cache that the next start would empty anyway.
        if code::reset(&self.config.code_dir).is_ok() {
            let _ = std::fs::remove_dir(&self.config.code_dir);
        }
    }
}

/// Payload checks Lambda makes before running anything.
fn check_payload(payload: &[u8], invocation_type: InvocationType) -> Result<(), InvokeError> {
    let limit = match invocation_type {
        InvocationType::Event => MAX_ASYNC_PAYLOAD,
        _ => MAX_SYNC_PAYLOAD,
    };
    if payload.len() > limit {
        return Err(InvokeError::RequestTooLarge(format!(
            "Request must be smaller than {limit} bytes for the InvokeFunction operation"
        )));
    }
    if !payload.is_empty()
        && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(payload)
    {
        return Err(InvokeError::InvalidRequestContent(format!(
            "Could not parse request body into json: Could not parse payload into json: {e}"
        )));
    }
    Ok(())
}

/// Picks the version an invocation runs: an alias's additional version gets its share.
fn pick(resolution: &Resolution) -> &Target {
    match &resolution.additional {
        Some((weight, additional)) if rand::random::<f64>() < *weight => additional,
        _ => &resolution.primary,
    }
}

/// Stops idle runtime processes now and then, until the host is dropped.
async fn sweep(host: Weak<FunctionHost>) {
    loop {
        let interval = match host.upgrade() {
            Some(h) => (h.config.idle_timeout / 4)
                .clamp(Duration::from_millis(100), Duration::from_secs(30)),
            None => return,
        };
        tokio::time::sleep(interval).await;
        match host.upgrade() {
            Some(h) => h.pools.sweep(h.config.idle_timeout),
            None => return,
        }
    }
}

impl Drop for FunctionHost {
    fn drop(&mut self) {
        self.pools.shutdown();
        self.isolation.shutdown();
    }
}

//! The function host in `trellis serve`: its flags (`--lambda-endpoint`,
//! `--function-concurrency`, the `--function-isolation` family), their validation before anything
//! binds, and starting and stopping the host whose Lambda API the API address serves.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use trellis_functions::{FunctionHost, HostConfig, IsolationConfig, IsolationMode, RemoteConfig};
use trellis_model::Context;
use trellis_store::Store;

/// The longest `--function-concurrency`: more runtime processes per function than a single
/// machine should start.
const MAX_FUNCTION_CONCURRENCY: u32 = 1000;

#[derive(Args, Debug)]
pub struct FunctionArgs {
    /// Lambda-Invoke-compatible endpoint (AWS Lambda, another Trellis, …) for functions this
    /// Trellis does not host; requests are SigV4-signed for `lambda` with AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN from the environment.
    #[arg(long, value_name = "URL")]
    lambda_endpoint: Option<String>,
    /// Invocations of one function that may run at once (each in its own runtime process);
    /// further ones queue, and beyond the queue are throttled.
    #[arg(long, value_name = "N", default_value_t = 10)]
    function_concurrency: u32,
    /// How runtime processes are confined. `sandbox`: each in its own sandbox (own uid, PID and
    /// mount namespaces via bubblewrap, memory and process limits via cgroups; needs root,
    /// `bwrap`, `setpriv` and writable cgroups, else functions are refused). `none`: unconfined,
    /// as the server's user — development only, never with untrusted code.
    #[arg(long, value_enum, value_name = "MODE", default_value = "sandbox")]
    function_isolation: IsolationArg,
    /// First uid (and gid) of sandboxes; each live sandbox gets one of the 65536 from here.
    #[arg(long, value_name = "UID", default_value_t = trellis_functions::isolation::DEFAULT_UID_BASE)]
    function_uid_base: u32,
    /// Processes and threads one sandbox may have (its cgroup's pids.max).
    #[arg(long, value_name = "N", default_value_t = trellis_functions::isolation::DEFAULT_PIDS_MAX)]
    function_pids_max: u32,
    /// Where deployment packages are unpacked (outside the data dir; emptied at start). Default:
    /// /var/lib/trellis-code/<hash of the data dir> as root, else
    /// $TMPDIR/trellis-code-<uid>/<hash of the data dir>.
    #[arg(long, value_name = "DIR")]
    function_code_dir: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum IsolationArg {
    Sandbox,
    None,
}

impl FunctionArgs {
    /// Checks the flags (and the credentials `--lambda-endpoint` needs) before anything binds.
    pub fn check(&self, region: &str) -> anyhow::Result<Option<RemoteConfig>> {
        if !(1..=MAX_FUNCTION_CONCURRENCY).contains(&self.function_concurrency) {
            bail!(
                "--function-concurrency {} must be between 1 and {MAX_FUNCTION_CONCURRENCY}",
                self.function_concurrency
            );
        }
        if self.function_pids_max < 8 {
            bail!(
                "--function-pids-max {} must be at least 8 (a runtime needs a few threads)",
                self.function_pids_max
            );
        }
        if self.function_uid_base == 0
            || u64::from(self.function_uid_base)
                + u64::from(trellis_functions::isolation::UID_COUNT)
                >= u64::from(u32::MAX)
        {
            bail!(
                "--function-uid-base {} must be above 0 and leave room for {} uids below 2^32-1",
                self.function_uid_base,
                trellis_functions::isolation::UID_COUNT
            );
        }
        match &self.lambda_endpoint {
            Some(url) => Ok(Some(
                RemoteConfig::from_vars(url, region, crate::credentials::secret_var)
                    .map_err(anyhow::Error::msg)?,
            )),
            None => Ok(None),
        }
    }
}

/// The running function host.
pub struct Functions {
    host: Arc<FunctionHost>,
}

impl Functions {
    pub fn start(
        args: &FunctionArgs,
        data_dir: &Path,
        ctx: Context,
        store: Store,
        code_link_key: trellis_functions::CodeLinkKey,
    ) -> anyhow::Result<Functions> {
        let mut config = HostConfig::new(data_dir.to_path_buf(), ctx.clone());
        config.code_link_key = code_link_key;
        config.concurrency = args.function_concurrency as usize;
        config.code_dir = match &args.function_code_dir {
            Some(dir) => dir.clone(),
            None => default_code_dir(data_dir),
        };
        config.isolation = IsolationConfig {
            mode: match args.function_isolation {
                IsolationArg::Sandbox => IsolationMode::Sandbox,
                IsolationArg::None => IsolationMode::None,
            },
            uid_base: args.function_uid_base,
            pids_max: args.function_pids_max,
        };
        config.remote = args.check(&ctx.region)?;
        if let Some(remote) = &config.remote {
            tracing::info!(endpoint = %remote.endpoint, "functions not hosted here are invoked remotely");
        }
        let host = FunctionHost::new(store, config).map_err(anyhow::Error::msg)?;
        let isolation = host.isolation();
        if !isolation.enabled() {
            tracing::warn!(
                "--function-isolation none: function code runs unconfined as the server's user and can read its data dir and credentials (development only)"
            );
            eprintln!(
                "trellis: WARNING: --function-isolation none: functions run unconfined as the server's user (development only)"
            );
        } else if let Some(missing) = &isolation.unavailable {
            tracing::error!(%missing, "function isolation is unavailable: functions will be refused");
            eprintln!(
                "trellis: ERROR: cannot isolate functions on this host (missing: {missing}); Invoke will be refused until it is provided, or start with --function-isolation none (development only)"
            );
        } else {
            tracing::info!(binds = ?isolation.binds(), uid_base = args.function_uid_base, pids_max = args.function_pids_max, "functions run sandboxed");
        }
        Ok(Functions { host })
    }

    /// The host, for the data plane's LAMBDA target groups.
    pub fn host(&self) -> Arc<FunctionHost> {
        self.host.clone()
    }

    /// The Lambda API (behind the SigV4 gate) and the code download links (unsigned).
    pub fn routes(&self) -> trellis_api::ExtraRoutes {
        let host = self.host.clone();
        trellis_api::ExtraRoutes {
            operations: vec![Box::new(move |table: trellis_wire::TableBuilder| {
                // Each handler acts for its caller's account.
                table.add_scoped(
                    trellis_functions::Api::new(host),
                    trellis_functions::operations(),
                    trellis_functions::Api::for_request,
                )
            })],
            public: trellis_functions::public_routes(self.host.clone()),
        }
    }

    /// Stops every runtime process.
    pub fn shutdown(&self) {
        self.host.shutdown();
    }
}

/// The default `--function-code-dir`: outside the data dir, one per data dir (so two servers
/// with different data dirs never share or wipe each other's code).
fn default_code_dir(data_dir: &Path) -> PathBuf {
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(
        data_dir.as_os_str().as_encoded_bytes(),
    ));
    let name = &digest[..16];
    let euid = rustix::process::geteuid();
    if euid.is_root() {
        PathBuf::from("/var/lib/trellis-code").join(name)
    } else {
        std::env::temp_dir()
            .join(format!("trellis-code-{}", euid.as_raw()))
            .join(name)
    }
}

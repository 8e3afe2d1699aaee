//! The function host in `trellis serve`: its flags (`--lambda-endpoint`,
//! `--function-concurrency`), their validation before anything binds, and starting and stopping
//! the host whose Lambda API the API address serves.

use std::path::Path;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use trellis_functions::{FunctionHost, HostConfig, RemoteConfig};
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
        match &self.lambda_endpoint {
            Some(url) => Ok(Some(
                RemoteConfig::from_env(url, region).map_err(anyhow::Error::msg)?,
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
    ) -> anyhow::Result<Functions> {
        let mut config = HostConfig::new(data_dir.to_path_buf(), ctx.clone());
        config.concurrency = args.function_concurrency as usize;
        config.remote = args.check(&ctx.region)?;
        if let Some(remote) = &config.remote {
            tracing::info!(endpoint = %remote.endpoint, "functions not hosted here are invoked remotely");
        }
        let host = FunctionHost::new(store, config).map_err(anyhow::Error::msg)?;
        Ok(Functions { host })
    }

    /// The host, for the data plane's LAMBDA target groups.
    pub fn host(&self) -> Arc<FunctionHost> {
        self.host.clone()
    }

    /// The Lambda API (behind the SigV4 gate) and the code download links (unsigned).
    pub fn routes(&self) -> trellis_api::ExtraRoutes {
        trellis_api::ExtraRoutes {
            signed: trellis_functions::routes(self.host.clone()),
            public: trellis_functions::public_routes(self.host.clone()),
        }
    }

    /// Stops every runtime process.
    pub fn shutdown(&self) {
        self.host.shutdown();
    }
}

//! `trellis serve`'s flags for the API listener and the SigV4 gate: the connection cap, the
//! header-read, idle and body-read timeouts and the body budget (README, "Limits of the API
//! listener"), checked before anything is bound; and raising the open-file limit, which both the
//! API's and the data plane's caps are sized against.

use std::time::Duration;

use anyhow::bail;
use clap::Args;

/// The API listener's and the SigV4 gate's limits (README "Limits of the API listener").
#[derive(Args, Debug)]
pub struct ApiLimitArgs {
    /// Most connections open on the API address at once. At the cap, a new connection replaces
    /// the oldest one without a request in progress.
    #[arg(long, value_name = "N", default_value_t = trellis_api::server::ServerLimits::DEFAULT_MAX_CONNECTIONS)]
    pub api_max_connections: usize,
    /// Seconds a client has to send a complete request head on the API address (from connecting,
    /// or from the previous response on a keep-alive connection).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    api_header_read_timeout: u64,
    /// Seconds an API connection may sit without a request in progress before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    api_idle_timeout: u64,
    /// Longest pause, in seconds, between two pieces of an API request body.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    api_body_read_timeout: u64,
    /// MiB of API request bodies read or handled at once; a request that cannot get its share
    /// within 5 seconds is throttled (429).
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    api_body_budget_mib: usize,
}

/// The range each `--api-*` timeout accepts, in seconds.
const API_TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=3600;
/// Descriptors the process keeps for itself besides the API's connections (store, DNS sockets,
/// logs, the function host's pipes), when warning that the descriptor limit is too low.
pub const FD_RESERVE: u64 = 256;

impl ApiLimitArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        for (flag, value) in [
            ("--api-header-read-timeout", self.api_header_read_timeout),
            ("--api-idle-timeout", self.api_idle_timeout),
            ("--api-body-read-timeout", self.api_body_read_timeout),
        ] {
            if !API_TIMEOUT_SECS.contains(&value) {
                bail!(
                    "{flag} {value} must be between {} and {} seconds",
                    API_TIMEOUT_SECS.start(),
                    API_TIMEOUT_SECS.end()
                );
            }
        }
        if self.api_max_connections == 0 {
            bail!("--api-max-connections must be at least 1");
        }
        if !(1..=1 << 20).contains(&self.api_body_budget_mib) {
            bail!("--api-body-budget-mib must be between 1 and 1048576");
        }
        Ok(())
    }

    pub fn server(&self) -> trellis_api::server::ServerLimits {
        trellis_api::server::ServerLimits {
            header_read_timeout: Duration::from_secs(self.api_header_read_timeout),
            idle_timeout: Duration::from_secs(self.api_idle_timeout),
            max_connections: self.api_max_connections,
        }
    }

    pub fn gate(&self) -> trellis_api::auth::GateLimits {
        trellis_api::auth::GateLimits::new(
            self.api_body_budget_mib << 20,
            Duration::from_secs(self.api_body_read_timeout),
        )
    }
}

/// Raises the soft limit on open files to the hard limit (the default soft limit, often 1024, is
/// what a few hundred slow clients exhaust) and returns the limit now in force, `None` if
/// unlimited. Called once, at start-up, before any listener is bound.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is not settable for open files on Linux (it is capped by
    // fs.nr_open), so only a finite one is raised to.
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => return Some(maximum),
            Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
        }
    }
    limit.current
}

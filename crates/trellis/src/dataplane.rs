//! The data plane's wiring into the API: `trellis serve` starts [`trellis_dataplane::DataPlane`]
//! through [`start`]; its bind failures go to `/_trellis/health/ready` ([`status`]), its health
//! checker to ListTargets ([`health_source`]), and its auth stage authenticates callers from the
//! API's identity index ([`credentials`]). Everything else of the data plane (loading,
//! following the change feed, the apply order, DNS) is `trellis_dataplane`'s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use trellis_api::FailedPort;
use trellis_api::identity::{Caller, Identities};
use trellis_api::target_groups::{ObservedTarget, TargetHealthSource};
use trellis_dataplane::{DataPlane, DataPlaneConfig, Status};
use trellis_health::Health;
use trellis_model::Context;
use trellis_model::resources::target_group::{TargetStatus, target_key};
use trellis_policy::{Decision, RequestContext, StatementRef};
use trellis_proxy::{CredentialError, Credentials, FunctionInvoker, Resolved};
use trellis_store::Store;
use trellis_tls::CertificateAuthority;

/// The data plane's status, shared with the API's `AppState`: bind failures replace the list
/// `/_trellis/health` reports.
pub fn status(
    applied: Arc<AtomicU64>,
    ready: Arc<AtomicBool>,
    failed_ports: Arc<RwLock<Vec<FailedPort>>>,
    metrics: Arc<trellis_telemetry::lattice::LatticeMetrics>,
    access_logs: Option<Arc<dyn trellis_telemetry::access_log::AccessLogSink>>,
) -> Status {
    Status {
        applied,
        ready,
        metrics: Some(metrics),
        access_logs,
        failed_ports: Arc::new(move |now: &[trellis_dataplane::FailedPort]| {
            *failed_ports.write().unwrap_or_else(PoisonError::into_inner) = now
                .iter()
                .map(|f| FailedPort {
                    port: f.port,
                    error: f.error.clone(),
                })
                .collect();
        }),
    }
}

/// Starts the data plane (before the API serves).
pub async fn start(
    config: DataPlaneConfig,
    store: Store,
    ca: Arc<CertificateAuthority>,
    status: Status,
    functions: Arc<dyn FunctionInvoker>,
    credentials: Arc<dyn Credentials>,
) -> anyhow::Result<DataPlane> {
    DataPlane::start(config, store, ca, status, functions, credentials).await
}

/// The auth stage's credentials: root's and those of the API's identity index, read from the
/// index's current revision (so a deactivated key, a deleted role or a changed identity policy
/// is in force from the index's next revision on), exactly as the API's gate reads them.
///
/// What a key resolves to is cached per access key, for the index revision it was resolved at,
/// the session token it came with, and (for sessions) until the session expires: a request that
/// presents the same credentials again skips the session token's MAC and decoding and the
/// secret's derivation. Any change of revision makes every entry stale.
pub fn credentials(
    identities: Arc<Identities>,
    root: trellis_api::RootCredentials,
    ctx: Context,
) -> Arc<dyn Credentials> {
    Arc::new(IdentityCredentials {
        identities,
        root,
        ctx,
        cache: Mutex::default(),
    })
}

/// At most this many resolved keys are cached; the cache is emptied when it is full.
const CACHED_KEYS: usize = 4096;

struct IdentityCredentials {
    identities: Arc<Identities>,
    root: trellis_api::RootCredentials,
    ctx: Context,
    cache: Mutex<HashMap<String, Cached>>,
}

/// One resolved key: valid at `revision`, with `token`, until `expires_ms`.
struct Cached {
    revision: u64,
    token: Option<String>,
    expires_ms: i64,
    resolved: Resolved,
}

impl Credentials for IdentityCredentials {
    fn resolve(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Resolved, CredentialError> {
        let index = self.identities.current();
        let revision = index.revision.unwrap_or(0);
        let now_ms = trellis_model::Timestamp::now().unix_millis();
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = cache.get(access_key_id)
                && c.revision == revision
                && c.token.as_deref() == session_token
                && now_ms < c.expires_ms
            {
                return Ok(c.resolved.clone());
            }
        }
        let secret = trellis_api::auth::secret(&self.root, &index, access_key_id)
            .ok_or(CredentialError::Unrecognized)?;
        let (caller, expires_ms) = trellis_api::auth::caller_until(
            &self.root,
            &index,
            &self.ctx,
            access_key_id,
            session_token,
        )
        .map_err(|e| match e {
            trellis_api::auth::CallerError::Unrecognized => CredentialError::Unrecognized,
            trellis_api::auth::CallerError::Expired => CredentialError::Expired,
        })?;
        let tags = trellis_api::authorize::caller_tags(&caller);
        let resolved = Resolved {
            secret,
            caller: Arc::new(DataPlaneCaller {
                arn: caller.arn(&self.ctx),
                session_name: match &caller {
                    Caller::Role { session, .. } => Some(session.session_name.clone()),
                    _ => None,
                },
                tags,
                org: index
                    .organization()
                    .map(|o| (o.id.clone(), o.account_path())),
                caller,
                identity: trellis_proxy::IdentityCache::new(),
            }),
        };
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED_KEYS {
            cache.clear();
        }
        cache.insert(
            access_key_id.to_string(),
            Cached {
                revision,
                token: session_token.map(str::to_owned),
                expires_ms: expires_ms.unwrap_or(i64::MAX),
                resolved: resolved.clone(),
            },
        );
        Ok(resolved)
    }
}

/// A caller as the auth stage sees it: its ARN, session name and principal tags computed once.
#[derive(Debug)]
struct DataPlaneCaller {
    arn: String,
    session_name: Option<String>,
    tags: Vec<(String, String)>,
    /// The organization's ID and the account's path in it.
    org: Option<(String, String)>,
    caller: Caller,
    /// Its identity-header values, computed by the proxy on first use (the caller is cached per
    /// key and identity revision, so they are computed once per key and revision).
    identity: trellis_proxy::IdentityCache,
}

impl trellis_proxy::Caller for DataPlaneCaller {
    fn arn(&self) -> &str {
        &self.arn
    }

    fn session_name(&self) -> Option<&str> {
        self.session_name.as_deref()
    }

    fn tags(&self) -> &[(String, String)] {
        &self.tags
    }

    fn identity_cache(&self) -> Option<&trellis_proxy::IdentityCache> {
        Some(&self.identity)
    }

    fn org(&self) -> Option<(&str, &str)> {
        self.org
            .as_ref()
            .map(|(id, path)| (id.as_str(), path.as_str()))
    }

    fn decide(&self, request: &RequestContext<'_>) -> Decision {
        // The statement is not reported further than the decision's kind.
        let statement = || StatementRef {
            index: 0,
            sid: None,
        };
        match trellis_api::authorize::evaluate(&self.caller, request) {
            trellis_api::authorize::Verdict::Allow => Decision::Allow(statement()),
            trellis_api::authorize::Verdict::ExplicitDeny => Decision::ExplicitDeny(statement()),
            trellis_api::authorize::Verdict::ImplicitDeny => Decision::ImplicitDeny,
        }
    }
}

/// The data plane's observed target health, for the API's ListTargets
/// (`AppState::with_target_health`).
pub fn health_source(data_plane: &DataPlane) -> Arc<dyn TargetHealthSource> {
    Arc::new(HealthSource(data_plane.health()))
}

/// ListTargets' view of observed health.
///
/// Only what checks and deregistration actually observed is reported: `HEALTHY`, `UNHEALTHY`
/// (with its reason) and `DRAINING`. `INITIAL`, `UNAVAILABLE` and `UNUSED` follow from the
/// configuration alone, and the API derives them from the store in the same transaction as the
/// listing; the health checker learns about a change only when its snapshot is applied, so
/// reporting its copy would make ListTargets contradict a write that just returned (e.g.
/// `UNUSED` right after a listener started forwarding to the group).
struct HealthSource(Arc<Health>);

impl TargetHealthSource for HealthSource {
    fn observe(
        &self,
        target_group_id: &str,
        target_id: &str,
        port: Option<u16>,
    ) -> Option<ObservedTarget> {
        let (status, reason_code) = self
            .0
            .status(target_group_id, &target_key(target_id, port))?;
        observed_only(status).then_some(ObservedTarget {
            status,
            reason_code,
        })
    }

    fn draining(&self, target_group_id: &str) -> Vec<(String, Option<u16>)> {
        self.0
            .draining(target_group_id)
            .into_iter()
            .map(|t| (t.id, t.port))
            .collect()
    }
}

/// Whether `status` is something the data plane observed rather than derived from configuration.
pub fn observed_only(status: TargetStatus) -> bool {
    match status {
        TargetStatus::Healthy | TargetStatus::Unhealthy | TargetStatus::Draining => true,
        TargetStatus::Initial | TargetStatus::Unavailable | TargetStatus::Unused => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_health::HealthConfig;

    #[test]
    fn health_source_knows_nothing_before_the_first_sync() {
        let source = HealthSource(Health::new(HealthConfig::default()));
        assert_eq!(
            source.observe("tg-00000000000000001", "10.0.0.1", Some(80)),
            None
        );
    }

    #[test]
    fn only_observed_statuses_reach_list_targets() {
        let cases = [
            (TargetStatus::Healthy, true),
            (TargetStatus::Unhealthy, true),
            (TargetStatus::Draining, true),
            (TargetStatus::Initial, false),
            (TargetStatus::Unavailable, false),
            (TargetStatus::Unused, false),
        ];
        for (status, reported) in cases {
            assert_eq!(observed_only(status), reported, "{status:?}");
        }
    }

    #[test]
    fn bind_failures_replace_the_health_endpoints_list() {
        let shared = Arc::new(RwLock::new(vec![FailedPort {
            port: 1,
            error: "stale".into(),
        }]));
        let status = status(
            Arc::default(),
            Arc::default(),
            Arc::clone(&shared),
            Arc::clone(&trellis_telemetry::Metrics::new().lattice),
            None,
        );
        (status.failed_ports)(&[trellis_dataplane::FailedPort {
            port: 8443,
            error: "address in use".into(),
        }]);
        assert_eq!(
            *shared.read().unwrap(),
            vec![FailedPort {
                port: 8443,
                error: "address in use".into()
            }]
        );
        (status.failed_ports)(&[]);
        assert!(shared.read().unwrap().is_empty());
    }
}

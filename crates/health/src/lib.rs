//! Active health checks, the per-target-group balancer and target draining for the data plane.
//!
//! [`Health`] is reconciled with every published [`Snapshot`] ([`Health::sync`]) and read by the
//! request path ([`Health::pick`]) and by ListTargets ([`Health::status`], [`Health::draining`]).
//!
//! # Health checks (reference §5.3)
//!
//! Every registered target of an in-use group whose `healthCheck` is enabled gets a checker task.
//! Every `healthCheckIntervalSeconds` (the first check at once) it opens a **new** connection to
//! the target's address on the check port (the traffic port unless `port` is set), over TLS
//! without certificate verification for `HTTPS`, sends `GET <path>` with
//! `User-Agent: Trellis-HealthChecker/1.0` over HTTP/1.1, or HTTP/2 (prior knowledge in clear
//! text, ALPN `h2` over TLS) for `protocolVersion` `HTTP2`, waits at most
//! `healthCheckTimeoutSeconds` for the response head, compares the status with
//! `matcher.httpCode` and closes the connection. Timeouts, refused connections, failed TLS
//! handshakes and broken HTTP exchanges are failed checks. Checks of one target never overlap: one
//! slower than the interval delays the next.
//!
//! Status (the table is in `state.rs`): `INITIAL` until the first result; one pass makes a new
//! target `HEALTHY` (the Lattice guide), `unhealthyThresholdCount` failures make it `UNHEALTHY`;
//! afterwards `unhealthyThresholdCount` consecutive failures take a target out and
//! `healthyThresholdCount` consecutive passes bring it back. `UNHEALTHY` targets report reason
//! code `HealthCheckFailed`, the only code Lattice documents, whatever the failure was (the kind
//! of the last failure is in [`Health::check_report`] and the logs). Groups with checks disabled,
//! or without checks (LAMBDA, ALB), report `UNAVAILABLE`; groups no served listener or rule
//! forwards to report `UNUSED` and are not checked. Other statuses carry no reason code.
//!
//! # Balancing (reference §5.4)
//!
//! Round robin per group over routable targets (`HEALTHY`, or `UNAVAILABLE` when checks are
//! disabled). `INITIAL` targets are not routable, as in Lattice ("must pass one check"). When a
//! group has no routable target at all, requests fail open: round robin over every registered,
//! non-draining target regardless of health. A request's `exclude` list (targets it already
//! tried) is applied within the chosen tier: a retry is not sent to a failing target while the
//! group still has healthy ones, so it gets `None` once all routable targets were tried.
//!
//! `pick` reads one immutable per-group view through an `ArcSwap` and the targets' atomic status;
//! it never takes a lock, and checkers never hold one.
//!
//! # Draining
//!
//! A target that disappears from its group (deregistered) gets no new requests and reports
//! `DRAINING` for the deregistration delay, the full delay whatever its in-flight count, after
//! which it is forgotten. Requests already sent hold an [`InFlight`] guard, counted per target
//! ([`Health::in_flight`]); nothing is cut off when the delay ends. A target registered again while
//! draining becomes a fresh registered target (`INITIAL`, checked again) and keeps its in-flight
//! count. Deleted groups are forgotten at once, their checkers stopped.
//!
//! # Churn
//!
//! State is keyed by group id and target key. A target that stays registered across snapshots
//! keeps its status and its running checker; a change of the group's `healthCheck` (or of the
//! target's address) restarts the checker with the new settings and keeps the status; a group
//! that stops being used stops its checkers (`UNUSED`) and starts over at `INITIAL` when used
//! again.

mod check;
mod matcher;
mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use trellis_model::resources::target_group::{HealthCheck, TargetGroupType, TargetStatus};
use trellis_snapshot::{Snapshot, TargetEntry, TargetGroupEntry};

pub use check::USER_AGENT;
pub use matcher::{Matcher, MatcherError};
pub use state::{CheckOutcome, CheckReport};

use check::{CheckSpec, Labels, run_checker};
use state::{Observed, TargetState};

/// The reason code of `UNHEALTHY` targets.
pub const REASON_HEALTH_CHECK_FAILED: &str = "HealthCheckFailed";

/// The default deregistration delay (Lattice's documented draining time).
pub const DEFAULT_DEREGISTRATION_DELAY: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct HealthConfig {
    /// How long deregistered targets stay `DRAINING` (flag `--deregistration-delay`).
    pub deregistration_delay: Duration,
}

impl Default for HealthConfig {
    fn default() -> HealthConfig {
        HealthConfig {
            deregistration_delay: DEFAULT_DEREGISTRATION_DELAY,
        }
    }
}

/// Health checks, balancing and draining for every target group. Shared as `Arc<Health>`;
/// internally synchronized; readers never wait for checks.
pub struct Health {
    config: HealthConfig,
    /// What readers see: every known group by id.
    groups: ArcSwap<HashMap<String, Arc<Group>>>,
    /// The reconciler's bookkeeping (checker handles, desired settings). Taken only by `sync`,
    /// never across an `.await`, never by readers.
    reconciler: Mutex<HashMap<String, GroupRuntime>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("config", &self.config)
            .field("groups", &self.groups.load().len())
            .finish()
    }
}

/// A target chosen for a request, and the guard that counts the request in flight.
#[derive(Debug)]
pub struct Picked {
    pub target: TargetEntry,
    pub guard: InFlight,
}

/// Counts one request in flight to a target until dropped.
#[derive(Debug)]
pub struct InFlight {
    state: Arc<TargetState>,
}

impl InFlight {
    fn new(state: Arc<TargetState>) -> InFlight {
        state.enter();
        InFlight { state }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.leave();
    }
}

/// One registered or draining target as readers see it.
#[derive(Debug)]
struct Slot {
    entry: TargetEntry,
    state: Arc<TargetState>,
}

/// A group as readers see it: a round-robin cursor that survives reconfiguration, and the
/// current immutable view.
#[derive(Debug)]
struct Group {
    cursor: AtomicUsize,
    view: ArcSwap<GroupView>,
}

#[derive(Debug, Default)]
struct GroupView {
    /// Registered targets in snapshot order.
    active: Vec<Arc<Slot>>,
    /// Deregistered targets and when their draining ends, by key.
    draining: Vec<(Arc<Slot>, Instant)>,
}

impl GroupView {
    fn draining_slot(&self, key: &str, now: Instant) -> Option<&Arc<Slot>> {
        self.draining
            .iter()
            .find(|(s, until)| s.entry.key == key && *until > now)
            .map(|(s, _)| s)
    }

    fn active_slot(&self, key: &str) -> Option<&Arc<Slot>> {
        self.active.iter().find(|s| s.entry.key == key)
    }
}

/// Aborts the checker task when dropped (target deregistered, group deleted, settings changed,
/// `Health` dropped).
#[derive(Debug)]
struct Checker(JoinHandle<()>);

impl Drop for Checker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The reconciler's record of one registered target.
#[derive(Debug)]
struct TargetRuntime {
    slot: Arc<Slot>,
    /// The settings the running checker uses.
    spec: Option<Arc<CheckSpec>>,
    checker: Option<Checker>,
}

#[derive(Debug)]
struct GroupRuntime {
    shared: Arc<Group>,
    targets: HashMap<String, TargetRuntime>,
    draining: HashMap<String, (Arc<Slot>, Instant)>,
}

impl Health {
    pub fn new(config: HealthConfig) -> Arc<Health> {
        Arc::new(Health {
            config,
            groups: ArcSwap::from_pointee(HashMap::new()),
            reconciler: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &HealthConfig {
        &self.config
    }

    /// Reconciles with a newly published snapshot: starts, restarts and stops checkers (tokio
    /// tasks on the current runtime), moves targets that disappeared to DRAINING for the
    /// deregistration delay, forgets deleted groups and expired drains.
    ///
    /// Call it from within a tokio runtime; outside one no checker can start (logged) and the
    /// next `sync` inside a runtime starts them.
    pub fn sync(self: &Arc<Self>, snapshot: &Arc<Snapshot>) {
        let now = Instant::now();
        let runtime = tokio::runtime::Handle::try_current().ok();
        if runtime.is_none() {
            tracing::error!("health sync outside a tokio runtime: no checker can be started");
        }
        let mut groups = self
            .reconciler
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        groups.retain(|id, _| snapshot.target_groups.contains_key(id));
        for (id, tg) in &snapshot.target_groups {
            let group = groups.entry(id.clone()).or_insert_with(|| GroupRuntime {
                shared: Arc::new(Group {
                    cursor: AtomicUsize::new(0),
                    view: ArcSwap::from_pointee(GroupView::default()),
                }),
                targets: HashMap::new(),
                draining: HashMap::new(),
            });
            group.reconcile(tg, now, self.config.deregistration_delay, runtime.as_ref());
        }
        let published: HashMap<String, Arc<Group>> = groups
            .iter()
            .map(|(id, g)| (id.clone(), Arc::clone(&g.shared)))
            .collect();
        self.groups.store(Arc::new(published));
    }

    /// A target for a new request to group `tg_id` (see the module docs for the rules), with the
    /// guard that counts the request in flight. `None` for an unknown group or when no candidate
    /// is left.
    pub fn pick(&self, tg_id: &str, exclude: &[&str]) -> Option<Picked> {
        let groups = self.groups.load();
        let group = groups.get(tg_id)?;
        let view = group.view.load();
        // Statuses are read once: a checker may flip one while we choose.
        let active = &view.active;
        if active.len() <= 64 {
            // The common case, without allocating on the request path: one pass records which
            // targets are routable and which are excluded as bit sets, then the round-robin
            // cursor selects the n-th candidate bit.
            let (mut routable, mut allowed) = (0u64, 0u64);
            for (i, s) in active.iter().enumerate() {
                if s.state.observed().routable() {
                    routable |= 1 << i;
                }
                if !exclude.contains(&s.entry.key.as_str()) {
                    allowed |= 1 << i;
                }
            }
            let all = if active.len() == 64 {
                u64::MAX
            } else {
                (1u64 << active.len()) - 1
            };
            // Lattice fails open: with no routable target, every target is a candidate.
            let mut candidates = (if routable != 0 { routable } else { all }) & allowed;
            let count = candidates.count_ones() as usize;
            if count == 0 {
                return None;
            }
            let n = group.cursor.fetch_add(1, Ordering::Relaxed) % count;
            for _ in 0..n {
                candidates &= candidates - 1; // clear the lowest candidate
            }
            let slot = &active[candidates.trailing_zeros() as usize];
            return Some(Picked {
                target: slot.entry.clone(),
                guard: InFlight::new(Arc::clone(&slot.state)),
            });
        }
        let statuses: Vec<Observed> = active.iter().map(|s| s.state.observed()).collect();
        let any_routable = statuses.iter().any(|o| o.routable());
        let candidates: Vec<&Arc<Slot>> = active
            .iter()
            .zip(&statuses)
            .filter(|(s, o)| {
                (!any_routable || o.routable()) && !exclude.contains(&s.entry.key.as_str())
            })
            .map(|(s, _)| s)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = group.cursor.fetch_add(1, Ordering::Relaxed) % candidates.len();
        let slot = candidates[i];
        Some(Picked {
            target: slot.entry.clone(),
            guard: InFlight::new(Arc::clone(&slot.state)),
        })
    }

    /// The observed `(status, reasonCode)` of a registered or draining target; `None` for an
    /// unknown group or target (never registered, or drained and forgotten).
    pub fn status(&self, tg_id: &str, key: &str) -> Option<(TargetStatus, Option<String>)> {
        let groups = self.groups.load();
        let view = groups.get(tg_id)?.view.load();
        if let Some(slot) = view.active_slot(key) {
            let observed = slot.state.observed();
            let reason =
                (observed == Observed::Unhealthy).then(|| REASON_HEALTH_CHECK_FAILED.to_owned());
            return Some((observed.status(), reason));
        }
        view.draining_slot(key, Instant::now())
            .map(|_| (TargetStatus::Draining, None))
    }

    /// Every registered or draining target's observed status, as `(group id, target key,
    /// status)`, groups in no particular order (what the metrics report at each scrape).
    pub fn statuses(&self) -> Vec<(String, String, TargetStatus)> {
        let groups = self.groups.load();
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, group) in groups.iter() {
            let view = group.view.load();
            for slot in &view.active {
                out.push((
                    id.clone(),
                    slot.entry.key.clone(),
                    slot.state.observed().status(),
                ));
            }
            for (slot, until) in &view.draining {
                if *until > now && view.active_slot(&slot.entry.key).is_none() {
                    out.push((id.clone(), slot.entry.key.clone(), TargetStatus::Draining));
                }
            }
        }
        out
    }

    /// The group's targets that are DRAINING now, ordered by key.
    pub fn draining(&self, tg_id: &str) -> Vec<TargetEntry> {
        let groups = self.groups.load();
        let Some(group) = groups.get(tg_id) else {
            return Vec::new();
        };
        let now = Instant::now();
        group
            .view
            .load()
            .draining
            .iter()
            .filter(|(_, until)| *until > now)
            .map(|(s, _)| s.entry.clone())
            .collect()
    }

    /// Requests in flight to a registered or draining target (0 when the target is unknown,
    /// including after its draining ended).
    pub fn in_flight(&self, tg_id: &str, key: &str) -> usize {
        self.slot(tg_id, key).map_or(0, |s| s.state.in_flight())
    }

    /// Health-check activity of a registered or draining target.
    pub fn check_report(&self, tg_id: &str, key: &str) -> Option<CheckReport> {
        self.slot(tg_id, key).map(|s| s.state.report())
    }

    fn slot(&self, tg_id: &str, key: &str) -> Option<Arc<Slot>> {
        let groups = self.groups.load();
        let view = groups.get(tg_id)?.view.load();
        view.active_slot(key)
            .or_else(|| view.draining_slot(key, Instant::now()))
            .cloned()
    }
}

/// The health check to run for a group's targets, if any.
fn effective_check(tg: &TargetGroupEntry) -> Option<&HealthCheck> {
    tg.config
        .health_check
        .as_ref()
        .filter(|hc| hc.enabled && tg.in_use)
}

impl GroupRuntime {
    fn reconcile(
        &mut self,
        tg: &TargetGroupEntry,
        now: Instant,
        delay: Duration,
        runtime: Option<&tokio::runtime::Handle>,
    ) {
        let check = effective_check(tg);
        self.draining.retain(|_, (_, until)| *until > now);
        let mut targets = HashMap::with_capacity(tg.targets.len());
        let mut active = Vec::with_capacity(tg.targets.len());
        // A target of an addressed group without an address (an INSTANCE target whose
        // instance is not running) is neither checked nor picked, not even failing open: there
        // is nowhere to send its traffic. ListTargets reports it from configuration.
        let addressed = matches!(
            tg.target_type,
            TargetGroupType::Ip | TargetGroupType::Instance
        );
        for entry in &tg.targets {
            if targets.contains_key(&entry.key) || (addressed && entry.addr.is_none()) {
                continue;
            }
            let mut target = match self.targets.remove(&entry.key) {
                Some(t) => t,
                None => match self.draining.remove(&entry.key) {
                    // Registered again while draining: a fresh target that keeps its in-flight
                    // count.
                    Some((slot, _)) => {
                        slot.state.reset(Observed::Initial);
                        TargetRuntime {
                            slot,
                            spec: None,
                            checker: None,
                        }
                    }
                    None => TargetRuntime {
                        slot: Arc::new(Slot {
                            entry: entry.clone(),
                            state: Arc::new(TargetState::new(Observed::Initial)),
                        }),
                        spec: None,
                        checker: None,
                    },
                },
            };
            target.update(tg, entry, check, runtime);
            active.push(Arc::clone(&target.slot));
            targets.insert(entry.key.clone(), target);
        }
        for (key, gone) in self.targets.drain() {
            // Dropping the runtime record aborts the checker.
            tracing::info!(target_group = %tg.id, target = %key, "target draining");
            self.draining.insert(key, (gone.slot, now + delay));
        }
        self.targets = targets;
        let mut draining: Vec<(Arc<Slot>, Instant)> = self
            .draining
            .values()
            .map(|(s, until)| (Arc::clone(s), *until))
            .collect();
        draining.sort_by(|a, b| a.0.entry.key.cmp(&b.0.entry.key));
        self.shared
            .view
            .store(Arc::new(GroupView { active, draining }));
    }
}

impl TargetRuntime {
    /// Brings one registered target in line with its group's settings.
    fn update(
        &mut self,
        tg: &TargetGroupEntry,
        entry: &TargetEntry,
        check: Option<&HealthCheck>,
        runtime: Option<&tokio::runtime::Handle>,
    ) {
        if self.slot.entry != *entry {
            self.slot = Arc::new(Slot {
                entry: entry.clone(),
                state: Arc::clone(&self.slot.state),
            });
        }
        let state = &self.slot.state;
        let Some(hc) = check else {
            self.spec = None;
            let status = if tg.in_use {
                Observed::Unavailable
            } else {
                Observed::Unused
            };
            // A new generation also fences off a stopped checker that is between two awaits on
            // another worker thread when it is aborted.
            if self.checker.take().is_some() || state.observed() != status {
                state.reset(status);
            }
            return;
        };
        let spec = CheckSpec::new(hc, entry.addr);
        if self.checker.is_some() && self.spec.as_deref() == Some(&spec) {
            return;
        }
        // New or changed settings: restart the checker, keeping a status it produced.
        let status = match state.observed() {
            s @ (Observed::Healthy | Observed::Unhealthy) => s,
            _ => Observed::Initial,
        };
        self.checker = None;
        let generation = state.reset(status);
        let spec = Arc::new(spec);
        self.checker = runtime.map(|rt| {
            Checker(rt.spawn(run_checker(
                Arc::clone(state),
                generation,
                Arc::clone(&spec),
                Labels {
                    target_group: tg.id.clone(),
                    target: entry.key.clone(),
                },
            )))
        });
        self.spec = Some(spec);
    }
}

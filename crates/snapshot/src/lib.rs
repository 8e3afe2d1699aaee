//! The data plane's view of configuration: an immutable [`Snapshot`] compiled from the documents
//! of one store revision, and its publication (an `ArcSwap` for the request path, a `watch` for
//! the reconcilers that bind listeners, run health checks and serve DNS).
//!
//! Compiling happens off the request path. A snapshot that fails to compile is rejected and the
//! last good one stays in service.
//!
//! This crate is pure: it does not read the store (nor depend on it; the crate-graph test in
//! `crates/dataplane/tests/crate_graph.rs` checks). `trellis_dataplane::load` reads the records of
//! [`KINDS`] in one read transaction, decodes the store's JSON pages into [`Documents`] and
//! calls [`build`]; [`compile`] does the same from [`Record`]s (tests, benchmarks). What
//! compilation decides (which services are served, host collisions, unparseable auth policies)
//! is documented on [`compile`].

pub mod clients;
mod compile;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use trellis_model::Context;
use trellis_model::resources::AuthType;
use trellis_model::resources::listener::ListenerProtocol;
use trellis_model::resources::target_group::{TargetGroupConfig, TargetGroupType};
use trellis_router::RouteTable;

pub use compile::{
    ACCESS_LOG_KIND, AUTH_POLICY_KIND, CompileInput, DENY_ALL_POLICY, Documents, INSTANCE_KIND,
    InstanceDoc, KINDS, LOG_GROUP_KIND, Record, StoredAuthPolicy, StoredLogGroup, TARGET_KIND,
    build, compile, no_parent,
};

/// Configuration as the data plane serves it, at one store revision.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: u64,
    pub ctx: Context,
    /// Served services by lower-case host name: each service's generated DNS name and custom
    /// domain name. Only services associated with at least one service network are served.
    pub hosts: HostMap,
    /// Every port some served listener uses, with the protocols spoken on it (different services
    /// may use one port with different protocols; connections are told apart by their first byte).
    pub ports: BTreeMap<u16, PortProtocols>,
    /// Every target group, by ID.
    pub target_groups: HashMap<String, Arc<TargetGroupEntry>>,
    /// The domains the DNS server is authoritative for (the generated-name zone of the region).
    pub dns_zones: Vec<String>,
    /// The names DNS answers with the ingress address: served generated names and custom domains.
    pub dns_names: Vec<String>,
    /// The names HTTPS listeners present certificates for (served services with an HTTPS listener).
    pub tls_names: Vec<String>,
    /// Client VPCs, their associations and security groups: who may connect, and through
    /// which service network.
    pub clients: clients::ClientNetworks,
}

/// Services by host name, looked up once per request. Hashed with foldhash rather than the
/// standard SipHash: a generated name is about 60 bytes, which SipHash took ~500 instructions
/// per request to hash. The keys come from configuration, not from clients, so a client cannot
/// flood the table with colliding names; the seed is still random per map.
pub type HostMap = HashMap<String, Arc<ServiceEntry>, foldhash::fast::RandomState>;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortProtocols {
    pub http: bool,
    pub https: bool,
    pub tls_passthrough: bool,
}

/// A served service.
#[derive(Debug)]
pub struct ServiceEntry {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub auth_type: AuthType,
    /// Lower case.
    pub dns_name: String,
    /// Lower case, without a trailing dot.
    pub custom_domain_name: Option<String>,
    /// The service networks it is associated with.
    pub networks: Vec<NetworkEntry>,
    /// Its listeners by port.
    pub listeners: HashMap<u16, Arc<ListenerEntry>>,
    /// The service's auth policy, parsed (evaluated when `auth_type` is AWS_IAM). A stored policy
    /// that no longer parses is replaced by [`DENY_ALL_POLICY`] (fail closed).
    pub auth_policy: Option<Arc<trellis_policy::Policy>>,
    /// Its tags: `aws:ResourceTag/<key>` of the data plane's policy evaluation.
    pub tags: trellis_model::resources::Tags,
    /// Where its requests' access-log records go: its own subscriptions, then its networks'.
    pub access_logs: Vec<AccessLogEntry>,
}

/// One access-log subscription a served service's requests are delivered to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    pub subscription_id: String,
    pub destination_arn: String,
    /// The hosted log group the destination ARN names.
    pub log_group: String,
    /// The subscribed resource (the service, or one of its networks).
    pub resource_id: String,
    /// For a network's subscription, that network's ARN (the record's `serviceNetworkArn`).
    pub network_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NetworkEntry {
    pub id: String,
    pub arn: String,
    pub auth_type: AuthType,
    /// As for [`ServiceEntry::auth_policy`].
    pub auth_policy: Option<Arc<trellis_policy::Policy>>,
}

#[derive(Debug)]
pub struct ListenerEntry {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub protocol: ListenerProtocol,
    pub port: u16,
    pub routes: RouteTable,
}

#[derive(Debug)]
pub struct TargetGroupEntry {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub target_type: TargetGroupType,
    pub config: TargetGroupConfig,
    /// Whether some listener or rule forwards to it, served or not (else its targets are
    /// `UNUSED`, as Lattice defines it: no listener or rule references the group).
    pub in_use: bool,
    pub targets: Vec<TargetEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TargetEntry {
    /// As registered: an IP address, instance ID, function ARN or ALB ARN.
    pub id: String,
    pub port: Option<u16>,
    /// The store's per-group key (`<id>:<port>`, or the id for LAMBDA targets).
    pub key: String,
    /// Where to connect, for IP targets.
    pub addr: Option<SocketAddr>,
}

/// Why a revision does not compile (the last good snapshot stays in service).
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("stored {kind} {id} is unreadable: {reason}")]
    Document {
        kind: String,
        id: String,
        reason: String,
    },
}

impl Snapshot {
    /// An empty snapshot (nothing served), the starting point before the first compile.
    pub fn empty(ctx: Context) -> Snapshot {
        Snapshot {
            revision: 0,
            ctx,
            hosts: HostMap::default(),
            ports: BTreeMap::new(),
            target_groups: HashMap::new(),
            dns_zones: Vec::new(),
            dns_names: Vec::new(),
            tls_names: Vec::new(),
            clients: clients::ClientNetworks::default(),
        }
    }

    /// The served service for a `Host`/`:authority` value or an SNI name: the port (if any) is
    /// stripped, a trailing dot ignored, and the name compared case-insensitively.
    pub fn service_by_host(&self, host: &str) -> Option<&Arc<ServiceEntry>> {
        let name = strip_port(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        match self.hosts.get(name) {
            Some(s) => Some(s),
            None if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                self.hosts.get(&name.to_ascii_lowercase())
            }
            None => None,
        }
    }
}

/// `host[:port]` → `host`. An IPv6 literal keeps its brackets (no service is named by one).
fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Publication of snapshots: the request path loads the current one from an `ArcSwap` (no lock,
/// no await); reconcilers follow a `watch` that always holds the newest one.
#[derive(Debug)]
pub struct Publisher {
    current: Arc<ArcSwap<Snapshot>>,
    watch: watch::Sender<Arc<Snapshot>>,
}

impl Publisher {
    pub fn new(initial: Arc<Snapshot>) -> Publisher {
        let (watch, _) = watch::channel(Arc::clone(&initial));
        Publisher {
            current: Arc::new(ArcSwap::new(initial)),
            watch,
        }
    }

    /// The handle the request path reads (`load_full()` once per request).
    pub fn handle(&self) -> Arc<ArcSwap<Snapshot>> {
        Arc::clone(&self.current)
    }

    /// A receiver that sees every snapshot published from now on (the latest one when several
    /// are published between two reads).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.watch.subscribe()
    }

    /// The snapshot in service.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Puts `snapshot` in service: new requests see it at once; requests in flight keep the one
    /// they loaded.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        self.current.store(Arc::clone(&snapshot));
        self.watch.send_replace(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_port_table() {
        for (input, want) in [
            ("a.example.com", "a.example.com"),
            ("a.example.com:8080", "a.example.com"),
            ("a.example.com:", "a.example.com"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("a:b", "a:b"),
        ] {
            assert_eq!(strip_port(input), want, "{input}");
        }
    }

    #[test]
    fn publisher_swaps_and_notifies() {
        let ctx = Context {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account_id: "111122223333".into(),
        };
        let p = Publisher::new(Arc::new(Snapshot::empty(ctx.clone())));
        let handle = p.handle();
        let mut rx = p.subscribe();
        assert!(!rx.has_changed().unwrap());
        let mut next = Snapshot::empty(ctx);
        next.revision = 7;
        p.publish(Arc::new(next));
        assert_eq!(handle.load().revision, 7);
        assert_eq!(p.current().revision, 7);
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().revision, 7);
    }
}

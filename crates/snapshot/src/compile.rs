//! Snapshot building: the documents of one store revision in, a [`Snapshot`] out. No I/O, so
//! every rule below is covered by table tests that need no store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, LazyLock};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use trellis_model::Context;
use trellis_model::arn::account_of;
use trellis_model::resources::access_log::AccessLogSubscription;
use trellis_model::resources::association::{
    AssociationStatus, ServiceNetworkServiceAssociation, ServiceNetworkVpcAssociation,
};
use trellis_model::resources::listener::{Listener, ListenerProtocol};
use trellis_model::resources::rule::Rule;
use trellis_model::resources::service::Service;
use trellis_model::resources::service_network::ServiceNetwork;
use trellis_model::resources::target_group::{Target, TargetGroup, TargetGroupType, target_key};
use trellis_policy::{Policy, PolicyKind};
use trellis_router::RouteTable;

use crate::clients::{
    ClientNetworks, GroupMember, SECURITY_GROUP_KIND, SecurityGroupDoc, VPC_ASSOCIATION_KIND,
    VPC_KIND, VpcDoc,
};
use crate::{
    AccessLogEntry, CompileError, HostMap, ListenerEntry, NetworkEntry, PortProtocols,
    ServiceEntry, Snapshot, TargetEntry, TargetGroupEntry,
};

/// Store kind of registered targets (parent = the target group's id).
pub const TARGET_KIND: &str = "target";
/// Store kind of auth policies (id = parent = the service or service network id).
pub const AUTH_POLICY_KIND: &str = "auth-policy";
/// The record kind of an EC2 instance (the API's `ec2::INSTANCE_KIND`): what INSTANCE targets'
/// addresses come from.
pub const INSTANCE_KIND: &str = "ec2-instance";

/// Every record kind a snapshot is compiled from; the data plane's loader
/// (`trellis_dataplane::load`) reads exactly these.
pub const KINDS: [&str; 14] = [
    "service-network",
    "service",
    "service-network-service-association",
    "listener",
    "rule",
    "target-group",
    TARGET_KIND,
    AUTH_POLICY_KIND,
    INSTANCE_KIND,
    ACCESS_LOG_KIND,
    LOG_GROUP_KIND,
    VPC_KIND,
    SECURITY_GROUP_KIND,
    VPC_ASSOCIATION_KIND,
];

/// Store kind of access-log subscriptions (parent = the service or service network id).
pub const ACCESS_LOG_KIND: &str = "access-log-subscription";
/// Store kind of the CloudWatch Logs log groups Trellis hosts (`trellis-logs`); the snapshot
/// reads their names to know which log-group destinations exist here.
pub const LOG_GROUP_KIND: &str = "logs-log-group";

/// What an unparseable stored auth policy is replaced by: one statement denying every action to
/// every principal. Explicit denies win in IAM evaluation, so nothing is allowed through a
/// service or service network whose policy Trellis can no longer read.
pub const DENY_ALL_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#;

static DENY_ALL: LazyLock<Arc<Policy>> = LazyLock::new(|| {
    Arc::new(
        trellis_policy::parse(DENY_ALL_POLICY, PolicyKind::Auth)
            .expect("the built-in deny-all policy parses (unit-tested)"),
    )
});

/// The auth-policy document as the API stores it (its `StoredPolicy`); only the members the data
/// plane needs are read, so the API may add members without breaking compilation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAuthPolicy {
    /// The service or service network the policy is attached to.
    pub resource_id: String,
    /// The policy document exactly as the client sent it.
    pub policy: String,
}

/// One stored record as [`compile`] needs it: the store's record without its index columns
/// (name, ARN, references, sequence), which compilation does not read. Its own type so that this
/// crate does not depend on the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub kind: String,
    pub id: String,
    /// The parent resource's id (a target's target group).
    pub parent: Option<String>,
    /// The stored document.
    pub body: serde_json::Value,
}

/// The input of [`compile`]: the records of one store revision.
#[derive(Clone, Debug)]
pub struct CompileInput {
    pub revision: u64,
    pub ctx: Context,
    /// Records of the kinds in [`KINDS`], in store (creation) order; other kinds are ignored.
    pub records: Vec<Record>,
}

/// The decoded documents of one revision, each kind in store (creation) order: what [`build`]
/// compiles. [`compile`] decodes records into it; the data plane's loader decodes the store's
/// pages of JSON text straight into it (no `serde_json::Value` per record, which at 10,000
/// services was most of a compile's time and memory).
#[derive(Debug, Default)]
pub struct Documents {
    pub networks: Vec<ServiceNetwork>,
    pub services: Vec<Service>,
    pub associations: Vec<ServiceNetworkServiceAssociation>,
    pub listeners: Vec<Listener>,
    pub rules: Vec<Rule>,
    pub target_groups: Vec<TargetGroup>,
    /// (target group id, target).
    pub targets: Vec<(String, Target)>,
    pub auth_policies: Vec<StoredAuthPolicy>,
    pub instances: Vec<InstanceDoc>,
    pub access_logs: Vec<AccessLogSubscription>,
    pub log_groups: Vec<StoredLogGroup>,
    pub vpcs: Vec<VpcDoc>,
    pub security_groups: Vec<SecurityGroupDoc>,
    pub vpc_associations: Vec<ServiceNetworkVpcAssociation>,
}

/// What the data plane needs of a stored EC2 instance (the API's `StoredInstance` has more).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub struct InstanceDoc {
    pub instance_id: String,
    pub private_ip: String,
    #[serde(default)]
    pub ipv6: Option<String>,
    /// `running`, `stopped` or `terminated`: only a running instance gets traffic.
    pub state: String,
    /// (group id, group name) of its security groups: a rule referencing one of them admits
    /// the instance's addresses.
    #[serde(default)]
    pub security_groups: Vec<(String, String)>,
}

/// A hosted log group as the snapshot needs it (the `trellis-logs` document has more members).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredLogGroup {
    pub log_group_name: String,
    /// Without the trailing `:*`; it names the group's account.
    pub log_group_arn: String,
}

fn decode<T: DeserializeOwned>(rec: &Record) -> Result<T, CompileError> {
    T::deserialize(&rec.body).map_err(|e| CompileError::Document {
        kind: rec.kind.clone(),
        id: rec.id.clone(),
        reason: e.to_string(),
    })
}

/// The error for a target record that names no target group.
pub fn no_parent(kind: &str, id: String) -> CompileError {
    CompileError::Document {
        kind: kind.to_string(),
        id,
        reason: "a target record has no parent target group".into(),
    }
}

fn decode_all(records: &[Record]) -> Result<Documents, CompileError> {
    let mut d = Documents::default();
    for rec in records {
        match rec.kind.as_str() {
            "service-network" => d.networks.push(decode(rec)?),
            "service" => d.services.push(decode(rec)?),
            "service-network-service-association" => d.associations.push(decode(rec)?),
            "listener" => d.listeners.push(decode(rec)?),
            "rule" => d.rules.push(decode(rec)?),
            "target-group" => d.target_groups.push(decode(rec)?),
            TARGET_KIND => {
                let Some(tg) = rec.parent.clone() else {
                    return Err(no_parent(&rec.kind, rec.id.clone()));
                };
                d.targets.push((tg, decode(rec)?));
            }
            AUTH_POLICY_KIND => d.auth_policies.push(decode(rec)?),
            INSTANCE_KIND => d.instances.push(decode(rec)?),
            ACCESS_LOG_KIND => d.access_logs.push(decode(rec)?),
            LOG_GROUP_KIND => d.log_groups.push(decode(rec)?),
            VPC_KIND => d.vpcs.push(decode(rec)?),
            SECURITY_GROUP_KIND => d.security_groups.push(decode(rec)?),
            VPC_ASSOCIATION_KIND => d.vpc_associations.push(decode(rec)?),
            _ => {}
        }
    }
    Ok(d)
}

/// Whether an association puts its service in service: stored associations are `ACTIVE`
/// (Trellis applies synchronously); failed ones and ones being deleted never serve.
pub(crate) fn association_serves(status: AssociationStatus) -> bool {
    matches!(
        status,
        AssociationStatus::Active
            | AssociationStatus::CreateInProgress
            | AssociationStatus::UpdateInProgress
            | AssociationStatus::UpdateFailed
    )
}

/// `name` lower-cased and without a trailing dot: how hosts, SNI names and DNS names compare.
fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Parses a stored auth policy; one that no longer parses (the policy language got stricter, or
/// the store was edited by hand) fails closed as [`DENY_ALL_POLICY`], and the reason is logged:
/// rejecting the whole snapshot would stop every other service's configuration from changing.
fn parse_auth_policy(resource_id: &str, text: &str) -> Arc<Policy> {
    match trellis_policy::parse(text, PolicyKind::Auth) {
        Ok(p) => Arc::new(p),
        Err(diagnostics) => {
            let reasons: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            tracing::warn!(
                resource = resource_id,
                reasons = %reasons.join("; "),
                "stored auth policy does not parse; denying every request to the resource until it is replaced"
            );
            Arc::clone(&DENY_ALL)
        }
    }
}

/// The access-log subscriptions the data plane delivers, by subscribed resource (service or
/// service network id): those of the `SERVICE` log type whose destination is a log group this
/// Trellis hosts, that exists, and that belongs to the subscription's own account.
/// Subscriptions to other destinations (S3, Firehose, another account's or region's log group)
/// and to log groups not (or no longer) here are stored but receive nothing
/// (docs/decisions.md, "Access logs and hosted CloudWatch Logs").
fn access_log_entries(docs: &Documents) -> HashMap<String, Vec<AccessLogEntry>> {
    let groups: HashMap<&str, &str> = docs
        .log_groups
        .iter()
        .map(|g| (g.log_group_arn.as_str(), g.log_group_name.as_str()))
        .collect();
    let mut out: HashMap<String, Vec<AccessLogEntry>> = HashMap::new();
    for sub in &docs.access_logs {
        if sub
            .service_network_log_type
            .as_deref()
            .is_some_and(|t| t != "SERVICE")
        {
            continue;
        }
        let destination = sub
            .destination_arn
            .strip_suffix(":*")
            .unwrap_or(&sub.destination_arn);
        let Some(&name) = groups.get(destination) else {
            continue;
        };
        if account_of(destination) != account_of(&sub.arn) {
            continue;
        }
        out.entry(sub.resource_id.clone())
            .or_default()
            .push(AccessLogEntry {
                subscription_id: sub.id.clone(),
                destination_arn: sub.destination_arn.clone(),
                log_group: name.to_string(),
                resource_id: sub.resource_id.clone(),
                network_arn: None,
            });
    }
    out
}

/// A served service's deliveries: its own subscriptions, then those of each of its networks
/// (a request to the service is a request through every network it is in: Trellis has no VPCs
/// to tell which one a client used).
fn service_access_logs(
    by_resource: &HashMap<String, Vec<AccessLogEntry>>,
    service_id: &str,
    networks: &[NetworkEntry],
) -> Vec<AccessLogEntry> {
    let mut out: Vec<AccessLogEntry> = by_resource.get(service_id).cloned().unwrap_or_default();
    for n in networks {
        for e in by_resource.get(&n.id).into_iter().flatten() {
            out.push(AccessLogEntry {
                network_arn: Some(n.arn.clone()),
                ..e.clone()
            });
        }
    }
    out
}

/// Compiles the records of one revision into a snapshot.
///
/// * A record whose body does not decode as its kind's document is a [`CompileError::Document`]:
///   the whole snapshot is rejected (the caller keeps the last good one).
/// * A service is served when at least one association that serves (see `association_serves`)
///   joins it to a service network that exists. Unserved services contribute nothing: no hosts,
///   ports, DNS or TLS names.
/// * Hosts: every served service's generated name, then every custom domain name not already
///   taken, both lower-cased without a trailing dot. On a collision the service created first
///   keeps the name (records arrive in creation order) and the conflict is logged; generated
///   names can never be shadowed by a custom domain.
/// * Each served listener gets its rules compiled with the listener's own default action and
///   default rule ID (authoritative even if the default rule record is missing or differs).
///   A second listener of one service on a taken port is ignored and logged.
/// * Target groups are all included; `in_use` when some listener's default action or rule
///   forwards to the group (weight 0 included), whether or not its service is served: Lattice
///   reports targets `UNUSED` only when no listener or rule references the group, and the API
///   derives ListTargets' `UNUSED` the same way, so the data plane agrees with it and keeps
///   health-checking those targets. IP targets get `addr` from their address and port (the
///   group's port when the target has none).
/// * References to records that do not exist (an association to a deleted network, a rule of a
///   deleted listener, a target of a deleted group) are skipped: the API deletes dependents in
///   the same transaction, so they only arise from hand-edited stores.
pub fn compile(input: &CompileInput) -> Result<Snapshot, CompileError> {
    let docs = decode_all(&input.records)?;
    Ok(build(input.revision, &input.ctx, docs))
}

/// [`compile`] after decoding: every rule documented there except the decoding one. Pure CPU
/// (about half a second at 10,000 services); callers on an async runtime run it on a blocking
/// thread.
pub fn build(revision: u64, ctx: &Context, mut docs: Documents) -> Snapshot {
    let policies: HashMap<&str, &str> = docs
        .auth_policies
        .iter()
        .map(|p| (p.resource_id.as_str(), p.policy.as_str()))
        .collect();
    let policy_of = |id: &str| policies.get(id).map(|text| parse_auth_policy(id, text));

    let access_logs = access_log_entries(&docs);

    let networks: HashMap<&str, &ServiceNetwork> =
        docs.networks.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut network_entries: HashMap<&str, NetworkEntry> = HashMap::new();
    let mut networks_of: HashMap<&str, Vec<NetworkEntry>> = HashMap::new();
    for assoc in &docs.associations {
        if !association_serves(assoc.status) {
            continue;
        }
        let Some(sn) = networks.get(assoc.service_network_id.as_str()) else {
            tracing::warn!(association = %assoc.id, network = %assoc.service_network_id, "association names a service network that does not exist; ignored");
            continue;
        };
        let entry = network_entries
            .entry(sn.id.as_str())
            .or_insert_with(|| NetworkEntry {
                id: sn.id.clone(),
                arn: sn.arn.clone(),
                auth_type: sn.auth_type,
                auth_policy: policy_of(&sn.id),
            })
            .clone();
        let list = networks_of.entry(assoc.service_id.as_str()).or_default();
        if !list.iter().any(|n| n.id == entry.id) {
            list.push(entry);
        }
    }

    let mut listeners_of: HashMap<&str, Vec<&Listener>> = HashMap::new();
    for l in &docs.listeners {
        listeners_of
            .entry(l.service_id.as_str())
            .or_default()
            .push(l);
    }
    let services: HashSet<&str> = docs.services.iter().map(|s| s.id.as_str()).collect();
    let listener_ids: HashSet<&str> = docs
        .listeners
        .iter()
        .filter(|l| services.contains(l.service_id.as_str()))
        .map(|l| l.id.as_str())
        .collect();
    let forwarded_to: HashSet<String> = docs
        .listeners
        .iter()
        .filter(|l| listener_ids.contains(l.id.as_str()))
        .flat_map(|l| l.default_action.target_group_ids())
        .chain(
            docs.rules
                .iter()
                .filter(|r| listener_ids.contains(r.listener_id.as_str()))
                .flat_map(|r| r.action.target_group_ids()),
        )
        .collect();
    // The rules move into per-listener lists (the route tables read them once): no copy.
    let mut rules_of: HashMap<String, Vec<Rule>> = HashMap::new();
    for r in std::mem::take(&mut docs.rules) {
        rules_of.entry(r.listener_id.clone()).or_default().push(r);
    }

    let mut served: Vec<Arc<ServiceEntry>> = Vec::new();
    let mut ports: BTreeMap<u16, PortProtocols> = BTreeMap::new();
    let mut tls_names: BTreeSet<String> = BTreeSet::new();
    for svc in &docs.services {
        let Some(svc_networks) = networks_of.remove(svc.id.as_str()) else {
            continue;
        };
        let dns_name = normalize_name(&svc.dns_entry.domain_name);
        let custom_domain_name = svc.custom_domain_name.as_deref().map(normalize_name);
        let mut listeners: HashMap<u16, Arc<ListenerEntry>> = HashMap::new();
        for l in listeners_of.get(svc.id.as_str()).into_iter().flatten() {
            if let Some(taken) = listeners.get(&l.port) {
                tracing::warn!(service = %svc.id, listener = %l.id, other = %taken.id, port = l.port, "two listeners of one service on one port; the later one is ignored");
                continue;
            }
            let rules = rules_of.get(l.id.as_str()).map_or(&[][..], Vec::as_slice);
            let p = ports.entry(l.port).or_default();
            match l.protocol {
                ListenerProtocol::Http => p.http = true,
                ListenerProtocol::Https => {
                    p.https = true;
                    tls_names.insert(dns_name.clone());
                    tls_names.extend(custom_domain_name.clone());
                }
                ListenerProtocol::TlsPassthrough => p.tls_passthrough = true,
            }
            listeners.insert(
                l.port,
                Arc::new(ListenerEntry {
                    id: l.id.clone(),
                    arn: l.arn.clone(),
                    name: l.name.clone(),
                    protocol: l.protocol,
                    port: l.port,
                    routes: RouteTable::compile(rules, &l.default_rule_id, &l.default_action),
                }),
            );
        }
        served.push(Arc::new(ServiceEntry {
            id: svc.id.clone(),
            arn: svc.arn.clone(),
            name: svc.name.clone(),
            auth_type: svc.auth_type,
            dns_name,
            custom_domain_name,
            listeners,
            auth_policy: policy_of(&svc.id),
            tags: svc.tags.clone(),
            access_logs: service_access_logs(&access_logs, &svc.id, &svc_networks),
            networks: svc_networks,
        }));
    }

    let mut hosts = HostMap::default();
    let mut dns_names: BTreeSet<String> = BTreeSet::new();
    // The management account's zone, and each other account's that has a served service (every
    // account's generated names live under its own apex).
    let mut dns_zones: BTreeSet<String> =
        BTreeSet::from([trellis_model::dns::zone_apex(&ctx.region, &ctx.account_id)]);
    let apex_suffix = format!(
        ".{}.{}.on.aws",
        trellis_model::dns::SERVICES_LABEL,
        ctx.region
    );
    for svc in &served {
        claim_host(&mut hosts, &svc.dns_name, svc);
        dns_names.insert(svc.dns_name.clone());
        if let Some((_, apex)) = svc.dns_name.split_once('.')
            && apex.ends_with(&apex_suffix)
        {
            dns_zones.insert(apex.to_string());
        }
    }
    for svc in &served {
        if let Some(domain) = &svc.custom_domain_name {
            claim_host(&mut hosts, domain, svc);
            dns_names.insert(domain.clone());
        }
    }

    // Running instances' addresses (IPv4, IPv6), for INSTANCE targets.
    let instances: HashMap<&str, (Option<IpAddr>, Option<IpAddr>)> = docs
        .instances
        .iter()
        .filter(|i| i.state == "running")
        .map(|i| {
            (
                i.instance_id.as_str(),
                (
                    i.private_ip.parse().ok(),
                    i.ipv6.as_deref().and_then(|a| a.parse().ok()),
                ),
            )
        })
        .collect();
    let mut targets_of: HashMap<&str, Vec<&Target>> = HashMap::new();
    for (tg, t) in &docs.targets {
        targets_of.entry(tg.as_str()).or_default().push(t);
    }
    let target_groups = docs
        .target_groups
        .iter()
        .map(|tg| {
            let targets = targets_of
                .get(tg.id.as_str())
                .into_iter()
                .flatten()
                .map(|t| target_entry(tg, t, &instances))
                .collect();
            let entry = TargetGroupEntry {
                id: tg.id.clone(),
                arn: tg.arn.clone(),
                name: tg.name.clone(),
                target_type: tg.target_type,
                config: tg.config.clone(),
                in_use: forwarded_to.contains(&tg.id),
                targets,
            };
            (tg.id.clone(), Arc::new(entry))
        })
        .collect();

    let members: Vec<GroupMember> = docs
        .instances
        .iter()
        .filter(|i| i.state == "running")
        .map(|i| GroupMember {
            addresses: [Some(i.private_ip.as_str()), i.ipv6.as_deref()]
                .into_iter()
                .flatten()
                .filter_map(|a| a.parse().ok())
                .collect(),
            groups: i.security_groups.iter().map(|(id, _)| id.clone()).collect(),
        })
        .collect();
    let clients = ClientNetworks::build(
        ctx,
        &docs.vpcs,
        &docs.security_groups,
        &docs.vpc_associations,
        &docs.networks,
        &members,
    );

    Snapshot {
        revision,
        ctx: ctx.clone(),
        hosts,
        ports,
        target_groups,
        clients,
        dns_zones: dns_zones.into_iter().collect(),
        dns_names: dns_names.into_iter().collect(),
        tls_names: tls_names.into_iter().collect(),
    }
}

fn claim_host(hosts: &mut HostMap, name: &str, svc: &Arc<ServiceEntry>) {
    match hosts.get(name) {
        Some(owner) if owner.id != svc.id => {
            tracing::warn!(host = name, service = %svc.id, owner = %owner.id, "host name already served by another service; the earlier service keeps it");
        }
        Some(_) => {}
        None => {
            hosts.insert(name.to_string(), Arc::clone(svc));
        }
    }
}

/// A registered target as the data plane serves it. An INSTANCE target's address is its
/// instance's (IPv6 for an IPV6 group, else IPv4) while the instance is running; otherwise it
/// has none and gets no traffic.
fn target_entry(
    tg: &TargetGroup,
    t: &Target,
    instances: &HashMap<&str, (Option<IpAddr>, Option<IpAddr>)>,
) -> TargetEntry {
    let addr = match tg.target_type {
        TargetGroupType::Ip => match (t.id.parse::<IpAddr>(), t.port.or(tg.config.port)) {
            (Ok(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
            (Err(_), _) => {
                tracing::warn!(target_group = %tg.id, target = %t.id, "IP target is not an IP address; it gets no traffic");
                None
            }
            (Ok(_), None) => {
                tracing::warn!(target_group = %tg.id, target = %t.id, "IP target has no port and its group none either; it gets no traffic");
                None
            }
        },
        TargetGroupType::Instance => {
            let ipv6 = matches!(
                tg.config.ip_address_type,
                Some(trellis_model::resources::target_group::IpAddressType::Ipv6)
            );
            let ip = instances
                .get(t.id.as_str())
                .and_then(|(v4, v6)| if ipv6 { *v6 } else { *v4 });
            match (ip, t.port.or(tg.config.port)) {
                (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
                _ => None,
            }
        }
        TargetGroupType::Lambda | TargetGroupType::Alb => None,
    };
    TargetEntry {
        id: t.id.clone(),
        port: t.port,
        key: target_key(&t.id, t.port),
        addr,
    }
}

#[cfg(test)]
mod tests;

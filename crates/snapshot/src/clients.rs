//! Client networks as the data plane sees them: which VPC a connection comes from, whether that
//! VPC's service-network association admits it (its security groups), and through which service
//! network its requests arrive. Pure: [`ClientNetworks::build`] compiles the EC2 and association
//! documents of one revision, [`ClientNetworks::admit`] decides one connection.
//!
//! Attribution (docs/decisions.md, "Which client network a connection comes from"):
//! * A VPC association tagged [`INGRESS_ADDRESS_TAG`] with an IP address gets that address as its
//!   own ingress address (Lattice's per-VPC link-local address): the listeners are bound on it
//!   too, and a connection arriving there belongs to that association's VPC when the client's
//!   address is inside the VPC's CIDR blocks. This is how VPCs with overlapping CIDRs are told
//!   apart.
//! * A connection to any other ingress address belongs to the VPC whose CIDR blocks contain the
//!   client's address, among the associated VPCs without an own ingress address; the longest
//!   prefix wins, and two VPCs matching with the same prefix length make the connection
//!   ambiguous (refused). VPCs with no association take no part: they reach nothing.
//! * A trusted PROXY protocol v2 sender may name the VPC outright (`claimed`).
//!
//! Admission: the VPC must have a serving association (one per VPC, as in Lattice); an
//! association with security groups admits a TCP connection only if some ingress rule of one of
//! its groups allows the client's address on the listener's port (rules by CIDR, by security
//! group — the addresses of the instances in it — and by the Lattice managed prefix list); an
//! association without security groups admits every client of its VPC.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;
use trellis_model::Context;
use trellis_model::resources::association::ServiceNetworkVpcAssociation;
use trellis_model::resources::service_network::ServiceNetwork;

/// The record kind of a VPC (the API's `ec2::VPC_KIND`).
pub const VPC_KIND: &str = "ec2-vpc";
/// The record kind of a security group (the API's `ec2::SECURITY_GROUP_KIND`).
pub const SECURITY_GROUP_KIND: &str = "ec2-security-group";
/// The record kind of a service network–VPC association.
pub const VPC_ASSOCIATION_KIND: &str = "service-network-vpc-association";
/// The tag of a VPC association whose value is the association's own ingress address.
pub const INGRESS_ADDRESS_TAG: &str = "trellis:ingress-address";
/// The tag of a VPC association whose value (IP addresses, comma-separated) is what DNS answers
/// the VPC's clients: a load balancer's address, or the set of nodes, in front of Trellis.
pub const ADVERTISED_ADDRESS_TAG: &str = "trellis:advertised-address";
/// The Lattice managed prefix list's ranges (reference §10.3): the addresses Lattice's own
/// traffic comes from. A rule admitting the prefix list admits clients from these.
pub const LATTICE_PREFIXES: [&str; 2] = ["169.254.171.0/24", "fd00:ec2:80::/64"];

/// What the data plane needs of a stored VPC (the API's `StoredVpc` has more).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct VpcDoc {
    pub vpc_id: String,
    pub owner_id: String,
    #[serde(default)]
    pub ipv4: Vec<CidrDoc>,
    #[serde(default)]
    pub ipv6: Vec<CidrDoc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct CidrDoc {
    pub cidr: String,
}

/// What the data plane needs of a stored security group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SecurityGroupDoc {
    pub group_id: String,
    pub vpc_id: String,
    #[serde(default)]
    pub ingress: Vec<SgRuleDoc>,
}

/// One ingress rule as the API stores it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SgRuleDoc {
    pub protocol: String,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub source: SgSourceDoc,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum SgSourceDoc {
    Cidr(String),
    Group(String),
    PrefixList(String),
}

/// An instance's address and groups, as security-group references need them.
#[derive(Clone, Debug, Default)]
pub struct GroupMember {
    pub addresses: Vec<IpAddr>,
    pub groups: Vec<String>,
}

/// A client VPC.
#[derive(Debug)]
pub struct ClientVpc {
    pub id: String,
    /// The VPC's owner account (`SourceVpcOwnerAccount`).
    pub owner: String,
    /// `arn:<partition>:ec2:<region>:<owner>:vpc/<id>`.
    pub arn: String,
    pub cidrs: Vec<IpNet>,
    /// Its serving association with a service network, if any.
    pub association: Option<ClientAssociation>,
}

/// A VPC's association with a service network, as admission needs it.
#[derive(Debug)]
pub struct ClientAssociation {
    pub id: String,
    pub network_id: String,
    pub network_arn: String,
    /// The association's own ingress address ([`INGRESS_ADDRESS_TAG`]).
    pub ingress: Option<IpAddr>,
    /// What DNS answers the VPC's clients ([`ADVERTISED_ADDRESS_TAG`]); empty: the own ingress
    /// address, else the server's advertised addresses.
    pub advertised: Vec<IpAddr>,
    /// Its security groups' ingress rules; empty when it has no security groups (everyone in
    /// the VPC enters). A group that no longer exists contributes no rule.
    pub rules: Vec<Rule>,
    pub has_security_groups: bool,
    /// Whether the VPC's clients resolve the network's custom domain names
    /// (`privateDnsEnabled`); generated names always resolve.
    pub private_dns_enabled: bool,
    /// With `privateDnsPreference` `SPECIFIED_DOMAINS_ONLY`, the domains (exact, or `*.suffix`)
    /// whose custom names resolve; `None`: every custom name (Trellis verifies no domains, so
    /// `VERIFIED_DOMAINS_ONLY` and `ALL_DOMAINS` both mean every one).
    pub private_dns_domains: Option<Vec<String>>,
}

impl ClientAssociation {
    /// Whether the VPC's clients resolve custom domain name `name` (lower case, no final dot).
    pub fn resolves_custom_name(&self, name: &str) -> bool {
        if !self.private_dns_enabled {
            return false;
        }
        let Some(domains) = &self.private_dns_domains else {
            return true;
        };
        domains.iter().any(|d| {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            match d.strip_prefix("*.") {
                Some(suffix) => name
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
                None => name == d,
            }
        })
    }
}

/// One compiled ingress rule: TCP ports (all when `None`) and where clients may come from.
#[derive(Debug)]
pub struct Rule {
    ports: Option<(u16, u16)>,
    source: RuleSource,
}

#[derive(Debug)]
enum RuleSource {
    Net(IpNet),
    Nets(Vec<IpNet>),
    /// The members of a referenced security group, by address.
    Members(Arc<HashSet<IpAddr>>),
}

impl Rule {
    fn admits(&self, peer: IpAddr, port: u16) -> bool {
        if let Some((from, to)) = self.ports
            && !(from..=to).contains(&port)
        {
            return false;
        }
        match &self.source {
            RuleSource::Net(net) => net.contains(&peer),
            RuleSource::Nets(nets) => nets.iter().any(|n| n.contains(&peer)),
            RuleSource::Members(members) => members.contains(&peer),
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No associated VPC's CIDR blocks contain the client's address (on this ingress address).
    NoVpc,
    /// Several VPCs match equally: they need their own ingress addresses.
    Ambiguous,
    /// A trusted sender named a VPC that does not exist.
    UnknownVpc(String),
    /// The VPC a trusted sender named is associated with no service network.
    NotAssociated(String),
    /// The association's security groups do not admit the client on this port.
    SecurityGroups(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoVpc => f.write_str(
                "the client's address is in no VPC associated with a service network",
            ),
            Refusal::Ambiguous => f.write_str(
                "the client's address is in several VPCs; give their associations own ingress addresses",
            ),
            Refusal::UnknownVpc(id) => write!(f, "the sender named VPC {id}, which does not exist"),
            Refusal::NotAssociated(id) => {
                write!(f, "VPC {id} is associated with no service network")
            }
            Refusal::SecurityGroups(id) => write!(
                f,
                "the security groups of VPC {id}'s association do not admit the client on this port"
            ),
        }
    }
}

/// Every client VPC of one revision, indexed for attribution.
#[derive(Debug, Default)]
pub struct ClientNetworks {
    pub vpcs: HashMap<String, Arc<ClientVpc>>,
    /// Candidates on shared ingress addresses: (block, VPC), longest prefix first.
    shared: Vec<(IpNet, Arc<ClientVpc>)>,
    /// Candidates on each own ingress address, longest prefix first.
    dedicated: HashMap<IpAddr, Vec<(IpNet, Arc<ClientVpc>)>>,
}

impl ClientNetworks {
    /// Compiles client networks from one revision's documents. `members` are the running
    /// instances (security-group references admit their addresses).
    pub fn build(
        ctx: &Context,
        vpcs: &[VpcDoc],
        groups: &[SecurityGroupDoc],
        associations: &[ServiceNetworkVpcAssociation],
        networks: &[ServiceNetwork],
        members: &[GroupMember],
    ) -> ClientNetworks {
        let network_arns: HashMap<&str, &str> = networks
            .iter()
            .map(|n| (n.id.as_str(), n.arn.as_str()))
            .collect();
        let mut members_of: HashMap<&str, HashSet<IpAddr>> = HashMap::new();
        for m in members {
            for g in &m.groups {
                members_of
                    .entry(g.as_str())
                    .or_default()
                    .extend(m.addresses.iter().copied());
            }
        }
        let members_of: HashMap<&str, Arc<HashSet<IpAddr>>> = members_of
            .into_iter()
            .map(|(g, set)| (g, Arc::new(set)))
            .collect();
        let lattice: Vec<IpNet> = LATTICE_PREFIXES
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect();
        let groups: HashMap<&str, &SecurityGroupDoc> =
            groups.iter().map(|g| (g.group_id.as_str(), g)).collect();

        // One serving association per VPC (the API refuses a second); the first in creation
        // order wins should a hand-edited store hold more.
        let mut association_of: HashMap<&str, &ServiceNetworkVpcAssociation> = HashMap::new();
        for a in associations {
            if !crate::compile::association_serves(a.status) {
                continue;
            }
            if !network_arns.contains_key(a.service_network_id.as_str()) {
                continue;
            }
            association_of.entry(a.vpc_id.as_str()).or_insert(a);
        }

        let mut out = ClientNetworks::default();
        for v in vpcs {
            let cidrs: Vec<IpNet> = v
                .ipv4
                .iter()
                .chain(&v.ipv6)
                .filter_map(|c| c.cidr.parse().ok())
                .collect();
            let association = association_of.get(v.vpc_id.as_str()).map(|a| {
                let ingress = a.tags.get(INGRESS_ADDRESS_TAG).and_then(|value| {
                    let parsed = value.parse::<IpAddr>().ok();
                    if parsed.is_none() {
                        tracing::warn!(association = %a.id, value = %value, "the {INGRESS_ADDRESS_TAG} tag is not an IP address; ignored");
                    }
                    parsed
                });
                let advertised: Vec<IpAddr> = a
                    .tags
                    .get(ADVERTISED_ADDRESS_TAG)
                    .map(|value| {
                        value
                            .split(',')
                            .filter_map(|v| {
                                let parsed = v.trim().parse::<IpAddr>().ok();
                                if parsed.is_none() {
                                    tracing::warn!(association = %a.id, value = %v, "a {ADVERTISED_ADDRESS_TAG} entry is not an IP address; ignored");
                                }
                                parsed
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut rules = Vec::new();
                for sg in &a.security_group_ids {
                    let Some(group) = groups.get(sg.as_str()) else {
                        continue;
                    };
                    for r in &group.ingress {
                        if let Some(rule) = compile_rule(r, &members_of, &lattice) {
                            rules.push(rule);
                        }
                    }
                }
                ClientAssociation {
                    id: a.id.clone(),
                    network_id: a.service_network_id.clone(),
                    network_arn: network_arns
                        .get(a.service_network_id.as_str())
                        .map_or_else(String::new, |arn| (*arn).to_string()),
                    ingress,
                    advertised,
                    rules,
                    has_security_groups: !a.security_group_ids.is_empty(),
                    private_dns_enabled: a.private_dns_enabled,
                    private_dns_domains: a
                        .dns_options
                        .as_ref()
                        .filter(|o| {
                            o.private_dns_preference.as_deref() == Some("SPECIFIED_DOMAINS_ONLY")
                        })
                        .map(|o| o.private_dns_specified_domains.clone().unwrap_or_default()),
                }
            });
            let vpc = Arc::new(ClientVpc {
                id: v.vpc_id.clone(),
                owner: v.owner_id.clone(),
                arn: format!(
                    "arn:{}:ec2:{}:{}:vpc/{}",
                    ctx.partition, ctx.region, v.owner_id, v.vpc_id
                ),
                cidrs: cidrs.clone(),
                association,
            });
            // Only associated VPCs take part in attribution: an unassociated one reaches
            // nothing, and must not make an associated VPC with the same CIDR ambiguous.
            if let Some(association) = &vpc.association {
                let list = match association.ingress {
                    Some(address) => out.dedicated.entry(address).or_default(),
                    None => &mut out.shared,
                };
                for net in cidrs {
                    list.push((net, Arc::clone(&vpc)));
                }
            }
            out.vpcs.insert(vpc.id.clone(), vpc);
        }
        out.shared
            .sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        for list in out.dedicated.values_mut() {
            list.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        }
        out
    }

    /// The associations' own ingress addresses: the proxy binds its listeners on these too.
    pub fn ingress_addresses(&self) -> BTreeSet<IpAddr> {
        self.dedicated.keys().copied().collect()
    }

    /// The VPC a connection from `peer` to `local` belongs to (`claimed`: named by a trusted
    /// PROXY protocol sender).
    pub fn attribute(
        &self,
        local: IpAddr,
        peer: IpAddr,
        claimed: Option<&str>,
    ) -> Result<&Arc<ClientVpc>, Refusal> {
        if let Some(id) = claimed {
            return self
                .vpcs
                .get(id)
                .ok_or_else(|| Refusal::UnknownVpc(id.to_string()));
        }
        let local = local.to_canonical();
        let peer = peer.to_canonical();
        let candidates = self.dedicated.get(&local).unwrap_or(&self.shared);
        let mut matches = candidates.iter().filter(|(net, _)| net.contains(&peer));
        let Some((best, vpc)) = matches.next() else {
            return Err(Refusal::NoVpc);
        };
        if matches.any(|(net, other)| net.prefix_len() == best.prefix_len() && other.id != vpc.id) {
            return Err(Refusal::Ambiguous);
        }
        Ok(vpc)
    }

    /// Whether a TCP connection from `peer` to `local:port` is admitted, and by which VPC's
    /// association.
    pub fn admit(
        &self,
        local: IpAddr,
        port: u16,
        peer: IpAddr,
        claimed: Option<&str>,
    ) -> Result<&Arc<ClientVpc>, Refusal> {
        let vpc = self.attribute(local, peer, claimed)?;
        let Some(association) = &vpc.association else {
            return Err(Refusal::NotAssociated(vpc.id.clone()));
        };
        let peer = peer.to_canonical();
        if association.has_security_groups
            && !association.rules.iter().any(|r| r.admits(peer, port))
        {
            return Err(Refusal::SecurityGroups(vpc.id.clone()));
        }
        Ok(vpc)
    }
}

/// A rule that can admit TCP traffic, compiled; `None` for other protocols and unreadable rules.
fn compile_rule(
    rule: &SgRuleDoc,
    members_of: &HashMap<&str, Arc<HashSet<IpAddr>>>,
    lattice: &[IpNet],
) -> Option<Rule> {
    let ports = match rule.protocol.as_str() {
        "-1" | "all" => None,
        "tcp" | "6" => {
            let from = u16::try_from(rule.from_port.unwrap_or(0)).ok()?;
            let to = u16::try_from(rule.to_port.unwrap_or(65535)).ok()?;
            Some((from, to))
        }
        _ => return None,
    };
    let source = match &rule.source {
        SgSourceDoc::Cidr(c) => RuleSource::Net(c.parse().ok()?),
        SgSourceDoc::Group(g) => {
            RuleSource::Members(members_of.get(g.as_str()).cloned().unwrap_or_default())
        }
        SgSourceDoc::PrefixList(_) => RuleSource::Nets(lattice.to_vec()),
    };
    Some(Rule { ports, source })
}

#[cfg(test)]
mod tests;

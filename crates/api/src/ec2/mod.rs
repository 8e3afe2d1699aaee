//! An EC2 API subset (`ec2/2016-11-15`, ec2Query, signing name `ec2`): the client networks
//! Lattice's VPC associations and target groups name — VPCs (IPv4 blocks, extra blocks with
//! `AssociateVpcCidrBlock`, IPv6 blocks given explicitly), subnets, security groups with
//! ingress rules (by CIDR, by security group, by the Lattice managed prefix list), tags, and
//! `DescribeManagedPrefixLists` for `com.amazonaws.<region>.vpc-lattice`.
//!
//! Records (in the caller's account, like every resource): [`VPC_KIND`] (id `vpc-…`),
//! [`SUBNET_KIND`] and [`SECURITY_GROUP_KIND`] under their VPC (a security group named by its
//! name, unique per VPC). Every VPC gets the security group `default` (ingress from itself,
//! egress anywhere), deleted with it. Describe calls take EC2's filters (`Name`, `Value.N`
//! with `*`/`?` wildcards, values of one filter OR-ed, filters AND-ed, `tag:KEY`, `tag-key`)
//! and page with `MaxResults`/`NextToken`. Errors are EC2's codes (`InvalidVpcID.NotFound`,
//! `DependencyViolation`, …), all declared as the service's common errors since EC2's model
//! lists none per operation. Authorization is the table's, actions `ec2:<Operation>` on `*`.
//!
//! Lattice's `vpcIdentifier` members must name a VPC of the caller's account, and a VPC
//! association's security groups groups of that VPC ([`require_vpc`],
//! [`require_security_groups`]); a VPC with a service-network association cannot be deleted.
//! The data plane reads VPCs, security groups and instances to attribute client connections
//! (`trellis_snapshot::clients`).

use axum::http::StatusCode;
use ipnet::IpNet;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use trellis_model::Context;
use trellis_store::{Record, StoreError, Tx};
use trellis_wire::{AwsError, Call, Operation, Protocol, Service, ServiceErrors};

use crate::AppState;

pub mod instances;
pub use instances::INSTANCE_KIND;

/// The record kind of a VPC (id `vpc-…`).
pub const VPC_KIND: &str = "ec2-vpc";
/// The record kind of a subnet (id `subnet-…`, parent: its VPC).
pub const SUBNET_KIND: &str = "ec2-subnet";
/// The record kind of a security group (id `sg-…`, parent: its VPC, name: its name).
pub const SECURITY_GROUP_KIND: &str = "ec2-security-group";

/// The codes this subset answers with (EC2's model declares no errors per operation).
const CODES: &[&str] = &[
    "UnauthorizedOperation",
    "AccessDenied",
    "InvalidAction",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidParameter",
    "MissingParameter",
    "InvalidVpcID.NotFound",
    "InvalidVpcID.Malformed",
    "InvalidSubnetID.NotFound",
    "InvalidSubnetID.Malformed",
    "InvalidGroup.NotFound",
    "InvalidGroupId.Malformed",
    "InvalidGroup.Duplicate",
    "InvalidGroup.Reserved",
    "CannotDelete",
    "DependencyViolation",
    "InvalidVpc.Range",
    "InvalidSubnet.Range",
    "InvalidSubnet.Conflict",
    "InvalidPermission.Duplicate",
    "InvalidPermission.NotFound",
    "InvalidPermission.Malformed",
    "InvalidID",
    "InvalidPaginationToken",
    "InvalidPrefixListID.NotFound",
    "InvalidInstanceID.NotFound",
    "InvalidIPAddress.InUse",
    "IncorrectInstanceState",
    "InstanceLimitExceeded",
    "VpcLimitExceeded",
    "CidrLimitExceeded",
    "RulesPerSecurityGroupLimitExceeded",
    "TagLimitExceeded",
    "InvalidRequest",
    "InternalError",
    "RequestLimitExceeded",
];

pub static EC2: Service = Service {
    id: "EC2",
    signing_name: "ec2",
    endpoint_prefix: "ec2",
    api_version: "2016-11-15",
    protocol: Protocol::Ec2Query,
    target_prefix: None,
    xml_namespace: Some("http://ec2.amazonaws.com/doc/2016-11-15/"),
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            Ec2Error::new(
                "InvalidAction",
                format!(
                    "Trellis does not implement the EC2 operation {what}: it serves {}",
                    SERVED.join(", ")
                ),
            )
            .into()
        },
        bad_input: |m| Ec2Error::new("InvalidParameterValue", m).into(),
        internal_code: "InternalError",
        throttling_code: "RequestLimitExceeded",
        too_large: |cap| {
            Ec2Error::new(
                "InvalidRequest",
                format!("Request body exceeds {cap} bytes"),
            )
            .into()
        },
        common: CODES,
    },
};

const SERVED: &[&str] = &[
    "CreateVpc",
    "DescribeVpcs",
    "DeleteVpc",
    "AssociateVpcCidrBlock",
    "CreateSubnet",
    "DescribeSubnets",
    "DeleteSubnet",
    "CreateSecurityGroup",
    "DescribeSecurityGroups",
    "DeleteSecurityGroup",
    "AuthorizeSecurityGroupIngress",
    "RevokeSecurityGroupIngress",
    "CreateTags",
    "DeleteTags",
    "DescribeTags",
    "DescribeManagedPrefixLists",
    "RunInstances",
    "DescribeInstances",
    "TerminateInstances",
    "StopInstances",
    "StartInstances",
];

/// Every EC2 operation Trellis serves.
pub fn operations() -> Vec<Operation<AppState>> {
    vec![
        Operation::rpc(&EC2, "CreateVpc", create_vpc).errors(&[]),
        Operation::rpc(&EC2, "DescribeVpcs", describe_vpcs).errors(&[]),
        Operation::rpc(&EC2, "DeleteVpc", delete_vpc).errors(&[]),
        Operation::rpc(&EC2, "AssociateVpcCidrBlock", associate_vpc_cidr_block).errors(&[]),
        Operation::rpc(&EC2, "CreateSubnet", create_subnet).errors(&[]),
        Operation::rpc(&EC2, "DescribeSubnets", describe_subnets).errors(&[]),
        Operation::rpc(&EC2, "DeleteSubnet", delete_subnet).errors(&[]),
        Operation::rpc(&EC2, "CreateSecurityGroup", create_security_group).errors(&[]),
        Operation::rpc(&EC2, "DescribeSecurityGroups", describe_security_groups).errors(&[]),
        Operation::rpc(&EC2, "DeleteSecurityGroup", delete_security_group).errors(&[]),
        Operation::rpc(&EC2, "AuthorizeSecurityGroupIngress", authorize_ingress).errors(&[]),
        Operation::rpc(&EC2, "RevokeSecurityGroupIngress", revoke_ingress).errors(&[]),
        Operation::rpc(&EC2, "CreateTags", create_tags).errors(&[]),
        Operation::rpc(&EC2, "DeleteTags", delete_tags).errors(&[]),
        Operation::rpc(&EC2, "DescribeTags", describe_tags).errors(&[]),
        Operation::rpc(&EC2, "DescribeManagedPrefixLists", describe_prefix_lists).errors(&[]),
        Operation::rpc(&EC2, "RunInstances", instances::run_instances).errors(&[]),
        Operation::rpc(&EC2, "DescribeInstances", instances::describe_instances).errors(&[]),
        Operation::rpc(&EC2, "TerminateInstances", instances::terminate_instances).errors(&[]),
        Operation::rpc(&EC2, "StopInstances", instances::stop_instances).errors(&[]),
        Operation::rpc(&EC2, "StartInstances", instances::start_instances).errors(&[]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An EC2 error: its code and message (EC2 answers 400 for all of these).
#[derive(Debug)]
pub struct Ec2Error {
    code: &'static str,
    message: String,
    internal: bool,
    /// Set when the store is unavailable: the front door's [`AwsError::unavailable`] (503).
    unavailable: Option<Box<AwsError>>,
}

impl Ec2Error {
    fn new(code: &'static str, message: impl Into<String>) -> Ec2Error {
        Ec2Error {
            code,
            message: message.into(),
            internal: false,
            unavailable: None,
        }
    }

    /// An internal failure: logged with the request ID, answered generically.
    fn internal(message: impl Into<String>) -> Ec2Error {
        Ec2Error {
            internal: true,
            ..Ec2Error::new("InternalError", message)
        }
    }
}

impl From<Ec2Error> for AwsError {
    fn from(e: Ec2Error) -> AwsError {
        if let Some(err) = e.unavailable {
            return *err;
        }
        if e.internal {
            return AwsError::internal("InternalError", e.message);
        }
        AwsError::new(e.code, StatusCode::BAD_REQUEST, e.message)
    }
}

impl From<StoreError> for Ec2Error {
    fn from(e: StoreError) -> Ec2Error {
        let unavailable = match &e {
            StoreError::Unavailable(m) => Some(Box::new(AwsError::unavailable(m.clone()))),
            StoreError::CommitUnknown(m) => Some(Box::new(AwsError::outcome_unknown(m.clone()))),
            _ => None,
        };
        Ec2Error {
            unavailable,
            ..Ec2Error::internal(e.to_string())
        }
    }
}

type Ec2Result<T> = Result<T, Ec2Error>;

fn missing(member: &str) -> Ec2Error {
    Ec2Error::new(
        "MissingParameter",
        format!("The request must contain the parameter {member}"),
    )
}

fn invalid(message: impl Into<String>) -> Ec2Error {
    Ec2Error::new("InvalidParameterValue", message)
}

fn vpc_not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidVpcID.NotFound",
        format!("The vpc ID '{id}' does not exist"),
    )
}

fn subnet_not_found(id: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidSubnetID.NotFound",
        format!("The subnet ID '{id}' does not exist"),
    )
}

fn group_not_found(what: &str) -> Ec2Error {
    Ec2Error::new(
        "InvalidGroup.NotFound",
        format!("The security group '{what}' does not exist"),
    )
}

// ---------------------------------------------------------------------------------------------
// Stored documents

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key", alias = "key")]
    pub key: String,
    #[serde(rename = "Value", alias = "value", default)]
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CidrAssociation {
    pub association_id: String,
    pub cidr: String,
}

/// A stored VPC.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredVpc {
    pub vpc_id: String,
    pub owner_id: String,
    pub instance_tenancy: String,
    pub ipv4: Vec<CidrAssociation>,
    #[serde(default)]
    pub ipv6: Vec<CidrAssociation>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// A stored subnet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredSubnet {
    pub subnet_id: String,
    pub vpc_id: String,
    pub owner_id: String,
    pub cidr: String,
    pub availability_zone: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// One rule of a security group: one protocol/port range and one source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRule {
    pub rule_id: String,
    /// `-1` (all), `tcp`, `udp`, `icmp`, `icmpv6` or a protocol number.
    pub protocol: String,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub source: Source,
    #[serde(default)]
    pub description: Option<String>,
}

/// Where a rule admits traffic from (or sends it to).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    Cidr(String),
    Group(String),
    PrefixList(String),
}

/// A stored security group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub group_id: String,
    pub group_name: String,
    pub description: String,
    pub vpc_id: String,
    pub owner_id: String,
    pub ingress: Vec<SgRule>,
    pub egress: Vec<SgRule>,
    #[serde(default)]
    pub tags: Vec<Tag>,
}

/// The Lattice managed prefix list's ID in a region (stable, like AWS's per-region ID).
pub fn lattice_prefix_list_id(region: &str) -> String {
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        format!("vpc-lattice/{region}").as_bytes(),
    ));
    format!("pl-{}", &digest[..17])
}

fn new_id(prefix: &str) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let mut rng = rand::rng();
    let mut out = String::from(prefix);
    for _ in 0..17 {
        out.push(HEX[rng.random_range(0..16)] as char);
    }
    out
}

fn encode<T: Serialize>(doc: &T) -> Ec2Result<serde_json::Value> {
    serde_json::to_value(doc).map_err(|e| Ec2Error::internal(e.to_string()))
}

fn decode<T: serde::de::DeserializeOwned>(rec: Record) -> Ec2Result<T> {
    serde_json::from_value(rec.body)
        .map_err(|e| Ec2Error::internal(format!("a stored {} does not decode: {e}", rec.kind)))
}

fn record(
    kind: &str,
    id: &str,
    parent: Option<&str>,
    name: Option<String>,
    body: serde_json::Value,
) -> Record {
    Record {
        kind: kind.into(),
        id: id.into(),
        parent: parent.map(str::to_string),
        name,
        arn: None,
        refs: Vec::new(),
        body,
        seq: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared input pieces: tags, filters, pages

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagSpecification {
    resource_type: Option<String>,
    #[serde(default)]
    tag: Vec<Tag>,
}

/// The tags of `specs` for `resource_type` (others are refused, as EC2 does).
fn tags_for(specs: &[TagSpecification], resource_type: &str) -> Ec2Result<Vec<Tag>> {
    let mut out = Vec::new();
    for s in specs {
        match s.resource_type.as_deref() {
            Some(t) if t == resource_type => out.extend(s.tag.iter().cloned()),
            other => {
                return Err(invalid(format!(
                    "'{}' is not a valid taggable resource type for this operation.",
                    other.unwrap_or("")
                )));
            }
        }
    }
    check_tags(&out)?;
    Ok(merge_tags(Vec::new(), out))
}

fn check_tags(tags: &[Tag]) -> Ec2Result<()> {
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            return Err(invalid(format!(
                "Tag key '{}' must be between 1 and 128 characters",
                t.key
            )));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(
                "Tag keys starting with 'aws:' are reserved for internal use",
            ));
        }
        if t.value.chars().count() > 256 {
            return Err(invalid(format!(
                "Tag value for key '{}' must be at most 256 characters",
                t.key
            )));
        }
    }
    Ok(())
}

/// `current` with `new` put over it (a key set twice keeps the last value).
fn merge_tags(mut current: Vec<Tag>, new: Vec<Tag>) -> Vec<Tag> {
    for t in new {
        match current.iter_mut().find(|c| c.key == t.key) {
            Some(c) => c.value = t.value,
            None => current.push(t),
        }
    }
    current
}

const MAX_TAGS: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    name: Option<String>,
    #[serde(default)]
    value: Vec<String>,
}

/// EC2's filter wildcards: `*` any run, `?` one character (`\` escapes).
fn wildcard(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('*') => (0..=v.len()).any(|i| go(&p[1..], &v[i..])),
            Some('?') => !v.is_empty() && go(&p[1..], &v[1..]),
            Some('\\') if p.len() > 1 => v.first() == Some(&p[1]) && go(&p[2..], &v[1..]),
            Some(c) => v.first() == Some(c) && go(&p[1..], &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

/// What a resource answers for each filter name it supports.
trait Filterable {
    /// The filter names this kind supports besides the tag filters (checked even when there is
    /// nothing to filter, as EC2 does).
    const FILTERS: &'static [&'static str];
    /// The values of filter `name`, `None` for a name this resource does not support.
    fn values(&self, name: &str) -> Option<Vec<String>>;
    fn tags(&self) -> &[Tag];
}

/// Whether `item` passes every filter. An unsupported filter name is an error, as in EC2.
fn passes<T: Filterable>(item: &T, filters: &[Filter]) -> Ec2Result<bool> {
    for f in filters {
        let name = f.name.as_deref().ok_or_else(|| missing("Filter.N.Name"))?;
        let values: Vec<String> = if let Some(key) = name.strip_prefix("tag:") {
            item.tags()
                .iter()
                .filter(|t| t.key == key)
                .map(|t| t.value.clone())
                .collect()
        } else if name == "tag-key" {
            item.tags().iter().map(|t| t.key.clone()).collect()
        } else if name == "tag-value" {
            item.tags().iter().map(|t| t.value.clone()).collect()
        } else {
            item.values(name)
                .ok_or_else(|| invalid(format!("The filter '{name}' is invalid")))?
        };
        if !f
            .value
            .iter()
            .any(|pattern| values.iter().any(|v| wildcard(pattern, v)))
        {
            return Ok(false);
        }
    }
    Ok(true)
}

const MAX_FILTERS: usize = 50;
const MAX_FILTER_VALUES: usize = 200;

fn check_filters<T: Filterable>(filters: &[Filter]) -> Ec2Result<()> {
    if filters.len() > MAX_FILTERS || filters.iter().any(|f| f.value.len() > MAX_FILTER_VALUES) {
        return Err(invalid(format!(
            "At most {MAX_FILTERS} filters of at most {MAX_FILTER_VALUES} values each are allowed"
        )));
    }
    for f in filters {
        let name = f.name.as_deref().ok_or_else(|| missing("Filter.N.Name"))?;
        let tag = name.starts_with("tag:") || name == "tag-key" || name == "tag-value";
        if !tag && !T::FILTERS.contains(&name) {
            return Err(invalid(format!("The filter '{name}' is invalid")));
        }
    }
    Ok(())
}

/// `MaxResults`/`NextToken` over `items` (already filtered, in creation order). `NextToken` is
/// the offset of the next item, as this server issued it.
fn page<T>(
    items: Vec<T>,
    max_results: Option<i64>,
    next_token: Option<&str>,
    bounds: (i64, i64),
    with_ids: bool,
) -> Ec2Result<(Vec<T>, Option<String>)> {
    if with_ids && (max_results.is_some() || next_token.is_some()) {
        return Err(Ec2Error::new(
            "InvalidParameterCombination",
            "The parameter MaxResults (or NextToken) cannot be used with IDs",
        ));
    }
    let size = match max_results {
        None => usize::MAX,
        Some(n) if (bounds.0..=bounds.1).contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(format!(
                "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {} and {}.",
                bounds.0, bounds.1
            )));
        }
    };
    let start = match next_token {
        None => 0,
        Some(t) => t
            .strip_prefix("ec2-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                Ec2Error::new(
                    "InvalidPaginationToken",
                    format!("Invalid pagination token {t}"),
                )
            })?,
    };
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(start).take(size).collect();
    let end = start.saturating_add(out.len());
    let next = (end < total).then(|| format!("ec2-page-{end}"));
    Ok((out, next))
}

/// Records of `kind` in creation order, decoded.
async fn all<T: serde::de::DeserializeOwned>(tx: &mut Tx, kind: &str) -> Ec2Result<Vec<T>> {
    tx.list(kind, None).await?.into_iter().map(decode).collect()
}

// ---------------------------------------------------------------------------------------------
// Output shapes (EC2's XML member names)

#[derive(Debug, Serialize)]
pub struct TagOut {
    key: String,
    value: String,
}

fn tag_set(tags: &[Tag]) -> Vec<TagOut> {
    tags.iter()
        .map(|t| TagOut {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct StateOut {
    state: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CidrAssociationOut {
    association_id: String,
    cidr_block: String,
    cidr_block_state: StateOut,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ipv6AssociationOut {
    association_id: String,
    ipv6_cidr_block: String,
    ipv6_cidr_block_state: StateOut,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VpcOut {
    vpc_id: String,
    owner_id: String,
    state: &'static str,
    cidr_block: String,
    cidr_block_association_set: Vec<CidrAssociationOut>,
    ipv6_cidr_block_association_set: Vec<Ipv6AssociationOut>,
    dhcp_options_id: &'static str,
    instance_tenancy: String,
    is_default: bool,
    tag_set: Vec<TagOut>,
}

impl From<&StoredVpc> for VpcOut {
    fn from(v: &StoredVpc) -> VpcOut {
        VpcOut {
            vpc_id: v.vpc_id.clone(),
            owner_id: v.owner_id.clone(),
            state: "available",
            cidr_block: v.ipv4.first().map(|c| c.cidr.clone()).unwrap_or_default(),
            cidr_block_association_set: v
                .ipv4
                .iter()
                .map(|c| CidrAssociationOut {
                    association_id: c.association_id.clone(),
                    cidr_block: c.cidr.clone(),
                    cidr_block_state: StateOut {
                        state: "associated",
                    },
                })
                .collect(),
            ipv6_cidr_block_association_set: v
                .ipv6
                .iter()
                .map(|c| Ipv6AssociationOut {
                    association_id: c.association_id.clone(),
                    ipv6_cidr_block: c.cidr.clone(),
                    ipv6_cidr_block_state: StateOut {
                        state: "associated",
                    },
                })
                .collect(),
            dhcp_options_id: "default",
            instance_tenancy: v.instance_tenancy.clone(),
            is_default: false,
            tag_set: tag_set(&v.tags),
        }
    }
}

impl Filterable for StoredVpc {
    const FILTERS: &'static [&'static str] = &[
        "vpc-id",
        "owner-id",
        "state",
        "is-default",
        "cidr",
        "cidr-block-association.cidr-block",
        "cidr-block-association.association-id",
        "ipv6-cidr-block-association.ipv6-cidr-block",
    ];
    fn values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "vpc-id" => vec![self.vpc_id.clone()],
            "owner-id" => vec![self.owner_id.clone()],
            "state" => vec!["available".into()],
            "is-default" => vec!["false".into()],
            "cidr" | "cidr-block-association.cidr-block" => {
                self.ipv4.iter().map(|c| c.cidr.clone()).collect()
            }
            "cidr-block-association.association-id" => {
                self.ipv4.iter().map(|c| c.association_id.clone()).collect()
            }
            "ipv6-cidr-block-association.ipv6-cidr-block" => {
                self.ipv6.iter().map(|c| c.cidr.clone()).collect()
            }
            _ => return None,
        })
    }
    fn tags(&self) -> &[Tag] {
        &self.tags
    }
}

// ---------------------------------------------------------------------------------------------
// VPCs

/// The VPC CIDR blocks EC2 allows: /16 to /28.
fn vpc_block(cidr: &str) -> Ec2Result<IpNet> {
    let net: IpNet = cidr.parse().map_err(|_| {
        invalid(format!(
            "Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    if net.trunc() != net {
        return Err(invalid(format!(
            "Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        )));
    }
    match net {
        IpNet::V4(v4) if !(16..=28).contains(&v4.prefix_len()) => Err(Ec2Error::new(
            "InvalidVpc.Range",
            format!("The CIDR '{cidr}' is invalid."),
        )),
        IpNet::V6(v6) if !(44..=64).contains(&v6.prefix_len()) => Err(Ec2Error::new(
            "InvalidVpc.Range",
            format!("The IPv6 CIDR '{cidr}' is invalid: a VPC's IPv6 block is /44 to /64."),
        )),
        net => Ok(net),
    }
}

/// How many IPv4 blocks a VPC may have (EC2's default quota).
const CIDRS_PER_VPC: usize = 5;
/// How many VPCs an account may have (above EC2's default of 5: they cost nothing here).
const VPCS_PER_ACCOUNT: u64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateVpcInput {
    cidr_block: Option<String>,
    ipv6_cidr_block: Option<String>,
    instance_tenancy: Option<String>,
    #[serde(default)]
    tag_specification: Vec<TagSpecification>,
    amazon_provided_ipv6_cidr_block: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct CreateVpcOutput {
    vpc: VpcOut,
}

async fn create_vpc(s: AppState, input: CreateVpcInput, _: Call) -> Ec2Result<CreateVpcOutput> {
    let cidr = input
        .cidr_block
        .as_deref()
        .ok_or_else(|| missing("CidrBlock"))?;
    let ipv4 = vpc_block(cidr)?;
    if !matches!(ipv4, IpNet::V4(_)) {
        return Err(invalid(format!(
            "Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid IPv4 CIDR block."
        )));
    }
    if input.amazon_provided_ipv6_cidr_block == Some(true) {
        return Err(invalid(
            "Trellis has no Amazon-provided IPv6 pool: give the block in Ipv6CidrBlock",
        ));
    }
    let ipv6 = match &input.ipv6_cidr_block {
        Some(b) => match vpc_block(b)? {
            net @ IpNet::V6(_) => Some(net),
            IpNet::V4(_) => {
                return Err(invalid(format!(
                    "Value ({b}) for parameter ipv6CidrBlock is invalid."
                )));
            }
        },
        None => None,
    };
    let tenancy = input
        .instance_tenancy
        .clone()
        .unwrap_or_else(|| "default".into());
    if !matches!(tenancy.as_str(), "default" | "dedicated") {
        return Err(invalid(format!(
            "Value ({tenancy}) for parameter instanceTenancy is invalid."
        )));
    }
    let tags = tags_for(&input.tag_specification, "vpc")?;
    let mut tx = s.store.write().await?;
    if tx.count(VPC_KIND, None).await? >= VPCS_PER_ACCOUNT {
        return Err(Ec2Error::new(
            "VpcLimitExceeded",
            format!("The maximum number of VPCs ({VPCS_PER_ACCOUNT}) has been reached."),
        ));
    }
    let vpc = StoredVpc {
        vpc_id: new_id("vpc-"),
        owner_id: s.ctx.account_id.clone(),
        instance_tenancy: tenancy,
        ipv4: vec![CidrAssociation {
            association_id: new_id("vpc-cidr-assoc-"),
            cidr: ipv4.to_string(),
        }],
        ipv6: ipv6
            .into_iter()
            .map(|net| CidrAssociation {
                association_id: new_id("vpc-cidr-assoc-"),
                cidr: net.to_string(),
            })
            .collect(),
        tags,
    };
    tx.insert(&record(VPC_KIND, &vpc.vpc_id, None, None, encode(&vpc)?))
        .await?;
    let default = StoredGroup {
        group_id: new_id("sg-"),
        group_name: "default".into(),
        description: "default VPC security group".into(),
        vpc_id: vpc.vpc_id.clone(),
        owner_id: s.ctx.account_id.clone(),
        ingress: Vec::new(),
        egress: vec![SgRule {
            rule_id: new_id("sgr-"),
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            source: Source::Cidr("0.0.0.0/0".into()),
            description: None,
        }],
        tags: Vec::new(),
    };
    let default = StoredGroup {
        ingress: vec![SgRule {
            rule_id: new_id("sgr-"),
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            source: Source::Group(default.group_id.clone()),
            description: None,
        }],
        ..default
    };
    tx.insert(&record(
        SECURITY_GROUP_KIND,
        &default.group_id,
        Some(&vpc.vpc_id),
        Some("default".into()),
        encode(&default)?,
    ))
    .await?;
    tx.commit().await?;
    Ok(CreateVpcOutput { vpc: (&vpc).into() })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeVpcsInput {
    #[serde(default)]
    filter: Vec<Filter>,
    #[serde(default)]
    vpc_id: Vec<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeVpcsOutput {
    vpc_set: Vec<VpcOut>,
    next_token: Option<String>,
}

/// What a Describe call of VPCs, subnets, security groups or instances asks for.
struct Query<'a> {
    /// The IDs it names (every one must exist), or none for all.
    ids: &'a [String],
    filters: &'a [Filter],
    max_results: Option<i64>,
    next_token: Option<&'a str>,
    /// Whether it named its items some other way too (security groups by name): like IDs, that
    /// excludes paging.
    named: bool,
}

/// One Describe call's answer: the items its IDs name (or all), filtered, one page of them.
fn describe<T: Filterable>(
    items: Vec<T>,
    id_of: impl Fn(&T) -> &str,
    not_found: impl Fn(&str) -> Ec2Error,
    q: Query<'_>,
) -> Ec2Result<(Vec<T>, Option<String>)> {
    let chosen = select(items, id_of, q.ids, q.filters, not_found)?;
    page(
        chosen,
        q.max_results,
        q.next_token,
        (5, 1000),
        q.named || !q.ids.is_empty(),
    )
}

/// Keeps the items whose ID is in `ids` (all of them must exist) or all, then the filtered.
fn select<T: Filterable>(
    items: Vec<T>,
    id_of: impl Fn(&T) -> &str,
    ids: &[String],
    filters: &[Filter],
    not_found: impl Fn(&str) -> Ec2Error,
) -> Ec2Result<Vec<T>> {
    check_filters::<T>(filters)?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !items.iter().any(|i| id_of(i) == id.as_str()))
    {
        return Err(not_found(missing));
    }
    let mut out = Vec::new();
    for item in items {
        if (ids.is_empty() || ids.iter().any(|id| id == id_of(&item))) && passes(&item, filters)? {
            out.push(item);
        }
    }
    Ok(out)
}

async fn describe_vpcs(
    s: AppState,
    input: DescribeVpcsInput,
    _: Call,
) -> Ec2Result<DescribeVpcsOutput> {
    let mut tx = s.store.read().await?;
    let vpcs: Vec<StoredVpc> = all(&mut tx, VPC_KIND).await?;
    let (items, next_token) = describe(
        vpcs,
        |v| &v.vpc_id,
        vpc_not_found,
        Query {
            ids: &input.vpc_id,
            filters: &input.filter,
            max_results: input.max_results,
            next_token: input.next_token.as_deref(),
            named: false,
        },
    )?;
    Ok(DescribeVpcsOutput {
        vpc_set: items.iter().map(VpcOut::from).collect(),
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VpcIdInput {
    vpc_id: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ReturnOutput {
    #[serde(rename = "return")]
    ret: bool,
}

async fn load_vpc(tx: &mut Tx, id: &str) -> Ec2Result<(Record, StoredVpc)> {
    let rec = tx
        .get(VPC_KIND, id)
        .await?
        .ok_or_else(|| vpc_not_found(id))?;
    let vpc = decode(rec.clone())?;
    Ok((rec, vpc))
}

async fn delete_vpc(s: AppState, input: VpcIdInput, _: Call) -> Ec2Result<ReturnOutput> {
    let id = input.vpc_id.as_deref().ok_or_else(|| missing("VpcId"))?;
    let mut tx = s.store.write().await?;
    load_vpc(&mut tx, id).await?;
    let dependency = |what: &str| {
        Ec2Error::new(
            "DependencyViolation",
            format!("The vpc '{id}' has dependencies ({what}) and cannot be deleted."),
        )
    };
    if tx.count(SUBNET_KIND, Some(id)).await? > 0 {
        return Err(dependency("subnets"));
    }
    // A VPC associated with a service network keeps its clients' way in; Lattice's association
    // goes first (as AWS's DeleteVpc refuses a VPC with Lattice associations).
    if !tx
        .list_referencing("service-network-vpc-association", id)
        .await?
        .is_empty()
    {
        return Err(dependency("service network associations"));
    }
    let groups: Vec<StoredGroup> = tx
        .list(SECURITY_GROUP_KIND, Some(id))
        .await?
        .into_iter()
        .map(decode)
        .collect::<Ec2Result<_>>()?;
    if groups.iter().any(|g| g.group_name != "default") {
        return Err(dependency("security groups"));
    }
    for g in &groups {
        tx.delete(SECURITY_GROUP_KIND, &g.group_id).await?;
    }
    tx.delete(VPC_KIND, id).await?;
    tx.commit().await?;
    Ok(ReturnOutput { ret: true })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AssociateVpcCidrBlockInput {
    vpc_id: Option<String>,
    cidr_block: Option<String>,
    ipv6_cidr_block: Option<String>,
    amazon_provided_ipv6_cidr_block: Option<bool>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociateVpcCidrBlockOutput {
    vpc_id: String,
    cidr_block_association: Option<CidrAssociationOut>,
    ipv6_cidr_block_association: Option<Ipv6AssociationOut>,
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

async fn associate_vpc_cidr_block(
    s: AppState,
    input: AssociateVpcCidrBlockInput,
    _: Call,
) -> Ec2Result<AssociateVpcCidrBlockOutput> {
    let id = input.vpc_id.as_deref().ok_or_else(|| missing("VpcId"))?;
    if input.amazon_provided_ipv6_cidr_block == Some(true) {
        return Err(invalid(
            "Trellis has no Amazon-provided IPv6 pool: give the block in Ipv6CidrBlock",
        ));
    }
    let (block, v6) = match (&input.cidr_block, &input.ipv6_cidr_block) {
        (Some(b), None) => (b.as_str(), false),
        (None, Some(b)) => (b.as_str(), true),
        _ => {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "Exactly one of CidrBlock and Ipv6CidrBlock is required",
            ));
        }
    };
    let net = vpc_block(block)?;
    if matches!(net, IpNet::V6(_)) != v6 {
        return Err(invalid(format!(
            "Value ({block}) is not a valid block of that family."
        )));
    }
    let mut tx = s.store.write().await?;
    let (rec, mut vpc) = load_vpc(&mut tx, id).await?;
    let existing = if v6 { &vpc.ipv6 } else { &vpc.ipv4 };
    if existing.len() >= CIDRS_PER_VPC {
        return Err(Ec2Error::new(
            "CidrLimitExceeded",
            format!(
                "This network '{id}' has met its maximum number of allowed CIDRs: {CIDRS_PER_VPC}"
            ),
        ));
    }
    if let Some(clash) = existing
        .iter()
        .find(|c| c.cidr.parse::<IpNet>().is_ok_and(|c| overlaps(&c, &net)))
    {
        return Err(Ec2Error::new(
            "InvalidVpc.Range",
            format!(
                "The CIDR '{block}' overlaps with the CIDR '{}' of this VPC.",
                clash.cidr
            ),
        ));
    }
    let assoc = CidrAssociation {
        association_id: new_id("vpc-cidr-assoc-"),
        cidr: net.to_string(),
    };
    if v6 {
        vpc.ipv6.push(assoc.clone());
    } else {
        vpc.ipv4.push(assoc.clone());
    }
    tx.update(&Record {
        body: encode(&vpc)?,
        ..rec
    })
    .await?;
    tx.commit().await?;
    Ok(AssociateVpcCidrBlockOutput {
        vpc_id: id.to_string(),
        cidr_block_association: (!v6).then(|| CidrAssociationOut {
            association_id: assoc.association_id.clone(),
            cidr_block: assoc.cidr.clone(),
            cidr_block_state: StateOut {
                state: "associated",
            },
        }),
        ipv6_cidr_block_association: v6.then_some(Ipv6AssociationOut {
            association_id: assoc.association_id,
            ipv6_cidr_block: assoc.cidr,
            ipv6_cidr_block_state: StateOut {
                state: "associated",
            },
        }),
    })
}

// ---------------------------------------------------------------------------------------------
// Subnets

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubnetOut {
    subnet_id: String,
    subnet_arn: String,
    vpc_id: String,
    owner_id: String,
    state: &'static str,
    cidr_block: String,
    availability_zone: String,
    available_ip_address_count: u64,
    default_for_az: bool,
    map_public_ip_on_launch: bool,
    tag_set: Vec<TagOut>,
}

fn subnet_out(ctx: &Context, s: &StoredSubnet) -> SubnetOut {
    let size = s
        .cidr
        .parse::<IpNet>()
        .map(|n| 1u64 << (32 - u32::from(n.prefix_len()).min(32)))
        .unwrap_or(0);
    SubnetOut {
        subnet_arn: format!(
            "arn:{}:ec2:{}:{}:subnet/{}",
            ctx.partition, ctx.region, s.owner_id, s.subnet_id
        ),
        subnet_id: s.subnet_id.clone(),
        vpc_id: s.vpc_id.clone(),
        owner_id: s.owner_id.clone(),
        state: "available",
        cidr_block: s.cidr.clone(),
        availability_zone: s.availability_zone.clone(),
        // AWS reserves five addresses of every subnet.
        available_ip_address_count: size.saturating_sub(5),
        default_for_az: false,
        map_public_ip_on_launch: false,
        tag_set: tag_set(&s.tags),
    }
}

impl Filterable for StoredSubnet {
    const FILTERS: &'static [&'static str] = &[
        "subnet-id",
        "vpc-id",
        "owner-id",
        "state",
        "cidr-block",
        "cidr",
        "cidrBlock",
        "availability-zone",
        "availabilityZone",
        "default-for-az",
    ];
    fn values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "subnet-id" => vec![self.subnet_id.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "owner-id" => vec![self.owner_id.clone()],
            "state" => vec!["available".into()],
            "cidr-block" | "cidr" | "cidrBlock" => vec![self.cidr.clone()],
            "availability-zone" | "availabilityZone" => vec![self.availability_zone.clone()],
            "default-for-az" => vec!["false".into()],
            _ => return None,
        })
    }
    fn tags(&self) -> &[Tag] {
        &self.tags
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSubnetInput {
    vpc_id: Option<String>,
    cidr_block: Option<String>,
    availability_zone: Option<String>,
    #[serde(default)]
    tag_specification: Vec<TagSpecification>,
}

#[derive(Debug, Serialize)]
pub struct CreateSubnetOutput {
    subnet: SubnetOut,
}

async fn create_subnet(
    s: AppState,
    input: CreateSubnetInput,
    _: Call,
) -> Ec2Result<CreateSubnetOutput> {
    let vpc_id = input.vpc_id.as_deref().ok_or_else(|| missing("VpcId"))?;
    let cidr = input
        .cidr_block
        .as_deref()
        .ok_or_else(|| missing("CidrBlock"))?;
    let net: IpNet = cidr
        .parse()
        .ok()
        .filter(|n: &IpNet| n.trunc() == *n && matches!(n, IpNet::V4(_)))
        .ok_or_else(|| {
            invalid(format!(
                "Value ({cidr}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
            ))
        })?;
    if !(16..=28).contains(&net.prefix_len()) {
        return Err(Ec2Error::new(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    let zone = input
        .availability_zone
        .clone()
        .unwrap_or_else(|| format!("{}a", s.ctx.region));
    if !zone.starts_with(&s.ctx.region) {
        return Err(invalid(format!(
            "Value ({zone}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {0}a, {0}b, {0}c.",
            s.ctx.region
        )));
    }
    let tags = tags_for(&input.tag_specification, "subnet")?;
    let mut tx = s.store.write().await?;
    let (_, vpc) = load_vpc(&mut tx, vpc_id).await?;
    let inside = vpc
        .ipv4
        .iter()
        .filter_map(|c| c.cidr.parse::<IpNet>().ok())
        .any(|block| block.contains(&net));
    if !inside {
        return Err(Ec2Error::new(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr}' is invalid."),
        ));
    }
    let siblings: Vec<StoredSubnet> = tx
        .list(SUBNET_KIND, Some(vpc_id))
        .await?
        .into_iter()
        .map(decode)
        .collect::<Ec2Result<_>>()?;
    if siblings
        .iter()
        .any(|o| o.cidr.parse::<IpNet>().is_ok_and(|o| overlaps(&o, &net)))
    {
        return Err(Ec2Error::new(
            "InvalidSubnet.Conflict",
            format!("The CIDR '{cidr}' conflicts with another subnet"),
        ));
    }
    let subnet = StoredSubnet {
        subnet_id: new_id("subnet-"),
        vpc_id: vpc_id.to_string(),
        owner_id: s.ctx.account_id.clone(),
        cidr: net.to_string(),
        availability_zone: zone,
        tags,
    };
    tx.insert(&record(
        SUBNET_KIND,
        &subnet.subnet_id,
        Some(vpc_id),
        None,
        encode(&subnet)?,
    ))
    .await?;
    tx.commit().await?;
    Ok(CreateSubnetOutput {
        subnet: subnet_out(&s.ctx, &subnet),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSubnetsInput {
    #[serde(default)]
    filter: Vec<Filter>,
    #[serde(default)]
    subnet_id: Vec<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeSubnetsOutput {
    subnet_set: Vec<SubnetOut>,
    next_token: Option<String>,
}

async fn describe_subnets(
    s: AppState,
    input: DescribeSubnetsInput,
    _: Call,
) -> Ec2Result<DescribeSubnetsOutput> {
    let mut tx = s.store.read().await?;
    let subnets: Vec<StoredSubnet> = all(&mut tx, SUBNET_KIND).await?;
    let (items, next_token) = describe(
        subnets,
        |x| &x.subnet_id,
        subnet_not_found,
        Query {
            ids: &input.subnet_id,
            filters: &input.filter,
            max_results: input.max_results,
            next_token: input.next_token.as_deref(),
            named: false,
        },
    )?;
    Ok(DescribeSubnetsOutput {
        subnet_set: items.iter().map(|x| subnet_out(&s.ctx, x)).collect(),
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SubnetIdInput {
    subnet_id: Option<String>,
}

async fn delete_subnet(s: AppState, input: SubnetIdInput, _: Call) -> Ec2Result<ReturnOutput> {
    let id = input
        .subnet_id
        .as_deref()
        .ok_or_else(|| missing("SubnetId"))?;
    let mut tx = s.store.write().await?;
    if !tx.delete(SUBNET_KIND, id).await? {
        return Err(subnet_not_found(id));
    }
    tx.commit().await?;
    Ok(ReturnOutput { ret: true })
}

// ---------------------------------------------------------------------------------------------
// Security groups

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpRangeOut {
    cidr_ip: String,
    description: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ipv6RangeOut {
    cidr_ipv6: String,
    description: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupPairOut {
    group_id: String,
    user_id: String,
    description: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixListOut {
    prefix_list_id: String,
    description: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IpPermissionOut {
    ip_protocol: String,
    from_port: Option<i64>,
    to_port: Option<i64>,
    groups: Vec<GroupPairOut>,
    ip_ranges: Vec<IpRangeOut>,
    ipv6_ranges: Vec<Ipv6RangeOut>,
    prefix_list_ids: Vec<PrefixListOut>,
}

/// Rules as EC2 lists them: one permission per (protocol, ports) with its sources.
fn permissions(rules: &[SgRule], owner: &str) -> Vec<IpPermissionOut> {
    let mut out: Vec<IpPermissionOut> = Vec::new();
    for r in rules {
        let i = match out.iter().position(|p| {
            p.ip_protocol == r.protocol && p.from_port == r.from_port && p.to_port == r.to_port
        }) {
            Some(i) => i,
            None => {
                out.push(IpPermissionOut {
                    ip_protocol: r.protocol.clone(),
                    from_port: r.from_port,
                    to_port: r.to_port,
                    groups: Vec::new(),
                    ip_ranges: Vec::new(),
                    ipv6_ranges: Vec::new(),
                    prefix_list_ids: Vec::new(),
                });
                out.len() - 1
            }
        };
        let p = &mut out[i];
        let description = r.description.clone();
        match &r.source {
            Source::Cidr(c) if c.contains(':') => p.ipv6_ranges.push(Ipv6RangeOut {
                cidr_ipv6: c.clone(),
                description,
            }),
            Source::Cidr(c) => p.ip_ranges.push(IpRangeOut {
                cidr_ip: c.clone(),
                description,
            }),
            Source::Group(g) => p.groups.push(GroupPairOut {
                group_id: g.clone(),
                user_id: owner.to_string(),
                description,
            }),
            Source::PrefixList(pl) => p.prefix_list_ids.push(PrefixListOut {
                prefix_list_id: pl.clone(),
                description,
            }),
        }
    }
    out
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupOut {
    group_id: String,
    group_name: String,
    group_description: String,
    vpc_id: String,
    owner_id: String,
    security_group_arn: String,
    ip_permissions: Vec<IpPermissionOut>,
    ip_permissions_egress: Vec<IpPermissionOut>,
    tag_set: Vec<TagOut>,
}

fn group_arn(ctx: &Context, g: &StoredGroup) -> String {
    format!(
        "arn:{}:ec2:{}:{}:security-group/{}",
        ctx.partition, ctx.region, g.owner_id, g.group_id
    )
}

fn group_out(ctx: &Context, g: &StoredGroup) -> SecurityGroupOut {
    SecurityGroupOut {
        security_group_arn: group_arn(ctx, g),
        group_id: g.group_id.clone(),
        group_name: g.group_name.clone(),
        group_description: g.description.clone(),
        vpc_id: g.vpc_id.clone(),
        owner_id: g.owner_id.clone(),
        ip_permissions: permissions(&g.ingress, &g.owner_id),
        ip_permissions_egress: permissions(&g.egress, &g.owner_id),
        tag_set: tag_set(&g.tags),
    }
}

impl Filterable for StoredGroup {
    const FILTERS: &'static [&'static str] = &[
        "group-id",
        "group-name",
        "description",
        "vpc-id",
        "owner-id",
        "ip-permission.cidr",
        "egress.ip-permission.cidr",
        "ip-permission.group-id",
        "ip-permission.prefix-list-id",
    ];
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let cidrs = |rules: &[SgRule]| {
            rules
                .iter()
                .filter_map(|r| match &r.source {
                    Source::Cidr(c) => Some(c.clone()),
                    _ => None,
                })
                .collect()
        };
        Some(match name {
            "group-id" => vec![self.group_id.clone()],
            "group-name" => vec![self.group_name.clone()],
            "description" => vec![self.description.clone()],
            "vpc-id" => vec![self.vpc_id.clone()],
            "owner-id" => vec![self.owner_id.clone()],
            "ip-permission.cidr" => cidrs(&self.ingress),
            "egress.ip-permission.cidr" => cidrs(&self.egress),
            "ip-permission.group-id" => self
                .ingress
                .iter()
                .filter_map(|r| match &r.source {
                    Source::Group(g) => Some(g.clone()),
                    _ => None,
                })
                .collect(),
            "ip-permission.prefix-list-id" => self
                .ingress
                .iter()
                .filter_map(|r| match &r.source {
                    Source::PrefixList(p) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
            _ => return None,
        })
    }
    fn tags(&self) -> &[Tag] {
        &self.tags
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecurityGroupInput {
    group_name: Option<String>,
    group_description: Option<String>,
    vpc_id: Option<String>,
    #[serde(default)]
    tag_specification: Vec<TagSpecification>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSecurityGroupOutput {
    #[serde(rename = "return")]
    ret: bool,
    group_id: String,
    security_group_arn: String,
    tag_set: Vec<TagOut>,
}

/// Security group names and descriptions: 1–255 characters of EC2's VPC alphabet.
fn sg_text_ok(s: &str) -> bool {
    (1..=255).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" ._-:/()#,@[]+=&;{}!$*".contains(&b))
}

async fn create_security_group(
    s: AppState,
    input: CreateSecurityGroupInput,
    _: Call,
) -> Ec2Result<CreateSecurityGroupOutput> {
    let name = input
        .group_name
        .as_deref()
        .ok_or_else(|| missing("GroupName"))?;
    let description = input
        .group_description
        .as_deref()
        .ok_or_else(|| missing("GroupDescription"))?;
    let vpc_id = input
        .vpc_id
        .as_deref()
        .ok_or_else(|| missing("VpcId (Trellis has no default VPC: name the VPC)"))?;
    if !sg_text_ok(name) {
        return Err(invalid(format!(
            "Value ({name}) for parameter GroupName is invalid."
        )));
    }
    if !sg_text_ok(description) {
        return Err(invalid(format!(
            "Value ({description}) for parameter GroupDescription is invalid."
        )));
    }
    if name.eq_ignore_ascii_case("default") || name.to_ascii_lowercase().starts_with("sg-") {
        return Err(Ec2Error::new(
            "InvalidGroup.Reserved",
            format!("The security group '{name}' is reserved."),
        ));
    }
    let tags = tags_for(&input.tag_specification, "security-group")?;
    let mut tx = s.store.write().await?;
    load_vpc(&mut tx, vpc_id).await?;
    let group = StoredGroup {
        group_id: new_id("sg-"),
        group_name: name.to_string(),
        description: description.to_string(),
        vpc_id: vpc_id.to_string(),
        owner_id: s.ctx.account_id.clone(),
        ingress: Vec::new(),
        egress: vec![SgRule {
            rule_id: new_id("sgr-"),
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            source: Source::Cidr("0.0.0.0/0".into()),
            description: None,
        }],
        tags,
    };
    match tx
        .insert(&record(
            SECURITY_GROUP_KIND,
            &group.group_id,
            Some(vpc_id),
            Some(name.to_string()),
            encode(&group)?,
        ))
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(Ec2Error::new(
                "InvalidGroup.Duplicate",
                format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(CreateSecurityGroupOutput {
        ret: true,
        security_group_arn: group_arn(&s.ctx, &group),
        group_id: group.group_id,
        tag_set: tag_set(&group.tags),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSecurityGroupsInput {
    #[serde(default)]
    filter: Vec<Filter>,
    #[serde(default)]
    group_id: Vec<String>,
    #[serde(default)]
    group_name: Vec<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeSecurityGroupsOutput {
    security_group_info: Vec<SecurityGroupOut>,
    next_token: Option<String>,
}

async fn describe_security_groups(
    s: AppState,
    input: DescribeSecurityGroupsInput,
    _: Call,
) -> Ec2Result<DescribeSecurityGroupsOutput> {
    let mut tx = s.store.read().await?;
    let groups: Vec<StoredGroup> = all(&mut tx, SECURITY_GROUP_KIND).await?;
    if let Some(name) = input
        .group_name
        .iter()
        .find(|n| !groups.iter().any(|g| &g.group_name == *n))
    {
        return Err(group_not_found(name));
    }
    let by_name: Vec<StoredGroup> = groups
        .into_iter()
        .filter(|g| input.group_name.is_empty() || input.group_name.contains(&g.group_name))
        .collect();
    let (items, next_token) = describe(
        by_name,
        |g| &g.group_id,
        group_not_found,
        Query {
            ids: &input.group_id,
            filters: &input.filter,
            max_results: input.max_results,
            next_token: input.next_token.as_deref(),
            named: !input.group_name.is_empty(),
        },
    )?;
    Ok(DescribeSecurityGroupsOutput {
        security_group_info: items.iter().map(|g| group_out(&s.ctx, g)).collect(),
        next_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupRefInput {
    group_id: Option<String>,
    group_name: Option<String>,
}

/// The group a request names by ID, or by name (which must be unique in the account, as
/// EC2 requires for name lookups outside the default VPC).
async fn load_group(
    tx: &mut Tx,
    id: Option<&str>,
    name: Option<&str>,
) -> Ec2Result<(Record, StoredGroup)> {
    match (id, name) {
        (Some(id), _) => {
            let rec = tx
                .get(SECURITY_GROUP_KIND, id)
                .await?
                .ok_or_else(|| group_not_found(id))?;
            let g = decode(rec.clone())?;
            Ok((rec, g))
        }
        (None, Some(name)) => {
            let mut found = Vec::new();
            for rec in tx.list(SECURITY_GROUP_KIND, None).await? {
                if rec.name.as_deref() == Some(name) {
                    found.push(rec);
                }
            }
            match found.len() {
                1 => {
                    let rec = found.remove(0);
                    let g = decode(rec.clone())?;
                    Ok((rec, g))
                }
                0 => Err(group_not_found(name)),
                _ => Err(invalid(format!(
                    "More than one security group is named '{name}': use GroupId"
                ))),
            }
        }
        (None, None) => Err(missing("GroupId")),
    }
}

async fn delete_security_group(
    s: AppState,
    input: GroupRefInput,
    _: Call,
) -> Ec2Result<CreateSecurityGroupOutputDelete> {
    let mut tx = s.store.write().await?;
    let (_, group) = load_group(
        &mut tx,
        input.group_id.as_deref(),
        input.group_name.as_deref(),
    )
    .await?;
    if group.group_name == "default" {
        return Err(Ec2Error::new(
            "CannotDelete",
            format!(
                "the specified group: \"{}\" name: \"default\" cannot be deleted by a user",
                group.group_id
            ),
        ));
    }
    let others: Vec<StoredGroup> = all(&mut tx, SECURITY_GROUP_KIND).await?;
    if let Some(user) = others.iter().find(|o| {
        o.group_id != group.group_id
            && o.ingress
                .iter()
                .chain(&o.egress)
                .any(|r| r.source == Source::Group(group.group_id.clone()))
    }) {
        return Err(Ec2Error::new(
            "DependencyViolation",
            format!(
                "resource {} has a dependent object (a rule of {})",
                group.group_id, user.group_id
            ),
        ));
    }
    tx.delete(SECURITY_GROUP_KIND, &group.group_id).await?;
    tx.commit().await?;
    Ok(CreateSecurityGroupOutputDelete {
        ret: true,
        group_id: group.group_id,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSecurityGroupOutputDelete {
    #[serde(rename = "return")]
    ret: bool,
    group_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpRangeIn {
    cidr_ip: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipv6RangeIn {
    cidr_ipv6: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GroupPairIn {
    group_id: Option<String>,
    group_name: Option<String>,
    user_id: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PrefixListIn {
    prefix_list_id: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpPermissionIn {
    ip_protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    #[serde(default)]
    ip_ranges: Vec<IpRangeIn>,
    #[serde(default)]
    ipv6_ranges: Vec<Ipv6RangeIn>,
    #[serde(default)]
    groups: Vec<GroupPairIn>,
    #[serde(default)]
    prefix_list_ids: Vec<PrefixListIn>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IngressInput {
    group_id: Option<String>,
    group_name: Option<String>,
    #[serde(default)]
    ip_permissions: Vec<IpPermissionIn>,
    // The older flat form: one protocol/port range from one CIDR or group.
    ip_protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    cidr_ip: Option<String>,
    source_security_group_name: Option<String>,
    source_security_group_owner_id: Option<String>,
    #[serde(default)]
    security_group_rule_id: Vec<String>,
}

/// Rules per security group (EC2's default: 60 inbound).
const RULES_PER_GROUP: usize = 60;

/// The protocol in EC2's canonical form and the checked port range.
fn protocol_ports(p: &IpPermissionIn) -> Ec2Result<(String, Option<i64>, Option<i64>)> {
    let raw = p
        .ip_protocol
        .as_deref()
        .ok_or_else(|| missing("IpPermissions.N.IpProtocol"))?
        .to_ascii_lowercase();
    let protocol = match raw.as_str() {
        "-1" | "all" => "-1".to_string(),
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        n if n.parse::<u8>().is_ok() => n.to_string(),
        other => {
            return Err(invalid(format!(
                "Invalid value '{other}' for IP protocol. Unknown protocol."
            )));
        }
    };
    if protocol == "-1" {
        return Ok((protocol, None, None));
    }
    let ported = matches!(protocol.as_str(), "tcp" | "udp");
    let (from, to) = (p.from_port, p.to_port);
    if ported {
        let (Some(from), Some(to)) = (from, to) else {
            return Err(missing("FromPort and ToPort (required for tcp and udp)"));
        };
        if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
            return Err(Ec2Error::new(
                "InvalidParameterValue",
                format!("Invalid port range {from}-{to}: ports are 0-65535 and FromPort <= ToPort"),
            ));
        }
    }
    Ok((protocol, from, to))
}

/// The rules a request's permissions stand for (without IDs yet), each source checked.
async fn requested_rules(
    tx: &mut Tx,
    ctx: &Context,
    vpc_id: &str,
    input: &IngressInput,
) -> Ec2Result<Vec<SgRule>> {
    let mut perms: Vec<IpPermissionIn> = Vec::new();
    if input.ip_protocol.is_some()
        || input.cidr_ip.is_some()
        || input.source_security_group_name.is_some()
    {
        if !input.ip_permissions.is_empty() {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "IpPermissions cannot be combined with the IpProtocol/CidrIp form",
            ));
        }
        if input.source_security_group_owner_id.is_some() {
            return Err(invalid(
                "SourceSecurityGroupOwnerId is not supported: rules reference groups of the same account",
            ));
        }
        perms.push(IpPermissionIn {
            ip_protocol: input.ip_protocol.clone().or(Some("-1".into())),
            from_port: input.from_port,
            to_port: input.to_port,
            ip_ranges: input
                .cidr_ip
                .clone()
                .map(|c| IpRangeIn {
                    cidr_ip: Some(c),
                    description: None,
                })
                .into_iter()
                .collect(),
            groups: input
                .source_security_group_name
                .clone()
                .map(|n| GroupPairIn {
                    group_name: Some(n),
                    ..GroupPairIn::default()
                })
                .into_iter()
                .collect(),
            ..IpPermissionIn::default()
        });
    } else {
        perms = input
            .ip_permissions
            .iter()
            .map(|p| IpPermissionIn {
                ip_protocol: p.ip_protocol.clone(),
                from_port: p.from_port,
                to_port: p.to_port,
                ip_ranges: p
                    .ip_ranges
                    .iter()
                    .map(|r| IpRangeIn {
                        cidr_ip: r.cidr_ip.clone(),
                        description: r.description.clone(),
                    })
                    .collect(),
                ipv6_ranges: p
                    .ipv6_ranges
                    .iter()
                    .map(|r| Ipv6RangeIn {
                        cidr_ipv6: r.cidr_ipv6.clone(),
                        description: r.description.clone(),
                    })
                    .collect(),
                groups: p
                    .groups
                    .iter()
                    .map(|g| GroupPairIn {
                        group_id: g.group_id.clone(),
                        group_name: g.group_name.clone(),
                        user_id: g.user_id.clone(),
                        description: g.description.clone(),
                    })
                    .collect(),
                prefix_list_ids: p
                    .prefix_list_ids
                    .iter()
                    .map(|x| PrefixListIn {
                        prefix_list_id: x.prefix_list_id.clone(),
                        description: x.description.clone(),
                    })
                    .collect(),
            })
            .collect();
    }
    if perms.is_empty() {
        return Err(missing("IpPermissions"));
    }
    let lattice_list = lattice_prefix_list_id(&ctx.region);
    let mut out = Vec::new();
    for p in &perms {
        let (protocol, from_port, to_port) = protocol_ports(p)?;
        let rule = |source: Source, description: Option<String>| SgRule {
            rule_id: String::new(),
            protocol: protocol.clone(),
            from_port,
            to_port,
            source,
            description,
        };
        let before = out.len();
        for r in &p.ip_ranges {
            let c = r.cidr_ip.as_deref().ok_or_else(|| missing("CidrIp"))?;
            match c.parse::<IpNet>() {
                Ok(IpNet::V4(n)) => out.push(rule(
                    Source::Cidr(n.trunc().to_string()),
                    r.description.clone(),
                )),
                _ => return Err(invalid(format!("CIDR block {c} is malformed"))),
            }
        }
        for r in &p.ipv6_ranges {
            let c = r.cidr_ipv6.as_deref().ok_or_else(|| missing("CidrIpv6"))?;
            match c.parse::<IpNet>() {
                Ok(IpNet::V6(n)) => out.push(rule(
                    Source::Cidr(n.trunc().to_string()),
                    r.description.clone(),
                )),
                _ => return Err(invalid(format!("CIDR block {c} is malformed"))),
            }
        }
        for g in &p.groups {
            if g.user_id.as_deref().is_some_and(|u| u != ctx.account_id) {
                return Err(invalid(
                    "Rules may reference security groups of the same account only",
                ));
            }
            let (_, source) =
                load_group(tx, g.group_id.as_deref(), g.group_name.as_deref()).await?;
            if source.vpc_id != vpc_id {
                return Err(invalid(format!(
                    "Security group {} is in another VPC than the rule's group",
                    source.group_id
                )));
            }
            out.push(rule(Source::Group(source.group_id), g.description.clone()));
        }
        for x in &p.prefix_list_ids {
            let id = x
                .prefix_list_id
                .as_deref()
                .ok_or_else(|| missing("PrefixListId"))?;
            if id != lattice_list {
                return Err(Ec2Error::new(
                    "InvalidPrefixListID.NotFound",
                    format!("The prefix list ID '{id}' does not exist"),
                ));
            }
            out.push(rule(
                Source::PrefixList(id.to_string()),
                x.description.clone(),
            ));
        }
        if out.len() == before {
            return Err(missing(
                "a source (IpRanges, Ipv6Ranges, Groups or PrefixListIds)",
            ));
        }
    }
    Ok(out)
}

/// Whether two rules are the same permission (ignoring IDs and descriptions).
fn same_rule(a: &SgRule, b: &SgRule) -> bool {
    a.protocol == b.protocol
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.source == b.source
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleOut {
    security_group_rule_id: String,
    group_id: String,
    group_owner_id: String,
    is_egress: bool,
    ip_protocol: String,
    from_port: i64,
    to_port: i64,
    cidr_ipv4: Option<String>,
    cidr_ipv6: Option<String>,
    prefix_list_id: Option<String>,
    description: Option<String>,
}

fn rule_out(g: &StoredGroup, r: &SgRule) -> RuleOut {
    let (v4, v6, pl) = match &r.source {
        Source::Cidr(c) if c.contains(':') => (None, Some(c.clone()), None),
        Source::Cidr(c) => (Some(c.clone()), None, None),
        Source::Group(_) => (None, None, None),
        Source::PrefixList(p) => (None, None, Some(p.clone())),
    };
    RuleOut {
        security_group_rule_id: r.rule_id.clone(),
        group_id: g.group_id.clone(),
        group_owner_id: g.owner_id.clone(),
        is_egress: false,
        ip_protocol: r.protocol.clone(),
        from_port: r.from_port.unwrap_or(-1),
        to_port: r.to_port.unwrap_or(-1),
        cidr_ipv4: v4,
        cidr_ipv6: v6,
        prefix_list_id: pl,
        description: r.description.clone(),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeOutput {
    #[serde(rename = "return")]
    ret: bool,
    security_group_rule_set: Vec<RuleOut>,
}

async fn authorize_ingress(
    s: AppState,
    input: IngressInput,
    _: Call,
) -> Ec2Result<AuthorizeOutput> {
    let mut tx = s.store.write().await?;
    let (rec, mut group) = load_group(
        &mut tx,
        input.group_id.as_deref(),
        input.group_name.as_deref(),
    )
    .await?;
    let mut added = requested_rules(&mut tx, &s.ctx, &group.vpc_id.clone(), &input).await?;
    for r in &added {
        if group.ingress.iter().any(|e| same_rule(e, r)) {
            return Err(Ec2Error::new(
                "InvalidPermission.Duplicate",
                format!(
                    "the specified rule \"peer: {:?}, {}, ALLOW\" already exists",
                    r.source, r.protocol
                ),
            ));
        }
    }
    if group.ingress.len() + added.len() > RULES_PER_GROUP {
        return Err(Ec2Error::new(
            "RulesPerSecurityGroupLimitExceeded",
            format!(
                "The maximum number of rules per security group ({RULES_PER_GROUP}) has been reached."
            ),
        ));
    }
    for r in &mut added {
        r.rule_id = new_id("sgr-");
    }
    group.ingress.extend(added.iter().cloned());
    tx.update(&Record {
        body: encode(&group)?,
        ..rec
    })
    .await?;
    tx.commit().await?;
    Ok(AuthorizeOutput {
        ret: true,
        security_group_rule_set: added.iter().map(|r| rule_out(&group, r)).collect(),
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevokeOutput {
    #[serde(rename = "return")]
    ret: bool,
}

async fn revoke_ingress(s: AppState, input: IngressInput, _: Call) -> Ec2Result<RevokeOutput> {
    let mut tx = s.store.write().await?;
    let (rec, mut group) = load_group(
        &mut tx,
        input.group_id.as_deref(),
        input.group_name.as_deref(),
    )
    .await?;
    if !input.security_group_rule_id.is_empty() {
        for id in &input.security_group_rule_id {
            if !group.ingress.iter().any(|r| &r.rule_id == id) {
                return Err(Ec2Error::new(
                    "InvalidPermission.NotFound",
                    format!(
                        "The security group rule ID '{id}' does not exist in {}",
                        group.group_id
                    ),
                ));
            }
        }
        group
            .ingress
            .retain(|r| !input.security_group_rule_id.contains(&r.rule_id));
    } else {
        let gone = requested_rules(&mut tx, &s.ctx, &group.vpc_id.clone(), &input).await?;
        for r in &gone {
            if !group.ingress.iter().any(|e| same_rule(e, r)) {
                return Err(Ec2Error::new(
                    "InvalidPermission.NotFound",
                    "The specified rule does not exist in this security group.",
                ));
            }
        }
        group
            .ingress
            .retain(|e| !gone.iter().any(|r| same_rule(e, r)));
    }
    tx.update(&Record {
        body: encode(&group)?,
        ..rec
    })
    .await?;
    tx.commit().await?;
    Ok(RevokeOutput { ret: true })
}

// ---------------------------------------------------------------------------------------------
// Tags

/// The record kind and EC2 resource type of an ID, by its prefix.
fn kind_of(id: &str) -> Option<(&'static str, &'static str)> {
    if id.starts_with("vpc-") {
        Some((VPC_KIND, "vpc"))
    } else if id.starts_with("subnet-") {
        Some((SUBNET_KIND, "subnet"))
    } else if id.starts_with("sg-") {
        Some((SECURITY_GROUP_KIND, "security-group"))
    } else if id.starts_with("i-") {
        Some((INSTANCE_KIND, "instance"))
    } else {
        None
    }
}

/// Reads, changes and writes back the tags of the resource `id`.
async fn retag(
    tx: &mut Tx,
    id: &str,
    change: impl FnOnce(Vec<Tag>) -> Ec2Result<Vec<Tag>>,
) -> Ec2Result<()> {
    let (kind, _) = kind_of(id)
        .ok_or_else(|| Ec2Error::new("InvalidID", format!("The ID '{id}' is not valid")))?;
    let rec = tx.get(kind, id).await?.ok_or_else(|| match kind {
        VPC_KIND => vpc_not_found(id),
        SUBNET_KIND => subnet_not_found(id),
        INSTANCE_KIND => instances::instance_not_found(id),
        _ => group_not_found(id),
    })?;
    let mut body = rec.body.clone();
    let tags: Vec<Tag> =
        serde_json::from_value(body.get("tags").cloned().unwrap_or_default()).unwrap_or_default();
    let tags = change(tags)?;
    if tags.len() > MAX_TAGS {
        return Err(Ec2Error::new(
            "TagLimitExceeded",
            format!("The maximum number of tags ({MAX_TAGS}) for resource {id} has been reached."),
        ));
    }
    body["tags"] = encode(&tags)?;
    tx.update(&Record { body, ..rec }).await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagsInput {
    #[serde(default)]
    resource_id: Vec<String>,
    #[serde(default)]
    tag: Vec<Tag>,
}

async fn create_tags(s: AppState, input: TagsInput, _: Call) -> Ec2Result<ReturnOutput> {
    if input.resource_id.is_empty() {
        return Err(missing("ResourceId.N"));
    }
    if input.tag.is_empty() {
        return Err(missing("Tag.N"));
    }
    check_tags(&input.tag)?;
    let mut tx = s.store.write().await?;
    for id in &input.resource_id {
        retag(&mut tx, id, |current| {
            Ok(merge_tags(current, input.tag.clone()))
        })
        .await?;
    }
    tx.commit().await?;
    Ok(ReturnOutput { ret: true })
}

/// DeleteTags: a tag with a value is removed only if the value matches; without one, by key.
async fn delete_tags(s: AppState, input: TagsInput, _: Call) -> Ec2Result<ReturnOutput> {
    if input.resource_id.is_empty() {
        return Err(missing("ResourceId.N"));
    }
    let mut tx = s.store.write().await?;
    for id in &input.resource_id {
        retag(&mut tx, id, |current| {
            Ok(if input.tag.is_empty() {
                Vec::new()
            } else {
                current
                    .into_iter()
                    .filter(|t| {
                        !input
                            .tag
                            .iter()
                            .any(|d| d.key == t.key && (d.value.is_empty() || d.value == t.value))
                    })
                    .collect()
            })
        })
        .await?;
    }
    tx.commit().await?;
    Ok(ReturnOutput { ret: true })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTagsInput {
    #[serde(default)]
    filter: Vec<Filter>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagDescriptionOut {
    resource_id: String,
    resource_type: &'static str,
    key: String,
    value: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeTagsOutput {
    tag_set: Vec<TagDescriptionOut>,
    next_token: Option<String>,
}

struct TagRow {
    resource_id: String,
    resource_type: &'static str,
    tag: Tag,
}

impl Filterable for TagRow {
    const FILTERS: &'static [&'static str] = &["resource-id", "resource-type", "key", "value"];
    fn values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "resource-id" => vec![self.resource_id.clone()],
            "resource-type" => vec![self.resource_type.to_string()],
            "key" => vec![self.tag.key.clone()],
            "value" => vec![self.tag.value.clone()],
            _ => return None,
        })
    }
    fn tags(&self) -> &[Tag] {
        std::slice::from_ref(&self.tag)
    }
}

async fn describe_tags(
    s: AppState,
    input: DescribeTagsInput,
    _: Call,
) -> Ec2Result<DescribeTagsOutput> {
    check_filters::<TagRow>(&input.filter)?;
    let mut tx = s.store.read().await?;
    let mut rows = Vec::new();
    for (kind, resource_type) in [
        (VPC_KIND, "vpc"),
        (SUBNET_KIND, "subnet"),
        (SECURITY_GROUP_KIND, "security-group"),
        (INSTANCE_KIND, "instance"),
    ] {
        for rec in tx.list(kind, None).await? {
            let tags: Vec<Tag> =
                serde_json::from_value(rec.body.get("tags").cloned().unwrap_or_default())
                    .unwrap_or_default();
            for tag in tags {
                rows.push(TagRow {
                    resource_id: rec.id.clone(),
                    resource_type,
                    tag,
                });
            }
        }
    }
    let mut chosen = Vec::new();
    for row in rows {
        if passes(&row, &input.filter)? {
            chosen.push(row);
        }
    }
    let (items, next_token) = page(
        chosen,
        input.max_results,
        input.next_token.as_deref(),
        (5, 1000),
        false,
    )?;
    Ok(DescribeTagsOutput {
        tag_set: items
            .into_iter()
            .map(|r| TagDescriptionOut {
                resource_id: r.resource_id,
                resource_type: r.resource_type,
                key: r.tag.key,
                value: r.tag.value,
            })
            .collect(),
        next_token,
    })
}

// ---------------------------------------------------------------------------------------------
// Managed prefix lists

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribePrefixListsInput {
    #[serde(default)]
    filter: Vec<Filter>,
    #[serde(default)]
    prefix_list_id: Vec<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrefixListInfoOut {
    prefix_list_id: String,
    address_family: &'static str,
    state: &'static str,
    prefix_list_arn: String,
    prefix_list_name: String,
    max_entries: u32,
    version: u32,
    owner_id: &'static str,
    tag_set: Vec<TagOut>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribePrefixListsOutput {
    prefix_list_set: Vec<PrefixListInfoOut>,
    next_token: Option<String>,
}

struct PrefixList {
    id: String,
    name: String,
}

impl Filterable for PrefixList {
    const FILTERS: &'static [&'static str] = &["prefix-list-id", "prefix-list-name", "owner-id"];
    fn values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "prefix-list-id" => vec![self.id.clone()],
            "prefix-list-name" => vec![self.name.clone()],
            "owner-id" => vec!["AWS".into()],
            _ => return None,
        })
    }
    fn tags(&self) -> &[Tag] {
        &[]
    }
}

/// The one managed prefix list Trellis has: Lattice's, standing for the ingress addresses a
/// security group rule admits Lattice's traffic from.
async fn describe_prefix_lists(
    s: AppState,
    input: DescribePrefixListsInput,
    _: Call,
) -> Ec2Result<DescribePrefixListsOutput> {
    let list = PrefixList {
        id: lattice_prefix_list_id(&s.ctx.region),
        name: format!("com.amazonaws.{}.vpc-lattice", s.ctx.region),
    };
    if let Some(other) = input.prefix_list_id.iter().find(|id| **id != list.id) {
        return Err(Ec2Error::new(
            "InvalidPrefixListID.NotFound",
            format!("The prefix list ID '{other}' does not exist"),
        ));
    }
    check_filters::<PrefixList>(&input.filter)?;
    let chosen = if passes(&list, &input.filter)? {
        vec![list]
    } else {
        Vec::new()
    };
    let (items, next_token) = page(
        chosen,
        input.max_results,
        input.next_token.as_deref(),
        (1, 100),
        false,
    )?;
    Ok(DescribePrefixListsOutput {
        prefix_list_set: items
            .into_iter()
            .map(|l| PrefixListInfoOut {
                prefix_list_arn: format!(
                    "arn:{}:ec2:{}:aws:prefix-list/{}",
                    s.ctx.partition, s.ctx.region, l.id
                ),
                prefix_list_id: l.id,
                address_family: "IPv4",
                state: "create-complete",
                prefix_list_name: l.name,
                max_entries: 0,
                version: 1,
                owner_id: "AWS",
                tag_set: Vec::new(),
            })
            .collect(),
        next_token,
    })
}

// ---------------------------------------------------------------------------------------------
// What Lattice's resources may name

/// Checks that `vpc_id` (the Lattice member `field`) names a VPC of the caller's account (the
/// transaction's). Lattice answers in its own shape: a `ValidationException` on the field.
pub(crate) async fn require_vpc(
    tx: &mut Tx,
    field: &str,
    vpc_id: &str,
) -> Result<(), crate::error::ApiError> {
    if tx.get(VPC_KIND, vpc_id).await?.is_none() {
        return Err(crate::error::ApiError::validation_field(
            field,
            format!("VPC {vpc_id} does not exist in this account (create it with ec2:CreateVpc)"),
        ));
    }
    Ok(())
}

/// Checks that each of `ids` names a security group of VPC `vpc_id` in the caller's account.
pub(crate) async fn require_security_groups(
    tx: &mut Tx,
    vpc_id: &str,
    ids: &[String],
) -> Result<(), crate::error::ApiError> {
    for (i, id) in ids.iter().enumerate() {
        let group: Option<StoredGroup> = match tx.get(SECURITY_GROUP_KIND, id).await? {
            Some(rec) => Some(
                serde_json::from_value(rec.body)
                    .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?,
            ),
            None => None,
        };
        match group {
            Some(g) if g.vpc_id == vpc_id => {}
            Some(g) => {
                return Err(crate::error::ApiError::validation_field(
                    &format!("securityGroupIds[{i}]"),
                    format!(
                        "security group {id} belongs to VPC {}, not to VPC {vpc_id}",
                        g.vpc_id
                    ),
                ));
            }
            None => {
                return Err(crate::error::ApiError::validation_field(
                    &format!("securityGroupIds[{i}]"),
                    format!("security group {id} does not exist in this account"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        for (p, v, want) in [
            ("vpc-*", "vpc-0123", true),
            ("vpc-?123", "vpc-0123", true),
            ("vpc-?123", "vpc-00123", false),
            ("*", "", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("10.0.*", "10.0.0.0/16", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(wildcard(p, v), want, "{p} {v}");
        }
    }

    #[test]
    fn pages() {
        let items: Vec<u32> = (0..12).collect();
        let (first, next) = page(items.clone(), Some(5), None, (5, 1000), false).unwrap();
        assert_eq!(first, vec![0, 1, 2, 3, 4]);
        let (second, next) =
            page(items.clone(), Some(5), next.as_deref(), (5, 1000), false).unwrap();
        assert_eq!(second, vec![5, 6, 7, 8, 9]);
        let (third, next) =
            page(items.clone(), Some(5), next.as_deref(), (5, 1000), false).unwrap();
        assert_eq!((third, next), (vec![10, 11], None));
        assert_eq!(
            page(items.clone(), Some(4), None, (5, 1000), false)
                .unwrap_err()
                .code,
            "InvalidParameterValue"
        );
        assert_eq!(
            page(items.clone(), None, Some("bogus"), (5, 1000), false)
                .unwrap_err()
                .code,
            "InvalidPaginationToken"
        );
        assert_eq!(
            page(items, Some(5), None, (5, 1000), true)
                .unwrap_err()
                .code,
            "InvalidParameterCombination"
        );
    }

    #[test]
    fn vpc_blocks() {
        assert!(vpc_block("10.0.0.0/16").is_ok());
        assert_eq!(
            vpc_block("10.0.0.0/8").unwrap_err().code,
            "InvalidVpc.Range"
        );
        assert_eq!(
            vpc_block("10.0.0.0/29").unwrap_err().code,
            "InvalidVpc.Range"
        );
        assert_eq!(
            vpc_block("10.0.0.1/16").unwrap_err().code,
            "InvalidParameterValue"
        );
        assert_eq!(
            vpc_block("nonsense").unwrap_err().code,
            "InvalidParameterValue"
        );
        assert!(vpc_block("2001:db8::/56").is_ok());
    }
}

//! Association documents: a service joined to a service network (`snsa-`), and a client VPC
//! joined to a service network (`snva-`). Together they decide reachability in the data plane:
//! a client in VPC V reaches service S iff some SN has both an snva for V and an snsa for S.
//!
//! Names, ARNs and the DNS entry of the associated resources are copied in at creation: all of
//! them are immutable on their owners, and keeping them here lets Get/List answer without joins.

use serde::{Deserialize, Serialize};

use super::Tags;
use crate::Timestamp;
use crate::dns::DnsEntry;

/// `status` of associations: the union of the model's SN–service and SN–VPC status enums.
/// Trellis applies synchronously, so stored associations are `ACTIVE`; `DELETE_IN_PROGRESS`
/// appears only in Delete responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssociationStatus {
    #[default]
    Active,
    CreateInProgress,
    UpdateInProgress,
    DeleteInProgress,
    CreateFailed,
    UpdateFailed,
    DeleteFailed,
}

impl AssociationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AssociationStatus::Active => "ACTIVE",
            AssociationStatus::CreateInProgress => "CREATE_IN_PROGRESS",
            AssociationStatus::UpdateInProgress => "UPDATE_IN_PROGRESS",
            AssociationStatus::DeleteInProgress => "DELETE_IN_PROGRESS",
            AssociationStatus::CreateFailed => "CREATE_FAILED",
            AssociationStatus::UpdateFailed => "UPDATE_FAILED",
            AssociationStatus::DeleteFailed => "DELETE_FAILED",
        }
    }
}

/// A service in a service network. Store record: parent = SN id, name = service id (one
/// association per SN + service), refs = [service id].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkServiceAssociation {
    pub id: String,
    pub arn: String,
    pub status: AssociationStatus,
    /// The account that created the association.
    pub created_by: String,
    pub created_at: Timestamp,
    pub service_id: String,
    pub service_name: String,
    pub service_arn: String,
    pub service_network_id: String,
    pub service_network_name: String,
    pub service_network_arn: String,
    /// The service's generated name, reachable from VPCs associated with the SN.
    pub dns_entry: DnsEntry,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_domain_name: Option<String>,
    #[serde(default)]
    pub tags: Tags,
}

/// The model's `PrivateDnsPreference` values.
pub const PRIVATE_DNS_PREFERENCES: [&str; 4] = [
    "VERIFIED_DOMAINS_ONLY",
    "ALL_DOMAINS",
    "VERIFIED_DOMAINS_AND_SPECIFIED_DOMAINS",
    "SPECIFIED_DOMAINS_ONLY",
];

/// Preferences that take `privateDnsSpecifiedDomains` (and require it).
pub const PREFERENCES_WITH_DOMAINS: [&str; 2] = [
    "VERIFIED_DOMAINS_AND_SPECIFIED_DOMAINS",
    "SPECIFIED_DOMAINS_ONLY",
];

/// `dnsOptions` of a VPC association, as stored and returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns_preference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_dns_specified_domains: Option<Vec<String>>,
}

/// A client VPC in a service network. Store record: parent = SN id, no name, refs = [vpc id]
/// (a VPC may be in only one SN through associations, checked through the refs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNetworkVpcAssociation {
    pub id: String,
    pub arn: String,
    pub status: AssociationStatus,
    pub created_by: String,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    pub service_network_id: String,
    pub service_network_name: String,
    pub service_network_arn: String,
    pub vpc_id: String,
    /// 0–5 at creation; once non-empty, UpdateServiceNetworkVpcAssociation keeps it at 1–5.
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    pub private_dns_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_options: Option<DnsOptions>,
    #[serde(default)]
    pub tags: Tags,
}

/// Whether `s` is a VPC ID as the model's `VpcId` pattern has it: `vpc-` + 8 or 17 of `[0-9a-z]`.
pub fn is_vpc_id(s: &str) -> bool {
    short_or_long_id(s, "vpc-")
}

/// Whether `s` is a security group ID: `sg-` + 8 or 17 of `[0-9a-z]`.
pub fn is_security_group_id(s: &str) -> bool {
    short_or_long_id(s, "sg-")
}

fn short_or_long_id(s: &str, prefix: &str) -> bool {
    match s.strip_prefix(prefix) {
        Some(rest) => {
            (rest.len() == 8 || rest.len() == 17)
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        }
        None => false,
    }
}

pub const VPC_ID_PATTERN: &str = "vpc-(([0-9a-z]{8})|([0-9a-z]{17}))";
pub const SECURITY_GROUP_ID_PATTERN: &str = "sg-(([0-9a-z]{8})|([0-9a-z]{17}))";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_id_table() {
        type Check = fn(&str) -> bool;
        let cases: [(&str, Check, bool); 10] = [
            ("vpc-0123abcd", is_vpc_id, true),
            ("vpc-0123456789abcdef0", is_vpc_id, true),
            ("vpc-0123abc", is_vpc_id, false),
            ("vpc-0123456789abcdef", is_vpc_id, false),
            ("vpc-0123ABCD", is_vpc_id, false),
            ("sg-0123abcd", is_vpc_id, false),
            ("sg-0123abcd", is_security_group_id, true),
            ("sg-0123456789abcdef0", is_security_group_id, true),
            ("sg-0123abcd0", is_security_group_id, false),
            ("sg-", is_security_group_id, false),
        ];
        for (s, f, want) in cases {
            assert_eq!(f(s), want, "{s}");
        }
    }

    #[test]
    fn status_serializes_as_the_enum_value() {
        for (s, want) in [
            (AssociationStatus::Active, "ACTIVE"),
            (AssociationStatus::DeleteInProgress, "DELETE_IN_PROGRESS"),
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), want);
            assert_eq!(s.as_str(), want);
        }
    }
}

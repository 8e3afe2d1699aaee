//! Target groups and their targets: the stored target-group document, its typed configuration and
//! health check with their defaults (reference §5.1, §5.3), the stored target and its key, the
//! target status vocabulary, and the pure predicates the API's validation and the health checker
//! share (`is_lattice_path`, `is_http_code_matcher`).
//!
//! The request shapes and their validation live in the API crate (`trellis_api::target_groups`),
//! which turns them into these documents: what the store keeps and the data plane compiles.

use serde::{Deserialize, Serialize};

use super::Tags;
use crate::Timestamp;

/// A closed set of wire strings: the enum, its serde names, `VALUES` (for `Checks::one_of`),
/// `parse` and `as_str`. Used for every Lattice enum of the listener, rule and target-group
/// families.
macro_rules! string_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub const VALUES: &'static [&'static str] = &[$($wire),+];

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// `type` of a target group: what its targets are. Immutable.
    pub enum TargetGroupType { Ip = "IP", Lambda = "LAMBDA", Instance = "INSTANCE", Alb = "ALB" }
}

string_enum! {
    /// `config.protocol` (and the health-check protocol).
    pub enum TargetGroupProtocol { Http = "HTTP", Https = "HTTPS", Tcp = "TCP" }
}

string_enum! {
    /// `config.protocolVersion`: how the data plane speaks to targets.
    pub enum ProtocolVersion { Http1 = "HTTP1", Http2 = "HTTP2", Grpc = "GRPC" }
}

string_enum! {
    /// `healthCheck.protocolVersion` (there are no gRPC health checks).
    pub enum HealthCheckProtocolVersion { Http1 = "HTTP1", Http2 = "HTTP2" }
}

string_enum! {
    /// `config.ipAddressType` of IP target groups. Immutable.
    pub enum IpAddressType { Ipv4 = "IPV4", Ipv6 = "IPV6" }
}

string_enum! {
    /// `config.lambdaEventStructureVersion`: the event shape a LAMBDA target receives (§5.5).
    pub enum LambdaEventStructureVersion { V1 = "V1", V2 = "V2" }
}

string_enum! {
    /// `status` of a target group. Trellis applies changes synchronously: stored target groups
    /// are `ACTIVE`; `DELETE_IN_PROGRESS` appears only in the DeleteTargetGroup response.
    pub enum TargetGroupStatus {
        CreateInProgress = "CREATE_IN_PROGRESS",
        Active = "ACTIVE",
        DeleteInProgress = "DELETE_IN_PROGRESS",
        CreateFailed = "CREATE_FAILED",
        DeleteFailed = "DELETE_FAILED",
    }
}

string_enum! {
    /// `status` of a registered target as ListTargets reports it. This is observed state: the
    /// data plane knows it; the store never holds it.
    pub enum TargetStatus {
        Draining = "DRAINING",
        Unavailable = "UNAVAILABLE",
        Healthy = "HEALTHY",
        Unhealthy = "UNHEALTHY",
        Initial = "INITIAL",
        Unused = "UNUSED",
    }
}

impl TargetStatus {
    /// The status to report when the data plane has observed nothing about a target:
    /// `UNUSED` when no listener or rule of any service forwards to its target group,
    /// `UNAVAILABLE` when the group's health checks are disabled (or it has none: LAMBDA, ALB),
    /// otherwise `INITIAL` (no health check has completed yet).
    pub fn provisional(in_use: bool, health_checks_enabled: bool) -> TargetStatus {
        if !in_use {
            TargetStatus::Unused
        } else if !health_checks_enabled {
            TargetStatus::Unavailable
        } else {
            TargetStatus::Initial
        }
    }
}

/// Target groups per region (reference §11.1).
pub const TARGET_GROUPS_PER_REGION: u64 = 500;
/// Registered targets per target group (reference §11.1).
pub const TARGETS_PER_TARGET_GROUP: u64 = 1000;

/// The stored target-group document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroup {
    pub id: String,
    /// Unique per account; immutable.
    pub name: String,
    pub arn: String,
    #[serde(rename = "type")]
    pub target_type: TargetGroupType,
    pub config: TargetGroupConfig,
    pub status: TargetGroupStatus,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    #[serde(default)]
    pub tags: Tags,
}

impl TargetGroup {
    /// Whether the data plane should health-check this group's targets.
    pub fn health_checks_enabled(&self) -> bool {
        self.config.health_check.as_ref().is_some_and(|h| h.enabled)
    }
}

/// The configuration with every default filled in. Which members are set depends on the type:
/// LAMBDA groups have only `lambda_event_structure_version`; IP, INSTANCE and ALB groups have
/// `port`, `protocol` and `vpc_identifier`, `protocol_version` unless the protocol is TCP,
/// `ip_address_type` for IP groups only, and `health_check` unless the type is ALB.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<TargetGroupProtocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<ProtocolVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address_type: Option<IpAddressType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_event_structure_version: Option<LambdaEventStructureVersion>,
}

/// A fully resolved health check (reference §5.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub enabled: bool,
    pub protocol: TargetGroupProtocol,
    pub protocol_version: HealthCheckProtocolVersion,
    /// `None`: check each target on its traffic port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub path: String,
    pub interval_seconds: u16,
    pub timeout_seconds: u16,
    pub healthy_threshold_count: u16,
    pub unhealthy_threshold_count: u16,
    /// `matcher.httpCode`: comma-separated codes and `a-b` ranges within 200–499.
    pub matcher: String,
}

pub const DEFAULT_HEALTH_CHECK_PATH: &str = "/";
pub const DEFAULT_INTERVAL_SECONDS: u16 = 30;
pub const DEFAULT_TIMEOUT_SECONDS: u16 = 5;
pub const DEFAULT_HEALTHY_THRESHOLD: u16 = 5;
pub const DEFAULT_UNHEALTHY_THRESHOLD: u16 = 2;
pub const DEFAULT_MATCHER: &str = "200";

impl HealthCheck {
    /// The defaults for a target group speaking `protocol` with `version` (`None` for TCP):
    /// enabled only for HTTP/1 groups, and checking with the group's own protocol, or with HTTP
    /// (the documented default) for a TCP group. TCP is no health-check protocol: reporting it
    /// would hand clients a value they cannot send back with `enabled: true` (the Terraform
    /// provider sends the reported protocol with every health-check change).
    pub fn defaults(
        protocol: TargetGroupProtocol,
        version: Option<ProtocolVersion>,
    ) -> HealthCheck {
        HealthCheck {
            enabled: protocol != TargetGroupProtocol::Tcp
                && version.unwrap_or(ProtocolVersion::Http1) == ProtocolVersion::Http1,
            protocol: match protocol {
                TargetGroupProtocol::Tcp => TargetGroupProtocol::Http,
                p => p,
            },
            protocol_version: HealthCheckProtocolVersion::Http1,
            port: None,
            path: DEFAULT_HEALTH_CHECK_PATH.to_string(),
            interval_seconds: DEFAULT_INTERVAL_SECONDS,
            timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            healthy_threshold_count: DEFAULT_HEALTHY_THRESHOLD,
            unhealthy_threshold_count: DEFAULT_UNHEALTHY_THRESHOLD,
            matcher: DEFAULT_MATCHER.to_string(),
        }
    }
}

/// Whether every character is allowed in a path by the Lattice path patterns
/// (`/[a-zA-Z0-9@:%_+.~#?&/=-]*`), and the value starts with `/`.
pub fn is_lattice_path(s: &str) -> bool {
    s.starts_with('/')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@:%_+.~#?&/=-".contains(&b))
}

/// Whether `s` is a valid `matcher.httpCode`: comma-separated codes or `low-high` ranges, each
/// code 200–499 and every range ascending.
pub fn is_http_code_matcher(s: &str) -> bool {
    let code = |p: &str| {
        p.len() == 3
            && p.bytes().all(|b| b.is_ascii_digit())
            && (200..=499).contains(&p.parse::<u16>().unwrap_or(0))
    };
    !s.is_empty()
        && s.split(',').all(|part| match part.split_once('-') {
            Some((lo, hi)) => code(lo) && code(hi) && lo <= hi,
            None => code(part),
        })
}

/// A registered target as the store keeps it (record kind `target`, parent = the group's id,
/// name = [`target_key`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    pub id: String,
    /// `None` for LAMBDA targets, which have no port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub registered_at: Timestamp,
}

/// The per-group unique name of a target: `<id>:<port>`, or just the id when it has no port.
pub fn target_key(id: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{id}:{p}"),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisional_status_table() {
        assert_eq!(TargetStatus::provisional(false, true), TargetStatus::Unused);
        assert_eq!(
            TargetStatus::provisional(false, false),
            TargetStatus::Unused
        );
        assert_eq!(
            TargetStatus::provisional(true, false),
            TargetStatus::Unavailable
        );
        assert_eq!(TargetStatus::provisional(true, true), TargetStatus::Initial);
    }

    #[test]
    fn enums_round_trip_their_wire_names() {
        for v in TargetGroupType::VALUES {
            assert_eq!(TargetGroupType::parse(v).unwrap().as_str(), *v);
        }
        assert_eq!(
            serde_json::to_value(TargetStatus::Unused).unwrap(),
            "UNUSED"
        );
        assert_eq!(
            serde_json::from_value::<ProtocolVersion>("GRPC".into()).unwrap(),
            ProtocolVersion::Grpc
        );
        assert_eq!(TargetGroupProtocol::parse("http"), None);
    }

    #[test]
    fn http_code_matcher_table() {
        for (s, ok) in [
            ("200", true),
            ("200,202", true),
            ("200-299", true),
            ("499", true),
            ("200-200", true),
            ("", false),
            ("500", false),
            ("20", false),
            ("2000", false),
            ("-200", false),
            ("200--300", false),
        ] {
            assert_eq!(is_http_code_matcher(s), ok, "{s}");
        }
    }
}

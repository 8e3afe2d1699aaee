//! The service document: an application reachable through service networks, named by its
//! generated DNS name (and optionally a custom domain), served by its listeners.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{AuthType, Tags};
use crate::Timestamp;
use crate::dns::DnsEntry;

/// `status` of services (and target groups): the model's `ServiceStatus` enum. Trellis applies
/// changes synchronously, so stored services are always `ACTIVE`; `DELETE_IN_PROGRESS` appears
/// only in the DeleteService response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServiceStatus {
    #[default]
    Active,
    CreateInProgress,
    DeleteInProgress,
    CreateFailed,
    DeleteFailed,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceStatus::Active => "ACTIVE",
            ServiceStatus::CreateInProgress => "CREATE_IN_PROGRESS",
            ServiceStatus::DeleteInProgress => "DELETE_IN_PROGRESS",
            ServiceStatus::CreateFailed => "CREATE_FAILED",
            ServiceStatus::DeleteFailed => "DELETE_FAILED",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub id: String,
    /// Unique per account; immutable (it is part of the generated DNS name).
    pub name: String,
    pub arn: String,
    /// Read generically by the auth-policy module (policy `state`) and the data plane.
    pub auth_type: AuthType,
    /// Immutable after creation; compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_domain_name: Option<String>,
    /// ACM certificate for the custom domain; `None` when unset (an empty string on the wire
    /// clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
    pub status: ServiceStatus,
    /// Computed once at creation by [`crate::dns::service_dns_entry`] and kept, so readers
    /// (associations, snapshot, DNS) need not recompute it.
    pub dns_entry: DnsEntry,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    #[serde(default)]
    pub tags: Tags,
}

/// The model's `CertificateArn` pattern (the whole value must match; empty is allowed).
pub const CERTIFICATE_ARN_PATTERN: &str = "(arn(:[a-z0-9]+([.-][a-z0-9]+)*){2}(:([a-z0-9]+([.-][a-z0-9]+)*)?){2}:certificate/[0-9a-z-]+)?";

static CERTIFICATE_ARN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{CERTIFICATE_ARN_PATTERN}$")).unwrap());

/// Whether `s` satisfies the model's `CertificateArn` pattern (empty counts: it clears the
/// certificate).
pub fn is_certificate_arn(s: &str) -> bool {
    CERTIFICATE_ARN.is_match(s)
}

/// Whether `s` is a plausible DNS host name for `customDomainName`: dot-separated labels of
/// 1–63 letters, digits and hyphens, not starting or ending with a hyphen, an optional trailing
/// dot. The model only bounds the length (3–255); Trellis also checks the syntax because the DNS
/// server and SNI routing will serve this name, and a name no resolver can carry would only fail
/// later and less clearly. Wildcards are not allowed: a service has one concrete domain.
pub fn is_domain_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_arn_table() {
        let cases = [
            ("", true),
            (
                "arn:aws:acm:us-west-2:111122223333:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab",
                true,
            ),
            (
                "arn:aws-cn:acm:cn-north-1:111122223333:certificate/abc",
                true,
            ),
            ("arn:aws:acm:us-west-2:111122223333:certificate/", false),
            ("arn:aws:acm:us-west-2:111122223333:certificate/ABC", false),
            ("arn:aws:acm:us-west-2:111122223333:cert/abc", false),
            ("not-an-arn", false),
            (
                "arn:aws:acm:us-west-2:111122223333:certificate/abc trailing",
                false,
            ),
        ];
        for (s, want) in cases {
            assert_eq!(is_certificate_arn(s), want, "{s}");
        }
    }

    #[test]
    fn domain_name_table() {
        let cases = [
            ("example.com", true),
            ("api.example.com.", true),
            ("a-b.c0.io", true),
            ("localhost", true),
            ("-a.example.com", false),
            ("a-.example.com", false),
            ("a..b", false),
            ("*.example.com", false),
            ("has space.com", false),
            ("under_score.com", false),
            (".", false),
        ];
        for (s, want) in cases {
            assert_eq!(is_domain_name(s), want, "{s}");
        }
        assert!(!is_domain_name(&format!("{}.com", "a".repeat(64))));
    }

    #[test]
    fn document_keeps_generic_members_at_top_level() {
        let s = Service {
            id: "svc-0123456789abcdef0".into(),
            name: "abc".into(),
            arn: "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0".into(),
            auth_type: AuthType::AwsIam,
            custom_domain_name: None,
            certificate_arn: None,
            status: ServiceStatus::Active,
            dns_entry: DnsEntry {
                domain_name: "d".into(),
                hosted_zone_id: "Z".into(),
            },
            created_at: Timestamp::from_unix_millis(0),
            last_updated_at: Timestamp::from_unix_millis(0),
            tags: Tags::new(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["arn"], s.arn.as_str());
        assert_eq!(v["authType"], "AWS_IAM");
        assert_eq!(v["status"], "ACTIVE");
        assert!(v["tags"].is_object());
        assert!(v.get("customDomainName").is_none());
        let back: Service = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}

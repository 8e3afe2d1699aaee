//! ARNs for Lattice resources, and resolving an `*Identifier` (bare ID or full ARN) to an ID.

use crate::ids::ResourceKind;

/// Where resources live: the partition, region and account that ARNs are minted in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub partition: String,
    pub region: String,
    pub account_id: String,
}

/// A parsed ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account_id: String,
    pub resource: String,
}

/// The account field of an ARN (`arn:partition:service:region:account:…`), empty when it has
/// none: whose resource or principal the ARN names.
pub fn account_of(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}

impl Arn {
    pub fn parse(s: &str) -> Option<Arn> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let partition = parts.next()?.to_string();
        let service = parts.next()?.to_string();
        let region = parts.next()?.to_string();
        let account_id = parts.next()?.to_string();
        let resource = parts.next()?.to_string();
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(Arn {
            partition,
            service,
            region,
            account_id,
            resource,
        })
    }
}

/// How an identifier resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A well-formed ID (given bare, or from an ARN of this region and account).
    Id(String),
    /// A well-formed ARN of the right kind that names another account or region: nothing of ours.
    Foreign(String),
    /// Neither an ID nor an ARN of this kind.
    Malformed,
}

impl Context {
    /// `arn:<partition>:vpc-lattice:<region>:<account>:<resource>`.
    pub fn arn(&self, resource: &str) -> String {
        format!(
            "arn:{}:vpc-lattice:{}:{}:{}",
            self.partition, self.region, self.account_id, resource
        )
    }

    /// The ARN of a top-level resource (everything but listeners and rules).
    pub fn top_level_arn(&self, kind: ResourceKind, id: &str) -> String {
        self.arn(&format!("{}/{}", kind.arn_segment(), id))
    }

    pub fn listener_arn(&self, service_id: &str, listener_id: &str) -> String {
        self.arn(&format!("service/{service_id}/listener/{listener_id}"))
    }

    pub fn rule_arn(&self, service_id: &str, listener_id: &str, rule_id: &str) -> String {
        self.arn(&format!(
            "service/{service_id}/listener/{listener_id}/rule/{rule_id}"
        ))
    }

    /// Resolves an identifier that may be a bare ID or an ARN to the ID of a `kind` resource.
    /// For listeners and rules the ARN's last `listener/<id>` or `rule/<id>` pair is used.
    pub fn resolve(&self, kind: ResourceKind, identifier: &str) -> Resolved {
        if kind.is_id(identifier) {
            return Resolved::Id(identifier.to_string());
        }
        let Some(arn) = Arn::parse(identifier) else {
            return Resolved::Malformed;
        };
        if arn.service != "vpc-lattice" {
            return Resolved::Malformed;
        }
        let segments: Vec<&str> = arn.resource.split('/').collect();
        let id = match (kind, segments.as_slice()) {
            (ResourceKind::Listener, ["service", s, "listener", l])
                if ResourceKind::Service.is_id(s) =>
            {
                *l
            }
            (ResourceKind::Rule, ["service", s, "listener", l, "rule", r])
                if ResourceKind::Service.is_id(s) && ResourceKind::Listener.is_id(l) =>
            {
                *r
            }
            (ResourceKind::Listener | ResourceKind::Rule, _) => return Resolved::Malformed,
            (_, [segment, id]) if *segment == kind.arn_segment() => *id,
            _ => return Resolved::Malformed,
        };
        if !kind.is_id(id) {
            return Resolved::Malformed;
        }
        if arn.partition != self.partition
            || arn.region != self.region
            || arn.account_id != self.account_id
        {
            return Resolved::Foreign(id.to_string());
        }
        Resolved::Id(id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account_id: "111122223333".into(),
        }
    }

    #[test]
    fn builds_arns() {
        let c = ctx();
        assert_eq!(
            c.top_level_arn(ResourceKind::Service, "svc-0123456789abcdef0"),
            "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0"
        );
        assert_eq!(
            c.rule_arn(
                "svc-0123456789abcdef0",
                "listener-0123456789abcdef0",
                "rule-0123456789abcdef0"
            ),
            "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/listener/listener-0123456789abcdef0/rule/rule-0123456789abcdef0"
        );
    }

    #[test]
    fn resolve_table() {
        let c = ctx();
        let svc = "svc-0123456789abcdef0";
        let l = "listener-0123456789abcdef0";
        let cases: Vec<(ResourceKind, String, Resolved)> = vec![
            (ResourceKind::Service, svc.into(), Resolved::Id(svc.into())),
            (
                ResourceKind::Service,
                c.top_level_arn(ResourceKind::Service, svc),
                Resolved::Id(svc.into()),
            ),
            (
                ResourceKind::Service,
                format!("arn:aws:vpc-lattice:us-east-1:111122223333:service/{svc}"),
                Resolved::Foreign(svc.into()),
            ),
            (
                ResourceKind::Service,
                "svc-nope".into(),
                Resolved::Malformed,
            ),
            (
                ResourceKind::ServiceNetwork,
                c.top_level_arn(ResourceKind::Service, svc),
                Resolved::Malformed,
            ),
            (
                ResourceKind::Listener,
                c.listener_arn(svc, l),
                Resolved::Id(l.into()),
            ),
            (
                ResourceKind::Listener,
                format!("{}/extra", c.listener_arn(svc, l)),
                Resolved::Malformed,
            ),
            (
                ResourceKind::Rule,
                c.rule_arn(svc, l, "rule-0123456789abcdef0"),
                Resolved::Id("rule-0123456789abcdef0".into()),
            ),
            (
                ResourceKind::Service,
                "arn:aws:s3:::bucket".into(),
                Resolved::Malformed,
            ),
        ];
        for (kind, input, want) in cases {
            assert_eq!(c.resolve(kind, &input), want, "{kind:?} {input}");
        }
    }
}

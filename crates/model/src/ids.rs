//! Resource kinds and their IDs: `<prefix>-` followed by 17 lowercase hex characters.
//!
//! Lattice's model regexes accept `[0-9a-z]{17}` for most kinds and `[0-9a-f]{17}` for newer ones;
//! generating lowercase hex satisfies both, and real IDs look the same.

use rand::Rng;

/// Every kind of resource the control plane stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    ServiceNetwork,
    Service,
    Listener,
    Rule,
    TargetGroup,
    AccessLogSubscription,
    ServiceNetworkServiceAssociation,
    ServiceNetworkVpcAssociation,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 8] = [
        ResourceKind::ServiceNetwork,
        ResourceKind::Service,
        ResourceKind::Listener,
        ResourceKind::Rule,
        ResourceKind::TargetGroup,
        ResourceKind::AccessLogSubscription,
        ResourceKind::ServiceNetworkServiceAssociation,
        ResourceKind::ServiceNetworkVpcAssociation,
    ];

    /// The ID prefix, without the dash.
    pub fn id_prefix(self) -> &'static str {
        match self {
            ResourceKind::ServiceNetwork => "sn",
            ResourceKind::Service => "svc",
            ResourceKind::Listener => "listener",
            ResourceKind::Rule => "rule",
            ResourceKind::TargetGroup => "tg",
            ResourceKind::AccessLogSubscription => "als",
            ResourceKind::ServiceNetworkServiceAssociation => "snsa",
            ResourceKind::ServiceNetworkVpcAssociation => "snva",
        }
    }

    /// The ARN resource-type segment (`service/svc-…`).
    pub fn arn_segment(self) -> &'static str {
        match self {
            ResourceKind::ServiceNetwork => "servicenetwork",
            ResourceKind::Service => "service",
            ResourceKind::Listener => "listener",
            ResourceKind::Rule => "rule",
            ResourceKind::TargetGroup => "targetgroup",
            ResourceKind::AccessLogSubscription => "accesslogsubscription",
            ResourceKind::ServiceNetworkServiceAssociation => "servicenetworkserviceassociation",
            ResourceKind::ServiceNetworkVpcAssociation => "servicenetworkvpcassociation",
        }
    }

    /// The kind string under which the store keeps these records.
    pub fn store_kind(self) -> &'static str {
        match self {
            ResourceKind::ServiceNetwork => "service-network",
            ResourceKind::Service => "service",
            ResourceKind::Listener => "listener",
            ResourceKind::Rule => "rule",
            ResourceKind::TargetGroup => "target-group",
            ResourceKind::AccessLogSubscription => "access-log-subscription",
            ResourceKind::ServiceNetworkServiceAssociation => "service-network-service-association",
            ResourceKind::ServiceNetworkVpcAssociation => "service-network-vpc-association",
        }
    }

    /// The `resourceType` member of ResourceNotFound/Conflict errors. Lattice does not document
    /// these values; Trellis uses the upper-snake form of the resource name (decision recorded in
    /// docs/decisions.md).
    pub fn error_type(self) -> &'static str {
        match self {
            ResourceKind::ServiceNetwork => "SERVICE_NETWORK",
            ResourceKind::Service => "SERVICE",
            ResourceKind::Listener => "LISTENER",
            ResourceKind::Rule => "RULE",
            ResourceKind::TargetGroup => "TARGET_GROUP",
            ResourceKind::AccessLogSubscription => "ACCESS_LOG_SUBSCRIPTION",
            ResourceKind::ServiceNetworkServiceAssociation => "SERVICE_NETWORK_SERVICE_ASSOCIATION",
            ResourceKind::ServiceNetworkVpcAssociation => "SERVICE_NETWORK_VPC_ASSOCIATION",
        }
    }

    /// A fresh random ID of this kind.
    pub fn new_id(self) -> String {
        let mut rng = rand::rng();
        let suffix: String = (0..17)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap())
            .collect();
        format!("{}-{}", self.id_prefix(), suffix)
    }

    /// Whether `s` is a well-formed ID of this kind (`prefix-` + 17 of `[0-9a-z]`).
    pub fn is_id(self, s: &str) -> bool {
        match s
            .strip_prefix(self.id_prefix())
            .and_then(|r| r.strip_prefix('-'))
        {
            Some(rest) => {
                rest.len() == 17
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        for kind in ResourceKind::ALL {
            let a = kind.new_id();
            let b = kind.new_id();
            assert!(kind.is_id(&a), "{a}");
            assert_ne!(a, b);
            assert_eq!(a.len(), kind.id_prefix().len() + 18);
            assert!(
                a[kind.id_prefix().len() + 1..]
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit())
            );
        }
    }

    #[test]
    fn is_id_table() {
        let cases = [
            (ResourceKind::Service, "svc-0cfe1f49ff3266204", true),
            (ResourceKind::Service, "svc-0cfe1f49ff326620", false),
            (ResourceKind::Service, "svc-0cfe1f49ff32662045", false),
            (ResourceKind::Service, "svc-0CFE1F49FF3266204", false),
            (ResourceKind::Service, "sn-0cfe1f49ff3266204", false),
            (ResourceKind::ServiceNetwork, "sn-0e05d75deabe9f290", true),
            (ResourceKind::Listener, "listener-0e05d75deabe9f290", true),
            (ResourceKind::Rule, "rule-0e05d75deabe9f29-", false),
        ];
        for (kind, s, want) in cases {
            assert_eq!(kind.is_id(s), want, "{kind:?} {s}");
        }
    }
}

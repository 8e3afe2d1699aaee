//! The listener document (reference §3.2) and the rules that tie a listener's protocol to what
//! its actions may forward to.

use serde::{Deserialize, Serialize};

use super::Tags;
use super::rule::RuleAction;
use super::target_group::{TargetGroup, TargetGroupProtocol, TargetGroupType, string_enum};
use crate::{Checks, Timestamp};

/// Listeners per service (reference §11.1).
pub const LISTENERS_PER_SERVICE: u64 = 2;

string_enum! {
    /// `protocol` of a listener. Immutable.
    pub enum ListenerProtocol { Http = "HTTP", Https = "HTTPS", TlsPassthrough = "TLS_PASSTHROUGH" }
}

impl ListenerProtocol {
    /// The port a listener gets when the request names none: 80 for HTTP, 443 otherwise (the
    /// TLS_PASSTHROUGH default is undocumented; TLS lives on 443).
    pub fn default_port(self) -> u16 {
        match self {
            ListenerProtocol::Http => 80,
            ListenerProtocol::Https | ListenerProtocol::TlsPassthrough => 443,
        }
    }
}

/// The stored listener document (record kind `listener`, parent = the service's id, refs = the
/// target groups of its default action). Name, protocol and port are immutable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub id: String,
    /// Unique per service.
    pub name: String,
    pub arn: String,
    pub service_id: String,
    pub service_arn: String,
    pub protocol: ListenerProtocol,
    /// Unique per service.
    pub port: u16,
    /// Mirrored by the listener's default rule, which the data plane evaluates last.
    pub default_action: RuleAction,
    /// The id of the default rule (so readers need not search the listener's rules for it).
    pub default_rule_id: String,
    pub created_at: Timestamp,
    pub last_updated_at: Timestamp,
    #[serde(default)]
    pub tags: Tags,
}

/// A listener name: 3–63, the resource-name pattern, not starting with `listener-`.
pub fn check_listener_name(c: &mut Checks, field: &str, v: &str) -> bool {
    c.resource_name(field, v, 3, 63, Some("listener-"))
}

/// Whether `action` may be a listener's (or one of its rules') action at all: TLS_PASSTHROUGH
/// listeners cannot answer with an HTTP response, so they only forward.
pub fn check_action_for_listener(
    protocol: ListenerProtocol,
    action: &RuleAction,
) -> Result<(), String> {
    match (protocol, action) {
        (ListenerProtocol::TlsPassthrough, RuleAction::FixedResponse { .. }) => {
            Err("TLS_PASSTHROUGH listeners cannot send fixed responses; the default action must forward to TCP target groups".into())
        }
        _ => Ok(()),
    }
}

/// Whether a listener of `protocol` may forward to `tg` (reference §3.2, §5.1): TLS_PASSTHROUGH
/// listeners pass the TLS stream through and need TCP target groups; HTTP and HTTPS listeners
/// speak HTTP to their targets and cannot use TCP groups. (LAMBDA groups have no protocol, so
/// they are never behind TLS_PASSTHROUGH.)
pub fn check_target_group_for_listener(
    protocol: ListenerProtocol,
    tg: &TargetGroup,
) -> Result<(), String> {
    let tcp = tg.config.protocol == Some(TargetGroupProtocol::Tcp);
    match protocol {
        ListenerProtocol::TlsPassthrough if tg.target_type == TargetGroupType::Lambda => {
            Err(format!(
                "Target group {} is a LAMBDA target group; TLS_PASSTHROUGH listeners can only forward to TCP target groups",
                tg.id
            ))
        }
        ListenerProtocol::TlsPassthrough if !tcp => Err(format!(
            "Target group {} uses protocol {}; TLS_PASSTHROUGH listeners can only forward to TCP target groups",
            tg.id,
            tg.config.protocol.map_or("-", |p| p.as_str())
        )),
        ListenerProtocol::Http | ListenerProtocol::Https if tcp => Err(format!(
            "Target group {} uses protocol TCP; TCP target groups can only be used behind TLS_PASSTHROUGH listeners",
            tg.id
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::target_group::{TargetGroupConfig, TargetGroupStatus};

    fn tg(ty: TargetGroupType, protocol: Option<TargetGroupProtocol>) -> TargetGroup {
        TargetGroup {
            id: "tg-0123456789abcdef0".into(),
            name: "t".into(),
            arn: "a".into(),
            target_type: ty,
            config: TargetGroupConfig {
                protocol,
                ..Default::default()
            },
            status: TargetGroupStatus::Active,
            created_at: Timestamp::from_unix_millis(0),
            last_updated_at: Timestamp::from_unix_millis(0),
            tags: Tags::new(),
        }
    }

    #[test]
    fn listener_target_group_compatibility_table() {
        use ListenerProtocol::*;
        use TargetGroupProtocol as P;
        let cases = [
            (Http, tg(TargetGroupType::Ip, Some(P::Http)), true),
            (Http, tg(TargetGroupType::Ip, Some(P::Https)), true),
            (Https, tg(TargetGroupType::Instance, Some(P::Http)), true),
            (Https, tg(TargetGroupType::Lambda, None), true),
            (Http, tg(TargetGroupType::Alb, Some(P::Https)), true),
            (Http, tg(TargetGroupType::Ip, Some(P::Tcp)), false),
            (Https, tg(TargetGroupType::Alb, Some(P::Tcp)), false),
            (TlsPassthrough, tg(TargetGroupType::Ip, Some(P::Tcp)), true),
            (
                TlsPassthrough,
                tg(TargetGroupType::Instance, Some(P::Tcp)),
                true,
            ),
            (
                TlsPassthrough,
                tg(TargetGroupType::Ip, Some(P::Https)),
                false,
            ),
            (TlsPassthrough, tg(TargetGroupType::Lambda, None), false),
        ];
        for (proto, group, ok) in cases {
            assert_eq!(
                check_target_group_for_listener(proto, &group).is_ok(),
                ok,
                "{proto:?} {:?} {:?}",
                group.target_type,
                group.config.protocol
            );
        }
    }

    #[test]
    fn action_kind_table() {
        let fixed = RuleAction::FixedResponse { status_code: 404 };
        let fwd = RuleAction::Forward {
            target_groups: vec![],
        };
        assert!(check_action_for_listener(ListenerProtocol::Http, &fixed).is_ok());
        assert!(check_action_for_listener(ListenerProtocol::Https, &fixed).is_ok());
        assert!(check_action_for_listener(ListenerProtocol::TlsPassthrough, &fixed).is_err());
        assert!(check_action_for_listener(ListenerProtocol::TlsPassthrough, &fwd).is_ok());
    }

    #[test]
    fn names_ports_and_protocols() {
        for (name, ok) in [
            ("http-80", true),
            ("listener-a", false),
            ("ab", false),
            ("my-listener", true),
            ("My", false),
        ] {
            let mut c = Checks::new();
            assert_eq!(check_listener_name(&mut c, "name", name), ok, "{name}");
        }
        assert_eq!(ListenerProtocol::Http.default_port(), 80);
        assert_eq!(ListenerProtocol::Https.default_port(), 443);
        assert_eq!(ListenerProtocol::TlsPassthrough.default_port(), 443);
        assert_eq!(
            ListenerProtocol::parse("TLS_PASSTHROUGH"),
            Some(ListenerProtocol::TlsPassthrough)
        );
        assert_eq!(ListenerProtocol::parse("TLS"), None);
    }
}

//! The request shapes of the target-group family and their validation: CreateTargetGroup's
//! `config` (reference §5.1), a `HealthCheckConfig` over defaults or the stored check (§5.3), and
//! the `targets` lists of Register/Deregister/ListTargets with each target id checked against its
//! group (§5.2).
//!
//! Request input arrives as the `*Input` types (every member optional and loosely typed, so that
//! a wrong value is reported as a field error rather than a parse failure); validation turns it
//! into the model's typed document with every default filled in, which is what the store keeps
//! and the data plane compiles.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use trellis_model::resources::association::{VPC_ID_PATTERN, is_vpc_id};
use trellis_model::resources::target_group::{
    DEFAULT_HEALTH_CHECK_PATH, DEFAULT_HEALTHY_THRESHOLD, DEFAULT_INTERVAL_SECONDS,
    DEFAULT_MATCHER, DEFAULT_TIMEOUT_SECONDS, DEFAULT_UNHEALTHY_THRESHOLD, HealthCheck,
    HealthCheckProtocolVersion, IpAddressType, LambdaEventStructureVersion, ProtocolVersion,
    TargetGroup, TargetGroupConfig, TargetGroupProtocol, TargetGroupType, is_http_code_matcher,
    is_lattice_path,
};
use trellis_model::{Checks, Context, ValidationError};

/// Why a health check cannot use (or default to) TCP.
const TCP_CHECK_MESSAGE: &str = "Health checks of a TCP target group use HTTP or HTTPS: set healthCheck.protocol (and protocolVersion) when enabling them";

/// `config` of a CreateTargetGroup request, unvalidated.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupConfigInput {
    pub port: Option<i64>,
    pub protocol: Option<String>,
    pub protocol_version: Option<String>,
    pub ip_address_type: Option<String>,
    pub vpc_identifier: Option<String>,
    pub health_check: Option<HealthCheckInput>,
    pub lambda_event_structure_version: Option<String>,
}

/// A `HealthCheckConfig` as a request sends it, unvalidated.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckInput {
    pub enabled: Option<bool>,
    pub protocol: Option<String>,
    pub protocol_version: Option<String>,
    pub port: Option<i64>,
    pub path: Option<String>,
    pub health_check_interval_seconds: Option<i64>,
    pub health_check_timeout_seconds: Option<i64>,
    pub healthy_threshold_count: Option<i64>,
    pub unhealthy_threshold_count: Option<i64>,
    pub matcher: Option<MatcherInput>,
}

/// The `Matcher` union (one member, `httpCode`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatcherInput {
    pub http_code: Option<String>,
}

/// Checks a `VpcId` value (length 5–50 and the pattern).
pub fn check_vpc_id(c: &mut Checks, field: &str, v: &str) -> bool {
    c.length(field, v, 5, 50) && c.pattern(field, v, is_vpc_id(v), VPC_ID_PATTERN)
}

pub const HEALTH_CHECK_PATH_PATTERN: &str = "(^/[a-zA-Z0-9@:%_+.~#?&/=-]*$|(^$))";
pub const HTTP_CODE_PATTERN: &str = "(^[0-9-,]+$|(^$))";

/// Parses an optional enum member, recording a field error for an unknown value.
fn enum_member<T>(
    c: &mut Checks,
    field: &str,
    v: Option<&str>,
    values: &[&str],
    parse: fn(&str) -> Option<T>,
) -> Option<T> {
    let v = v?;
    if c.one_of(field, v, values) {
        parse(v)
    } else {
        None
    }
}

/// A "0 means default" integer member: `None` when absent, `Some(default)` for 0, else the value
/// when within `min..=max` (the model's bound is `0..=max`; the documented minimum is `min`).
fn zero_default(
    c: &mut Checks,
    field: &str,
    v: Option<i64>,
    min: i64,
    max: i64,
    default: u16,
) -> Option<u16> {
    match v? {
        0 => Some(default),
        n if c.range(field, n, min, max) => Some(n as u16),
        _ => None,
    }
}

impl HealthCheckInput {
    /// Applies this (partial) health check over `base` and returns the result: the create path
    /// passes the defaults, the update path the stored check. `tg_protocol` is the group's
    /// protocol; `path` the wire path of this member (`config.healthCheck` or `healthCheck`).
    pub fn apply(
        &self,
        c: &mut Checks,
        path: &str,
        base: &HealthCheck,
        tg_protocol: TargetGroupProtocol,
    ) -> HealthCheck {
        let f = |m: &str| format!("{path}.{m}");
        let mut hc = base.clone();
        // Groups stored before TCP stopped being a default kept it; checks run over HTTP(S).
        if hc.protocol == TargetGroupProtocol::Tcp {
            hc.protocol = TargetGroupProtocol::Http;
        }
        if let Some(e) = self.enabled {
            hc.enabled = e;
        }
        let protocol = enum_member(
            c,
            &f("protocol"),
            self.protocol.as_deref(),
            TargetGroupProtocol::VALUES,
            TargetGroupProtocol::parse,
        );
        let protocol_ok = self.protocol.is_none() || protocol.is_some();
        if let Some(p) = protocol {
            hc.protocol = p;
        }
        if let Some(v) = enum_member(
            c,
            &f("protocolVersion"),
            self.protocol_version.as_deref(),
            HealthCheckProtocolVersion::VALUES,
            HealthCheckProtocolVersion::parse,
        ) {
            hc.protocol_version = v;
        }
        if let Some(p) = self.port
            && c.range(&f("port"), p, 0, 65535)
        {
            hc.port = if p == 0 { None } else { Some(p as u16) };
        }
        if let Some(p) = &self.path
            && c.length(&f("path"), p, 0, 2048)
            && c.pattern(
                &f("path"),
                p,
                p.is_empty() || is_lattice_path(p),
                HEALTH_CHECK_PATH_PATTERN,
            )
        {
            hc.path = if p.is_empty() {
                DEFAULT_HEALTH_CHECK_PATH.to_string()
            } else {
                p.clone()
            };
        }
        let interval = zero_default(
            c,
            &f("healthCheckIntervalSeconds"),
            self.health_check_interval_seconds,
            5,
            300,
            DEFAULT_INTERVAL_SECONDS,
        );
        let timeout = zero_default(
            c,
            &f("healthCheckTimeoutSeconds"),
            self.health_check_timeout_seconds,
            1,
            120,
            DEFAULT_TIMEOUT_SECONDS,
        );
        let healthy = zero_default(
            c,
            &f("healthyThresholdCount"),
            self.healthy_threshold_count,
            2,
            10,
            DEFAULT_HEALTHY_THRESHOLD,
        );
        let unhealthy = zero_default(
            c,
            &f("unhealthyThresholdCount"),
            self.unhealthy_threshold_count,
            2,
            10,
            DEFAULT_UNHEALTHY_THRESHOLD,
        );
        hc.interval_seconds = interval.unwrap_or(hc.interval_seconds);
        hc.timeout_seconds = timeout.unwrap_or(hc.timeout_seconds);
        hc.healthy_threshold_count = healthy.unwrap_or(hc.healthy_threshold_count);
        hc.unhealthy_threshold_count = unhealthy.unwrap_or(hc.unhealthy_threshold_count);
        if let Some(m) = &self.matcher {
            match &m.http_code {
                None => c.fail(f("matcher"), format!("Value at '{}' failed to satisfy constraint: Member must have exactly one of [httpCode] set", f("matcher"))),
                Some(code) => {
                    let field = f("matcher.httpCode");
                    if c.length(&field, code, 0, 2000) && c.pattern(&field, code, code.is_empty() || is_http_code_matcher(code), HTTP_CODE_PATTERN) {
                        hc.matcher = if code.is_empty() { DEFAULT_MATCHER.to_string() } else { code.clone() };
                    }
                }
            }
        }
        // Health checks are HTTP(S) requests: TCP cannot be checked, and a request that turns
        // checks on for a TCP group must say how to check it (reference §5.3) rather than rely on
        // the HTTP default.
        let enables_tcp_group = tg_protocol == TargetGroupProtocol::Tcp
            && !base.enabled
            && self.enabled == Some(true)
            && self.protocol.is_none();
        if protocol_ok
            && hc.enabled
            && (hc.protocol == TargetGroupProtocol::Tcp || enables_tcp_group)
        {
            c.fail(
                f("protocol"),
                if tg_protocol == TargetGroupProtocol::Tcp {
                    TCP_CHECK_MESSAGE
                } else {
                    "Health checks use HTTP or HTTPS"
                },
            );
        }
        hc
    }
}

/// Validates the `config` of CreateTargetGroup for a group of `target_type` and returns the
/// configuration with every default filled in. Members that do not apply to the type are
/// field errors rather than silently dropped, so a client learns that e.g. a LAMBDA group has no
/// port.
pub fn check_config(
    c: &mut Checks,
    target_type: TargetGroupType,
    input: Option<&TargetGroupConfigInput>,
) -> TargetGroupConfig {
    let empty = TargetGroupConfigInput::default();
    let i = input.unwrap_or(&empty);
    let not_for = |c: &mut Checks, member: &str, present: bool, what: &str| {
        if present {
            c.fail(
                format!("config.{member}"),
                format!("config.{member} is not supported for {what} target groups"),
            );
        }
    };
    if target_type == TargetGroupType::Lambda {
        not_for(c, "port", i.port.is_some(), "LAMBDA");
        not_for(c, "protocol", i.protocol.is_some(), "LAMBDA");
        not_for(c, "protocolVersion", i.protocol_version.is_some(), "LAMBDA");
        not_for(c, "ipAddressType", i.ip_address_type.is_some(), "LAMBDA");
        not_for(c, "vpcIdentifier", i.vpc_identifier.is_some(), "LAMBDA");
        not_for(c, "healthCheck", i.health_check.is_some(), "LAMBDA");
        let version = enum_member(
            c,
            "config.lambdaEventStructureVersion",
            i.lambda_event_structure_version.as_deref(),
            LambdaEventStructureVersion::VALUES,
            LambdaEventStructureVersion::parse,
        );
        return TargetGroupConfig {
            lambda_event_structure_version: Some(
                version.unwrap_or(LambdaEventStructureVersion::V1),
            ),
            ..Default::default()
        };
    }

    let what = target_type.as_str();
    if input.is_none() {
        c.missing("config");
        return TargetGroupConfig::default();
    }
    not_for(
        c,
        "lambdaEventStructureVersion",
        i.lambda_event_structure_version.is_some(),
        what,
    );
    if target_type != TargetGroupType::Ip {
        not_for(c, "ipAddressType", i.ip_address_type.is_some(), what);
    }
    if target_type == TargetGroupType::Alb {
        // An ALB target does its own health checking (reference §5.1).
        not_for(c, "healthCheck", i.health_check.is_some(), what);
    }
    let protocol = match &i.protocol {
        None => {
            c.missing("config.protocol");
            None
        }
        Some(p) => enum_member(
            c,
            "config.protocol",
            Some(p),
            TargetGroupProtocol::VALUES,
            TargetGroupProtocol::parse,
        ),
    };
    let port = match i.port {
        Some(p) => c.range("config.port", p, 1, 65535).then_some(p as u16),
        None => match protocol {
            Some(TargetGroupProtocol::Http) => Some(80),
            Some(TargetGroupProtocol::Https) => Some(443),
            Some(TargetGroupProtocol::Tcp) => {
                c.fail(
                    "config.port",
                    "config.port is required for TCP target groups (there is no default port)",
                );
                None
            }
            None => None,
        },
    };
    let mut version = enum_member(
        c,
        "config.protocolVersion",
        i.protocol_version.as_deref(),
        ProtocolVersion::VALUES,
        ProtocolVersion::parse,
    );
    if protocol == Some(TargetGroupProtocol::Tcp) {
        if i.protocol_version.is_some() {
            c.fail(
                "config.protocolVersion",
                "config.protocolVersion is not supported for TCP target groups",
            );
        }
        version = None;
    } else {
        version = Some(version.unwrap_or(ProtocolVersion::Http1));
    }
    let ip_address_type = (target_type == TargetGroupType::Ip).then(|| {
        enum_member(
            c,
            "config.ipAddressType",
            i.ip_address_type.as_deref(),
            IpAddressType::VALUES,
            IpAddressType::parse,
        )
        .unwrap_or(IpAddressType::Ipv4)
    });
    match &i.vpc_identifier {
        Some(v) => {
            check_vpc_id(c, "config.vpcIdentifier", v);
        }
        None => c.missing("config.vpcIdentifier"),
    }
    let health_check = match (target_type, protocol) {
        (TargetGroupType::Alb, _) | (_, None) => None,
        (_, Some(p)) => {
            let defaults = HealthCheck::defaults(p, version);
            Some(match &i.health_check {
                Some(hc) => hc.apply(c, "config.healthCheck", &defaults, p),
                None => defaults,
            })
        }
    };
    TargetGroupConfig {
        port,
        protocol,
        protocol_version: version,
        ip_address_type,
        vpc_identifier: i.vpc_identifier.clone(),
        health_check,
        lambda_event_structure_version: None,
    }
}

/// One entry of a `targets` list, unvalidated.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInput {
    pub id: Option<String>,
    pub port: Option<i64>,
}

/// Validates a `targets` list of `min..=max` entries; returns `(id, port)` pairs.
pub fn check_targets(
    targets: Option<&[TargetInput]>,
    min: usize,
    max: usize,
    required: bool,
) -> Result<Vec<(String, Option<u16>)>, ValidationError> {
    let mut c = Checks::new();
    let mut out = Vec::new();
    match targets {
        None if required => c.missing("targets"),
        None => {}
        Some(list) if c.count("targets", list.len(), min, max) => {
            for (i, t) in list.iter().enumerate() {
                let id = match &t.id {
                    None => {
                        c.missing(&format!("targets[{i}].id"));
                        None
                    }
                    Some(id) => c
                        .length(&format!("targets[{i}].id"), id, 1, 200)
                        .then(|| id.clone()),
                };
                let port = match t.port {
                    None => Some(None),
                    Some(p) => c
                        .range(&format!("targets[{i}].port"), p, 1, 65535)
                        .then_some(Some(p as u16)),
                };
                if let (Some(id), Some(port)) = (id, port) {
                    out.push((id, port));
                }
            }
        }
        Some(_) => {}
    }
    c.finish()?;
    Ok(out)
}

pub const INSTANCE_ID_PATTERN: &str = "i-[0-9a-f]{8,17}";
static INSTANCE_ID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{INSTANCE_ID_PATTERN}$")).unwrap());
static LAMBDA_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:(aws[a-zA-Z-]*):lambda:([a-z0-9-]+):(\d{12}):function:[a-zA-Z0-9_-]{1,64}(:(\$LATEST|[a-zA-Z0-9_-]{1,128}))?$").unwrap()
});
static ALB_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:(aws[a-zA-Z-]*):elasticloadbalancing:([a-z0-9-]+):(\d{12}):loadbalancer/app/[a-zA-Z0-9-]{1,32}/[0-9a-f]{1,32}$").unwrap()
});

/// Checks one target of a Register/DeregisterTargets call against the group and returns its
/// effective port (the group's port when none is given; `None` for LAMBDA). The error is the
/// per-item `failureMessage`.
pub fn check_target(
    ctx: &Context,
    tg: &TargetGroup,
    id: &str,
    port: Option<u16>,
) -> Result<Option<u16>, String> {
    let same_place = |caps: regex::Captures<'_>| {
        if &caps[1] == ctx.partition.as_str()
            && &caps[2] == ctx.region.as_str()
            && &caps[3] == ctx.account_id.as_str()
        {
            Ok(())
        } else {
            Err(format!(
                "Target {id} must be in the same partition, region ({}) and account ({}) as the target group",
                ctx.region, ctx.account_id
            ))
        }
    };
    match tg.target_type {
        TargetGroupType::Ip => {
            let want = tg.config.ip_address_type.unwrap_or(IpAddressType::Ipv4);
            match id.parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                    return Err(format!("Target {id} is not a unicast IP address"));
                }
                Ok(IpAddr::V4(_)) if want == IpAddressType::Ipv4 => {}
                Ok(IpAddr::V6(_)) if want == IpAddressType::Ipv6 => {}
                _ => {
                    return Err(format!(
                        "Target {id} is not an {} address; the target group's ipAddressType is {}",
                        if want == IpAddressType::Ipv4 {
                            "IPv4"
                        } else {
                            "IPv6"
                        },
                        want.as_str()
                    ));
                }
            }
        }
        TargetGroupType::Instance => {
            if !INSTANCE_ID.is_match(id) {
                return Err(format!(
                    "Target {id} is not an EC2 instance ID (pattern {INSTANCE_ID_PATTERN})"
                ));
            }
        }
        TargetGroupType::Lambda => {
            let caps = LAMBDA_ARN
                .captures(id)
                .ok_or_else(|| format!("Target {id} is not a Lambda function ARN"))?;
            same_place(caps)?;
            if port.is_some() {
                return Err("Lambda targets take no port".to_string());
            }
            return Ok(None);
        }
        TargetGroupType::Alb => {
            let caps = ALB_ARN
                .captures(id)
                .ok_or_else(|| format!("Target {id} is not an Application Load Balancer ARN"))?;
            same_place(caps)?;
        }
    }
    Ok(port.or(tg.config.port))
}

#[cfg(test)]
mod tests {
    use trellis_model::Timestamp;
    use trellis_model::resources::Tags;
    use trellis_model::resources::target_group::TargetGroupStatus;

    use super::*;

    fn field_names(c: Checks) -> Vec<String> {
        match c.finish() {
            Ok(()) => vec![],
            Err(e) => e.fields.into_iter().map(|f| f.name).collect(),
        }
    }

    fn config(json: serde_json::Value) -> TargetGroupConfigInput {
        serde_json::from_value(json).unwrap()
    }

    /// (type, config JSON or null, expected failing fields)
    #[test]
    fn config_validation_table() {
        use serde_json::json;
        let vpc = "vpc-0123456789abcdef0";
        let cases: Vec<(TargetGroupType, serde_json::Value, Vec<&str>)> = vec![
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "vpcIdentifier": vpc}),
                vec![],
            ),
            (TargetGroupType::Ip, serde_json::Value::Null, vec!["config"]),
            (
                TargetGroupType::Ip,
                json!({"vpcIdentifier": vpc}),
                vec!["config.protocol"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "FTP", "vpcIdentifier": vpc}),
                vec!["config.protocol"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP"}),
                vec!["config.vpcIdentifier"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "vpcIdentifier": "vpc-1"}),
                vec!["config.vpcIdentifier"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "vpcIdentifier": "subnet-01234567"}),
                vec!["config.vpcIdentifier"],
            ),
            (
                TargetGroupType::Instance,
                json!({"protocol": "HTTP", "vpcIdentifier": "vpc-01234567"}),
                vec![],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "port": 0, "vpcIdentifier": vpc}),
                vec!["config.port"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "port": 65536, "vpcIdentifier": vpc}),
                vec!["config.port"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "TCP", "vpcIdentifier": vpc}),
                vec!["config.port"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "TCP", "port": 9000, "vpcIdentifier": vpc}),
                vec![],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "TCP", "port": 9000, "protocolVersion": "HTTP1", "vpcIdentifier": vpc}),
                vec!["config.protocolVersion"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "protocolVersion": "HTTP3", "vpcIdentifier": vpc}),
                vec!["config.protocolVersion"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "ipAddressType": "IPV5", "vpcIdentifier": vpc}),
                vec!["config.ipAddressType"],
            ),
            (
                TargetGroupType::Instance,
                json!({"protocol": "HTTP", "ipAddressType": "IPV4", "vpcIdentifier": vpc}),
                vec!["config.ipAddressType"],
            ),
            (
                TargetGroupType::Ip,
                json!({"protocol": "HTTP", "vpcIdentifier": vpc, "lambdaEventStructureVersion": "V2"}),
                vec!["config.lambdaEventStructureVersion"],
            ),
            (
                TargetGroupType::Alb,
                json!({"protocol": "HTTP", "vpcIdentifier": vpc, "healthCheck": {"enabled": true}}),
                vec!["config.healthCheck"],
            ),
            (
                TargetGroupType::Alb,
                json!({"protocol": "HTTPS", "vpcIdentifier": vpc}),
                vec![],
            ),
            (TargetGroupType::Lambda, serde_json::Value::Null, vec![]),
            (
                TargetGroupType::Lambda,
                json!({"lambdaEventStructureVersion": "V2"}),
                vec![],
            ),
            (
                TargetGroupType::Lambda,
                json!({"lambdaEventStructureVersion": "V3"}),
                vec!["config.lambdaEventStructureVersion"],
            ),
            (
                TargetGroupType::Lambda,
                json!({"port": 80, "protocol": "HTTP", "protocolVersion": "HTTP1", "ipAddressType": "IPV4", "vpcIdentifier": vpc, "healthCheck": {}}),
                vec![
                    "config.port",
                    "config.protocol",
                    "config.protocolVersion",
                    "config.ipAddressType",
                    "config.vpcIdentifier",
                    "config.healthCheck",
                ],
            ),
        ];
        for (ty, json, want) in cases {
            let input = (!json.is_null()).then(|| config(json.clone()));
            let mut c = Checks::new();
            check_config(&mut c, ty, input.as_ref());
            assert_eq!(field_names(c), want, "{ty:?} {json}");
        }
    }

    #[test]
    fn config_defaults_are_filled_in() {
        use serde_json::json;
        let mut c = Checks::new();
        let http = check_config(
            &mut c,
            TargetGroupType::Ip,
            Some(&config(
                json!({"protocol": "HTTPS", "vpcIdentifier": "vpc-01234567"}),
            )),
        );
        assert!(c.is_empty());
        assert_eq!(http.port, Some(443));
        assert_eq!(http.protocol_version, Some(ProtocolVersion::Http1));
        assert_eq!(http.ip_address_type, Some(IpAddressType::Ipv4));
        let hc = http.health_check.unwrap();
        assert!(hc.enabled);
        assert_eq!(hc.protocol, TargetGroupProtocol::Https);
        assert_eq!(
            (
                hc.interval_seconds,
                hc.timeout_seconds,
                hc.healthy_threshold_count,
                hc.unhealthy_threshold_count
            ),
            (30, 5, 5, 2)
        );
        assert_eq!((hc.path.as_str(), hc.matcher.as_str()), ("/", "200"));

        for (proto, version, enabled) in [
            ("HTTP", "HTTP2", false),
            ("HTTP", "GRPC", false),
            ("HTTP", "HTTP1", true),
        ] {
            let cfg = check_config(
                &mut c,
                TargetGroupType::Instance,
                Some(&config(
                    json!({"protocol": proto, "protocolVersion": version, "vpcIdentifier": "vpc-01234567"}),
                )),
            );
            assert_eq!(cfg.health_check.unwrap().enabled, enabled, "{version}");
            assert_eq!(cfg.ip_address_type, None);
        }
        let tcp = check_config(
            &mut c,
            TargetGroupType::Ip,
            Some(&config(
                json!({"protocol": "TCP", "port": 5432, "vpcIdentifier": "vpc-01234567"}),
            )),
        );
        let hc = tcp.health_check.unwrap();
        assert!(!hc.enabled);
        assert_eq!(hc.protocol, TargetGroupProtocol::Http);
        assert_eq!(tcp.protocol_version, None);
        let alb = check_config(
            &mut c,
            TargetGroupType::Alb,
            Some(&config(
                json!({"protocol": "HTTP", "vpcIdentifier": "vpc-01234567"}),
            )),
        );
        assert_eq!(alb.health_check, None);
        let lambda = check_config(&mut c, TargetGroupType::Lambda, None);
        assert_eq!(
            lambda.lambda_event_structure_version,
            Some(LambdaEventStructureVersion::V1)
        );
        assert_eq!(lambda.port, None);
        assert!(c.is_empty());
    }

    /// (health check JSON, expected failing fields)
    #[test]
    fn health_check_validation_table() {
        use serde_json::json;
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (json!({}), vec![]),
            (
                json!({"enabled": false, "protocol": "HTTPS", "protocolVersion": "HTTP2"}),
                vec![],
            ),
            (json!({"protocol": "UDP"}), vec!["h.protocol"]),
            (json!({"protocol": "TCP"}), vec!["h.protocol"]),
            (json!({"protocol": "TCP", "enabled": false}), vec![]),
            (
                json!({"protocolVersion": "GRPC"}),
                vec!["h.protocolVersion"],
            ),
            (json!({"port": -1}), vec!["h.port"]),
            (json!({"port": 65536}), vec!["h.port"]),
            (json!({"port": 0}), vec![]),
            (json!({"path": "health"}), vec!["h.path"]),
            (json!({"path": "/a b"}), vec!["h.path"]),
            (
                json!({"path": format!("/{}", "a".repeat(2048))}),
                vec!["h.path"],
            ),
            (json!({"path": ""}), vec![]),
            (
                json!({"healthCheckIntervalSeconds": 4}),
                vec!["h.healthCheckIntervalSeconds"],
            ),
            (
                json!({"healthCheckIntervalSeconds": 301}),
                vec!["h.healthCheckIntervalSeconds"],
            ),
            (json!({"healthCheckIntervalSeconds": 0}), vec![]),
            (
                json!({"healthCheckTimeoutSeconds": 121}),
                vec!["h.healthCheckTimeoutSeconds"],
            ),
            (
                json!({"healthCheckTimeoutSeconds": -1}),
                vec!["h.healthCheckTimeoutSeconds"],
            ),
            (
                json!({"healthyThresholdCount": 1}),
                vec!["h.healthyThresholdCount"],
            ),
            (
                json!({"healthyThresholdCount": 11}),
                vec!["h.healthyThresholdCount"],
            ),
            (
                json!({"unhealthyThresholdCount": 1}),
                vec!["h.unhealthyThresholdCount"],
            ),
            (json!({"unhealthyThresholdCount": 10}), vec![]),
            (json!({"matcher": {}}), vec!["h.matcher"]),
            (json!({"matcher": {"httpCode": "200-299,302"}}), vec![]),
            (
                json!({"matcher": {"httpCode": "199"}}),
                vec!["h.matcher.httpCode"],
            ),
            (
                json!({"matcher": {"httpCode": "500"}}),
                vec!["h.matcher.httpCode"],
            ),
            (
                json!({"matcher": {"httpCode": "300-200"}}),
                vec!["h.matcher.httpCode"],
            ),
            (
                json!({"matcher": {"httpCode": "2xx"}}),
                vec!["h.matcher.httpCode"],
            ),
            (
                json!({"matcher": {"httpCode": "200,"}}),
                vec!["h.matcher.httpCode"],
            ),
            (json!({"matcher": {"httpCode": ""}}), vec![]),
        ];
        let base = HealthCheck::defaults(TargetGroupProtocol::Http, Some(ProtocolVersion::Http1));
        for (json, want) in cases {
            let input: HealthCheckInput = serde_json::from_value(json.clone()).unwrap();
            let mut c = Checks::new();
            input.apply(&mut c, "h", &base, TargetGroupProtocol::Http);
            assert_eq!(field_names(c), want, "{json}");
        }
    }

    #[test]
    fn health_check_merges_and_zero_resets() {
        let mut base =
            HealthCheck::defaults(TargetGroupProtocol::Http, Some(ProtocolVersion::Http1));
        base.interval_seconds = 60;
        base.path = "/ready".into();
        base.port = Some(8080);
        let input: HealthCheckInput = serde_json::from_value(serde_json::json!({
            "healthCheckIntervalSeconds": 0, "healthyThresholdCount": 3, "port": 0, "matcher": {"httpCode": ""}
        }))
        .unwrap();
        let mut c = Checks::new();
        let hc = input.apply(&mut c, "healthCheck", &base, TargetGroupProtocol::Http);
        assert!(c.is_empty());
        assert_eq!(hc.interval_seconds, DEFAULT_INTERVAL_SECONDS);
        assert_eq!(hc.healthy_threshold_count, 3);
        assert_eq!(hc.path, "/ready", "members not given are kept");
        assert_eq!(hc.port, None);
        assert_eq!(hc.matcher, "200");
        // A TCP group may enable checks only with an HTTP(S) protocol.
        let tcp = HealthCheck::defaults(TargetGroupProtocol::Tcp, None);
        let enable: HealthCheckInput =
            serde_json::from_value(serde_json::json!({"enabled": true, "protocol": "HTTP"}))
                .unwrap();
        let hc = enable.apply(&mut c, "healthCheck", &tcp, TargetGroupProtocol::Tcp);
        assert!(c.is_empty());
        assert!(hc.enabled && hc.protocol == TargetGroupProtocol::Http);
    }

    /// A TCP group reports its health-check protocol as HTTP, and what it reports is accepted
    /// back with checks enabled: the Terraform provider sends the reported protocol with every
    /// health-check change (it reported TCP and then refused it, so every apply failed).
    #[test]
    fn tcp_group_health_check_round_trips() {
        use serde_json::json;
        let cfg = config;
        let mut c = Checks::new();
        let created = check_config(
            &mut c,
            TargetGroupType::Ip,
            Some(&cfg(
                json!({"protocol": "TCP", "port": 5432, "vpcIdentifier": "vpc-01234567",
                        "healthCheck": {"enabled": false, "path": "/", "protocolVersion": "HTTP1"}}),
            )),
        );
        assert!(c.is_empty());
        let stored = created.health_check.unwrap();
        assert_eq!(
            (stored.enabled, stored.protocol),
            (false, TargetGroupProtocol::Http)
        );
        // The update the provider sends: every member, with the reported protocol.
        let update: HealthCheckInput = serde_json::from_value(json!({
            "enabled": true, "protocol": stored.protocol.as_str(), "protocolVersion": "HTTP1",
            "path": "/ready", "healthCheckIntervalSeconds": 30, "healthCheckTimeoutSeconds": 5,
            "healthyThresholdCount": 5, "unhealthyThresholdCount": 2, "matcher": {"httpCode": "200"}
        }))
        .unwrap();
        let hc = update.apply(&mut c, "healthCheck", &stored, TargetGroupProtocol::Tcp);
        assert!(c.is_empty());
        assert!(hc.enabled && hc.protocol == TargetGroupProtocol::Http && hc.path == "/ready");
        // A group stored with the old TCP default is checked over HTTP once enabled.
        let legacy = HealthCheck {
            protocol: TargetGroupProtocol::Tcp,
            ..stored.clone()
        };
        let mut c = Checks::new();
        let hc = update.apply(&mut c, "healthCheck", &legacy, TargetGroupProtocol::Tcp);
        assert!(c.is_empty());
        assert_eq!(hc.protocol, TargetGroupProtocol::Http);
        // Still refused: TCP as the check protocol, and turning checks on for a TCP group
        // without saying how to check it (on create and on update).
        let enable: HealthCheckInput = serde_json::from_value(json!({"enabled": true})).unwrap();
        let mut c = Checks::new();
        enable.apply(&mut c, "healthCheck", &stored, TargetGroupProtocol::Tcp);
        assert_eq!(field_names(c), vec!["healthCheck.protocol"]);
        let tcp: HealthCheckInput =
            serde_json::from_value(json!({"enabled": true, "protocol": "TCP"})).unwrap();
        let mut c = Checks::new();
        tcp.apply(&mut c, "healthCheck", &stored, TargetGroupProtocol::Tcp);
        assert_eq!(field_names(c), vec!["healthCheck.protocol"]);
        let mut c = Checks::new();
        check_config(
            &mut c,
            TargetGroupType::Ip,
            Some(&cfg(
                json!({"protocol": "TCP", "port": 5432, "vpcIdentifier": "vpc-01234567",
                        "healthCheck": {"enabled": true}}),
            )),
        );
        assert_eq!(field_names(c), vec!["config.healthCheck.protocol"]);
    }

    fn group(ty: TargetGroupType, ip: Option<IpAddressType>, port: Option<u16>) -> TargetGroup {
        TargetGroup {
            id: "tg-0123456789abcdef0".into(),
            name: "tg".into(),
            arn: "arn".into(),
            target_type: ty,
            config: TargetGroupConfig {
                port,
                ip_address_type: ip,
                ..Default::default()
            },
            status: TargetGroupStatus::Active,
            created_at: Timestamp::from_unix_millis(0),
            last_updated_at: Timestamp::from_unix_millis(0),
            tags: Tags::new(),
        }
    }

    #[test]
    fn target_table() {
        let ctx = Context {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account_id: "111122223333".into(),
        };
        let ip4 = group(TargetGroupType::Ip, Some(IpAddressType::Ipv4), Some(80));
        let ip6 = group(TargetGroupType::Ip, Some(IpAddressType::Ipv6), Some(80));
        let inst = group(TargetGroupType::Instance, None, Some(8080));
        let lambda = group(TargetGroupType::Lambda, None, None);
        let alb = group(TargetGroupType::Alb, None, Some(443));
        let f = "arn:aws:lambda:us-west-2:111122223333:function:my-fn";
        let alb_arn = "arn:aws:elasticloadbalancing:us-west-2:111122223333:loadbalancer/app/my-alb/50dc6c495c0c9188";
        // (group, target id, port, expected effective port or failure)
        type Case<'a> = (
            &'a TargetGroup,
            &'a str,
            Option<u16>,
            Result<Option<u16>, ()>,
        );
        let cases: Vec<Case> = vec![
            (&ip4, "10.0.0.1", None, Ok(Some(80))),
            (&ip4, "127.0.0.1", Some(9000), Ok(Some(9000))),
            (&ip4, "::1", None, Err(())),
            (&ip4, "0.0.0.0", None, Err(())),
            (&ip4, "224.0.0.1", None, Err(())),
            (&ip4, "10.0.0", None, Err(())),
            (&ip4, "i-0123456789abcdef0", None, Err(())),
            (&ip6, "fd00::1", None, Ok(Some(80))),
            (&ip6, "10.0.0.1", None, Err(())),
            (&inst, "i-01234567", None, Ok(Some(8080))),
            (&inst, "i-0123456789abcdef0", Some(1), Ok(Some(1))),
            (&inst, "i-0123456", None, Err(())),
            (&inst, "i-0123456789ABCDEF0", None, Err(())),
            (&inst, "10.0.0.1", None, Err(())),
            (&lambda, f, None, Ok(None)),
            (
                &lambda,
                "arn:aws:lambda:us-west-2:111122223333:function:my-fn:prod",
                None,
                Ok(None),
            ),
            (
                &lambda,
                "arn:aws:lambda:us-west-2:111122223333:function:my-fn:$LATEST",
                None,
                Ok(None),
            ),
            (&lambda, f, Some(80), Err(())),
            (
                &lambda,
                "arn:aws:lambda:us-east-1:111122223333:function:my-fn",
                None,
                Err(()),
            ),
            (
                &lambda,
                "arn:aws:lambda:us-west-2:999999999999:function:my-fn",
                None,
                Err(()),
            ),
            (&lambda, "my-fn", None, Err(())),
            (&alb, alb_arn, None, Ok(Some(443))),
            (
                &alb,
                "arn:aws:elasticloadbalancing:us-west-2:111122223333:loadbalancer/net/my-nlb/50dc6c495c0c9188",
                None,
                Err(()),
            ),
            (&alb, f, None, Err(())),
        ];
        for (tg, id, port, want) in cases {
            let got = check_target(&ctx, tg, id, port).map_err(|_| ());
            assert_eq!(got, want, "{:?} {id} {port:?}", tg.target_type);
        }
    }

    #[test]
    fn targets_list_validation_table() {
        let t = |id: Option<&str>, port: Option<i64>| TargetInput {
            id: id.map(str::to_string),
            port,
        };
        // (targets, minimum count, expected failing fields)
        type Case = (Option<Vec<TargetInput>>, usize, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (Some(vec![t(Some("10.0.0.1"), None)]), 1, vec![]),
            (None, 1, vec!["targets"]),
            (Some(vec![]), 1, vec!["targets"]),
            (Some(vec![t(Some("a"), None); 101]), 1, vec!["targets"]),
            (Some(vec![t(None, None)]), 1, vec!["targets[0].id"]),
            (Some(vec![t(Some(""), None)]), 1, vec!["targets[0].id"]),
            (
                Some(vec![t(Some(&"x".repeat(201)), None)]),
                1,
                vec!["targets[0].id"],
            ),
            (
                Some(vec![t(Some("a"), Some(0)), t(Some("b"), Some(65536))]),
                1,
                vec!["targets[0].port", "targets[1].port"],
            ),
            (Some(vec![]), 0, vec![]),
        ];
        for (list, min, want) in cases {
            let got = match check_targets(list.as_deref(), min, 100, true) {
                Ok(_) => vec![],
                Err(e) => e.fields.into_iter().map(|f| f.name).collect::<Vec<_>>(),
            };
            assert_eq!(got, want);
        }
    }
}

//! Table tests of [`compile`]: records built from the model's own document types, compiled
//! without a store.

use super::*;
use serde::Serialize;
use trellis_model::Timestamp;
use trellis_model::dns::{service_dns_entry, zone_apex};
use trellis_model::resources::AuthType;
use trellis_model::resources::Tags;
use trellis_model::resources::rule::{
    HttpMatch, PathMatch, PathMatchType, RuleAction, RuleMatch, WeightedTargetGroup,
};
use trellis_model::resources::service::ServiceStatus;
use trellis_model::resources::target_group::{
    TargetGroupConfig, TargetGroupProtocol, TargetGroupStatus,
};
use trellis_router::{Action, RequestHead, WeightedGroups};

const REGION: &str = "us-west-2";
const ACCOUNT: &str = "111122223333";

fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: REGION.into(),
        account_id: ACCOUNT.into(),
    }
}

fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000)
}

/// `svc-000…0N` style IDs: `id("svc", 3)` = `svc-00000000000000003`.
fn id(prefix: &str, n: u32) -> String {
    format!("{prefix}-{n:017x}")
}

fn forward(groups: &[(&str, u16)]) -> RuleAction {
    RuleAction::Forward {
        target_groups: groups
            .iter()
            .map(|(tg, w)| WeightedTargetGroup {
                target_group_id: tg.to_string(),
                weight: *w,
            })
            .collect(),
    }
}

/// Records accumulated in creation order, as the store would return them.
#[derive(Default)]
struct Fixture {
    records: Vec<Record>,
}

impl Fixture {
    fn push(&mut self, kind: &str, id: &str, parent: Option<&str>, body: &impl Serialize) {
        self.records.push(Record {
            kind: kind.into(),
            id: id.into(),
            parent: parent.map(str::to_string),
            body: serde_json::to_value(body).unwrap(),
        });
    }

    fn network(&mut self, sn: &str, auth_type: AuthType) -> &mut Self {
        let doc = ServiceNetwork {
            id: sn.into(),
            name: format!("net-{sn}"),
            arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetwork/{sn}"),
            auth_type,
            sharing_enabled: false,
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        };
        self.push("service-network", sn, None, &doc);
        self
    }

    fn service(&mut self, svc: &str, name: &str, custom_domain: Option<&str>) -> &mut Self {
        let doc = Service {
            id: svc.into(),
            name: name.into(),
            arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{svc}"),
            auth_type: AuthType::None,
            custom_domain_name: custom_domain.map(str::to_string),
            certificate_arn: None,
            status: ServiceStatus::Active,
            dns_entry: service_dns_entry(name, svc, REGION, ACCOUNT),
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        };
        self.push("service", svc, None, &doc);
        self
    }

    fn associate(&mut self, sn: &str, svc: &str, status: AssociationStatus) -> &mut Self {
        let snsa = format!("snsa-{}", &svc[4..]);
        let doc = ServiceNetworkServiceAssociation {
            id: snsa.clone(),
            arn: format!(
                "arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetworkserviceassociation/{snsa}"
            ),
            status,
            created_by: ACCOUNT.into(),
            created_at: t0(),
            service_id: svc.into(),
            service_name: "x".into(),
            service_arn: "x".into(),
            service_network_id: sn.into(),
            service_network_name: "x".into(),
            service_network_arn: "x".into(),
            dns_entry: service_dns_entry("x", svc, REGION, ACCOUNT),
            custom_domain_name: None,
            tags: Tags::new(),
        };
        self.push("service-network-service-association", &snsa, Some(sn), &doc);
        self
    }

    /// A listener and its default rule (`<listener>-default` as the rule ID).
    fn listener(
        &mut self,
        svc: &str,
        l: &str,
        protocol: ListenerProtocol,
        port: u16,
        default_action: RuleAction,
    ) -> &mut Self {
        let default_rule_id = format!("rule-default-{l}");
        let doc = Listener {
            id: l.into(),
            name: format!("l-{port}"),
            arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{svc}/listener/{l}"),
            service_id: svc.into(),
            service_arn: "x".into(),
            protocol,
            port,
            default_action: default_action.clone(),
            default_rule_id: default_rule_id.clone(),
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        };
        self.push("listener", l, Some(svc), &doc);
        let rule = Rule {
            id: default_rule_id.clone(),
            name: "default".into(),
            arn: "x".into(),
            service_id: svc.into(),
            listener_id: l.into(),
            is_default: true,
            priority: None,
            rule_match: None,
            action: default_action,
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        };
        self.push("rule", &default_rule_id, Some(l), &rule);
        self
    }

    /// A non-default rule matching the exact path `path`.
    fn rule(
        &mut self,
        svc: &str,
        l: &str,
        r: &str,
        priority: u16,
        path: &str,
        action: RuleAction,
    ) -> &mut Self {
        let doc = Rule {
            id: r.into(),
            name: format!("r-{priority}"),
            arn: "x".into(),
            service_id: svc.into(),
            listener_id: l.into(),
            is_default: false,
            priority: Some(priority),
            rule_match: Some(RuleMatch::HttpMatch(HttpMatch {
                method: None,
                path_match: Some(PathMatch {
                    path: PathMatchType::Exact(path.into()),
                    case_sensitive: true,
                }),
                header_matches: Vec::new(),
            })),
            action,
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        };
        self.push("rule", r, Some(l), &doc);
        self
    }

    fn target_group(&mut self, tg: &str, ty: TargetGroupType, port: Option<u16>) -> &mut Self {
        let doc = TargetGroup {
            id: tg.into(),
            name: format!("tg-{}", &tg[3..]),
            arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:targetgroup/{tg}"),
            target_type: ty,
            config: TargetGroupConfig {
                port,
                protocol: port.map(|_| TargetGroupProtocol::Http),
                ..Default::default()
            },
            status: TargetGroupStatus::Active,
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        };
        self.push("target-group", tg, None, &doc);
        self
    }

    fn target(&mut self, tg: &str, target: &str, port: Option<u16>) -> &mut Self {
        let doc = Target {
            id: target.into(),
            port,
            registered_at: t0(),
        };
        let key = target_key(target, port);
        self.push(TARGET_KIND, &format!("{tg}/{key}"), Some(tg), &doc);
        self
    }

    fn auth_policy(&mut self, resource: &str, policy: &str) -> &mut Self {
        let doc = serde_json::json!({
            "resourceId": resource,
            "resourceArn": format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{resource}"),
            "resourceType": "SERVICE",
            "policy": policy,
            "createdAt": "2024-01-01T00:00:00.000Z",
            "lastUpdatedAt": "2024-01-01T00:00:00.000Z",
        });
        self.push(AUTH_POLICY_KIND, resource, Some(resource), &doc);
        self
    }

    fn compile(&self) -> Snapshot {
        compile(&CompileInput {
            revision: 42,
            ctx: ctx(),
            records: self.records.clone(),
        })
        .unwrap()
    }
}

fn dns(name: &str, svc: &str) -> String {
    service_dns_entry(name, svc, REGION, ACCOUNT).domain_name
}

fn sorted_keys<V, S>(m: &HashMap<String, V, S>) -> Vec<String> {
    let mut keys: Vec<String> = m.keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn deny_all_policy_parses() {
    assert!(trellis_policy::parse(DENY_ALL_POLICY, PolicyKind::Auth).is_ok());
}

#[test]
fn empty_input_serves_nothing_but_knows_its_zone() {
    let snap = Fixture::default().compile();
    assert_eq!(snap.revision, 42);
    assert!(snap.hosts.is_empty() && snap.ports.is_empty() && snap.target_groups.is_empty());
    assert!(snap.dns_names.is_empty() && snap.tls_names.is_empty());
    assert_eq!(snap.dns_zones, vec![zone_apex(REGION, ACCOUNT)]);
}

#[test]
fn only_services_in_a_service_network_are_served() {
    let sn = id("sn", 1);
    let missing_sn = id("sn", 99);
    // (service number, name, how it is associated, served?)
    type Case = (u32, &'static str, Option<(bool, AssociationStatus)>, bool);
    let cases: [Case; 6] = [
        (1, "served", Some((true, AssociationStatus::Active)), true),
        (2, "lonely", None, false),
        (
            3,
            "dangling",
            Some((false, AssociationStatus::Active)),
            false,
        ),
        (
            4,
            "leaving",
            Some((true, AssociationStatus::DeleteInProgress)),
            false,
        ),
        (
            5,
            "failed",
            Some((true, AssociationStatus::CreateFailed)),
            false,
        ),
        (
            6,
            "updating",
            Some((true, AssociationStatus::UpdateInProgress)),
            true,
        ),
    ];
    let mut f = Fixture::default();
    f.network(&sn, AuthType::None);
    for (n, name, assoc, _) in cases {
        let svc = id("svc", n);
        f.service(&svc, name, None);
        f.listener(
            &svc,
            &id("listener", n),
            ListenerProtocol::Http,
            8000 + n as u16,
            RuleAction::FixedResponse { status_code: 404 },
        );
        if let Some((exists, status)) = assoc {
            f.associate(if exists { &sn } else { &missing_sn }, &svc, status);
        }
    }
    let snap = f.compile();
    for (n, name, _, served) in cases {
        let svc = id("svc", n);
        let host = dns(name, &svc);
        assert_eq!(snap.hosts.contains_key(&host), served, "{name}: hosts");
        assert_eq!(snap.dns_names.contains(&host), served, "{name}: dns");
        assert_eq!(
            snap.ports.contains_key(&(8000 + n as u16)),
            served,
            "{name}: ports"
        );
        if served {
            let entry = &snap.hosts[&host];
            assert_eq!(entry.id, svc);
            assert_eq!(entry.networks.len(), 1);
            assert_eq!(entry.networks[0].id, sn);
        }
    }
}

#[test]
fn a_service_in_two_networks_lists_both_once() {
    let (a, b, svc) = (id("sn", 1), id("sn", 2), id("svc", 1));
    let mut f = Fixture::default();
    f.network(&a, AuthType::AwsIam)
        .network(&b, AuthType::None)
        .service(&svc, "two", None)
        .associate(&a, &svc, AssociationStatus::Active)
        .associate(&b, &svc, AssociationStatus::Active);
    let snap = f.compile();
    let entry = &snap.hosts[&dns("two", &svc)];
    let nets: Vec<(&str, AuthType)> = entry
        .networks
        .iter()
        .map(|n| (n.id.as_str(), n.auth_type))
        .collect();
    assert_eq!(
        nets,
        vec![(a.as_str(), AuthType::AwsIam), (b.as_str(), AuthType::None)]
    );
}

#[test]
fn ports_list_every_protocol_spoken_on_them() {
    let sn = id("sn", 1);
    let (s1, s2, s3) = (id("svc", 1), id("svc", 2), id("svc", 3));
    let fixed = || RuleAction::FixedResponse { status_code: 404 };
    let mut f = Fixture::default();
    f.network(&sn, AuthType::None)
        .service(&s1, "one", None)
        .service(&s2, "two", Some("two.example.com"))
        .service(&s3, "three", None)
        .associate(&sn, &s1, AssociationStatus::Active)
        .associate(&sn, &s2, AssociationStatus::Active)
        .listener(&s1, &id("listener", 1), ListenerProtocol::Http, 80, fixed())
        .listener(
            &s1,
            &id("listener", 2),
            ListenerProtocol::Https,
            443,
            fixed(),
        )
        .listener(
            &s2,
            &id("listener", 3),
            ListenerProtocol::Https,
            80,
            fixed(),
        )
        .listener(
            &s2,
            &id("listener", 4),
            ListenerProtocol::TlsPassthrough,
            8443,
            forward(&[]),
        )
        // Unserved: its port must not be bound.
        .listener(
            &s3,
            &id("listener", 5),
            ListenerProtocol::Http,
            9999,
            fixed(),
        );
    let snap = f.compile();
    let p = |http, https, tls_passthrough| PortProtocols {
        http,
        https,
        tls_passthrough,
    };
    let want: BTreeMap<u16, PortProtocols> = [
        (80, p(true, true, false)),
        (443, p(false, true, false)),
        (8443, p(false, false, true)),
    ]
    .into();
    assert_eq!(snap.ports, want);
    let one = &snap.hosts[&dns("one", &s1)];
    let mut one_ports: Vec<(u16, ListenerProtocol)> = one
        .listeners
        .values()
        .map(|l| (l.port, l.protocol))
        .collect();
    one_ports.sort_by_key(|(port, _)| *port);
    assert_eq!(
        one_ports,
        vec![(80, ListenerProtocol::Http), (443, ListenerProtocol::Https)]
    );
    // Both services have an HTTPS listener; passthrough alone would not need a certificate.
    assert_eq!(
        snap.tls_names,
        sorted(vec![
            dns("one", &s1),
            dns("two", &s2),
            "two.example.com".into()
        ])
    );
}

#[test]
fn hosts_cover_generated_names_and_custom_domains_lower_cased() {
    let sn = id("sn", 1);
    let (s1, s2, s3, s4) = (id("svc", 1), id("svc", 2), id("svc", 3), id("svc", 4));
    // s3 claims s1's generated name as its custom domain: generated names are never shadowed.
    let s1_name = dns("alpha", &s1);
    let mut f = Fixture::default();
    f.network(&sn, AuthType::None)
        .service(&s1, "alpha", Some("API.Example.COM."))
        .service(&s2, "beta", Some("api.example.com"))
        .service(&s3, "gamma", Some(&s1_name.to_uppercase()))
        .service(&s4, "delta", Some("unserved.example.com"));
    for s in [&s1, &s2, &s3] {
        f.associate(&sn, s, AssociationStatus::Active);
    }
    let snap = f.compile();
    // (host, owning service)
    let cases = [
        (dns("alpha", &s1), &s1),
        (dns("beta", &s2), &s2),
        (dns("gamma", &s3), &s3),
        // s1 was created first and keeps the shared custom domain.
        ("api.example.com".to_string(), &s1),
    ];
    assert_eq!(
        sorted_keys(&snap.hosts),
        sorted(cases.iter().map(|(h, _)| h.clone()).collect())
    );
    for (host, owner) in &cases {
        assert_eq!(&snap.hosts[host].id, *owner, "{host}");
    }
    assert_eq!(
        snap.hosts[&dns("alpha", &s1)].custom_domain_name.as_deref(),
        Some("api.example.com")
    );
    assert_eq!(
        snap.dns_names,
        sorted(vec![
            dns("alpha", &s1),
            dns("beta", &s2),
            dns("gamma", &s3),
            "api.example.com".into(),
        ])
    );
    assert!(snap.tls_names.is_empty(), "no HTTPS listener anywhere");
    // Lookups by Host header: port stripped, case and trailing dot ignored.
    for (host, want) in [
        ("API.example.com:8080", Some(&s1)),
        ("api.example.com.", Some(&s1)),
        (
            &*format!("{}:443", dns("beta", &s2).to_uppercase()),
            Some(&s2),
        ),
        ("unserved.example.com", None),
        ("example.com", None),
    ] {
        assert_eq!(snap.service_by_host(host).map(|s| &s.id), want, "{host}");
    }
}

#[test]
fn target_groups_are_in_use_when_any_listener_or_rule_forwards_to_them() {
    let sn = id("sn", 1);
    let (served, unserved) = (id("svc", 1), id("svc", 2));
    let (l1, l2) = (id("listener", 1), id("listener", 2));
    let tg: Vec<String> = (1..=7).map(|n| id("tg", n)).collect();
    let mut f = Fixture::default();
    f.network(&sn, AuthType::None)
        .service(&served, "served", None)
        .service(&unserved, "unserved", None)
        .associate(&sn, &served, AssociationStatus::Active);
    for t in &tg {
        f.target_group(t, TargetGroupType::Ip, Some(80));
    }
    f.listener(
        &served,
        &l1,
        ListenerProtocol::Http,
        80,
        forward(&[(&tg[0], 100)]),
    )
    .rule(
        &served,
        &l1,
        &id("rule", 1),
        10,
        "/a",
        forward(&[(&tg[1], 1), (&tg[2], 0)]),
    )
    .rule(
        &served,
        &l1,
        &id("rule", 2),
        20,
        "/b",
        RuleAction::FixedResponse { status_code: 500 },
    )
    .listener(
        &unserved,
        &l2,
        ListenerProtocol::Http,
        81,
        forward(&[(&tg[3], 100)]),
    )
    .rule(
        &unserved,
        &l2,
        &id("rule", 3),
        10,
        "/c",
        forward(&[(&tg[4], 100)]),
    )
    .rule(
        &unserved,
        &id("listener", 9),
        &id("rule", 4),
        10,
        "/d",
        forward(&[(&tg[6], 100)]),
    );
    let snap = f.compile();
    // (group, in use?)
    let cases = [
        (&tg[0], true),  // default action of a served listener
        (&tg[1], true),  // a rule of a served listener
        (&tg[2], true),  // weight 0 still counts as forwarded to
        (&tg[3], true),  // an unserved service's default action: referenced all the same
        (&tg[4], true),  // an unserved service's rule
        (&tg[5], false), // nobody
        (&tg[6], false), // a rule whose listener is gone
    ];
    assert_eq!(snap.target_groups.len(), cases.len());
    for (t, in_use) in cases {
        assert_eq!(snap.target_groups[t.as_str()].in_use, in_use, "{t}");
    }
}

#[test]
fn targets_get_addresses_for_ip_groups_only() {
    let (ip4, ip6, lambda, inst) = (id("tg", 1), id("tg", 2), id("tg", 3), id("tg", 4));
    let function = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:f");
    let mut f = Fixture::default();
    f.target_group(&ip4, TargetGroupType::Ip, Some(8080))
        .target(&ip4, "10.0.0.1", Some(9000))
        .target(&ip4, "10.0.0.2", None)
        .target_group(&ip6, TargetGroupType::Ip, Some(80))
        .target(&ip6, "fd00::1", Some(81))
        .target_group(&lambda, TargetGroupType::Lambda, None)
        .target(&lambda, &function, None)
        .target_group(&inst, TargetGroupType::Instance, Some(80))
        .target(&inst, "i-0123456789abcdef0", Some(80));
    let snap = f.compile();
    // (group, target id, port, key, addr)
    type Case<'a> = (&'a str, &'a str, Option<u16>, String, Option<&'a str>);
    let cases: [Case<'_>; 5] = [
        (
            &ip4,
            "10.0.0.1",
            Some(9000),
            "10.0.0.1:9000".into(),
            Some("10.0.0.1:9000"),
        ),
        (
            &ip4,
            "10.0.0.2",
            None,
            "10.0.0.2".into(),
            Some("10.0.0.2:8080"),
        ),
        (
            &ip6,
            "fd00::1",
            Some(81),
            "fd00::1:81".into(),
            Some("[fd00::1]:81"),
        ),
        (&lambda, &function, None, function.clone(), None),
        (
            &inst,
            "i-0123456789abcdef0",
            Some(80),
            "i-0123456789abcdef0:80".into(),
            None,
        ),
    ];
    for (tg, target, port, key, addr) in cases {
        let entry = snap.target_groups[tg]
            .targets
            .iter()
            .find(|t| t.id == target)
            .unwrap_or_else(|| panic!("{target} missing from {tg}"));
        let want = TargetEntry {
            id: target.into(),
            port,
            key,
            addr: addr.map(|a| a.parse().unwrap()),
        };
        assert_eq!(entry, &want);
    }
    assert_eq!(snap.target_groups[ip4.as_str()].targets.len(), 2);
}

#[test]
fn listener_routes_use_the_listeners_default_and_sort_rules_by_priority() {
    let sn = id("sn", 1);
    let svc = id("svc", 1);
    let (l1, l2) = (id("listener", 1), id("listener", 2));
    let (tg1, tg2) = (id("tg", 1), id("tg", 2));
    let (r10, r20) = (id("rule", 10), id("rule", 20));
    let mut f = Fixture::default();
    f.network(&sn, AuthType::None)
        .service(&svc, "routes", None)
        .associate(&sn, &svc, AssociationStatus::Active)
        .target_group(&tg1, TargetGroupType::Ip, Some(80))
        .target_group(&tg2, TargetGroupType::Ip, Some(80))
        .listener(
            &svc,
            &l1,
            ListenerProtocol::Http,
            80,
            forward(&[(&tg1, 100)]),
        )
        // Created out of priority order.
        .rule(&svc, &l1, &r20, 20, "/x", forward(&[(&tg2, 1)]))
        .rule(
            &svc,
            &l1,
            &r10,
            10,
            "/x",
            RuleAction::FixedResponse { status_code: 500 },
        )
        .listener(
            &svc,
            &l2,
            ListenerProtocol::Http,
            81,
            RuleAction::FixedResponse { status_code: 404 },
        );
    // The second listener's default rule record is gone: its own default action still applies.
    f.records.retain(|r| r.id != format!("rule-default-{l2}"));
    let snap = f.compile();
    let entry = &snap.hosts[&dns("routes", &svc)];
    let headers = http::HeaderMap::new();
    let head = |path| RequestHead {
        method: "GET",
        path,
        headers: &headers,
    };
    let l = &entry.listeners[&80];
    assert_eq!(l.id, l1);
    assert_eq!(
        l.routes.rule_ids().collect::<Vec<_>>(),
        vec![r10.as_str(), r20.as_str()]
    );
    assert_eq!(l.routes.default_rule_id(), format!("rule-default-{l1}"));
    // (listener port, path, matched rule, action)
    let cases = [
        (80, "/x", r10.clone(), Action::FixedResponse { status: 500 }),
        (
            80,
            "/other",
            format!("rule-default-{l1}"),
            Action::Forward(WeightedGroups::new([(tg1.clone(), 100)])),
        ),
        (
            81,
            "/x",
            format!("rule-default-{l2}"),
            Action::FixedResponse { status: 404 },
        ),
    ];
    for (port, path, rule, action) in cases {
        let route = entry.listeners[&port].routes.route(&head(path));
        assert_eq!(
            (route.rule_id, route.action),
            (rule.as_str(), &action),
            "{port} {path}"
        );
    }
}

#[test]
fn auth_policies_parse_and_fail_closed() {
    let sn = id("sn", 1);
    let (good, bad, none) = (id("svc", 1), id("svc", 2), id("svc", 3));
    let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*"}]}"#;
    let mut f = Fixture::default();
    f.network(&sn, AuthType::AwsIam)
        .auth_policy(&sn, "{not json")
        .service(&good, "good", None)
        .auth_policy(&good, allow)
        .service(&bad, "bad", None)
        .auth_policy(&bad, r#"{"Statement":[]}"#)
        .service(&none, "none", None);
    for s in [&good, &bad, &none] {
        f.associate(&sn, s, AssociationStatus::Active);
    }
    let snap = f.compile();
    let deny_all = trellis_policy::parse(DENY_ALL_POLICY, PolicyKind::Auth).unwrap();
    let allow_policy = trellis_policy::parse(allow, PolicyKind::Auth).unwrap();
    // (service, its policy)
    let cases = [
        (dns("good", &good), Some(&allow_policy)),
        (dns("bad", &bad), Some(&deny_all)),
        (dns("none", &none), None),
    ];
    for (host, want) in cases {
        let entry = &snap.hosts[&host];
        assert_eq!(entry.auth_policy.as_deref(), want, "{host}");
        // The network's unreadable policy fails closed too.
        assert_eq!(entry.networks[0].auth_policy.as_deref(), Some(&deny_all));
    }
}

#[test]
fn an_undecodable_document_rejects_the_snapshot() {
    // (kind, a body that is not that kind's document)
    let cases = [
        ("service", serde_json::json!({"id": "svc-1"})),
        ("listener", serde_json::json!({"protocol": "SMTP"})),
        ("target-group", serde_json::json!([])),
        (TARGET_KIND, serde_json::json!({"id": 7})),
        (AUTH_POLICY_KIND, serde_json::json!({"policy": "{}"})),
    ];
    for (kind, body) in cases {
        let mut f = Fixture::default();
        f.network(&id("sn", 1), AuthType::None);
        f.push(kind, "broken-1", Some("tg-00000000000000001"), &body);
        let err = compile(&CompileInput {
            revision: 1,
            ctx: ctx(),
            records: f.records.clone(),
        })
        .unwrap_err();
        let CompileError::Document { kind: k, id, .. } = err;
        assert_eq!((k.as_str(), id.as_str()), (kind, "broken-1"));
    }
    // A target record must name its group.
    let mut f = Fixture::default();
    f.push(
        TARGET_KIND,
        "orphan",
        None,
        &Target {
            id: "10.0.0.1".into(),
            port: Some(80),
            registered_at: t0(),
        },
    );
    assert!(matches!(
        compile(&CompileInput {
            revision: 1,
            ctx: ctx(),
            records: f.records
        }),
        Err(CompileError::Document { .. })
    ));
}

#[test]
fn records_of_other_kinds_are_ignored() {
    let mut f = Fixture::default();
    f.push("tag", "als-1", None, &serde_json::json!("anything"));
    f.push("resource-policy", "svc-1", None, &serde_json::json!(5));
    assert!(f.compile().hosts.is_empty());
}

#[test]
fn access_logs_go_to_existing_hosted_log_groups_of_the_service_and_its_networks() {
    let (sn1, sn2, svc) = (id("sn", 1), id("sn", 2), id("svc", 1));
    let group = |name: &str| format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}");
    let mut f = Fixture::default();
    f.network(&sn1, AuthType::None)
        .network(&sn2, AuthType::None)
        .service(&svc, "s", None)
        .associate(&sn1, &svc, AssociationStatus::Active);
    // A second association of the service (to sn2).
    let mut assoc2 = f.records.last().unwrap().clone();
    assoc2.id = "snsa-second".into();
    assoc2.body["id"] = "snsa-second".into();
    assoc2.body["serviceNetworkId"] = sn2.clone().into();
    f.records.push(assoc2);
    f.push(
        LOG_GROUP_KIND,
        "g1",
        None,
        &serde_json::json!({"logGroupName": "/svc", "logGroupArn": group("/svc")}),
    );
    f.push(
        LOG_GROUP_KIND,
        "g2",
        None,
        &serde_json::json!({"logGroupName": "/net", "logGroupArn": group("/net")}),
    );
    let mut sub = |id: &str, resource: &str, dest: String, log_type: Option<&str>| {
        let doc = AccessLogSubscription {
            id: id.into(),
            arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:accesslogsubscription/{id}"),
            resource_id: resource.into(),
            resource_arn: "x".into(),
            destination_arn: dest,
            service_network_log_type: log_type.map(str::to_string),
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        };
        f.push(ACCESS_LOG_KIND, id, Some(resource), &doc);
    };
    sub("als-svc", &svc, group("/svc"), None);
    sub("als-s3", &svc, "arn:aws:s3:::bucket".into(), None);
    sub("als-missing", &svc, group("/not-created"), None);
    sub(
        "als-other-account",
        &svc,
        "arn:aws:logs:us-west-2:444455556666:log-group:/svc".into(),
        None,
    );
    sub(
        "als-net",
        &sn2,
        format!("{}:*", group("/net")),
        Some("SERVICE"),
    );
    sub("als-resource", &sn1, group("/net"), Some("RESOURCE"));
    // Another account's group of the same name, hosted here, is not this account's destination.
    f.push(
        LOG_GROUP_KIND,
        "g3",
        None,
        &serde_json::json!({"logGroupName": "/svc",
            "logGroupArn": "arn:aws:logs:us-west-2:444455556666:log-group:/svc"}),
    );
    let snap = f.compile();
    let s = snap.service_by_host(&dns("s", &svc)).unwrap();
    let got: Vec<(&str, &str, &str, Option<&str>)> = s
        .access_logs
        .iter()
        .map(|e| {
            (
                e.subscription_id.as_str(),
                e.log_group.as_str(),
                e.resource_id.as_str(),
                e.network_arn.as_deref(),
            )
        })
        .collect();
    let sn2_arn = format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetwork/{sn2}");
    assert_eq!(
        got,
        [
            ("als-svc", "/svc", svc.as_str(), None),
            ("als-net", "/net", sn2.as_str(), Some(sn2_arn.as_str())),
        ]
    );
}

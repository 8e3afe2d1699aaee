//! Snapshot compile benchmark at scale: 10,000 services in one service network, each with an
//! HTTP listener, ten rules (path and header matches) plus the default rule, and its own target
//! group of ten targets — 100,000 targets in all. The records are built in memory as the store
//! would return them, so the figure is `compile` alone (the store read is not included).
//!
//! Also measured on the compiled snapshot: the per-request lookup (service by Host, listener by
//! port, rules), and — printed once to stderr — how much the process's resident set grew to
//! hold the records and the snapshot (Linux only).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use serde::Serialize;
use trellis_model::Context;
use trellis_model::Timestamp;
use trellis_model::dns::service_dns_entry;
use trellis_model::resources::AuthType;
use trellis_model::resources::Tags;
use trellis_model::resources::association::{AssociationStatus, ServiceNetworkServiceAssociation};
use trellis_model::resources::listener::{Listener, ListenerProtocol};
use trellis_model::resources::rule::{
    HeaderMatch, HeaderMatchType, HttpMatch, PathMatch, PathMatchType, Rule, RuleAction, RuleMatch,
    WeightedTargetGroup,
};
use trellis_model::resources::service::{Service, ServiceStatus};
use trellis_model::resources::service_network::ServiceNetwork;
use trellis_model::resources::target_group::{
    Target, TargetGroup, TargetGroupConfig, TargetGroupProtocol, TargetGroupStatus,
    TargetGroupType, target_key,
};
use trellis_router::RequestHead;
use trellis_snapshot::{CompileInput, Record, Snapshot, TARGET_KIND, compile};

const REGION: &str = "us-west-2";
const ACCOUNT: &str = "111122223333";
const SERVICES: u32 = 10_000;
const RULES: u16 = 10;
const TARGETS_PER_GROUP: u32 = 10;

fn id(prefix: &str, n: u32) -> String {
    format!("{prefix}-{n:017x}")
}

fn t0() -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000)
}

fn forward(tg: &str) -> RuleAction {
    RuleAction::Forward {
        target_groups: vec![WeightedTargetGroup {
            target_group_id: tg.to_string(),
            weight: 100,
        }],
    }
}

struct Records(Vec<Record>);

impl Records {
    fn push(&mut self, kind: &str, id: &str, parent: Option<&str>, body: &impl Serialize) {
        self.0.push(Record {
            kind: kind.into(),
            id: id.into(),
            parent: parent.map(str::to_string),
            body: serde_json::to_value(body).unwrap(),
        });
    }
}

fn rule(
    svc: &str,
    l: &str,
    r: &str,
    priority: Option<u16>,
    m: Option<RuleMatch>,
    tg: &str,
) -> Rule {
    Rule {
        id: r.into(),
        name: format!("r-{}", priority.unwrap_or(0)),
        arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{svc}/listener/{l}/rule/{r}"),
        service_id: svc.into(),
        listener_id: l.into(),
        is_default: priority.is_none(),
        priority,
        rule_match: m,
        action: forward(tg),
        created_at: t0(),
        last_updated_at: t0(),
        tags: Tags::new(),
    }
}

/// The whole configuration, in creation order.
fn records() -> Vec<Record> {
    let mut out = Records(Vec::with_capacity(SERVICES as usize * 25 + 1));
    let sn = id("sn", 1);
    out.push(
        "service-network",
        &sn,
        None,
        &ServiceNetwork {
            id: sn.clone(),
            name: "bench".into(),
            arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetwork/{sn}"),
            auth_type: AuthType::None,
            sharing_enabled: false,
            created_at: t0(),
            last_updated_at: t0(),
            tags: Tags::new(),
        },
    );
    for n in 0..SERVICES {
        let svc = id("svc", n);
        let name = format!("service-{n}");
        let tg = id("tg", n);
        out.push(
            "target-group",
            &tg,
            None,
            &TargetGroup {
                id: tg.clone(),
                name: format!("tg-{n}"),
                arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:targetgroup/{tg}"),
                target_type: TargetGroupType::Ip,
                config: TargetGroupConfig {
                    port: Some(8080),
                    protocol: Some(TargetGroupProtocol::Http),
                    vpc_identifier: Some("vpc-0123456789abcdef0".into()),
                    ..Default::default()
                },
                status: TargetGroupStatus::Active,
                created_at: t0(),
                last_updated_at: t0(),
                tags: Tags::new(),
            },
        );
        for t in 0..TARGETS_PER_GROUP {
            let ip = format!("10.{}.{}.{}", n >> 8 & 0xff, n & 0xff, t + 1);
            let key = target_key(&ip, Some(8080));
            out.push(
                TARGET_KIND,
                &format!("{tg}/{key}"),
                Some(&tg),
                &Target {
                    id: ip,
                    port: Some(8080),
                    registered_at: t0(),
                },
            );
        }
        out.push(
            "service",
            &svc,
            None,
            &Service {
                id: svc.clone(),
                name: name.clone(),
                arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{svc}"),
                auth_type: AuthType::None,
                custom_domain_name: None,
                certificate_arn: None,
                status: ServiceStatus::Active,
                dns_entry: service_dns_entry(&name, &svc, REGION, ACCOUNT),
                created_at: t0(),
                last_updated_at: t0(),
                tags: Tags::new(),
            },
        );
        let l = id("listener", n);
        let default_rule = id("rule", n * 16);
        out.push(
            "listener",
            &l,
            Some(&svc),
            &Listener {
                id: l.clone(),
                name: "http-80".into(),
                arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/{svc}/listener/{l}"),
                service_id: svc.clone(),
                service_arn: "x".into(),
                protocol: ListenerProtocol::Http,
                port: 80,
                default_action: forward(&tg),
                default_rule_id: default_rule.clone(),
                created_at: t0(),
                last_updated_at: t0(),
                tags: Tags::new(),
            },
        );
        out.push(
            "rule",
            &default_rule,
            Some(&l),
            &rule(&svc, &l, &default_rule, None, None, &tg),
        );
        for p in 1..=RULES {
            let r = id("rule", n * 16 + u32::from(p));
            let m = RuleMatch::HttpMatch(HttpMatch {
                method: Some("GET".into()),
                path_match: Some(PathMatch {
                    path: PathMatchType::Prefix(format!("/api/v{p}/")),
                    case_sensitive: false,
                }),
                header_matches: vec![HeaderMatch {
                    name: "x-tenant".into(),
                    value: HeaderMatchType::Exact(format!("tenant-{p}")),
                    case_sensitive: false,
                }],
            });
            out.push(
                "rule",
                &r,
                Some(&l),
                &rule(&svc, &l, &r, Some(p), Some(m), &tg),
            );
        }
        let snsa = id("snsa", n);
        out.push(
            "service-network-service-association",
            &snsa,
            Some(&sn),
            &ServiceNetworkServiceAssociation {
                id: snsa.clone(),
                arn: format!(
                    "arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetworkserviceassociation/{snsa}"
                ),
                status: AssociationStatus::Active,
                created_by: ACCOUNT.into(),
                created_at: t0(),
                service_id: svc.clone(),
                service_name: name.clone(),
                service_arn: "x".into(),
                service_network_id: sn.clone(),
                service_network_name: "bench".into(),
                service_network_arn: "x".into(),
                dns_entry: service_dns_entry(&name, &svc, REGION, ACCOUNT),
                custom_domain_name: None,
                tags: Tags::new(),
            },
        );
    }
    out.0
}

fn input() -> CompileInput {
    CompileInput {
        revision: 1,
        ctx: Context {
            partition: "aws".into(),
            region: REGION.into(),
            account_id: ACCOUNT.into(),
        },
        records: records(),
    }
}

/// Resident set size in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn benches(c: &mut Criterion) {
    let before = rss_kib();
    let input = input();
    let with_records = rss_kib();
    let snapshot: Snapshot = compile(&input).expect("the benchmark configuration compiles");
    let with_snapshot = rss_kib();
    assert_eq!(snapshot.target_groups.len(), SERVICES as usize);
    eprintln!(
        "compile/10k: {} records ({} MiB resident), the compiled snapshot adds {} MiB",
        input.records.len(),
        with_records.saturating_sub(before) / 1024,
        with_snapshot.saturating_sub(with_records) / 1024,
    );

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("10k_services_100k_targets", |b| {
        b.iter(|| compile(black_box(&input)).unwrap())
    });
    g.finish();

    // The request path's configuration lookups on the big snapshot: service by Host, listener by
    // port, then nine rules with path and header conditions fail before the tenth matches.
    let host = snapshot
        .hosts
        .values()
        .find(|s| s.name == "service-4242")
        .map(|s| s.dns_name.clone())
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(&host).unwrap());
    headers.insert("x-tenant", HeaderValue::from_static("tenant-10"));
    c.bench_function("lookup_and_route/10k_services", |b| {
        b.iter(|| {
            let service = snapshot.service_by_host(black_box(&host)).unwrap();
            let listener = service.listeners.get(&80).unwrap();
            let head = RequestHead {
                method: "GET",
                path: black_box("/api/v10/orders"),
                headers: &headers,
            };
            black_box(listener.routes.route(&head).action);
        })
    });
}

criterion_group!(compile_benches, benches);
criterion_main!(compile_benches);

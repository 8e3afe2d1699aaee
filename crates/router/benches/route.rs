//! Router benchmarks: a request that is checked against nine rules with path and header
//! conditions before the tenth matches, one that falls through all ten to the default action,
//! the weighted target-group pick, and path normalisation (an already-normal path, the common
//! case, and one that must be rewritten).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use trellis_model::Timestamp;
use trellis_model::resources::Tags;
use trellis_model::resources::rule::{
    HeaderMatch, HeaderMatchType, HttpMatch, PathMatch, PathMatchType, Rule, RuleAction, RuleMatch,
    WeightedTargetGroup,
};
use trellis_router::{RequestHead, RouteTable, WeightedGroups};

fn forward(tg: &str) -> RuleAction {
    RuleAction::Forward {
        target_groups: vec![WeightedTargetGroup {
            target_group_id: tg.to_string(),
            weight: 100,
        }],
    }
}

/// Ten rules (the per-listener quota). Every rule's path prefix matches `/api/...`, so each
/// rule is decided by its header conditions: a case-insensitive exact tenant and a
/// case-insensitive `contains` on the user agent, the most expensive comparison.
fn table() -> RouteTable {
    let rules: Vec<Rule> = (1..=10u16)
        .map(|i| Rule {
            id: format!("rule-{i:017}"),
            name: format!("rule{i}"),
            arn: String::new(),
            service_id: String::new(),
            listener_id: String::new(),
            is_default: false,
            priority: Some(i),
            rule_match: Some(RuleMatch::HttpMatch(HttpMatch {
                method: Some("GET".to_string()),
                path_match: Some(PathMatch {
                    path: PathMatchType::Prefix("/API/".to_string()),
                    case_sensitive: false,
                }),
                header_matches: vec![
                    HeaderMatch {
                        name: "User-Agent".to_string(),
                        value: HeaderMatchType::Contains("Mobile".to_string()),
                        case_sensitive: false,
                    },
                    HeaderMatch {
                        name: "X-Tenant".to_string(),
                        value: HeaderMatchType::Exact(format!("tenant-{i}")),
                        case_sensitive: false,
                    },
                ],
            })),
            action: forward(&format!("tg-{i:017}")),
            created_at: Timestamp::from_unix_millis(0),
            last_updated_at: Timestamp::from_unix_millis(0),
            tags: Tags::new(),
        })
        .collect();
    RouteTable::compile(&rules, "rule-default", &forward("tg-default"))
}

fn headers(tenant: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "host",
        HeaderValue::from_static("svc-0123.7d67968.vpc-lattice-svcs.us-west-2.on.aws"),
    );
    h.insert("accept", HeaderValue::from_static("application/json"));
    h.insert(
        "user-agent",
        HeaderValue::from_static(
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Mobile Safari/537.36",
        ),
    );
    h.insert("x-tenant", HeaderValue::from_static(tenant));
    h.insert(
        "x-amzn-requestid",
        HeaderValue::from_static("6f0d7c1e-3b5a-4a8e-9a55-0c2f3c1d2e4f"),
    );
    h
}

fn bench_route(c: &mut Criterion) {
    let table = table();
    let tenth = headers("TENANT-10");
    let nobody = headers("tenant-none");
    c.bench_function("route/tenth_rule_matches", |b| {
        b.iter(|| {
            let head = RequestHead {
                method: "GET",
                path: "/api/orders/12345",
                headers: &tenth,
            };
            black_box(table.route(black_box(&head)).rule_id.len())
        })
    });
    c.bench_function("route/default_after_ten_rules", |b| {
        b.iter(|| {
            let head = RequestHead {
                method: "GET",
                path: "/api/orders/12345",
                headers: &nobody,
            };
            black_box(table.route(black_box(&head)).rule_id.len())
        })
    });
    let groups = WeightedGroups::new((0..10).map(|i| (format!("tg-{i}"), 100 + i)));
    let mut r = 0x9e37_79b9u32;
    c.bench_function("pick/ten_groups", |b| {
        b.iter(|| {
            r = r.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            black_box(groups.pick(black_box(r)))
        })
    });
    for (name, path) in [
        ("normalize/already_normal", "/api/orders/12345/items?x=1"),
        ("normalize/rewritten", "/api/./orders//%31%32345/../items"),
    ] {
        let path = path.split('?').next().unwrap_or(path);
        c.bench_function(name, |b| {
            b.iter(|| black_box(trellis_router::path::normalize(black_box(path)).is_ok()))
        });
    }
}

criterion_group!(benches, bench_route);
criterion_main!(benches);

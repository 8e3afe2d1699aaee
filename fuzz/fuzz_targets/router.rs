//! The router: compile a rule table from arbitrary rules and route arbitrary request heads,
//! checked against a naive reference matcher (the one of `crates/router/tests/router/fuzz.rs`,
//! which states the documented semantics directly: allocating lower-case copies, a linear scan
//! of every header line, `windows` for substring search).
//!
//! Invariants beyond "no panic": the router picks the reference's rule for every request, the
//! routed action is the rule's action, and compiling the rules in reverse order changes nothing.
#![no_main]

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use trellis_model::Timestamp;
use trellis_model::resources::Tags;
use trellis_model::resources::rule::{
    HeaderMatch, HeaderMatchType, HttpMatch, PathMatch, PathMatchType, Rule, RuleAction, RuleMatch,
    WeightedTargetGroup,
};
use trellis_router::{Action, RequestHead, RouteTable};

const DEFAULT: &str = "default-rule";

#[derive(Arbitrary, Debug)]
enum Kind {
    Exact,
    Prefix,
    Contains,
}

#[derive(Arbitrary, Debug)]
struct HeaderInput {
    name: String,
    kind: Kind,
    value: String,
    case_sensitive: bool,
}

#[derive(Arbitrary, Debug)]
struct RuleInput {
    priority: u16,
    method: Option<String>,
    path: Option<(bool, String, bool)>,
    headers: Vec<HeaderInput>,
    fixed_status: u16,
}

#[derive(Arbitrary, Debug)]
struct RequestInput {
    method: String,
    path: String,
    headers: Vec<(String, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    rules: Vec<RuleInput>,
    default_first: bool,
    requests: Vec<RequestInput>,
}

fn rule(
    id: String,
    priority: Option<u16>,
    rule_match: Option<RuleMatch>,
    action: RuleAction,
) -> Rule {
    Rule {
        name: id.clone(),
        arn: format!("arn:aws:vpc-lattice:us-west-2:111122223333:service/svc/listener/l/rule/{id}"),
        id,
        service_id: "svc-0123456789abcdef0".to_string(),
        listener_id: "listener-0123456789abcdef0".to_string(),
        is_default: false,
        priority,
        rule_match,
        action,
        created_at: Timestamp::from_unix_millis(0),
        last_updated_at: Timestamp::from_unix_millis(0),
        tags: Tags::new(),
    }
}

fn default_action() -> RuleAction {
    RuleAction::Forward {
        target_groups: vec![WeightedTargetGroup {
            target_group_id: "tg-default000000000".to_string(),
            weight: 100,
        }],
    }
}

fn to_rule(index: usize, input: &RuleInput) -> Rule {
    let path_match = input
        .path
        .as_ref()
        .map(|(exact, p, case_sensitive)| PathMatch {
            path: if *exact {
                PathMatchType::Exact(p.clone())
            } else {
                PathMatchType::Prefix(p.clone())
            },
            case_sensitive: *case_sensitive,
        });
    let header_matches = input
        .headers
        .iter()
        .take(8)
        .map(|h| HeaderMatch {
            name: h.name.clone(),
            value: match h.kind {
                Kind::Exact => HeaderMatchType::Exact(h.value.clone()),
                Kind::Prefix => HeaderMatchType::Prefix(h.value.clone()),
                Kind::Contains => HeaderMatchType::Contains(h.value.clone()),
            },
            case_sensitive: h.case_sensitive,
        })
        .collect();
    rule(
        format!("rule-{index}"),
        Some(1 + input.priority % 2000),
        Some(RuleMatch::HttpMatch(HttpMatch {
            method: input.method.clone(),
            path_match,
            header_matches,
        })),
        RuleAction::FixedResponse {
            status_code: input.fixed_status,
        },
    )
}

/// The reference: evaluates the stored rules directly, as the documentation states the semantics.
fn reference<'a>(rules: &'a [Rule], method: &str, path: &str, headers: &HeaderMap) -> &'a str {
    let mut ordered: Vec<&Rule> = rules.iter().filter(|r| !r.is_default).collect();
    ordered.sort_by_key(|r| (r.priority.map_or(u32::MAX, u32::from), r.id.clone()));
    for rule in ordered {
        let Some(RuleMatch::HttpMatch(m)) = &rule.rule_match else {
            continue;
        };
        if reference_matches(m, method, path, headers) {
            return &rule.id;
        }
    }
    DEFAULT
}

fn reference_matches(m: &HttpMatch, method: &str, path: &str, headers: &HeaderMap) -> bool {
    if m.method.is_none() && m.path_match.is_none() && m.header_matches.is_empty() {
        return false;
    }
    if m.method.as_ref().is_some_and(|want| want != method) {
        return false;
    }
    if let Some(pm) = &m.path_match {
        let (kind, pattern) = match &pm.path {
            PathMatchType::Exact(p) => ("exact", p),
            PathMatchType::Prefix(p) => ("prefix", p),
        };
        if !compare(kind, pattern.as_bytes(), path.as_bytes(), pm.case_sensitive) {
            return false;
        }
    }
    m.header_matches.iter().all(|h| {
        let (kind, pattern) = match &h.value {
            HeaderMatchType::Exact(p) => ("exact", p),
            HeaderMatchType::Prefix(p) => ("prefix", p),
            HeaderMatchType::Contains(p) => ("contains", p),
        };
        let name = h.name.to_ascii_lowercase();
        headers.iter().any(|(n, v)| {
            n.as_str() == name && compare(kind, pattern.as_bytes(), v.as_bytes(), h.case_sensitive)
        })
    })
}

fn compare(kind: &str, pattern: &[u8], value: &[u8], case_sensitive: bool) -> bool {
    let (pattern, value) = if case_sensitive {
        (pattern.to_vec(), value.to_vec())
    } else {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    };
    match kind {
        "exact" => value == pattern,
        "prefix" => value.starts_with(&pattern),
        _ => pattern.is_empty() || value.windows(pattern.len()).any(|w| w == pattern),
    }
}

fuzz_target!(|input: Input| {
    // Priorities are unique per listener (the API enforces it): keep the first rule of each.
    let mut seen = std::collections::BTreeSet::new();
    let mut rules: Vec<Rule> = input
        .rules
        .iter()
        .take(24)
        .enumerate()
        .map(|(i, r)| to_rule(i, r))
        .filter(|r| seen.insert(r.priority))
        .collect();
    let mut default = rule(DEFAULT.to_string(), None, None, default_action());
    default.is_default = true;
    if input.default_first {
        rules.insert(0, default);
    } else {
        rules.push(default);
    }
    let table = RouteTable::compile(&rules, DEFAULT, &default_action());
    let mut reversed = rules.clone();
    reversed.reverse();
    let reversed_table = RouteTable::compile(&reversed, DEFAULT, &default_action());
    assert!(table.rule_ids().eq(reversed_table.rule_ids()));

    for request in input.requests.iter().take(16) {
        let mut headers = HeaderMap::new();
        for (name, value) in request.headers.iter().take(16) {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        let head = RequestHead {
            method: &request.method,
            path: &request.path,
            headers: &headers,
        };
        let route = table.route(&head);
        let want = reference(&rules, &request.method, &request.path, &headers);
        assert_eq!(route.rule_id, want, "{head:?}");
        assert_eq!(reversed_table.route(&head).rule_id, want);
        let action = rules
            .iter()
            .find(|r| r.id == want)
            .map(|r| {
                if r.is_default {
                    default_action()
                } else {
                    r.action.clone()
                }
            })
            .unwrap();
        assert_eq!(*route.action, Action::from(&action));
    }
});

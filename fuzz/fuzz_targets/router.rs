//! The router: compile a rule table from arbitrary rules and route arbitrary request heads,
//! checked against a naive reference matcher (`crates/router/tests/router/reference.rs`, included
//! by path), which states the documented semantics directly: allocating lower-case copies, a
//! linear scan of every header line, `windows` for substring search.
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

#[path = "../../crates/router/tests/router/reference.rs"]
mod reference;

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
        let want = reference::reference(&rules, &request.method, &request.path, &headers, DEFAULT);
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

//! Builders shared by the router tests: rules from a compact condition list, requests from
//! string tables, and a tiny deterministic PRNG (no `rand` dependency, fixed seeds).

use http::{HeaderMap, HeaderName, HeaderValue};
use trellis_model::Timestamp;
use trellis_model::resources::Tags;
use trellis_model::resources::rule::{
    HeaderMatch, HeaderMatchType, HttpMatch, PathMatch, PathMatchType, Rule, RuleAction, RuleMatch,
    WeightedTargetGroup,
};
use trellis_router::{RequestHead, RouteTable};

pub const DEFAULT: &str = "default-rule";

/// One condition of a rule; the `bool` is `caseSensitive`.
#[derive(Clone, Copy, Debug)]
pub enum C<'a> {
    Method(&'a str),
    PathExact(&'a str, bool),
    PathPrefix(&'a str, bool),
    HeaderExact(&'a str, &'a str, bool),
    HeaderPrefix(&'a str, &'a str, bool),
    HeaderContains(&'a str, &'a str, bool),
}

pub fn http_match(conditions: &[C<'_>]) -> HttpMatch {
    let mut m = HttpMatch {
        method: None,
        path_match: None,
        header_matches: Vec::new(),
    };
    for c in conditions {
        let header = |name: &str, value: HeaderMatchType, case_sensitive: bool| HeaderMatch {
            name: name.to_string(),
            value,
            case_sensitive,
        };
        match *c {
            C::Method(v) => m.method = Some(v.to_string()),
            C::PathExact(v, cs) => {
                m.path_match = Some(PathMatch {
                    path: PathMatchType::Exact(v.to_string()),
                    case_sensitive: cs,
                })
            }
            C::PathPrefix(v, cs) => {
                m.path_match = Some(PathMatch {
                    path: PathMatchType::Prefix(v.to_string()),
                    case_sensitive: cs,
                })
            }
            C::HeaderExact(n, v, cs) => {
                m.header_matches
                    .push(header(n, HeaderMatchType::Exact(v.to_string()), cs))
            }
            C::HeaderPrefix(n, v, cs) => {
                m.header_matches
                    .push(header(n, HeaderMatchType::Prefix(v.to_string()), cs))
            }
            C::HeaderContains(n, v, cs) => {
                m.header_matches
                    .push(header(n, HeaderMatchType::Contains(v.to_string()), cs))
            }
        }
    }
    m
}

/// A non-default rule answering with a fixed 404 (the action is irrelevant to matching).
pub fn rule(id: &str, priority: u16, conditions: &[C<'_>]) -> Rule {
    rule_with(
        id,
        Some(priority),
        Some(RuleMatch::HttpMatch(http_match(conditions))),
        RuleAction::FixedResponse { status_code: 404 },
    )
}

pub fn rule_with(
    id: &str,
    priority: Option<u16>,
    rule_match: Option<RuleMatch>,
    action: RuleAction,
) -> Rule {
    Rule {
        id: id.to_string(),
        name: id.to_string(),
        arn: format!("arn:aws:vpc-lattice:us-west-2:111122223333:service/svc/listener/l/rule/{id}"),
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

/// The listener's default rule as the store holds it.
pub fn default_rule() -> Rule {
    let mut r = rule_with(DEFAULT, None, None, default_action());
    r.is_default = true;
    r
}

pub fn default_action() -> RuleAction {
    RuleAction::Forward {
        target_groups: vec![WeightedTargetGroup {
            target_group_id: "tg-default000000000".to_string(),
            weight: 100,
        }],
    }
}

pub fn compile(rules: &[Rule]) -> RouteTable {
    RouteTable::compile(rules, DEFAULT, &default_action())
}

/// Header field lines in order; a name may repeat (each occurrence is one field line).
pub fn headers(lines: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in lines {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

/// A request for the tables.
#[derive(Clone, Copy, Debug)]
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a [u8])],
}

pub const fn req<'a>(
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a [u8])],
) -> Req<'a> {
    Req {
        method,
        path,
        headers,
    }
}

/// Routes `request` through `rules` and checks the winning rule's ID.
#[track_caller]
pub fn check(rules: &[Rule], request: Req<'_>, expected_rule_id: &str) {
    let table = compile(rules);
    let map = headers(request.headers);
    let head = RequestHead {
        method: request.method,
        path: request.path,
        headers: &map,
    };
    let got = table.route(&head).rule_id;
    assert_eq!(
        got, expected_rule_id,
        "request {request:?} against {rules:#?}"
    );
}

/// xorshift64* (Vigna): small, fast, and good enough for sampling tests.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The high half, which has the best statistical quality.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform-enough in `0..n` for test data (n is tiny next to 2^32).
    pub fn below(&mut self, n: usize) -> usize {
        ((u64::from(self.next_u32()) * n as u64) >> 32) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

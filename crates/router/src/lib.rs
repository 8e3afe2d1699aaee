//! Rule evaluation for one listener, pure and benchmarkable: a request head in, the action of
//! the first matching rule (or the default action) out, and the weighted choice of a target group.
//!
//! A [`RouteTable`] is compiled once per listener when a snapshot is built (rules sorted by
//! priority, match strings pre-lowercased where the comparison is case-insensitive, header names
//! parsed, substring-search tables built) so that routing a request does no allocation, no
//! sorting and no lower-casing of request data.
//!
//! # Matching semantics (reference §4.1–4.2)
//!
//! * Non-default rules are evaluated in ascending priority; the first rule whose conditions
//!   *all* match wins; when none does, the listener's default action applies.
//! * `method` is an exact, case-sensitive comparison.
//! * `pathMatch` (`exact` or `prefix`) compares the request path **without the query string**
//!   (what [`http::Uri::path`] returns; gRPC requests route on their HTTP/2 `:path`, which is the
//!   same thing). The path compared is the proxy's normal form ([`path::normalize`]: dot
//!   segments removed, unreserved escapes decoded, slashes merged), the same path the target
//!   receives and auth policies name; this module compares it as given. A prefix is a plain string prefix with no segment awareness: `/api`
//!   matches `/api`, `/api/x` and `/apix`. Because the path never contains `?`, a pattern
//!   containing `?` (which the API's pattern allows) can never match.
//! * `headerMatches`: the header name is compared case-insensitively (as HTTP requires); the
//!   value by `exact`, `prefix` or `contains`. A header that appears several times matches when
//!   *any* of its field lines matches; a field line is compared whole (a comma-separated list on
//!   one line is not split). A header that is absent never matches.
//! * "Case-insensitive" means ASCII case folding only (`A`–`Z` ≡ `a`–`z`). Any other byte,
//!   including every byte of a non-ASCII UTF-8 character and raw `obs-text` bytes in a header
//!   value, must be equal byte for byte: `É` does not match `é`. Comparisons work on bytes, so
//!   they never panic on a character boundary.
//! * A non-default rule without any condition cannot be created (the API rejects it); should
//!   one reach the router anyway it never matches, so a corrupt document can't swallow all
//!   traffic. Likewise a header condition whose name is not a valid HTTP header name never
//!   matches.

pub mod path;

use http::header::{GetAll, ValueIter};
use http::{HeaderMap, HeaderName, HeaderValue};
use trellis_model::resources::rule::{
    HeaderMatchType, HttpMatch, PathMatchType, Rule, RuleAction, RuleMatch,
};

/// What the router needs to know about a request.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// The method as received (compared case-sensitively, as Lattice does).
    pub method: &'a str,
    /// The path without the query string.
    pub path: &'a str,
    pub headers: &'a http::HeaderMap,
}

/// The outcome of routing: forward over weighted target groups, or a fixed response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Forward(WeightedGroups),
    FixedResponse { status: u16 },
}

impl From<&RuleAction> for Action {
    fn from(action: &RuleAction) -> Action {
        match action {
            RuleAction::Forward { target_groups } => Action::Forward(WeightedGroups::new(
                target_groups
                    .iter()
                    .map(|t| (t.target_group_id.clone(), u32::from(t.weight))),
            )),
            RuleAction::FixedResponse { status_code } => Action::FixedResponse {
                status: *status_code,
            },
        }
    }
}

/// Target groups with their weights; groups of weight 0 never receive traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedGroups {
    groups: Vec<(String, u32)>,
    /// The sum of the weights, in u64 so that no number of u32 weights can overflow it.
    total: u64,
}

impl WeightedGroups {
    pub fn new(groups: impl IntoIterator<Item = (String, u32)>) -> WeightedGroups {
        let groups: Vec<(String, u32)> = groups.into_iter().collect();
        let total = groups.iter().map(|(_, w)| u64::from(*w)).sum();
        WeightedGroups { groups, total }
    }

    /// The groups in action order with their weights.
    pub fn groups(&self) -> &[(String, u32)] {
        &self.groups
    }

    /// The sum of the weights (0 when no group can receive traffic).
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// Picks a group for a uniformly random `r` (any u32): group i is chosen with probability
    /// weight_i / total. `None` when every weight is 0.
    ///
    /// Deterministic in `r`: `r` is scaled onto `[0, total)` as `(r * total) >> 32` and the group
    /// whose cumulative weight range holds that point wins. Over all 2^32 values of `r` each
    /// group is chosen for a share that differs from `weight / total` by less than one value of
    /// the scaled point, and a group of weight 0 owns an empty range, so it is never chosen.
    pub fn pick(&self, r: u32) -> Option<&str> {
        if self.total == 0 {
            return None;
        }
        // u128 keeps the product exact even for totals above 2^32 (possible only through `new`
        // with huge weights; Lattice weights are at most 999 × 10 groups).
        let point = ((u128::from(r) * u128::from(self.total)) >> 32) as u64;
        let mut upper = 0u64;
        for (id, weight) in &self.groups {
            upper += u64::from(*weight);
            if point < upper {
                return Some(id);
            }
        }
        // Unreachable: point < total and the last upper bound is total.
        None
    }
}

/// The matched rule and its action.
#[derive(Debug)]
pub struct Route<'a> {
    /// The ID of the rule that matched (the default rule's ID when none did).
    pub rule_id: &'a str,
    pub action: &'a Action,
}

/// The compiled rules of one listener.
#[derive(Clone, Debug)]
pub struct RouteTable {
    /// Non-default rules in evaluation order (ascending priority).
    rules: Vec<CompiledRule>,
    /// Every distinct header name the rules' conditions test; a condition refers to its name by
    /// index (`HeaderCondition::slot`), so that routing looks each name up in the request's
    /// `HeaderMap` once however many rules test it.
    header_names: Vec<HeaderName>,
    default_rule_id: String,
    default_action: Action,
}

/// How many distinct header names a route keeps the look-ups of (on the stack). Ten rules of
/// one or two header conditions each fit; names past this many are looked up per condition,
/// which is correct, only slower.
const CACHED_NAMES: usize = 16;

/// The request's field lines for each header name of the table, looked up on first use: a
/// table whose ten rules all test `x-tenant` hashes and probes for it once, not ten times.
struct Fields<'h, 't> {
    headers: &'h HeaderMap,
    names: &'t [HeaderName],
    found: [Option<GetAll<'h, HeaderValue>>; CACHED_NAMES],
}

impl<'h, 't> Fields<'h, 't> {
    fn new(headers: &'h HeaderMap, names: &'t [HeaderName]) -> Fields<'h, 't> {
        Fields {
            headers,
            names,
            found: [const { None }; CACHED_NAMES],
        }
    }

    /// The field lines of the name in `slot`, in the order received (none when absent).
    fn lines(&mut self, slot: usize) -> ValueIter<'h, HeaderValue> {
        let (headers, name) = (self.headers, &self.names[slot]);
        match self.found.get_mut(slot) {
            Some(found) => found.get_or_insert_with(|| headers.get_all(name)).iter(),
            None => headers.get_all(name).iter(),
        }
    }
}

impl RouteTable {
    /// Compiles the listener's rules (the default rule among them, `is_default`), ordering the
    /// others by ascending priority. `default_action` is the listener's default action, used
    /// when no rule matches.
    pub fn compile(
        rules: &[Rule],
        default_rule_id: &str,
        default_action: &RuleAction,
    ) -> RouteTable {
        let mut compiled: Vec<CompiledRule> = rules
            .iter()
            .filter(|r| !r.is_default)
            .map(CompiledRule::compile)
            .collect();
        // Priorities are unique per listener; the ID breaks ties anyway so that evaluation order
        // never depends on the order the store returned the rules in. A rule without priority
        // (impossible for a non-default rule) goes last.
        compiled.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
        // Names are already lower case (`HeaderName` normalises them), so equal names share a
        // slot whatever case the rules spelled them in.
        let mut header_names: Vec<HeaderName> = Vec::new();
        for rule in &mut compiled {
            let Conditions::All { headers, .. } = &mut rule.conditions else {
                continue;
            };
            for condition in headers {
                condition.slot = match header_names.iter().position(|n| *n == condition.name) {
                    Some(slot) => slot,
                    None => {
                        header_names.push(condition.name.clone());
                        header_names.len() - 1
                    }
                };
            }
        }
        RouteTable {
            rules: compiled,
            header_names,
            default_rule_id: default_rule_id.to_string(),
            default_action: Action::from(default_action),
        }
    }

    /// The first non-default rule (ascending priority) whose conditions all match, else the default.
    pub fn route(&self, head: &RequestHead<'_>) -> Route<'_> {
        let mut fields = Fields::new(head.headers, &self.header_names);
        for rule in &self.rules {
            if rule.matches(head, &mut fields) {
                return Route {
                    rule_id: &rule.id,
                    action: &rule.action,
                };
            }
        }
        Route {
            rule_id: &self.default_rule_id,
            action: &self.default_action,
        }
    }

    /// The IDs of the non-default rules in evaluation order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// The ID of the listener's default rule.
    pub fn default_rule_id(&self) -> &str {
        &self.default_rule_id
    }

    /// The listener's default action.
    pub fn default_action(&self) -> &Action {
        &self.default_action
    }
}

/// One non-default rule, ready to evaluate.
#[derive(Clone, Debug)]
struct CompiledRule {
    id: String,
    /// `u32` so that a missing priority sorts after every real one.
    priority: u32,
    conditions: Conditions,
    action: Action,
}

#[derive(Clone, Debug)]
enum Conditions {
    /// The rule can never match (no conditions at all, or an unusable header name).
    Never,
    All {
        method: Option<String>,
        path: Option<Pattern>,
        headers: Vec<HeaderCondition>,
    },
}

#[derive(Clone, Debug)]
struct HeaderCondition {
    name: HeaderName,
    /// The index of `name` in the table's `header_names`.
    slot: usize,
    value: Pattern,
}

impl CompiledRule {
    fn compile(rule: &Rule) -> CompiledRule {
        let conditions = match &rule.rule_match {
            Some(RuleMatch::HttpMatch(m)) => Conditions::compile(m),
            None => Conditions::Never,
        };
        CompiledRule {
            id: rule.id.clone(),
            priority: rule.priority.map_or(u32::MAX, u32::from),
            conditions,
            action: Action::from(&rule.action),
        }
    }

    fn matches(&self, head: &RequestHead<'_>, fields: &mut Fields<'_, '_>) -> bool {
        let Conditions::All {
            method,
            path,
            headers,
        } = &self.conditions
        else {
            return false;
        };
        // Cheapest conditions first; all must hold, so the order does not change the outcome.
        if let Some(m) = method
            && m != head.method
        {
            return false;
        }
        if let Some(p) = path
            && !p.matches(head.path.as_bytes())
        {
            return false;
        }
        headers
            .iter()
            .all(|h| fields.lines(h.slot).any(|v| h.value.matches(v.as_bytes())))
    }
}

impl Conditions {
    fn compile(m: &HttpMatch) -> Conditions {
        if m.method.is_none() && m.path_match.is_none() && m.header_matches.is_empty() {
            return Conditions::Never;
        }
        let path = m.path_match.as_ref().map(|p| match &p.path {
            PathMatchType::Exact(s) => Pattern::new(Kind::Exact, s, p.case_sensitive),
            PathMatchType::Prefix(s) => Pattern::new(Kind::Prefix, s, p.case_sensitive),
        });
        let mut headers = Vec::with_capacity(m.header_matches.len());
        for h in &m.header_matches {
            // `from_bytes` lower-cases the name, which is how `HeaderMap` stores names, so the
            // lookup is case-insensitive.
            let Ok(name) = HeaderName::from_bytes(h.name.as_bytes()) else {
                return Conditions::Never;
            };
            let value = match &h.value {
                HeaderMatchType::Exact(s) => Pattern::new(Kind::Exact, s, h.case_sensitive),
                HeaderMatchType::Prefix(s) => Pattern::new(Kind::Prefix, s, h.case_sensitive),
                HeaderMatchType::Contains(s) => Pattern::new(Kind::Contains, s, h.case_sensitive),
            };
            // The slot is assigned when the whole table is compiled.
            headers.push(HeaderCondition {
                name,
                slot: 0,
                value,
            });
        }
        // All conditions must hold, so evaluate the cheap comparisons first: a failing exact
        // or prefix test spares a substring search (the sort is stable; order is not semantic).
        headers.sort_by_key(|h| h.value.kind == Kind::Contains);
        Conditions::All {
            method: m.method.clone(),
            path,
            headers,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Contains,
}

/// A string condition on bytes. When case-insensitive, `bytes` is stored ASCII-lower-cased so
/// that only the request side needs folding.
#[derive(Clone, Debug)]
struct Pattern {
    kind: Kind,
    bytes: Box<[u8]>,
    case_sensitive: bool,
    /// For `Contains`: the Knuth–Morris–Pratt failure table of `bytes`, so that a search is
    /// linear in the header value whatever the pattern (a naive search over a 60 KB header with
    /// a 200-byte adversarial pattern would cost millions of comparisons per request).
    failure: Box<[usize]>,
}

impl Pattern {
    fn new(kind: Kind, pattern: &str, case_sensitive: bool) -> Pattern {
        let bytes: Box<[u8]> = if case_sensitive {
            pattern.as_bytes().into()
        } else {
            pattern.as_bytes().to_ascii_lowercase().into()
        };
        let failure = if kind == Kind::Contains {
            kmp_failure(&bytes)
        } else {
            Box::default()
        };
        Pattern {
            kind,
            bytes,
            case_sensitive,
            failure,
        }
    }

    fn matches(&self, s: &[u8]) -> bool {
        let p = &*self.bytes;
        match self.kind {
            Kind::Exact => self.eq(s, p),
            Kind::Prefix => s.len() >= p.len() && self.eq(&s[..p.len()], p),
            Kind::Contains => self.contains(s),
        }
    }

    /// `s` equals the (already folded) pattern bytes `p`.
    fn eq(&self, s: &[u8], p: &[u8]) -> bool {
        // A byte comparison first, case-insensitive or not: requests usually spell a path or a
        // value the way the rule does, and comparing bytes is several times cheaper than
        // folding them one by one.
        s == p
            || (!self.case_sensitive
                && s.len() == p.len()
                && s.iter().zip(p).all(|(a, b)| a.to_ascii_lowercase() == *b))
    }

    fn contains(&self, hay: &[u8]) -> bool {
        let p = &*self.bytes;
        if p.is_empty() {
            return true;
        }
        if hay.len() < p.len() {
            return false;
        }
        let mut k = 0;
        for &b in hay {
            let b = if self.case_sensitive {
                b
            } else {
                b.to_ascii_lowercase()
            };
            while k > 0 && b != p[k] {
                k = self.failure[k - 1];
            }
            if b == p[k] {
                k += 1;
                if k == p.len() {
                    return true;
                }
            }
        }
        false
    }
}

/// `failure[i]` is the length of the longest proper prefix of `p[..=i]` that is also its suffix.
fn kmp_failure(p: &[u8]) -> Box<[usize]> {
    let mut failure = vec![0; p.len()];
    let mut k = 0;
    for i in 1..p.len() {
        while k > 0 && p[i] != p[k] {
            k = failure[k - 1];
        }
        if p[i] == p[k] {
            k += 1;
        }
        failure[i] = k;
    }
    failure.into_boxed_slice()
}

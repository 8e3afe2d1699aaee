//! The naive reference matcher the router is checked against, written independently of it
//! (allocating lower-case copies, a linear scan of every header line, `windows` for substring
//! search). Shared by the fuzz-style test next to it and by the `router` cargo-fuzz target, which
//! includes this file by path.

use http::HeaderMap;
use trellis_model::resources::rule::{HeaderMatchType, HttpMatch, PathMatchType, Rule, RuleMatch};

/// Evaluates the stored rules directly, as the documentation states the semantics: the id of the
/// first matching rule by priority, else `default`.
pub fn reference<'a>(
    rules: &'a [Rule],
    method: &str,
    path: &str,
    headers: &HeaderMap,
    default: &'a str,
) -> &'a str {
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
    default
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

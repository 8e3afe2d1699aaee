//! The request shape of a rule's match and its validation (reference §4.1), and the checks on a
//! rule's name and priority. Validation reports each problem as a field error with its wire path
//! (`rules[0].match.httpMatch.headerMatches[1].name`) and yields the stored [`RuleMatch`].

use serde::{Deserialize, Serialize};
use trellis_model::Checks;
use trellis_model::resources::rule::{
    HeaderMatch, HeaderMatchType, HttpMatch, PathMatch, PathMatchType, RuleMatch,
};
use trellis_model::resources::target_group::is_lattice_path;

use crate::actions::one_member;

/// A `RuleMatch` union as a request sends it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleMatchInput {
    pub http_match: Option<HttpMatchInput>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpMatchInput {
    pub method: Option<String>,
    pub path_match: Option<PathMatchInput>,
    pub header_matches: Option<Vec<HeaderMatchInput>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatchInput {
    #[serde(rename = "match")]
    pub path: Option<PathMatchTypeInput>,
    pub case_sensitive: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatchTypeInput {
    pub exact: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatchInput {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub value: Option<HeaderMatchTypeInput>,
    pub case_sensitive: Option<bool>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatchTypeInput {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub contains: Option<String>,
}

/// A rule name: 3–63, the resource-name pattern, not starting with `rule-`.
pub fn check_rule_name(c: &mut Checks, field: &str, v: &str) -> bool {
    c.resource_name(field, v, 3, 63, Some("rule-"))
}

/// A rule priority: 1–2000.
pub fn check_priority(c: &mut Checks, field: &str, v: i64) -> Option<u16> {
    c.range(field, v, 1, 2000).then_some(v as u16)
}

/// Whether `s` is an RFC 9110 token (`tchar`s): what HTTP methods and header names are made of.
pub fn is_http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub const PATH_MATCH_PATTERN: &str = "/[a-zA-Z0-9@:%_+.~#?&/=-]*";

impl RuleMatchInput {
    /// Validates the match at `path` (`match`, `rules[0].match`).
    pub fn check(&self, c: &mut Checks, path: &str) -> Option<RuleMatch> {
        let (_, http) = one_member(c, path, &[("httpMatch", self.http_match.as_ref())])?;
        http.check(c, &format!("{path}.httpMatch"))
            .map(RuleMatch::HttpMatch)
    }
}

impl HttpMatchInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<HttpMatch> {
        let mut ok = true;
        // The model allows 0–16 characters, and an empty method is how clients say "any method":
        // the Terraform provider always sends `"method": ""` for a rule without one. It is the
        // same as no method condition, and is stored (and answered) as absent.
        let method = self.method.as_deref().filter(|m| !m.is_empty());
        if method.is_none() && self.path_match.is_none() && self.header_matches.is_none() {
            c.fail(path, format!("Value at '{path}' must specify at least one condition: method, pathMatch or headerMatches"));
            return None;
        }
        if let Some(m) = method {
            let field = format!("{path}.method");
            // A non-token method could never match a request, so Trellis rejects it instead of
            // storing a dead rule.
            ok &= c.length(&field, m, 0, 16)
                && c.pattern(
                    &field,
                    m,
                    is_http_token(m),
                    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}",
                );
        }
        let path_match = match &self.path_match {
            None => None,
            Some(pm) => {
                let r = pm.check(c, &format!("{path}.pathMatch"));
                ok &= r.is_some();
                r
            }
        };
        let mut header_matches = Vec::new();
        if let Some(list) = &self.header_matches {
            let list_path = format!("{path}.headerMatches");
            if c.count(&list_path, list.len(), 1, 5) {
                for (i, h) in list.iter().enumerate() {
                    match h.check(c, &format!("{list_path}[{i}]")) {
                        Some(h) => header_matches.push(h),
                        None => ok = false,
                    }
                }
            } else {
                ok = false;
            }
        }
        ok.then(|| HttpMatch {
            method: method.map(str::to_string),
            path_match,
            header_matches,
        })
    }
}

impl PathMatchInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<PathMatch> {
        let match_path = format!("{path}.match");
        let Some(m) = &self.path else {
            c.missing(&match_path);
            return None;
        };
        let (member, value) = one_member(
            c,
            &match_path,
            &[
                ("exact", m.exact.as_deref()),
                ("prefix", m.prefix.as_deref()),
            ],
        )?;
        let field = format!("{match_path}.{member}");
        if !(c.length(&field, value, 1, 200)
            && c.pattern(&field, value, is_lattice_path(value), PATH_MATCH_PATTERN))
        {
            return None;
        }
        let value = value.to_string();
        Some(PathMatch {
            path: if member == "exact" {
                PathMatchType::Exact(value)
            } else {
                PathMatchType::Prefix(value)
            },
            case_sensitive: self.case_sensitive.unwrap_or(false),
        })
    }
}

impl HeaderMatchInput {
    fn check(&self, c: &mut Checks, path: &str) -> Option<HeaderMatch> {
        let name_path = format!("{path}.name");
        let name = match &self.name {
            None => {
                c.missing(&name_path);
                None
            }
            // The model allows 1–100 characters; the name must also be a valid HTTP header name
            // for the data plane to compare it with anything.
            Some(n) => (c.length(&name_path, n, 1, 100)
                && c.pattern(
                    &name_path,
                    n,
                    is_http_token(n),
                    "[!#$%&'*+.^_`|~0-9A-Za-z-]+",
                ))
            .then(|| n.clone()),
        };
        let match_path = format!("{path}.match");
        let value = match &self.value {
            None => {
                c.missing(&match_path);
                None
            }
            Some(m) => one_member(
                c,
                &match_path,
                &[
                    ("exact", m.exact.as_deref()),
                    ("prefix", m.prefix.as_deref()),
                    ("contains", m.contains.as_deref()),
                ],
            )
            .and_then(|(member, v)| {
                c.length(&format!("{match_path}.{member}"), v, 1, 200)
                    .then(|| match member {
                        "exact" => HeaderMatchType::Exact(v.to_string()),
                        "prefix" => HeaderMatchType::Prefix(v.to_string()),
                        _ => HeaderMatchType::Contains(v.to_string()),
                    })
            }),
        };
        Some(HeaderMatch {
            name: name?,
            value: value?,
            case_sensitive: self.case_sensitive.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn fields(c: Checks) -> Vec<String> {
        match c.finish() {
            Ok(()) => vec![],
            Err(e) => e.fields.into_iter().map(|f| f.name).collect(),
        }
    }

    fn check_match(v: Value) -> (Option<RuleMatch>, Vec<String>) {
        let input: RuleMatchInput = serde_json::from_value(v).unwrap();
        let mut c = Checks::new();
        let out = input.check(&mut c, "match");
        (out, fields(c))
    }

    /// (match JSON, expected failing fields)
    #[test]
    fn match_validation_table() {
        let long = format!("/{}", "a".repeat(200));
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"httpMatch": {"method": "GET"}}), vec![]),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "/api"}}}}),
                vec![],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"exact": "/a/b?c=d&e=f#x"}, "caseSensitive": true}}}),
                vec![],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x-env", "match": {"contains": "blue"}}]}}),
                vec![],
            ),
            (json!({}), vec!["match"]),
            (json!({"httpMatch": {}}), vec!["match.httpMatch"]),
            (
                json!({"httpMatch": {"method": "GETTINGTOOLONGXXX"}}),
                vec!["match.httpMatch.method"],
            ),
            // An empty method is no method condition (what the Terraform provider sends)...
            (
                json!({"httpMatch": {"method": "", "pathMatch": {"match": {"prefix": "/api"}}}}),
                vec![],
            ),
            // ...so on its own it leaves the match without any condition.
            (
                json!({"httpMatch": {"method": ""}}),
                vec!["match.httpMatch"],
            ),
            (
                json!({"httpMatch": {"method": "GE T"}}),
                vec!["match.httpMatch.method"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {}}}),
                vec!["match.httpMatch.pathMatch.match"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {}}}}),
                vec!["match.httpMatch.pathMatch.match"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"exact": "/a", "prefix": "/a"}}}}),
                vec!["match.httpMatch.pathMatch.match"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"exact": ""}}}}),
                vec!["match.httpMatch.pathMatch.match.exact"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "api"}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "/a b"}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": "/*"}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"pathMatch": {"match": {"prefix": long}}}}),
                vec!["match.httpMatch.pathMatch.match.prefix"],
            ),
            (
                json!({"httpMatch": {"headerMatches": []}}),
                vec!["match.httpMatch.headerMatches"],
            ),
            (
                json!({"httpMatch": {"headerMatches": (0..6).map(|i| json!({"name": format!("h{i}"), "match": {"exact": "v"}})).collect::<Vec<_>>()}}),
                vec!["match.httpMatch.headerMatches"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "", "match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "h".repeat(101), "match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "h".repeat(100), "match": {"exact": "v"}}]}}),
                vec![],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "bad name", "match": {"exact": "v"}}]}}),
                vec!["match.httpMatch.headerMatches[0].name"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x"}]}}),
                vec!["match.httpMatch.headerMatches[0].match"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {}}]}}),
                vec!["match.httpMatch.headerMatches[0].match"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {"exact": "a", "contains": "b"}}]}}),
                vec!["match.httpMatch.headerMatches[0].match"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {"prefix": ""}}]}}),
                vec!["match.httpMatch.headerMatches[0].match.prefix"],
            ),
            (
                json!({"httpMatch": {"headerMatches": [{"name": "x", "match": {"contains": "v".repeat(201)}}]}}),
                vec!["match.httpMatch.headerMatches[0].match.contains"],
            ),
            (
                json!({"httpMatch": {"method": "GE T", "pathMatch": {"match": {}}, "headerMatches": [{"name": "ok", "match": {"exact": "v"}}, {}]}}),
                vec![
                    "match.httpMatch.method",
                    "match.httpMatch.pathMatch.match",
                    "match.httpMatch.headerMatches[1].name",
                    "match.httpMatch.headerMatches[1].match",
                ],
            ),
        ];
        for (v, want) in cases {
            let (out, got) = check_match(v.clone());
            assert_eq!(got, want, "{v}");
            assert_eq!(out.is_some(), want.is_empty(), "{v}");
        }
    }

    /// The Terraform provider sends `"method": ""` for a rule without a method: it is stored as
    /// no method condition, so reads answer without `method` (and match every method).
    #[test]
    fn empty_method_is_no_method_condition() {
        let (out, errors) = check_match(
            json!({"httpMatch": {"method": "", "pathMatch": {"match": {"prefix": "/fn"}}, "headerMatches": null}}),
        );
        assert_eq!(errors, Vec::<String>::new());
        let RuleMatch::HttpMatch(m) = out.unwrap();
        assert_eq!(m.method, None);
    }

    #[test]
    fn match_defaults_case_insensitive() {
        let (out, _) = check_match(
            json!({"httpMatch": {"method": "POST", "pathMatch": {"match": {"prefix": "/api"}}, "headerMatches": [{"name": "x-a", "match": {"exact": "1"}}]}}),
        );
        let RuleMatch::HttpMatch(m) = out.unwrap();
        assert_eq!(m.method.as_deref(), Some("POST"));
        assert_eq!(
            m.path_match,
            Some(PathMatch {
                path: PathMatchType::Prefix("/api".into()),
                case_sensitive: false
            })
        );
        assert_eq!(
            m.header_matches,
            vec![HeaderMatch {
                name: "x-a".into(),
                value: HeaderMatchType::Exact("1".into()),
                case_sensitive: false
            }]
        );
    }

    #[test]
    fn name_and_priority_table() {
        for (name, ok) in [
            ("abc", true),
            ("rule-one", false),
            ("ab", false),
            ("a".repeat(63).as_str(), true),
            ("a".repeat(64).as_str(), false),
            ("Abc", false),
            ("a--b", false),
        ] {
            let mut c = Checks::new();
            assert_eq!(check_rule_name(&mut c, "name", name), ok, "{name}");
        }
        for (p, ok) in [
            (0, false),
            (1, true),
            (2000, true),
            (2001, false),
            (-5, false),
        ] {
            let mut c = Checks::new();
            assert_eq!(check_priority(&mut c, "priority", p).is_some(), ok, "{p}");
        }
    }
}

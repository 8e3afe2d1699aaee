//! Fuzz-style robustness: random rule tables and random requests (fixed seeds), checked against
//! a naive reference matcher written independently of the router (allocating lower-case copies,
//! a linear scan of every header line, `windows` for substring search). The router must never
//! panic and must agree with the reference on every request.

use http::{HeaderMap, HeaderName, HeaderValue};
use trellis_model::resources::rule::{
    HeaderMatch, HeaderMatchType, HttpMatch, PathMatch, PathMatchType, Rule, RuleAction, RuleMatch,
};
use trellis_router::RequestHead;

use crate::reference::reference;
use crate::support::{DEFAULT, XorShift, compile, default_rule, rule_with};

/// Characters that make collisions likely: mixed case, repeats for overlapping substrings,
/// separators, non-ASCII, and `?`/`%` that the path pattern allows.
const ALPHABET: &[char] = &[
    'a', 'A', 'b', 'B', 'a', 'b', '/', '-', ' ', ',', '%', '?', 'é', 'É', 'ß',
];
const METHODS: &[&str] = &["GET", "get", "POST", "PUT", "PURGE", "G"];
const HEADER_NAMES: &[&str] = &["x-a", "X-A", "x-b", "User-Agent", "x-aa"];

fn string(rng: &mut XorShift, alphabet: &[char], min: usize, max: usize) -> String {
    let len = min + rng.below(max - min + 1);
    (0..len).map(|_| *rng.choose(alphabet)).collect()
}

/// Any Unicode scalar value, weighted towards ASCII.
fn wild_string(rng: &mut XorShift, max: usize) -> String {
    let len = rng.below(max + 1);
    (0..len)
        .map(|_| {
            let limit = *rng.choose(&[0x80u32, 0x800, 0x1_0000, 0x11_0000]);
            char::from_u32(rng.below(limit as usize) as u32).unwrap_or('\u{fffd}')
        })
        .collect()
}

fn random_match(rng: &mut XorShift, wild: bool) -> HttpMatch {
    let text = |rng: &mut XorShift, min| {
        if wild && rng.chance(30) {
            wild_string(rng, 6)
        } else {
            string(rng, ALPHABET, min, 4)
        }
    };
    let method = rng.chance(40).then(|| {
        if wild && rng.chance(30) {
            wild_string(rng, 4)
        } else {
            rng.choose(METHODS).to_string()
        }
    });
    let path_match = rng.chance(60).then(|| {
        let p = format!("/{}", text(rng, 0));
        PathMatch {
            path: if rng.chance(50) {
                PathMatchType::Exact(p)
            } else {
                PathMatchType::Prefix(p)
            },
            case_sensitive: rng.chance(50),
        }
    });
    let header_matches = (0..rng.below(6))
        .map(|_| {
            let value = text(rng, 1);
            HeaderMatch {
                name: if wild && rng.chance(20) {
                    wild_string(rng, 5)
                } else {
                    rng.choose(HEADER_NAMES).to_string()
                },
                value: match rng.below(3) {
                    0 => HeaderMatchType::Exact(value),
                    1 => HeaderMatchType::Prefix(value),
                    _ => HeaderMatchType::Contains(value),
                },
                case_sensitive: rng.chance(50),
            }
        })
        .collect();
    HttpMatch {
        method,
        path_match,
        header_matches,
    }
}

fn random_table(rng: &mut XorShift, wild: bool) -> Vec<Rule> {
    let count = rng.below(11);
    // Unique priorities in 1..=2000 (a handful of draws rarely collide; skip collisions).
    let mut priorities: Vec<u16> = Vec::new();
    while priorities.len() < count {
        let p = 1 + rng.below(2000) as u16;
        if !priorities.contains(&p) {
            priorities.push(p);
        }
    }
    let mut rules: Vec<Rule> = priorities
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            rule_with(
                &format!("rule-{i}"),
                Some(p),
                Some(RuleMatch::HttpMatch(random_match(rng, wild))),
                RuleAction::FixedResponse { status_code: 404 },
            )
        })
        .collect();
    let at = rng.below(rules.len() + 1);
    rules.insert(at, default_rule());
    rules
}

fn random_headers(rng: &mut XorShift, wild: bool) -> HeaderMap {
    let mut map = HeaderMap::new();
    for _ in 0..rng.below(6) {
        let name = if wild && rng.chance(20) {
            wild_string(rng, 5)
        } else {
            rng.choose(HEADER_NAMES).to_string()
        };
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let mut value = string(rng, ALPHABET, 0, 8).into_bytes();
        // Raw obs-text bytes (not UTF-8) are legal in header values.
        if rng.chance(15) {
            value.insert(
                rng.below(value.len() + 1),
                *rng.choose(&[0x80u8, 0xe9, 0xff]),
            );
        }
        let Ok(value) = HeaderValue::from_bytes(&value) else {
            continue;
        };
        map.append(name, value);
    }
    map
}

/// Flips the ASCII case of some characters: matches case-insensitive patterns, and breaks
/// case-sensitive ones.
fn flip_case(rng: &mut XorShift, s: &str) -> String {
    s.chars()
        .map(|c| match (rng.chance(30), c.is_ascii_lowercase()) {
            (false, _) => c,
            (true, true) => c.to_ascii_uppercase(),
            (true, false) => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A request built to (nearly) satisfy one rule of the table: its method, a path from its path
/// pattern and header lines from its header patterns, each sometimes perturbed, so that a large
/// share of requests land on rules or just miss them.
fn near_request(rng: &mut XorShift, rules: &[Rule]) -> (String, String, HeaderMap) {
    let rule = rng.choose(rules);
    let Some(RuleMatch::HttpMatch(m)) = &rule.rule_match else {
        return (String::from("GET"), String::from("/"), HeaderMap::new());
    };
    let mut method = m
        .method
        .clone()
        .unwrap_or_else(|| rng.choose(METHODS).to_string());
    if rng.chance(10) {
        method = flip_case(rng, &method);
    }
    let mut path = match &m.path_match {
        None => format!("/{}", string(rng, ALPHABET, 0, 4)),
        Some(pm) => match &pm.path {
            PathMatchType::Exact(p) => p.clone(),
            PathMatchType::Prefix(p) => format!("{p}{}", string(rng, ALPHABET, 0, 3)),
        },
    };
    if rng.chance(30) {
        path = flip_case(rng, &path);
    }
    if rng.chance(10) {
        path.pop();
    }
    let mut headers = random_headers(rng, false);
    for h in &m.header_matches {
        if rng.chance(5) {
            continue;
        }
        let mut value = match &h.value {
            HeaderMatchType::Exact(v) => v.clone(),
            HeaderMatchType::Prefix(v) => format!("{v}{}", string(rng, ALPHABET, 0, 3)),
            HeaderMatchType::Contains(v) => format!(
                "{}{v}{}",
                string(rng, ALPHABET, 0, 3),
                string(rng, ALPHABET, 0, 3)
            ),
        };
        if rng.chance(30) {
            value = flip_case(rng, &value);
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(flip_case(rng, &h.name).as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    (method, path, headers)
}

fn run(seed: u64, tables: usize, requests: usize, wild: bool) {
    let mut rng = XorShift::new(seed);
    let (mut matched, mut defaulted) = (0usize, 0usize);
    for _ in 0..tables {
        let rules = random_table(&mut rng, wild);
        let table = compile(&rules);
        for _ in 0..requests {
            let (method, path, headers) = if rng.chance(60) {
                near_request(&mut rng, &rules)
            } else {
                random_request(&mut rng, wild)
            };
            let head = RequestHead {
                method: &method,
                path: &path,
                headers: &headers,
            };
            let got = table.route(&head).rule_id;
            let want = reference(&rules, &method, &path, &headers, DEFAULT);
            assert_eq!(
                got, want,
                "method {method:?} path {path:?} headers {headers:?} rules {rules:#?}"
            );
            if got == DEFAULT {
                defaulted += 1;
            } else {
                matched += 1;
            }
        }
    }
    // The generators must exercise both outcomes, or the agreement above proves little.
    let total = matched + defaulted;
    assert!(
        matched * 10 > total,
        "only {matched} of {total} requests matched a rule"
    );
    assert!(
        defaulted * 10 > total,
        "only {defaulted} of {total} requests fell through"
    );
}

fn random_request(rng: &mut XorShift, wild: bool) -> (String, String, HeaderMap) {
    let method = if wild && rng.chance(30) {
        wild_string(rng, 5)
    } else {
        rng.choose(METHODS).to_string()
    };
    let path = if wild && rng.chance(30) {
        wild_string(rng, 10)
    } else {
        format!("/{}", string(rng, ALPHABET, 0, 7))
    };
    let headers = random_headers(rng, wild);
    (method, path, headers)
}

#[test]
fn router_agrees_with_reference_on_random_tables() {
    run(0x7e11_15f0_0d5e_ed01, 1500, 40, false);
}

#[test]
fn router_survives_arbitrary_strings() {
    run(0xdead_beef_cafe_f00d, 1000, 40, true);
}

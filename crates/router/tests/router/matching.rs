//! Data-driven rule-matching tables: every match type × case sensitivity, AND of conditions,
//! multi-valued headers, priority order and the default fallback.

use trellis_model::resources::rule::{HttpMatch, RuleAction, RuleMatch, WeightedTargetGroup};
use trellis_router::{Action, RequestHead, WeightedGroups};

use crate::support::{
    C, DEFAULT, Req, check, compile, default_rule, headers, req, rule, rule_with,
};

const R: &str = "rule-r";
const NONE: &[(&str, &[u8])] = &[];

/// (conditions of the single rule `R`, request, expected rule ID)
type Case<'a> = (&'a [C<'a>], Req<'a>, &'a str);

fn run(cases: &[Case<'_>]) {
    for (conditions, request, expected) in cases {
        check(
            &[default_rule(), rule(R, 1, conditions)],
            *request,
            expected,
        );
    }
}

#[test]
fn method_is_exact_and_case_sensitive() {
    run(&[
        (&[C::Method("GET")], req("GET", "/", NONE), R),
        (&[C::Method("GET")], req("get", "/", NONE), DEFAULT),
        (&[C::Method("GET")], req("Get", "/", NONE), DEFAULT),
        (&[C::Method("GET")], req("POST", "/", NONE), DEFAULT),
        (&[C::Method("GET")], req("GETX", "/", NONE), DEFAULT),
        (&[C::Method("PURGE")], req("PURGE", "/x", NONE), R),
    ]);
}

#[test]
fn path_exact() {
    let ci: &[C<'_>] = &[C::PathExact("/api/Users", false)];
    let cs: &[C<'_>] = &[C::PathExact("/api/Users", true)];
    run(&[
        (ci, req("GET", "/api/Users", NONE), R),
        (ci, req("GET", "/api/users", NONE), R),
        (ci, req("GET", "/API/USERS", NONE), R),
        (ci, req("GET", "/api/users/", NONE), DEFAULT),
        (ci, req("GET", "/api/user", NONE), DEFAULT),
        (ci, req("GET", "/api", NONE), DEFAULT),
        (ci, req("GET", "", NONE), DEFAULT),
        (cs, req("GET", "/api/Users", NONE), R),
        (cs, req("GET", "/api/users", NONE), DEFAULT),
        (cs, req("GET", "/API/USERS", NONE), DEFAULT),
        (cs, req("GET", "/api/Users/", NONE), DEFAULT),
        // The router sees the path without its query string, so a pattern with `?` can't match.
        (
            &[C::PathExact("/a?b=c", false)],
            req("GET", "/a", NONE),
            DEFAULT,
        ),
        // Compared as received: no percent-decoding, but hex digits fold like any ASCII letter.
        (
            &[C::PathExact("/caf%C3%A9", false)],
            req("GET", "/CAF%c3%a9", NONE),
            R,
        ),
        (
            &[C::PathExact("/caf%C3%A9", true)],
            req("GET", "/caf%c3%a9", NONE),
            DEFAULT,
        ),
        (
            &[C::PathExact("/café", false)],
            req("GET", "/caf%C3%A9", NONE),
            DEFAULT,
        ),
    ]);
}

#[test]
fn path_prefix() {
    let ci: &[C<'_>] = &[C::PathPrefix("/Api", false)];
    let cs: &[C<'_>] = &[C::PathPrefix("/Api", true)];
    run(&[
        (ci, req("GET", "/api", NONE), R),
        (ci, req("GET", "/API/x", NONE), R),
        (ci, req("GET", "/Api/x/y", NONE), R),
        // A plain string prefix: no segment awareness.
        (ci, req("GET", "/apix", NONE), R),
        (ci, req("GET", "/ap", NONE), DEFAULT),
        (ci, req("GET", "/", NONE), DEFAULT),
        (ci, req("GET", "/v1/api", NONE), DEFAULT),
        (cs, req("GET", "/Api/x", NONE), R),
        (cs, req("GET", "/Apix", NONE), R),
        (cs, req("GET", "/api/x", NONE), DEFAULT),
        (cs, req("GET", "/API", NONE), DEFAULT),
        (
            &[C::PathPrefix("/", false)],
            req("GET", "/anything/at/all", NONE),
            R,
        ),
        (&[C::PathPrefix("/", true)], req("GET", "/", NONE), R),
    ]);
}

#[test]
fn non_ascii_is_compared_byte_for_byte() {
    run(&[
        // Only ASCII letters fold: É (C3 89) and é (C3 A9) differ even case-insensitively.
        (&[C::PathPrefix("/é", false)], req("GET", "/é/x", NONE), R),
        (
            &[C::PathPrefix("/é", false)],
            req("GET", "/É/x", NONE),
            DEFAULT,
        ),
        (&[C::PathExact("/Ré", false)], req("GET", "/ré", NONE), R),
        // A prefix that ends inside a multi-byte character of the path neither matches nor panics.
        (
            &[C::PathPrefix("/a", false)],
            req("GET", "/é", NONE),
            DEFAULT,
        ),
        (
            &[C::PathPrefix("/ab", false)],
            req("GET", "/é", NONE),
            DEFAULT,
        ),
        (&[C::PathPrefix("/a", false)], req("GET", "/aé", NONE), R),
        (
            &[C::HeaderExact("x-name", "é", false)],
            req("GET", "/", &[("x-name", "é".as_bytes())]),
            R,
        ),
        (
            &[C::HeaderExact("x-name", "é", false)],
            req("GET", "/", &[("x-name", "É".as_bytes())]),
            DEFAULT,
        ),
        // A Latin-1 obs-text byte is not the UTF-8 encoding of the same character.
        (
            &[C::HeaderExact("x-name", "é", false)],
            req("GET", "/", &[("x-name", b"\xe9")]),
            DEFAULT,
        ),
        (
            &[C::HeaderContains("x-name", "b", false)],
            req("GET", "/", &[("x-name", b"\xe9\xffB\xfe")]),
            R,
        ),
    ]);
}

#[test]
fn grpc_routes_on_its_path() {
    let grpc: &[(&str, &[u8])] = &[("content-type", b"application/grpc"), ("te", b"trailers")];
    run(&[
        (
            &[C::PathPrefix("/pkg.Greeter/", true)],
            req("POST", "/pkg.Greeter/SayHello", grpc),
            R,
        ),
        (
            &[C::PathPrefix("/pkg.Greeter/", true)],
            req("POST", "/pkg.Other/SayHello", grpc),
            DEFAULT,
        ),
        (
            &[
                C::Method("POST"),
                C::PathExact("/pkg.Greeter/SayHello", true),
            ],
            req("POST", "/pkg.Greeter/SayHello", grpc),
            R,
        ),
        (
            &[C::HeaderPrefix("content-type", "application/grpc", false)],
            req("POST", "/pkg.Greeter/SayHello", grpc),
            R,
        ),
    ]);
}

#[test]
fn header_exact() {
    let ci: &[C<'_>] = &[C::HeaderExact("x-env", "Blue", false)];
    let cs: &[C<'_>] = &[C::HeaderExact("x-env", "Blue", true)];
    run(&[
        (ci, req("GET", "/", &[("x-env", b"Blue")]), R),
        (ci, req("GET", "/", &[("x-env", b"blue")]), R),
        (ci, req("GET", "/", &[("x-env", b"BLUE")]), R),
        (ci, req("GET", "/", &[("x-env", b"blue2")]), DEFAULT),
        (ci, req("GET", "/", &[("x-env", b"blu")]), DEFAULT),
        (ci, req("GET", "/", &[("x-env", b" blue")]), DEFAULT),
        (ci, req("GET", "/", &[("x-env", b"")]), DEFAULT),
        (ci, req("GET", "/", &[("x-other", b"blue")]), DEFAULT),
        (ci, req("GET", "/", NONE), DEFAULT),
        (cs, req("GET", "/", &[("x-env", b"Blue")]), R),
        (cs, req("GET", "/", &[("x-env", b"blue")]), DEFAULT),
        (cs, req("GET", "/", &[("x-env", b"BLUE")]), DEFAULT),
        // Header names are case-insensitive whatever `caseSensitive` says.
        (
            &[C::HeaderExact("X-Env", "blue", true)],
            req("GET", "/", &[("x-env", b"blue")]),
            R,
        ),
        (
            &[C::HeaderExact("X-ENV", "blue", false)],
            req("GET", "/", &[("X-eNv", b"BLUE")]),
            R,
        ),
        // A standard header name takes the same path as a custom one.
        (
            &[C::HeaderExact("Accept", "text/html", false)],
            req("GET", "/", &[("accept", b"TEXT/HTML")]),
            R,
        ),
    ]);
}

#[test]
fn header_prefix() {
    let ci: &[C<'_>] = &[C::HeaderPrefix("x-env", "Bl", false)];
    let cs: &[C<'_>] = &[C::HeaderPrefix("x-env", "Bl", true)];
    run(&[
        (ci, req("GET", "/", &[("x-env", b"blue")]), R),
        (ci, req("GET", "/", &[("x-env", b"BLACK")]), R),
        (ci, req("GET", "/", &[("x-env", b"bl")]), R),
        (ci, req("GET", "/", &[("x-env", b"b")]), DEFAULT),
        (ci, req("GET", "/", &[("x-env", b"xblue")]), DEFAULT),
        (ci, req("GET", "/", &[("x-env", b"")]), DEFAULT),
        (ci, req("GET", "/", NONE), DEFAULT),
        (cs, req("GET", "/", &[("x-env", b"Blue")]), R),
        (cs, req("GET", "/", &[("x-env", b"blue")]), DEFAULT),
        (cs, req("GET", "/", &[("x-env", b"BLUE")]), DEFAULT),
    ]);
}

#[test]
fn header_contains() {
    let ci: &[C<'_>] = &[C::HeaderContains("user-agent", "Mobile", false)];
    let cs: &[C<'_>] = &[C::HeaderContains("user-agent", "Mobile", true)];
    run(&[
        (
            ci,
            req("GET", "/", &[("user-agent", b"Mozilla/5.0 (mobile; x)")]),
            R,
        ),
        (ci, req("GET", "/", &[("user-agent", b"MOBILE")]), R),
        (ci, req("GET", "/", &[("user-agent", b"xxmobile")]), R),
        (ci, req("GET", "/", &[("user-agent", b"mobilexx")]), R),
        (ci, req("GET", "/", &[("user-agent", b"mobil")]), DEFAULT),
        (ci, req("GET", "/", &[("user-agent", b"mob ile")]), DEFAULT),
        (ci, req("GET", "/", NONE), DEFAULT),
        (
            cs,
            req("GET", "/", &[("user-agent", b"Mozilla/5.0 (Mobile)")]),
            R,
        ),
        (
            cs,
            req("GET", "/", &[("user-agent", b"Mozilla/5.0 (mobile)")]),
            DEFAULT,
        ),
        // Overlapping partial matches, where a naive restart would skip the real occurrence.
        (
            &[C::HeaderContains("x", "aab", true)],
            req("GET", "/", &[("x", b"aaab")]),
            R,
        ),
        (
            &[C::HeaderContains("x", "abab", true)],
            req("GET", "/", &[("x", b"abaabab")]),
            R,
        ),
        (
            &[C::HeaderContains("x", "abab", true)],
            req("GET", "/", &[("x", b"ababa")]),
            R,
        ),
        (
            &[C::HeaderContains("x", "abab", true)],
            req("GET", "/", &[("x", b"abaab")]),
            DEFAULT,
        ),
        (
            &[C::HeaderContains("x", "AbAc", false)],
            req("GET", "/", &[("x", b"abaABAC")]),
            R,
        ),
        (
            &[C::HeaderContains("x", "aaaaab", false)],
            req("GET", "/", &[("x", b"aaaaaaaaaaaaaAaab")]),
            R,
        ),
        (
            &[C::HeaderContains("x", "aaaaab", false)],
            req("GET", "/", &[("x", b"aaaaaaaaaaaaaAaa")]),
            DEFAULT,
        ),
    ]);
}

#[test]
fn multi_valued_headers_match_when_any_line_does() {
    let blue: &[C<'_>] = &[C::HeaderExact("x-env", "blue", false)];
    run(&[
        (
            blue,
            req("GET", "/", &[("x-env", b"red"), ("x-env", b"blue")]),
            R,
        ),
        (
            blue,
            req("GET", "/", &[("x-env", b"BLUE"), ("x-env", b"red")]),
            R,
        ),
        (
            blue,
            req("GET", "/", &[("x-env", b"red"), ("x-env", b"green")]),
            DEFAULT,
        ),
        (
            blue,
            req("GET", "/", &[("x-env", b"red"), ("x-other", b"blue")]),
            DEFAULT,
        ),
        // One field line is compared whole: a comma-separated list is not split.
        (blue, req("GET", "/", &[("x-env", b"red, blue")]), DEFAULT),
        (
            &[C::HeaderContains("x-env", "blue", false)],
            req("GET", "/", &[("x-env", b"red, blue")]),
            R,
        ),
        (
            &[C::HeaderPrefix("x-env", "gr", false)],
            req(
                "GET",
                "/",
                &[("x-env", b"red"), ("x-env", b"blue"), ("x-env", b"Green")],
            ),
            R,
        ),
        // Each condition may be satisfied by a different line of the same header.
        (
            &[
                C::HeaderPrefix("x-env", "ab", true),
                C::HeaderContains("x-env", "yz", true),
            ],
            req("GET", "/", &[("x-env", b"ab"), ("x-env", b"xyz")]),
            R,
        ),
        (
            &[
                C::HeaderPrefix("x-env", "ab", true),
                C::HeaderContains("x-env", "yz", true),
            ],
            req("GET", "/", &[("x-env", b"ab"), ("x-env", b"xy")]),
            DEFAULT,
        ),
    ]);
}

#[test]
fn all_conditions_must_match() {
    let all: &[C<'_>] = &[
        C::Method("GET"),
        C::PathPrefix("/api", false),
        C::HeaderExact("x-a", "1", false),
        C::HeaderContains("x-b", "two", false),
    ];
    let good: &[(&str, &[u8])] = &[("x-a", b"1"), ("x-b", b"one TWO three")];
    run(&[
        (all, req("GET", "/api/v1", good), R),
        (all, req("POST", "/api/v1", good), DEFAULT),
        (all, req("GET", "/v1", good), DEFAULT),
        (all, req("GET", "/api/v1", &[("x-a", b"1")]), DEFAULT),
        (all, req("GET", "/api/v1", &[("x-b", b"two")]), DEFAULT),
        (
            all,
            req("GET", "/api/v1", &[("x-a", b"2"), ("x-b", b"two")]),
            DEFAULT,
        ),
        (
            all,
            req("GET", "/api/v1", &[("x-a", b"1"), ("x-b", b"tw")]),
            DEFAULT,
        ),
        (
            &[C::Method("GET"), C::PathExact("/a", true)],
            req("GET", "/a", NONE),
            R,
        ),
        (
            &[C::Method("GET"), C::PathExact("/a", true)],
            req("GET", "/A", NONE),
            DEFAULT,
        ),
        (
            &[C::Method("GET"), C::PathExact("/a", true)],
            req("PUT", "/a", NONE),
            DEFAULT,
        ),
    ]);
}

#[test]
fn priority_order_regardless_of_input_order() {
    // IDs sort the other way round from priorities, and 10 < 9 as strings, so neither the input
    // order, the ID nor a string comparison of priorities can produce the right answers.
    let rules = [
        default_rule(),
        rule("rule-a", 10, &[C::PathPrefix("/", false)]),
        rule("rule-b", 9, &[C::Method("GET")]),
        rule("rule-c", 2, &[C::PathPrefix("/a", false)]),
        rule(
            "rule-d",
            1,
            &[C::PathPrefix("/a/b", false), C::Method("DELETE")],
        ),
        rule("rule-e", 2000, &[C::Method("PATCH")]),
    ];
    let cases: &[(Req<'_>, &str)] = &[
        (req("DELETE", "/a/b/c", NONE), "rule-d"),
        (req("GET", "/a/b/c", NONE), "rule-c"),
        (req("GET", "/x", NONE), "rule-b"),
        (req("POST", "/x", NONE), "rule-a"),
        (req("PATCH", "/x", NONE), "rule-a"),
        (req("PATCH", "", NONE), "rule-e"),
        (req("POST", "", NONE), DEFAULT),
    ];
    for perm in permutations(rules.len()) {
        let shuffled: Vec<_> = perm.iter().map(|&i| rules[i].clone()).collect();
        let table = compile(&shuffled);
        assert_eq!(
            table.rule_ids().collect::<Vec<_>>(),
            ["rule-d", "rule-c", "rule-b", "rule-a", "rule-e"],
            "order {perm:?}"
        );
        for (request, expected) in cases {
            check(&shuffled, *request, expected);
        }
    }
}

/// The route looks each distinct header name up once and shares the result between rules: rules
/// that spell the name differently, test different lines of a repeated header, or test a name
/// that an earlier rule found absent must each still see every line of it.
#[test]
fn rules_sharing_header_names() {
    let rules = [
        default_rule(),
        rule("rule-1", 1, &[C::HeaderExact("X-Env", "blue", true)]),
        rule(
            "rule-2",
            2,
            &[
                C::HeaderExact("x-env", "green", true),
                C::HeaderPrefix("X-TEAM", "a", true),
            ],
        ),
        rule("rule-3", 3, &[C::HeaderContains("x-ENV", "ee", true)]),
        rule(
            "rule-4",
            4,
            &[C::HeaderExact("x-team", "b", true), C::Method("PUT")],
        ),
        rule("rule-5", 5, &[C::HeaderExact("x-team", "b", true)]),
    ];
    let cases: &[(Req<'_>, &str)] = &[
        (req("GET", "/", &[("x-env", b"blue")]), "rule-1"),
        (
            req("GET", "/", &[("x-env", b"red"), ("x-env", b"blue")]),
            "rule-1",
        ),
        // rule-2 needs both names, each from a later line than rule-1 tested.
        (
            req(
                "GET",
                "/",
                &[
                    ("x-env", b"red"),
                    ("x-team", b"b"),
                    ("x-env", b"green"),
                    ("x-team", b"ab"),
                ],
            ),
            "rule-2",
        ),
        (req("GET", "/", &[("x-env", b"green")]), "rule-3"),
        (
            req("GET", "/", &[("x-env", b"red"), ("x-env", b"steel")]),
            "rule-3",
        ),
        // rule-2 fails on x-env before it reads x-team and rule-4 on the method, so rule-5 is
        // the first to look x-team up.
        (req("GET", "/", &[("x-team", b"b")]), "rule-5"),
        (
            req("PUT", "/", &[("x-team", b"b"), ("x-env", b"red")]),
            "rule-4",
        ),
        (
            req("GET", "/", &[("x-team", b"c"), ("x-env", b"red")]),
            DEFAULT,
        ),
        (req("GET", "/", NONE), DEFAULT),
    ];
    for (request, expected) in cases {
        check(&rules, *request, expected);
    }
}

/// More distinct header names than the route keeps look-ups for (sixteen): names past those are
/// looked up per condition and must match the same way.
#[test]
fn many_distinct_header_names() {
    let names: Vec<String> = (0..40).map(|i| format!("x-h{i:02}")).collect();
    // Ten rules of four names each; rule i matches when all four of its names carry "on".
    let conditions: Vec<Vec<C<'_>>> = (0..10)
        .map(|r| {
            (0..4)
                .map(|k| C::HeaderExact(names[r * 4 + k].as_str(), "on", true))
                .collect()
        })
        .collect();
    let mut rules = vec![default_rule()];
    let ids: Vec<String> = (0..10).map(|r| format!("rule-{r:02}")).collect();
    for (r, c) in conditions.iter().enumerate() {
        rules.push(rule(&ids[r], r as u16 + 1, c));
    }
    for target in 0..10 {
        // Every earlier rule has three of its four names, so each is decided by its last one.
        let mut lines: Vec<(&str, &[u8])> = Vec::new();
        for r in 0..target {
            for k in 0..3 {
                lines.push((names[r * 4 + k].as_str(), b"on"));
            }
            lines.push((names[r * 4 + 3].as_str(), b"off"));
        }
        for k in 0..4 {
            lines.push((names[target * 4 + k].as_str(), b"on"));
        }
        check(&rules, req("GET", "/", &lines), &ids[target]);
        // Without the target's last name, nothing matches.
        lines.pop();
        check(&rules, req("GET", "/", &lines), DEFAULT);
    }
}

/// Every permutation of `0..n` (Heap's algorithm).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k - 1 {
            heap(k - 1, a, out);
            if k.is_multiple_of(2) {
                a.swap(i, k - 1);
            } else {
                a.swap(0, k - 1);
            }
        }
        heap(k - 1, a, out);
    }
    let mut a: Vec<usize> = (0..n).collect();
    let mut out = Vec::new();
    heap(n, &mut a, &mut out);
    out
}

#[test]
fn default_fallback_and_actions() {
    // No rules at all, and only the default rule: every request takes the default action.
    for rules in [vec![], vec![default_rule()]] {
        let table = compile(&rules);
        let map = headers(&[("x-a", b"1")]);
        let route = table.route(&RequestHead {
            method: "GET",
            path: "/",
            headers: &map,
        });
        assert_eq!(route.rule_id, DEFAULT);
        assert_eq!(
            route.action,
            &Action::Forward(WeightedGroups::new([(
                "tg-default000000000".to_string(),
                100
            )]))
        );
        assert_eq!(table.rule_ids().count(), 0);
    }

    // A matching rule yields its own action, forward groups in action order.
    let forward = RuleAction::Forward {
        target_groups: vec![
            WeightedTargetGroup {
                target_group_id: "tg-z".into(),
                weight: 5,
            },
            WeightedTargetGroup {
                target_group_id: "tg-a".into(),
                weight: 0,
            },
            WeightedTargetGroup {
                target_group_id: "tg-m".into(),
                weight: 999,
            },
        ],
    };
    let rules = vec![
        rule_with(
            "fwd",
            Some(5),
            Some(RuleMatch::HttpMatch(crate::support::http_match(&[
                C::Method("GET"),
            ]))),
            forward,
        ),
        rule_with(
            "fixed",
            Some(6),
            Some(RuleMatch::HttpMatch(crate::support::http_match(&[
                C::Method("PUT"),
            ]))),
            RuleAction::FixedResponse { status_code: 500 },
        ),
    ];
    let table = compile(&rules);
    let map = headers(&[]);
    let get = table.route(&RequestHead {
        method: "GET",
        path: "/",
        headers: &map,
    });
    assert_eq!(get.rule_id, "fwd");
    let Action::Forward(groups) = get.action else {
        panic!("{get:?}")
    };
    assert_eq!(
        groups.groups(),
        [
            ("tg-z".to_string(), 5),
            ("tg-a".to_string(), 0),
            ("tg-m".to_string(), 999)
        ]
    );
    let put = table.route(&RequestHead {
        method: "PUT",
        path: "/",
        headers: &map,
    });
    assert_eq!(
        (put.rule_id, put.action),
        ("fixed", &Action::FixedResponse { status: 500 })
    );
    assert_eq!(table.default_rule_id(), DEFAULT);
}

#[test]
fn rules_that_cannot_match_fall_through() {
    // Rules without conditions are rejected by the API; if one reaches the router it must not
    // swallow all traffic. The same goes for a header name that is not an HTTP token.
    let empty = HttpMatch {
        method: None,
        path_match: None,
        header_matches: Vec::new(),
    };
    let rules = vec![
        rule_with(
            "no-match",
            Some(1),
            None,
            RuleAction::FixedResponse { status_code: 404 },
        ),
        rule_with(
            "no-conditions",
            Some(2),
            Some(RuleMatch::HttpMatch(empty)),
            RuleAction::FixedResponse { status_code: 404 },
        ),
        rule(
            "bad-header",
            3,
            &[C::HeaderExact("bad name", "v", false), C::Method("GET")],
        ),
        rule("catch-all", 4, &[C::PathPrefix("/", true)]),
    ];
    check(&rules, req("GET", "/x", &[("x", b"v")]), "catch-all");
    check(&rules, req("GET", "x", NONE), DEFAULT);
    // A non-default rule without priority (impossible upstream) is evaluated last.
    let rules = vec![
        rule_with(
            "no-priority",
            None,
            Some(RuleMatch::HttpMatch(crate::support::http_match(&[
                C::Method("GET"),
            ]))),
            RuleAction::FixedResponse { status_code: 404 },
        ),
        rule("last", 2000, &[C::Method("GET")]),
    ];
    check(&rules, req("GET", "/", NONE), "last");
}

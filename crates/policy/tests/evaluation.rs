//! Evaluation fixtures: (policy, request context, expected decision) tables, starting with the
//! examples from the VPC Lattice user guide.

use serde_json::{Value, json};
use trellis_policy::{Decision, PolicyKind, Principal, RequestContext, parse};

const SVC: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0";
const INVOKE: &str = "vpc-lattice-svcs:Invoke";
const ROLE_SESSION: &str = "arn:aws:sts::111122223333:assumed-role/rates-client/i-0abc";
const OTHER_ACCOUNT_USER: &str = "arn:aws:iam::444455556666:user/mallory";

/// The decision rendered compactly: `Allow <sid>`, `Deny <sid>` (or `#<index>` without a Sid),
/// `Implicit`.
fn render(decision: &Decision) -> String {
    let name =
        |s: &trellis_policy::StatementRef| s.sid.clone().unwrap_or_else(|| format!("#{}", s.index));
    match decision {
        Decision::Allow(s) => format!("Allow {}", name(s)),
        Decision::ExplicitDeny(s) => format!("Deny {}", name(s)),
        Decision::ImplicitDeny => "Implicit".into(),
    }
}

fn check(name: &str, policy: &Value, kind: PolicyKind, ctx: &RequestContext, expected: &str) {
    let text = policy.to_string();
    let policy =
        parse(&text, kind).unwrap_or_else(|d| panic!("case {name}: invalid policy {d:#?}"));
    let got = render(&policy.evaluate(ctx));
    assert_eq!(
        got, expected,
        "case {name}\npolicy: {text}\ncontext: {ctx:#?}"
    );
}

fn doc(statements: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A request to `SVC` + `path`.
fn request(principal: Principal, path: &str) -> RequestContext<'static> {
    RequestContext::new(principal, INVOKE, format!("{SVC}{path}"))
}

fn anonymous(path: &str) -> RequestContext<'static> {
    request(Principal::Anonymous, path)
}

fn role(path: &str) -> RequestContext<'static> {
    request(Principal::iam(ROLE_SESSION), path)
}

fn outsider(path: &str) -> RequestContext<'static> {
    request(Principal::iam(OTHER_ACCOUNT_USER), path)
}

type Case = (&'static str, RequestContext<'static>, &'static str);

fn run(policy: &Value, kind: PolicyKind, cases: Vec<Case>) {
    for (name, ctx, expected) in cases {
        check(name, policy, kind, &ctx, expected);
    }
}

#[test]
fn lattice_console_templates() {
    // "Allow only authenticated access" as the console generates it.
    let authenticated_only = doc(json!([{
        "Sid": "AuthenticatedOnly",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke",
        "Resource": "*",
        "Condition": {"StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"}}
    }]));
    run(
        &authenticated_only,
        PolicyKind::Auth,
        vec![
            ("anonymous is denied", anonymous("/"), "Implicit"),
            (
                "signed role is allowed",
                role("/"),
                "Allow AuthenticatedOnly",
            ),
            (
                "other account is allowed",
                outsider("/x"),
                "Allow AuthenticatedOnly",
            ),
            (
                "an empty explicit type does not hide an anonymous caller",
                anonymous("/").with_values("aws:PrincipalType", Vec::<String>::new()),
                "Implicit",
            ),
            (
                "a context built without the key still knows the caller is anonymous",
                RequestContext {
                    principal: Principal::Anonymous,
                    action: INVOKE.into(),
                    resource: SVC.into(),
                    keys: Default::default(),
                    source: None,
                },
                "Implicit",
            ),
            (
                "an explicit key overrides the derived one, compared ignoring case",
                role("/").with_key("aws:PrincipalType", "ANONYMOUS"),
                "Implicit",
            ),
        ],
    );

    // "Allow authenticated and unauthenticated access".
    let everyone = doc(json!([{
        "Effect": "Allow", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"
    }]));
    run(
        &everyone,
        PolicyKind::Auth,
        vec![
            ("anonymous", anonymous("/"), "Allow #0"),
            ("signed", role("/"), "Allow #0"),
            (
                "Connect is a different action",
                RequestContext::new(Principal::Anonymous, "vpc-lattice-svcs:Connect", SVC),
                "Implicit",
            ),
        ],
    );
}

#[test]
fn organization_restriction() {
    let policy = doc(json!([{
        "Sid": "OrgOnly",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke",
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-123abc"]}}
    }]));
    run(
        &policy,
        PolicyKind::Auth,
        vec![
            (
                "member",
                role("/").with_key("aws:PrincipalOrgID", "o-123abc"),
                "Allow OrgOnly",
            ),
            (
                "other org",
                role("/").with_key("aws:PrincipalOrgID", "o-999zzz"),
                "Implicit",
            ),
            ("no org (anonymous)", anonymous("/"), "Implicit"),
            (
                "values are case-sensitive",
                role("/").with_key("aws:PrincipalOrgID", "O-123ABC"),
                "Implicit",
            ),
            (
                "key names are not",
                role("/").with_key("AWS:principalorgid", "o-123abc"),
                "Allow OrgOnly",
            ),
        ],
    );
}

#[test]
fn path_restricted_role_access() {
    // The user guide's fine-grained service policy: one role may GET /rates*.
    let policy = doc(json!([{
        "Sid": "RatesReadOnly",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::111122223333:role/rates-client"]},
        "Action": "vpc-lattice-svcs:Invoke",
        "Resource": format!("{SVC}/rates*"),
        "Condition": {"StringEquals": {"vpc-lattice-svcs:RequestMethod": "GET"}}
    }]));
    let get = |ctx: RequestContext<'static>| ctx.with_key("vpc-lattice-svcs:RequestMethod", "GET");
    run(
        &policy,
        PolicyKind::Auth,
        vec![
            (
                "role session, GET /rates",
                get(role("/rates")),
                "Allow RatesReadOnly",
            ),
            (
                "role session, GET /rates/usd",
                get(role("/rates/usd")),
                "Allow RatesReadOnly",
            ),
            (
                "role session, POST /rates",
                role("/rates").with_key("vpc-lattice-svcs:RequestMethod", "POST"),
                "Implicit",
            ),
            ("method key missing", role("/rates"), "Implicit"),
            ("role session, GET /admin", get(role("/admin")), "Implicit"),
            (
                "resource match is case-sensitive",
                get(role("/Rates")),
                "Implicit",
            ),
            ("anonymous", get(anonymous("/rates")), "Implicit"),
            ("other principal", get(outsider("/rates")), "Implicit"),
            (
                "another role of the same account",
                get(request(
                    Principal::iam("arn:aws:sts::111122223333:assumed-role/other/i-1"),
                    "/rates",
                )),
                "Implicit",
            ),
            (
                "the role ARN itself",
                get(request(
                    Principal::iam("arn:aws:iam::111122223333:role/rates-client"),
                    "/rates",
                )),
                "Allow RatesReadOnly",
            ),
            (
                "another service",
                get(RequestContext::new(
                    Principal::iam(ROLE_SESSION),
                    INVOKE,
                    "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0fffffffffffffff0/rates",
                )),
                "Implicit",
            ),
            (
                "action names compare ignoring case",
                get(RequestContext::new(
                    Principal::iam(ROLE_SESSION),
                    "VPC-LATTICE-SVCS:invoke",
                    format!("{SVC}/rates"),
                )),
                "Allow RatesReadOnly",
            ),
        ],
    );
}

#[test]
fn wildcard_resource_forms() {
    // Lattice's ARN-less resource forms: `*/rates` is a pattern over the whole ARN.
    let policy = doc(json!([{
        "Sid": "AnyServiceRates",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke",
        "Resource": "*/rates"
    }]));
    run(
        &policy,
        PolicyKind::Auth,
        vec![
            ("/rates", anonymous("/rates"), "Allow AnyServiceRates"),
            ("/rates/usd", anonymous("/rates/usd"), "Implicit"),
            (
                "/admin/rates",
                anonymous("/admin/rates"),
                "Allow AnyServiceRates",
            ),
            ("/", anonymous("/"), "Implicit"),
        ],
    );
}

#[test]
fn explicit_deny_wins() {
    let policy = doc(json!([
        {"Sid": "AllowAll", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Sid": "DenyAdmin", "Effect": "Deny", "Principal": "*", "Action": "vpc-lattice-svcs:Invoke",
         "Resource": format!("{SVC}/admin*")},
        {"Sid": "DenyOutsiders", "Effect": "Deny", "Principal": {"AWS": "444455556666"},
         "Action": "*", "Resource": "*"},
        {"Sid": "AllowAgain", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}
    ]));
    run(
        &policy,
        PolicyKind::Auth,
        vec![
            ("allowed path", role("/rates"), "Allow AllowAll"),
            (
                "denied path, deny after allow",
                role("/admin/users"),
                "Deny DenyAdmin",
            ),
            ("denied principal", outsider("/rates"), "Deny DenyOutsiders"),
            (
                "first matching deny is reported",
                outsider("/admin"),
                "Deny DenyAdmin",
            ),
            ("anonymous, allowed path", anonymous("/"), "Allow AllowAll"),
        ],
    );
}

#[test]
fn negated_elements() {
    let not_action = doc(json!([{
        "Effect": "Allow", "Principal": "*", "NotAction": "vpc-lattice-svcs:Connect", "Resource": "*"
    }]));
    run(
        &not_action,
        PolicyKind::Auth,
        vec![
            ("Invoke is not Connect", role("/"), "Allow #0"),
            (
                "Connect is excluded",
                RequestContext::new(
                    Principal::iam(ROLE_SESSION),
                    "vpc-lattice-svcs:Connect",
                    SVC,
                ),
                "Implicit",
            ),
            (
                "exclusion ignores case",
                RequestContext::new(
                    Principal::iam(ROLE_SESSION),
                    "vpc-lattice-svcs:CONNECT",
                    SVC,
                ),
                "Implicit",
            ),
        ],
    );

    let not_resource = doc(json!([
        {"Effect": "Allow", "Principal": "*", "Action": "*", "NotResource": format!("{SVC}/private/*")}
    ]));
    run(
        &not_resource,
        PolicyKind::Auth,
        vec![
            ("public path", role("/public"), "Allow #0"),
            ("private path", role("/private/x"), "Implicit"),
        ],
    );

    // Deny everyone except the admin role (and its sessions).
    let not_principal = doc(json!([
        {"Sid": "Everyone", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Sid": "OnlyAdmin", "Effect": "Deny",
         "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:role/admin"},
         "Action": "*", "Resource": format!("{SVC}/admin*")}
    ]));
    run(
        &not_principal,
        PolicyKind::Auth,
        vec![
            (
                "admin session",
                request(
                    Principal::iam("arn:aws:sts::111122223333:assumed-role/admin/s"),
                    "/admin",
                ),
                "Allow Everyone",
            ),
            ("other role", role("/admin"), "Deny OnlyAdmin"),
            ("anonymous", anonymous("/admin"), "Deny OnlyAdmin"),
            ("not an admin path", anonymous("/"), "Allow Everyone"),
        ],
    );
}

#[test]
fn principals() {
    let allow = |principal: Value| {
        doc(json!([{"Effect": "Allow", "Principal": principal, "Action": "*", "Resource": "*"}]))
    };
    let cases: Vec<(&str, Value, RequestContext, &str)> = vec![
        (
            "AWS * matches anonymous",
            json!({"AWS": "*"}),
            anonymous("/"),
            "Allow #0",
        ),
        (
            "AWS * matches signed",
            json!({"AWS": ["*"]}),
            role("/"),
            "Allow #0",
        ),
        (
            "account id",
            json!({"AWS": "111122223333"}),
            role("/"),
            "Allow #0",
        ),
        (
            "account id, other account",
            json!({"AWS": "111122223333"}),
            outsider("/"),
            "Implicit",
        ),
        (
            "account id, anonymous",
            json!({"AWS": "111122223333"}),
            anonymous("/"),
            "Implicit",
        ),
        (
            "account root arn",
            json!({"AWS": "arn:aws:iam::111122223333:root"}),
            role("/"),
            "Allow #0",
        ),
        (
            "account root arn, other account",
            json!({"AWS": "arn:aws:iam::111122223333:root"}),
            outsider("/"),
            "Implicit",
        ),
        (
            "user arn exact",
            json!({"AWS": OTHER_ACCOUNT_USER}),
            outsider("/"),
            "Allow #0",
        ),
        (
            "user arn, different user",
            json!({"AWS": "arn:aws:iam::444455556666:user/alice"}),
            outsider("/"),
            "Implicit",
        ),
        (
            "user arn glob",
            json!({"AWS": "arn:aws:iam::444455556666:user/mal*"}),
            outsider("/"),
            "Allow #0",
        ),
        (
            "role with path matches its sessions",
            json!({"AWS": "arn:aws:iam::111122223333:role/team/rates-client"}),
            role("/"),
            "Allow #0",
        ),
        (
            "role glob matches sessions",
            json!({"AWS": "arn:aws:iam::111122223333:role/rates-*"}),
            role("/"),
            "Allow #0",
        ),
        (
            "role of another account",
            json!({"AWS": "arn:aws:iam::444455556666:role/rates-client"}),
            role("/"),
            "Implicit",
        ),
        (
            "session arn exact",
            json!({"AWS": ROLE_SESSION}),
            role("/"),
            "Allow #0",
        ),
        (
            "list: any entry",
            json!({"AWS": ["999999999999", "111122223333"]}),
            role("/"),
            "Allow #0",
        ),
        (
            "service principal never matches a caller",
            json!({"Service": "vpc-lattice.amazonaws.com"}),
            role("/"),
            "Implicit",
        ),
        (
            "mixed object",
            json!({"Service": "x.amazonaws.com", "AWS": "111122223333"}),
            role("/"),
            "Allow #0",
        ),
    ];
    for (name, principal, ctx, expected) in cases {
        check(name, &allow(principal), PolicyKind::Auth, &ctx, expected);
    }
}

/// A policy with one Allow statement carrying `condition`.
fn conditional(condition: Value) -> Value {
    doc(json!([{
        "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*", "Condition": condition
    }]))
}

/// Condition tables: (name, condition, context, expected).
type CondCase = (&'static str, Value, RequestContext<'static>, &'static str);

fn run_conditions(cases: Vec<CondCase>) {
    for (name, condition, ctx, expected) in cases {
        check(
            name,
            &conditional(condition),
            PolicyKind::Auth,
            &ctx,
            expected,
        );
    }
}

const ALLOW: &str = "Allow #0";
const NO: &str = "Implicit";

#[test]
fn if_exists_and_null() {
    let vpc = |v: &str| role("/").with_key("vpc-lattice-svcs:SourceVpc", v);
    let if_exists =
        || json!({"StringEqualsIfExists": {"vpc-lattice-svcs:SourceVpc": "vpc-1a2b3c4d"}});
    let null = |v: &str| json!({"Null": {"aws:PrincipalOrgID": v}});
    run_conditions(vec![
        ("IfExists, key absent", if_exists(), role("/"), ALLOW),
        (
            "IfExists, key matches",
            if_exists(),
            vpc("vpc-1a2b3c4d"),
            ALLOW,
        ),
        (
            "IfExists, key differs",
            if_exists(),
            vpc("vpc-99999999"),
            NO,
        ),
        (
            "IfExists, empty set counts as absent",
            if_exists(),
            role("/").with_values("vpc-lattice-svcs:SourceVpc", Vec::<String>::new()),
            ALLOW,
        ),
        (
            "without IfExists, key absent",
            json!({"StringEquals": {"vpc-lattice-svcs:SourceVpc": "vpc-1a2b3c4d"}}),
            role("/"),
            NO,
        ),
        (
            "negated operator, key absent, is true",
            json!({"StringNotEquals": {"vpc-lattice-svcs:SourceVpc": "vpc-1a2b3c4d"}}),
            role("/"),
            ALLOW,
        ),
        (
            "NotIpAddressIfExists, absent",
            json!({"NotIpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}),
            role("/"),
            ALLOW,
        ),
        ("Null true, key absent", null("true"), role("/"), ALLOW),
        (
            "Null true, key present",
            null("true"),
            role("/").with_key("aws:PrincipalOrgID", "o-1"),
            NO,
        ),
        (
            "Null false, key present",
            null("false"),
            role("/").with_key("aws:PrincipalOrgID", "o-1"),
            ALLOW,
        ),
        ("Null false, key absent", null("false"), role("/"), NO),
        (
            "Null with a JSON bool",
            json!({"Null": {"aws:PrincipalOrgID": true}}),
            role("/"),
            ALLOW,
        ),
        (
            "Null on a derived key",
            json!({"Null": {"aws:PrincipalArn": "true"}}),
            anonymous("/"),
            ALLOW,
        ),
        (
            "Null on a derived key, signed",
            json!({"Null": {"aws:PrincipalArn": "true"}}),
            role("/"),
            NO,
        ),
    ]);
}

#[test]
fn set_operators() {
    let colors = |values: &[&str]| {
        role("/").with_values(
            "vpc-lattice-svcs:RequestQueryString/color",
            values.iter().copied(),
        )
    };
    let all = || json!({"ForAllValues:StringEquals": {"vpc-lattice-svcs:RequestQueryString/color": ["red", "blue"]}});
    let any = || json!({"ForAnyValue:StringEquals": {"vpc-lattice-svcs:RequestQueryString/color": ["red", "blue"]}});
    run_conditions(vec![
        // ForAllValues is vacuously true for an empty or missing set: the documented IAM trap.
        ("ForAllValues, empty set", all(), colors(&[]), ALLOW),
        ("ForAllValues, key absent", all(), role("/"), ALLOW),
        ("ForAllValues, subset", all(), colors(&["red"]), ALLOW),
        (
            "ForAllValues, equal set",
            all(),
            colors(&["blue", "red"]),
            ALLOW,
        ),
        (
            "ForAllValues, one outside",
            all(),
            colors(&["red", "green"]),
            NO,
        ),
        ("ForAnyValue, empty set", any(), colors(&[]), NO),
        ("ForAnyValue, key absent", any(), role("/"), NO),
        (
            "ForAnyValue, one inside",
            any(),
            colors(&["green", "blue"]),
            ALLOW,
        ),
        ("ForAnyValue, none inside", any(), colors(&["green"]), NO),
        (
            "ForAnyValue:StringNotEquals, one outside",
            json!({"ForAnyValue:StringNotEquals": {"vpc-lattice-svcs:RequestQueryString/color": ["red", "blue"]}}),
            colors(&["red", "green"]),
            ALLOW,
        ),
        (
            "ForAnyValue:StringNotEquals, all inside",
            json!({"ForAnyValue:StringNotEquals": {"vpc-lattice-svcs:RequestQueryString/color": ["red", "blue"]}}),
            colors(&["red", "blue"]),
            NO,
        ),
        (
            "ForAllValues:StringNotLike, none match",
            json!({"ForAllValues:StringNotLike": {"vpc-lattice-svcs:RequestQueryString/color": "gr*"}}),
            colors(&["red", "blue"]),
            ALLOW,
        ),
        (
            "ForAllValues:StringNotLike, one matches",
            json!({"ForAllValues:StringNotLike": {"vpc-lattice-svcs:RequestQueryString/color": "gr*"}}),
            colors(&["red", "green"]),
            NO,
        ),
        (
            "ForAnyValue with IfExists, absent",
            json!({"ForAnyValue:StringEqualsIfExists": {"vpc-lattice-svcs:RequestQueryString/color": "red"}}),
            role("/"),
            ALLOW,
        ),
        // Without a qualifier, a multi-valued key: positive = any value matches, negated = none does.
        (
            "plain StringEquals, multi-valued, one matches",
            json!({"StringEquals": {"vpc-lattice-svcs:RequestQueryString/color": "red"}}),
            colors(&["green", "red"]),
            ALLOW,
        ),
        (
            "plain StringNotEquals, multi-valued, one matches",
            json!({"StringNotEquals": {"vpc-lattice-svcs:RequestQueryString/color": "red"}}),
            colors(&["green", "red"]),
            NO,
        ),
        (
            "plain StringNotEquals, multi-valued, none matches",
            json!({"StringNotEquals": {"vpc-lattice-svcs:RequestQueryString/color": "red"}}),
            colors(&["green", "blue"]),
            ALLOW,
        ),
    ]);
}

#[test]
fn combining_keys_and_values() {
    let both = || {
        json!({
            "StringEquals": {
                "vpc-lattice-svcs:RequestMethod": ["GET", "HEAD"],
                "vpc-lattice-svcs:SourceVpc": "vpc-1"
            },
            "NumericEquals": {"vpc-lattice-svcs:Port": 443}
        })
    };
    let ctx = |method: &str, vpc: &str, port: &str| {
        role("/")
            .with_key("vpc-lattice-svcs:RequestMethod", method)
            .with_key("vpc-lattice-svcs:SourceVpc", vpc)
            .with_key("vpc-lattice-svcs:Port", port)
    };
    run_conditions(vec![
        (
            "all keys match (first value)",
            both(),
            ctx("GET", "vpc-1", "443"),
            ALLOW,
        ),
        (
            "values are ORed",
            both(),
            ctx("HEAD", "vpc-1", "443"),
            ALLOW,
        ),
        ("keys are ANDed", both(), ctx("GET", "vpc-2", "443"), NO),
        ("operators are ANDed", both(), ctx("GET", "vpc-1", "80"), NO),
    ]);
}

#[test]
fn typed_operators() {
    let with = |key: &str, value: &str| role("/").with_key(key, value);
    let port = |p: &str| with("vpc-lattice-svcs:Port", p);
    let ip = |a: &str| with("aws:SourceIp", a);
    let now = |t: &str| with("aws:CurrentTime", t);
    run_conditions(vec![
        // String
        (
            "StringEqualsIgnoreCase",
            json!({"StringEqualsIgnoreCase": {"vpc-lattice-svcs:RequestHeader/x-env": "PROD"}}),
            with("vpc-lattice-svcs:RequestHeader/x-env", "prod"),
            ALLOW,
        ),
        (
            "StringEquals is case-sensitive",
            json!({"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-env": "PROD"}}),
            with("vpc-lattice-svcs:RequestHeader/x-env", "prod"),
            NO,
        ),
        (
            "StringEquals has no wildcards",
            json!({"StringEquals": {"vpc-lattice-svcs:RequestPath": "/rates*"}}),
            with("vpc-lattice-svcs:RequestPath", "/rates/x"),
            NO,
        ),
        (
            "StringLike",
            json!({"StringLike": {"vpc-lattice-svcs:RequestPath": "/rates/?sd"}}),
            with("vpc-lattice-svcs:RequestPath", "/rates/usd"),
            ALLOW,
        ),
        (
            "StringNotLike",
            json!({"StringNotLike": {"vpc-lattice-svcs:RequestPath": "/admin*"}}),
            with("vpc-lattice-svcs:RequestPath", "/admin/x"),
            NO,
        ),
        (
            "number coerced to string",
            json!({"StringEquals": {"vpc-lattice-svcs:Port": 443}}),
            port("443"),
            ALLOW,
        ),
        // Numeric
        (
            "NumericEquals",
            json!({"NumericEquals": {"vpc-lattice-svcs:Port": 443}}),
            port("443"),
            ALLOW,
        ),
        (
            "NumericEquals across forms",
            json!({"NumericEquals": {"vpc-lattice-svcs:Port": "443.0"}}),
            port("443"),
            ALLOW,
        ),
        (
            "NumericNotEquals",
            json!({"NumericNotEquals": {"vpc-lattice-svcs:Port": 443}}),
            port("80"),
            ALLOW,
        ),
        (
            "NumericLessThan true",
            json!({"NumericLessThan": {"vpc-lattice-svcs:Port": 1024}}),
            port("80"),
            ALLOW,
        ),
        (
            "NumericLessThan false at bound",
            json!({"NumericLessThan": {"vpc-lattice-svcs:Port": 1024}}),
            port("1024"),
            NO,
        ),
        (
            "NumericLessThanEquals at bound",
            json!({"NumericLessThanEquals": {"vpc-lattice-svcs:Port": 1024}}),
            port("1024"),
            ALLOW,
        ),
        (
            "NumericGreaterThan",
            json!({"NumericGreaterThan": {"vpc-lattice-svcs:Port": 1024}}),
            port("8080"),
            ALLOW,
        ),
        (
            "NumericGreaterThanEquals",
            json!({"NumericGreaterThanEquals": {"vpc-lattice-svcs:Port": 1024}}),
            port("1023"),
            NO,
        ),
        (
            "unparsable request number",
            json!({"NumericGreaterThan": {"vpc-lattice-svcs:Port": 0}}),
            port("http"),
            NO,
        ),
        // Date
        (
            "DateLessThan",
            json!({"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}),
            now("2026-06-01T12:00:00Z"),
            ALLOW,
        ),
        (
            "DateLessThan expired",
            json!({"DateLessThan": {"aws:CurrentTime": "2025-01-01T00:00:00Z"}}),
            now("2026-06-01T12:00:00Z"),
            NO,
        ),
        (
            "DateGreaterThanEquals with offsets",
            json!({"DateGreaterThanEquals": {"aws:CurrentTime": "2026-06-01T14:00:00+02:00"}}),
            now("2026-06-01T12:00:00Z"),
            ALLOW,
        ),
        (
            "DateEquals date vs datetime",
            json!({"DateEquals": {"aws:CurrentTime": "2026-06-01"}}),
            now("2026-06-01T00:00:00Z"),
            ALLOW,
        ),
        (
            "DateNotEquals",
            json!({"DateNotEquals": {"aws:CurrentTime": "2026-06-01"}}),
            now("2026-06-02"),
            ALLOW,
        ),
        (
            "Date against epoch",
            json!({"DateGreaterThan": {"aws:EpochTime": "2020-01-01T00:00:00Z"}}),
            with("aws:EpochTime", "1780000000"),
            ALLOW,
        ),
        (
            "DateLessThanEquals",
            json!({"DateLessThanEquals": {"aws:CurrentTime": 1780000000}}),
            now("2026-05-28T20:26:40Z"),
            ALLOW,
        ),
        // Bool
        (
            "Bool true",
            json!({"Bool": {"aws:SecureTransport": "true"}}),
            with("aws:SecureTransport", "true"),
            ALLOW,
        ),
        (
            "Bool case-insensitive",
            json!({"Bool": {"aws:SecureTransport": true}}),
            with("aws:SecureTransport", "True"),
            ALLOW,
        ),
        (
            "Bool mismatch",
            json!({"Bool": {"aws:SecureTransport": "true"}}),
            with("aws:SecureTransport", "false"),
            NO,
        ),
        (
            "BoolIfExists absent",
            json!({"BoolIfExists": {"aws:SecureTransport": "true"}}),
            role("/"),
            ALLOW,
        ),
        // Binary
        (
            "BinaryEquals",
            json!({"BinaryEquals": {"aws:Key": "QmluYXJ5"}}),
            with("aws:Key", "QmluYXJ5"),
            ALLOW,
        ),
        // IP
        (
            "IpAddress in CIDR",
            json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            ip("10.1.2.3"),
            ALLOW,
        ),
        (
            "IpAddress outside",
            json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            ip("192.168.0.1"),
            NO,
        ),
        (
            "IpAddress single address",
            json!({"IpAddress": {"aws:SourceIp": "192.168.0.1"}}),
            ip("192.168.0.1"),
            ALLOW,
        ),
        (
            "IpAddress IPv6",
            json!({"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}),
            ip("2001:db8::1"),
            ALLOW,
        ),
        (
            "IpAddress family mismatch",
            json!({"IpAddress": {"aws:SourceIp": "::/0"}}),
            ip("10.0.0.1"),
            NO,
        ),
        (
            "NotIpAddress",
            json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            ip("192.168.0.1"),
            ALLOW,
        ),
        (
            "NotIpAddress inside",
            json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
            ip("10.0.0.1"),
            NO,
        ),
        (
            "IpAddress, request not an IP",
            json!({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}),
            ip("localhost"),
            NO,
        ),
        // ARN
        (
            "ArnEquals",
            json!({"ArnEquals": {"vpc-lattice-svcs:ServiceArn": SVC}}),
            with("vpc-lattice-svcs:ServiceArn", SVC),
            ALLOW,
        ),
        (
            "ArnLike",
            json!({"ArnLike": {"vpc-lattice-svcs:ServiceNetworkArn": "arn:aws:vpc-lattice:*:111122223333:servicenetwork/*"}}),
            with(
                "vpc-lattice-svcs:ServiceNetworkArn",
                "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0123456789abcdef0",
            ),
            ALLOW,
        ),
        (
            "ArnLike other account",
            json!({"ArnLike": {"vpc-lattice-svcs:ServiceNetworkArn": "arn:aws:vpc-lattice:*:111122223333:servicenetwork/*"}}),
            with(
                "vpc-lattice-svcs:ServiceNetworkArn",
                "arn:aws:vpc-lattice:us-west-2:444455556666:servicenetwork/sn-0123456789abcdef0",
            ),
            NO,
        ),
        (
            "ArnNotLike",
            json!({"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/admin*"}}),
            role("/"),
            ALLOW,
        ),
        (
            "ArnLike on the derived PrincipalArn",
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/rates-*"}}),
            role("/"),
            ALLOW,
        ),
        (
            "ArnEquals, request not an ARN",
            json!({"ArnEquals": {"vpc-lattice-svcs:ServiceArn": SVC}}),
            with("vpc-lattice-svcs:ServiceArn", "svc-0123456789abcdef0"),
            NO,
        ),
    ]);
}

#[test]
fn policy_variables() {
    let team_policy = |version: &str| {
        json!({"Version": version, "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "*",
            "Resource": format!("{SVC}/teams/${{aws:PrincipalTag/team}}/*"),
        }]})
    };
    let tagged = |team: &str| role("/teams/payments/x").with_key("aws:PrincipalTag/team", team);
    let v2012 = team_policy("2012-10-17");
    run(
        &v2012,
        PolicyKind::Auth,
        vec![
            ("own team", tagged("payments"), ALLOW),
            ("other team", tagged("search"), NO),
            ("untagged", role("/teams/payments/x"), NO),
            ("a wildcard in the tag value is literal", tagged("*"), NO),
        ],
    );
    // 2008-10-17 has no variables: the text is literal.
    let v2008 = team_policy("2008-10-17");
    run(
        &v2008,
        PolicyKind::Auth,
        vec![
            (
                "variables are literal in 2008-10-17",
                tagged("payments"),
                NO,
            ),
            (
                "literal match",
                role("/teams/${aws:PrincipalTag/team}/x"),
                ALLOW,
            ),
        ],
    );
    run_conditions(vec![
        (
            "variable in a condition value",
            json!({"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-team": "${aws:PrincipalTag/team}"}}),
            role("/")
                .with_key("aws:PrincipalTag/team", "payments")
                .with_key("vpc-lattice-svcs:RequestHeader/x-team", "payments"),
            ALLOW,
        ),
        (
            "variable with a default",
            json!({"StringEquals": {"vpc-lattice-svcs:RequestHeader/x-team": "${aws:PrincipalTag/team, 'none'}"}}),
            role("/").with_key("vpc-lattice-svcs:RequestHeader/x-team", "none"),
            ALLOW,
        ),
        (
            "unresolved variable matches nothing",
            json!({"StringLike": {"vpc-lattice-svcs:RequestHeader/x-team": "${aws:PrincipalTag/team}"}}),
            role("/").with_key("vpc-lattice-svcs:RequestHeader/x-team", ""),
            NO,
        ),
    ]);
}

#[test]
fn resource_policies() {
    // A RAM share: another account may associate its VPCs with this service network.
    let share = doc(json!([{
        "Sid": "Share",
        "Effect": "Allow",
        "Principal": {"AWS": ["arn:aws:iam::444455556666:root"]},
        "Action": ["vpc-lattice:CreateServiceNetworkVpcAssociation", "vpc-lattice:GetServiceNetwork"]
    }]));
    let call = |principal: &str, action: &str| {
        RequestContext::new(
            Principal::iam(principal),
            action.to_owned(),
            "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0123456789abcdef0",
        )
    };
    run(
        &share,
        PolicyKind::Resource,
        vec![
            (
                "shared account, listed action",
                call(
                    OTHER_ACCOUNT_USER,
                    "vpc-lattice:CreateServiceNetworkVpcAssociation",
                ),
                "Allow Share",
            ),
            (
                "shared account, other action",
                call(OTHER_ACCOUNT_USER, "vpc-lattice:DeleteServiceNetwork"),
                NO,
            ),
            (
                "unshared account",
                call(ROLE_SESSION, "vpc-lattice:GetServiceNetwork"),
                NO,
            ),
        ],
    );
}

#[test]
fn multiple_statements_report_first_allow() {
    let policy = doc(json!([
        {"Sid": "A", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": format!("{SVC}/a*")},
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Sid": "Never", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    ]));
    run(
        &policy,
        PolicyKind::Auth,
        vec![
            ("first statement", role("/abc"), "Allow A"),
            ("second statement has no sid", role("/xyz"), "Allow #1"),
            (
                "conditional deny",
                role("/abc").with_key("aws:SecureTransport", "false"),
                "Deny Never",
            ),
        ],
    );
    let decision = parse(&policy.to_string(), PolicyKind::Auth)
        .unwrap()
        .evaluate(&role("/abc"));
    assert!(decision.is_allowed());
    assert!(!decision.is_explicit_deny());
    assert_eq!(decision.statement().unwrap().sid.as_deref(), Some("A"));
    assert_eq!(Decision::ImplicitDeny.statement(), None);
}

/// Identity-based policies: the principal is whoever the policy is attached to, actions of any
/// service, explicit deny beating allow.
#[test]
fn identity_based() {
    const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
    let call = |action: &str, resource: &str| {
        RequestContext::new(
            Principal::iam(ALICE),
            action.to_owned(),
            resource.to_owned(),
        )
    };
    let policy = doc(json!([
        {"Sid": "Read", "Effect": "Allow", "Action": ["vpc-lattice:Get*", "vpc-lattice:List*"], "Resource": "*"},
        {"Sid": "Users", "Effect": "Allow", "Action": "iam:*", "Resource": "arn:aws:iam::111122223333:user/team/*"},
        {"Sid": "NoSecret", "Effect": "Deny", "Action": "vpc-lattice:GetService", "Resource": SVC},
    ]));
    run(
        &policy,
        PolicyKind::Identity,
        vec![
            ("list", call("vpc-lattice:ListServices", "*"), "Allow Read"),
            (
                "get other",
                call(
                    "vpc-lattice:GetService",
                    "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-00000000000000000",
                ),
                "Allow Read",
            ),
            (
                "explicit deny",
                call("vpc-lattice:GetService", SVC),
                "Deny NoSecret",
            ),
            ("create", call("vpc-lattice:CreateService", "*"), "Implicit"),
            (
                "action case-insensitive",
                call("VPC-LATTICE:listservices", "*"),
                "Allow Read",
            ),
            (
                "user under path",
                call("iam:CreateUser", "arn:aws:iam::111122223333:user/team/bob"),
                "Allow Users",
            ),
            (
                "user elsewhere",
                call("iam:CreateUser", "arn:aws:iam::111122223333:user/bob"),
                "Implicit",
            ),
            (
                "other service",
                call("lambda:CreateFunction", "*"),
                "Implicit",
            ),
        ],
    );
}

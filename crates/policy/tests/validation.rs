//! Validation fixtures: each case is a document and the exact list of diagnostic paths it produces.

use serde_json::{Value, json};
use trellis_policy::{Diagnostic, PolicyKind, parse};

/// A valid auth policy statement that cases modify.
fn base_statement() -> Value {
    json!({
        "Effect": "Allow",
        "Principal": "*",
        "Action": "vpc-lattice-svcs:Invoke",
        "Resource": "*"
    })
}

/// A policy with one statement: the base statement with `overrides` applied (`null` removes a key).
fn with(overrides: Value) -> String {
    let mut statement = base_statement();
    let target = statement.as_object_mut().unwrap();
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            target.remove(k);
        } else {
            target.insert(k.clone(), v.clone());
        }
    }
    policy(vec![statement])
}

fn policy(statements: Vec<Value>) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// `expected` is a list of (exact path, fragment of the message).
fn check(name: &str, kind: PolicyKind, text: &str, expected: &[(&str, &str)]) {
    let got: Vec<Diagnostic> = match parse(text, kind) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics,
    };
    let got_paths: Vec<&str> = got.iter().map(|d| d.path.as_str()).collect();
    let want_paths: Vec<&str> = expected.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        got_paths, want_paths,
        "case {name}: diagnostics {got:#?}\npolicy: {text}"
    );
    for (d, (_, fragment)) in got.iter().zip(expected) {
        assert!(
            d.message.contains(fragment),
            "case {name}: message {:?} should contain {fragment:?}",
            d.message
        );
    }
}

use PolicyKind::{Auth, Identity, Resource};

/// Expected diagnostics: (exact path, message fragment).
type Expected = Vec<(&'static str, &'static str)>;
/// (case name, kind, whole document, expected).
type DocumentCase = (&'static str, PolicyKind, String, Expected);
/// (case name, kind, overrides applied to the base statement, expected).
type StatementCase = (&'static str, PolicyKind, Value, Expected);
/// (case name, `Condition` element, expected).
type ConditionCase = (&'static str, Value, Expected);

#[test]
fn document_level() {
    let ok = policy(vec![base_statement()]);
    let cases: Vec<DocumentCase> = vec![
        ("valid", Auth, ok.clone(), vec![]),
        (
            "empty",
            Auth,
            String::new(),
            vec![("", "must not be empty")],
        ),
        (
            "blank",
            Resource,
            "  \t ".into(),
            vec![("", "must not be empty")],
        ),
        ("bad json", Auth, "{".into(), vec![("", "not valid JSON")]),
        (
            "trailing garbage",
            Auth,
            format!("{ok}x"),
            vec![("", "not valid JSON")],
        ),
        (
            "array",
            Auth,
            "[]".into(),
            vec![("", "must be a JSON object")],
        ),
        (
            "string",
            Auth,
            "\"*\"".into(),
            vec![("", "must be a JSON object")],
        ),
        (
            "unknown top-level key",
            Auth,
            json!({"Version": "2012-10-17", "Statement": [base_statement()], "Foo": 1}).to_string(),
            vec![("Foo", "unknown key")],
        ),
        (
            "unsupported version",
            Auth,
            json!({"Version": "2020-01-01", "Statement": [base_statement()]}).to_string(),
            vec![("Version", "\"2012-10-17\" or \"2008-10-17\"")],
        ),
        (
            "numeric version",
            Auth,
            json!({"Version": 2012, "Statement": [base_statement()]}).to_string(),
            vec![("Version", "must be")],
        ),
        (
            "no version is fine (Lattice assumes 2008-10-17)",
            Auth,
            json!({"Statement": [base_statement()]}).to_string(),
            vec![],
        ),
        (
            "old version",
            Auth,
            json!({"Version": "2008-10-17", "Id": "x", "Statement": [base_statement()]})
                .to_string(),
            vec![],
        ),
        (
            "id must be a string",
            Auth,
            json!({"Id": 7, "Statement": [base_statement()]}).to_string(),
            vec![("Id", "must be a string")],
        ),
        (
            "missing statement",
            Auth,
            json!({"Version": "2012-10-17"}).to_string(),
            vec![("Statement", "is required")],
        ),
        (
            "empty statement array",
            Auth,
            json!({"Version": "2012-10-17", "Statement": []}).to_string(),
            vec![("Statement", "at least one statement")],
        ),
        (
            "statement is a string",
            Auth,
            json!({"Statement": "Allow"}).to_string(),
            vec![("Statement", "object or an array")],
        ),
        (
            "statement item is not an object",
            Auth,
            json!({"Statement": [base_statement(), 1]}).to_string(),
            vec![("Statement[1]", "must be an object")],
        ),
        (
            "single statement object uses an index-free path",
            Auth,
            json!({"Statement": {"Principal": "*", "Action": "*", "Resource": "*"}}).to_string(),
            vec![("Statement.Effect", "is required")],
        ),
    ];
    for (name, kind, text, expected) in cases {
        check(name, kind, &text, &expected);
    }
}

#[test]
fn length_limits() {
    let ok = policy(vec![base_statement()]);
    // JSON allows trailing whitespace, which makes exact-length documents easy to build.
    let padded = |len: usize| format!("{ok}{}", " ".repeat(len - ok.len()));
    check("auth at limit", Auth, &padded(36_864), &[]);
    check(
        "auth over limit",
        Auth,
        &padded(36_865),
        &[("", "at most 36864 characters")],
    );
    check("resource at limit", Resource, &padded(10_000), &[]);
    check(
        "resource over limit",
        Resource,
        &padded(10_001),
        &[("", "at most 10000 characters")],
    );
    // Over-long and otherwise invalid: both problems are reported.
    let bad = format!("{}{}", with(json!({"Effect": "Maybe"})), " ".repeat(10_000));
    check(
        "over limit and invalid",
        Resource,
        &bad,
        &[("", "at most 10000"), ("Statement[0].Effect", "")],
    );
    // Characters, not bytes: 36,864 multi-byte characters still fit.
    let sid = "é".repeat(36_864 - with(json!({"Sid": ""})).chars().count());
    let text = with(json!({ "Sid": sid }));
    assert_eq!(text.chars().count(), 36_864);
    assert!(text.len() > 36_864);
    check("multi-byte at limit", Auth, &text, &[]);
}

#[test]
fn statement_elements() {
    let cases: Vec<StatementCase> = vec![
        // Effect
        (
            "missing effect",
            Auth,
            json!({"Effect": null}),
            vec![("Statement[0].Effect", "is required")],
        ),
        (
            "lower-case effect",
            Auth,
            json!({"Effect": "allow"}),
            vec![("Statement[0].Effect", "\"Allow\" or \"Deny\"")],
        ),
        (
            "effect not a string",
            Auth,
            json!({"Effect": true}),
            vec![("Statement[0].Effect", "\"Allow\" or \"Deny\"")],
        ),
        ("deny", Auth, json!({"Effect": "Deny"}), vec![]),
        // Unknown keys
        (
            "unknown key",
            Auth,
            json!({"Foo": 1}),
            vec![("Statement[0].Foo", "unknown key")],
        ),
        (
            "misspelt Action reports the typo and the missing element",
            Auth,
            json!({"Action": null, "Actions": "*"}),
            vec![
                ("Statement[0].Actions", "unknown key"),
                ("Statement[0].Action", "Action or NotAction is required"),
            ],
        ),
        // Sid
        ("sid", Auth, json!({"Sid": "AllowAll"}), vec![]),
        (
            "sid not a string",
            Auth,
            json!({"Sid": 1}),
            vec![("Statement[0].Sid", "must be a string")],
        ),
        // Action / NotAction
        (
            "missing action",
            Auth,
            json!({"Action": null}),
            vec![("Statement[0].Action", "Action or NotAction is required")],
        ),
        (
            "action and notaction",
            Auth,
            json!({"NotAction": "vpc-lattice-svcs:Connect"}),
            vec![("Statement[0].NotAction", "cannot be combined with Action")],
        ),
        (
            "notaction alone",
            Auth,
            json!({"Action": null, "NotAction": "vpc-lattice-svcs:Connect"}),
            vec![],
        ),
        ("action star", Auth, json!({"Action": "*"}), vec![]),
        (
            "action service star",
            Auth,
            json!({"Action": "vpc-lattice-svcs:*"}),
            vec![],
        ),
        (
            "action case-insensitive prefix",
            Auth,
            json!({"Action": "VPC-Lattice-Svcs:invoke"}),
            vec![],
        ),
        (
            "action wildcard prefix that can mean lattice",
            Auth,
            json!({"Action": ["*:Invoke", "vpc-lattice-*:Connect"]}),
            vec![],
        ),
        (
            "action other service in auth policy",
            Auth,
            json!({"Action": "s3:GetObject"}),
            vec![("Statement[0].Action", "not supported in an auth policy")],
        ),
        (
            "control-plane action in auth policy",
            Auth,
            json!({"Action": ["vpc-lattice-svcs:Invoke", "vpc-lattice:GetService"]}),
            vec![("Statement[0].Action[1]", "not supported in an auth policy")],
        ),
        (
            "control-plane action in resource policy",
            Resource,
            json!({"Action": ["vpc-lattice:CreateServiceNetworkVpcAssociation", "vpc-lattice:Get*"]}),
            vec![],
        ),
        (
            "action without prefix",
            Auth,
            json!({"Action": "Invoke"}),
            vec![("Statement[0].Action", "expected \"service:Action\"")],
        ),
        (
            "action with empty name",
            Resource,
            json!({"Action": "vpc-lattice:"}),
            vec![("Statement[0].Action", "not a valid action")],
        ),
        (
            "action with two colons",
            Resource,
            json!({"Action": "vpc-lattice:Get:Service"}),
            vec![("Statement[0].Action", "not a valid action")],
        ),
        (
            "action item not a string",
            Auth,
            json!({"Action": ["vpc-lattice-svcs:Invoke", 5]}),
            vec![("Statement[0].Action[1]", "must be a string")],
        ),
        (
            "empty action array",
            Auth,
            json!({"Action": []}),
            vec![("Statement[0].Action", "must not be an empty array")],
        ),
        (
            "action object",
            Auth,
            json!({"Action": {}}),
            vec![("Statement[0].Action", "string or an array of strings")],
        ),
        // Resource / NotResource
        (
            "missing resource in auth policy",
            Auth,
            json!({"Resource": null}),
            vec![(
                "Statement[0].Resource",
                "Resource or NotResource is required",
            )],
        ),
        (
            "missing resource in resource policy",
            Resource,
            json!({"Resource": null, "Action": "vpc-lattice:GetService"}),
            vec![],
        ),
        (
            "resource and notresource",
            Auth,
            json!({"NotResource": "*"}),
            vec![(
                "Statement[0].NotResource",
                "cannot be combined with Resource",
            )],
        ),
        (
            "notresource alone",
            Auth,
            json!({"Resource": null, "NotResource": "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/admin*"}),
            vec![],
        ),
        (
            "resource not an arn",
            Auth,
            json!({"Resource": "svc-0123456789abcdef0"}),
            vec![("Statement[0].Resource", "expected \"*\" or an ARN")],
        ),
        (
            "resource array with a bad item",
            Auth,
            json!({"Resource": ["*", "rates"]}),
            vec![("Statement[0].Resource[1]", "not a valid resource")],
        ),
        (
            "resource path glob",
            Auth,
            json!({"Resource": "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/rates*"}),
            vec![],
        ),
        (
            "auth policy wildcard forms",
            Auth,
            json!({"Resource": ["*/rates", "*/*"]}),
            vec![],
        ),
        // Principal / NotPrincipal
        (
            "missing principal",
            Auth,
            json!({"Principal": null}),
            vec![(
                "Statement[0].Principal",
                "Principal or NotPrincipal is required",
            )],
        ),
        (
            "principal and notprincipal",
            Auth,
            json!({"NotPrincipal": {"AWS": "111122223333"}}),
            vec![(
                "Statement[0].NotPrincipal",
                "cannot be combined with Principal",
            )],
        ),
        (
            "principal bare arn string",
            Auth,
            json!({"Principal": "arn:aws:iam::111122223333:root"}),
            vec![("Statement[0].Principal", "must be \"*\" or an object")],
        ),
        (
            "principal empty object",
            Auth,
            json!({"Principal": {}}),
            vec![("Statement[0].Principal", "at least one principal")],
        ),
        (
            "principal aws forms",
            Auth,
            json!({"Principal": {"AWS": ["*", "111122223333", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:role/app", "arn:aws:sts::111122223333:assumed-role/app/s"]}}),
            vec![],
        ),
        (
            "principal aws bad item",
            Auth,
            json!({"Principal": {"AWS": ["111122223333", "bogus", "1234"]}}),
            vec![
                ("Statement[0].Principal.AWS[1]", "not a valid principal"),
                ("Statement[0].Principal.AWS[2]", "not a valid principal"),
            ],
        ),
        (
            "principal truncated arn",
            Auth,
            json!({"Principal": {"AWS": "arn:aws:iam::111122223333"}}),
            vec![("Statement[0].Principal.AWS", "not a valid principal")],
        ),
        (
            "principal service",
            Resource,
            json!({"Principal": {"Service": "vpc-lattice.amazonaws.com"}}),
            vec![],
        ),
        (
            "principal empty service",
            Resource,
            json!({"Principal": {"Service": ""}}),
            vec![("Statement[0].Principal.Service", "must not be empty")],
        ),
        (
            "principal federated",
            Auth,
            json!({"Principal": {"Federated": "cognito-identity.amazonaws.com"}}),
            vec![(
                "Statement[0].Principal.Federated",
                "unsupported principal type",
            )],
        ),
        (
            "principal number",
            Auth,
            json!({"Principal": 1}),
            vec![("Statement[0].Principal", "must be \"*\"")],
        ),
        (
            "notprincipal alone",
            Auth,
            json!({"Effect": "Deny", "Principal": null, "NotPrincipal": {"AWS": "arn:aws:iam::111122223333:role/admin"}}),
            vec![],
        ),
    ];
    for (name, kind, overrides, expected) in cases {
        check(name, kind, &with(overrides), &expected);
    }
}

#[test]
fn sids_are_unique() {
    let sid = |s: &str| {
        let mut st = base_statement();
        st["Sid"] = json!(s);
        st
    };
    check(
        "duplicate sid",
        Auth,
        &policy(vec![sid("A"), sid("B"), sid("A"), sid("A")]),
        &[
            (
                "Statement[2].Sid",
                "duplicate Sid \"A\" (also used by Statement[0])",
            ),
            ("Statement[3].Sid", "duplicate Sid \"A\""),
        ],
    );
    check(
        "sids differing in case are distinct",
        Auth,
        &policy(vec![sid("a"), sid("A")]),
        &[],
    );
}

#[test]
fn conditions() {
    let cond = |c: Value| with(json!({ "Condition": c }));
    let cases: Vec<ConditionCase> = vec![
        (
            "every operator family",
            json!({
                "StringEquals": {"vpc-lattice-svcs:RequestMethod": "GET"},
                "StringNotEquals": {"aws:PrincipalOrgID": ["o-1", "o-2"]},
                "StringEqualsIgnoreCase": {"vpc-lattice-svcs:RequestHeader/x-env": "prod"},
                "StringNotEqualsIgnoreCase": {"aws:PrincipalType": "anonymous"},
                "StringLike": {"vpc-lattice-svcs:RequestPath": "/rates*"},
                "StringNotLike": {"vpc-lattice-svcs:RequestPath": "/admin*"},
                "NumericEquals": {"vpc-lattice-svcs:Port": 443},
                "NumericNotEquals": {"vpc-lattice-svcs:Port": "80"},
                "NumericLessThan": {"vpc-lattice-svcs:Port": 1024},
                "NumericLessThanEquals": {"vpc-lattice-svcs:Port": 1.5e3},
                "NumericGreaterThan": {"vpc-lattice-svcs:Port": 0},
                "NumericGreaterThanEquals": {"vpc-lattice-svcs:Port": -1},
                "DateEquals": {"aws:CurrentTime": "2024-01-01"},
                "DateNotEquals": {"aws:CurrentTime": "2024-01-01T00:00:00Z"},
                "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00.000Z"},
                "DateLessThanEquals": {"aws:EpochTime": 1893456000},
                "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00+02:00"},
                "DateGreaterThanEquals": {"aws:CurrentTime": "2020-01-01T00:00Z"},
                "Bool": {"aws:SecureTransport": true},
                "BoolIfExists": {"aws:ViaAWSService": "false"},
                "BinaryEquals": {"aws:Key": "QmluYXJ5"},
                "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"]},
                "NotIpAddress": {"aws:SourceIp": "10.1.0.0/16"},
                "ArnEquals": {"vpc-lattice-svcs:ServiceArn": "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0"},
                "ArnLike": {"vpc-lattice-svcs:ServiceNetworkArn": "arn:aws:vpc-lattice:*:111122223333:servicenetwork/*"},
                "ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/bad"},
                "ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/bad-*"},
                "Null": {"aws:PrincipalOrgID": "false"},
                "ForAnyValue:StringEquals": {"vpc-lattice-svcs:RequestQueryString/color": ["red", "blue"]},
                "ForAllValues:StringLikeIfExists": {"aws:PrincipalOrgPaths": "o-1/r-1/*"},
                "StringEqualsIfExists": {"vpc-lattice-svcs:SourceVpc": "vpc-1a2b3c4d"}
            }),
            vec![],
        ),
        ("empty condition block is allowed", json!({}), vec![]),
        (
            "condition not an object",
            json!("StringEquals"),
            vec![("Statement[0].Condition", "must be an object")],
        ),
        (
            "unknown operator",
            json!({"StringEqual": {"aws:PrincipalType": "User"}}),
            vec![(
                "Statement[0].Condition.StringEqual",
                "unknown condition operator",
            )],
        ),
        (
            "unknown set qualifier",
            json!({"ForSomeValues:StringEquals": {"aws:PrincipalType": "User"}}),
            vec![(
                "Statement[0].Condition.ForSomeValues:StringEquals",
                "unknown condition operator",
            )],
        ),
        (
            "NullIfExists",
            json!({"NullIfExists": {"aws:PrincipalOrgID": "true"}}),
            vec![("Statement[0].Condition.NullIfExists", "IfExists")],
        ),
        (
            "ForAnyValue:Null",
            json!({"ForAnyValue:Null": {"aws:PrincipalOrgID": "true"}}),
            vec![("Statement[0].Condition.ForAnyValue:Null", "ForAnyValue")],
        ),
        (
            "operator body not an object",
            json!({"StringEquals": ["aws:PrincipalType", "User"]}),
            vec![("Statement[0].Condition.StringEquals", "must be an object")],
        ),
        (
            "key without prefix",
            json!({"StringEquals": {"PrincipalType": "User"}}),
            vec![(
                "Statement[0].Condition.StringEquals.PrincipalType",
                "not a condition key",
            )],
        ),
        (
            "key problems are still found under an unknown operator",
            json!({"StringEqual": {"PrincipalType": "User"}}),
            vec![
                (
                    "Statement[0].Condition.StringEqual",
                    "unknown condition operator",
                ),
                (
                    "Statement[0].Condition.StringEqual.PrincipalType",
                    "not a condition key",
                ),
            ],
        ),
        (
            "no values",
            json!({"StringEquals": {"aws:PrincipalType": []}}),
            vec![(
                "Statement[0].Condition.StringEquals.aws:PrincipalType",
                "at least one value",
            )],
        ),
        (
            "object value",
            json!({"StringEquals": {"aws:PrincipalType": {"a": 1}}}),
            vec![(
                "Statement[0].Condition.StringEquals.aws:PrincipalType",
                "string, number or boolean",
            )],
        ),
        (
            "null value in array",
            json!({"StringEquals": {"aws:PrincipalType": ["User", null]}}),
            vec![(
                "Statement[0].Condition.StringEquals.aws:PrincipalType[1]",
                "string, number or boolean",
            )],
        ),
        (
            "bad number",
            json!({"NumericLessThan": {"vpc-lattice-svcs:Port": ["80", "eighty", "inf"]}}),
            vec![
                (
                    "Statement[0].Condition.NumericLessThan.vpc-lattice-svcs:Port[1]",
                    "not a number",
                ),
                (
                    "Statement[0].Condition.NumericLessThan.vpc-lattice-svcs:Port[2]",
                    "not a number",
                ),
            ],
        ),
        (
            "bad date",
            json!({"DateLessThan": {"aws:CurrentTime": "next tuesday"}}),
            vec![(
                "Statement[0].Condition.DateLessThan.aws:CurrentTime",
                "not an ISO 8601 date",
            )],
        ),
        (
            "bad ip",
            json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/33"}}),
            vec![(
                "Statement[0].Condition.IpAddress.aws:SourceIp",
                "not an IP address or CIDR",
            )],
        ),
        (
            "bad bool",
            json!({"Bool": {"aws:SecureTransport": "yes"}}),
            vec![(
                "Statement[0].Condition.Bool.aws:SecureTransport",
                "\"true\" or \"false\"",
            )],
        ),
        (
            "bad null",
            json!({"Null": {"aws:PrincipalOrgID": "maybe"}}),
            vec![(
                "Statement[0].Condition.Null.aws:PrincipalOrgID",
                "\"true\" or \"false\"",
            )],
        ),
        (
            "operator names are case-insensitive",
            json!({"stringequals": {"aws:PrincipalType": "User"}}),
            vec![],
        ),
    ];
    for (name, condition, expected) in cases {
        check(name, Auth, &cond(condition), &expected);
    }
}

#[test]
fn all_problems_are_reported_in_document_order() {
    let text = json!({
        "Version": "2012-10-17",
        "Extra": true,
        "Statement": [
            {
                "Sid": "One",
                "Effect": "Permit",
                "Principal": {"AWS": "someone"},
                "Action": "s3:GetObject",
                "Resource": "bucket",
                "Condition": {"StringEquals": {"aws:PrincipalType": []}}
            },
            {"Sid": "One", "Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"}
        ]
    })
    .to_string();
    check(
        "many problems",
        Auth,
        &text,
        &[
            ("Extra", "unknown key"),
            ("Statement[0].Effect", "\"Allow\" or \"Deny\""),
            ("Statement[0].Principal.AWS", "not a valid principal"),
            ("Statement[0].Action", "not supported in an auth policy"),
            ("Statement[0].Resource", "not a valid resource"),
            (
                "Statement[0].Condition.StringEquals.aws:PrincipalType",
                "at least one value",
            ),
            ("Statement[1].Sid", "duplicate Sid"),
        ],
    );
}

#[test]
fn diagnostic_display() {
    assert_eq!(
        Diagnostic::new("Statement[0].Effect", "is required").to_string(),
        "Statement[0].Effect: is required"
    );
    assert_eq!(
        Diagnostic::new("", "policy must not be empty").to_string(),
        "policy must not be empty"
    );
}

#[test]
fn to_json_and_normalization() {
    let text = r#"{"Statement":{"Condition":{"Bool":{"aws:SecureTransport":"true"}},"Resource":"*","Action":"vpc-lattice-svcs:Invoke","Principal":"*","Effect":"Allow","Sid":"S"}}"#;
    let p = parse(text, Auth).unwrap();
    assert_eq!(p.to_json(), serde_json::from_str::<Value>(text).unwrap());
    assert_eq!(p.to_json().to_string(), text, "key order is preserved");
    assert_eq!(p.version(), None);
    assert_eq!(p.kind(), Auth);
    assert_eq!(p.statement_count(), 1);
    assert_eq!(
        p.to_normalized_json().to_string(),
        r#"{"Version":"2008-10-17","Statement":[{"Sid":"S","Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#
    );
}

#[test]
fn identity_policies() {
    let ok = |action: &str| json!({"Effect": "Allow", "Action": action, "Resource": "*"});
    let cases: Vec<DocumentCase> = vec![
        (
            "lattice actions",
            Identity,
            policy(vec![ok("vpc-lattice:*")]),
            vec![],
        ),
        (
            "every service",
            Identity,
            policy(vec![
                ok("lambda:CreateFunction"),
                ok("iam:*"),
                ok("sts:GetCallerIdentity"),
                ok("tag:GetResources"),
                ok("*"),
                json!({"Effect": "Deny", "NotAction": "vpc-lattice:Get*", "NotResource": "arn:aws:vpc-lattice:*:*:service/*"}),
            ]),
            vec![],
        ),
        (
            "principal refused",
            Identity,
            policy(vec![
                json!({"Effect": "Allow", "Principal": "*", "Action": "iam:*", "Resource": "*"}),
            ]),
            vec![(
                "Statement[0].Principal",
                "not allowed in an identity-based policy",
            )],
        ),
        (
            "not principal refused",
            Identity,
            policy(vec![
                json!({"Effect": "Deny", "NotPrincipal": {"AWS": "111122223333"}, "Action": "iam:*", "Resource": "*"}),
            ]),
            vec![(
                "Statement[0].NotPrincipal",
                "not allowed in an identity-based policy",
            )],
        ),
        (
            "resource required",
            Identity,
            policy(vec![json!({"Effect": "Allow", "Action": "iam:*"})]),
            vec![(
                "Statement[0].Resource",
                "Resource or NotResource is required",
            )],
        ),
        (
            "action still checked",
            Identity,
            policy(vec![ok("CreateService")]),
            vec![("Statement[0].Action", "not a valid action")],
        ),
        (
            "data-plane action allowed too",
            Identity,
            policy(vec![ok("vpc-lattice-svcs:Invoke")]),
            vec![],
        ),
    ];
    for (name, kind, text, expected) in cases {
        check(name, kind, &text, &expected);
    }
    // The limit: 6,144 characters.
    let ok = policy(vec![ok("iam:*")]);
    let padded = |len: usize| format!("{ok}{}", " ".repeat(len - ok.len()));
    check("identity at limit", Identity, &padded(6_144), &[]);
    check(
        "identity over limit",
        Identity,
        &padded(6_145),
        &[(
            "",
            "an identity-based policy may be at most 6144 characters",
        )],
    );
}

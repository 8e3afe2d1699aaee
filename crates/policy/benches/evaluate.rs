//! Evaluation micro-benchmark (std only, `harness = false`): `cargo bench -p trellis-policy`.
//!
//! Criterion is the project's benchmark tool of choice but is not a workspace dependency yet; this
//! keeps a number on the hot path until it is. It times a typical two-statement service policy
//! against an allowed and a denied request, and the parse of that policy.

use std::hint::black_box;
use std::time::Instant;

use trellis_policy::{PolicyKind, Principal, RequestContext, parse};

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"AuthenticatedOrg","Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke",
   "Resource":"arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/*",
   "Condition":{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"},
                "StringEquals":{"aws:PrincipalOrgID":"o-123abc"},
                "IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}},
  {"Sid":"DenyAdmin","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/admin"},
   "Action":"*","Resource":"arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/admin*"}
]}"#;

fn time(name: &str, iterations: u32, mut f: impl FnMut()) {
    for _ in 0..iterations / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    let per = start.elapsed() / iterations;
    println!("{name:<32} {per:>10.2?} per iteration");
}

fn main() {
    let policy = parse(POLICY, PolicyKind::Auth).expect("benchmark policy is valid");
    let ctx = |path: &str| {
        RequestContext::new(
            Principal::iam("arn:aws:sts::111122223333:assumed-role/app/i-0abc"),
            "vpc-lattice-svcs:Invoke",
            format!(
                "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0{path}"
            ),
        )
        .with_key("aws:PrincipalOrgID", "o-123abc")
        .with_key("aws:SourceIp", "10.1.2.3")
    };
    let allowed = ctx("/rates/usd");
    let denied = ctx("/admin/users");
    assert!(policy.evaluate(&allowed).is_allowed());
    assert!(policy.evaluate(&denied).is_explicit_deny());

    time("evaluate (allow)", 200_000, || {
        black_box(policy.evaluate(black_box(&allowed)));
    });
    time("evaluate (explicit deny)", 200_000, || {
        black_box(policy.evaluate(black_box(&denied)));
    });
    time("parse", 20_000, || {
        black_box(parse(black_box(POLICY), PolicyKind::Auth).is_ok());
    });
}

//! Hostile-input smoke test: thousands of mutated policies must never panic the parser or evaluator.
//!
//! Policies arrive from API callers, so the parser is an attack surface. This is a dependency-free,
//! deterministic stand-in for a fuzz target: a fixed-seed generator mutates valid documents (byte
//! edits plus splices of policy-language tokens) and every result is parsed as both kinds and, when
//! accepted, evaluated and re-parsed from its own `to_json`.

use trellis_policy::{PolicyKind, Principal, RequestContext, parse};

const SEEDS: &[&str] = &[
    r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*","Condition":{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"}}}]}"#,
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","NotPrincipal":{"AWS":["111122223333","arn:aws:iam::111122223333:role/a*"]},"NotAction":"vpc-lattice-svcs:Connect","NotResource":"arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/${aws:PrincipalTag/t, 'x'}/*"}}"#,
    r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*","Service":"s.amazonaws.com"},"Action":["*"],"Resource":["*"],"Condition":{"ForAllValues:StringLikeIfExists":{"vpc-lattice-svcs:RequestQueryString/q":["a*","?b"]},"NumericLessThan":{"vpc-lattice-svcs:Port":[1024,"8080"]},"DateGreaterThan":{"aws:CurrentTime":"2020-01-01"},"IpAddress":{"aws:SourceIp":["10.0.0.0/8","::1"]},"Null":{"aws:PrincipalOrgID":"false"},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"},"Bool":{"aws:SecureTransport":true}}}]}"#,
];

/// Tokens spliced in to reach deeper than random bytes would.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "*",
    "?",
    "${",
    "}",
    "null",
    "true",
    "1e308",
    "-0",
    "\"\"",
    "\"Effect\"",
    "\"Allow\"",
    "\"Deny\"",
    "\"Condition\"",
    "\"ForAnyValue:\"",
    "IfExists",
    "\\u0000",
    "é",
    "\u{10FFFF}",
    "arn:",
    "aws:",
    "/",
    "0.0.0.0/0",
    "[]",
    "{}",
    "\"Statement\"",
];

/// xorshift64*: deterministic, so a failure reproduces from its iteration number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            1 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                bytes.splice(at..at, token.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = (rng.next() & 0x7f) as u8;
            }
            _ => {
                let start = rng.below(bytes.len() + 1);
                let end = (start + rng.below(32)).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn mutated_policies_never_panic() {
    let contexts = [
        RequestContext::new(
            Principal::Anonymous,
            "vpc-lattice-svcs:Invoke",
            "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/x",
        ),
        RequestContext::new(
            Principal::iam("arn:aws:sts::111122223333:assumed-role/a/s"),
            "vpc-lattice-svcs:Connect",
            "",
        )
        .with_key("aws:PrincipalTag/t", "*")
        .with_values("vpc-lattice-svcs:RequestQueryString/q", ["a", "é", ""])
        .with_key("vpc-lattice-svcs:Port", "not-a-number")
        .with_key("aws:CurrentTime", "2024-02-30")
        .with_key("aws:SourceIp", "::ffff:10.0.0.1"),
    ];
    let mut rng = Rng(0x5EED_0F7E_1115);
    let mut accepted = 0;
    for iteration in 0..20_000 {
        let seed = SEEDS[iteration % SEEDS.len()];
        let text = mutate(&mut rng, seed);
        for kind in [PolicyKind::Auth, PolicyKind::Resource] {
            let Ok(policy) = parse(&text, kind) else {
                continue;
            };
            accepted += 1;
            for ctx in &contexts {
                let _ = policy.evaluate(ctx);
            }
            let again = policy.to_json().to_string();
            assert!(
                parse(&again, kind).is_ok(),
                "iteration {iteration}: re-parsing to_json failed for {again}"
            );
            let normalized = policy.to_normalized_json().to_string();
            assert!(
                parse(&normalized, kind).is_ok(),
                "iteration {iteration}: normalized form rejected: {normalized}"
            );
        }
    }
    // The mutations must leave some documents valid, or the evaluator is not being exercised.
    assert!(accepted > 1_000, "only {accepted} mutated policies parsed");
}

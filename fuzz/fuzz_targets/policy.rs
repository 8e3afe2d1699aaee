//! The IAM policy language: parse arbitrary text as both kinds of policy, and evaluate what
//! parses against a request context taken from the same input.
//!
//! Input: the policy text, then optionally a NUL byte and the context, one item per line:
//! principal ARN (empty for an anonymous caller), action, resource, then `key=value` condition
//! keys. Invariants beyond "no panic":
//! * a policy that parses re-parses from its own `to_json()` and from `to_normalized_json()`
//!   (what the API stores and returns), and both copies decide every request the same way;
//! * a deciding statement is one of the policy's statements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_policy::{Decision, Policy, PolicyKind, Principal, RequestContext, parse};

fn context(text: &str) -> RequestContext<'static> {
    let mut lines = text.lines();
    let principal = match lines.next().unwrap_or("") {
        "" => Principal::Anonymous,
        arn => Principal::iam(arn),
    };
    let action = lines.next().unwrap_or("vpc-lattice-svcs:Invoke");
    let resource = lines
        .next()
        .unwrap_or("arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/path");
    let mut ctx = RequestContext::new(principal, action.to_owned(), resource.to_owned());
    for line in lines {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        ctx = ctx.with_key(key, value);
    }
    ctx
}

fn check_statement(policy: &Policy, decision: &Decision) {
    if let Some(statement) = decision.statement() {
        assert!(statement.index < policy.statement_count().max(1));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (policy_text, context_text) = text.split_once('\0').unwrap_or((text, ""));
    let ctx = context(context_text);
    for kind in [PolicyKind::Auth, PolicyKind::Resource] {
        let Ok(policy) = parse(policy_text, kind) else {
            continue;
        };
        let decision = policy.evaluate(&ctx);
        check_statement(&policy, &decision);
        for copy in [policy.to_json(), policy.to_normalized_json()] {
            let copy_text = copy.to_string();
            let reparsed = parse(&copy_text, kind).unwrap_or_else(|e| {
                panic!("{copy_text} (from {policy_text:?}) does not re-parse: {e:?}")
            });
            assert_eq!(reparsed.statement_count(), policy.statement_count());
            assert_eq!(
                reparsed.evaluate(&ctx),
                decision,
                "{copy_text} decides differently from {policy_text:?}"
            );
        }
    }
});

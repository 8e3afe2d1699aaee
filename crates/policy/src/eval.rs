//! Policy evaluation: explicit Deny wins, then any Allow, otherwise the implicit deny.
//!
//! This evaluates *one* policy. Lattice requires an Allow from every enabled layer (identity policy,
//! service-network auth policy, service auth policy) with an explicit Deny anywhere winning; combining
//! the layers and choosing the error text (`network-based` / `service-based`) is the caller's job,
//! because only the caller knows which layers are enabled.

use crate::context::{Principal, RequestContext, assumed_role};
use crate::glob;
use crate::policy::{Effect, Negatable, Policy, PrincipalPattern, Statement};

/// The statement that decided an evaluation, for logs and error messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatementRef {
    /// Position in the `Statement` array (0 when `Statement` is a single object).
    pub index: usize,
    pub sid: Option<String>,
}

/// The outcome of evaluating one policy against one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decision {
    /// At least one Allow statement matched and no Deny statement did. Carries the first matching
    /// Allow statement.
    Allow(StatementRef),
    /// A Deny statement matched. Carries the first one; no other statement can change the outcome.
    ExplicitDeny(StatementRef),
    /// Nothing matched.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn is_explicit_deny(&self) -> bool {
        matches!(self, Decision::ExplicitDeny(_))
    }

    /// The deciding statement, if any.
    pub fn statement(&self) -> Option<&StatementRef> {
        match self {
            Decision::Allow(s) | Decision::ExplicitDeny(s) => Some(s),
            Decision::ImplicitDeny => None,
        }
    }
}

impl Policy {
    /// Evaluates the policy for a request.
    pub fn evaluate(&self, ctx: &RequestContext) -> Decision {
        let mut allow: Option<usize> = None;
        for (index, statement) in self.statements.iter().enumerate() {
            // A later Deny still overrides an earlier Allow, so Allow only records and carries on.
            if statement.effect == Effect::Allow && allow.is_some() {
                continue;
            }
            if !statement.applies(ctx) {
                continue;
            }
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny(self.statement_ref(index)),
                Effect::Allow => allow = Some(index),
            }
        }
        match allow {
            Some(index) => Decision::Allow(self.statement_ref(index)),
            None => Decision::ImplicitDeny,
        }
    }

    fn statement_ref(&self, index: usize) -> StatementRef {
        StatementRef {
            index,
            sid: self.statements[index].sid.clone(),
        }
    }
}

impl Statement {
    /// Whether every element of the statement matches. Cheapest checks first.
    fn applies(&self, ctx: &RequestContext) -> bool {
        negatable(&self.action, |p| glob::matches(p, &ctx.action, true))
            && self.resource.as_ref().is_none_or(|r| {
                negatable(r, |t| {
                    t.pattern(ctx)
                        .is_some_and(|p| glob::matches(&p, &ctx.resource, false))
                })
            })
            && negatable(&self.principal, |p| principal_matches(p, &ctx.principal))
            && self.conditions.iter().all(|c| c.holds(ctx))
    }
}

/// `X`: any item matches. `NotX`: no item matches.
fn negatable<T>(list: &Negatable<T>, item_matches: impl Fn(&T) -> bool) -> bool {
    list.items.iter().any(item_matches) != list.negated
}

fn principal_matches(pattern: &PrincipalPattern, principal: &Principal) -> bool {
    match (pattern, principal) {
        (PrincipalPattern::Everyone, _) => true,
        (_, Principal::Anonymous) => false,
        (PrincipalPattern::Service(_), _) => false,
        (PrincipalPattern::Account(id), Principal::Iam { account, .. }) => id == account,
        (PrincipalPattern::Arn { text, pattern }, Principal::Iam { arn, .. }) => {
            glob::matches(pattern, arn, false) || session_of_role(text, arn)
        }
    }
}

/// IAM resolves a role ARN in `Principal` to the role, so it matches every session of that role
/// (`arn:aws:sts::A:assumed-role/NAME/session`). Role paths do not appear in session ARNs, hence the
/// comparison on the last path segment.
fn session_of_role(pattern: &str, arn: &str) -> bool {
    let Some(session) = assumed_role(arn) else {
        return false;
    };
    let mut parts = pattern.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let Some(role_path) = resource.strip_prefix("role/") else {
        return false;
    };
    let name = role_path.rsplit('/').next().unwrap_or(role_path);
    let name_matches = if name.contains(['*', '?']) {
        glob::matches(&glob::compile(name), session.role, false)
    } else {
        name == session.role
    };
    partition == session.partition && account == session.account && name_matches
}

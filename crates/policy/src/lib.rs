//! IAM policy language for Trellis: parse and validate policy documents, then evaluate them.
//!
//! Two kinds of documents use this language in VPC Lattice (see `lattice-behaviour.md` §7):
//!
//! - **auth policies** ([`PolicyKind::Auth`]) on service networks and services, evaluated by the data
//!   plane for every request with the `vpc-lattice-svcs:Invoke` / `vpc-lattice-svcs:Connect` actions;
//! - **resource policies** ([`PolicyKind::Resource`]), the RAM sharing permissions with control-plane
//!   `vpc-lattice:*` actions.
//!
//! and IAM's **identity-based policies** ([`PolicyKind::Identity`]), attached to an IAM user: they
//! name no principal (the principal is whoever they are attached to) and may grant actions of any
//! service (`vpc-lattice:*`, `lambda:*`, `iam:*`, `sts:*`, `tag:*`).
//!
//! The crate is pure: no I/O, no clock, no async. Everything time-dependent (`aws:CurrentTime`) comes in
//! through the [`RequestContext`]. Parsing collects *every* problem as a [`Diagnostic`] with a JSON-ish
//! path (`Statement[0].Condition.StringEquals.aws:PrincipalType`) instead of stopping at the first, so
//! the API can return one complete error message.
//!
//! ```
//! use trellis_policy::{parse, Decision, PolicyKind, Principal, RequestContext};
//!
//! let policy = parse(
//!     r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
//!         "Action":"vpc-lattice-svcs:Invoke","Resource":"*",
//!         "Condition":{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"}}}]}"#,
//!     PolicyKind::Auth,
//! )
//! .unwrap();
//!
//! let anonymous = RequestContext::new(Principal::Anonymous, "vpc-lattice-svcs:Invoke", "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/");
//! assert_eq!(policy.evaluate(&anonymous), Decision::ImplicitDeny);
//!
//! let signed = RequestContext::new(
//!     Principal::iam("arn:aws:iam::111122223333:role/app"),
//!     "vpc-lattice-svcs:Invoke",
//!     "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0/",
//! );
//! assert!(policy.evaluate(&signed).is_allowed());
//! ```

mod condition;
mod context;
mod diagnostic;
mod eval;
mod glob;
mod parse;
mod policy;
mod template;

pub use context::{ContextKeys, KeySource, KeyValues, Principal, RequestContext};
pub use diagnostic::Diagnostic;
pub use eval::{Decision, StatementRef};
pub use parse::parse;
pub use policy::{Effect, Policy, Version};

/// Longest auth policy the Lattice API accepts (`PutAuthPolicy`, `policy` member), in characters.
pub const AUTH_POLICY_MAX_CHARS: usize = 36_864;

/// Longest resource policy the Lattice API accepts (`PutResourcePolicy`, `policy` member), in characters.
pub const RESOURCE_POLICY_MAX_CHARS: usize = 10_000;

/// Longest user inline policy Trellis accepts (`PutUserPolicy`), in characters: IAM's limit for a
/// managed policy document, which Trellis applies to each inline document (docs/decisions.md).
pub const IDENTITY_POLICY_MAX_CHARS: usize = 6_144;

/// Which kind of policy a document is; it decides the length limit and the validation rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// A VPC Lattice auth policy (service network or service). Actions must be `vpc-lattice-svcs:*`
    /// (or `*`), and every statement must name a `Resource` or `NotResource`.
    Auth,
    /// A RAM resource policy on a service, service network or resource configuration. Actions are the
    /// control-plane `vpc-lattice:*` ones; a statement without `Resource` applies to the resource the
    /// policy is attached to.
    Resource,
    /// An IAM identity-based policy (a user's inline policy). `Principal` and `NotPrincipal` are
    /// not allowed, every statement must name a `Resource` or `NotResource`, and actions may be
    /// of any service.
    Identity,
}

impl PolicyKind {
    /// The maximum document length in characters for this kind.
    pub fn max_chars(self) -> usize {
        match self {
            PolicyKind::Auth => AUTH_POLICY_MAX_CHARS,
            PolicyKind::Resource => RESOURCE_POLICY_MAX_CHARS,
            PolicyKind::Identity => IDENTITY_POLICY_MAX_CHARS,
        }
    }
}

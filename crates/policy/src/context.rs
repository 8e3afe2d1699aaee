//! The request side of an evaluation: who is calling, what they do, on what, and the condition keys.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::glob::eq_ignore_case;

/// Condition keys of a request: key name → values. A key may be multi-valued
/// (`vpc-lattice-svcs:RequestQueryString/<key>`, `aws:PrincipalOrgPaths`); a key with an empty list
/// is treated exactly like an absent key.
///
/// Names are looked up case-insensitively, as IAM does; values are compared per condition operator.
pub type ContextKeys = BTreeMap<String, Vec<String>>;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An unsigned request. Only `"Principal": "*"` (or `{"AWS": "*"}`) matches it.
    Anonymous,
    /// A SigV4-authenticated IAM identity: a user, a role session
    /// (`arn:aws:sts::111122223333:assumed-role/Role/session`), a role, or an account root.
    Iam { arn: String, account: String },
}

impl Principal {
    /// An IAM principal whose account is taken from the ARN's account field (the fifth), or left empty
    /// when the ARN has none.
    pub fn iam(arn: impl Into<String>) -> Self {
        let arn = arn.into();
        let account = arn.split(':').nth(4).unwrap_or_default().to_owned();
        Principal::Iam { arn, account }
    }

    /// The value of `aws:PrincipalType`: `Anonymous`, `Account`, `User`, `FederatedUser` or
    /// `AssumedRole` (role ARNs used directly are reported as `AssumedRole`, the only role-ish type).
    pub fn principal_type(&self) -> &'static str {
        match self {
            Principal::Anonymous => "Anonymous",
            Principal::Iam { arn, .. } => {
                let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
                if resource == "root" {
                    "Account"
                } else if resource.starts_with("federated-user/") {
                    "FederatedUser"
                } else if resource.starts_with("assumed-role/") || resource.starts_with("role/") {
                    "AssumedRole"
                } else {
                    "User"
                }
            }
        }
    }

    /// The value of `aws:PrincipalArn`: the caller's ARN, except that a role session reports the role
    /// (`…:sts::A:assumed-role/R/s` → `…:iam::A:role/R`) as IAM does.
    pub fn principal_arn(&self) -> Option<Cow<'_, str>> {
        match self {
            Principal::Anonymous => None,
            Principal::Iam { arn, .. } => Some(match assumed_role(arn) {
                Some(session) => Cow::Owned(format!(
                    "arn:{}:iam::{}:role/{}",
                    session.partition, session.account, session.role
                )),
                None => Cow::Borrowed(arn),
            }),
        }
    }
}

/// The parts of an STS role-session ARN that identify the role.
pub(crate) struct AssumedRole<'a> {
    pub partition: &'a str,
    pub account: &'a str,
    pub role: &'a str,
}

/// Splits `arn:P:sts::A:assumed-role/ROLE/SESSION`; `None` for any other ARN.
pub(crate) fn assumed_role(arn: &str) -> Option<AssumedRole<'_>> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("sts"), Some(_region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let rest = resource.strip_prefix("assumed-role/")?;
    let (role, _session) = rest.split_once('/')?;
    Some(AssumedRole {
        partition,
        account,
        role,
    })
}

/// Condition keys a caller computes only when a policy asks for them: the data plane answers
/// `vpc-lattice-svcs:RequestHeader/<name>` from the request's own header map rather than copying
/// every header into [`ContextKeys`] for every request.
///
/// `key` is the name as the policy spells it (IAM key names are case-insensitive, so an
/// implementation compares ignoring ASCII case). `None` or an empty list means the key is absent.
pub trait KeySource {
    fn values(&self, key: &str) -> Option<KeyValues<'_>>;
}

/// The values of one condition key, borrowed where they can be: most keys have one value that
/// already exists somewhere (the method, the principal's account), and a lookup need not copy it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValues<'a> {
    /// One value.
    One(Cow<'a, str>),
    /// A list kept elsewhere (an explicit key of [`ContextKeys`]).
    List(&'a [String]),
    /// A list computed for this lookup.
    Owned(Vec<String>),
}

impl<'a> KeyValues<'a> {
    /// One borrowed value.
    pub fn one(value: &'a str) -> Self {
        KeyValues::One(Cow::Borrowed(value))
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        match self {
            KeyValues::One(_) => 1,
            KeyValues::List(values) => values.len(),
            KeyValues::Owned(values) => values.len(),
        }
    }

    /// Whether there are none (the key then counts as absent).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th value.
    fn at(&self, i: usize) -> &str {
        match self {
            KeyValues::One(value) => value,
            KeyValues::List(values) => &values[i],
            KeyValues::Owned(values) => &values[i],
        }
    }

    /// The values in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }

    /// The value of a single-valued key (`None` when there are none or several).
    pub fn single(&self) -> Option<&str> {
        (self.len() == 1).then(|| self.at(0))
    }

    /// The values, copied.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }
}

/// Everything an evaluation looks at.
#[derive(Clone)]
pub struct RequestContext<'a> {
    pub principal: Principal,
    /// `service:Action`, e.g. `vpc-lattice-svcs:Invoke`. Compared case-insensitively. Borrowed
    /// or owned, so that a caller evaluating many requests need not copy it for each.
    pub action: Cow<'a, str>,
    /// The resource ARN, e.g. `arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-…/rates`.
    /// Compared case-sensitively.
    pub resource: Cow<'a, str>,
    /// Condition keys. `aws:PrincipalType`, `aws:PrincipalArn` and `aws:PrincipalAccount` need not be
    /// set: when absent they are derived from `principal` (see [`RequestContext::get`]).
    pub keys: ContextKeys,
    /// Keys computed on demand, consulted after [`RequestContext::keys`] and before the derived
    /// principal keys.
    pub source: Option<&'a dyn KeySource>,
}

impl std::fmt::Debug for RequestContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("principal", &self.principal)
            .field("action", &self.action)
            .field("resource", &self.resource)
            .field("keys", &self.keys)
            .field("source", &self.source.is_some())
            .finish()
    }
}

impl<'a> RequestContext<'a> {
    pub fn new(
        principal: Principal,
        action: impl Into<Cow<'a, str>>,
        resource: impl Into<Cow<'a, str>>,
    ) -> Self {
        RequestContext {
            principal,
            action: action.into(),
            resource: resource.into(),
            keys: ContextKeys::new(),
            source: None,
        }
    }

    /// Consults `source` for keys not set explicitly.
    pub fn with_source(mut self, source: &'a dyn KeySource) -> Self {
        self.source = Some(source);
        self
    }

    /// Adds one value to `key` (keys are multi-valued, so repeated calls accumulate).
    pub fn with_key(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.keys.entry(key.into()).or_default().push(value.into());
        self
    }

    /// Sets `key` to exactly `values` (possibly none, which is the same as leaving it out).
    pub fn with_values<I, V>(mut self, key: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.keys
            .insert(key.into(), values.into_iter().map(Into::into).collect());
        self
    }

    /// The values of a condition key, looked up case-insensitively; `None` when the key is absent or
    /// has no values.
    ///
    /// The principal keys are derived from [`RequestContext::principal`] when the caller did not set
    /// them. That matters for safety, not just convenience: the common "authenticated only" policy is
    /// an Allow with `StringNotEqualsIgnoreCase aws:PrincipalType anonymous`, and a negated operator is
    /// *true* for an absent key, so forgetting the key would let anonymous callers in.
    pub fn get(&self, key: &str) -> Option<KeyValues<'_>> {
        let explicit = self.keys.get(key).or_else(|| {
            self.keys
                .iter()
                .find(|(k, _)| eq_ignore_case(k, key))
                .map(|(_, v)| v)
        });
        if let Some(values) = explicit.filter(|v| !v.is_empty()) {
            return Some(KeyValues::List(values.as_slice()));
        }
        if let Some(values) = self
            .source
            .and_then(|s| s.values(key))
            .filter(|v| !v.is_empty())
        {
            return Some(values);
        }
        // An explicitly empty principal key falls back to the derived value too: "no values" must
        // never be a way to make the caller look unknown.
        let derived = if eq_ignore_case(key, "aws:PrincipalType") {
            Cow::Borrowed(self.principal.principal_type())
        } else if eq_ignore_case(key, "aws:PrincipalArn") {
            self.principal.principal_arn()?
        } else if eq_ignore_case(key, "aws:PrincipalAccount") {
            match &self.principal {
                Principal::Iam { account, .. } if !account.is_empty() => {
                    Cow::Borrowed(account.as_str())
                }
                _ => return None,
            }
        } else {
            return None;
        };
        Some(KeyValues::One(derived))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_types() {
        let cases = [
            (Principal::Anonymous, "Anonymous"),
            (Principal::iam("arn:aws:iam::111122223333:root"), "Account"),
            (
                Principal::iam("arn:aws:iam::111122223333:user/alice"),
                "User",
            ),
            (
                Principal::iam("arn:aws:sts::111122223333:assumed-role/app/i-0abc"),
                "AssumedRole",
            ),
            (
                Principal::iam("arn:aws:sts::111122223333:federated-user/bob"),
                "FederatedUser",
            ),
        ];
        for (principal, want) in cases {
            assert_eq!(principal.principal_type(), want, "{principal:?}");
        }
    }

    #[test]
    fn derived_keys_and_case_insensitive_lookup() {
        let ctx = RequestContext::new(
            Principal::iam("arn:aws:sts::111122223333:assumed-role/app/i-0abc"),
            "vpc-lattice-svcs:Invoke",
            "arn",
        )
        .with_key("vpc-lattice-svcs:RequestMethod", "GET")
        .with_values("aws:TagKeys", Vec::<String>::new());
        assert_eq!(
            ctx.get("AWS:PRINCIPALARN").unwrap().to_vec(),
            ["arn:aws:iam::111122223333:role/app"]
        );
        assert_eq!(
            ctx.get("aws:principalaccount").unwrap().to_vec(),
            ["111122223333"]
        );
        assert_eq!(
            ctx.get("VPC-Lattice-Svcs:RequestMethod").unwrap().to_vec(),
            ["GET"]
        );
        assert!(ctx.get("aws:TagKeys").is_none());
        assert!(ctx.get("aws:SourceIp").is_none());

        let emptied = ctx
            .clone()
            .with_values("aws:PrincipalType", Vec::<String>::new());
        assert_eq!(
            emptied.get("aws:PrincipalType").unwrap().to_vec(),
            ["AssumedRole"]
        );

        let overridden = ctx.with_key("aws:PrincipalType", "Custom");
        assert_eq!(
            overridden.get("aws:PrincipalType").unwrap().to_vec(),
            ["Custom"]
        );
    }

    struct Headers;

    impl KeySource for Headers {
        fn values(&self, key: &str) -> Option<KeyValues<'_>> {
            let name = key
                .get(..31)
                .filter(|p| p.eq_ignore_ascii_case("vpc-lattice-svcs:RequestHeader/"))
                .map(|_| &key[31..])?;
            name.eq_ignore_ascii_case("x-team")
                .then(|| KeyValues::Owned(vec!["rates".to_string()]))
        }
    }

    #[test]
    fn a_source_answers_after_explicit_keys_and_before_derived_ones() {
        let source = Headers;
        let ctx = RequestContext::new(Principal::Anonymous, "vpc-lattice-svcs:Invoke", "arn")
            .with_source(&source);
        assert_eq!(
            ctx.get("VPC-LATTICE-SVCS:requestheader/X-Team")
                .unwrap()
                .to_vec(),
            ["rates"]
        );
        assert!(ctx.get("vpc-lattice-svcs:RequestHeader/x-other").is_none());
        // Derived principal keys still come from the principal.
        assert_eq!(
            ctx.get("aws:PrincipalType").unwrap().to_vec(),
            ["Anonymous"]
        );
        // An explicit key wins over the source.
        let explicit = ctx.with_key("vpc-lattice-svcs:RequestHeader/x-team", "other");
        assert_eq!(
            explicit
                .get("vpc-lattice-svcs:RequestHeader/x-team")
                .unwrap()
                .to_vec(),
            ["other"]
        );
    }
}

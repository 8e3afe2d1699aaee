//! The auth stage of the request path: who is calling, and whether every enabled layer lets them
//! invoke what they asked for (reference §6.1 step 4, §6.3, §7; docs/decisions.md "AWS_IAM on
//! the data plane").
//!
//! Nothing happens here for a service whose auth type and whose networks' auth types are all
//! `NONE`: the request is not examined and carries no identity. Otherwise:
//!
//! 1. **Authentication.** A request with an `Authorization` header or a presigned
//!    `X-Amz-Signature` is *signed* and must verify as SigV4 or SigV4A for the signing name
//!    [`SIGNING_NAME`] and this region, with `UNSIGNED-PAYLOAD` as its payload hash (the body is
//!    never read for auth); a session token must be one STS issued and unexpired. Any failure
//!    is a 403 naming the failure (`InvalidSignatureException: Signed payloads are not
//!    supported`, …) even where anonymous callers would be allowed. A request with neither is
//!    *anonymous*. Signatures are verified against the request as received (its raw path); the
//!    policies see the normal form the target receives.
//! 2. **Authorization**, action [`INVOKE`] on `<service ARN><path>`: the caller's identity-based
//!    policies (signed callers only), the service network's auth policy when its auth type is
//!    `AWS_IAM`, the service's when its auth type is `AWS_IAM`. Every enabled layer must allow;
//!    an explicit deny anywhere wins. A missing policy allows nothing. Until client networks
//!    exist a request cannot be attributed to one network, so it must be allowed as if it had
//!    arrived through *each* network the service is associated with (fail closed).
//!
//! Credentials and callers come from a [`Credentials`] source the server sets
//! ([`crate::Proxy::set_credentials`]) over its identity index, so the proxy never reads the
//! store; without one, every signed request is refused as unrecognised. Condition keys are
//! answered on demand from the request ([`Keys`]): a policy that tests no header costs no header
//! copy.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use http::{HeaderMap, Method, Uri, header};
use trellis_model::resources::AuthType;
use trellis_policy::{Decision, KeySource, KeyValues, Policy, Principal, RequestContext};
use trellis_sigv4::{SigV4Error, UNSIGNED_PAYLOAD};
use trellis_snapshot::{NetworkEntry, ServiceEntry};

use crate::error::ProxyError;

/// The signing name of requests to services (`vpc-lattice-svcs`).
pub const SIGNING_NAME: &str = "vpc-lattice-svcs";
/// The action every HTTP and gRPC request is authorized for.
pub const INVOKE: &str = "vpc-lattice-svcs:Invoke";

/// Where the data plane finds secrets and the callers they authenticate. The server implements
/// it over the API's identity index, so a deactivated key, a deleted role or a changed identity
/// policy is in force from the index's next revision on. An implementation may cache what it
/// resolves only for as long as its index stays at one revision and the session is unexpired.
pub trait Credentials: Send + Sync + 'static {
    /// The secret of `access_key_id` (an IAM user's active key, root's, or a session's derived
    /// one) and the caller a request signed with it authenticates once its signature verifies;
    /// `session_token` is the request's `X-Amz-Security-Token`.
    fn resolve(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Resolved, CredentialError>;
}

/// A key's secret and the caller it stands for.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub secret: String,
    pub caller: Arc<dyn Caller>,
}

/// Why a verified signature still authenticates nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// The key is unknown, or its session token is not one STS issued for it.
    Unrecognized,
    /// The session expired.
    Expired,
}

/// An authenticated caller, as the data plane needs it.
pub trait Caller: Send + Sync + std::fmt::Debug {
    /// `arn:aws:iam::<account>:user/…`, `…:root` or `arn:aws:sts::<account>:assumed-role/…`.
    fn arn(&self) -> &str;
    /// A role session's name.
    fn session_name(&self) -> Option<&str>;
    /// Its `aws:PrincipalTag/<key>` values (a role session's tags over its role's).
    fn tags(&self) -> &[(String, String)];
    /// Its organization's ID and its path in it (`o-…/r-…/`), when its account is in one.
    fn org(&self) -> Option<(&str, &str)> {
        None
    }
    /// What its identity-based policies say about `request`.
    fn decide(&self, request: &RequestContext<'_>) -> Decision;
    /// Where the proxy may keep this caller's identity-header values once computed, for an
    /// implementation that hands out the same caller for many requests.
    fn identity_cache(&self) -> Option<&IdentityCache> {
        None
    }
}

/// `x-amzn-lattice-identity` and `x-amzn-lattice-identity-tags` values (`None`: not a valid
/// field value, left out).
pub type IdentityFields = (Option<http::HeaderValue>, Option<http::HeaderValue>);

/// A caller's identity-header values, computed on first use.
pub type IdentityCache = std::sync::OnceLock<IdentityFields>;

/// Who a request that passed the auth stage came from.
#[derive(Clone, Debug, Default)]
pub(crate) enum Authenticated {
    /// Neither the service nor its networks use `AWS_IAM`: nobody was asked.
    #[default]
    Off,
    /// An unsigned request that every enabled layer allowed.
    Anonymous,
    /// A signed request whose caller every enabled layer allowed.
    Caller(Arc<dyn Caller>),
}

impl Authenticated {
    pub(crate) fn caller(&self) -> Option<&Arc<dyn Caller>> {
        match self {
            Authenticated::Caller(c) => Some(c),
            _ => None,
        }
    }
}

/// Which layer denied a request: access logs' `authDeniedReason` and the 403's wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    Network,
    Service,
    Identity,
}

impl Layer {
    /// `Network`, `Service` or `Identity` (access logs' `authDeniedReason`).
    pub fn reason(self) -> &'static str {
        match self {
            Layer::Network => "Network",
            Layer::Service => "Service",
            Layer::Identity => "Identity",
        }
    }

    fn word(self) -> &'static str {
        match self {
            Layer::Network => "network",
            Layer::Service => "service",
            Layer::Identity => "identity",
        }
    }
}

/// What the request looked like to the connection: the facts condition keys need that the
/// request head does not carry.
pub(crate) struct Connection<'a> {
    pub peer: IpAddr,
    pub port: u16,
    pub tls: bool,
    /// The service network the request arrived through (its client's VPC's); `None` when no
    /// client network admitted it (development mode), and then every network of the service
    /// is one it may have arrived through.
    pub network: Option<&'a NetworkEntry>,
    /// The client's VPC (`SourceVpc`, `SourceVpcOwnerAccount`).
    pub vpc: Option<&'a trellis_snapshot::clients::ClientVpc>,
}

impl Connection<'_> {
    /// The networks the request may have arrived through.
    fn networks<'s>(&'s self, service: &'s ServiceEntry) -> &'s [NetworkEntry] {
        match self.network {
            Some(n) => std::slice::from_ref(n),
            None => &service.networks,
        }
    }
}

/// Whether any layer of `service` (reached through `conn`'s networks) asks for auth.
pub(crate) fn required(service: &ServiceEntry, conn: &Connection) -> bool {
    service.auth_type == AuthType::AwsIam
        || conn
            .networks(service)
            .iter()
            .any(|n| n.auth_type == AuthType::AwsIam)
}

/// Runs the auth stage for the head `req` (whose URI is already the normal form the target
/// receives); `received` is the URI as the client sent it, which a signature covers.
pub(crate) fn authorize(
    credentials: Option<&dyn Credentials>,
    key_cache: &trellis_sigv4::KeyCache,
    region: &str,
    service: &ServiceEntry,
    req: &mut Parts,
    received: Option<&Uri>,
    conn: &Connection,
) -> Result<Authenticated, ProxyError> {
    if !required(service, conn) {
        return Ok(Authenticated::Off);
    }
    let caller = if is_signed(req) {
        Some(
            authenticate(credentials, key_cache, region, req, received).map_err(|e| {
                ProxyError::AuthenticationFailed {
                    message: format!("{}: {e}", e.code()),
                }
            })?,
        )
    } else {
        None
    };
    let now = SystemTime::now();
    let path = req.uri.path();
    let resource = format!("{}{}", service.arn, path);
    let principal = match &caller {
        Some(c) => Principal::iam(c.arn()),
        None => Principal::Anonymous,
    };
    let networks = conn.networks(service);
    let arrivals = networks
        .iter()
        .map(Some)
        .chain(networks.is_empty().then_some(None));
    // One context for every network the request may have arrived through: only the network
    // (`ServiceNetworkArn`) differs between them.
    let keys = Keys {
        method: &req.method,
        path,
        query: req.uri.query(),
        headers: &req.headers,
        service,
        network: std::cell::Cell::new(None),
        caller: caller.as_deref(),
        conn,
        now,
    };
    let request = RequestContext::new(principal, INVOKE, resource.as_str()).with_source(&keys);
    for network in arrivals {
        keys.network.set(network);
        if let Err((layer, explicit)) = decide(service, network, caller.as_deref(), &request) {
            let who = caller.as_ref().map_or("anonymous", |c| c.arn());
            let why = if explicit {
                let article = if layer == Layer::Identity { "an" } else { "a" };
                format!(
                    "with an explicit deny in {article} {}-based policy",
                    layer.word()
                )
            } else {
                format!(
                    "because no {}-based policy allows the {INVOKE} action",
                    layer.word()
                )
            };
            return Err(ProxyError::AccessDenied {
                message: format!(
                    "AccessDeniedException: User: {who} is not authorized to perform: {INVOKE} \
                     on resource: {resource} {why}"
                ),
                layer,
                caller,
            });
        }
    }
    Ok(match caller {
        Some(c) => Authenticated::Caller(c),
        None => Authenticated::Anonymous,
    })
}

/// A request is signed when it carries an `Authorization` field or a presigned signature.
fn is_signed(req: &Parts) -> bool {
    req.headers.contains_key(header::AUTHORIZATION)
        || req.uri.query().is_some_and(|q| {
            q.split('&').any(|p| {
                p.split('=')
                    .next()
                    .is_some_and(|k| k.eq_ignore_ascii_case("X-Amz-Signature"))
            })
        })
}

/// Why a signed request authenticates nobody: a SigV4 failure or a credential failure.
#[derive(Debug)]
enum AuthnError {
    Signature(SigV4Error),
    SignedPayload,
    Credential(CredentialError),
}

impl AuthnError {
    fn code(&self) -> &'static str {
        match self {
            AuthnError::Signature(e) => e.aws_code(),
            AuthnError::SignedPayload => "InvalidSignatureException",
            AuthnError::Credential(CredentialError::Unrecognized) => "UnrecognizedClientException",
            AuthnError::Credential(CredentialError::Expired) => "ExpiredTokenException",
        }
    }
}

impl std::fmt::Display for AuthnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthnError::Signature(e) => write!(f, "{e}"),
            AuthnError::SignedPayload => f.write_str("Signed payloads are not supported"),
            AuthnError::Credential(CredentialError::Unrecognized) => {
                f.write_str("The security token included in the request is invalid.")
            }
            AuthnError::Credential(CredentialError::Expired) => {
                f.write_str("The security token included in the request is expired")
            }
        }
    }
}

/// The [`trellis_sigv4::SecretLookup`] of a [`Credentials`] source (none: every key unknown). It
/// resolves the caller together with the secret, before the signature is compared, and keeps the
/// outcome, so that a forged, foreign or expired session token is reported as such (as the
/// API's gate does) rather than as a signature mismatch.
struct Lookup<'a> {
    credentials: Option<&'a dyn Credentials>,
    token: Option<Cow<'a, str>>,
    outcome: std::cell::RefCell<Option<Result<Arc<dyn Caller>, CredentialError>>>,
}

impl trellis_sigv4::SecretLookup for Lookup<'_> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        let resolved = self
            .credentials?
            .resolve(access_key_id, self.token.as_deref());
        let (secret, outcome) = match resolved {
            Ok(r) => (Some(r.secret), Ok(r.caller)),
            Err(e) => (None, Err(e)),
        };
        *self.outcome.borrow_mut() = Some(outcome);
        secret
    }
}

/// The session token a request carries: the `X-Amz-Security-Token` field (borrowed: tokens are
/// ASCII), else the presigned query parameter (percent-decoded). The verifier checks that
/// whichever it is, is signed.
fn session_token(req: &Parts) -> Option<Cow<'_, str>> {
    static SECURITY_TOKEN: http::HeaderName = http::HeaderName::from_static("x-amz-security-token");
    if let Some(v) = req.headers.get(&SECURITY_TOKEN) {
        // `str::from_utf8` first: on a kilobyte of ASCII it is much faster than the lossy
        // decoder, which is only needed for a token no STS issued.
        return Some(match std::str::from_utf8(v.as_bytes()) {
            Ok(token) => Cow::Borrowed(token),
            Err(_) => String::from_utf8_lossy(v.as_bytes()),
        });
    }
    req.uri.query()?.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.eq_ignore_ascii_case("X-Amz-Security-Token")
            .then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

/// Verifies the request's signature against the URI as received and resolves its caller.
fn authenticate(
    credentials: Option<&dyn Credentials>,
    key_cache: &trellis_sigv4::KeyCache,
    region: &str,
    req: &mut Parts,
    received: Option<&Uri>,
) -> Result<Arc<dyn Caller>, AuthnError> {
    // The signature covers what the client sent; the normal form goes back in afterwards.
    let normal = received.map(|uri| std::mem::replace(&mut req.uri, uri.clone()));
    let verified = verify(credentials, key_cache, region, req);
    if let Some(normal) = normal {
        req.uri = normal;
    }
    verified
}

/// SigV4/SigV4A verification with `UNSIGNED-PAYLOAD`, and the caller of the credentials that
/// signed. The caller is resolved before the signature is compared (as the API's gate does), so
/// that a forged or foreign session token is reported as such rather than as a mismatch.
fn verify(
    credentials: Option<&dyn Credentials>,
    key_cache: &trellis_sigv4::KeyCache,
    region: &str,
    parts: &Parts,
) -> Result<Arc<dyn Caller>, AuthnError> {
    let opts = trellis_sigv4::VerifyOptions {
        service: SIGNING_NAME,
        region: Some(region),
        now: time::OffsetDateTime::now_utc(),
        max_skew: trellis_sigv4::DEFAULT_MAX_SKEW,
    };
    let lookup = Lookup {
        credentials,
        token: session_token(parts),
        outcome: std::cell::RefCell::new(None),
    };
    let prechecked = trellis_sigv4::precheck(parts, &lookup, &opts).map_err(|e| {
        match (&e, lookup.outcome.borrow().as_ref()) {
            (SigV4Error::UnrecognizedClient { .. }, Some(Err(c))) => AuthnError::Credential(*c),
            _ => AuthnError::Signature(e),
        }
    })?;
    // Lattice never reads the body for auth: the payload hash must be UNSIGNED-PAYLOAD, declared
    // in a signed `x-amz-content-sha256` (presigned URLs may leave it out).
    static CONTENT_SHA256: http::HeaderName = http::HeaderName::from_static("x-amz-content-sha256");
    let declared = parts
        .headers
        .get(&CONTENT_SHA256)
        .map(|v| v.as_bytes().trim_ascii());
    let presigned = !parts.headers.contains_key(header::AUTHORIZATION);
    match declared {
        Some(v) if v == UNSIGNED_PAYLOAD.as_bytes() => {}
        None if presigned => {}
        _ => return Err(AuthnError::SignedPayload),
    }
    // The precheck found the key, so the lookup resolved its caller.
    let caller = lookup
        .outcome
        .take()
        .unwrap_or(Err(CredentialError::Unrecognized))
        .map_err(AuthnError::Credential)?;
    prechecked
        .check(parts, UNSIGNED_PAYLOAD, Some(key_cache))
        .map_err(AuthnError::Signature)?;
    Ok(caller)
}

/// The three layers for one network the request may have arrived through: `Ok` when each
/// enabled layer allows, else the layer that denied and whether it did so explicitly. Explicit
/// denies are looked for in every layer first; then the first layer without an allow, in the
/// order network, service, identity, is reported.
fn decide(
    service: &ServiceEntry,
    network: Option<&NetworkEntry>,
    caller: Option<&dyn Caller>,
    request: &RequestContext<'_>,
) -> Result<(), (Layer, bool)> {
    let policy = |p: &Option<Arc<Policy>>| {
        p.as_ref()
            .map_or(Decision::ImplicitDeny, |p| p.evaluate(request))
    };
    let layers: [(Layer, Option<Decision>); 3] = [
        (
            Layer::Network,
            network
                .filter(|n| n.auth_type == AuthType::AwsIam)
                .map(|n| policy(&n.auth_policy)),
        ),
        (
            Layer::Service,
            (service.auth_type == AuthType::AwsIam).then(|| policy(&service.auth_policy)),
        ),
        (Layer::Identity, caller.map(|c| c.decide(request))),
    ];
    if let Some((layer, _)) = layers
        .iter()
        .find(|(_, d)| d.as_ref().is_some_and(Decision::is_explicit_deny))
    {
        return Err((*layer, true));
    }
    if let Some((layer, _)) = layers
        .iter()
        .find(|(_, d)| d.as_ref().is_some_and(|d| !d.is_allowed()))
    {
        return Err((*layer, false));
    }
    Ok(())
}

/// The condition keys of one request, answered when a policy asks (reference §7.4). A key the
/// request has no value for (`SourceVpc` of a client no VPC admitted, in development mode) is
/// absent, so a policy that requires it does not match (fail closed).
struct Keys<'a> {
    method: &'a Method,
    path: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    service: &'a ServiceEntry,
    /// The network whose layer is being decided.
    network: std::cell::Cell<Option<&'a NetworkEntry>>,
    caller: Option<&'a dyn Caller>,
    conn: &'a Connection<'a>,
    now: SystemTime,
}

/// `key` without `prefix`, compared ignoring ASCII case (IAM key names are case-insensitive).
fn strip_prefix_ci<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &key[prefix.len()..])
}

/// One value, borrowed or computed.
fn one<'v>(value: impl Into<Cow<'v, str>>) -> Option<KeyValues<'v>> {
    Some(KeyValues::One(value.into()))
}

/// A header value as text: borrowed when it is UTF-8 (checked by the fast `str::from_utf8`).
fn header_text(value: &http::HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value.as_bytes()),
    }
}

impl KeySource for Keys<'_> {
    fn values(&self, key: &str) -> Option<KeyValues<'_>> {
        if let Some(name) = strip_prefix_ci(key, "vpc-lattice-svcs:") {
            if let Some(header) = strip_prefix_ci(name, "RequestHeader/") {
                let mut all = self.headers.get_all(header).iter();
                return Some(match (all.next(), all.next()) {
                    (None, _) => KeyValues::Owned(Vec::new()),
                    (Some(only), None) => KeyValues::One(header_text(only)),
                    (Some(_), Some(_)) => KeyValues::Owned(
                        self.headers
                            .get_all(header)
                            .iter()
                            .map(|v| header_text(v).into_owned())
                            .collect(),
                    ),
                });
            }
            if let Some(param) = strip_prefix_ci(name, "RequestQueryString/") {
                return Some(KeyValues::Owned(query_values(self.query?, param)));
            }
            let is = |k: &str| name.eq_ignore_ascii_case(k);
            return if is("Port") {
                one(self.conn.port.to_string())
            } else if is("RequestMethod") {
                one(self.method.as_str())
            } else if is("RequestPath") {
                one(self.path)
            } else if is("ServiceArn") {
                one(self.service.arn.as_str())
            } else if is("ServiceNetworkArn") {
                one(self.network.get()?.arn.as_str())
            } else if is("SourceVpc") {
                one(self.conn.vpc?.id.as_str())
            } else if is("SourceVpcOwnerAccount") {
                one(self.conn.vpc?.owner.as_str())
            } else {
                None
            };
        }
        if let Some(name) = strip_prefix_ci(key, "aws:") {
            if let Some(tag) = strip_prefix_ci(name, "ResourceTag/") {
                return tag_value(
                    self.service
                        .tags
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    tag,
                );
            }
            if let Some(tag) = strip_prefix_ci(name, "PrincipalTag/") {
                return tag_value(
                    self.caller?
                        .tags()
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str())),
                    tag,
                );
            }
            let is = |k: &str| name.eq_ignore_ascii_case(k);
            return if is("SourceIp") {
                one(self.conn.peer.to_canonical().to_string())
            } else if is("SecureTransport") {
                one(if self.conn.tls { "true" } else { "false" })
            } else if is("CurrentTime") {
                one(time::OffsetDateTime::from(self.now)
                    .format(&time::format_description::well_known::Rfc3339)
                    .ok()?)
            } else if is("EpochTime") {
                one(self
                    .now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()?
                    .as_secs()
                    .to_string())
            } else if is("UserAgent") {
                self.headers
                    .get(header::USER_AGENT)
                    .map(|v| KeyValues::One(header_text(v)))
            } else if is("PrincipalIsAWSService") {
                one("false")
            } else if is("PrincipalOrgID") {
                one(self.caller?.org()?.0)
            } else if is("PrincipalOrgPaths") {
                one(self.caller?.org()?.1)
            } else {
                // Principal keys (`aws:PrincipalArn`, `PrincipalType`, `PrincipalAccount`) are
                // derived from the principal by the evaluator itself.
                None
            };
        }
        None
    }
}

/// A tag's value by key: the exact key first, else ignoring case (IAM compares tag keys in
/// `aws:…Tag/<key>` regardless of case).
fn tag_value<'t>(
    mut tags: impl Iterator<Item = (&'t str, &'t str)> + Clone,
    key: &str,
) -> Option<KeyValues<'t>> {
    let found = tags
        .clone()
        .find(|(k, _)| *k == key)
        .or_else(|| tags.find(|(k, _)| k.eq_ignore_ascii_case(key)));
    found.map(|(_, v)| KeyValues::one(v))
}

/// Every value of query parameter `name` (percent-decoded; names compared as decoded).
fn query_values(query: &str, name: &str) -> Vec<String> {
    let decode = |s: &str| -> String {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k) == name).then(|| decode(v))
        })
        .collect()
}

/// `x-amzn-lattice-identity` and `x-amzn-lattice-identity-tags` for a caller (reference §6.2):
/// `Principal=<arn>; SessionName=<name>; Type=AWS_IAM` and `principal=<arn>; <tag>=<value>; …`
/// with `\` and `;` in values escaped with a backslash.
pub(crate) fn identity_values(caller: &dyn Caller) -> (String, String) {
    let mut identity = format!("Principal={}", caller.arn());
    if let Some((org, path)) = caller.org() {
        identity.push_str("; PrincipalOrgID=");
        identity.push_str(org);
        identity.push_str("; PrincipalOrgPath=");
        identity.push_str(path);
    }
    if let Some(name) = caller.session_name() {
        identity.push_str("; SessionName=");
        identity.push_str(name);
    }
    identity.push_str("; Type=AWS_IAM");
    let mut tags = format!("principal={}", escape(caller.arn()));
    if let Some((org, path)) = caller.org() {
        tags.push_str("; principalorgid=");
        tags.push_str(&escape(org));
        tags.push_str("; principalorgpath=");
        tags.push_str(&escape(path));
    }
    for (k, v) in caller.tags() {
        tags.push_str("; ");
        tags.push_str(&escape(k));
        tags.push('=');
        tags.push_str(&escape(v));
    }
    (identity, tags)
}

fn escape(value: &str) -> Cow<'_, str> {
    if value.contains(['\\', ';']) {
        Cow::Owned(value.replace('\\', "\\\\").replace(';', "\\;"))
    } else {
        Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded_and_repeated() {
        assert_eq!(
            query_values("quux=corge&a=1&quux=gr%61ult&quux", "quux"),
            ["corge", "grault", ""]
        );
        assert!(query_values("a=1", "b").is_empty());
        assert_eq!(query_values("a%20b=c%3Bd", "a b"), ["c;d"]);
    }

    #[test]
    fn tags_match_exactly_then_ignoring_case() {
        let tags = [("Team", "a"), ("team", "b"), ("Env", "prod")];
        assert_eq!(
            tag_value(tags.iter().copied(), "team"),
            Some(KeyValues::one("b"))
        );
        assert_eq!(
            tag_value(tags.iter().copied(), "ENV"),
            Some(KeyValues::one("prod"))
        );
        assert_eq!(tag_value(tags.iter().copied(), "other"), None);
    }

    #[derive(Debug)]
    struct Role;

    impl Caller for Role {
        fn arn(&self) -> &str {
            "arn:aws:sts::111122223333:assumed-role/app/s;1"
        }
        fn session_name(&self) -> Option<&str> {
            Some("s;1")
        }
        fn tags(&self) -> &[(String, String)] {
            static TAGS: std::sync::LazyLock<Vec<(String, String)>> =
                std::sync::LazyLock::new(|| vec![("team".into(), "a;b\\c".into())]);
            &TAGS
        }
        fn decide(&self, _: &RequestContext<'_>) -> Decision {
            Decision::ImplicitDeny
        }
    }

    /// A caller whose identity policies answer `decision`.
    #[derive(Debug)]
    struct Fixed(Decision);

    impl Caller for Fixed {
        fn arn(&self) -> &str {
            "arn:aws:iam::111122223333:user/u"
        }
        fn session_name(&self) -> Option<&str> {
            None
        }
        fn tags(&self) -> &[(String, String)] {
            &[]
        }
        fn decide(&self, _: &RequestContext<'_>) -> Decision {
            self.0.clone()
        }
    }

    const ALLOW_ALL: &str =
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}"#;
    const DENY_ALL: &str =
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"}]}"#;
    const SIGNED_ONLY: &str = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*",
        "Condition":{"StringNotEqualsIgnoreCase":{"aws:PrincipalType":"anonymous"}}}]}"#;

    fn policy(text: Option<&str>) -> Option<Arc<Policy>> {
        text.map(|t| Arc::new(trellis_policy::parse(t, trellis_policy::PolicyKind::Auth).unwrap()))
    }

    fn auth(iam: bool) -> AuthType {
        if iam {
            AuthType::AwsIam
        } else {
            AuthType::None
        }
    }

    /// The three layers: each enabled one must allow, an explicit deny anywhere wins, and the
    /// layer named is the explicit denier, else the first without an allow (network, service,
    /// identity).
    #[test]
    fn layers_combine_as_lattice_does() {
        let allow = || {
            Decision::Allow(trellis_policy::StatementRef {
                index: 0,
                sid: None,
            })
        };
        let deny = || {
            Decision::ExplicitDeny(trellis_policy::StatementRef {
                index: 0,
                sid: None,
            })
        };
        type Case = (
            &'static str,
            (bool, Option<&'static str>),
            (bool, Option<&'static str>),
            Option<Decision>,
            Result<(), (Layer, bool)>,
        );
        let cases: Vec<Case> = vec![
            (
                "network only, allows anonymous",
                (true, Some(ALLOW_ALL)),
                (false, None),
                None,
                Ok(()),
            ),
            (
                "service only, no policy",
                (false, None),
                (true, None),
                None,
                Err((Layer::Service, false)),
            ),
            (
                "network without a policy",
                (true, None),
                (true, Some(ALLOW_ALL)),
                None,
                Err((Layer::Network, false)),
            ),
            (
                "signed-only network, anonymous",
                (true, Some(SIGNED_ONLY)),
                (false, None),
                None,
                Err((Layer::Network, false)),
            ),
            (
                "signed-only network, signed",
                (true, Some(SIGNED_ONLY)),
                (false, None),
                Some(allow()),
                Ok(()),
            ),
            (
                "identity must allow",
                (true, Some(ALLOW_ALL)),
                (true, Some(ALLOW_ALL)),
                Some(Decision::ImplicitDeny),
                Err((Layer::Identity, false)),
            ),
            (
                "identity explicit deny wins over implicit network",
                (true, None),
                (false, None),
                Some(deny()),
                Err((Layer::Identity, true)),
            ),
            (
                "service explicit deny over network implicit",
                (true, None),
                (true, Some(DENY_ALL)),
                Some(allow()),
                Err((Layer::Service, true)),
            ),
            (
                "network explicit deny first",
                (true, Some(DENY_ALL)),
                (true, Some(DENY_ALL)),
                Some(deny()),
                Err((Layer::Network, true)),
            ),
            (
                "NONE layers are skipped even with policies",
                (false, Some(DENY_ALL)),
                (false, Some(DENY_ALL)),
                Some(allow()),
                Ok(()),
            ),
            (
                "all three allow",
                (true, Some(ALLOW_ALL)),
                (true, Some(ALLOW_ALL)),
                Some(allow()),
                Ok(()),
            ),
        ];
        for (name, (net_iam, net_policy), (svc_iam, svc_policy), identity, expected) in cases {
            let network = NetworkEntry {
                id: "sn-1".into(),
                arn: "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-1".into(),
                auth_type: auth(net_iam),
                auth_policy: policy(net_policy),
            };
            let service = ServiceEntry {
                id: "svc-1".into(),
                arn: "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-1".into(),
                name: "s".into(),
                auth_type: auth(svc_iam),
                dns_name: "s".into(),
                custom_domain_name: None,
                networks: vec![network.clone()],
                listeners: Default::default(),
                auth_policy: policy(svc_policy),
                tags: Default::default(),
                access_logs: Vec::new(),
            };
            let caller = identity.map(Fixed);
            let principal = match &caller {
                Some(c) => Principal::iam(c.arn()),
                None => Principal::Anonymous,
            };
            let request = RequestContext::new(principal, INVOKE, format!("{}/x", service.arn));
            let got = decide(
                &service,
                Some(&network),
                caller.as_ref().map(|c| c as &dyn Caller),
                &request,
            );
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn identity_headers_escape_separators() {
        let (identity, tags) = identity_values(&Role);
        assert_eq!(
            identity,
            "Principal=arn:aws:sts::111122223333:assumed-role/app/s;1; SessionName=s;1; Type=AWS_IAM"
        );
        assert_eq!(
            tags,
            "principal=arn:aws:sts::111122223333:assumed-role/app/s\\;1; team=a\\;b\\\\c"
        );
    }

    /// The auth stage alone, on the benchmark's request (bench/run's auth case: an assumed-role
    /// session's SigV4 request with its ~900-byte token, a network policy for authenticated
    /// callers of the account, a service policy for the role with a `RequestMethod` condition,
    /// an identity policy that allows Invoke). Prints the time per request; run with
    /// `cargo test --release -p trellis-proxy --lib auth_stage_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn auth_stage_cost() {
        use hmac::Mac;

        const AKID: &str = "ASIABENCHMARK0000001";
        const SECRET: &str = "bench-session-secret-0000000000000000000";
        const ACCOUNT: &str = "111122223333";
        const ROLE: &str = "arn:aws:iam::111122223333:role/bench-client";

        #[derive(Debug)]
        struct Session(Arc<Policy>);
        impl Caller for Session {
            fn arn(&self) -> &str {
                "arn:aws:sts::111122223333:assumed-role/bench-client/bench"
            }
            fn session_name(&self) -> Option<&str> {
                Some("bench")
            }
            fn tags(&self) -> &[(String, String)] {
                &[]
            }
            fn decide(&self, request: &RequestContext<'_>) -> Decision {
                self.0.evaluate(request)
            }
        }
        struct Creds(Arc<dyn Caller>);
        impl Credentials for Creds {
            fn resolve(&self, key: &str, token: Option<&str>) -> Result<Resolved, CredentialError> {
                if key != AKID || token.is_none() {
                    return Err(CredentialError::Unrecognized);
                }
                Ok(Resolved {
                    secret: SECRET.into(),
                    caller: Arc::clone(&self.0),
                })
            }
        }

        let identity = Arc::new(
            trellis_policy::parse(
                r#"{"Statement":[{"Effect":"Allow","Action":"vpc-lattice-svcs:Invoke","Resource":"*"}]}"#,
                trellis_policy::PolicyKind::Identity,
            )
            .unwrap(),
        );
        let network = NetworkEntry {
            id: "sn-1".into(),
            arn: format!("arn:aws:vpc-lattice:us-west-2:{ACCOUNT}:servicenetwork/sn-1"),
            auth_type: AuthType::AwsIam,
            auth_policy: policy(Some(&format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":"*","Action":"vpc-lattice-svcs:Invoke","Resource":"*",
                "Condition":{{"StringNotEqualsIgnoreCase":{{"aws:PrincipalType":"anonymous"}},
                "StringEquals":{{"aws:PrincipalAccount":"{ACCOUNT}"}}}}}}]}}"#
            ))),
        };
        let arn = format!("arn:aws:vpc-lattice:us-west-2:{ACCOUNT}:service/svc-0123456789abcdef0");
        let service = ServiceEntry {
            id: "svc-0123456789abcdef0".into(),
            arn: arn.clone(),
            name: "bench-iam".into(),
            auth_type: AuthType::AwsIam,
            dns_name: "bench-iam".into(),
            custom_domain_name: None,
            networks: vec![network],
            listeners: Default::default(),
            auth_policy: policy(Some(&format!(
                r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ROLE}"}},"Action":"vpc-lattice-svcs:Invoke",
                "Resource":"{arn}/static*","Condition":{{"StringEquals":{{"vpc-lattice-svcs:RequestMethod":"GET"}}}}}}]}}"#
            ))),
            tags: Default::default(),
            access_logs: Vec::new(),
        };

        let now = time::OffsetDateTime::now_utc();
        let amz_date = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let token = "FwoGZXIvYXdzE".repeat(70);
        let signed = "host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-bench";
        let request = |signature: &str| {
            let (parts, ()) = http::Request::get("http://bench-iam.example:8080/static")
                .header("host", "bench-iam.example:8080")
                .header("x-bench", "on")
                .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
                .header("x-amz-date", &amz_date)
                .header("x-amz-security-token", &token)
                .header(
                    "authorization",
                    format!(
                        "AWS4-HMAC-SHA256 Credential={AKID}/{}/us-west-2/{SIGNING_NAME}/aws4_request, \
                         SignedHeaders={signed}, Signature={signature}",
                        &amz_date[..8]
                    ),
                )
                .header("user-agent", "h2load nghttp2/1.59.0")
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        let creds = Creds(Arc::new(Session(identity)));
        let cache = trellis_sigv4::KeyCache::default();
        let conn = Connection {
            peer: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            tls: false,
            network: None,
            vpc: None,
        };
        // Sign: the string to sign is what a mismatch reports.
        let mut unsigned = request(&"0".repeat(64));
        let string_to_sign =
            match authenticate(Some(&creds), &cache, "us-west-2", &mut unsigned, None) {
                Err(AuthnError::Signature(SigV4Error::SignatureDoesNotMatch {
                    string_to_sign,
                    ..
                })) => string_to_sign,
                other => panic!("{other:?}"),
            };
        let key =
            trellis_sigv4::derive_signing_key(SECRET, &amz_date[..8], "us-west-2", SIGNING_NAME);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(string_to_sign.as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut req = request(&signature);

        let run = |n: u32, req: &mut Parts| {
            let start = std::time::Instant::now();
            for _ in 0..n {
                let out = authorize(
                    Some(&creds),
                    &cache,
                    "us-west-2",
                    &service,
                    req,
                    None,
                    &conn,
                );
                assert!(matches!(out, Ok(Authenticated::Caller(_))), "{out:?}");
            }
            start.elapsed().as_nanos() as f64 / f64::from(n)
        };
        run(20_000, &mut req);
        let mut samples: Vec<f64> = (0..7).map(|_| run(50_000, &mut req)).collect();
        samples.sort_by(f64::total_cmp);
        println!(
            "auth stage: median {:.0} ns/request (min {:.0}, max {:.0}, 7 × 50k)",
            samples[3], samples[0], samples[6]
        );
    }
}

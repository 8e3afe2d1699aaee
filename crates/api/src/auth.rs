//! The SigV4 gate: every API call must be signed with the root credentials or an active access
//! key of an IAM user, for the signing name of the service the operation table
//! ([`trellis_wire::Table::head`]) says the request is for (`vpc-lattice`, `lambda`, `tagging`,
//! `iam`, `sts`, …); a request signed for another service is `InvalidSignatureException`.
//! Refusals are answered in that service's protocol and vocabulary: an unknown, inactive or
//! deleted key is `UnrecognizedClientException` for the JSON services and `InvalidClientTokenId`
//! for the query ones (IAM, STS), as AWS answers. IAM is global: it is signed for `us-east-1`
//! (what the AWS CLI and SDKs sign it for) or for the server's region.
//!
//! Keys are looked up in the in-memory identity index ([`crate::identity`]), never in the store.
//! A request that passes gets its [`Caller`] and a [`CallerAuthorizer`] in its extensions: the
//! table asks the authorizer, with the decoded input, before the handler runs
//! ([`crate::authorize`]). An IAM key's use is written to its record at most once a minute.
//!
//! Nothing unauthenticated is buffered. The gate first checks everything the head decides
//! ([`trellis_sigv4::precheck`]: the signature parses, the access key is known, the time is within
//! the skew, the scope names the right service and region) and answers a failing request without
//! reading a byte of its body. Only then does it read the body, because the signature covers its
//! digest, hashing it as it arrives:
//!
//! * each operation has a body cap (declared in the table, [`DEFAULT_BODY_CAP`] unless it says
//!   otherwise); a declared `Content-Length` over it is
//!   refused at once, a streamed body when it crosses it;
//! * the bodies being read or handled at once share a byte budget ([`GateLimits::body_budget`]);
//!   a request that cannot get its share within [`BUDGET_WAIT`] is throttled with AWS's 429
//!   (`ThrottlingException` for Lattice, `TooManyRequestsException` for Lambda), which SDKs retry;
//! * the gap between two pieces of body may not exceed [`GateLimits::body_read_timeout`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::BytesMut;
use http_body_util::BodyExt as _;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use trellis_wire::{
    Authorizer, AwsError, DEFAULT_BODY_CAP, Head, OperationName, Service, SignedService, Table,
};

use crate::AppState;
use crate::authorize::CallerAuthorizer;
use crate::identity::{Caller, IdentityIndex, LastUsed, RoleSession};

/// How long a request waits for its share of the body budget before it is throttled.
pub const BUDGET_WAIT: Duration = Duration::from_secs(5);

/// The gate's tunables (`trellis serve --api-body-budget-mib`, `--api-body-read-timeout`).
#[derive(Debug)]
pub struct GateLimits {
    /// Bytes of request bodies that may be read or handled at once.
    pub body_budget: usize,
    /// The longest pause between two pieces of a request body.
    pub body_read_timeout: Duration,
    /// How long a request waits for its share of the budget ([`BUDGET_WAIT`]; shorter in tests).
    pub budget_wait: Duration,
    budget: Arc<Semaphore>,
}

impl GateLimits {
    pub const DEFAULT_BODY_BUDGET: usize = 256 << 20;
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn new(body_budget: usize, body_read_timeout: Duration) -> GateLimits {
        let body_budget = body_budget.clamp(1, Semaphore::MAX_PERMITS);
        GateLimits {
            body_budget,
            body_read_timeout,
            budget_wait: BUDGET_WAIT,
            budget: Arc::new(Semaphore::new(body_budget)),
        }
    }

    /// A share of the budget for a body of `len` bytes (all of it when `len` exceeds it, so a
    /// small budget serialises large uploads instead of refusing them for ever).
    async fn reserve(&self, len: usize) -> Option<Option<OwnedSemaphorePermit>> {
        if len == 0 {
            return Some(None);
        }
        let want = u32::try_from(len.min(self.body_budget)).unwrap_or(u32::MAX);
        let acquire = Arc::clone(&self.budget).acquire_many_owned(want);
        match tokio::time::timeout(self.budget_wait, acquire).await {
            Ok(Ok(permit)) => Some(Some(permit)),
            _ => None,
        }
    }
}

impl Default for GateLimits {
    fn default() -> GateLimits {
        GateLimits::new(Self::DEFAULT_BODY_BUDGET, Self::DEFAULT_BODY_READ_TIMEOUT)
    }
}

/// Why the gate refused a request: each case is classified here, once, into AWS's shape.
#[derive(Debug)]
enum GateError {
    Auth(trellis_sigv4::SigV4Error),
    TooLarge,
    Throttled,
    BodyTimeout,
    /// The client broke off the body (or sent a malformed one).
    BodyBroken,
    /// Temporary credentials past their expiration.
    Expired,
}

impl GateError {
    /// The error in the vocabulary of the service the request was for.
    fn into_aws_error(self, service: &Service, too_large: AwsError) -> AwsError {
        let (code, status, message) = match self {
            GateError::Auth(e @ trellis_sigv4::SigV4Error::UnrecognizedClient { .. })
                if service.protocol.is_query() =>
            {
                (
                    "InvalidClientTokenId",
                    e.http_status(),
                    "The security token included in the request is invalid.".to_string(),
                )
            }
            GateError::Auth(e) => (e.aws_code(), e.http_status(), e.to_string()),
            GateError::TooLarge => return too_large,
            GateError::Throttled => {
                // Both APIs model `retryAfterSeconds` on the throttling error as this header.
                return AwsError::new(
                    service.errors.throttling_code,
                    StatusCode::TOO_MANY_REQUESTS,
                    "Rate exceeded: too many large request bodies at once",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            GateError::BodyTimeout => (
                "RequestTimeoutException",
                408,
                "The request body was not received in time".to_string(),
            ),
            GateError::BodyBroken => (
                "IncompleteBody",
                400,
                "The request body could not be read".to_string(),
            ),
            // STS's model says 400; the JSON services answer 403.
            GateError::Expired if service.protocol.is_query() => (
                "ExpiredToken",
                400,
                "The security token included in the request is expired".to_string(),
            ),
            GateError::Expired => (
                "ExpiredTokenException",
                403,
                "The security token included in the request is expired".to_string(),
            ),
        };
        AwsError::new(
            code,
            StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            message,
        )
    }
}

/// The secrets the gate accepts: root's, and the active IAM keys of the identity index.
struct Lookup<'a> {
    root: &'a crate::RootCredentials,
    index: &'a IdentityIndex,
}

impl trellis_sigv4::SecretLookup for Lookup<'_> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        secret(self.root, self.index, access_key_id)
    }
}

/// The secret access key of `access_key_id` as of `index`: root's, an active IAM key's, or a
/// session's (derived from its key ID; whether the session exists is its token's to say, see
/// [`caller`]). `None` for an unknown or inactive key. The API's gate and the data plane's auth
/// stage both authenticate with it.
pub fn secret(
    root: &crate::RootCredentials,
    index: &IdentityIndex,
    access_key_id: &str,
) -> Option<String> {
    if access_key_id == root.access_key_id {
        return Some(root.secret_access_key.clone());
    }
    if let Some((secret, _)) = index.account_root_key(access_key_id) {
        return Some(secret.to_string());
    }
    if access_key_id.starts_with(SESSION_KEY_PREFIX) {
        return index
            .token_key()
            .map(|key| crate::session::secret(key, access_key_id));
    }
    index
        .active_key(access_key_id)
        .map(|(secret, _)| secret.to_string())
}

/// How temporary credentials' access key IDs start (IAM keys start with `AKIA`).
const SESSION_KEY_PREFIX: &str = "ASIA";

/// Why credentials whose signature verified authenticate nobody.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerError {
    /// An unknown key, or a session token that is not this key's, not ours, or whose role or
    /// user is gone; or a session token sent with long-term credentials.
    Unrecognized,
    /// A session past its expiration.
    Expired,
}

/// The caller a request signed with `access_key_id` (and session token `token`) authenticates
/// as of `index`. Temporary credentials: the token must be one the token key signed, for this
/// very access key, unexpired, and its role (or user) must still exist in the index.
pub fn caller(
    root: &crate::RootCredentials,
    index: &IdentityIndex,
    ctx: &trellis_model::Context,
    access_key_id: &str,
    token: Option<&str>,
) -> Result<Caller, CallerError> {
    caller_until(root, index, ctx, access_key_id, token).map(|(caller, _)| caller)
}

/// [`caller`], with when its session expires (Unix milliseconds; `None` for long-term keys).
pub fn caller_until(
    root: &crate::RootCredentials,
    index: &IdentityIndex,
    ctx: &trellis_model::Context,
    access_key_id: &str,
    token: Option<&str>,
) -> Result<(Caller, Option<i64>), CallerError> {
    if !access_key_id.starts_with(SESSION_KEY_PREFIX) {
        // A session token with long-term credentials is not theirs.
        if token.is_some() {
            return Err(CallerError::Unrecognized);
        }
        if access_key_id == root.access_key_id {
            return Ok((
                Caller::Root {
                    account: ctx.account_id.clone(),
                },
                None,
            ));
        }
        if let Some((_, account)) = index.account_root_key(access_key_id) {
            return Ok((
                Caller::Root {
                    account: account.to_string(),
                },
                None,
            ));
        }
        return match index.active_key(access_key_id) {
            Some((_, user)) => Ok((
                Caller::User {
                    user: Arc::clone(user),
                    access_key_id: access_key_id.to_string(),
                },
                None,
            )),
            None => Err(CallerError::Unrecognized),
        };
    }
    let key = index.token_key().ok_or(CallerError::Unrecognized)?;
    let claims = token
        .and_then(|t| crate::session::verify(key, t))
        .filter(|c| c.access_key_id == access_key_id)
        .ok_or(CallerError::Unrecognized)?;
    let expires_ms = claims.expires * 1000;
    if expires_ms <= trellis_model::Timestamp::now().unix_millis() {
        return Err(CallerError::Expired);
    }
    let caller = match claims.subject {
        // A root session names its account.
        crate::session::Subject::Root => Ok(Caller::Root { account: claims.id }),
        crate::session::Subject::User => {
            let user = index
                .user_by_id(&claims.id)
                .ok_or(CallerError::Unrecognized)?;
            Ok(Caller::User {
                user: Arc::clone(user),
                access_key_id: access_key_id.to_string(),
            })
        }
        crate::session::Subject::Role => {
            let role = index
                .role_by_id(&claims.id)
                .ok_or(CallerError::Unrecognized)?;
            Ok(Caller::Role {
                session: Arc::new(RoleSession {
                    arn: crate::identity::assumed_role_arn(
                        &trellis_model::Context {
                            account_id: role.account.clone(),
                            ..ctx.clone()
                        },
                        &role.name,
                        &claims.session_name,
                    ),
                    session_name: claims.session_name,
                    access_key_id: access_key_id.to_string(),
                    tags: claims.tags,
                }),
                role: Arc::clone(role),
            })
        }
    };
    caller.map(|c| (c, Some(expires_ms)))
}

/// The region IAM, a global service, is signed for by clients.
const GLOBAL_REGION: &str = "us-east-1";

pub async fn sigv4_gate(
    State((state, table)): State<(AppState, Arc<Table>)>,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let head = table.head(&parts.method, parts.uri.path(), &parts.headers);
    let (service, operation, cap) = match &head {
        Head::Operation(m) => (m.service, Some(m), m.body_cap()),
        Head::Unknown(s) => (*s, None, DEFAULT_BODY_CAP),
        Head::Query(ss) => (ss[0], None, DEFAULT_BODY_CAP),
    };
    let has_body = !axum::body::HttpBody::is_end_stream(&body);
    let refuse = |e: GateError, body_unread: bool| {
        let too_large = match operation {
            Some(m) => m.too_large_error(),
            None => (service.errors.too_large)(cap),
        };
        let mut resp = trellis_wire::deferred(service, e.into_aws_error(service, too_large));
        if let Some(m) = operation {
            resp.extensions_mut().insert(OperationName(m.name));
        }
        // An HTTP/1.1 connection whose body was left unread cannot carry another request; say
        // so, so that the client stops sending and hyper closes the connection.
        if body_unread && has_body && parts.version <= Version::HTTP_11 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    };

    // The signing names the table allows here; a query-protocol request (`POST /` with a form)
    // may be for any query service, and the one its scope names is the one it is for.
    let names = head.signing_names();
    let index = state.identities.current();
    let lookup = Lookup {
        root: &state.credentials,
        index: &index,
    };
    let mut prechecked = None;
    let mut first_err = None;
    'names: for name in &names {
        // IAM and Organizations are global: clients sign them for us-east-1.
        let global = *name == crate::iam::IAM.signing_name
            || *name == crate::organizations::ORGANIZATIONS.signing_name;
        let regions: &[&str] = if global {
            &[state.ctx.region.as_str(), GLOBAL_REGION]
        } else {
            &[state.ctx.region.as_str()]
        };
        for region in regions {
            let opts = trellis_sigv4::VerifyOptions {
                service: name,
                region: Some(region),
                now: time::OffsetDateTime::now_utc(),
                max_skew: trellis_sigv4::DEFAULT_MAX_SKEW,
            };
            match trellis_sigv4::precheck(&parts, &lookup, &opts) {
                Ok(p) => {
                    prechecked = Some((p, *name, *region));
                    break 'names;
                }
                // The error worth answering is the one for the scope the request was signed
                // for: a mismatch with the other names and regions says nothing.
                Err(e) => {
                    let scope = |e: &trellis_sigv4::SigV4Error| {
                        matches!(e, trellis_sigv4::SigV4Error::InvalidCredentialScope { .. })
                    };
                    if first_err.as_ref().is_none_or(|f| scope(f) && !scope(&e)) {
                        first_err = Some(e);
                    }
                }
            }
        }
    }
    let Some((prechecked, signed_for, signed_region)) = prechecked else {
        let e = first_err.expect("the table names at least one signing name");
        return refuse(GateError::Auth(e), true);
    };
    let access_key_id = prechecked.access_key_id().to_string();
    let session = access_key_id.starts_with(SESSION_KEY_PREFIX);
    let caller = match caller(
        &state.credentials,
        &index,
        &state.ctx,
        &access_key_id,
        prechecked.security_token(),
    ) {
        Ok(caller) => caller,
        Err(CallerError::Expired) => return refuse(GateError::Expired, true),
        Err(CallerError::Unrecognized) => {
            return refuse(
                GateError::Auth(trellis_sigv4::SigV4Error::UnrecognizedClient { access_key_id }),
                true,
            );
        }
    };
    if let Head::Query(_) = head {
        parts.extensions.insert(SignedService(signed_for));
    }

    // A body without a declared length (chunked, or HTTP/2 without content-length) may be as
    // large as its cap, so it reserves that much.
    let declared = if has_body {
        axum::body::HttpBody::size_hint(&body).exact()
    } else {
        Some(0)
    };
    let declared = declared.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > cap) {
        return refuse(GateError::TooLarge, true);
    }
    let Some(_permit) = state.gate.reserve(declared.unwrap_or(cap)).await else {
        return refuse(GateError::Throttled, true);
    };
    let (bytes, hash) = match read_capped(
        body,
        cap,
        declared.unwrap_or(0),
        state.gate.body_read_timeout,
    )
    .await
    {
        Ok(read) => read,
        Err(e) => return refuse(e, true),
    };
    if let Err(e) = prechecked.finish(&parts, &hash, Some(&state.key_cache)) {
        return refuse(GateError::Auth(e), false);
    }
    if session {
        parts.extensions.insert(crate::sts::SessionCredentials);
    }
    if let Caller::User { access_key_id, .. } = &caller
        && !session
        && state
            .identities
            .due_for_last_used(access_key_id, std::time::Instant::now())
    {
        let used = LastUsed {
            date_ms: trellis_model::Timestamp::now().unix_millis(),
            service_name: signed_for.to_string(),
            region: signed_region.to_string(),
        };
        tokio::spawn(crate::identity::record_last_used(
            state.store.clone(),
            access_key_id.clone(),
            used,
        ));
    }
    // The caller acts on its own account: the ARNs it is authorized for name it, and a
    // resource tag is read from its records only.
    let scoped = state.for_account(caller.account());
    parts
        .extensions
        .insert(Authorizer(Arc::new(CallerAuthorizer {
            caller: caller.clone(),
            ctx: scoped.ctx.clone(),
            index,
            store: Some(scoped.store.clone()),
        })));
    // Other crates' handlers (the Lambda API) learn the caller's account from its context.
    let principal = CallerArn(caller.arn(&scoped.ctx));
    parts.extensions.insert(scoped.ctx);
    parts.extensions.insert(caller);
    // The permit is held until the handler is done with the body it was granted for.
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes.freeze())))
        .await;
    // For the API's request log line (`observe` in lib.rs), which runs outside the gate.
    resp.extensions_mut().insert(principal);
    resp
}

/// The authenticated caller's ARN, on the responses of requests the gate let through.
#[derive(Clone, Debug)]
pub struct CallerArn(pub String);

/// Reads a body of at most `cap` bytes, each piece within `gap` of the previous one, and returns
/// it with its hex SHA-256 (computed as it arrives).
async fn read_capped(
    mut body: Body,
    cap: usize,
    expected: usize,
    gap: Duration,
) -> Result<(BytesMut, String), GateError> {
    let mut buf = BytesMut::with_capacity(expected.min(cap));
    let mut hasher = Sha256::new();
    loop {
        let frame = match tokio::time::timeout(gap, body.frame()).await {
            Err(_) => return Err(GateError::BodyTimeout),
            Ok(None) => return Ok((buf, hex::encode(hasher.finalize()))),
            Ok(Some(Err(_))) => return Err(GateError::BodyBroken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > cap {
                return Err(GateError::TooLarge);
            }
            hasher.update(&data);
            buf.extend_from_slice(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, AtomicU64};
    use std::time::{Instant, SystemTime};

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_smithy_runtime_api::client::identity::Identity;
    use axum::http::Method;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;
    use trellis_functions::api::{CODE_BODY_CAP, INVOKE_BODY_CAP};

    use super::*;
    use crate::server::{ServerLimits, serve};

    const KEY: &str = "AKIDGATETEST";
    const SECRET: &str = "gate/test/secret";
    const HOST: &str = "api.test";

    /// A real server (the API's accept loop) whose routes echo the body length behind the gate.
    struct Gated {
        addr: SocketAddr,
        state: AppState,
        _dir: tempfile::TempDir,
    }

    async fn gated(gate: GateLimits) -> Gated {
        let dir = tempfile::tempdir().unwrap();
        let store = trellis_store::Store::connect(&trellis_store::Store::sqlite_url(
            &dir.path().join("gate.db"),
        ))
        .await
        .unwrap();
        let state = AppState::new(
            crate::testutil::ctx(),
            store,
            crate::RootCredentials {
                access_key_id: KEY.into(),
                secret_access_key: SECRET.into(),
            },
            Arc::default(),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(true)),
        )
        .with_gate_limits(gate);
        let table = echo_table();
        let app = table
            .router()
            .layer(axum::middleware::from_fn_with_state(
                (state.clone(), table.clone()),
                sigv4_gate,
            ))
            .layer(axum::middleware::from_fn(trellis_wire::request_id::assign));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(
            listener,
            app,
            ServerLimits::default(),
            std::future::pending(),
        ));
        Gated {
            addr,
            state,
            _dir: dir,
        }
    }

    /// The real table's services, bindings and caps for a few operations, each answering with
    /// the length of the body the gate let through.
    fn echo_table() -> Arc<Table> {
        let echo = |body: bytes::Bytes| async move { format!("got {}", body.len()) };
        let metas: Vec<trellis_wire::OperationMeta> = crate::operations::operations()
            .into_iter()
            .map(|o| o.meta)
            .chain(trellis_functions::operations().into_iter().map(|o| o.meta))
            .filter(|m| {
                [
                    "CreateService",
                    "CreateFunction",
                    "UpdateFunctionCode",
                    "Invoke",
                ]
                .contains(&m.name)
            })
            .collect();
        assert_eq!(metas.len(), 4);
        let ops = metas
            .into_iter()
            .map(|m| {
                let http = m.http.clone().expect("REST");
                let op = trellis_wire::Operation::axum(
                    m.service,
                    m.name,
                    (http.method, http.uri, 200),
                    echo,
                )
                .errors(m.errors);
                match m.body_cap {
                    Some(cap) => op.body_cap(cap, m.too_large),
                    None => op,
                }
            })
            .collect();
        Arc::new(
            trellis_wire::TableBuilder::new(&crate::operations::LATTICE)
                .add((), ops)
                .build(),
        )
    }

    /// How a test request is signed.
    #[derive(Clone, Copy, Debug)]
    enum Signing {
        Unsigned,
        /// (access key, secret, service, region, seconds before now)
        With(&'static str, &'static str, &'static str, &'static str, u64),
    }

    /// Signed correctly, now, for `service`.
    fn good(service: &'static str) -> Signing {
        Signing::With(KEY, SECRET, service, "us-west-2", 0)
    }

    /// The request head, signed over `body` (which need not be sent).
    fn head(
        method: &str,
        path: &str,
        body: &[u8],
        signing: Signing,
        length: Option<usize>,
    ) -> Vec<u8> {
        let mut headers = vec![
            ("host".to_string(), HOST.to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        if let Signing::With(key, secret, service, region, ago) = signing {
            let identity: Identity = Credentials::new(key, secret, None, None, "test").into();
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region(region)
                .name(service)
                .time(SystemTime::now() - Duration::from_secs(ago))
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into();
            let url = format!("http://{HOST}{path}");
            let signable = SignableRequest::new(
                method,
                url.as_str(),
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::Bytes(body),
            )
            .unwrap();
            let (instructions, _) = sign(signable, &params).unwrap().into_parts();
            for (name, value) in instructions.headers() {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        let mut out = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in &headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        match length {
            Some(n) => out.push_str(&format!("content-length: {n}\r\n\r\n")),
            None => out.push_str("transfer-encoding: chunked\r\n\r\n"),
        }
        out.into_bytes()
    }

    /// Reads one response head (and what follows of it) and returns (status, x-amzn-ErrorType).
    async fn response(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> (u16, String, String) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, stream.read(&mut chunk))
                .await
                .expect("no response in time")
                .unwrap_or(0);
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some(end) = text.find("\r\n\r\n")
                && (n == 0 || text.len() > end + 4)
            {
                let status = text[9..12].parse().unwrap();
                let code = text
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(": ")?;
                        name.eq_ignore_ascii_case("x-amzn-errortype")
                            .then(|| value.to_owned())
                    })
                    .unwrap_or_default();
                return (status, code, text[end + 4..].to_string());
            }
            assert!(n > 0, "connection closed before a response: {text:?}");
        }
    }

    /// How much of the body the client sends before reading the answer.
    #[derive(Clone, Copy, Debug)]
    enum Send {
        /// None of it: the answer must come from the head alone.
        HeadOnly,
        All,
        /// All of it, chunked (no declared length).
        Chunked,
    }

    async fn check(
        server: &Gated,
        (name, method, path, signing, len, send, status, code): (
            &str,
            &str,
            &str,
            Signing,
            usize,
            Send,
            u16,
            &str,
        ),
    ) {
        let body = vec![b'x'; len];
        let length = (!matches!(send, Send::Chunked)).then_some(len);
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&head(method, path, &body, signing, length))
            .await
            .unwrap();
        let (mut rd, mut wr) = s.into_split();
        // Written concurrently: the gate may answer (and close) before it is all sent.
        let writer = tokio::spawn(async move {
            match send {
                Send::HeadOnly => {}
                Send::All => {
                    let _ = wr.write_all(&body).await;
                }
                Send::Chunked => {
                    for piece in body.chunks(64 << 10) {
                        let size = format!("{:x}\r\n", piece.len());
                        let frame = [size.as_bytes(), piece, b"\r\n"].concat();
                        if wr.write_all(&frame).await.is_err() {
                            return wr;
                        }
                    }
                    let _ = wr.write_all(b"0\r\n\r\n").await;
                }
            }
            wr
        });
        let (got_status, got_code, text) = response(&mut rd).await;
        drop(writer.await);
        assert_eq!(
            (got_status, got_code.as_str()),
            (status, code),
            "{name}: {text}"
        );
    }

    #[tokio::test]
    async fn gate_table() {
        let server = gated(GateLimits::default()).await;
        let big = 66_000_000;
        let lattice = good("vpc-lattice");
        let lambda = good("lambda");
        #[rustfmt::skip]
        let cases = [
            // (name, method, path, signing, body length, what is sent, status, error code)
            ("unsigned, 66 MB declared", "POST", "/services", Signing::Unsigned, big, Send::HeadOnly, 403, "MissingAuthenticationTokenException"),
            ("unsigned Lambda upload", "POST", "/2015-03-31/functions", Signing::Unsigned, big, Send::HeadOnly, 403, "MissingAuthenticationTokenException"),
            ("unknown access key", "POST", "/2015-03-31/functions", Signing::With("AKIDUNKNOWN", SECRET, "lambda", "us-west-2", 0), big, Send::HeadOnly, 403, "UnrecognizedClientException"),
            ("expired date", "POST", "/2015-03-31/functions", Signing::With(KEY, SECRET, "lambda", "us-west-2", 3600), big, Send::HeadOnly, 403, "InvalidSignatureException"),
            ("wrong service", "POST", "/2015-03-31/functions", Signing::With(KEY, SECRET, "vpc-lattice", "us-west-2", 0), big, Send::HeadOnly, 403, "InvalidSignatureException"),
            ("wrong region", "POST", "/services", Signing::With(KEY, SECRET, "vpc-lattice", "eu-west-1", 0), big, Send::HeadOnly, 403, "InvalidSignatureException"),
            ("Lattice body over 1 MiB", "POST", "/services", lattice, DEFAULT_BODY_CAP + 1, Send::HeadOnly, 400, "ValidationException"),
            ("CreateFunction over its cap", "POST", "/2015-03-31/functions", lambda, CODE_BODY_CAP + 1, Send::HeadOnly, 413, "RequestEntityTooLargeException"),
            ("Invoke over 6 MB", "POST", "/2015-03-31/functions/f/invocations", lambda, INVOKE_BODY_CAP + 1, Send::HeadOnly, 413, "RequestTooLargeException"),
            ("chunked Lattice body over 1 MiB", "POST", "/services", lattice, DEFAULT_BODY_CAP + 1, Send::Chunked, 400, "ValidationException"),
            ("wrong secret, body read", "POST", "/services", Signing::With(KEY, "not/the/secret", "vpc-lattice", "us-west-2", 0), 10, Send::All, 403, "InvalidSignatureException"),
            ("good Lattice call", "POST", "/services", lattice, 1000, Send::All, 200, ""),
            ("good chunked Lattice call", "POST", "/services", lattice, 200_000, Send::Chunked, 200, ""),
            ("good 3 MB CreateFunction", "POST", "/2015-03-31/functions", lambda, 3_000_000, Send::All, 200, ""),
            ("good UpdateFunctionCode", "PUT", "/2015-03-31/functions/f/code", lambda, 2_000_000, Send::All, 200, ""),
        ];
        for case in cases {
            check(&server, case).await;
        }
    }

    #[test]
    fn caps_follow_the_operation() {
        let table = echo_table();
        let cases = [
            (Method::POST, "/2015-03-31/functions", CODE_BODY_CAP),
            (
                Method::PUT,
                "/2015-03-31/functions/my-fn/code",
                CODE_BODY_CAP,
            ),
            (
                Method::POST,
                "/2015-03-31/functions/my-fn/invocations",
                INVOKE_BODY_CAP,
            ),
            (Method::GET, "/2015-03-31/functions", DEFAULT_BODY_CAP),
            (
                Method::PUT,
                "/2015-03-31/functions/my-fn/configuration",
                DEFAULT_BODY_CAP,
            ),
            (
                Method::POST,
                "/2015-03-31/functions/my-fn/code/extra",
                DEFAULT_BODY_CAP,
            ),
            (Method::POST, "/services", DEFAULT_BODY_CAP),
        ];
        for (method, path, cap) in cases {
            let got = match table.head(&method, path, &Default::default()) {
                Head::Operation(m) => m.body_cap(),
                _ => DEFAULT_BODY_CAP,
            };
            assert_eq!(got, cap, "{method} {path}");
        }
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let server = gated(GateLimits::new(
            GateLimits::DEFAULT_BODY_BUDGET,
            Duration::from_millis(300),
        ))
        .await;
        let body = vec![b'x'; 100];
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(&head(
            "POST",
            "/services",
            &body,
            good("vpc-lattice"),
            Some(100),
        ))
        .await
        .unwrap();
        s.write_all(&body[..10]).await.unwrap();
        let (status, code, _) = response(&mut s).await;
        assert_eq!((status, code.as_str()), (408, "RequestTimeoutException"));
    }

    #[tokio::test]
    async fn concurrent_large_bodies_share_the_budget() {
        let mut gate = GateLimits::new(3 << 20, Duration::from_secs(10));
        gate.budget_wait = Duration::from_millis(300);
        let server = gated(gate).await;
        let body = vec![b'x'; 5 << 19];
        // The first upload takes 2.5 of the 3 MiB and stalls half-way.
        let mut first = TcpStream::connect(server.addr).await.unwrap();
        first
            .write_all(&head(
                "POST",
                "/2015-03-31/functions",
                &body,
                good("lambda"),
                Some(body.len()),
            ))
            .await
            .unwrap();
        first.write_all(&body[..1 << 20]).await.unwrap();
        // A second one cannot get its 2.5 MiB and is throttled, in Lambda's shape, from its head.
        let mut second = TcpStream::connect(server.addr).await.unwrap();
        second
            .write_all(&head(
                "POST",
                "/2015-03-31/functions",
                &body,
                good("lambda"),
                Some(body.len()),
            ))
            .await
            .unwrap();
        let (status, code, _) = response(&mut second).await;
        assert_eq!((status, code.as_str()), (429, "TooManyRequestsException"));
        // A small Lattice call's share still fits; a chunked one reserves its whole 1 MiB cap,
        // which does not, and Lattice throttles in its own shape.
        let small = vec![b'x'; 1000];
        let mut third = TcpStream::connect(server.addr).await.unwrap();
        third
            .write_all(&head(
                "POST",
                "/services",
                &small,
                good("vpc-lattice"),
                Some(small.len()),
            ))
            .await
            .unwrap();
        third.write_all(&small).await.unwrap();
        let (status, _, body_text) = response(&mut third).await;
        assert_eq!(status, 200, "{body_text}");
        let mut fourth = TcpStream::connect(server.addr).await.unwrap();
        fourth
            .write_all(&head("POST", "/services", &body, good("vpc-lattice"), None))
            .await
            .unwrap();
        let (status, code, _) = response(&mut fourth).await;
        assert_eq!((status, code.as_str()), (429, "ThrottlingException"));
        // Once the first finishes, its share is free again.
        first.write_all(&body[1 << 20..]).await.unwrap();
        let (status, _, _) = response(&mut first).await;
        assert_eq!(status, 200);
        let mut fifth = TcpStream::connect(server.addr).await.unwrap();
        fifth
            .write_all(&head(
                "POST",
                "/2015-03-31/functions",
                &body,
                good("lambda"),
                Some(body.len()),
            ))
            .await
            .unwrap();
        fifth.write_all(&body).await.unwrap();
        let (status, _, _) = response(&mut fifth).await;
        assert_eq!(status, 200);
    }

    #[test]
    fn lambda_paths_are_the_date_prefixed_ones() {
        let table = echo_table();
        for (path, lambda) in [
            ("/2015-03-31/functions", true),
            (
                "/2017-03-31/tags/arn%3Aaws%3Alambda%3Aus-west-2%3A111122223333%3Afunction%3Af",
                true,
            ),
            ("/2020-06-30/functions/f/code-signing-config", true),
            ("/2021-10-31/functions/f/url", true),
            ("/services", false),
            ("/tags/arn%3Aaws%3Avpc-lattice", false),
            ("/servicenetworks/sn-0123456789abcdef0", false),
            ("/2015-3-31/functions", false),
            ("/", false),
        ] {
            let service = match table.head(&Method::GET, path, &Default::default()) {
                Head::Operation(m) => m.service,
                Head::Unknown(s) => s,
                Head::Query(_) => panic!("{path}: no query services here"),
            };
            assert_eq!(service.signing_name == "lambda", lambda, "{path}");
        }
    }

    /// Stores a user with one key of `status` and, when given, one inline policy.
    async fn iam_user(state: &AppState, n: u8, status: &str, policy: Option<&str>) {
        use crate::identity::*;
        let user_id = format!("AIDAGATETEST{n}");
        let user = StoredUser {
            user_name: format!("user{n}"),
            user_id: user_id.clone(),
            path: "/".into(),
            arn: format!("arn:aws:iam::111122223333:user/user{n}"),
            create_date_ms: 0,
            tags: Vec::new(),
        };
        let key = StoredAccessKey {
            access_key_id: format!("AKIAGATETEST{n}"),
            secret_access_key: SECRET.into(),
            status: status.into(),
            user_id: user_id.clone(),
            user_name: user.user_name.clone(),
            create_date_ms: 0,
            last_used: None,
        };
        let record = |kind: &str, id: String, body: serde_json::Value| trellis_store::Record {
            kind: kind.into(),
            id,
            parent: None,
            name: None,
            arn: None,
            refs: vec![],
            body,
            seq: 0,
        };
        let mut tx = state.store.write().await.unwrap();
        tx.insert(&record(
            USER_KIND,
            user_id.clone(),
            serde_json::to_value(&user).unwrap(),
        ))
        .await
        .unwrap();
        tx.insert(&record(
            ACCESS_KEY_KIND,
            key.access_key_id.clone(),
            serde_json::to_value(&key).unwrap(),
        ))
        .await
        .unwrap();
        if let Some(doc) = policy {
            let p = StoredUserPolicy {
                user_id: user_id.clone(),
                policy_name: "p".into(),
                policy_document: doc.into(),
            };
            tx.insert(&record(
                USER_POLICY_KIND,
                format!("{user_id}/p"),
                serde_json::to_value(&p).unwrap(),
            ))
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn iam_keys_authenticate_from_the_index_and_are_authorized() {
        let server = gated(GateLimits::default()).await;
        let state = &server.state;
        iam_user(state, 1, "Active", Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"vpc-lattice:*","Resource":"*"}]}"#)).await;
        iam_user(state, 2, "Active", None).await;
        iam_user(state, 3, "Inactive", Some(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)).await;
        let key = |n: u8| -> &'static str {
            ["", "AKIAGATETEST1", "AKIAGATETEST2", "AKIAGATETEST3"][usize::from(n)]
        };
        // Before the index is loaded, no IAM key is known: the gate never reads the store.
        check(
            &server,
            (
                "not loaded",
                "POST",
                "/services",
                Signing::With(key(1), SECRET, "vpc-lattice", "us-west-2", 0),
                10,
                Send::All,
                403,
                "UnrecognizedClientException",
            ),
        )
        .await;
        state.identities.reload(&state.store).await.unwrap();
        #[rustfmt::skip]
        let cases = [
            ("allowed user", "POST", "/services", Signing::With(key(1), SECRET, "vpc-lattice", "us-west-2", 0), 10, Send::All, 200, ""),
            ("user without policy", "POST", "/services", Signing::With(key(2), SECRET, "vpc-lattice", "us-west-2", 0), 10, Send::All, 403, "AccessDeniedException"),
            ("allowed for Lattice only", "POST", "/2015-03-31/functions", Signing::With(key(1), SECRET, "lambda", "us-west-2", 0), 10, Send::All, 403, "AccessDeniedException"),
            ("inactive key", "POST", "/services", Signing::With(key(3), SECRET, "vpc-lattice", "us-west-2", 0), 10, Send::HeadOnly, 403, "UnrecognizedClientException"),
            ("wrong secret", "POST", "/services", Signing::With(key(1), "not/the/secret", "vpc-lattice", "us-west-2", 0), 10, Send::All, 403, "InvalidSignatureException"),
            ("root", "POST", "/services", good("vpc-lattice"), 10, Send::All, 200, ""),
        ];
        for case in cases {
            check(&server, case).await;
        }
    }
}

#[cfg(test)]
mod session_tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_smithy_runtime_api::client::identity::Identity;
    use tower::ServiceExt as _;

    use super::*;
    use crate::identity::*;
    use crate::session::{Claims, Subject, mint, secret};

    const KEY: &str = "AKIDSESSIONTEST";
    const TOKEN_KEY: [u8; 32] = [9; 32];

    /// A signed request for ListServices with `token` (header) when given.
    fn request(key: &str, secret: &str, token: Option<&str>) -> Request {
        let identity: Identity =
            Credentials::new(key, secret, token.map(str::to_string), None, "test").into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-west-2")
            .name("vpc-lattice")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let url = "http://api.test/services";
        let headers = [("host", "api.test")];
        let signable = SignableRequest::new(
            "GET",
            url,
            headers.iter().copied(),
            SignableBody::Bytes(b""),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();
        let mut builder = axum::http::Request::builder()
            .method("GET")
            .uri(url)
            .header("host", "api.test");
        for (name, value) in instructions.headers() {
            builder = builder.header(name, value);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn session_tokens_are_checked_by_the_gate() {
        let dir = tempfile::tempdir().unwrap();
        let store = trellis_store::Store::connect(&trellis_store::Store::sqlite_url(
            &dir.path().join("gate.db"),
        ))
        .await
        .unwrap();
        let state = AppState::new(
            crate::testutil::ctx(),
            store,
            crate::RootCredentials {
                access_key_id: KEY.into(),
                secret_access_key: "root/secret".into(),
            },
            Arc::default(),
            Arc::new(std::sync::atomic::AtomicU64::new(0)),
            Arc::new(std::sync::atomic::AtomicBool::new(true)),
        );
        // A role allowed to list services, and the token key.
        let role = StoredRole {
            role_name: "app".into(),
            role_id: "AROAGATETEST".into(),
            path: "/".into(),
            arn: "arn:aws:iam::111122223333:role/app".into(),
            create_date_ms: 0,
            assume_role_policy_document: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}}"#.into(),
            description: None,
            max_session_duration: 3600,
            tags: Vec::new(),
        };
        let policy = StoredRolePolicy {
            role_id: role.role_id.clone(),
            policy_name: "p".into(),
            policy_document: r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"vpc-lattice:ListServices","Resource":"*"}}"#.into(),
        };
        use base64::Engine as _;
        let token_key = StoredTokenKey {
            key: base64::engine::general_purpose::STANDARD.encode(TOKEN_KEY),
        };
        let record = |kind: &str, id: &str, body: serde_json::Value| trellis_store::Record {
            kind: kind.into(),
            id: id.into(),
            parent: None,
            name: None,
            arn: None,
            refs: vec![],
            body,
            seq: 0,
        };
        let mut tx = state.store.write().await.unwrap();
        for r in [
            record(
                ROLE_KIND,
                "AROAGATETEST",
                serde_json::to_value(&role).unwrap(),
            ),
            record(
                ROLE_POLICY_KIND,
                "AROAGATETEST/p",
                serde_json::to_value(&policy).unwrap(),
            ),
            record(
                TOKEN_KEY_KIND,
                TOKEN_KEY_ID,
                serde_json::to_value(&token_key).unwrap(),
            ),
        ] {
            tx.insert(&r).await.unwrap();
        }
        tx.commit().await.unwrap();
        state.identities.reload(&state.store).await.unwrap();

        let table = Arc::new(
            trellis_wire::TableBuilder::new(&crate::operations::LATTICE)
                .add(state.clone(), crate::operations::operations())
                .build(),
        );
        let app = table
            .router()
            .layer(axum::middleware::from_fn_with_state(
                (state.clone(), table.clone()),
                sigv4_gate,
            ))
            .layer(axum::middleware::from_fn(trellis_wire::request_id::assign));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = |key: &str, expires: i64, id: &str| Claims {
            access_key_id: key.into(),
            expires,
            subject: Subject::Role,
            id: id.into(),
            session_name: "s1".into(),
            tags: Vec::new(),
        };
        let live = mint(&TOKEN_KEY, &claims("ASIALIVE", now + 900, "AROAGATETEST"));
        let expired = mint(&TOKEN_KEY, &claims("ASIAOLD", now - 1, "AROAGATETEST"));
        let gone = mint(&TOKEN_KEY, &claims("ASIAGONE", now + 900, "AROADELETED"));
        let foreign = mint(&[1; 32], &claims("ASIAFOREIGN", now + 900, "AROAGATETEST"));
        let s = |k: &str| secret(&TOKEN_KEY, k);
        #[rustfmt::skip]
        let cases: Vec<(&str, Request, u16, &str)> = vec![
            ("live session", request("ASIALIVE", &s("ASIALIVE"), Some(&live)), 200, ""),
            ("expired session", request("ASIAOLD", &s("ASIAOLD"), Some(&expired)), 403, "ExpiredTokenException"),
            ("deleted role", request("ASIAGONE", &s("ASIAGONE"), Some(&gone)), 403, "UnrecognizedClientException"),
            ("another key's token", request("ASIAOLD", &s("ASIAOLD"), Some(&live)), 403, "UnrecognizedClientException"),
            ("no token", request("ASIALIVE", &s("ASIALIVE"), None), 403, "UnrecognizedClientException"),
            ("token of another key", request("ASIAFOREIGN", &s("ASIAFOREIGN"), Some(&foreign)), 403, "UnrecognizedClientException"),
            ("root with a token", request(KEY, "root/secret", Some(&live)), 403, "UnrecognizedClientException"),
            ("root", request(KEY, "root/secret", None), 200, ""),
        ];
        for (case, req, status, code) in cases {
            let resp = app.clone().oneshot(req).await.unwrap();
            let got_code = resp
                .headers()
                .get("x-amzn-errortype")
                .map(|v| v.to_str().unwrap().split(':').next().unwrap().to_string())
                .unwrap_or_default();
            assert_eq!(
                (resp.status().as_u16(), got_code.as_str()),
                (status, code),
                "{case}"
            );
        }
    }
}

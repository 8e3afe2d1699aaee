//! Test fixtures for the proxy: hand-built snapshots, hyper backends that record what they
//! receive, a proxy harness on ephemeral ports, and HTTP/1.1, h2c and HTTPS clients.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use trellis_health::{Health, HealthConfig};
use trellis_model::Context;
use trellis_model::Timestamp;
use trellis_model::resources::AuthType;
use trellis_model::resources::listener::ListenerProtocol;
use trellis_model::resources::rule::{
    HttpMatch, PathMatch, PathMatchType, Rule, RuleAction, RuleMatch, WeightedTargetGroup,
};
use trellis_model::resources::target_group::{
    HealthCheck, ProtocolVersion, TargetGroupConfig, TargetGroupProtocol, TargetGroupType,
};
use trellis_proxy::{Proxy, ProxyConfig};
use trellis_router::RouteTable;
use trellis_snapshot::{
    ListenerEntry, NetworkEntry, ServiceEntry, Snapshot, TargetEntry, TargetGroupEntry,
};
use trellis_tls::{CertificateAuthority, SniResolver};

pub const REGION: &str = "us-west-2";
pub const ACCOUNT: &str = "111122223333";

pub fn ctx() -> Context {
    Context {
        partition: "aws".into(),
        region: REGION.into(),
        account_id: ACCOUNT.into(),
    }
}

/// A port nobody listens on right now (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

pub fn host(name: &str) -> String {
    format!("{name}.trellis.test")
}

pub fn service_arn(name: &str) -> String {
    format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/svc-{name}")
}

pub fn network_arn(name: &str) -> String {
    format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:servicenetwork/sn-{name}")
}

pub fn group_arn(id: &str) -> String {
    format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:targetgroup/{id}")
}

pub fn forward(groups: &[(&str, u16)]) -> RuleAction {
    RuleAction::Forward {
        target_groups: groups
            .iter()
            .map(|(id, weight)| WeightedTargetGroup {
                target_group_id: id.to_string(),
                weight: *weight,
            })
            .collect(),
    }
}

pub fn fixed(status: u16) -> RuleAction {
    RuleAction::FixedResponse {
        status_code: status,
    }
}

/// A rule matching paths that start with `prefix`.
pub fn prefix_rule(
    priority: u16,
    prefix: &str,
    action: RuleAction,
) -> (u16, RuleMatch, RuleAction) {
    (
        priority,
        RuleMatch::HttpMatch(HttpMatch {
            method: None,
            path_match: Some(PathMatch {
                path: PathMatchType::Prefix(prefix.into()),
                case_sensitive: false,
            }),
            header_matches: Vec::new(),
        }),
        action,
    )
}

fn rule(
    id: String,
    listener_id: &str,
    priority: Option<u16>,
    rule_match: Option<RuleMatch>,
    action: RuleAction,
) -> Rule {
    Rule {
        arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:rule/{id}"),
        name: if priority.is_none() {
            "default".into()
        } else {
            format!("rule-{}", priority.unwrap_or_default())
        },
        id,
        service_id: "svc".into(),
        listener_id: listener_id.into(),
        is_default: priority.is_none(),
        priority,
        rule_match,
        action,
        created_at: Timestamp::now(),
        last_updated_at: Timestamp::now(),
        tags: Default::default(),
    }
}

pub fn listener(
    port: u16,
    protocol: ListenerProtocol,
    default_action: RuleAction,
    rules: Vec<(u16, RuleMatch, RuleAction)>,
) -> ListenerEntry {
    let id = format!("listener-{port}-{}", protocol.as_str());
    let mut docs: Vec<Rule> = rules
        .into_iter()
        .map(|(priority, m, action)| {
            rule(
                format!("rule-{id}-{priority}"),
                &id,
                Some(priority),
                Some(m),
                action,
            )
        })
        .collect();
    let default_id = format!("rule-{id}-default");
    docs.push(rule(
        default_id.clone(),
        &id,
        None,
        None,
        default_action.clone(),
    ));
    ListenerEntry {
        arn: format!("arn:aws:vpc-lattice:{REGION}:{ACCOUNT}:service/svc/listener/{id}"),
        name: id.clone(),
        routes: RouteTable::compile(&docs, &default_id, &default_action),
        id,
        protocol,
        port,
    }
}

pub fn service(name: &str, auth: AuthType, listeners: Vec<ListenerEntry>) -> ServiceEntry {
    ServiceEntry {
        id: format!("svc-{name}"),
        arn: service_arn(name),
        name: name.into(),
        auth_type: auth,
        dns_name: host(name),
        custom_domain_name: None,
        networks: vec![NetworkEntry {
            id: format!("sn-{name}"),
            arn: network_arn(name),
            auth_type: AuthType::None,
            auth_policy: None,
        }],
        listeners: listeners
            .into_iter()
            .map(|l| (l.port, Arc::new(l)))
            .collect(),
        auth_policy: None,
        tags: Default::default(),
        access_logs: Vec::new(),
    }
}

pub fn target_group(
    id: &str,
    protocol: TargetGroupProtocol,
    version: ProtocolVersion,
    targets: &[SocketAddr],
) -> TargetGroupEntry {
    let mut health_check = HealthCheck::defaults(protocol, Some(version));
    // Checks disabled: every target is UNAVAILABLE, which is routable, so picks work at once.
    health_check.enabled = false;
    TargetGroupEntry {
        id: id.into(),
        arn: group_arn(id),
        name: id.into(),
        target_type: TargetGroupType::Ip,
        config: TargetGroupConfig {
            port: Some(80),
            protocol: Some(protocol),
            protocol_version: Some(version),
            health_check: Some(health_check),
            ..Default::default()
        },
        in_use: true,
        targets: targets
            .iter()
            .map(|addr| TargetEntry {
                id: addr.ip().to_string(),
                port: Some(addr.port()),
                key: format!("{}:{}", addr.ip(), addr.port()),
                addr: Some(*addr),
            })
            .collect(),
    }
}

/// The configuration a test serves; [`World::snapshot`] builds a fresh `Snapshot` from it.
#[derive(Default, Clone)]
pub struct World {
    pub services: Vec<Arc<ServiceEntry>>,
    pub groups: Vec<Arc<TargetGroupEntry>>,
    pub revision: u64,
}

impl World {
    pub fn with_service(mut self, service: ServiceEntry) -> World {
        self.services.push(Arc::new(service));
        self
    }

    pub fn with_group(mut self, group: TargetGroupEntry) -> World {
        self.groups.push(Arc::new(group));
        self
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::empty(ctx());
        snapshot.revision = self.revision;
        for service in &self.services {
            snapshot
                .hosts
                .insert(service.dns_name.clone(), Arc::clone(service));
            snapshot.dns_names.push(service.dns_name.clone());
            for listener in service.listeners.values() {
                let port = snapshot.ports.entry(listener.port).or_default();
                match listener.protocol {
                    ListenerProtocol::Http => port.http = true,
                    ListenerProtocol::Https => {
                        port.https = true;
                        snapshot.tls_names.push(service.dns_name.clone());
                    }
                    ListenerProtocol::TlsPassthrough => port.tls_passthrough = true,
                }
            }
        }
        for group in &self.groups {
            snapshot
                .target_groups
                .insert(group.id.clone(), Arc::clone(group));
        }
        snapshot
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy under test.

pub struct Harness {
    pub proxy: Arc<Proxy>,
    pub snapshots: Arc<ArcSwap<Snapshot>>,
    pub health: Arc<Health>,
    pub resolver: Arc<SniResolver>,
    pub ca: Arc<CertificateAuthority>,
    pub ca_pem: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_config(ProxyConfig::default())
    }

    /// A harness over `config` in development mode (`open_network`): these tests build
    /// snapshots without client networks; the e2e suite `test_client_networks.py` covers them.
    pub fn with_config(mut config: ProxyConfig) -> Harness {
        config.open_network = true;
        let dir = tempfile::tempdir().unwrap();
        let ca = Arc::new(CertificateAuthority::load_or_create(dir.path()).unwrap());
        let resolver = Arc::new(SniResolver::new(Arc::clone(&ca)));
        let snapshots = Arc::new(ArcSwap::from_pointee(Snapshot::empty(ctx())));
        let health = Health::new(HealthConfig::default());
        let proxy = Proxy::new(
            config,
            Arc::clone(&snapshots),
            Arc::clone(&health),
            Arc::clone(&resolver),
        );
        Harness {
            proxy,
            snapshots,
            health,
            resolver,
            ca_pem: ca.certificate_pem(),
            ca,
            _dir: dir,
        }
    }

    /// Publishes the world's snapshot and runs the reconcilers, as the server does.
    pub async fn apply(&self, world: &World) -> Vec<(u16, std::io::Error)> {
        let snapshot = Arc::new(world.snapshot());
        self.snapshots.store(Arc::clone(&snapshot));
        self.health.sync(&snapshot);
        self.resolver.set_names(snapshot.tls_names.clone());
        self.proxy.reconcile(&snapshot).await
    }

    pub async fn apply_ok(&self, world: &World) {
        let failures = self.apply(world).await;
        assert!(failures.is_empty(), "bind failures: {failures:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Backends.

pub type BoxBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// What a backend received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub version: Version,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// HTTP/1.1 only, clear text.
    H1,
    /// HTTP/2 with prior knowledge only, clear text.
    H2c,
    /// TLS with ALPN `h2` and `http/1.1`.
    Tls,
}

pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    state: Arc<BackendState>,
    task: tokio::task::JoinHandle<()>,
}

struct BackendState {
    name: String,
    seen: Mutex<Vec<Seen>>,
    connections: AtomicUsize,
    arrived: mpsc::UnboundedSender<()>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
    release: Semaphore,
}

/// Responses by path:
/// * `/echo`: the request body streamed back, trailers included;
/// * `/trailers`: a gRPC-style body with `grpc-status: 0` trailers;
/// * `/slow`: reports its arrival, then waits for [`Backend::release`];
/// * `/never`: never answers;
/// * anything else: 200 with the backend's name as body.
impl Backend {
    pub async fn start(name: &str, kind: BackendKind, ca: &CertificateAuthority) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let state = Arc::new(BackendState {
            name: name.into(),
            seen: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            arrived,
            arrivals: tokio::sync::Mutex::new(arrivals),
            release: Semaphore::new(0),
        });
        let tls = (kind == BackendKind::Tls).then(|| {
            let key = ca.issue(&["backend.test".to_string()]).unwrap();
            let mut config = rustls::ServerConfig::builder_with_provider(trellis_tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Fixed(key)));
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        let task_state = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                task_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&task_state);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(state.handle(req).await) }
                    });
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    // The proxy adds its own fields to requests already at its limit.
                    builder.http1().max_headers(1000);
                    let builder = match kind {
                        BackendKind::H1 => builder.http1_only(),
                        BackendKind::H2c => builder.http2_only(),
                        BackendKind::Tls => builder,
                    };
                    match tls {
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else {
                                return;
                            };
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                        None => {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        Backend {
            addr,
            name: name.into(),
            state,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().pop().expect("the backend received a request")
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until a `/slow` request has arrived.
    pub async fn arrival(&self) {
        self.state.arrivals.lock().await.recv().await.unwrap();
    }

    /// Lets one `/slow` request answer.
    pub fn release(&self) {
        self.state.release.add_permits(1);
    }

    /// Stops accepting (existing connections are left alone).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BackendState {
    async fn handle(&self, req: Request<Incoming>) -> Response<BoxBody> {
        self.seen.lock().unwrap().push(Seen {
            method: req.method().to_string(),
            uri: req.uri().to_string(),
            version: req.version(),
            headers: req.headers().clone(),
        });
        match req.uri().path() {
            "/echo" => Response::new(req.into_body().boxed_unsync()),
            "/trailers" => {
                let mut trailers = HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                trailers.insert("grpc-message", HeaderValue::from_static("fine"));
                let body = Frames::new(vec![
                    Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")),
                    Frame::trailers(trailers),
                ]);
                let mut response = Response::new(body.boxed_unsync());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/grpc"),
                );
                response
            }
            "/slow" => {
                let _ = self.arrived.send(());
                self.release.acquire().await.unwrap().forget();
                text(&self.name)
            }
            "/never" => std::future::pending().await,
            _ => text(&self.name),
        }
    }
}

fn text(s: &str) -> Response<BoxBody> {
    Response::new(
        Full::new(Bytes::from(s.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
}

/// A body made of the given frames, in order.
pub struct Frames(std::collections::VecDeque<Frame<Bytes>>);

impl Frames {
    pub fn new(frames: Vec<Frame<Bytes>>) -> Frames {
        Frames(frames.into())
    }
}

impl hyper::body::Body for Frames {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        std::task::Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

pub type ReqBody = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    H1,
    H2c,
    TlsH1,
    TlsH2,
}

impl ClientKind {
    pub fn is_tls(self) -> bool {
        matches!(self, ClientKind::TlsH1 | ClientKind::TlsH2)
    }

    pub fn is_h2(self) -> bool {
        matches!(self, ClientKind::H2c | ClientKind::TlsH2)
    }
}

pub enum Sender {
    H1(hyper::client::conn::http1::SendRequest<ReqBody>),
    H2(hyper::client::conn::http2::SendRequest<ReqBody>),
}

/// A client connection to the proxy on `port`, for the service named `host` (the SNI too).
pub struct Client {
    pub kind: ClientKind,
    pub host: String,
    pub port: u16,
    sender: Sender,
}

pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl Client {
    pub async fn connect(kind: ClientKind, port: u16, host: &str, ca_pem: &str) -> Client {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let sender = if kind.is_tls() {
            let mut config = (*trellis_tls::client_config_trusting(ca_pem).unwrap()).clone();
            config.alpn_protocols = if kind.is_h2() {
                vec![b"h2".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            handshake(kind, TokioIo::new(tls)).await
        } else {
            handshake(kind, TokioIo::new(tcp)).await
        };
        Client {
            kind,
            host: host.into(),
            port,
            sender,
        }
    }

    /// A request builder of the right shape: `Host` for HTTP/1.1, `:authority` for HTTP/2.
    pub fn request(&self, method: &str, path: &str) -> http::request::Builder {
        let authority = format!("{}:{}", self.host, self.port);
        if self.kind.is_h2() {
            let scheme = if self.kind.is_tls() { "https" } else { "http" };
            Request::builder()
                .method(method)
                .uri(format!("{scheme}://{authority}{path}"))
                .version(Version::HTTP_2)
        } else {
            Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, authority)
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let req = self.request("GET", path).body(empty()).unwrap();
        self.send(req).await
    }

    pub async fn send(&mut self, req: Request<ReqBody>) -> Reply {
        let response = self.send_streaming(req).await;
        let status = response.status();
        let version = response.version();
        let headers = response.headers().clone();
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        Reply {
            status,
            version,
            headers,
            body: collected.to_bytes(),
            trailers,
        }
    }

    pub async fn send_streaming(&mut self, req: Request<ReqBody>) -> Response<Incoming> {
        match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await.unwrap();
                s.send_request(req).await.unwrap()
            }
            Sender::H2(s) => {
                s.ready().await.unwrap();
                s.send_request(req).await.unwrap()
            }
        }
    }
}

async fn handshake<I>(kind: ClientKind, io: I) -> Sender
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if kind.is_h2() {
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        Sender::H2(sender)
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        Sender::H1(sender)
    }
}

pub fn empty() -> ReqBody {
    Empty::new().boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// Services by name for lookups in assertions.
pub fn by_name(world: &World) -> HashMap<String, Arc<ServiceEntry>> {
    world
        .services
        .iter()
        .map(|s| (s.name.clone(), Arc::clone(s)))
        .collect()
}

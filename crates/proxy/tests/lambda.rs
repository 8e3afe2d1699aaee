//! LAMBDA target groups through the proxy with a fake function invoker: the V1 and V2 events a
//! function receives (over HTTP/1.1 and HTTP/2), the response mapping back to the client, every
//! failure's status, the 6 MB request limit, the target's status, and an invocation that
//! outlives its client.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::{Value, json};
use support::*;
use tokio::sync::Semaphore;
use trellis_lambda_event::{InvokeError, InvokeOutcome};
use trellis_model::resources::AuthType;
use trellis_model::resources::listener::ListenerProtocol::Http;
use trellis_model::resources::target_group::{
    LambdaEventStructureVersion, TargetGroupConfig, TargetGroupType, TargetStatus,
};
use trellis_proxy::{FunctionInvoker, InvokeFuture};
use trellis_snapshot::{TargetEntry, TargetGroupEntry};

const TG_V1: &str = "tg-00000000000000001";
const TG_V2: &str = "tg-00000000000000002";

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

fn lambda_group(
    id: &str,
    version: Option<LambdaEventStructureVersion>,
    function: &str,
) -> TargetGroupEntry {
    TargetGroupEntry {
        id: id.into(),
        arn: group_arn(id),
        name: id.into(),
        target_type: TargetGroupType::Lambda,
        config: TargetGroupConfig {
            lambda_event_structure_version: version,
            ..Default::default()
        },
        in_use: true,
        targets: vec![TargetEntry {
            id: function.into(),
            port: None,
            key: function.into(),
            addr: None,
        }],
    }
}

/// A service `name` on `port`: `/v2…` goes to a V2 group, everything else to a V1 group (its
/// version left unset, which means V1).
fn lambda_world(name: &str, port: u16) -> World {
    World::default()
        .with_service(service(
            name,
            AuthType::None,
            vec![listener(
                port,
                Http,
                forward(&[(TG_V1, 1)]),
                vec![prefix_rule(1, "/v2", forward(&[(TG_V2, 1)]))],
            )],
        ))
        .with_group(lambda_group(TG_V1, None, &function_arn("echo:live")))
        .with_group(lambda_group(
            TG_V2,
            Some(LambdaEventStructureVersion::V2),
            &function_arn("echo2"),
        ))
}

/// Answers by the request path the event carries (`raw_path` or `path`, before any `?`):
/// * `…/error`: an unhandled function error; `…/timeout`: a timeout;
/// * `…/malformed`: a result that is not JSON; `…/missing`: no such function;
///   `…/throttled`: concurrency exhausted;
/// * `…/held`: waits for [`Fake::release`], then answers like the default;
/// * anything else: 201 with the event as a JSON body, a repeated `set-cookie`, and the body
///   of the event echoed base64-encoded in `x-body` when the event's was.
struct Fake {
    seen: Mutex<Vec<(String, Value)>>,
    finished: AtomicUsize,
    held: Semaphore,
    arrived: tokio::sync::Notify,
}

impl Default for Fake {
    fn default() -> Fake {
        Fake {
            seen: Mutex::default(),
            finished: AtomicUsize::new(0),
            held: Semaphore::new(0),
            arrived: tokio::sync::Notify::new(),
        }
    }
}

impl Fake {
    /// The last invocation: the function and its event, without its trace headers
    /// ([`strip_trace`]).
    fn last(&self) -> (String, Value) {
        let (function, mut event) = self
            .seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("an invocation");
        strip_trace(&mut event);
        (function, event)
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    fn release(&self) {
        self.held.add_permits(1);
    }

    async fn answer(&self, function: &str, event: Bytes) -> Result<InvokeOutcome, InvokeError> {
        let doc: Value = serde_json::from_slice(&event).expect("the event is JSON");
        self.seen
            .lock()
            .unwrap()
            .push((function.to_owned(), doc.clone()));
        let path = doc
            .get("raw_path")
            .or(doc.get("path"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("")
            .to_owned();
        let ok = |payload: Value| Ok(outcome(payload.to_string(), false));
        let result = match path.rsplit('/').next().unwrap_or("") {
            "error" => Ok(outcome(
                json!({"errorMessage": "asked to fail", "errorType": "ValueError"}).to_string(),
                true,
            )),
            "timeout" => Ok(outcome(
                json!({"errorType": "Sandbox.Timedout",
                       "errorMessage": "RequestId: 1 Error: Task timed out after 3.00 seconds"})
                .to_string(),
                true,
            )),
            "malformed" => Ok(outcome("this is not JSON".into(), false)),
            "missing" => Err(InvokeError::NotFound(format!(
                "Function not found: {function}"
            ))),
            "throttled" => Err(InvokeError::TooManyRequests),
            "binary" => ok(json!({
                "statusCode": 200,
                "headers": {"content-type": "application/octet-stream"},
                "isBase64Encoded": true,
                "body": doc.get("body").cloned().unwrap_or(Value::Null),
            })),
            held => {
                if held == "held" {
                    self.arrived.notify_one();
                    self.held.acquire().await.unwrap().forget();
                }
                ok(json!({
                    "statusCode": 201,
                    "statusDescription": "201 Created",
                    "headers": {"content-type": "application/json", "x-function": function,
                                "content-length": "1"},
                    "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]},
                    "body": doc.to_string(),
                }))
            }
        };
        self.finished.fetch_add(1, Ordering::SeqCst);
        result
    }
}

impl FunctionInvoker for Fake {
    fn invoke<'a>(&'a self, function: &'a str, event: Bytes) -> InvokeFuture<'a> {
        Box::pin(self.answer(function, event))
    }
}

fn outcome(payload: String, function_error: bool) -> InvokeOutcome {
    InvokeOutcome {
        status: 200,
        payload: Bytes::from(payload),
        function_error: function_error.then(|| "Unhandled".to_owned()),
        log_tail: None,
        executed_version: Some("1".into()),
    }
}

async fn setup(name: &str) -> (Harness, Arc<Fake>, u16) {
    let harness = Harness::new();
    let fake = Arc::new(Fake::default());
    harness.proxy.set_invoker(fake.clone());
    let port = free_port();
    harness.apply_ok(&lambda_world(name, port)).await;
    (harness, fake, port)
}

#[tokio::test]
async fn v1_event_and_response_over_http1() {
    let (harness, fake, port) = setup("lam1").await;
    let mut client = Client::connect(ClientKind::H1, port, &host("lam1"), &harness.ca_pem).await;
    let req = client
        .request("GET", "/orders/a%20b?x=1&y=%41&x=2")
        .header("accept", "text/html")
        .header("accept", "application/json")
        .header("cookie", "session=abc")
        .header("x-amzn-lattice-identity", "Principal=spoofed")
        .header("x-amzn-requestid", "client-request-1")
        .header("connection", "keep-alive")
        .body(empty())
        .unwrap();
    let reply = client.send(req).await;

    let (function, event) = fake.last();
    assert_eq!(function, function_arn("echo:live"));
    let authority = format!("{}:{port}", host("lam1"));
    assert_eq!(
        event,
        json!({
            "raw_path": "/orders/a%20b?x=1&y=%41&x=2",
            "method": "GET",
            "headers": {
                "host": authority,
                "accept": "text/html, application/json",
                "cookie": "session=abc",
                "x-amzn-requestid": "client-request-1",
                "x-forwarded-for": "127.0.0.1",
            },
            "query_string_parameters": {"x": "2", "y": "A"},
            "body": "",
            "is_base64_encoded": false,
        })
    );

    assert_eq!(reply.status.as_u16(), 201);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.header("x-function"),
        Some(function_arn("echo:live").as_str())
    );
    let cookies: Vec<&str> = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    // Content-Length is the body's, not the function's claim.
    assert_eq!(
        reply.header("content-length"),
        Some(reply.body.len().to_string().as_str())
    );
    assert_eq!(reply.header("x-amzn-requestid"), Some("client-request-1"));
    let mut echoed: Value = serde_json::from_slice(&reply.body).unwrap();
    strip_trace(&mut echoed);
    assert_eq!(echoed, event);
}

#[tokio::test]
async fn v2_event_with_binary_body_over_h2c() {
    let (harness, fake, port) = setup("lam2").await;
    let mut client = Client::connect(ClientKind::H2c, port, &host("lam2"), &harness.ca_pem).await;
    let body: &[u8] = &[0x00, 0xff, 0x10, 0x80];
    let before = SystemTime::now();
    let req = client
        .request("POST", "/v2/binary?k=v%2Fw&k=2&flag")
        .header("content-type", "application/octet-stream")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(full(Bytes::from_static(body)))
        .unwrap();
    let reply = client.send(req).await;

    let (function, event) = fake.last();
    assert_eq!(function, function_arn("echo2"));
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["path"], "/v2/binary?k=v%2Fw&k=2&flag");
    assert_eq!(event["method"], "POST");
    assert_eq!(
        event["queryStringParameters"],
        json!({"k": ["v/w", "2"], "flag": [""]})
    );
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "AP8QgA==");
    let headers = &event["headers"];
    // HTTP/2 has no Host field: it comes from :authority.
    assert_eq!(headers["host"], json!([format!("{}:{port}", host("lam2"))]));
    assert_eq!(headers["cookie"], json!(["a=1; b=2"]));
    assert_eq!(headers["content-type"], json!(["application/octet-stream"]));
    assert_eq!(headers["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(
        headers["x-amzn-requestid"],
        json!([reply.header("x-amzn-requestid").unwrap()])
    );
    for absent in [
        "x-forwarded-port",
        "x-forwarded-proto",
        "x-amzn-lattice-target",
    ] {
        assert!(headers.get(absent).is_none(), "{absent} in {headers}");
    }
    let context = &event["requestContext"];
    assert_eq!(context["serviceArn"], service_arn("lam2"));
    assert_eq!(context["serviceNetworkArn"], network_arn("lam2"));
    assert_eq!(context["targetGroupArn"], group_arn(TG_V2));
    assert_eq!(context["region"], REGION);
    assert_eq!(context["identity"], json!({}));
    let micros: u128 = context["timeEpoch"].as_str().unwrap().parse().unwrap();
    let low = before.duration_since(UNIX_EPOCH).unwrap().as_micros() - 1_000_000;
    let high = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros();
    assert!(
        (low..=high).contains(&micros),
        "{micros} not in {low}..={high}"
    );

    // The function's base64 body reaches the client as bytes.
    assert_eq!(reply.status.as_u16(), 200);
    assert_eq!(reply.body.as_ref(), body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn failures_map_to_statuses() {
    let (harness, fake, port) = setup("lamf").await;
    let mut client = Client::connect(ClientKind::H1, port, &host("lamf"), &harness.ca_pem).await;
    for (path, status, body) in [
        ("/error", 502, "Bad Gateway"),
        ("/v2/error", 502, "Bad Gateway"),
        ("/timeout", 504, "Gateway Timeout"),
        ("/malformed", 502, "Bad Gateway"),
        ("/missing", 502, "Bad Gateway"),
        ("/throttled", 503, "Service Unavailable"),
    ] {
        let reply = client.get(path).await;
        assert_eq!(reply.status.as_u16(), status, "{path}");
        assert_eq!(reply.text(), body, "{path}");
        assert!(reply.header("x-amzn-requestid").is_some(), "{path}");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{path}"
        );
    }
    assert_eq!(fake.count(), 6);
}

#[tokio::test]
async fn request_body_over_6_mb_is_413() {
    let (harness, fake, port) = setup("lambig").await;
    let limit = trellis_lambda_event::lattice::MAX_REQUEST_BODY;
    // Declared too large: refused before the body is read.
    let mut client = Client::connect(ClientKind::H1, port, &host("lambig"), &harness.ca_pem).await;
    let req = client
        .request("POST", "/upload")
        .header("content-type", "text/plain")
        .body(full(vec![b'a'; limit + 1]))
        .unwrap();
    assert_eq!(client.send(req).await.status.as_u16(), 413);
    // Streamed without a length (HTTP/2 DATA frames): refused once it passes the limit.
    let mut client = Client::connect(ClientKind::H2c, port, &host("lambig"), &harness.ca_pem).await;
    let frames: Vec<_> = (0..7)
        .map(|_| hyper::body::Frame::data(Bytes::from(vec![b'a'; 1 << 20])))
        .collect();
    let req = client
        .request("POST", "/upload")
        .header("content-type", "text/plain")
        .body(http_body_util::BodyExt::boxed_unsync(FramesInfallible(
            frames.into(),
        )))
        .unwrap();
    assert_eq!(client.send(req).await.status.as_u16(), 413);
    // At the limit in text, the body fits the event: the function is invoked.
    let mut client = Client::connect(ClientKind::H1, port, &host("lambig"), &harness.ca_pem).await;
    let req = client
        .request("POST", "/upload")
        .header("content-type", "text/plain")
        .body(full(vec![b'a'; 5 << 20]))
        .unwrap();
    assert_eq!(client.send(req).await.status.as_u16(), 201);
    assert_eq!(fake.count(), 1);
}

/// A body made of frames that cannot fail (the client side's body type).
struct FramesInfallible(std::collections::VecDeque<hyper::body::Frame<Bytes>>);

impl hyper::body::Body for FramesInfallible {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.get_mut().0.pop_front().map(Ok))
    }
}

#[tokio::test]
async fn without_an_invoker_lambda_groups_answer_500() {
    let harness = Harness::new();
    let port = free_port();
    harness.apply_ok(&lambda_world("lamnone", port)).await;
    let mut client = Client::connect(ClientKind::H1, port, &host("lamnone"), &harness.ca_pem).await;
    let reply = client.get("/").await;
    assert_eq!(reply.status.as_u16(), 500);
    assert_eq!(reply.text(), "Internal Server Error");
}

#[tokio::test]
async fn lambda_targets_are_unavailable_and_counted_in_flight() {
    let (harness, fake, port) = setup("lamh").await;
    let key = function_arn("echo:live");
    assert_eq!(
        harness.health.status(TG_V1, &key),
        Some((TargetStatus::Unavailable, None))
    );
    let mut client = Client::connect(ClientKind::H1, port, &host("lamh"), &harness.ca_pem).await;
    let request = tokio::spawn(async move { client.get("/held").await });
    fake.arrived.notified().await;
    assert_eq!(harness.health.in_flight(TG_V1, &key), 1);
    fake.release();
    assert_eq!(request.await.unwrap().status.as_u16(), 201);
    assert_eq!(harness.health.in_flight(TG_V1, &key), 0);
}

/// A client that goes away does not cancel the function: the invocation runs to its end.
#[tokio::test]
async fn invocation_outlives_its_client() {
    let (harness, fake, port) = setup("lamgone").await;
    let mut client = Client::connect(ClientKind::H1, port, &host("lamgone"), &harness.ca_pem).await;
    let request = tokio::spawn(async move { client.get("/held").await });
    fake.arrived.notified().await;
    request.abort();
    let _ = request.await;
    // The proxy has dropped the request once the function's in-flight count is back to 0.
    let key = function_arn("echo:live");
    wait_for("the request to be dropped", || {
        harness.health.in_flight(TG_V1, &key) == 0
    })
    .await;
    assert_eq!(fake.finished.load(Ordering::SeqCst), 0);
    fake.release();
    wait_for("the invocation to finish", || {
        fake.finished.load(Ordering::SeqCst) == 1
    })
    .await;
}

/// Polls `done` until it holds, for at most 5 seconds.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A Lambda event carries the path the rules matched (normalised, query as sent) and the one
/// authority routed on, also for an absolute-form HTTP/1.1 target: `/x/../v2/%61` meets the
/// `/v2` rule and the V2 function sees `/v2/a`.
#[tokio::test]
async fn events_carry_the_normalised_path_and_the_routed_host() {
    let (harness, fake, port) = setup("lamn").await;
    let authority = format!("{}:{port}", host("lamn"));
    let mut client = Client::connect(ClientKind::H1, port, &host("lamn"), &harness.ca_pem).await;
    let req = http::Request::get(format!("http://{authority}/x/../v2/%61?q=%2e%2E"))
        .header("host", &authority)
        .body(empty())
        .unwrap();
    assert!(client.send(req).await.status.is_success());
    let (function, event) = fake.last();
    assert_eq!(function, function_arn("echo2"));
    assert_eq!(event["path"], "/v2/a?q=%2e%2E");
    assert_eq!(event["headers"]["host"], json!([authority]));
}

/// Checks the form of an event's trace headers (new on every request, so not comparable) and
/// takes them out.
fn strip_trace(event: &mut Value) {
    let Some(headers) = event["headers"].as_object_mut() else {
        return;
    };
    let one = |v: Value| match v {
        Value::Array(mut a) if a.len() == 1 => a.remove(0),
        other => other,
    };
    let parent = one(headers.remove("traceparent").expect("a traceparent"));
    let parent = parent.as_str().expect("a string");
    assert!(parent.len() == 55 && parent.starts_with("00-"), "{parent}");
    let root = one(headers
        .remove("x-amzn-trace-id")
        .expect("an X-Ray trace ID"));
    assert!(
        root.as_str().expect("a string").starts_with("Root=1-"),
        "{root}"
    );
}

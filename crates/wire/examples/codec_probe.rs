//! Drives the protocol codecs from outside, for `tests/e2e/test_codec_botocore.py`, which checks
//! them against botocore's own serializers and parsers: one JSON case per stdin line, one JSON
//! answer per stdout line.
//!
//! Every case has `service` (a botocore model's `metadata`), `operation` and, for REST services,
//! `http` (`method`, `requestUri`, `responseCode`). Then by `kind`:
//!
//! - `output`: `output` is a document to answer with, and `request_id`. Objects are
//!   structures; `{"$map": [[key, value], …]}` is a map (written through `codec::Map`) and
//!   `{"$ts": seconds}` a timestamp (`codec::Timestamp`). Answer: `status`, `headers`, `body`
//!   (the response as the codec wrote it, plus the `x-amzn-RequestId` header that the
//!   request-ID middleware adds to every response).
//! - `error`: `error` has `code`, `status`, `message`, `message_member` and `members`. Answer as
//!   for `output`.
//! - `request`: `method`, `path` (with its query), `headers`, `body_b64`: a request as a client
//!   sent it. REST requests are routed on the operation's URI template by axum, as the table's
//!   router does. Answer: `input` (the decoded document) or `error`.

use std::collections::HashMap;
use std::io::{BufRead as _, Write as _};
use std::sync::Mutex;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use serde::ser::{SerializeMap as _, SerializeSeq as _};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use trellis_wire::codec::{self, Map, Timestamp};
use trellis_wire::{AwsError, Http, OperationMeta, Protocol, RequestId, Service, ServiceErrors};

/// A document with its maps and timestamps marked.
enum Doc {
    Struct(Vec<(String, Doc)>),
    Map(Vec<(String, Doc)>),
    List(Vec<Doc>),
    Timestamp(f64),
    Scalar(Value),
}

impl Doc {
    fn from_json(v: Value) -> Doc {
        match v {
            Value::Object(mut m) if m.len() == 1 && m.contains_key("$map") => {
                let entries = match m.remove("$map") {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                Doc::Map(
                    entries
                        .into_iter()
                        .filter_map(|e| match e {
                            Value::Array(mut kv) if kv.len() == 2 => {
                                let v = kv.pop()?;
                                let k = kv.pop()?.as_str()?.to_string();
                                Some((k, Doc::from_json(v)))
                            }
                            _ => None,
                        })
                        .collect(),
                )
            }
            Value::Object(m) if m.len() == 1 && m.contains_key("$ts") => {
                Doc::Timestamp(m["$ts"].as_f64().unwrap_or(0.0))
            }
            Value::Object(m) => {
                Doc::Struct(m.into_iter().map(|(k, v)| (k, Doc::from_json(v))).collect())
            }
            Value::Array(a) => Doc::List(a.into_iter().map(Doc::from_json).collect()),
            v => Doc::Scalar(v),
        }
    }
}

/// A map's entries as serde sees a map.
struct Entries<'a>(&'a [(String, Doc)]);

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Doc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            // An object that is not a marked map is a structure to every codec.
            Doc::Struct(members) => Entries(members).serialize(s),
            Doc::Map(entries) => Map(Entries(entries)).serialize(s),
            Doc::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for x in items {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Doc::Timestamp(t) => Timestamp(*t).serialize(s),
            Doc::Scalar(v) => v.serialize(s),
        }
    }
}

fn unknown_operation(what: &str) -> AwsError {
    AwsError::new(
        "UnknownOperationException",
        StatusCode::NOT_FOUND,
        format!("unknown operation {what}"),
    )
}

fn bad_input(msg: String) -> AwsError {
    AwsError::new("ValidationException", StatusCode::BAD_REQUEST, msg)
}

fn too_large(n: usize) -> AwsError {
    AwsError::new(
        "ValidationException",
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("over {n}"),
    )
}

fn leak(v: &Value, key: &str) -> Option<&'static str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| &*Box::leak(s.to_string().into_boxed_str()))
}

/// The service of a botocore model's metadata (leaked: the probe lives for one test run and
/// sees a handful of services).
fn service(meta: &Value, cache: &Mutex<HashMap<String, &'static Service>>) -> &'static Service {
    let key = meta.to_string();
    let mut cache = cache.lock().expect("one thread");
    if let Some(s) = cache.get(&key) {
        return s;
    }
    let protocol = match (
        meta["protocol"].as_str().unwrap_or(""),
        meta["jsonVersion"].as_str(),
    ) {
        ("rest-json", _) => Protocol::RestJson1,
        ("json", Some("1.0")) => Protocol::AwsJson1_0,
        ("json", _) => Protocol::AwsJson1_1,
        ("query", _) => Protocol::AwsQuery,
        ("ec2", _) => Protocol::Ec2Query,
        (p, _) => panic!("protocol {p} is not one Trellis speaks"),
    };
    let s: &'static Service = Box::leak(Box::new(Service {
        id: leak(meta, "serviceId").unwrap_or("probe"),
        signing_name: leak(meta, "signingName")
            .or_else(|| leak(meta, "endpointPrefix"))
            .unwrap_or("probe"),
        endpoint_prefix: leak(meta, "endpointPrefix").unwrap_or("probe"),
        api_version: leak(meta, "apiVersion").unwrap_or(""),
        protocol,
        target_prefix: leak(meta, "targetPrefix"),
        xml_namespace: leak(meta, "xmlNamespace"),
        path_prefixes: &[],
        errors: ServiceErrors {
            unknown_operation,
            bad_input,
            internal_code: "InternalFailure",
            throttling_code: "ThrottlingException",
            too_large,
            common: &[],
        },
    }));
    cache.insert(key, s);
    s
}

fn operation_meta(case: &Value, service: &'static Service) -> OperationMeta {
    let http = case
        .get("http")
        .filter(|_| service.protocol.is_rest())
        .map(|h| Http {
            method: Method::from_bytes(h["method"].as_str().unwrap_or("POST").as_bytes())
                .expect("a method"),
            uri: leak(h, "requestUri").unwrap_or("/"),
            success: h["responseCode"].as_u64().unwrap_or(200) as u16,
        });
    OperationMeta {
        service,
        name: leak(case, "operation").unwrap_or("Probe"),
        http,
        body_cap: None,
        too_large: None,
        errors: &[],
        errors_declared: true,
    }
}

async fn answer(resp: Response, request_id: &RequestId) -> Value {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut headers = serde_json::Map::new();
    for (k, v) in &parts.headers {
        headers.insert(
            k.as_str().to_string(),
            Value::String(v.to_str().unwrap_or("").to_string()),
        );
    }
    headers.insert(
        "x-amzn-requestid".into(),
        Value::String(request_id.to_string()),
    );
    json!({
        "status": parts.status.as_u16(),
        "headers": headers,
        "body": String::from_utf8_lossy(&bytes),
    })
}

async fn decode(case: &Value, meta: OperationMeta) -> Value {
    let body = base64::engine::general_purpose::STANDARD
        .decode(case["body_b64"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let mut req = Request::builder()
        .method(case["method"].as_str().unwrap_or("POST"))
        .uri(case["path"].as_str().unwrap_or("/"));
    if let Some(h) = case["headers"].as_object() {
        for (k, v) in h {
            req = req.header(k, v.as_str().unwrap_or(""));
        }
    }
    let req = req.body(Body::from(body)).expect("a request");
    let uri = meta.http.as_ref().map_or("/", |h| h.uri);
    // Routed as the table's router does: the URI template as the route, any method.
    let router = Router::new().route(
        uri,
        axum::routing::any(move |req: Request| {
            let meta = meta.clone();
            async move {
                let (mut parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let out = match codec::decode_request(&meta, &mut parts, &bytes).await {
                    Ok(v) => json!({ "input": v }),
                    Err(e) => json!({ "error": e }),
                };
                axum::Json(out).into_response()
            }
        }),
    );
    let resp = router.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    if status != StatusCode::OK {
        return json!({ "error": format!("not routed: {status}") });
    }
    serde_json::from_slice(&bytes).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

async fn run(case: Value, cache: &Mutex<HashMap<String, &'static Service>>) -> Value {
    let service = service(&case["service"], cache);
    let meta = operation_meta(&case, service);
    let request_id = RequestId(
        case["request_id"]
            .as_str()
            .unwrap_or("probe-request")
            .to_string(),
    );
    match case["kind"].as_str() {
        Some("output") => {
            let doc = Doc::from_json(case["output"].clone());
            answer(
                codec::output_response(&meta, &request_id, &doc),
                &request_id,
            )
            .await
        }
        Some("error") => {
            let e = &case["error"];
            let status = StatusCode::from_u16(e["status"].as_u64().unwrap_or(400) as u16)
                .unwrap_or(StatusCode::BAD_REQUEST);
            let mut err = AwsError::new(
                e["code"].as_str().unwrap_or(""),
                status,
                e["message"].as_str().unwrap_or(""),
            );
            if e["message_member"].as_str() == Some("Message") {
                err = err.with_message_member("Message");
            }
            if let Some(m) = e["members"].as_object() {
                for (k, v) in m {
                    err = err.with_member(k, v.clone());
                }
            }
            answer(
                codec::error_response(service, &request_id, err),
                &request_id,
            )
            .await
        }
        Some("request") => decode(&case, meta).await,
        other => json!({ "error": format!("unknown kind {other:?}") }),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cache = Mutex::new(HashMap::new());
    let stdin = std::io::stdin();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lock().lines() {
        let line = line.expect("stdin");
        if line.trim().is_empty() {
            continue;
        }
        let out = match serde_json::from_str::<Value>(&line) {
            Ok(case) => rt.block_on(run(case, &cache)),
            Err(e) => json!({ "error": format!("not a case: {e}") }),
        };
        writeln!(stdout, "{out}").expect("stdout");
    }
    stdout.flush().expect("stdout");
}

//! The HTTP endpoints.
//!
//! | request | response |
//! |---|---|
//! | `GET /static` | 200, a fixed small `text/plain` body (the benchmarks' fast static responder) |
//! | `GET /health` | the health status (200 until changed), a short text body |
//! | `POST /_control/health?status=N` | sets the status `GET /health` answers with (100–599) |
//! | `POST /_control/release?key=K` | lets every `/slow-stream?wait=K` response continue |
//! | `GET /_control/stats` | `{"backend", "requests", "healthChecks"}` counters |
//! | `/slow-stream?chunks=N&interval_ms=M&wait=K` | N chunks (default 10), the first at once, the rest M ms apart (default 100); with `wait`, the rest only after `release?key=K` |
//! | `application/grpc` request, with `--grpc` | the test gRPC service ([`crate::grpc`]) |
//! | anything else | the JSON echo below |
//!
//! The echo reads the request body fully and answers `{"backend", "method", "path", "query",
//! "authority", "peer", "headers": {name: "v1, v2"}, "protocol": "HTTP/1.1"|"HTTP/2",
//! "bodyLength"}`. Query parameters change it: `delay_ms=N` waits N ms before answering,
//! `bytes=N` answers N filler bytes (streamed) instead of the JSON, `status=N` answers with
//! status N. Every response carries `x-backend: NAME`.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode, Version};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::{Body, State};

/// The body of `GET /static`.
pub const STATIC_BODY: &[u8] = b"trellis-testbackend static body\n";

const TEXT: HeaderValue = HeaderValue::from_static("text/plain");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const OCTETS: HeaderValue = HeaderValue::from_static("application/octet-stream");

pub async fn handle(state: &State, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    if state.grpc && crate::grpc::is_grpc(&req) {
        state.requests.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = req.into_parts();
        return crate::grpc::handle(state, parts, body).await;
    }
    let query = req.uri().query();
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/static") => {
            state.requests.fetch_add(1, Ordering::Relaxed);
            respond(
                state,
                StatusCode::OK,
                TEXT,
                Body::full(Bytes::from_static(STATIC_BODY)),
            )
        }
        (&Method::GET | &Method::HEAD, "/health") => {
            state.health_checks.fetch_add(1, Ordering::Relaxed);
            let status = StatusCode::from_u16(state.health_status.load(Ordering::Relaxed))
                .unwrap_or(StatusCode::OK);
            let text = if status.is_success() {
                "healthy\n"
            } else {
                "unhealthy\n"
            };
            respond(state, status, TEXT, Body::full(text))
        }
        (&Method::POST, "/_control/health") => match param::<u16>(query, "status") {
            Ok(Some(code)) if (100..=599).contains(&code) => {
                state.health_status.store(code, Ordering::Relaxed);
                json_response(state, StatusCode::OK, &json!({ "healthStatus": code }))
            }
            _ => bad_request(state, "status must be a number from 100 to 599"),
        },
        (&Method::POST, "/_control/release") => match param::<String>(query, "key") {
            Ok(Some(key)) => {
                state.release_flag(&key).send_replace(true);
                json_response(state, StatusCode::OK, &json!({ "released": key }))
            }
            _ => bad_request(state, "key is required"),
        },
        (&Method::GET, "/_control/stats") => json_response(
            state,
            StatusCode::OK,
            &json!({
                "backend": state.name,
                "requests": state.requests.load(Ordering::Relaxed),
                "healthChecks": state.health_checks.load(Ordering::Relaxed),
            }),
        ),
        (_, "/slow-stream") => {
            state.requests.fetch_add(1, Ordering::Relaxed);
            slow_stream(state, query)
        }
        _ => {
            state.requests.fetch_add(1, Ordering::Relaxed);
            let (parts, body) = req.into_parts();
            echo(state, peer, parts, body).await
        }
    }
}

async fn echo(state: &State, peer: SocketAddr, parts: Parts, mut body: Incoming) -> Response<Body> {
    let query = parts.uri.query();
    let (delay_ms, bytes, status) = match (
        param::<u64>(query, "delay_ms"),
        param::<u64>(query, "bytes"),
        param::<u16>(query, "status"),
    ) {
        (Ok(d), Ok(b), Ok(s)) => (d, b, s),
        _ => return bad_request(state, "delay_ms, bytes and status must be numbers"),
    };
    let status = match status.map(StatusCode::from_u16) {
        None => StatusCode::OK,
        Some(Ok(s)) => s,
        Some(Err(_)) => return bad_request(state, "status must be from 100 to 999"),
    };

    let mut body_length: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_length += data.len() as u64;
                }
            }
            // The client went away mid-body; nobody is left to read an answer.
            Err(_) => return respond(state, StatusCode::BAD_REQUEST, TEXT, Body::empty()),
        }
    }
    if let Some(ms) = delay_ms {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(n) = bytes {
        return respond(state, status, OCTETS, Body::Repeat(n));
    }

    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_owned(), Value::String(joined));
    }
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(hyper::header::HOST)
                .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        });
    let protocol = match parts.version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    };
    let doc = json!({
        "backend": state.name,
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": query.unwrap_or(""),
        "authority": authority,
        "peer": peer.to_string(),
        "headers": headers,
        "protocol": protocol,
        "bodyLength": body_length,
    });
    json_response(state, status, &doc)
}

fn slow_stream(state: &State, query: Option<&str>) -> Response<Body> {
    let (chunks, interval_ms, wait) = match (
        param::<u32>(query, "chunks"),
        param::<u64>(query, "interval_ms"),
        param::<String>(query, "wait"),
    ) {
        (Ok(c), Ok(i), Ok(w)) => (c.unwrap_or(10), i.unwrap_or(100), w),
        _ => return bad_request(state, "chunks and interval_ms must be numbers"),
    };
    let mut release = wait.map(|key| state.release_flag(&key).subscribe());
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        for i in 0..chunks {
            if i == 1
                && let Some(release) = release.as_mut()
            {
                // Holding here keeps the request in flight for as long as the test needs; a
                // dropped flag (impossible while the state lives) just ends the stream.
                if release.wait_for(|released| *released).await.is_err() {
                    return;
                }
            }
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(interval_ms)).await;
            }
            if tx.send(Bytes::from(format!("chunk {i}\n"))).await.is_err() {
                return; // the client went away
            }
        }
    });
    respond(state, StatusCode::OK, TEXT, Body::Channel(rx))
}

/// The value of query parameter `key`, parsed; `Ok(None)` when absent. No percent-decoding:
/// every parameter here is a number or a test-chosen key.
fn param<T: FromStr>(query: Option<&str>, key: &str) -> Result<Option<T>, T::Err> {
    let Some(query) = query else { return Ok(None) };
    query
        .split('&')
        .find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then_some(v)
        })
        .map(str::parse)
        .transpose()
}

pub(crate) fn respond(
    state: &State,
    status: StatusCode,
    content_type: HeaderValue,
    body: Body,
) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert("x-backend", state.name_header.clone());
    resp
}

fn json_response(state: &State, status: StatusCode, doc: &Value) -> Response<Body> {
    let mut bytes = serde_json::to_vec(doc).unwrap_or_default();
    bytes.push(b'\n');
    respond(state, status, JSON, Body::full(bytes))
}

fn bad_request(state: &State, why: &'static str) -> Response<Body> {
    respond(
        state,
        StatusCode::BAD_REQUEST,
        TEXT,
        Body::full(format!("{why}\n")),
    )
}

#[cfg(test)]
mod tests {
    use super::param;

    #[test]
    fn query_parameters() {
        // (query, key, expected: Err for an unparseable value)
        type Case<'a> = (Option<&'a str>, &'a str, Result<Option<u64>, ()>);
        let cases: &[Case] = &[
            (None, "bytes", Ok(None)),
            (Some(""), "bytes", Ok(None)),
            (Some("bytes=10"), "bytes", Ok(Some(10))),
            (Some("a=1&bytes=7&c"), "bytes", Ok(Some(7))),
            (Some("bytes=1&bytes=2"), "bytes", Ok(Some(1))),
            (Some("xbytes=3"), "bytes", Ok(None)),
            (Some("bytes"), "bytes", Err(())),
            (Some("bytes=ten"), "bytes", Err(())),
        ];
        for (query, key, want) in cases {
            let got = param::<u64>(*query, key).map_err(|_| ());
            assert_eq!(&got, want, "{query:?} {key}");
        }
    }
}

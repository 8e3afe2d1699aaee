//! A tiny gRPC service without protobuf: message bytes are whatever the client sent, framed
//! the gRPC way (1 byte compressed flag, 4 bytes big-endian length, the message).
//!
//! | method | answer |
//! |---|---|
//! | `/test.Echo/Unary` | the one request message |
//! | `/test.Echo/ServerStream` | the one request message, `x-count` times (metadata, default 3) |
//! | `/test.Echo/ClientStream` | all request messages concatenated into one |
//! | `/test.Echo/Fail` | no message; status `x-grpc-status` (metadata, default 13 INTERNAL) |
//! | other | status 12 UNIMPLEMENTED |
//!
//! Every answer is HTTP 200 with `content-type: application/grpc` and `x-backend` in the
//! headers, then the messages, then trailers with `grpc-status` (and `grpc-message` on errors),
//! so a proxy in front has to carry trailers for the status to arrive.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};

use crate::{Body, State};

/// Request bodies above this are refused with RESOURCE_EXHAUSTED (gRPC's own default limit).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// The most copies `/test.Echo/ServerStream` sends.
const MAX_COUNT: u32 = 100_000;

/// gRPC status codes used here.
pub mod code {
    pub const OK: u32 = 0;
    pub const INVALID_ARGUMENT: u32 = 3;
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    pub const UNIMPLEMENTED: u32 = 12;
    pub const INTERNAL: u32 = 13;
}

/// `application/grpc`, with or without a `+proto`-style suffix.
pub fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(b"application/grpc"))
}

pub async fn handle(state: &State, parts: Parts, body: Incoming) -> Response<Body> {
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return status_only(
                state,
                code::RESOURCE_EXHAUSTED,
                "request too large or aborted",
            );
        }
    };
    let messages = match decode(body) {
        Ok(messages) => messages,
        Err(why) => return status_only(state, code::INTERNAL, why),
    };
    let single = || match messages.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!(
            "expected one request message, got {}",
            messages.len()
        )),
    };
    match parts.uri.path() {
        "/test.Echo/Unary" => match single() {
            Ok(message) => reply(state, &[message], 1),
            Err(why) => status_only(state, code::INVALID_ARGUMENT, &why),
        },
        "/test.Echo/ServerStream" => {
            let count = match metadata_number(&parts.headers, "x-count", 3) {
                Some(n) if n <= MAX_COUNT => n,
                _ => return status_only(state, code::INVALID_ARGUMENT, "bad x-count"),
            };
            match single() {
                Ok(message) => reply(state, &[message], count),
                Err(why) => status_only(state, code::INVALID_ARGUMENT, &why),
            }
        }
        "/test.Echo/ClientStream" => reply(state, &[Bytes::from(messages.concat())], 1),
        "/test.Echo/Fail" => {
            let status = metadata_number(&parts.headers, "x-grpc-status", code::INTERNAL)
                .filter(|s| (1..=16).contains(s))
                .unwrap_or(code::INTERNAL);
            status_only(state, status, "requested failure")
        }
        _ => status_only(state, code::UNIMPLEMENTED, "unknown method"),
    }
}

/// Splits a request body into its messages.
fn decode(mut body: Bytes) -> Result<Vec<Bytes>, &'static str> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        if body.len() < 5 {
            return Err("truncated message header");
        }
        if body[0] != 0 {
            return Err("compressed messages are not supported");
        }
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if body.len() - 5 < len {
            return Err("truncated message");
        }
        messages.push(body.slice(5..5 + len));
        body = body.slice(5 + len..);
    }
    Ok(messages)
}

/// One message framed for the wire.
pub fn encode(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

fn metadata_number(headers: &HeaderMap, name: &str, default: u32) -> Option<u32> {
    match headers.get(name) {
        None => Some(default),
        Some(v) => v.to_str().ok()?.trim().parse().ok(),
    }
}

/// Messages `messages` repeated `times` times, then status OK.
fn reply(state: &State, messages: &[Bytes], times: u32) -> Response<Body> {
    let encoded: Vec<Bytes> = messages.iter().map(|m| encode(m)).collect();
    let mut frames = VecDeque::with_capacity(encoded.len() * times as usize + 1);
    for _ in 0..times {
        frames.extend(encoded.iter().cloned().map(Frame::data));
    }
    frames.push_back(Frame::trailers(trailers(code::OK, None)));
    grpc_response(state, frames)
}

/// No messages, only the status in trailers.
fn status_only(state: &State, status: u32, message: &str) -> Response<Body> {
    let frames = VecDeque::from([Frame::trailers(trailers(status, Some(message)))]);
    grpc_response(state, frames)
}

fn trailers(status: u32, message: Option<&str>) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from(status));
    // The messages here are fixed ASCII without '%', so they need no percent-encoding.
    if let Some(message) = message.and_then(|m| HeaderValue::from_str(m).ok()) {
        map.insert("grpc-message", message);
    }
    map
}

fn grpc_response(state: &State, frames: VecDeque<Frame<Bytes>>) -> Response<Body> {
    crate::handler::respond(
        state,
        StatusCode::OK,
        HeaderValue::from_static("application/grpc"),
        Body::Frames(frames),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_it_encodes() {
        let messages: &[&[u8]] = &[b"", b"a", b"hello world", &[0u8; 300]];
        let mut wire = Vec::new();
        for m in messages {
            wire.extend_from_slice(&encode(m));
        }
        let got = decode(Bytes::from(wire)).unwrap();
        assert_eq!(got.iter().map(|b| &b[..]).collect::<Vec<_>>(), messages);
    }

    #[test]
    fn rejects_malformed_bodies() {
        let cases: &[(&[u8], &str)] = &[
            (&[0, 0, 0], "truncated message header"),
            (&[1, 0, 0, 0, 0], "compressed messages are not supported"),
            (&[0, 0, 0, 0, 5, b'a'], "truncated message"),
        ];
        for (wire, want) in cases {
            assert_eq!(decode(Bytes::copy_from_slice(wire)), Err(*want), "{wire:?}");
        }
    }
}

//! Lattice's LAMBDA targets, request side: an arbitrary HTTP request → the `V1` and `V2` Lambda
//! events (`trellis_lambda_event::lattice::request_event`).
//!
//! Invariants beyond "no panic": the event is a JSON object that carries the path and query as
//! sent and the method; its body decodes back to the request's body byte for byte (base64 or
//! text); every header name appears once, with one value per field line in `V2` (cookies
//! joined into one); `V2` keeps one query value per non-empty `&` segment, in order.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::Arbitrary;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trellis_lambda_event::lattice::{HttpRequest, Identity, RequestContext, request_event};
use trellis_model::resources::target_group::LambdaEventStructureVersion;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    path_and_query: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
    service_network_arn: &'a str,
    region: &'a str,
    time_micros: u64,
    principal: Option<&'a str>,
    session_name: Option<&'a str>,
}

fn check(version: LambdaEventStructureVersion, request: &HttpRequest<'_>, event: &Value) {
    let v2 = version == LambdaEventStructureVersion::V2;
    let key = |v1: &'static str, v2_name: &'static str| if v2 { v2_name } else { v1 };
    assert_eq!(event[key("raw_path", "path")], request.path_and_query);
    assert_eq!(event["method"], request.method);
    let body = event["body"].as_str().unwrap();
    if event[key("is_base64_encoded", "isBase64Encoded")] == Value::Bool(true) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        assert_eq!(decoded, request.body);
    } else {
        assert_eq!(body.as_bytes(), request.body);
    }
    let headers = event["headers"].as_object().unwrap();
    assert_eq!(headers.len(), request.headers.keys_len());
    for name in request.headers.keys() {
        let lines = request.headers.get_all(name).iter().count();
        let value = &headers[name.as_str()];
        if v2 {
            let want = if name == http::header::COOKIE {
                1
            } else {
                lines
            };
            assert_eq!(value.as_array().unwrap().len(), want, "{name}");
        } else {
            assert!(value.is_string());
        }
    }
    let query = request
        .path_and_query
        .split_once('?')
        .map_or("", |(_, q)| q);
    let segments = query.split('&').filter(|s| !s.is_empty()).count();
    let params = event[key("query_string_parameters", "queryStringParameters")]
        .as_object()
        .unwrap();
    if v2 {
        let values: usize = params.values().map(|v| v.as_array().unwrap().len()).sum();
        assert_eq!(values, segments);
        assert_eq!(event["version"], "2.0");
    } else {
        assert!(params.len() <= segments);
    }
}

fuzz_target!(|input: Input<'_>| {
    let mut headers = HeaderMap::new();
    for (name, value) in input.headers.iter().take(32) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let request = HttpRequest {
        method: input.method,
        path_and_query: input.path_and_query,
        headers: &headers,
        body: input.body,
    };
    let context = RequestContext {
        service_network_arn: input.service_network_arn,
        service_arn: "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0",
        target_group_arn: "arn:aws:vpc-lattice:us-west-2:111122223333:targetgroup/tg-0123456789abcdef0",
        region: input.region,
        time: UNIX_EPOCH + Duration::from_micros(input.time_micros),
        identity: Identity {
            principal: input.principal,
            session_name: input.session_name,
            ..Identity::default()
        },
    };
    for version in [
        LambdaEventStructureVersion::V1,
        LambdaEventStructureVersion::V2,
    ] {
        let bytes = request_event(version, &request, &context);
        let event: Value = serde_json::from_slice(&bytes).expect("the event is JSON");
        assert!(event.is_object());
        check(version, &request, &event);
        if version == LambdaEventStructureVersion::V2 {
            let micros = event["requestContext"]["timeEpoch"].as_str().unwrap();
            assert_eq!(micros, input.time_micros.to_string());
        }
    }
});

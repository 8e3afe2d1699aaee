//! Tables for the Lattice event and response mappings: V1 and V2 events (query strings, repeated
//! headers, cookies, text and binary bodies), response parsing (well-formed and malformed), and
//! the status of every way an invocation fails.

use std::time::{Duration, UNIX_EPOCH};

use super::*;

const V1: LambdaEventStructureVersion = LambdaEventStructureVersion::V1;
const V2: LambdaEventStructureVersion = LambdaEventStructureVersion::V2;

const SN: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0123456789abcdef0";
const SVC: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-0123456789abcdef0";
const TG: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:targetgroup/tg-0123456789abcdef0";

fn context() -> RequestContext<'static> {
    RequestContext {
        service_network_arn: SN,
        service_arn: SVC,
        target_group_arn: TG,
        region: "us-west-2",
        time: UNIX_EPOCH + Duration::from_micros(1_690_497_599_177_430),
        identity: Identity::default(),
    }
}

fn header_map(fields: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn event(
    version: LambdaEventStructureVersion,
    method: &str,
    path_and_query: &str,
    fields: &[(&str, &str)],
    body: &[u8],
) -> Value {
    let headers = header_map(fields);
    let request = HttpRequest {
        method,
        path_and_query,
        headers: &headers,
        body,
    };
    serde_json::from_slice(&request_event(version, &request, &context())).unwrap()
}

#[test]
fn v1_event_whole() {
    let got = event(
        V1,
        "POST",
        "/orders/7?expand=items",
        &[
            ("host", "orders.example"),
            ("content-type", "application/json"),
            ("x-forwarded-for", "10.0.0.9"),
        ],
        br#"{"qty":2}"#,
    );
    let want = json!({
        "raw_path": "/orders/7?expand=items",
        "method": "POST",
        "headers": {
            "host": "orders.example",
            "content-type": "application/json",
            "x-forwarded-for": "10.0.0.9",
        },
        "query_string_parameters": {"expand": "items"},
        "body": "{\"qty\":2}",
        "is_base64_encoded": false,
    });
    assert_eq!(got, want);
    // The key order of §5.5's example (serde_json keeps insertion order here).
    let keys: Vec<&str> = got
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "raw_path",
            "method",
            "headers",
            "query_string_parameters",
            "body",
            "is_base64_encoded"
        ]
    );
}

#[test]
fn v2_event_whole() {
    let got = event(
        V2,
        "GET",
        "/?query1=value1&query2=value2",
        &[("host", "svc.example"), ("accept", "*/*")],
        b"",
    );
    let want = json!({
        "version": "2.0",
        "path": "/?query1=value1&query2=value2",
        "method": "GET",
        "headers": {"host": ["svc.example"], "accept": ["*/*"]},
        "queryStringParameters": {"query1": ["value1"], "query2": ["value2"]},
        "body": "",
        "isBase64Encoded": false,
        "requestContext": {
            "serviceNetworkArn": SN,
            "serviceArn": SVC,
            "targetGroupArn": TG,
            "identity": {},
            "region": "us-west-2",
            "timeEpoch": "1690497599177430",
        },
    });
    assert_eq!(got, want);
}

#[test]
fn v2_identity_lists_only_what_is_known() {
    let headers = HeaderMap::new();
    let request = HttpRequest {
        method: "GET",
        path_and_query: "/",
        headers: &headers,
        body: b"",
    };
    let mut ctx = context();
    ctx.identity = Identity {
        source_vpc_arn: Some("arn:aws:ec2:us-west-2:111122223333:vpc/vpc-1"),
        auth_type: Some("AWS_IAM"),
        principal: Some("arn:aws:iam::111122223333:role/r"),
        principal_org_id: None,
        session_name: Some("s"),
    };
    let got: Value = serde_json::from_slice(&request_event(V2, &request, &ctx)).unwrap();
    assert_eq!(
        got["requestContext"]["identity"],
        json!({
            "sourceVpcArn": "arn:aws:ec2:us-west-2:111122223333:vpc/vpc-1",
            "type": "AWS_IAM",
            "principal": "arn:aws:iam::111122223333:role/r",
            "sessionName": "s",
        })
    );
}

#[test]
fn query_string_table() {
    // (path and query, V1 parameters, V2 parameters)
    let cases: Vec<(&str, Value, Value)> = vec![
        ("/", json!({}), json!({})),
        ("/p?", json!({}), json!({})),
        ("/p?a=1", json!({"a": "1"}), json!({"a": ["1"]})),
        // A repeated key: V1 keeps the last value, V2 every value in order.
        (
            "/p?a=1&b=2&a=3",
            json!({"a": "3", "b": "2"}),
            json!({"a": ["1", "3"], "b": ["2"]}),
        ),
        // Percent-decoding of keys and values; `+` stays; UTF-8 sequences decode.
        (
            "/p?na%6De=x%20y&q=a+b&check=%E2%9C%93&eq=a%3Db%26c",
            json!({"name": "x y", "q": "a+b", "check": "✓", "eq": "a=b&c"}),
            json!({"name": ["x y"], "q": ["a+b"], "check": ["✓"], "eq": ["a=b&c"]}),
        ),
        // Invalid UTF-8 after decoding is replaced, not dropped.
        (
            "/p?bad=%FF",
            json!({"bad": "\u{fffd}"}),
            json!({"bad": ["\u{fffd}"]}),
        ),
        // A key without `=`, an empty value, empty segments, a value with `=` in it.
        (
            "/p?flag&empty=&&x=a=b",
            json!({"flag": "", "empty": "", "x": "a=b"}),
            json!({"flag": [""], "empty": [""], "x": ["a=b"]}),
        ),
        // Repeated and empty values of one key.
        (
            "/p?t=&t=1&t=",
            json!({"t": ""}),
            json!({"t": ["", "1", ""]}),
        ),
    ];
    for (path, v1, v2) in cases {
        let got1 = event(V1, "GET", path, &[], b"");
        assert_eq!(got1["query_string_parameters"], v1, "V1 {path}");
        assert_eq!(got1["raw_path"], path, "V1 {path}");
        let got2 = event(V2, "GET", path, &[], b"");
        assert_eq!(got2["queryStringParameters"], v2, "V2 {path}");
        assert_eq!(got2["path"], path, "V2 {path}");
    }
}

#[test]
fn header_table() {
    // (fields in request order, V1 headers, V2 headers)
    type Fields = &'static [(&'static str, &'static str)];
    let cases: Vec<(Fields, Value, Value)> = vec![
        (&[], json!({}), json!({})),
        (
            &[("accept", "text/html"), ("accept", "application/json")],
            json!({"accept": "text/html, application/json"}),
            json!({"accept": ["text/html", "application/json"]}),
        ),
        // Names are lower case whatever the client sent.
        (
            &[("X-Custom", "1"), ("x-custom", "2"), ("X-Other", "a, b")],
            json!({"x-custom": "1, 2", "x-other": "a, b"}),
            json!({"x-custom": ["1", "2"], "x-other": ["a, b"]}),
        ),
        // Cookie fields join with "; " into one value (HTTP/2 sends one field per cookie).
        (
            &[("cookie", "a=1"), ("cookie", "b=2; c=3")],
            json!({"cookie": "a=1; b=2; c=3"}),
            json!({"cookie": ["a=1; b=2; c=3"]}),
        ),
        (
            &[("cookie", "session=abc")],
            json!({"cookie": "session=abc"}),
            json!({"cookie": ["session=abc"]}),
        ),
        // An empty value is kept.
        (
            &[("x-empty", "")],
            json!({"x-empty": ""}),
            json!({"x-empty": [""]}),
        ),
    ];
    for (fields, v1, v2) in cases {
        assert_eq!(
            event(V1, "GET", "/", fields, b"")["headers"],
            v1,
            "{fields:?}"
        );
        assert_eq!(
            event(V2, "GET", "/", fields, b"")["headers"],
            v2,
            "{fields:?}"
        );
    }
}

#[test]
fn non_utf8_header_values_are_replaced() {
    let mut headers = HeaderMap::new();
    headers.insert("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let request = HttpRequest {
        method: "GET",
        path_and_query: "/",
        headers: &headers,
        body: b"",
    };
    let got: Value = serde_json::from_slice(&request_event(V1, &request, &context())).unwrap();
    assert_eq!(got["headers"]["x-bin"], "caf\u{fffd}");
}

#[test]
fn body_table() {
    // (content-type and content-encoding fields, body, expected body, base64?)
    type Fields = &'static [(&'static str, &'static str)];
    let cases: Vec<(Fields, &[u8], &str, bool)> = vec![
        (&[], b"", "", false),
        (
            &[("content-type", "application/octet-stream")],
            b"",
            "",
            false,
        ),
        (&[("content-type", "text/plain")], b"hello", "hello", false),
        (
            &[("content-type", "Text/HTML; charset=UTF-8")],
            "<p>é</p>".as_bytes(),
            "<p>é</p>",
            false,
        ),
        (
            &[("content-type", "application/json")],
            br#"{"a":1}"#,
            r#"{"a":1}"#,
            false,
        ),
        (
            &[("content-type", "application/json; charset=utf-8")],
            b"[]",
            "[]",
            false,
        ),
        (
            &[("content-type", "application/xml")],
            b"<a/>",
            "<a/>",
            false,
        ),
        (
            &[("content-type", "application/javascript")],
            b"f()",
            "f()",
            false,
        ),
        // Not in §5.5's list: base64, even when the bytes are text.
        (&[], b"no type", "bm8gdHlwZQ==", true),
        (
            &[("content-type", "application/x-www-form-urlencoded")],
            b"a=1&b=2",
            "YT0xJmI9Mg==",
            true,
        ),
        (
            &[("content-type", "application/problem+json")],
            b"{}",
            "e30=",
            true,
        ),
        (
            &[("content-type", "application/octet-stream")],
            &[0x00, 0xff, 0x01],
            "AP8B",
            true,
        ),
        (
            &[("content-type", "image/png")],
            b"\x89PNG",
            "iVBORw==",
            true,
        ),
        // A text-like type whose bytes are not UTF-8: base64 (a JSON string cannot carry them).
        (
            &[("content-type", "application/json")],
            b"{\"a\":\"\xff\"}",
            "eyJhIjoi/yJ9",
            true,
        ),
        // Compressed text: not UTF-8, so base64; uncompressed-looking bytes pass as text.
        (
            &[("content-type", "text/plain"), ("content-encoding", "gzip")],
            &[0x1f, 0x8b, 0x08, 0x00],
            "H4sIAA==",
            true,
        ),
        (
            &[
                ("content-type", "text/plain"),
                ("content-encoding", "identity"),
            ],
            b"plain",
            "plain",
            false,
        ),
    ];
    for (fields, body, want, base64) in cases {
        let got1 = event(V1, "POST", "/", fields, body);
        assert_eq!(got1["body"], want, "V1 {fields:?} {body:?}");
        assert_eq!(got1["is_base64_encoded"], base64, "V1 {fields:?} {body:?}");
        let got2 = event(V2, "POST", "/", fields, body);
        assert_eq!(got2["body"], want, "V2 {fields:?} {body:?}");
        assert_eq!(got2["isBase64Encoded"], base64, "V2 {fields:?} {body:?}");
        if base64 {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(want)
                .unwrap();
            assert_eq!(decoded, body, "round trip {fields:?}");
        }
    }
}

// -------------------------------------------------------------------------------------------
// Responses.

/// What a well-formed result maps to: status, header fields in order, body, reason phrase.
struct Want {
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static [u8],
    reason: Option<&'static str>,
}

fn check_response(payload: &str, want: Want) {
    let response = parse_response(payload.as_bytes())
        .unwrap_or_else(|e| panic!("{payload}: unexpected error {e}"));
    assert_eq!(response.status().as_u16(), want.status, "{payload}");
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = want
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(headers, expected, "{payload}");
    assert_eq!(response.body().as_ref(), want.body, "{payload}");
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8(r.as_bytes().to_vec()).unwrap());
    assert_eq!(reason.as_deref(), want.reason, "{payload}");
}

#[test]
fn response_table() {
    let cases: Vec<(&str, Want)> = vec![
        (
            r#"{"statusCode": 200}"#,
            Want {
                status: 200,
                headers: &[],
                body: b"",
                reason: None,
            },
        ),
        (
            r#"{"isBase64Encoded": false, "statusCode": 200, "statusDescription": "200 OK",
                "headers": {"Content-Type": "application/json"}, "body": "{\"ok\":true}"}"#,
            Want {
                status: 200,
                headers: &[("content-type", "application/json")],
                body: b"{\"ok\":true}",
                reason: None,
            },
        ),
        (
            r#"{"statusCode": 201, "statusDescription": "201 Made It", "body": "x"}"#,
            Want {
                status: 201,
                headers: &[],
                body: b"x",
                reason: Some("Made It"),
            },
        ),
        (
            r#"{"statusCode": 404, "statusDescription": "Nope"}"#,
            Want {
                status: 404,
                headers: &[],
                body: b"",
                reason: Some("Nope"),
            },
        ),
        (
            r#"{"statusCode": 200, "isBase64Encoded": true, "body": "AP8B",
                "headers": {"content-type": "application/octet-stream"}}"#,
            Want {
                status: 200,
                headers: &[("content-type", "application/octet-stream")],
                body: &[0x00, 0xff, 0x01],
                reason: None,
            },
        ),
        // multiValueHeaders: repeated fields; it wins over `headers` for the same name.
        (
            r#"{"statusCode": 200,
                "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Multi": []},
                "headers": {"set-cookie": "ignored=1", "X-One": "1"}}"#,
            Want {
                status: 200,
                headers: &[("set-cookie", "a=1"), ("set-cookie", "b=2"), ("x-one", "1")],
                body: b"",
                reason: None,
            },
        ),
        // Hop-by-hop fields and Content-Length from the function are dropped.
        (
            r#"{"statusCode": 200, "body": "abc", "headers": {"Content-Length": "99",
                "Transfer-Encoding": "chunked", "Connection": "close", "Keep-Alive": "x",
                "X-Kept": "yes"}}"#,
            Want {
                status: 200,
                headers: &[("x-kept", "yes")],
                body: b"abc",
                reason: None,
            },
        ),
        // null members are absent ones (Python's None).
        (
            r#"{"statusCode": 204, "headers": null, "multiValueHeaders": null, "body": null,
                "isBase64Encoded": null, "statusDescription": null}"#,
            Want {
                status: 204,
                headers: &[],
                body: b"",
                reason: None,
            },
        ),
        // Unknown members are ignored.
        (
            r#"{"statusCode": 503, "cookies": ["x=1"], "extra": {"a": 1}}"#,
            Want {
                status: 503,
                headers: &[],
                body: b"",
                reason: None,
            },
        ),
        (
            r#"{"statusCode": 599, "body": "é"}"#,
            Want {
                status: 599,
                headers: &[],
                body: "é".as_bytes(),
                reason: None,
            },
        ),
    ];
    for (payload, want) in cases {
        check_response(payload, want);
    }
}

#[test]
fn malformed_response_table() {
    // (result, a part of the error message)
    let cases: &[(&str, &str)] = &[
        ("", "not JSON"),
        ("not json", "not JSON"),
        (r#"{"statusCode": 200"#, "not JSON"),
        (r#""hello""#, "JSON string, not an object"),
        ("[200]", "JSON list, not an object"),
        ("null", "JSON null, not an object"),
        ("200", "JSON number, not an object"),
        ("{}", "statusCode is missing"),
        (r#"{"statusCode": null}"#, "statusCode is missing"),
        (r#"{"body": "x"}"#, "statusCode is missing"),
        (r#"{"statusCode": "200"}"#, "statusCode must be an integer"),
        (r#"{"statusCode": 200.5}"#, "statusCode must be an integer"),
        (r#"{"statusCode": -1}"#, "statusCode must be an integer"),
        (r#"{"statusCode": 100}"#, "statusCode must be an integer"),
        (r#"{"statusCode": 600}"#, "statusCode must be an integer"),
        (r#"{"statusCode": 99999}"#, "statusCode must be an integer"),
        (r#"{"statusCode": 200, "body": 5}"#, "body must be a string"),
        (
            r#"{"statusCode": 200, "body": {"a": 1}}"#,
            "body must be a string",
        ),
        (
            r#"{"statusCode": 200, "isBase64Encoded": "true"}"#,
            "isBase64Encoded must be a boolean",
        ),
        (
            r#"{"statusCode": 200, "isBase64Encoded": true, "body": "***"}"#,
            "not valid base64",
        ),
        (
            r#"{"statusCode": 200, "headers": ["a"]}"#,
            "headers must be an object",
        ),
        (
            r#"{"statusCode": 200, "headers": {"X-N": 5}}"#,
            "headers.x-n must be a string",
        ),
        (
            r#"{"statusCode": 200, "headers": {"X-L": ["a"]}}"#,
            "headers.x-l must be a string",
        ),
        (
            r#"{"statusCode": 200, "headers": {"bad name": "x"}}"#,
            "not a valid header name",
        ),
        (
            r#"{"statusCode": 200, "headers": {"": "x"}}"#,
            "not a valid header name",
        ),
        (
            r#"{"statusCode": 200, "headers": {"X-A": "line\nbreak"}}"#,
            "not a valid header value",
        ),
        (
            r#"{"statusCode": 200, "multiValueHeaders": {"X-A": "one"}}"#,
            "must be a list of strings",
        ),
        (
            r#"{"statusCode": 200, "multiValueHeaders": {"X-A": [1]}}"#,
            "multiValueHeaders.x-a must be a string",
        ),
        (
            r#"{"statusCode": 200, "multiValueHeaders": "x"}"#,
            "multiValueHeaders must be an object",
        ),
        (
            r#"{"statusCode": 200, "statusDescription": 200}"#,
            "statusDescription must be a string",
        ),
    ];
    for (payload, part) in cases {
        match parse_response(payload.as_bytes()) {
            Err(LambdaTargetError::MalformedResponse(message)) => {
                assert!(
                    message.contains(part),
                    "{payload}: {message:?} lacks {part:?}"
                );
                let error = LambdaTargetError::MalformedResponse(message);
                assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
            }
            other => panic!("{payload}: expected a malformed response, got {other:?}"),
        }
    }
}

#[test]
fn oversized_response_is_refused() {
    let body = "a".repeat(MAX_RESPONSE);
    let payload = json!({"statusCode": 200, "body": body}).to_string();
    let error = parse_response(payload.as_bytes()).unwrap_err();
    assert!(
        matches!(error, LambdaTargetError::ResponseTooLarge(_)),
        "{error:?}"
    );
    assert_eq!(error.status(), StatusCode::BAD_GATEWAY);
}

fn outcome(payload: &str, function_error: bool) -> InvokeOutcome {
    InvokeOutcome {
        status: 200,
        payload: Bytes::from(payload.to_owned()),
        function_error: function_error.then(|| "Unhandled".to_owned()),
        log_tail: None,
        executed_version: Some("$LATEST".into()),
    }
}

#[test]
fn invocation_result_table() {
    // (result, status the client gets)
    let cases: Vec<(Result<InvokeOutcome, InvokeError>, u16)> = vec![
        (Ok(outcome(r#"{"statusCode": 418}"#, false)), 418),
        (Ok(outcome("not json", false)), 502),
        // Function errors: the error document's type decides.
        (
            Ok(outcome(
                r#"{"errorMessage": "asked to fail", "errorType": "ValueError", "stackTrace": []}"#,
                true,
            )),
            502,
        ),
        (
            Ok(outcome(
                r#"{"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: 1 Error: Task timed out after 3.00 seconds"}"#,
                true,
            )),
            504,
        ),
        (
            Ok(outcome(
                r#"{"errorMessage": "2024-01-01T00:00:00.000Z 1 Task timed out after 3.00 seconds"}"#,
                true,
            )),
            504,
        ),
        (
            Ok(outcome(
                r#"{"errorType": "Function.ResponseSizeTooLarge", "errorMessage": "too big"}"#,
                true,
            )),
            502,
        ),
        (
            Ok(outcome(
                r#"{"errorType": "Runtime.ExitError", "errorMessage": "exit status 1"}"#,
                true,
            )),
            502,
        ),
        // A function error whose document is not JSON, or whose "result" looks fine.
        (Ok(outcome("garbage", true)), 502),
        (Ok(outcome(r#"{"statusCode": 200}"#, true)), 502),
        // Invocation failures.
        (
            Err(InvokeError::NotFound("Function not found: x".into())),
            502,
        ),
        (Err(InvokeError::InvalidName("bad".into())), 502),
        (Err(InvokeError::InvalidParameter("bad".into())), 502),
        (Err(InvokeError::RequestTooLarge("big".into())), 413),
        (Err(InvokeError::TooManyRequests), 503),
        (Err(InvokeError::Unavailable("down".into())), 502),
        (Err(InvokeError::Internal("oops".into())), 500),
        (Err(InvokeError::InvalidRequestContent("no".into())), 500),
        (
            Err(InvokeError::Remote {
                status: 429,
                error_type: "TooManyRequestsException".into(),
                message: "Rate Exceeded.".into(),
                body: Bytes::new(),
            }),
            503,
        ),
        (
            Err(InvokeError::Remote {
                status: 413,
                error_type: "RequestTooLargeException".into(),
                message: "big".into(),
                body: Bytes::new(),
            }),
            413,
        ),
        (
            Err(InvokeError::Remote {
                status: 403,
                error_type: "AccessDeniedException".into(),
                message: "no".into(),
                body: Bytes::new(),
            }),
            502,
        ),
    ];
    for (result, status) in cases {
        let description = format!("{result:?}");
        let got = match response(result) {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.status().as_u16(),
        };
        assert_eq!(got, status, "{description}");
    }
}

#[test]
fn function_error_keeps_type_and_message() {
    let error = response(Ok(outcome(
        r#"{"errorMessage": "asked to fail", "errorType": "ValueError"}"#,
        true,
    )))
    .unwrap_err();
    assert_eq!(
        error,
        LambdaTargetError::FunctionError {
            error_type: "ValueError".into(),
            message: "asked to fail".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "the function failed with ValueError: asked to fail"
    );
}

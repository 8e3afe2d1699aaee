//! The Runtime API against a fake runtime loop written here: long polling, the invocation
//! headers, responses, function errors, init errors, unknown request ids and oversized
//! responses, each checked on both sides (what the runtime sees, what the invoker gets).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use trellis_functions::runtime_api::{Invocation, MAX_RESPONSE_BYTES, RuntimeApi, RuntimeOutcome};

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One HTTP/1.1 request, as a runtime client would send it.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(body.into())).unwrap())
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

fn invocation(id: &str, payload: &'static [u8]) -> Invocation {
    Invocation {
        request_id: id.to_string(),
        payload: Bytes::from_static(payload),
        invoked_arn: "arn:aws:lambda:us-west-2:111122223333:function:f:live".into(),
        client_context: Some(r#"{"custom":{"k":"v"}}"#.into()),
        timeout: Duration::from_secs(3),
    }
}

#[tokio::test]
async fn next_long_polls_then_delivers_the_event_with_headers() {
    let server = RuntimeApi::bind().await.unwrap();
    let addr = server.addr;
    let mut initialized = server.api.initialized();
    let poll = tokio::spawn(async move { call(addr, "GET", NEXT, &[], Bytes::new()).await });
    // The runtime is waiting in /next before anything is dispatched.
    initialized.wait_for(|v| *v).await.unwrap();
    assert!(!poll.is_finished());

    let dispatched = server
        .api
        .dispatch(invocation("req-1", br#"{"hello":"world"}"#))
        .unwrap();
    let reply = poll.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_ref(), br#"{"hello":"world"}"#);
    assert_eq!(reply.header("lambda-runtime-aws-request-id"), "req-1");
    assert_eq!(
        reply.header("lambda-runtime-invoked-function-arn"),
        "arn:aws:lambda:us-west-2:111122223333:function:f:live"
    );
    assert_eq!(
        reply.header("lambda-runtime-client-context"),
        r#"{"custom":{"k":"v"}}"#
    );
    assert!(
        reply
            .header("lambda-runtime-trace-id")
            .starts_with("Root=1-")
    );
    let deadline_ms: u128 = reply.header("lambda-runtime-deadline-ms").parse().unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        deadline_ms > now_ms + 2000 && deadline_ms <= now_ms + 3000,
        "deadline {deadline_ms} vs now {now_ms}"
    );
    assert!(dispatched.started.await.is_ok());

    let posted = call(
        addr,
        "POST",
        "/2018-06-01/runtime/invocation/req-1/response",
        &[("content-type", "application/json")],
        r#"{"ok":true}"#,
    )
    .await;
    assert_eq!(posted.status, 202);
    assert_eq!(posted.json(), serde_json::json!({"status": "OK"}));
    assert_eq!(
        dispatched.done.await.unwrap(),
        RuntimeOutcome::Response(Bytes::from_static(br#"{"ok":true}"#))
    );
}

#[tokio::test]
async fn an_empty_payload_arrives_as_an_empty_object() {
    let server = RuntimeApi::bind().await.unwrap();
    let _d = server.api.dispatch(invocation("req-e", b"")).unwrap();
    let reply = call(server.addr, "GET", NEXT, &[], Bytes::new()).await;
    assert_eq!(reply.body.as_ref(), b"{}");
}

#[tokio::test]
async fn function_errors_reach_the_invoker() {
    let server = RuntimeApi::bind().await.unwrap();
    let dispatched = server.api.dispatch(invocation("req-2", b"{}")).unwrap();
    let next = call(server.addr, "GET", NEXT, &[], Bytes::new()).await;
    let id = next.header("lambda-runtime-aws-request-id").to_string();
    let doc = r#"{"errorMessage":"boom","errorType":"ValueError","stackTrace":[]}"#;
    let posted = call(
        server.addr,
        "POST",
        &format!("/2018-06-01/runtime/invocation/{id}/error"),
        &[("lambda-runtime-function-error-type", "ValueError")],
        doc,
    )
    .await;
    assert_eq!(posted.status, 202);
    assert_eq!(
        dispatched.done.await.unwrap(),
        RuntimeOutcome::Error {
            payload: Bytes::from_static(doc.as_bytes()),
            error_type: Some("ValueError".into()),
        }
    );
}

#[tokio::test]
async fn an_error_without_a_document_gets_one() {
    let server = RuntimeApi::bind().await.unwrap();
    let dispatched = server.api.dispatch(invocation("req-3", b"{}")).unwrap();
    call(server.addr, "GET", NEXT, &[], Bytes::new()).await;
    call(
        server.addr,
        "POST",
        "/2018-06-01/runtime/invocation/req-3/error",
        &[("lambda-runtime-function-error-type", "Runtime.Custom")],
        "not json",
    )
    .await;
    match dispatched.done.await.unwrap() {
        RuntimeOutcome::Error { payload, .. } => {
            let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            assert_eq!(doc["errorType"], "Runtime.Custom");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_and_stale_request_ids_are_refused() {
    let server = RuntimeApi::bind().await.unwrap();
    let refused = call(
        server.addr,
        "POST",
        "/2018-06-01/runtime/invocation/nobody/response",
        &[],
        "{}",
    )
    .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["errorType"], "InvalidRequestID");

    let dispatched = server.api.dispatch(invocation("req-4", b"{}")).unwrap();
    call(server.addr, "GET", NEXT, &[], Bytes::new()).await;
    let path = "/2018-06-01/runtime/invocation/req-4/response";
    assert_eq!(call(server.addr, "POST", path, &[], "1").await.status, 202);
    // A second answer for the same invocation is refused; the first one stands.
    assert_eq!(call(server.addr, "POST", path, &[], "2").await.status, 400);
    assert_eq!(
        dispatched.done.await.unwrap(),
        RuntimeOutcome::Response(Bytes::from_static(b"1"))
    );
}

#[tokio::test]
async fn oversized_responses_are_refused_and_reported() {
    let server = RuntimeApi::bind().await.unwrap();
    let dispatched = server.api.dispatch(invocation("req-5", b"{}")).unwrap();
    call(server.addr, "GET", NEXT, &[], Bytes::new()).await;
    let big = vec![b'x'; MAX_RESPONSE_BYTES + 1];
    let reply = call(
        server.addr,
        "POST",
        "/2018-06-01/runtime/invocation/req-5/response",
        &[],
        big,
    )
    .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["errorType"], "RequestEntityTooLarge");
    assert_eq!(
        dispatched.done.await.unwrap(),
        RuntimeOutcome::ResponseTooLarge
    );
}

#[tokio::test]
async fn init_errors_are_recorded() {
    let server = RuntimeApi::bind().await.unwrap();
    let mut init_error = server.api.init_error();
    let doc = r#"{"errorMessage":"Unable to import module 'app'","errorType":"Runtime.ImportModuleError"}"#;
    let reply = call(
        server.addr,
        "POST",
        "/2018-06-01/runtime/init/error",
        &[(
            "lambda-runtime-function-error-type",
            "Runtime.ImportModuleError",
        )],
        doc,
    )
    .await;
    assert_eq!(reply.status, 202);
    let got = init_error.wait_for(Option::is_some).await.unwrap().clone();
    assert_eq!(got, Some(Bytes::from_static(doc.as_bytes())));
}

#[tokio::test]
async fn a_runtime_loop_serves_many_invocations_in_order() {
    let server = RuntimeApi::bind().await.unwrap();
    let addr = server.addr;
    // The fake runtime: echo each event back with its request id, forever.
    let runtime = tokio::spawn(async move {
        loop {
            let next = call(addr, "GET", NEXT, &[], Bytes::new()).await;
            let id = next.header("lambda-runtime-aws-request-id").to_string();
            let event: serde_json::Value = next.json();
            let answer = serde_json::json!({ "id": id, "event": event }).to_string();
            call(
                addr,
                "POST",
                &format!("/2018-06-01/runtime/invocation/{id}/response"),
                &[],
                answer,
            )
            .await;
        }
    });
    for i in 0..20 {
        let id = format!("req-{i}");
        let payload = Bytes::from(format!(r#"{{"n":{i}}}"#));
        let dispatched = server
            .api
            .dispatch(Invocation {
                request_id: id.clone(),
                payload,
                invoked_arn: "arn:aws:lambda:us-west-2:111122223333:function:f".into(),
                client_context: None,
                timeout: Duration::from_secs(3),
            })
            .unwrap();
        let RuntimeOutcome::Response(body) = dispatched.done.await.unwrap() else {
            panic!("expected a response");
        };
        let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(doc["id"], id.as_str());
        assert_eq!(doc["event"]["n"], i);
    }
    runtime.abort();
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = RuntimeApi::bind().await.unwrap();
    let reply = call(
        server.addr,
        "GET",
        "/2018-06-01/runtime/nope",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, 404);
}

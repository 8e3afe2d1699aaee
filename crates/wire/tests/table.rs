//! The operation table end to end through its axum router: each protocol's binding reaches its
//! handler with the typed input, an unknown operation is answered in the service's own
//! vocabulary and protocol, and internal errors never show their detail.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use tower::ServiceExt as _;
use trellis_wire::{
    AwsError, Call, Head, Operation, Protocol, Service, ServiceErrors, TableBuilder,
};

static REST: Service = Service {
    id: "Rest",
    signing_name: "rest",
    endpoint_prefix: "rest",
    api_version: "2020-01-01",
    protocol: Protocol::RestJson1,
    target_prefix: None,
    xml_namespace: None,
    path_prefixes: &[],
    errors: ServiceErrors {
        unknown_operation: |what| {
            AwsError::new(
                "ValidationException",
                StatusCode::BAD_REQUEST,
                format!("unknown {what}"),
            )
        },
        ..errors_const()
    },
};

const fn errors_const() -> ServiceErrors {
    ServiceErrors {
        unknown_operation: |what| {
            AwsError::new("UnknownOperationException", StatusCode::BAD_REQUEST, what)
        },
        bad_input: |m| AwsError::new("ValidationException", StatusCode::BAD_REQUEST, m),
        internal_code: "InternalFailure",
        throttling_code: "ThrottlingException",
        too_large: |cap| {
            AwsError::new(
                "TooLarge",
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("over {cap}"),
            )
        },
        common: &["ServiceUnavailable"],
    }
}

static DATED: Service = Service {
    id: "Dated",
    signing_name: "dated",
    endpoint_prefix: "dated",
    api_version: "2015-03-31",
    protocol: Protocol::RestJson1,
    target_prefix: None,
    xml_namespace: None,
    path_prefixes: &["2015-03-31", "2019-09-30"],
    errors: errors_const(),
};

static JSON: Service = Service {
    id: "Json",
    signing_name: "json",
    endpoint_prefix: "json",
    api_version: "2017-01-26",
    protocol: Protocol::AwsJson1_1,
    target_prefix: Some("Json_20170126"),
    xml_namespace: None,
    path_prefixes: &[],
    errors: errors_const(),
};

static QUERY: Service = Service {
    id: "Query",
    signing_name: "query",
    endpoint_prefix: "query",
    api_version: "2010-05-08",
    protocol: Protocol::AwsQuery,
    target_prefix: None,
    xml_namespace: Some("https://query.example/doc/2010-05-08/"),
    path_prefixes: &[],
    errors: errors_const(),
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetThingInput {
    thing_identifier: String,
    max_results: Option<u32>,
    #[serde(default)]
    tag_keys: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct GetThingOutput {
    id: String,
    max_results: Option<u32>,
    tag_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EchoInput {
    name: Option<String>,
    count: Option<u32>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct EchoOutput {
    name: Option<String>,
    count: Option<u32>,
}

async fn get_thing(_: (), i: GetThingInput, _: Call) -> Result<GetThingOutput, AwsError> {
    Ok(GetThingOutput {
        id: i.thing_identifier,
        max_results: i.max_results,
        tag_keys: i.tag_keys,
    })
}

async fn echo(_: (), i: EchoInput, _: Call) -> Result<EchoOutput, AwsError> {
    if i.name.as_deref() == Some("boom") {
        return Err(AwsError::internal("InternalFailure", "the secret cause"));
    }
    Ok(EchoOutput {
        name: i.name,
        count: i.count,
    })
}

#[derive(Debug, Serialize)]
struct Empty {}

async fn delete_thing(_: (), _: GetThingInput, _: Call) -> Result<Empty, AwsError> {
    Ok(Empty {})
}

fn table() -> Arc<trellis_wire::Table> {
    Arc::new(
        TableBuilder::new(&REST)
            .add(
                (),
                vec![
                    Operation::rest(
                        &REST,
                        "GetThing",
                        (Method::GET, "/things/{thingIdentifier}", 200),
                        get_thing,
                    )
                    .errors(&["ResourceNotFoundException"]),
                    Operation::rest(
                        &REST,
                        "DeleteThing",
                        (Method::DELETE, "/things/{thingIdentifier}", 204),
                        delete_thing,
                    )
                    .errors(&["ResourceNotFoundException", "ConflictException"]),
                    Operation::rest(
                        &DATED,
                        "GetDated",
                        (Method::GET, "/2015-03-31/things/{thingIdentifier}", 200),
                        get_thing,
                    )
                    .errors(&["ResourceNotFoundException"]),
                    Operation::rpc(&JSON, "Echo", echo).errors(&["InvalidInput"]),
                    Operation::rpc(&QUERY, "Echo", echo).errors(&["InvalidInput"]),
                ],
            )
            .build(),
    )
}

/// Lets every call through: what the gate's authorizer does for root.
struct AllowAll;

impl trellis_wire::Authorize for AllowAll {
    fn authorize<'a>(
        &'a self,
        _: &'a trellis_wire::OperationMeta,
        _: &'a serde_json::Value,
    ) -> trellis_wire::AuthorizeFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// `req` as the gate lets it through: with an authorizer (allowing all, unless the test gave
/// it one).
fn authorized(mut req: Request<Body>) -> Request<Body> {
    if req.extensions().get::<trellis_wire::Authorizer>().is_none() {
        req.extensions_mut()
            .insert(trellis_wire::Authorizer(Arc::new(AllowAll)));
    }
    req
}

async fn call(req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let resp = table().router().oneshot(authorized(req)).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut b = Request::post("/");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn each_protocol_reaches_its_handler_with_a_typed_input() {
    // (request, status, body must contain)
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (
            get("/things/t-1"),
            200,
            r#"{"id":"t-1","maxResults":null,"tagKeys":[]}"#,
        ),
        // Labels are percent-decoded; query integers and a list given once are coerced.
        (
            get("/things/a%2Fb?maxResults=7&tagKeys=x"),
            200,
            r#"{"id":"a/b","maxResults":7,"tagKeys":["x"]}"#,
        ),
        (
            get("/things/t?tagKeys=x&tagKeys=y"),
            200,
            r#""tagKeys":["x","y"]"#,
        ),
        // The slash-toggled twin of a path answers too.
        (get("/things/t-1/"), 200, r#""id":"t-1""#),
        (get("/2015-03-31/things/d"), 200, r#""id":"d""#),
        (
            Request::delete("/things/t").body(Body::empty()).unwrap(),
            204,
            "",
        ),
        (
            post(
                &[
                    ("x-amz-target", "Json_20170126.Echo"),
                    ("content-type", "application/x-amz-json-1.1"),
                ],
                r#"{"Name":"n","Count":3}"#,
            ),
            200,
            r#"{"Name":"n","Count":3}"#,
        ),
        (
            post(
                &[("content-type", "application/x-www-form-urlencoded")],
                "Action=Echo&Version=2010-05-08&Name=q&Count=4",
            ),
            200,
            "<EchoResponse xmlns=\"https://query.example/doc/2010-05-08/\"><EchoResult><Name>q</Name><Count>4</Count></EchoResult>",
        ),
    ];
    for (req, status, want) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (got, _, body) = call(req).await;
        assert_eq!(got.as_u16(), status, "{what}: {body}");
        assert!(body.contains(want), "{what}: {body}");
    }
}

#[tokio::test]
async fn unknown_operations_are_answered_in_the_service_vocabulary() {
    // (request, error code where the protocol puts it, body must contain)
    let cases: Vec<(Request<Body>, &str, &str)> = vec![
        (
            get("/nothing/here"),
            "ValidationException",
            "unknown GET /nothing/here",
        ),
        (
            Request::put("/things/t").body(Body::empty()).unwrap(),
            "ValidationException",
            "unknown PUT /things/t",
        ),
        (
            get("/2019-09-30/functions/f"),
            "UnknownOperationException",
            "GET /2019-09-30/functions/f",
        ),
        (
            post(&[("x-amz-target", "Json_20170126.Nope")], "{}"),
            "",
            r#""__type":"UnknownOperationException""#,
        ),
        (
            post(&[], "Action=Nope&Version=2010-05-08"),
            "",
            "<Code>UnknownOperationException</Code>",
        ),
    ];
    for (req, code, want) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, headers, body) = call(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        if !code.is_empty() {
            assert_eq!(headers["x-amzn-errortype"], code, "{what}");
        }
        assert!(body.contains(want), "{what}: {body}");
    }
}

#[tokio::test]
async fn bad_input_is_the_service_validation_error() {
    let (status, headers, body) = call(get("/things/t?maxResults=lots")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(headers["x-amzn-errortype"], "ValidationException");
    assert!(body.contains("maxResults"), "{body}");
    let (status, _, body) =
        call(post(&[("x-amz-target", "Json_20170126.Echo")], "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains(r#""__type":"ValidationException""#), "{body}");
}

#[tokio::test]
async fn internal_errors_name_the_request_not_the_cause() {
    let app = table()
        .router()
        .layer(axum::middleware::from_fn(trellis_wire::request_id::assign));
    for req in [
        post(
            &[("x-amz-target", "Json_20170126.Echo")],
            r#"{"Name":"boom"}"#,
        ),
        post(&[], "Action=Echo&Name=boom"),
    ] {
        let resp = app.clone().oneshot(authorized(req)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = resp.headers()["x-amzn-requestid"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(id.len(), 36, "a UUID: {id}");
        let body = String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("InternalFailure"), "{body}");
        assert!(body.contains(&format!("(request ID {id})")), "{body}");
    }
}

#[test]
fn the_head_names_the_operation_before_the_body_is_read() {
    let t = table();
    let mut json = HeaderMap::new();
    json.insert("x-amz-target", "Json_20170126.Echo".parse().unwrap());
    let name = |h: Head<'_>| match h {
        Head::Operation(m) => format!("{}:{}", m.service.signing_name, m.name),
        Head::Unknown(s) => format!("{}:?", s.signing_name),
        Head::Query(ss) => format!("query:{}", ss.len()),
    };
    let cases = [
        (Method::GET, "/things/x", HeaderMap::new(), "rest:GetThing"),
        (Method::PATCH, "/things/x", HeaderMap::new(), "rest:?"),
        (Method::GET, "/2019-09-30/x", HeaderMap::new(), "dated:?"),
        (Method::POST, "/", json, "json:Echo"),
        (Method::POST, "/", HeaderMap::new(), "query:1"),
    ];
    for (m, p, h, want) in cases {
        assert_eq!(name(t.head(&m, p, &h)), want, "{m} {p}");
    }
    let listing = t.markdown();
    assert!(
        listing
            .contains("| GetThing | `GET /things/{thingIdentifier}` | ResourceNotFoundException |"),
        "{listing}"
    );
    assert!(
        listing.contains("| Echo | `X-Amz-Target: Json_20170126.Echo` |"),
        "{listing}"
    );
    assert!(listing.contains("| Echo | `Action=Echo` |"), "{listing}");
}

#[test]
#[should_panic(expected = "share a binding")]
fn two_operations_on_one_binding_are_refused() {
    TableBuilder::new(&REST)
        .add(
            (),
            vec![
                Operation::rest(
                    &REST,
                    "A",
                    (Method::GET, "/x/{thingIdentifier}", 200),
                    get_thing,
                )
                .errors(&["ResourceNotFoundException"]),
                Operation::rest(
                    &REST,
                    "B",
                    (Method::GET, "/x/{thingIdentifier}", 200),
                    get_thing,
                )
                .errors(&["ResourceNotFoundException"]),
            ],
        )
        .build();
}

#[test]
#[should_panic(expected = "declares the errors")]
fn an_operation_without_declared_errors_is_refused() {
    TableBuilder::new(&REST)
        .add(
            (),
            vec![Operation::rest(
                &REST,
                "A",
                (Method::GET, "/x/{thingIdentifier}", 200),
                get_thing,
            )],
        )
        .build();
}

#[test]
fn an_operation_declares_its_errors_and_the_front_doors() {
    let t = table();
    let get = match t.head(&Method::GET, "/things/x", &HeaderMap::new()) {
        Head::Operation(m) => m,
        other => panic!("{other:?}"),
    };
    // Its own, and what the front door raises for any operation of the service.
    for code in [
        "ResourceNotFoundException",
        "ValidationException",
        "InternalFailure",
        "ThrottlingException",
        "TooLarge",
        "ServiceUnavailable",
    ] {
        assert!(get.declares(code), "{code}");
    }
    // Another operation's.
    assert!(!get.declares("ConflictException"));
    assert!(!get.declares("InvalidInput"));
}

/// Allows only things whose identifier starts with `ok-`, and records what it was asked.
struct OnlyOk(std::sync::Mutex<Vec<String>>);

impl trellis_wire::Authorize for OnlyOk {
    fn authorize<'a>(
        &'a self,
        meta: &'a trellis_wire::OperationMeta,
        input: &'a serde_json::Value,
    ) -> trellis_wire::AuthorizeFuture<'a> {
        Box::pin(async move { self.decide(meta, input) })
    }
}

impl OnlyOk {
    fn decide(
        &self,
        meta: &trellis_wire::OperationMeta,
        input: &serde_json::Value,
    ) -> Result<(), Box<AwsError>> {
        let id = input["thingIdentifier"]
            .as_str()
            .or(input["Name"].as_str())
            .unwrap_or("");
        self.0.lock().unwrap().push(format!("{}:{id}", meta.name));
        if id.starts_with("ok-") {
            Ok(())
        } else {
            Err(Box::new(AwsError::new(
                "AccessDeniedException",
                StatusCode::FORBIDDEN,
                format!("not {id}"),
            )))
        }
    }
}

#[tokio::test]
async fn the_authorizer_sees_the_decoded_input_before_the_handler() {
    let auth = Arc::new(OnlyOk(Default::default()));
    let with_auth = |mut req: Request<Body>| {
        req.extensions_mut()
            .insert(trellis_wire::Authorizer(auth.clone()));
        req
    };
    // (request, status, body must contain)
    let cases: Vec<(Request<Body>, u16, &str)> = vec![
        (with_auth(get("/things/ok-1")), 200, r#""id":"ok-1""#),
        (with_auth(get("/things/secret")), 403, "not secret"),
        (
            with_auth(post(
                &[("x-amz-target", "Json_20170126.Echo")],
                r#"{"Name":"ok-x"}"#,
            )),
            200,
            r#""Name":"ok-x""#,
        ),
        (
            with_auth(post(
                &[("x-amz-target", "Json_20170126.Echo")],
                r#"{"Name":"boom"}"#,
            )),
            403,
            "not boom",
        ),
    ];
    for (req, status, needle) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let (got, _, body) = call(req).await;
        assert_eq!(got.as_u16(), status, "{what}: {body}");
        assert!(body.contains(needle), "{what}: {body}");
    }
    assert_eq!(
        *auth.0.lock().unwrap(),
        ["GetThing:ok-1", "GetThing:secret", "Echo:ok-x", "Echo:boom"]
    );
}

#[tokio::test]
async fn a_raw_operation_is_authorized_on_its_labels() {
    let raw = Operation::raw(
        &REST,
        "RawThing",
        (Method::POST, "/raw/{thingIdentifier}", 200),
        |_: (), req: axum::extract::Request| async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            axum::response::IntoResponse::into_response(format!("raw {}", body.len()))
        },
    )
    .errors(&["ResourceNotFoundException"]);
    let table = Arc::new(TableBuilder::new(&REST).add((), vec![raw]).build());
    let auth = Arc::new(OnlyOk(Default::default()));
    // (path, status, body must contain)
    for (path, status, needle) in [
        ("/raw/ok-1", 200, "raw 7"),
        ("/raw/secret", 403, "not secret"),
    ] {
        let mut req = Request::post(path).body(Body::from("payload")).unwrap();
        req.extensions_mut()
            .insert(trellis_wire::Authorizer(auth.clone()));
        let resp = table.router().oneshot(req).await.unwrap();
        let got = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(got, status, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body}");
    }
    assert_eq!(
        *auth.0.lock().unwrap(),
        ["RawThing:ok-1", "RawThing:secret"]
    );
}

#[tokio::test]
async fn a_request_without_an_authorizer_never_reaches_a_handler() {
    // Typed and raw operations alike fail closed when the gate did not see the request.
    let raw = Operation::raw(
        &REST,
        "Raw",
        (Method::POST, "/raw/{thingIdentifier}", 200),
        |_: (), _: axum::extract::Request| async {
            axum::response::IntoResponse::into_response("reached")
        },
    )
    .errors(&["ResourceNotFoundException"]);
    let raw = Arc::new(TableBuilder::new(&REST).add((), vec![raw]).build());
    for (router, req) in [
        (table().router(), get("/things/t")),
        (
            raw.router(),
            Request::post("/raw/x").body(Body::from("p")).unwrap(),
        ),
    ] {
        let resp = router.oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(!body.contains("reached"), "{body}");
        assert!(
            !body.contains("authorizer"),
            "the cause stays in the log: {body}"
        );
    }
}

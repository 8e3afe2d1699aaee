//! Lattice's service access-log record (reference §8.2), built from the pipeline's
//! [`AccessRecord`] once the response head is ready, and handed to the
//! [`AccessLogSink`] without waiting.
//!
//! One JSON object per request, members in Lattice's order, `"-"` for every value Trellis does
//! not have (as real Lattice logs show, rather than the documentation's `null`). A record is
//! formatted only when some destination wants it: the service's or one of its networks'
//! subscriptions (from the snapshot the request was served with), or the every-request sink
//! (`trellis serve --access-log-file`). The records of one request differ only in
//! `serviceNetworkArn`, so each distinct value is formatted once.
//!
//! The record is completed when the response body ends: the pipeline hands it to the response
//! body as a [`Pending`], which counts the body's bytes and, when the body is dropped (its last
//! byte written, or the client gone), sets `duration` and `bytesSent` and delivers it.

use std::sync::Arc;
use std::time::Duration;

use http::Version;
use serde::Serialize;
use trellis_telemetry::access_log::{AccessLogSink, Delivery};

use crate::body::ResponseBody;
use crate::pipeline::AccessRecord;

/// What Lattice writes for a value it does not have.
const DASH: &str = "-";

/// A number, or `"-"` when Trellis does not measure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Num {
    Value(u64),
    #[serde(serialize_with = "dash")]
    Missing,
}

fn dash<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(DASH)
}

/// A string or `"-"`.
fn or_dash(v: Option<&str>) -> &str {
    match v {
        Some(v) if !v.is_empty() => v,
        _ => DASH,
    }
}

/// One service access-log record, serialized as Lattice's JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatticeRecord<'a> {
    pub start_time: String,
    pub service_network_arn: &'a str,
    pub service_arn: &'a str,
    pub target_group_arn: &'a str,
    pub listener_id: &'a str,
    pub listener_type: &'a str,
    pub source_vpc_id: &'a str,
    pub source_vpc_arn: &'a str,
    pub destination_vpc_id: &'a str,
    pub source_ip_port: String,
    pub target_ip_port: String,
    pub host_header: &'a str,
    pub server_name_indication: &'a str,
    pub ssl_cipher: &'a str,
    pub tls_version: &'a str,
    pub request_method: &'a str,
    pub request_path: &'a str,
    pub protocol: &'a str,
    pub user_agent: &'a str,
    pub response_code: u16,
    pub grpc_response_code: Num,
    pub bytes_received: Num,
    pub bytes_sent: Num,
    pub duration: u64,
    pub request_to_target_duration: Num,
    pub response_from_target_duration: Num,
    pub request_id: &'a str,
    pub resolved_user: &'a str,
    pub auth_denied_reason: &'a str,
    pub failure_reason: &'a str,
    pub caller_principal: &'a str,
    #[serde(rename = "callerPrincipalOrgID")]
    pub caller_principal_org_id: &'a str,
    pub caller_principal_tags: serde_json::Value,
    #[serde(rename = "callerX509SubjectCN")]
    pub caller_x509_subject_cn: &'a str,
    #[serde(rename = "callerX509IssuerOU")]
    pub caller_x509_issuer_ou: &'a str,
    #[serde(rename = "callerX509SANNameCN")]
    pub caller_x509_san_name_cn: &'a str,
    #[serde(rename = "callerX509SANDNS")]
    pub caller_x509_san_dns: &'a str,
    #[serde(rename = "callerX509SANURI")]
    pub caller_x509_san_uri: &'a str,
}

/// `YYYY-MM-DDTHH:MM:SSZ`, UTC (Lattice's `startTime`).
pub fn start_time(t: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<'a> LatticeRecord<'a> {
    /// The record of `r` as delivered under `network_arn`.
    pub fn new(r: &'a AccessRecord, network_arn: Option<&'a str>) -> LatticeRecord<'a> {
        let service = r.service.as_deref();
        let listener = r.listener.as_deref();
        let caller = r.caller.as_deref();
        let host = r
            .host
            .as_ref()
            .and_then(|h| h.to_str().ok())
            .or_else(|| r.uri.authority().map(|a| a.as_str()));
        let resolved_user = match (caller, r.anonymous) {
            (Some(c), _) => c.arn(),
            (None, true) => "Anonymous",
            (None, false) => DASH,
        };
        let tags = match caller.map(|c| c.tags()) {
            Some(tags) if !tags.is_empty() => serde_json::Value::Object(
                tags.iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect(),
            ),
            _ => serde_json::Value::String(DASH.into()),
        };
        let forwarded = r.target.is_some();
        let bytes_received = if r.body_empty {
            Num::Value(r.head_bytes)
        } else if let Some(p) = &r.progress {
            Num::Value(r.head_bytes + p.bytes())
        } else if let Some(n) = r.body_read {
            Num::Value(r.head_bytes + n)
        } else {
            Num::Missing
        };
        // The upload's last byte towards the target, when it had a body.
        let to_target = match (&r.progress, forwarded) {
            (Some(p), true) => Num::Value(millis(
                p.last().into_std().saturating_duration_since(r.started),
            )),
            (None, true) => Num::Missing,
            (_, false) => Num::Value(0),
        };
        LatticeRecord {
            start_time: start_time(r.start_time),
            service_network_arn: or_dash(network_arn),
            service_arn: or_dash(service.map(|s| s.arn.as_str())),
            target_group_arn: or_dash(r.target_group.as_deref().map(|g| g.arn.as_str())),
            listener_id: or_dash(listener.map(|l| l.id.as_str())),
            listener_type: or_dash(listener.map(|l| l.protocol.as_str())),
            source_vpc_id: or_dash(r.client.as_deref().map(|c| c.vpc.id.as_str())),
            source_vpc_arn: or_dash(r.client.as_deref().map(|c| c.vpc.arn.as_str())),
            destination_vpc_id: DASH,
            source_ip_port: format!("{}:{}", r.source.ip(), r.source.port()),
            target_ip_port: r
                .target
                .map_or_else(|| DASH.to_string(), |t| format!("{}:{}", t.ip(), t.port())),
            host_header: or_dash(host),
            server_name_indication: or_dash(r.server_name.as_deref()),
            ssl_cipher: r.tls.map_or(DASH, |(cipher, _)| cipher),
            tls_version: r.tls.map_or(DASH, |(_, version)| version),
            request_method: r.method.as_str(),
            request_path: r.uri.path(),
            protocol: protocol(r.protocol),
            user_agent: or_dash(r.user_agent.as_ref().and_then(|u| u.to_str().ok())),
            response_code: r.status,
            grpc_response_code: r.grpc_status.map_or(Num::Missing, Num::Value),
            bytes_received,
            bytes_sent: r.bytes_sent.map_or(Num::Missing, Num::Value),
            duration: millis(r.duration),
            request_to_target_duration: to_target,
            response_from_target_duration: match (forwarded, r.to_client) {
                (true, Some(d)) => Num::Value(millis(d)),
                (true, None) => Num::Missing,
                (false, _) => Num::Value(0),
            },
            request_id: or_dash(r.request_id.to_str().ok()),
            resolved_user,
            auth_denied_reason: or_dash(r.auth_denied),
            failure_reason: or_dash(r.failure),
            caller_principal: or_dash(caller.map(|c| c.arn())),
            caller_principal_org_id: or_dash(caller.and_then(|c| c.org()).map(|(id, _)| id)),
            caller_principal_tags: tags,
            caller_x509_subject_cn: DASH,
            caller_x509_issuer_ou: DASH,
            caller_x509_san_name_cn: DASH,
            caller_x509_san_dns: DASH,
            caller_x509_san_uri: DASH,
        }
    }

    /// The record as one line of JSON (no newline).
    pub fn to_json(&self) -> Arc<str> {
        // Serializing plain strings and numbers cannot fail.
        Arc::from(serde_json::to_string(self).unwrap_or_default())
    }
}

/// Whether some destination wants `record` (so that it is worth completing and formatting).
pub(crate) fn wanted(sink: &dyn AccessLogSink, record: &AccessRecord) -> bool {
    sink.wants_all()
        || record
            .service
            .as_deref()
            .is_some_and(|s| !s.access_logs.is_empty())
}

/// The size of a request head as received: the request line and each header field's name and
/// value plus 4 (`": "` and CRLF) — `header_fields` — and the blank line.
pub(crate) fn request_head_bytes(record: &AccessRecord, header_fields: usize) -> u64 {
    let target = record.uri.path_and_query().map_or(1, |p| p.as_str().len());
    // `METHOD SP target SP HTTP/1.1 CRLF` … CRLF
    (record.method.as_str().len() + 1 + target + 1 + 8 + 2 + header_fields + 2) as u64
}

/// A record waiting for its response body to end.
pub(crate) struct Pending {
    record: AccessRecord,
    sink: Arc<dyn AccessLogSink>,
    /// The response head's size, then the body's bytes added as they pass.
    sent: u64,
}

/// A `grpc-status` value.
fn grpc_status(headers: &http::HeaderMap) -> Option<u64> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

impl Pending {
    pub(crate) fn new(
        record: AccessRecord,
        sink: Arc<dyn AccessLogSink>,
        response: &http::Response<ResponseBody>,
    ) -> Pending {
        // `HTTP/1.1 SP 3DIGIT SP reason CRLF`, the fields, CRLF (an HTTP/1.1 estimate for
        // HTTP/2 too, whose compressed heads are smaller).
        let reason = response.status().canonical_reason().map_or(0, str::len);
        let fields: usize = response
            .headers()
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        let mut record = record;
        // A trailers-only gRPC response (the proxy's own errors among them) has it in the head.
        record.grpc_status = grpc_status(response.headers());
        Pending {
            record,
            sink,
            sent: (8 + 1 + 3 + 1 + reason + 2 + fields + 2) as u64,
        }
    }

    /// Reads `grpc-status` from the response's trailers.
    pub(crate) fn trailers(&mut self, trailers: &http::HeaderMap) {
        if let Some(status) = grpc_status(trailers) {
            self.record.grpc_status = Some(status);
        }
    }

    /// Counts body bytes handed to the connection.
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.sent += bytes as u64;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let r = &mut self.record;
        let total = r.started.elapsed();
        r.to_client = Some(total.saturating_sub(r.duration));
        r.duration = total;
        r.bytes_sent = Some(self.sent);
        deliver(self.sink.as_ref(), r);
    }
}

/// Offers `record` to every destination that wants it: the every-request sink, then each of
/// the service's subscriptions. Never waits.
pub(crate) fn deliver(sink: &dyn AccessLogSink, record: &AccessRecord) {
    let deliveries = record
        .service
        .as_deref()
        .map_or(&[][..], |s| s.access_logs.as_slice());
    let all = sink.wants_all();
    if deliveries.is_empty() && !all {
        return;
    }
    // A service-level record names the network the request arrived through (its client's
    // VPC's); for a client no VPC admitted (development mode), the service's first network.
    let arrived = record
        .client
        .as_deref()
        .and_then(|c| c.vpc.association.as_ref());
    let first_network = match arrived {
        Some(a) => Some(a.network_arn.as_str()),
        None => record
            .service
            .as_deref()
            .and_then(|s| s.networks.first())
            .map(|n| n.arn.as_str()),
    };
    let mut last = None;
    if all {
        sink.offer(None, line(record, first_network, &mut last));
    }
    for d in deliveries {
        // A network's subscription receives only the requests that arrived through it.
        if let (Some(a), Some(n)) = (arrived, d.network_arn.as_deref())
            && a.network_arn != n
        {
            continue;
        }
        let network = d.network_arn.as_deref().or(first_network);
        sink.offer(
            Some(Delivery {
                subscription: &d.subscription_id,
                destination_arn: &d.destination_arn,
                resource: &d.resource_id,
            }),
            line(record, network, &mut last),
        );
    }
}

/// The record of `record` under `network`, reusing the previous one when it was for the same
/// network.
fn line<'r>(
    record: &'r AccessRecord,
    network: Option<&'r str>,
    last: &mut Option<(Option<&'r str>, Arc<str>)>,
) -> Arc<str> {
    if let Some((n, line)) = last
        && *n == network
    {
        return Arc::clone(line);
    }
    let line = LatticeRecord::new(record, network).to_json();
    *last = Some((network, Arc::clone(&line)));
    line
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use http::{HeaderValue, Method, Uri};
    use serde_json::{Value, json};
    use trellis_model::resources::AuthType;
    use trellis_model::resources::listener::ListenerProtocol;
    use trellis_model::resources::target_group::TargetGroupType;
    use trellis_policy::{Decision, RequestContext};
    use trellis_snapshot::{
        AccessLogEntry, ListenerEntry, NetworkEntry, ServiceEntry, TargetGroupEntry,
    };

    use super::*;
    use crate::auth::Caller;

    const SVC: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:service/svc-1";
    const SN: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-1";
    const SN2: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-2";
    const TG: &str = "arn:aws:vpc-lattice:us-west-2:111122223333:targetgroup/tg-1";

    #[derive(Debug)]
    struct Role;

    impl Caller for Role {
        fn arn(&self) -> &str {
            "arn:aws:sts::111122223333:assumed-role/app/s"
        }
        fn session_name(&self) -> Option<&str> {
            Some("s")
        }
        fn tags(&self) -> &[(String, String)] {
            static TAGS: std::sync::LazyLock<Vec<(String, String)>> =
                std::sync::LazyLock::new(|| vec![("team".into(), "a".into())]);
            &TAGS
        }
        fn org(&self) -> Option<(&str, &str)> {
            Some(("o-abc", "o-abc/r-1/"))
        }
        fn decide(&self, _: &RequestContext<'_>) -> Decision {
            Decision::ImplicitDeny
        }
    }

    fn service(access_logs: Vec<AccessLogEntry>) -> Arc<ServiceEntry> {
        Arc::new(ServiceEntry {
            id: "svc-1".into(),
            arn: SVC.into(),
            name: "s".into(),
            auth_type: AuthType::None,
            dns_name: "s.example".into(),
            custom_domain_name: None,
            networks: vec![NetworkEntry {
                id: "sn-1".into(),
                arn: SN.into(),
                auth_type: AuthType::None,
                auth_policy: None,
            }],
            listeners: HashMap::new(),
            auth_policy: None,
            tags: Default::default(),
            access_logs,
        })
    }

    /// A 404 fixed response to an HTTP/1.1 GET, on a known service and listener.
    fn base() -> AccessRecord {
        AccessRecord {
            start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            started: Instant::now(),
            source: "10.0.0.7:51000".parse().unwrap(),
            listener_port: 8080,
            server_name: None,
            tls: None,
            protocol: Version::HTTP_11,
            method: Method::GET,
            uri: Uri::from_static("/fixed/x?q=1"),
            host: Some(HeaderValue::from_static("s.example:8080")),
            user_agent: Some(HeaderValue::from_static("curl/8")),
            request_id: HeaderValue::from_static("req-1"),
            service: Some(service(Vec::new())),
            listener: Some(Arc::new(ListenerEntry {
                id: "listener-1".into(),
                arn: "x".into(),
                name: "l".into(),
                protocol: ListenerProtocol::Http,
                port: 8080,
                routes: trellis_router::RouteTable::compile(
                    &[],
                    "rule-d",
                    &trellis_model::resources::rule::RuleAction::FixedResponse { status_code: 404 },
                ),
            })),
            target_group: None,
            target: None,
            retries: 0,
            status: 404,
            grpc_status: None,
            head_bytes: 120,
            body_empty: true,
            progress: None,
            body_read: None,
            bytes_sent: Some(150),
            to_client: Some(Duration::from_millis(3)),
            failure: None,
            caller: None,
            auth_denied: None,
            anonymous: false,
            client: None,
            duration: Duration::from_millis(12),
            group_series: None,
            active: None,
        }
    }

    fn json_of(r: &AccessRecord, network: Option<&str>) -> Value {
        serde_json::from_str(&LatticeRecord::new(r, network).to_json()).unwrap()
    }

    #[test]
    fn fixed_response_record_has_every_field() {
        let v = json_of(&base(), Some(SN));
        let want = json!({
            "startTime": "2023-11-14T22:13:20Z",
            "serviceNetworkArn": SN,
            "serviceArn": SVC,
            "targetGroupArn": "-",
            "listenerId": "listener-1",
            "listenerType": "HTTP",
            "sourceVpcId": "-",
            "sourceVpcArn": "-",
            "destinationVpcId": "-",
            "sourceIpPort": "10.0.0.7:51000",
            "targetIpPort": "-",
            "hostHeader": "s.example:8080",
            "serverNameIndication": "-",
            "sslCipher": "-",
            "tlsVersion": "-",
            "requestMethod": "GET",
            "requestPath": "/fixed/x",
            "protocol": "HTTP/1.1",
            "userAgent": "curl/8",
            "responseCode": 404,
            "grpcResponseCode": "-",
            "bytesReceived": 120,
            "bytesSent": 150,
            "duration": 12,
            "requestToTargetDuration": 0,
            "responseFromTargetDuration": 0,
            "requestId": "req-1",
            "resolvedUser": "-",
            "authDeniedReason": "-",
            "failureReason": "-",
            "callerPrincipal": "-",
            "callerPrincipalOrgID": "-",
            "callerPrincipalTags": "-",
            "callerX509SubjectCN": "-",
            "callerX509IssuerOU": "-",
            "callerX509SANNameCN": "-",
            "callerX509SANDNS": "-",
            "callerX509SANURI": "-",
        });
        assert_eq!(v, want);
        // Lattice's member order.
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        let want_keys: Vec<&String> = want.as_object().unwrap().keys().collect();
        assert_eq!(keys, want_keys);
    }

    type Change = fn(&mut AccessRecord);
    /// A case: its name, what it changes in [`base`], the fields it expects.
    type Case<'a> = (&'a str, Change, &'a [(&'a str, Value)]);

    #[test]
    fn field_table() {
        let cases: &[Case] = &[
            (
                "forwarded over HTTP/2",
                |r| {
                    r.protocol = Version::HTTP_2;
                    r.host = None;
                    r.uri = Uri::from_static("http://s.example:8080/api");
                    r.target = Some("10.1.2.3:80".parse().unwrap());
                    r.target_group = Some(Arc::new(TargetGroupEntry {
                        id: "tg-1".into(),
                        arn: TG.into(),
                        name: "g".into(),
                        target_type: TargetGroupType::Ip,
                        config: Default::default(),
                        in_use: true,
                        targets: Vec::new(),
                    }));
                    r.status = 200;
                },
                &[
                    ("protocol", json!("HTTP/2")),
                    ("hostHeader", json!("s.example:8080")),
                    ("requestPath", json!("/api")),
                    ("targetGroupArn", json!(TG)),
                    ("targetIpPort", json!("10.1.2.3:80")),
                    ("requestToTargetDuration", json!("-")),
                    ("responseFromTargetDuration", json!(3)),
                    ("responseCode", json!(200)),
                ],
            ),
            (
                "a body nobody counted, a response not finished",
                |r| {
                    r.body_empty = false;
                    r.bytes_sent = None;
                    r.target = Some("10.1.2.3:80".parse().unwrap());
                    r.to_client = None;
                },
                &[
                    ("bytesReceived", json!("-")),
                    ("bytesSent", json!("-")),
                    ("responseFromTargetDuration", json!("-")),
                ],
            ),
            (
                "a body read whole for a function",
                |r| {
                    r.body_empty = false;
                    r.body_read = Some(30);
                },
                &[("bytesReceived", json!(150))],
            ),
            (
                "gRPC",
                |r| {
                    r.protocol = Version::HTTP_2;
                    r.status = 200;
                    r.grpc_status = Some(14);
                },
                &[
                    ("grpcResponseCode", json!(14)),
                    ("responseCode", json!(200)),
                ],
            ),
            (
                "denied, unsigned",
                |r| {
                    r.status = 403;
                    r.failure = Some("ClientAccessDenied");
                    r.auth_denied = Some("Service");
                    r.anonymous = true;
                },
                &[
                    ("resolvedUser", json!("Anonymous")),
                    ("authDeniedReason", json!("Service")),
                    ("failureReason", json!("ClientAccessDenied")),
                    ("callerPrincipal", json!("-")),
                ],
            ),
            (
                "denied, signed by a role session",
                |r| {
                    r.status = 403;
                    r.failure = Some("ClientAccessDenied");
                    r.auth_denied = Some("Identity");
                    r.caller = Some(Arc::new(Role));
                },
                &[
                    (
                        "resolvedUser",
                        json!("arn:aws:sts::111122223333:assumed-role/app/s"),
                    ),
                    (
                        "callerPrincipal",
                        json!("arn:aws:sts::111122223333:assumed-role/app/s"),
                    ),
                    ("callerPrincipalOrgID", json!("o-abc")),
                    ("callerPrincipalTags", json!({"team": "a"})),
                    ("authDeniedReason", json!("Identity")),
                ],
            ),
            (
                "TLS, no service found",
                |r| {
                    r.server_name = Some(Arc::from("s.example"));
                    r.tls = Some(("TLS_AES_128_GCM_SHA256", "TLSv1.3"));
                    r.service = None;
                    r.listener = None;
                    r.user_agent = None;
                    r.failure = Some("ClientProtocolError");
                },
                &[
                    ("serverNameIndication", json!("s.example")),
                    ("sslCipher", json!("TLS_AES_128_GCM_SHA256")),
                    ("tlsVersion", json!("TLSv1.3")),
                    ("serviceArn", json!("-")),
                    ("listenerId", json!("-")),
                    ("listenerType", json!("-")),
                    ("userAgent", json!("-")),
                    ("failureReason", json!("ClientProtocolError")),
                ],
            ),
        ];
        for (name, change, want) in cases {
            let mut r = base();
            change(&mut r);
            let v = json_of(&r, Some(SN));
            for (field, value) in *want {
                assert_eq!(&v[field], value, "{name}: {field}");
            }
        }
    }

    #[test]
    fn head_sizes() {
        let r = base();
        // "GET /fixed/x?q=1 HTTP/1.1\r\n" + fields + "\r\n"
        assert_eq!(request_head_bytes(&r, 40), 27 + 40 + 2);
        let mut response = http::Response::new(ResponseBody::empty());
        *response.status_mut() = http::StatusCode::NOT_FOUND;
        response
            .headers_mut()
            .insert("x-amzn-requestid", HeaderValue::from_static("abc"));
        let sink = Arc::new(Collect {
            all: true,
            ..Collect::default()
        });
        let mut pending = Pending::new(r, sink.clone(), &response);
        pending.sent(10);
        drop(pending);
        let got = sink.got.lock().unwrap();
        let v: Value = serde_json::from_str(&got[0].1).unwrap();
        // "HTTP/1.1 404 Not Found\r\n" (24) + "x-amzn-requestid: abc\r\n" (23) + "\r\n" + 10
        assert_eq!(v["bytesSent"], json!(24 + 23 + 2 + 10));
        assert_eq!(v["responseCode"], json!(404));
    }

    #[test]
    fn start_time_is_second_precision_utc() {
        assert_eq!(start_time(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_999);
        assert_eq!(start_time(t), "2000-02-29T00:00:00Z");
        assert!(start_time(SystemTime::now()).ends_with('Z'));
    }

    #[derive(Default)]
    struct Collect {
        all: bool,
        got: std::sync::Mutex<Vec<(Option<String>, String)>>,
    }

    impl AccessLogSink for Collect {
        fn wants_all(&self) -> bool {
            self.all
        }
        fn offer(&self, delivery: Option<Delivery<'_>>, record: Arc<str>) {
            self.got.lock().unwrap().push((
                delivery.map(|d| d.subscription.to_string()),
                record.to_string(),
            ));
        }
    }

    #[test]
    fn deliver_offers_each_destination_its_network() {
        let entry = |id: &str, network: Option<&str>| AccessLogEntry {
            subscription_id: id.into(),
            destination_arn: "arn:aws:logs:us-west-2:111122223333:log-group:g".into(),
            log_group: "g".into(),
            resource_id: "svc-1".into(),
            network_arn: network.map(str::to_string),
        };
        // Nobody wants a record: nothing is formatted or offered.
        let sink = Collect::default();
        deliver(&sink, &base());
        assert!(sink.got.lock().unwrap().is_empty());

        let mut r = base();
        r.service = Some(service(vec![
            entry("als-svc", None),
            entry("als-sn2", Some(SN2)),
        ]));
        let sink = Collect {
            all: true,
            ..Collect::default()
        };
        deliver(&sink, &r);
        let got = sink.got.lock().unwrap();
        let networks: Vec<(Option<&str>, String)> = got
            .iter()
            .map(|(sub, line)| {
                let v: Value = serde_json::from_str(line).unwrap();
                (
                    sub.as_deref(),
                    v["serviceNetworkArn"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            networks,
            [
                (None, SN.to_string()),
                (Some("als-svc"), SN.to_string()),
                (Some("als-sn2"), SN2.to_string()),
            ]
        );
    }
}

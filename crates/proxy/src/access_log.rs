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

use std::sync::Arc;
use std::time::Duration;

use http::Version;
use serde::Serialize;
use trellis_telemetry::access_log::{AccessLogSink, Delivery};

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
        LatticeRecord {
            start_time: start_time(r.start_time),
            service_network_arn: or_dash(network_arn),
            service_arn: or_dash(service.map(|s| s.arn.as_str())),
            target_group_arn: or_dash(r.target_group.as_deref().map(|g| g.arn.as_str())),
            listener_id: or_dash(listener.map(|l| l.id.as_str())),
            listener_type: or_dash(listener.map(|l| l.protocol.as_str())),
            source_vpc_id: DASH,
            source_vpc_arn: DASH,
            destination_vpc_id: DASH,
            source_ip_port: format!("{}:{}", r.source.ip(), r.source.port()),
            target_ip_port: r
                .target
                .map_or_else(|| DASH.to_string(), |t| format!("{}:{}", t.ip(), t.port())),
            host_header: or_dash(host),
            server_name_indication: or_dash(r.server_name.as_deref()),
            // Not recorded per connection yet (docs/decisions.md, "Access-log records").
            ssl_cipher: DASH,
            tls_version: DASH,
            request_method: r.method.as_str(),
            request_path: r.uri.path(),
            protocol: protocol(r.protocol),
            user_agent: or_dash(r.user_agent.as_ref().and_then(|u| u.to_str().ok())),
            response_code: r.status,
            grpc_response_code: Num::Missing,
            bytes_received: Num::Missing,
            bytes_sent: Num::Missing,
            duration: millis(r.duration),
            request_to_target_duration: if forwarded {
                Num::Missing
            } else {
                Num::Value(0)
            },
            response_from_target_duration: if forwarded {
                Num::Missing
            } else {
                Num::Value(0)
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
    // A service-level record names the service's first network (Trellis has no VPC to tell
    // which network a client came through).
    let first_network = record
        .service
        .as_deref()
        .and_then(|s| s.networks.first())
        .map(|n| n.arn.as_str());
    let mut last = None;
    if all {
        sink.offer(None, line(record, first_network, &mut last));
    }
    for d in deliveries {
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

//! Header handling between client and target (reference §6.2): hop-by-hop fields, the headers
//! Trellis owns (`x-forwarded-*`, `x-amzn-lattice-*`, `x-amzn-requestid`), the request ID, and
//! the header limits of §11.2.
//!
//! Decisions (see docs/decisions.md):
//! * `x-forwarded-for`, `-port` and `-proto` are **replaced**, not appended to: Trellis is the
//!   entry point of the service network, so a target can trust them to be exactly the client's
//!   address, the listener port and the listener protocol (Lattice documents each as a single
//!   value).
//! * Incoming `x-amzn-lattice-*` and `x-amzn-source-vpc` fields are removed, whatever follows
//!   the prefix, so no client can pose as an identity or a network.
//! * `x-amzn-lattice-network` is `SourceVpcArn=<the client's VPC's ARN>` and
//!   `x-amzn-source-vpc` its ID; for a client no VPC admitted (development mode,
//!   `--open-network`) the first is sent as `SourceVpcArn=` (an empty value, which the map-header
//!   format allows) and the second not at all.
//! * The client's `x-amzn-requestid` is kept (truncated to 512 bytes); otherwise a UUID v4 is
//!   generated. Either way it reaches the target and comes back on the response.
//! * Trace context reaches every target: a valid W3C `traceparent` (and its `tracestate`) and
//!   the client's `x-amzn-trace-id` are passed on unchanged; when absent, Trellis creates them
//!   (a new trace, sampled flag set; an X-Ray root `1-<epoch hex>-<96 random bits>`). An invalid
//!   `traceparent` is replaced by a new one and its `tracestate` dropped, as W3C Trace Context
//!   asks of a participant that cannot parse it.

use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use trellis_snapshot::{NetworkEntry, ServiceEntry, Snapshot, TargetGroupEntry};

use crate::rng;

pub const X_AMZN_REQUESTID: HeaderName = HeaderName::from_static("x-amzn-requestid");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_AMZN_LATTICE_TARGET: HeaderName = HeaderName::from_static("x-amzn-lattice-target");
pub const X_AMZN_LATTICE_NETWORK: HeaderName = HeaderName::from_static("x-amzn-lattice-network");
pub const X_AMZN_LATTICE_IDENTITY: HeaderName = HeaderName::from_static("x-amzn-lattice-identity");
pub const X_AMZN_SOURCE_VPC: HeaderName = HeaderName::from_static("x-amzn-source-vpc");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const X_AMZN_TRACE_ID: HeaderName = HeaderName::from_static("x-amzn-trace-id");
pub const X_AMZN_LATTICE_IDENTITY_TAGS: HeaderName =
    HeaderName::from_static("x-amzn-lattice-identity-tags");

/// `x-forwarded-proto` values, and `x-amzn-lattice-network` until client networks exist (a
/// `const` is built at compile time; `HeaderValue::from_static` at run time checks every byte).
pub const PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");
pub const PROTO_HTTPS: HeaderValue = HeaderValue::from_static("https");
pub const LATTICE_NETWORK: HeaderValue = HeaderValue::from_static("SourceVpcArn=");

/// Lattice truncates client request IDs to this many bytes.
pub const MAX_REQUEST_ID_BYTES: usize = 512;

const OWNED_PREFIX: &str = "x-amzn-lattice-";
const SOURCE_VPC: &str = "x-amzn-source-vpc";
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// The fields the strip functions act on, one bit each. One scan of a map's names says which
/// of them are present; the common request and response have none, and then nothing is looked
/// up or removed (a `HeaderMap::remove` hashes and probes even for an absent name).
mod field {
    pub const CONNECTION: u16 = 1 << 0;
    pub const PROXY_CONNECTION: u16 = 1 << 1;
    pub const KEEP_ALIVE: u16 = 1 << 2;
    pub const TRANSFER_ENCODING: u16 = 1 << 3;
    pub const UPGRADE: u16 = 1 << 4;
    pub const PROXY_AUTHORIZATION: u16 = 1 << 5;
    pub const PROXY_AUTHENTICATE: u16 = 1 << 6;
    pub const EXPECT: u16 = 1 << 7;
    pub const TE: u16 = 1 << 8;
    /// A field Trellis owns (`x-amzn-lattice-*`, `x-amzn-source-vpc`).
    pub const OWNED: u16 = 1 << 9;
}

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1), beyond those the
/// `Connection` field names; and `Expect` (the proxy's HTTP server already answered
/// `100-continue` to the client when it started reading the body). `TE` is handled apart:
/// `TE: trailers` is kept (gRPC needs it).
const HOP_BY_HOP: [(u16, HeaderName); 6] = [
    (field::PROXY_CONNECTION, PROXY_CONNECTION),
    (field::KEEP_ALIVE, KEEP_ALIVE),
    (field::TRANSFER_ENCODING, header::TRANSFER_ENCODING),
    (field::UPGRADE, header::UPGRADE),
    (field::PROXY_AUTHORIZATION, header::PROXY_AUTHORIZATION),
    (field::EXPECT, header::EXPECT),
];

/// The response side's hop-by-hop fields, beyond those the `Connection` field names.
const HOP_BY_HOP_RESPONSE: [(u16, HeaderName); 5] = [
    (field::PROXY_CONNECTION, PROXY_CONNECTION),
    (field::KEEP_ALIVE, KEEP_ALIVE),
    (field::TRANSFER_ENCODING, header::TRANSFER_ENCODING),
    (field::UPGRADE, header::UPGRADE),
    (field::PROXY_AUTHENTICATE, header::PROXY_AUTHENTICATE),
];

/// The `field` bit of a name, 0 for the names the strip functions leave alone.
fn field_bit(name: &HeaderName) -> u16 {
    match name.as_str() {
        "connection" => field::CONNECTION,
        "proxy-connection" => field::PROXY_CONNECTION,
        "keep-alive" => field::KEEP_ALIVE,
        "transfer-encoding" => field::TRANSFER_ENCODING,
        "upgrade" => field::UPGRADE,
        "proxy-authorization" => field::PROXY_AUTHORIZATION,
        "proxy-authenticate" => field::PROXY_AUTHENTICATE,
        "expect" => field::EXPECT,
        "te" => field::TE,
        other if other.starts_with(OWNED_PREFIX) || other == SOURCE_VPC => field::OWNED,
        _ => 0,
    }
}

/// The `field` bits of every name in the map (each distinct name once).
fn present(headers: &HeaderMap) -> u16 {
    headers
        .keys()
        .fold(0, |found, name| found | field_bit(name))
}

/// Adds `x-amzn-lattice-identity` and `x-amzn-lattice-identity-tags` for an authenticated caller
/// (after [`strip_request`] removed any client copies). A value that is not a valid field value
/// (a tag with a control character, which IAM's tag syntax does not allow) leaves its field out.
pub(crate) fn insert_identity(headers: &mut HeaderMap, caller: &dyn crate::auth::Caller) {
    let values = match caller.identity_cache() {
        Some(cache) => cache.get_or_init(|| identity_fields(caller)),
        None => &identity_fields(caller),
    };
    for (name, value) in [
        (X_AMZN_LATTICE_IDENTITY, &values.0),
        (X_AMZN_LATTICE_IDENTITY_TAGS, &values.1),
    ] {
        if let Some(value) = value {
            headers.insert(name, value.clone());
        }
    }
}

/// The two identity fields' values; `None` for one that is not a valid field value.
fn identity_fields(caller: &dyn crate::auth::Caller) -> crate::auth::IdentityFields {
    let (identity, tags) = crate::auth::identity_values(caller);
    let field = |value: String| {
        HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
            .inspect_err(|_| {
                tracing::warn!("an identity field is not a valid field value; left out");
            })
            .ok()
    };
    (field(identity), field(tags))
}

/// Everything a request loses on its way to a target, in one scan of its names: the hop-by-hop
/// fields (RFC 9110 §7.6.1: [`HOP_BY_HOP`], those the `Connection` field names, and `TE` other
/// than `trailers`), `Expect`, and every client copy of the fields Trellis owns.
pub(crate) fn strip_request(headers: &mut HeaderMap) {
    let found = present(headers);
    if found != 0 {
        strip_request_fields(headers, found);
    }
    if found & field::OWNED != 0 {
        remove_owned(headers);
    }
}

fn strip_request_fields(headers: &mut HeaderMap, found: u16) {
    if found & field::CONNECTION != 0 {
        remove_connection_nominated(headers, is_kept_on_request);
    }
    for (bit, name) in HOP_BY_HOP {
        if found & bit != 0 {
            headers.remove(name);
        }
    }
    if found & field::TE != 0
        && let Some(te) = headers.get(header::TE)
    {
        let trailers = te.to_str().is_ok_and(|te| {
            te.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        } else {
            headers.remove(header::TE);
        }
    }
}

/// Removes the hop-by-hop fields of a response.
pub(crate) fn strip_response_hop_by_hop(headers: &mut HeaderMap) {
    let found = present(headers);
    if found == 0 {
        return;
    }
    if found & field::CONNECTION != 0 {
        remove_connection_nominated(headers, |_| false);
    }
    for (bit, name) in HOP_BY_HOP_RESPONSE {
        if found & bit != 0 {
            headers.remove(name);
        }
    }
}

/// Fields a client's `Connection` cannot remove from a request: `Host` (the one authority the
/// service was chosen by; `Connection: host` would send the target a request without one, and
/// many targets then fall back to a default virtual host) and the fields Trellis sets itself.
fn is_kept_on_request(name: &HeaderName) -> bool {
    name == header::HOST
        || name == X_FORWARDED_FOR
        || name == X_FORWARDED_PORT
        || name == X_FORWARDED_PROTO
        || name == X_AMZN_REQUESTID
}

/// Removes the `Connection` field and the fields it lists (they are hop-by-hop by declaration),
/// except those `kept` says must stay.
fn remove_connection_nominated(headers: &mut HeaderMap, kept: fn(&HeaderName) -> bool) {
    // Taken out first so the names can be removed while it is read.
    let Some(connection) = headers.remove(header::CONNECTION) else {
        return;
    };
    let Ok(value) = connection.to_str() else {
        return;
    };
    for token in value.split(',').map(str::trim) {
        if token.is_empty()
            || token.eq_ignore_ascii_case("close")
            || token.eq_ignore_ascii_case("keep-alive")
        {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token.as_bytes())
            && !kept(&name)
        {
            headers.remove(name);
        }
    }
}

/// Whether a field is one Trellis owns and a client must not send.
fn is_owned(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with(OWNED_PREFIX) || name == SOURCE_VPC
}

/// Removes every client-supplied copy of the fields Trellis owns; called only when the scan found
/// one, so the collecting allocation happens only for a request that sends one.
fn remove_owned(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers.keys().filter(|n| is_owned(n)).cloned().collect();
    for name in spoofed {
        headers.remove(name);
    }
}

/// The request's ID: the client's `x-amzn-requestid` (truncated to 512 bytes), else a new UUID.
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut id = match headers.get(X_AMZN_REQUESTID) {
        Some(id) if !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES => id.clone(),
        Some(id) if !id.is_empty() => {
            // A prefix of a valid field value is a valid field value (no byte becomes invalid
            // by truncation), unless it ends in whitespace, which the fallback trims.
            let prefix = &id.as_bytes()[..MAX_REQUEST_ID_BYTES];
            HeaderValue::from_bytes(prefix)
                .or_else(|_| HeaderValue::from_bytes(prefix.trim_ascii_end()))
                .unwrap_or_else(|_| generate_request_id())
        }
        _ => generate_request_id(),
    };
    // Unique per request, so HTTP/2's HPACK would only churn its dynamic table with it (and
    // search the table first): "sensitive" makes it a never-indexed literal on h2 legs. HTTP/1.1
    // ignores the flag.
    id.set_sensitive(true);
    id
}

/// Gives the request trace context (see the module docs): what the client sent, when valid, else
/// a new trace. `now` is the request's start time (the X-Ray root's epoch).
pub(crate) fn ensure_trace(headers: &mut HeaderMap, now: std::time::SystemTime) {
    let mut parents = headers.get_all(TRACEPARENT).iter();
    let valid = matches!((parents.next(), parents.next()), (Some(p), None) if valid_traceparent(p.as_bytes()));
    if !valid {
        headers.remove(TRACESTATE);
        headers.insert(TRACEPARENT, new_traceparent());
    }
    if !headers.contains_key(X_AMZN_TRACE_ID) {
        let epoch = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let value = format!(
            "Root=1-{:08x}-{:08x}{:016x}",
            epoch as u32,
            rng::next_u32(),
            rng::next_u64()
        );
        if let Ok(value) = HeaderValue::try_from(value) {
            headers.insert(X_AMZN_TRACE_ID, value);
        }
    }
}

/// A new W3C trace: version 00, a random trace ID and parent ID (never all zeros), sampled.
fn new_traceparent() -> HeaderValue {
    let (hi, lo, parent) = (rng::next_u64(), rng::next_u64(), rng::next_u64());
    let value = format!("00-{:016x}{:016x}-{:016x}-01", hi, lo | 1, parent | 1);
    HeaderValue::try_from(value).expect("hex digits and dashes are a valid header value")
}

/// Whether `value` is a W3C `traceparent` a participant can propagate: version (two lowercase
/// hex digits, not `ff`), trace ID (32, not all zeros), parent ID (16, not all zeros), flags (2),
/// dash-separated; version 00 exactly so, later versions possibly followed by `-…`.
pub(crate) fn valid_traceparent(value: &[u8]) -> bool {
    let hex = |b: &[u8]| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let zeros = |b: &[u8]| b.iter().all(|c| *c == b'0');
    if value.len() < 55 {
        return false;
    }
    let (version, trace, parent, flags) =
        (&value[0..2], &value[3..35], &value[36..52], &value[53..55]);
    hex(version)
        && version != b"ff"
        && value[2] == b'-'
        && value[35] == b'-'
        && value[52] == b'-'
        && hex(trace)
        && !zeros(trace)
        && hex(parent)
        && !zeros(parent)
        && hex(flags)
        && if version == b"00" {
            value.len() == 55
        } else {
            value.len() == 55 || value[55] == b'-'
        }
}

/// A random UUID v4 from the per-thread generator (no system call per request).
pub(crate) fn generate_request_id() -> HeaderValue {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&rng::next_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&rng::next_u64().to_le_bytes());
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut text);
    // One allocation, shared by the clones that go to the target, the response and the log.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .expect("a UUID is a valid header value")
}

/// The number of header fields and their size as Lattice limits them: every field counts, and
/// its size is the name, the value and the four bytes of `": "` and CRLF (its HTTP/1.1 size).
pub(crate) fn header_size(headers: &HeaderMap) -> (usize, usize) {
    let bytes = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    (headers.len(), bytes)
}

/// The value of `x-amzn-lattice-target` for a service and target group, in the format real
/// Lattice traffic shows: `ServiceArn=…; ServiceNetworkArn=…; TargetGroupArn=…`. The network is
/// the one the request arrived through, or for a client no VPC admitted (development mode) the
/// service's first.
pub(crate) fn lattice_target_value(
    service: &ServiceEntry,
    network: Option<&NetworkEntry>,
    group: &TargetGroupEntry,
) -> HeaderValue {
    let network = network
        .or(service.networks.first())
        .map_or("", |n| n.arn.as_str());
    let value = format!(
        "ServiceArn={}; ServiceNetworkArn={}; TargetGroupArn={}",
        service.arn, network, group.arn
    );
    HeaderValue::try_from(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `x-amzn-lattice-target` values computed once per snapshot and target group, so the request
/// path formats nothing. A target group serves one service, so the group's id is the key; the
/// service id is kept to detect the (invalid) case of one group reached from two services.
///
/// The cache belongs to one snapshot, identified by a `Weak` pointer to it (which keeps the
/// address from being reused). The first request that sees a newer snapshot replaces it;
/// requests still running on an older snapshot compute their value without caching it.
#[derive(Default)]
pub(crate) struct TargetHeaderCache {
    current: ArcSwap<TargetHeaders>,
}

#[derive(Default, Clone)]
struct TargetHeaders {
    snapshot: Weak<Snapshot>,
    /// By group id: (network id, service id, value) for each network requests came through.
    by_group: std::collections::HashMap<String, Vec<(String, String, HeaderValue)>>,
}

impl TargetHeaderCache {
    pub(crate) fn get(
        &self,
        snapshot: &Arc<Snapshot>,
        service: &ServiceEntry,
        network: Option<&NetworkEntry>,
        group: &TargetGroupEntry,
    ) -> HeaderValue {
        let network_id = network.map_or("", |n| n.id.as_str());
        let current = self.current.load();
        let same_snapshot = std::ptr::eq(current.snapshot.as_ptr(), Arc::as_ptr(snapshot));
        if same_snapshot
            && let Some(entries) = current.by_group.get(&group.id)
            && let Some((_, _, value)) = entries
                .iter()
                .find(|(n, s, _)| n == network_id && *s == service.id)
        {
            return value.clone();
        }
        let value = lattice_target_value(service, network, group);
        let newer = !same_snapshot
            && current
                .snapshot
                .upgrade()
                .is_none_or(|cached| cached.revision <= snapshot.revision);
        if same_snapshot || newer {
            drop(current);
            self.current.rcu(|cached| {
                let mut next = if std::ptr::eq(cached.snapshot.as_ptr(), Arc::as_ptr(snapshot)) {
                    TargetHeaders::clone(cached)
                } else {
                    TargetHeaders {
                        snapshot: Arc::downgrade(snapshot),
                        by_group: Default::default(),
                    }
                };
                let entries = next.by_group.entry(group.id.clone()).or_default();
                if !entries
                    .iter()
                    .any(|(n, s, _)| n == network_id && *s == service.id)
                {
                    entries.push((network_id.to_string(), service.id.clone(), value.clone()));
                }
                next
            });
        }
        value
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn traceparent_table() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for (value, want) in [
            (ok, true),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                true,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                true,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
                false,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                false,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                false,
            ),
            ("garbage", false),
        ] {
            assert_eq!(valid_traceparent(value.as_bytes()), want, "{value}");
        }
        // Generated ones are valid, and differ.
        let (a, b) = (new_traceparent(), new_traceparent());
        assert!(valid_traceparent(a.as_bytes()) && a != b);
        // A valid client value is kept with its tracestate; an invalid one is replaced and its
        // tracestate dropped; an X-Ray root is added when absent and kept when present.
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(0x6750_0000);
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(ok));
        h.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        h.insert(
            X_AMZN_TRACE_ID,
            HeaderValue::from_static("Root=1-5759e988-bd862e3fe1be46a994272793"),
        );
        ensure_trace(&mut h, now);
        assert_eq!(h[TRACEPARENT], ok);
        assert_eq!(h[TRACESTATE], "vendor=1");
        assert_eq!(
            h[X_AMZN_TRACE_ID],
            "Root=1-5759e988-bd862e3fe1be46a994272793"
        );
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static("00-bad"));
        h.insert(TRACESTATE, HeaderValue::from_static("vendor=1"));
        ensure_trace(&mut h, now);
        assert!(valid_traceparent(h[TRACEPARENT].as_bytes()));
        assert!(!h.contains_key(TRACESTATE));
        let root = h[X_AMZN_TRACE_ID].to_str().unwrap();
        assert!(
            root.starts_with("Root=1-67500000-") && root.len() == "Root=1-67500000-".len() + 24,
            "{root}"
        );
    }

    use super::*;

    fn map(fields: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn names(headers: &HeaderMap) -> Vec<String> {
        let mut names: Vec<String> = headers.keys().map(|n| n.to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn request_strip_table() {
        // (incoming fields, fields left): hop-by-hop fields, `Expect`, `TE` other than
        // `trailers` and Trellis's own fields go, in any combination; an ordinary request is
        // untouched.
        type Fields = &'static [(&'static str, &'static str)];
        let cases: &[(Fields, &[&str])] = &[
            (
                &[("connection", "keep-alive"), ("accept", "*/*")],
                &["accept"],
            ),
            (
                &[
                    ("connection", "close, x-secret"),
                    ("x-secret", "1"),
                    ("x-kept", "2"),
                ],
                &["x-kept"],
            ),
            (
                &[
                    ("keep-alive", "timeout=5"),
                    ("proxy-connection", "keep-alive"),
                    ("transfer-encoding", "chunked"),
                    ("upgrade", "websocket"),
                    ("proxy-authorization", "Basic x"),
                    ("expect", "100-continue"),
                ],
                &[],
            ),
            (&[("te", "trailers")], &["te"]),
            (&[("te", "gzip, trailers")], &["te"]),
            (&[("te", "gzip")], &[]),
            (
                &[("trailer", "grpc-status"), ("host", "a")],
                &["host", "trailer"],
            ),
            (
                &[("host", "a"), ("accept", "*/*"), ("x-bench", "on")],
                &["accept", "host", "x-bench"],
            ),
            (
                &[("x-amzn-lattice-identity", "spoofed"), ("accept", "*/*")],
                &["accept"],
            ),
            (
                &[
                    ("connection", "x-secret, x-amzn-lattice-target"),
                    ("x-secret", "1"),
                    ("x-amzn-lattice-target", "spoofed"),
                    ("x-amzn-source-vpc", "vpc-1"),
                    ("te", "gzip"),
                    ("expect", "100-continue"),
                    ("upgrade", "h2c"),
                    ("x-forwarded-for", "1.2.3.4"),
                ],
                &["x-forwarded-for"],
            ),
            (
                &[
                    ("te", "trailers, gzip"),
                    ("keep-alive", "5"),
                    ("accept", "*/*"),
                ],
                &["accept", "te"],
            ),
            // `Connection` cannot remove Host nor the fields Trellis sets.
            (
                &[
                    (
                        "connection",
                        "Host, x-forwarded-for, x-amzn-requestid, x-secret",
                    ),
                    ("host", "a"),
                    ("x-forwarded-for", "1.2.3.4"),
                    ("x-amzn-requestid", "r"),
                    ("x-secret", "1"),
                ],
                &["host", "x-amzn-requestid", "x-forwarded-for"],
            ),
        ];
        for (fields, left) in cases {
            let mut headers = map(fields);
            strip_request(&mut headers);
            assert_eq!(names(&headers), *left, "{fields:?}");
            if let Some(te) = headers.get(header::TE) {
                assert_eq!(te, "trailers");
            }
        }
    }

    #[test]
    fn response_hop_by_hop_table() {
        let mut headers = map(&[
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("keep-alive", "timeout=5"),
            ("content-type", "text/plain"),
            ("grpc-status", "0"),
        ]);
        strip_response_hop_by_hop(&mut headers);
        assert_eq!(names(&headers), ["content-type", "grpc-status"]);
    }

    #[test]
    fn owned_fields_are_stripped() {
        let mut headers = map(&[
            ("x-amzn-lattice-identity", "Principal=arn:aws:iam::1:root"),
            ("X-Amzn-Lattice-Target", "ServiceArn=spoofed"),
            ("x-amzn-lattice-anything-new", "1"),
            ("x-amzn-source-vpc", "vpc-1"),
            ("x-amzn-source-vpcs", "kept: not an owned name"),
            ("x-amzn-requestid", "kept"),
            ("x-forwarded-for", "replaced later, not here"),
        ]);
        strip_request(&mut headers);
        assert_eq!(
            names(&headers),
            ["x-amzn-requestid", "x-amzn-source-vpcs", "x-forwarded-for"]
        );
    }

    #[test]
    fn request_id_kept_truncated_or_generated() {
        let kept = map(&[("x-amzn-requestid", "client-id-1")]);
        assert_eq!(request_id(&kept), "client-id-1");

        let long = "a".repeat(600);
        let truncated = request_id(&map(&[("x-amzn-requestid", &long)]));
        assert_eq!(truncated.len(), MAX_REQUEST_ID_BYTES);

        for headers in [HeaderMap::new(), map(&[("x-amzn-requestid", "")])] {
            let id = request_id(&headers);
            let text = id.to_str().unwrap();
            let uuid = uuid::Uuid::parse_str(text).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{text}");
        }
        assert_ne!(generate_request_id(), generate_request_id());
    }

    #[test]
    fn header_size_counts_every_field() {
        let headers = map(&[("a", "1"), ("a", "22"), ("bb", "")]);
        // a: 1 + 1 + 4, a: 1 + 2 + 4, bb: 2 + 0 + 4
        assert_eq!(header_size(&headers), (3, 19));
    }
}

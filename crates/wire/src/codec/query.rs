//! `awsQuery` and `ec2Query`: a form body (`Action`, `Version`, members flattened with dotted
//! names) in; XML out (`{Op}Response/{Op}Result` + `ResponseMetadata/RequestId` for awsQuery,
//! `{Op}Response` + `requestId` for EC2); errors as `ErrorResponse/Error` or
//! `Response/Errors/Error` + `RequestID`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::xml::{self, XmlError, escape};
use crate::error::{AwsError, Fault};
use crate::request_id::RequestId;
use crate::service::{Protocol, Service};

/// `application/x-www-form-urlencoded` pairs, decoded (`+` is a space).
pub fn pairs(raw: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The form body's `Action`.
pub fn action(body: &Bytes) -> Option<String> {
    let raw = std::str::from_utf8(body).ok()?;
    pairs(raw)
        .into_iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v)
}

pub(super) fn decode(protocol: Protocol, body: &Bytes) -> Result<Value, String> {
    let raw = std::str::from_utf8(body).map_err(|_| "The form body is not UTF-8".to_string())?;
    decode_form(protocol, raw)
}

/// The most `name=value` pairs a form may carry (the largest modelled lists, EC2's id filters,
/// stay far below it); more is an error, not a truncation.
pub const MAX_FORM_PAIRS: usize = 10_000;
/// The largest list index (`X.member.N`, `X.N`) or map entry number accepted. Indexes are kept
/// sparse, so this bounds the numbers a client may use, not an allocation.
pub const MAX_LIST_INDEX: u32 = 10_000;
/// The most dotted segments in one name: every level of nesting takes one or two.
pub const MAX_NAME_SEGMENTS: usize = 32;

/// The members of a query-protocol form as a JSON document. Dotted names nest:
///
/// - `Name.member.N…` (awsQuery) and `Name.N…` (ec2Query, and awsQuery's flattened lists) are
///   list items, ordered by `N` (1 to [`MAX_LIST_INDEX`]; gaps close up);
/// - `Name.entry.N.key` / `Name.entry.N.value…` are a map's entries;
/// - any other segment is a structure member.
///
/// `Action` and `Version` are not members. Scalars stay strings ([`crate::de::from_value`]
/// types them); botocore's empty list (`Tags=`) is an empty string, which `from_value` reads as
/// an empty list. A name given twice, or used both as a value and as a structure, is an error.
pub fn decode_form(protocol: Protocol, raw: &str) -> Result<Value, String> {
    let mut root = Node::empty();
    let mut n = 0usize;
    for (k, v) in pairs(raw) {
        if k == "Action" || k == "Version" {
            continue;
        }
        n += 1;
        if n > MAX_FORM_PAIRS {
            return Err(format!(
                "The request has more than {MAX_FORM_PAIRS} parameters"
            ));
        }
        let path: Vec<&str> = k.split('.').collect();
        if path.len() > MAX_NAME_SEGMENTS {
            return Err(format!(
                "{k}: a parameter name nests more than {MAX_NAME_SEGMENTS} levels"
            ));
        }
        if path.iter().any(|s| s.is_empty()) {
            return Err(format!("{k}: a parameter name has an empty segment"));
        }
        root.insert(protocol, &path, v)
            .map_err(|e| format!("{k}: {e}"))?;
    }
    Ok(root.into_value())
}

/// A structure's members in the order the form first names them, with an index for lookups
/// (a form of many distinct names stays linear).
#[derive(Default)]
struct Members {
    order: Vec<(String, Node)>,
    index: std::collections::HashMap<String, usize>,
}

/// A form tree before lists are ordered.
enum Node {
    Leaf(String),
    Struct(Members),
    List(BTreeMap<u32, Node>),
    Map(BTreeMap<u32, (Option<String>, Option<Node>)>),
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Struct,
    List,
    Map,
}

impl Node {
    fn empty() -> Node {
        Node::Struct(Members::default())
    }

    /// Inserts `value` at `path` below this node. An empty path sets the node itself (which must
    /// still be empty); a path that starts with a list or map wrapper (`member.N`, `N`,
    /// `entry.N`) makes it a list or a map — a member's value, a list item or a map value alike,
    /// so lists of lists and maps of lists nest; any other segment names a structure member.
    fn insert(&mut self, protocol: Protocol, path: &[&str], value: String) -> Result<(), String> {
        let Some((&head, rest)) = path.split_first() else {
            return match self {
                Node::Struct(m) if m.order.is_empty() => {
                    *self = Node::Leaf(value);
                    Ok(())
                }
                _ => Err("a parameter is given twice, or both as a value and a structure".into()),
            };
        };
        // awsQuery and EC2 member names are PascalCase, so `member` and `entry` are never members.
        let kind = if head == "member" && protocol == Protocol::AwsQuery {
            Kind::List
        } else if head == "entry" {
            Kind::Map
        } else if head.bytes().all(|b| b.is_ascii_digit()) {
            Kind::List
        } else {
            Kind::Struct
        };
        let fresh = matches!(self, Node::Struct(m) if m.order.is_empty());
        match kind {
            Kind::List if fresh => *self = Node::List(BTreeMap::new()),
            Kind::Map if fresh => *self = Node::Map(BTreeMap::new()),
            _ => {}
        }
        match (kind, self) {
            (Kind::Struct, Node::Struct(members)) => {
                let i = match members.index.get(head) {
                    Some(&i) => i,
                    None => {
                        members.order.push((head.to_string(), Node::empty()));
                        members
                            .index
                            .insert(head.to_string(), members.order.len() - 1);
                        members.order.len() - 1
                    }
                };
                members.order[i].1.insert(protocol, rest, value)
            }
            (Kind::List, Node::List(items)) => {
                // `member.N…` names the index after the wrapper; a bare `N…` is the index.
                let at = if head == "member" { rest } else { path };
                let (idx, rest) = index(at)?;
                items
                    .entry(idx)
                    .or_insert_with(Node::empty)
                    .insert(protocol, rest, value)
            }
            (Kind::Map, Node::Map(entries)) => {
                let (idx, rest) = index(rest)?;
                let entry = entries.entry(idx).or_insert((None, None));
                match rest {
                    ["key"] if entry.0.is_none() => entry.0 = Some(value),
                    ["key"] => return Err("a map entry's key is given twice".into()),
                    ["value", more @ ..] => entry
                        .1
                        .get_or_insert_with(Node::empty)
                        .insert(protocol, more, value)?,
                    _ => return Err("a map entry has only a key and a value".into()),
                }
                Ok(())
            }
            (_, Node::Leaf(_)) => Err("a parameter is both a value and a structure".into()),
            _ => Err("a parameter is used as two kinds (list, map, structure)".into()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Leaf(s) => Value::String(s),
            Node::Struct(m) => Value::Object(
                m.order
                    .into_iter()
                    .map(|(k, v)| (k, v.into_value()))
                    .collect(),
            ),
            Node::List(items) => Value::Array(items.into_values().map(Node::into_value).collect()),
            // An entry without a key has nothing to be found under; one without a value is null.
            Node::Map(entries) => Value::Object(
                entries
                    .into_values()
                    .filter_map(|(k, v)| Some((k?, v.map_or(Value::Null, Node::into_value))))
                    .collect(),
            ),
        }
    }
}

/// A list index or map entry number: 1 to [`MAX_LIST_INDEX`].
fn index<'a, 'b>(path: &'a [&'b str]) -> Result<(u32, &'a [&'b str]), String> {
    let Some((n, rest)) = path.split_first() else {
        return Err("a list item needs an index".into());
    };
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{n}' is not a list index"));
    }
    match n.parse::<u32>() {
        Ok(i) if (1..=MAX_LIST_INDEX).contains(&i) => Ok((i, rest)),
        _ => Err(format!("list index {n} is outside 1 to {MAX_LIST_INDEX}")),
    }
}

fn xml_response(status: axum::http::StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"))],
        body,
    )
        .into_response()
}

fn xmlns(service: &Service) -> String {
    match service.xml_namespace {
        Some(ns) => {
            let mut s = String::from(" xmlns=\"");
            escape(ns, &mut s);
            s.push('"');
            s
        }
        None => String::new(),
    }
}

/// The body of a successful response: `{Op}Response/{Op}Result/…` and
/// `ResponseMetadata/RequestId` (awsQuery), or `{Op}Response/…` and `requestId` (EC2). `()`,
/// `None` and an empty structure give an empty result.
pub(super) fn output<O: Serialize + ?Sized>(
    service: &Service,
    operation: &str,
    request_id: &RequestId,
    output: &O,
) -> Result<Response, XmlError> {
    let node = match xml::to_node(output)? {
        n @ (xml::Node::Struct(_) | xml::Node::Absent) => n,
        _ => {
            return Err(<XmlError as serde::ser::Error>::custom(
                "an output is not a structure",
            ));
        }
    };
    let ns = xmlns(service);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if service.protocol == Protocol::Ec2Query {
        out.push_str(&format!("<{operation}Response{ns}><requestId>"));
        escape(request_id.as_str(), &mut out);
        out.push_str("</requestId>");
        xml::write_members(&node, "item", &mut out);
        out.push_str(&format!("</{operation}Response>"));
    } else {
        out.push_str(&format!("<{operation}Response{ns}><{operation}Result>"));
        xml::write_members(&node, "member", &mut out);
        out.push_str(&format!(
            "</{operation}Result><ResponseMetadata><RequestId>"
        ));
        escape(request_id.as_str(), &mut out);
        out.push_str(&format!(
            "</RequestId></ResponseMetadata></{operation}Response>"
        ));
    }
    Ok(xml_response(axum::http::StatusCode::OK, out))
}

/// An error: `ErrorResponse/Error/{Type,Code,Message,…members}` + `RequestId` (awsQuery), or
/// `Response/Errors/Error/{Code,Message}` + `RequestID` (EC2, whose errors have no members).
pub(super) fn error(service: &Service, err: &AwsError, request_id: &RequestId) -> Response {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut code = String::new();
    escape(&err.code, &mut code);
    let mut message = String::new();
    escape(&err.public_message(request_id.as_str()), &mut message);
    let mut id = String::new();
    escape(request_id.as_str(), &mut id);
    if service.protocol == Protocol::Ec2Query {
        out.push_str(&format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
        ));
    } else {
        let fault = match err.fault() {
            Fault::Sender => "Sender",
            Fault::Receiver => "Receiver",
        };
        // The exception's other members beside the three every error has; a member that does
        // not write as XML is left out rather than failing the error response.
        let mut members = String::new();
        let others: serde_json::Map<String, Value> = err
            .members
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "Type" | "Code" | "Message" | "message"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Ok(node) = xml::to_node(&others) {
            xml::write_members(&node, "member", &mut members);
        }
        out.push_str(&format!(
            "<ErrorResponse{}><Error><Type>{fault}</Type><Code>{code}</Code><Message>{message}</Message>{members}</Error><RequestId>{id}</RequestId></ErrorResponse>",
            xmlns(service)
        ));
    }
    xml_response(err.status, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_decode_and_repeat() {
        assert_eq!(
            pairs("tagKeys=a%20b&&tagKeys=c&x=1+2&flag"),
            [
                ("tagKeys".to_string(), "a b".to_string()),
                ("tagKeys".into(), "c".into()),
                ("x".into(), "1 2".into()),
                ("flag".into(), String::new()),
            ]
        );
    }

    #[test]
    fn forms_nest_into_documents() {
        let q = Protocol::AwsQuery;
        let ec2 = Protocol::Ec2Query;
        let cases = [
            (
                q,
                "Action=X&Version=1&UserName=bob",
                r#"{"UserName":"bob"}"#,
            ),
            (
                q,
                "Tags.member.2.Key=b&Tags.member.1.Key=a&Tags.member.1.Value=1",
                r#"{"Tags":[{"Key":"a","Value":"1"},{"Key":"b"}]}"#,
            ),
            (q, "Ids.member.10=b&Ids.member.9=a", r#"{"Ids":["a","b"]}"#),
            (q, "Tags=", r#"{"Tags":""}"#),
            (
                ec2,
                "Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1&Filter.1.Value.2=vpc-2",
                r#"{"Filter":[{"Name":"vpc-id","Value":["vpc-1","vpc-2"]}]}"#,
            ),
            // EC2 has no `member` wrapper: it is a member like any other.
            (ec2, "A.member=x", r#"{"A":{"member":"x"}}"#),
            (
                q,
                "Attributes.entry.1.key=k&Attributes.entry.1.value=v&Attributes.entry.2.key=e",
                r#"{"Attributes":{"k":"v","e":null}}"#,
            ),
            (
                q,
                "M.entry.1.key=k&M.entry.1.value.A=1&M.entry.1.value.B.member.1=x",
                r#"{"M":{"k":{"A":"1","B":["x"]}}}"#,
            ),
            (q, "A.B=1&A.C=x+y%26z", r#"{"A":{"B":"1","C":"x y&z"}}"#),
            // Lists of lists, maps of lists.
            (
                q,
                "L.member.1.member.2=b&L.member.1.member.1=a&L.member.2.member.1=c",
                r#"{"L":[["a","b"],["c"]]}"#,
            ),
            (ec2, "L.1.1=a&L.2.1=b&L.2.2=c", r#"{"L":[["a"],["b","c"]]}"#),
            (
                q,
                "M.entry.1.key=k&M.entry.1.value.member.1=x&M.entry.1.value.member.2=y",
                r#"{"M":{"k":["x","y"]}}"#,
            ),
        ];
        for (protocol, form, want) in cases {
            let got = decode_form(protocol, form).unwrap();
            assert_eq!(got, serde_json::from_str::<Value>(want).unwrap(), "{form}");
        }
    }

    #[test]
    fn hostile_forms_are_refused_cheaply() {
        let deep = format!("{}=1", vec!["A"; MAX_NAME_SEGMENTS + 1].join("."));
        let many: String = (0..=MAX_FORM_PAIRS).map(|i| format!("K{i}=v&")).collect();
        let cases = [
            ("A=1&A=2", "given twice"),
            ("A=1&A.B=2", "both a value and a structure"),
            ("A.B=2&A=1", "given twice"),
            ("L.member.x=1", "not a list index"),
            ("L.member.4294967295=1", "outside 1 to 10000"),
            ("L.member.99999999999999999999=1", "outside 1 to 10000"),
            ("L.member.0=1", "outside 1 to 10000"),
            ("L.member.10001=1", "outside 1 to 10000"),
            ("L.member=1", "needs an index"),
            (
                "L.member.1=1&L.member.1.A=2",
                "both a value and a structure",
            ),
            ("L.member.1.A=1&L.member.1=2", "given twice"),
            ("L.member.1=1&L.entry.1.key=k", "two kinds"),
            ("M.entry.1.key=a&M.entry.1.key=b", "key is given twice"),
            ("M.entry.1.other=a", "only a key and a value"),
            ("A..B=1", "empty segment"),
            (deep.as_str(), "nests more than"),
            (many.as_str(), "more than 10000 parameters"),
        ];
        for (form, want) in cases {
            let e = decode_form(Protocol::AwsQuery, form).unwrap_err();
            assert!(e.contains(want), "{}: {e}", &form[..form.len().min(60)]);
        }
        // At the limit is fine.
        let ok: String = (1..=MAX_FORM_PAIRS)
            .map(|i| format!("L.member.{i}=v&"))
            .collect();
        let v = decode_form(Protocol::AwsQuery, &ok).unwrap();
        assert_eq!(v["L"].as_array().unwrap().len(), MAX_FORM_PAIRS);
    }
}

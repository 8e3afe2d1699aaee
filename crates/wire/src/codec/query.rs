//! `awsQuery` and `ec2Query`: a form body (`Action`, `Version`, members flattened with dotted
//! names) in; XML out (`{Op}Response/{Op}Result` + `ResponseMetadata/RequestId` for awsQuery,
//! `{Op}Response` + `requestId` for EC2); errors as `ErrorResponse/Error` or
//! `Response/Errors/Error` + `RequestID`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use bytes::Bytes;
use serde_json::Value;

use crate::error::{AwsError, Fault};
use crate::request_id::RequestId;
use crate::service::{Protocol, Service};

/// `application/x-www-form-urlencoded` pairs, decoded (`+` is a space).
pub(crate) fn pairs(raw: &str) -> Vec<(String, String)> {
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

/// The members of a query-protocol form as a JSON document. Dotted names nest: a numeric segment
/// is a list index (`Filter.1.Name`, `Tags.member.1.Key`: `member` is awsQuery's list wrapper),
/// `entry.N.key` / `entry.N.value` are a map's entries. `Action` and `Version` are not members.
pub fn decode_form(protocol: Protocol, raw: &str) -> Result<Value, String> {
    let _ = protocol;
    let mut root = Node::Struct(Vec::new());
    for (k, v) in pairs(raw) {
        if k == "Action" || k == "Version" {
            continue;
        }
        let path: Vec<&str> = k.split('.').collect();
        root.insert(&path, v).map_err(|e| format!("{k}: {e}"))?;
    }
    Ok(root.into_value())
}

/// A form tree before lists are ordered.
enum Node {
    Leaf(String),
    Struct(Vec<(String, Node)>),
    List(Vec<(u32, Node)>),
    Map(Vec<(u32, Option<String>, Option<Node>)>),
}

impl Node {
    fn insert(&mut self, path: &[&str], value: String) -> Result<(), String> {
        let Some((&head, rest)) = path.split_first() else {
            return match self {
                Node::Struct(m) if m.is_empty() => {
                    *self = Node::Leaf(value);
                    Ok(())
                }
                _ => Err("a member is given twice".into()),
            };
        };
        match self {
            Node::Struct(members) => {
                // `Name.member.N` / `Name.N` is a list, `Name.entry.N` a map.
                let (kind, rest) = match rest.first() {
                    Some(&"member") | Some(&"item") => (1, &rest[1..]),
                    Some(&"entry") => (2, &rest[1..]),
                    Some(s) if s.parse::<u32>().is_ok() => (1, rest),
                    _ => (0, rest),
                };
                let idx = members.iter().position(|(k, _)| k == head);
                let i = match idx {
                    Some(i) => i,
                    None => {
                        let n = match kind {
                            1 => Node::List(Vec::new()),
                            2 => Node::Map(Vec::new()),
                            _ => Node::Struct(Vec::new()),
                        };
                        members.push((head.to_string(), n));
                        members.len() - 1
                    }
                };
                if kind == 0 && rest.is_empty() {
                    return members[i].1.insert(&[], value);
                }
                members[i].1.insert_child(kind, rest, value)
            }
            _ => Err("a member is both a value and a structure".into()),
        }
    }

    fn insert_child(&mut self, kind: u8, path: &[&str], value: String) -> Result<(), String> {
        match (kind, self) {
            (0, n @ Node::Struct(_)) => n.insert(path, value),
            (1, Node::List(items)) => {
                let (idx, rest) = index(path)?;
                let pos = match items.iter().position(|(i, _)| *i == idx) {
                    Some(p) => p,
                    None => {
                        items.push((idx, Node::Struct(Vec::new())));
                        items.len() - 1
                    }
                };
                if rest.is_empty() {
                    items[pos].1.insert(&[], value)
                } else {
                    items[pos].1.insert(rest, value)
                }
            }
            (2, Node::Map(entries)) => {
                let (idx, rest) = index(path)?;
                let pos = match entries.iter().position(|(i, _, _)| *i == idx) {
                    Some(p) => p,
                    None => {
                        entries.push((idx, None, None));
                        entries.len() - 1
                    }
                };
                match rest {
                    ["key"] => entries[pos].1 = Some(value),
                    ["value"] => {
                        let mut n = Node::Struct(Vec::new());
                        n.insert(&[], value)?;
                        entries[pos].2 = Some(n);
                    }
                    ["value", more @ ..] => {
                        let n = entries[pos]
                            .2
                            .get_or_insert_with(|| Node::Struct(Vec::new()));
                        n.insert(more, value)?;
                    }
                    _ => return Err("a map entry has only key and value".into()),
                }
                Ok(())
            }
            _ => Err("a member is used as two different kinds".into()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Leaf(s) => Value::String(s),
            Node::Struct(m) => {
                Value::Object(m.into_iter().map(|(k, v)| (k, v.into_value())).collect())
            }
            Node::List(mut items) => {
                items.sort_by_key(|(i, _)| *i);
                Value::Array(items.into_iter().map(|(_, v)| v.into_value()).collect())
            }
            Node::Map(mut entries) => {
                entries.sort_by_key(|(i, _, _)| *i);
                Value::Object(
                    entries
                        .into_iter()
                        .filter_map(|(_, k, v)| Some((k?, v.map_or(Value::Null, Node::into_value))))
                        .collect(),
                )
            }
        }
    }
}

fn index<'a, 'b>(path: &'a [&'b str]) -> Result<(u32, &'a [&'b str]), String> {
    match path.split_first() {
        Some((n, rest)) => n
            .parse::<u32>()
            .map(|i| (i, rest))
            .map_err(|_| format!("'{n}' is not a list index")),
        None => Err("a list member needs an index".into()),
    }
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// Writes the members of `value` (an object) as XML elements. Lists wrap their items in
/// `<member>` (awsQuery) or `<item>` (EC2).
fn write_members(value: &Value, item: &str, out: &mut String) {
    if let Value::Object(m) = value {
        for (k, v) in m {
            if v.is_null() {
                continue;
            }
            out.push('<');
            out.push_str(k);
            out.push('>');
            write_value(v, item, out);
            out.push_str("</");
            out.push_str(k);
            out.push('>');
        }
    }
}

fn write_value(v: &Value, item: &str, out: &mut String) {
    match v {
        Value::Object(_) => write_members(v, item, out),
        Value::Array(a) => {
            for x in a {
                out.push('<');
                out.push_str(item);
                out.push('>');
                write_value(x, item, out);
                out.push_str("</");
                out.push_str(item);
                out.push('>');
            }
        }
        Value::String(s) => xml_escape(s, out),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Null => {}
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
            xml_escape(ns, &mut s);
            s.push('"');
            s
        }
        None => String::new(),
    }
}

pub(super) fn output(
    service: &Service,
    operation: &str,
    request_id: &RequestId,
    value: Value,
) -> Response {
    let ns = xmlns(service);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if service.protocol == Protocol::Ec2Query {
        out.push_str(&format!("<{operation}Response{ns}><requestId>"));
        xml_escape(request_id.as_str(), &mut out);
        out.push_str("</requestId>");
        write_members(&value, "item", &mut out);
        out.push_str(&format!("</{operation}Response>"));
    } else {
        out.push_str(&format!("<{operation}Response{ns}><{operation}Result>"));
        write_members(&value, "member", &mut out);
        out.push_str(&format!(
            "</{operation}Result><ResponseMetadata><RequestId>"
        ));
        xml_escape(request_id.as_str(), &mut out);
        out.push_str(&format!(
            "</RequestId></ResponseMetadata></{operation}Response>"
        ));
    }
    xml_response(axum::http::StatusCode::OK, out)
}

pub(super) fn error(service: &Service, err: &AwsError, request_id: &RequestId) -> Response {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let mut code = String::new();
    xml_escape(&err.code, &mut code);
    let mut message = String::new();
    xml_escape(&err.public_message(request_id.as_str()), &mut message);
    let mut id = String::new();
    xml_escape(request_id.as_str(), &mut id);
    if service.protocol == Protocol::Ec2Query {
        out.push_str(&format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{id}</RequestID></Response>"
        ));
    } else {
        let fault = match err.fault() {
            Fault::Sender => "Sender",
            Fault::Receiver => "Receiver",
        };
        out.push_str(&format!(
            "<ErrorResponse{}><Error><Type>{fault}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{id}</RequestId></ErrorResponse>",
            xmlns(service)
        ));
    }
    xml_response(err.status, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_nest_into_documents() {
        let cases = [
            ("Action=X&UserName=bob", r#"{"UserName":"bob"}"#),
            (
                "Tags.member.2.Key=b&Tags.member.1.Key=a&Tags.member.1.Value=1",
                r#"{"Tags":[{"Key":"a","Value":"1"},{"Key":"b"}]}"#,
            ),
            (
                "Filter.1.Name=vpc-id&Filter.1.Value.1=vpc-1&Filter.1.Value.2=vpc-2",
                r#"{"Filter":[{"Name":"vpc-id","Value":["vpc-1","vpc-2"]}]}"#,
            ),
            (
                "Attributes.entry.1.key=k&Attributes.entry.1.value=v",
                r#"{"Attributes":{"k":"v"}}"#,
            ),
            ("A.B=1&A.C=x+y", r#"{"A":{"B":"1","C":"x y"}}"#),
        ];
        for (form, want) in cases {
            let got = decode_form(Protocol::AwsQuery, form).unwrap();
            assert_eq!(got, serde_json::from_str::<Value>(want).unwrap(), "{form}");
        }
        for bad in ["A=1&A=2", "A=1&A.B=2", "L.member.x=1"] {
            assert!(decode_form(Protocol::AwsQuery, bad).is_err(), "{bad}");
        }
    }
}

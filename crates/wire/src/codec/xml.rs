//! The query protocols' XML bodies, written straight from an output's `Serialize` impl.
//!
//! JSON cannot tell a structure from a map (both are objects), but XML writes them differently:
//! a structure's members are elements named after them, a map is `<entry><key/><value/></entry>`
//! elements. So an output type marks its maps: a map member is wrapped in [`Map`], which JSON
//! writes as the plain object it wraps and this writer as entries. Every other object — a
//! struct, a `serde_json::Value` object, a `HashMap`, a `#[serde(flatten)]`ed struct — is a
//! structure. [`Timestamp`] is the same kind of marker: epoch seconds in JSON (the JSON
//! protocols' default `unixTimestamp`), ISO-8601 here. Blobs (`serialize_bytes`) are base64.
//! Lists are `<member>` (awsQuery) or `<item>` (EC2) elements; botocore reads a non-flattened
//! list's children whatever their name, so the name is for other readers.

use std::fmt::Write as _;

use base64::Engine as _;
use serde::ser::{self, Serialize};

/// The newtype-struct name that marks a [`Map`] for this writer.
pub(crate) const MAP_MARKER: &str = "$trellis_wire::Map";
/// The newtype-struct name that marks a [`Timestamp`] for this writer.
pub(crate) const TIMESTAMP_MARKER: &str = "$trellis_wire::Timestamp";

/// A map member of an output (`HashMap`, `BTreeMap`, anything serde writes as a map). The JSON
/// protocols write the map itself; the query protocols write `<entry><key>…</key><value>…
/// </value></entry>` for each entry. An unwrapped map would be written as a structure (one
/// element per key), which botocore does not read as a map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Map<T>(pub T);

impl<T: Serialize> Serialize for Map<T> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(MAP_MARKER, &self.0)
    }
}

/// A timestamp member of an output, as seconds since the Unix epoch (millisecond precision is
/// kept). JSON protocols write the number, the query protocols ISO-8601 UTC
/// (`2024-05-01T12:00:00Z`, `…:00.250Z` when there are milliseconds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timestamp(pub f64);

impl Timestamp {
    pub fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp(ms as f64 / 1000.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(TIMESTAMP_MARKER, &self.0)
    }
}

/// An output as XML sees it.
#[derive(Debug, PartialEq)]
pub(crate) enum Node {
    /// `None`, unit: the member is left out.
    Absent,
    Text(String),
    Struct(Vec<(String, Node)>),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Why an output could not be written as XML (a programming error in an output type).
#[derive(Debug)]
pub(crate) struct XmlError(String);

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for XmlError {}

impl ser::Error for XmlError {
    fn custom<T: std::fmt::Display>(msg: T) -> XmlError {
        XmlError(msg.to_string())
    }
}

/// The output's tree.
pub(crate) fn to_node<T: Serialize + ?Sized>(value: &T) -> Result<Node, XmlError> {
    value.serialize(NodeSerializer)
}

/// Appends `s` as XML character data. Characters XML 1.0 cannot carry at all (controls other
/// than tab, newline and carriage return) become U+FFFD; a carriage return is written as a
/// reference so that the reader's line-end normalisation keeps it.
pub(crate) fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Writes a structure's members as elements; `item` names list items.
pub(crate) fn write_members(node: &Node, item: &str, out: &mut String) {
    if let Node::Struct(members) = node {
        for (name, v) in members {
            write_element(name, v, item, out);
        }
    }
}

fn write_element(name: &str, node: &Node, item: &str, out: &mut String) {
    if *node == Node::Absent {
        return;
    }
    out.push('<');
    out.push_str(name);
    out.push('>');
    write_content(node, item, out);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn write_content(node: &Node, item: &str, out: &mut String) {
    match node {
        Node::Absent => {}
        Node::Text(s) => escape(s, out),
        Node::Struct(_) => write_members(node, item, out),
        Node::List(items) => {
            for x in items {
                // An absent list item still takes its place.
                out.push('<');
                out.push_str(item);
                out.push('>');
                write_content(x, item, out);
                out.push_str("</");
                out.push_str(item);
                out.push('>');
            }
        }
        Node::Map(entries) => {
            for (k, v) in entries {
                out.push_str("<entry>");
                write_element("key", k, item, out);
                write_element("value", v, item, out);
                out.push_str("</entry>");
            }
        }
    }
}

/// ISO-8601 UTC for seconds since the epoch, to the millisecond.
pub(crate) fn iso8601(secs: f64) -> Result<String, XmlError> {
    if !secs.is_finite() {
        return Err(XmlError(format!("timestamp {secs} is not a time")));
    }
    let ms = (secs * 1000.0).round() as i128;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000)
        .map_err(|e| XmlError(format!("timestamp {secs}: {e}")))?;
    let mut s = String::new();
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if t.millisecond() != 0 {
        let _ = write!(s, ".{:03}", t.millisecond());
    }
    s.push('Z');
    Ok(s)
}

fn float_text(f: f64) -> String {
    // botocore reads floats with Python's float(), which spells the non-finite ones like this.
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

struct NodeSerializer;

type R = Result<Node, XmlError>;

impl ser::Serializer for NodeSerializer {
    type Ok = Node;
    type Error = XmlError;
    type SerializeSeq = ListBuilder;
    type SerializeTuple = ListBuilder;
    type SerializeTupleStruct = ListBuilder;
    type SerializeTupleVariant = VariantBuilder<ListBuilder>;
    type SerializeMap = StructFromMap;
    type SerializeStruct = StructBuilder;
    type SerializeStructVariant = VariantBuilder<StructBuilder>;

    fn serialize_bool(self, v: bool) -> R {
        Ok(Node::Text(if v { "true" } else { "false" }.into()))
    }
    fn serialize_i8(self, v: i8) -> R {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> R {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> R {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> R {
        Ok(Node::Text(v.to_string()))
    }
    fn serialize_i128(self, v: i128) -> R {
        Ok(Node::Text(v.to_string()))
    }
    fn serialize_u8(self, v: u8) -> R {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> R {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> R {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> R {
        Ok(Node::Text(v.to_string()))
    }
    fn serialize_u128(self, v: u128) -> R {
        Ok(Node::Text(v.to_string()))
    }
    fn serialize_f32(self, v: f32) -> R {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> R {
        Ok(Node::Text(float_text(v)))
    }
    fn serialize_char(self, v: char) -> R {
        Ok(Node::Text(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> R {
        Ok(Node::Text(v.to_string()))
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        Ok(Node::Text(
            base64::engine::general_purpose::STANDARD.encode(v),
        ))
    }
    fn serialize_none(self) -> R {
        Ok(Node::Absent)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(Node::Absent)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        Ok(Node::Struct(Vec::new()))
    }
    fn serialize_unit_variant(self, _name: &'static str, _i: u32, variant: &'static str) -> R {
        Ok(Node::Text(variant.to_string()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, name: &'static str, v: &T) -> R {
        match name {
            MAP_MARKER => match v.serialize(MapSerializer)? {
                n @ (Node::Map(_) | Node::Absent) => Ok(n),
                _ => Err(XmlError("a Map member does not serialize as a map".into())),
            },
            TIMESTAMP_MARKER => match v.serialize(NodeSerializer)? {
                Node::Text(t) => {
                    let secs: f64 = t
                        .parse()
                        .map_err(|_| XmlError(format!("timestamp {t:?} is not a number")))?;
                    Ok(Node::Text(iso8601(secs)?))
                }
                _ => Err(XmlError("a Timestamp is not a number".into())),
            },
            _ => v.serialize(self),
        }
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        v: &T,
    ) -> R {
        Ok(Node::Struct(vec![(variant.to_string(), to_node(v)?)]))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ListBuilder, XmlError> {
        Ok(ListBuilder(Vec::with_capacity(len.unwrap_or(0).min(1024))))
    }
    fn serialize_tuple(self, len: usize) -> Result<ListBuilder, XmlError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _n: &'static str, len: usize) -> Result<ListBuilder, XmlError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantBuilder<ListBuilder>, XmlError> {
        Ok(VariantBuilder {
            variant,
            inner: self.serialize_seq(Some(len))?,
        })
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<StructFromMap, XmlError> {
        Ok(StructFromMap {
            members: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _n: &'static str, _len: usize) -> Result<StructBuilder, XmlError> {
        Ok(StructBuilder(Vec::new()))
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<VariantBuilder<StructBuilder>, XmlError> {
        Ok(VariantBuilder {
            variant,
            inner: StructBuilder(Vec::new()),
        })
    }
}

struct ListBuilder(Vec<Node>);

impl ser::SerializeSeq for ListBuilder {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), XmlError> {
        self.0.push(to_node(v)?);
        Ok(())
    }
    fn end(self) -> R {
        Ok(Node::List(self.0))
    }
}

impl ser::SerializeTuple for ListBuilder {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), XmlError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> R {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for ListBuilder {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), XmlError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> R {
        ser::SerializeSeq::end(self)
    }
}

struct StructBuilder(Vec<(String, Node)>);

impl ser::SerializeStruct for StructBuilder {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), XmlError> {
        self.0.push((key.to_string(), to_node(v)?));
        Ok(())
    }
    fn end(self) -> R {
        Ok(Node::Struct(self.0))
    }
}

/// `{ "Variant": … }`, as serde_json writes externally tagged variants.
struct VariantBuilder<B> {
    variant: &'static str,
    inner: B,
}

impl ser::SerializeTupleVariant for VariantBuilder<ListBuilder> {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), XmlError> {
        ser::SerializeSeq::serialize_element(&mut self.inner, v)
    }
    fn end(self) -> R {
        Ok(Node::Struct(vec![(
            self.variant.to_string(),
            ser::SerializeSeq::end(self.inner)?,
        )]))
    }
}

impl ser::SerializeStructVariant for VariantBuilder<StructBuilder> {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), XmlError> {
        ser::SerializeStruct::serialize_field(&mut self.inner, key, v)
    }
    fn end(self) -> R {
        Ok(Node::Struct(vec![(
            self.variant.to_string(),
            ser::SerializeStruct::end(self.inner)?,
        )]))
    }
}

/// A map that is not marked with [`Map`]: a structure whose member names are the keys.
struct StructFromMap {
    members: Vec<(String, Node)>,
    key: Option<String>,
}

impl ser::SerializeMap for StructFromMap {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), XmlError> {
        match to_node(k)? {
            Node::Text(s) => {
                self.key = Some(s);
                Ok(())
            }
            _ => Err(XmlError("a structure member's name is not a string".into())),
        }
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), XmlError> {
        let k = self
            .key
            .take()
            .ok_or_else(|| XmlError("a value without a name".into()))?;
        if !is_xml_name(&k) {
            return Err(XmlError(format!("{k:?} is not an XML element name")));
        }
        self.members.push((k, to_node(v)?));
        Ok(())
    }
    fn end(self) -> R {
        Ok(Node::Struct(self.members))
    }
}

/// Whether `s` can be an element name as written (member names are ASCII identifiers in every
/// AWS model; anything else in a structure is an output type's mistake, not data to escape).
fn is_xml_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Serializes the inside of a [`Map`]: only a map (or `None`) is accepted.
struct MapSerializer;

macro_rules! not_a_map {
    ($($method:ident($($arg:ty),*);)*) => {$(
        fn $method(self, $(_: $arg),*) -> R {
            Err(XmlError("a Map member does not serialize as a map".into()))
        }
    )*};
}

impl ser::Serializer for MapSerializer {
    type Ok = Node;
    type Error = XmlError;
    type SerializeSeq = ser::Impossible<Node, XmlError>;
    type SerializeTuple = ser::Impossible<Node, XmlError>;
    type SerializeTupleStruct = ser::Impossible<Node, XmlError>;
    type SerializeTupleVariant = ser::Impossible<Node, XmlError>;
    type SerializeMap = MapBuilder;
    type SerializeStruct = ser::Impossible<Node, XmlError>;
    type SerializeStructVariant = ser::Impossible<Node, XmlError>;

    not_a_map! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_u8(u8); serialize_u16(u16); serialize_u32(u32);
        serialize_u64(u64); serialize_f32(f32); serialize_f64(f64); serialize_char(char);
        serialize_str(&str); serialize_bytes(&[u8]); serialize_unit();
        serialize_unit_struct(&'static str); serialize_unit_variant(&'static str, u32, &'static str);
    }

    fn serialize_none(self) -> R {
        Ok(Node::Absent)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _n: &'static str, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _value: &T,
    ) -> R {
        Err(XmlError("a Map member does not serialize as a map".into()))
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, XmlError> {
        Err(XmlError("a Map member does not serialize as a map".into()))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, XmlError> {
        Err(XmlError("a Map member does not serialize as a map".into()))
    }
    fn serialize_tuple_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, XmlError> {
        Err(XmlError("a Map member does not serialize as a map".into()))
    }
    fn serialize_tuple_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, XmlError> {
        Err(XmlError("a Map member does not serialize as a map".into()))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<MapBuilder, XmlError> {
        Ok(MapBuilder {
            entries: Vec::new(),
            key: None,
        })
    }
    fn serialize_struct(
        self,
        _n: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, XmlError> {
        Err(XmlError("a Map member does not serialize as a map".into()))
    }
    fn serialize_struct_variant(
        self,
        _n: &'static str,
        _i: u32,
        _v: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, XmlError> {
        Err(XmlError("a Map member does not serialize as a map".into()))
    }
}

struct MapBuilder {
    entries: Vec<(Node, Node)>,
    key: Option<Node>,
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Node;
    type Error = XmlError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), XmlError> {
        self.key = Some(to_node(k)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), XmlError> {
        let k = self
            .key
            .take()
            .ok_or_else(|| XmlError("a value without a key".into()))?;
        self.entries.push((k, to_node(v)?));
        Ok(())
    }
    fn end(self) -> R {
        Ok(Node::Map(self.entries))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct User {
        user_name: String,
        path: Option<String>,
        create_date: Timestamp,
        tags: Vec<Tag>,
        summary: Map<BTreeMap<String, i32>>,
        plain: BTreeMap<String, String>,
        enabled: bool,
        kind: Kind,
        blob: Blob,
        ratio: f64,
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        value: String,
    }

    #[derive(Serialize)]
    enum Kind {
        Admin,
    }

    struct Blob(Vec<u8>);

    impl Serialize for Blob {
        fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    fn xml<T: Serialize>(v: &T, item: &str) -> String {
        let mut out = String::new();
        write_members(&to_node(v).unwrap(), item, &mut out);
        out
    }

    #[test]
    fn outputs_write_as_botocore_reads_them() {
        let user = User {
            user_name: "a<b&c".into(),
            path: None,
            create_date: Timestamp::from_unix_millis(1_700_000_000_250),
            tags: vec![
                Tag {
                    key: "k".into(),
                    value: "v".into(),
                },
                Tag {
                    key: "k2".into(),
                    value: "\"'".into(),
                },
            ],
            summary: Map(BTreeMap::from([("Users".into(), 3), ("Groups".into(), 0)])),
            plain: BTreeMap::from([("Inner".into(), "x".into())]),
            enabled: false,
            kind: Kind::Admin,
            blob: Blob(b"hi".to_vec()),
            ratio: 0.5,
        };
        assert_eq!(
            xml(&user, "member"),
            "<UserName>a&lt;b&amp;c</UserName>\
             <CreateDate>2023-11-14T22:13:20.250Z</CreateDate>\
             <Tags><member><Key>k</Key><Value>v</Value></member>\
             <member><Key>k2</Key><Value>&quot;&apos;</Value></member></Tags>\
             <Summary><entry><key>Groups</key><value>0</value></entry>\
             <entry><key>Users</key><value>3</value></entry></Summary>\
             <Plain><Inner>x</Inner></Plain>\
             <Enabled>false</Enabled><Kind>Admin</Kind><Blob>aGk=</Blob><Ratio>0.5</Ratio>"
        );
        // JSON sees through both markers.
        let j = serde_json::to_value(&user).unwrap();
        assert_eq!(j["CreateDate"], json!(1_700_000_000.25));
        assert_eq!(j["Summary"], json!({"Groups": 0, "Users": 3}));
    }

    #[test]
    fn values_and_edges() {
        let cases: Vec<(serde_json::Value, &str, &str)> = vec![
            (
                json!({"A": [1, 2]}),
                "item",
                "<A><item>1</item><item>2</item></A>",
            ),
            (json!({"A": null, "B": true}), "member", "<B>true</B>"),
            (
                json!({"A": "x\r\ny\u{1}"}),
                "member",
                "<A>x&#13;\ny\u{FFFD}</A>",
            ),
            (
                json!({"A": {"B": {"C": "d"}}}),
                "member",
                "<A><B><C>d</C></B></A>",
            ),
            (json!({"A": []}), "member", "<A></A>"),
        ];
        for (v, item, want) in cases {
            assert_eq!(xml(&v, item), want, "{v}");
        }
        assert!(to_node(&json!({"not a name": 1})).is_err());
        assert!(to_node(&Map(vec![1])).is_err());
        assert_eq!(iso8601(0.0).unwrap(), "1970-01-01T00:00:00Z");
        assert!(iso8601(f64::NAN).is_err());
        assert_eq!(float_text(f64::INFINITY), "Infinity");
    }
}

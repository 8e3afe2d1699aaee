//! Turning a decoded input document into the operation's typed input.
//!
//! Query strings, URI labels and form bodies carry every scalar as a string, and a REST query
//! list given once (`?tagKeys=a`) is a single value; typed inputs ask for numbers, booleans and
//! lists. [`from_value`] is `serde_json::from_value` with exactly those two allowances, made
//! where the target type asks for them (so a JSON body's `"5"` still fails for a string member
//! only if the type asks for a number and the text is not one):
//!
//! - a string where an integer, a float or a boolean is asked for is parsed (`"5"`, `"1.5"`,
//!   `"true"`); text that does not parse is an error naming the member;
//! - a scalar where a sequence is asked for is a one-element list, and an empty string is an
//!   empty list (botocore's query serializer sends an empty list as `Tags=`).
//!
//! Everything else is serde_json's behaviour: structs, `Option`, enums as strings, maps, unknown
//! fields ignored unless the type denies them. Errors name the member's path (`Filters[0].Max`).
//! Types that buffer their input (`#[serde(flatten)]`, untagged enums) see serde's own
//! deserializer inside the buffered part and get no coercion there.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer as _, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};
use serde_json::{Map, Value};

/// The typed input of an operation from its decoded members.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    T::deserialize(Lenient {
        value,
        path: String::new(),
    })
}

type Error = serde_json::Error;

/// A value and where it sits in the input, for error messages.
struct Lenient {
    value: Value,
    path: String,
}

impl Lenient {
    fn child(&self, value: Value, key: &str) -> Lenient {
        let path = if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        };
        Lenient { value, path }
    }

    fn element(&self, value: Value, i: usize) -> Lenient {
        Lenient {
            value,
            path: format!("{}[{i}]", self.path),
        }
    }

    fn error(&self, msg: impl std::fmt::Display) -> Error {
        at(de::Error::custom(msg), &self.path)
    }
}

/// Names the member an error happened at, once (the innermost member wins).
fn at(e: Error, path: &str) -> Error {
    let text = e.to_string();
    if path.is_empty() || text.contains(" at `") {
        e
    } else {
        de::Error::custom(format!("{text} at `{path}`"))
    }
}

/// A scalar's text as the target type, or an error naming the type asked for.
fn parse<T: std::str::FromStr>(l: &Lenient, s: &str, what: &str) -> Result<T, Error> {
    s.trim()
        .parse::<T>()
        .map_err(|_| l.error(format_args!("{s:?} is not {what}")))
}

macro_rules! coerce_number {
    ($($method:ident => $ty:ty, $visit:ident, $what:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match &self.value {
                Value::String(s) => {
                    let n: $ty = parse(&self, s, $what)?;
                    visitor.$visit(n).map_err(|e| at(e, &self.path))
                }
                _ => {
                    let path = self.path;
                    self.value.$method(visitor).map_err(|e| at(e, &path))
                }
            }
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Lenient {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visit_seq(items, &self.path, visitor),
            Value::Object(members) => visit_map(members, &self.path, visitor),
            other => {
                let path = self.path;
                other.deserialize_any(visitor).map_err(|e| at(e, &path))
            }
        }
    }

    coerce_number! {
        deserialize_i8 => i64, visit_i64, "an integer";
        deserialize_i16 => i64, visit_i64, "an integer";
        deserialize_i32 => i64, visit_i64, "an integer";
        deserialize_i64 => i64, visit_i64, "an integer";
        deserialize_i128 => i128, visit_i128, "an integer";
        deserialize_u8 => u64, visit_u64, "a non-negative integer";
        deserialize_u16 => u64, visit_u64, "a non-negative integer";
        deserialize_u32 => u64, visit_u64, "a non-negative integer";
        deserialize_u64 => u64, visit_u64, "a non-negative integer";
        deserialize_u128 => u128, visit_u128, "a non-negative integer";
        deserialize_f32 => f64, visit_f64, "a number";
        deserialize_f64 => f64, visit_f64, "a number";
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.value {
            Value::String(s) => {
                let b = if s.eq_ignore_ascii_case("true") {
                    true
                } else if s.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(self.error(format_args!("{s:?} is not a boolean (true or false)")));
                };
                visitor.visit_bool(b)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Value::Array(items) => visit_seq(items, &self.path, visitor),
            // The query protocols' empty list.
            Value::String(s) if s.is_empty() => visit_seq(Vec::new(), &self.path, visitor),
            v @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
                visit_seq(vec![v], &self.path, visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Value::String(s) => visitor
                .visit_enum(s.into_deserializer())
                .map_err(|e: Error| at(e, &self.path)),
            Value::Object(m) if m.len() == 1 => {
                let (variant, value) = m.into_iter().next().expect("one member");
                let path = self.path.clone();
                visitor
                    .visit_enum(Enum {
                        variant,
                        value: Lenient {
                            value,
                            path: self.path,
                        },
                    })
                    .map_err(|e| at(e, &path))
            }
            _ => Err(self.error("expected an enum value (a string)")),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct map struct identifier
    }
}

fn visit_seq<'de, V: Visitor<'de>>(
    items: Vec<Value>,
    path: &str,
    visitor: V,
) -> Result<V::Value, Error> {
    let len = items.len();
    let parent = Lenient {
        value: Value::Null,
        path: path.to_string(),
    };
    let mut seq = Seq {
        items: items.into_iter().enumerate(),
        parent,
    };
    let out = visitor.visit_seq(&mut seq).map_err(|e| at(e, path))?;
    if seq.items.next().is_some() {
        return Err(at(de::Error::invalid_length(len, &"fewer elements"), path));
    }
    Ok(out)
}

fn visit_map<'de, V: Visitor<'de>>(
    members: Map<String, Value>,
    path: &str,
    visitor: V,
) -> Result<V::Value, Error> {
    let parent = Lenient {
        value: Value::Null,
        path: path.to_string(),
    };
    let mut map = Members {
        members: members.into_iter(),
        next: None,
        parent,
    };
    visitor.visit_map(&mut map).map_err(|e| at(e, path))
}

struct Seq {
    items: std::iter::Enumerate<std::vec::IntoIter<Value>>,
    parent: Lenient,
}

impl<'de> SeqAccess<'de> for Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some((i, v)) => seed.deserialize(self.parent.element(v, i)).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Members {
    members: serde_json::map::IntoIter,
    next: Option<(String, Value)>,
    parent: Lenient,
}

impl<'de> MapAccess<'de> for Members {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.members.next() {
            Some((k, v)) => {
                let key = seed.deserialize(MapKey(k.clone()))?;
                self.next = Some((k, v));
                Ok(Some(key))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let (k, v) = self
            .next
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("a value without a key"))?;
        seed.deserialize(self.parent.child(v, &k))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

macro_rules! key_as_scalar {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            Lenient { value: Value::String(self.0), path: String::new() }.$method(visitor)
        }
    )*};
}

/// A map key: a string, parsed where the map's key type is a number (`HashMap<u32, _>`), as
/// serde_json does for keys in JSON text.
struct MapKey(String);

impl<'de> de::Deserializer<'de> for MapKey {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self.0.into_deserializer())
    }

    key_as_scalar! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf option unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Enum {
    variant: String,
    value: Lenient,
}

impl<'de> EnumAccess<'de> for Enum {
    type Error = Error;
    type Variant = Lenient;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Lenient), Error> {
        let v = seed.deserialize(self.variant.into_deserializer())?;
        Ok((v, self.value))
    }
}

impl<'de> VariantAccess<'de> for Lenient {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Input {
        name: Option<String>,
        max_results: Option<i32>,
        weight: Option<u8>,
        ratio: Option<f64>,
        enabled: Option<bool>,
        tag_keys: Option<Vec<String>>,
        ports: Option<Vec<u16>>,
        filters: Option<Vec<Filter>>,
        tags: Option<BTreeMap<String, String>>,
        kind: Option<Kind>,
        id: Option<Id>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Filter {
        name: String,
        values: Vec<String>,
        max: Option<i64>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Kind {
        Http,
        Https,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Id(u32);

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Strict {
        a: Option<i32>,
    }

    fn empty() -> Input {
        serde_json::from_value(json!({})).unwrap()
    }

    /// One case: an input document and the typed input it must give, or the text its error
    /// must contain.
    fn check(doc: Value, want: Result<Input, &str>) {
        let got = from_value::<Input>(doc.clone());
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{doc}"),
            (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{doc}: {e} lacks {w:?}"),
            (g, w) => panic!("{doc}: got {g:?}, want {w:?}"),
        }
    }

    #[test]
    fn strings_become_what_the_type_asks_for() {
        let cases: Vec<(Value, Result<Input, &str>)> = vec![
            (
                json!({"maxResults": "10", "weight": "255", "ratio": "1.5", "enabled": "true"}),
                Ok(Input {
                    max_results: Some(10),
                    weight: Some(255),
                    ratio: Some(1.5),
                    enabled: Some(true),
                    ..empty()
                }),
            ),
            (
                json!({"maxResults": -3, "enabled": false, "ratio": 2}),
                Ok(Input {
                    max_results: Some(-3),
                    enabled: Some(false),
                    ratio: Some(2.0),
                    ..empty()
                }),
            ),
            (
                json!({"enabled": "FALSE", "name": "x"}),
                Ok(Input {
                    enabled: Some(false),
                    name: Some("x".into()),
                    ..empty()
                }),
            ),
            (
                json!({"maxResults": "ten"}),
                Err("\"ten\" is not an integer at `maxResults`"),
            ),
            (json!({"maxResults": "1.5"}), Err("is not an integer")),
            (json!({"maxResults": "99999999999"}), Err("maxResults")),
            (json!({"weight": "256"}), Err("weight")),
            (
                json!({"weight": "-1"}),
                Err("is not a non-negative integer"),
            ),
            (json!({"ratio": "fast"}), Err("is not a number at `ratio`")),
            (json!({"enabled": "yes"}), Err("is not a boolean")),
            // A string member stays a string: no coercion the other way.
            (
                json!({"name": 5}),
                Err("invalid type: integer `5`, expected a string"),
            ),
        ];
        for (doc, want) in cases {
            check(doc, want);
        }
    }

    #[test]
    fn sequences_accept_one_scalar() {
        let cases: Vec<(Value, Result<Input, &str>)> = vec![
            (
                json!({"tagKeys": "a"}),
                Ok(Input {
                    tag_keys: Some(vec!["a".into()]),
                    ..empty()
                }),
            ),
            (
                json!({"tagKeys": ["a", "b"]}),
                Ok(Input {
                    tag_keys: Some(vec!["a".into(), "b".into()]),
                    ..empty()
                }),
            ),
            (
                json!({"tagKeys": ""}),
                Ok(Input {
                    tag_keys: Some(vec![]),
                    ..empty()
                }),
            ),
            (
                json!({"ports": "443"}),
                Ok(Input {
                    ports: Some(vec![443]),
                    ..empty()
                }),
            ),
            (
                json!({"ports": ["80", 8080]}),
                Ok(Input {
                    ports: Some(vec![80, 8080]),
                    ..empty()
                }),
            ),
            (
                json!({"ports": ["80", "http"]}),
                Err("\"http\" is not a non-negative integer at `ports[1]`"),
            ),
            (json!({"tagKeys": {"a": 1}}), Err("expected a sequence")),
        ];
        for (doc, want) in cases {
            check(doc, want);
        }
    }

    #[test]
    fn structures_maps_enums_and_newtypes_nest() {
        let cases: Vec<(Value, Result<Input, &str>)> = vec![
            (
                json!({"filters": [{"Name": "vpc-id", "Values": "vpc-1", "Max": "7"}]}),
                Ok(Input {
                    filters: Some(vec![Filter {
                        name: "vpc-id".into(),
                        values: vec!["vpc-1".into()],
                        max: Some(7),
                    }]),
                    ..empty()
                }),
            ),
            (
                json!({"tags": {"k": "v"}, "kind": "HTTPS", "id": "12", "unknown": {"x": 1}}),
                Ok(Input {
                    tags: Some(BTreeMap::from([("k".into(), "v".into())])),
                    kind: Some(Kind::Https),
                    id: Some(Id(12)),
                    ..empty()
                }),
            ),
            (
                json!({"filters": [{"Values": []}]}),
                Err("missing field `Name` at `filters[0]`"),
            ),
            (
                json!({"filters": [{"Name": "n", "Values": [], "Max": "x"}]}),
                Err("at `filters[0].Max`"),
            ),
            (json!({"kind": "FTP"}), Err("unknown variant `FTP`")),
            (json!({"kind": 3}), Err("expected an enum value")),
        ];
        for (doc, want) in cases {
            check(doc, want);
        }
    }

    #[test]
    fn denied_fields_and_plain_json_behave_as_serde_json() {
        let e = from_value::<Strict>(json!({"a": "1", "b": 2})).unwrap_err();
        assert!(e.to_string().contains("unknown field `b`"), "{e}");
        assert_eq!(
            from_value::<Strict>(json!({"a": "1"})).unwrap(),
            Strict { a: Some(1) }
        );
        let v = json!({"a": [1, "x", {"b": null}], "c": true});
        assert_eq!(from_value::<Value>(v.clone()).unwrap(), v);
        let m: BTreeMap<u16, bool> = from_value(json!({"80": "true"})).unwrap();
        assert_eq!(m, BTreeMap::from([(80, true)]));
        let t: (u8, String) = from_value(json!(["4", "x"])).unwrap();
        assert_eq!(t, (4, "x".into()));
        assert!(from_value::<(u8,)>(json!([1, 2])).is_err());
    }
}

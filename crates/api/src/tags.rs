//! Tagging: TagResource, UntagResource and ListTagsForResource, for every resource with an ARN.
//!
//! The operations are generic over resource kinds: the record is found by its ARN and its tags
//! are the top-level `tags` object of the record body, where every taggable document keeps them
//! (store conventions). Tagging changes no other member; in particular it does not bump the
//! resource's `lastUpdatedAt`, which Lattice reserves for changes to the resource itself.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use trellis_model::arn::Resolved;
use trellis_model::resources::Tags;
use trellis_model::{Checks, Context, ResourceKind, ValidationError};
use trellis_store::{Record, Tx};
use trellis_wire::Call;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Tags per resource (user guide, "Tag your resources"). The model's `TagMap` allows 200 per
/// request; 50 is the documented per-resource limit and is enforced after merging.
pub const MAX_TAGS_PER_RESOURCE: usize = 50;

const FIELD: &str = "resourceArn";
const ARN_PATTERN: &str =
    "arn:[a-z0-9][-.a-z0-9]{0,62}:vpc-lattice:([a-z0-9][-.a-z0-9]{0,62})?:\\d{12}?:[^/].{0,1023}";

/// The input of ListTagsForResource.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListTagsForResourceInput {
    /// The greedy label `{resourceArn+}`: the rest of the path, so an ARN whose `/` was not
    /// percent-encoded still arrives whole.
    resource_arn: String,
}

impl ListTagsForResourceInput {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut c = Checks::new();
        check_arn(&mut c, &self.resource_arn);
        c.finish()
    }
}

#[derive(Debug, Serialize)]
pub struct ListTagsForResourceOutput {
    tags: Tags,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagResourceInput {
    resource_arn: String,
    tags: Option<Tags>,
}

impl TagResourceInput {
    /// The tags to add or overwrite.
    fn validate(&self) -> Result<&Tags, ValidationError> {
        let mut c = Checks::new();
        check_arn(&mut c, &self.resource_arn);
        match &self.tags {
            Some(t) => {
                c.tags("tags", t);
                c.finish()?;
                Ok(t)
            }
            None => {
                c.missing("tags");
                Err(c.finish().expect_err("a missing member is a failure"))
            }
        }
    }
}

/// TagResource answers with no members.
#[derive(Debug, Serialize)]
pub struct TagResourceOutput {}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UntagResourceInput {
    resource_arn: String,
    /// The repeated query member `tagKeys`. It is required, but an empty list and an absent one
    /// look the same on the wire (nothing is sent), and the list may be empty: no keys means
    /// nothing to remove.
    #[serde(default, deserialize_with = "query_list")]
    tag_keys: Vec<String>,
}

/// A repeated query member: each value as sent, an empty one too. (The front door's usual
/// reading of a single `""` as the query protocols' empty list would turn `?tagKeys=` into "no
/// keys" instead of the empty key it is, which fails validation.)
fn query_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl UntagResourceInput {
    fn validate(&self) -> Result<(), ValidationError> {
        let mut c = Checks::new();
        check_arn(&mut c, &self.resource_arn);
        if c.count("tagKeys", self.tag_keys.len(), 0, 200) {
            for k in &self.tag_keys {
                c.length("tagKeys", k, 1, 128);
            }
        }
        c.finish()
    }
}

/// UntagResource answers with no members.
#[derive(Debug, Serialize)]
pub struct UntagResourceOutput {}

/// `[a-z0-9][-.a-z0-9]{0,62}`: a partition or region segment.
fn is_segment(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
}

/// Java's `.` (AWS validates with Java regexes): anything but a line terminator.
fn is_line_char(c: char) -> bool {
    !matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The model's `Arn` pattern, matched against the whole string.
pub(crate) fn is_lattice_arn(s: &str) -> bool {
    let mut parts = s.splitn(6, ':');
    let (
        Some("arn"),
        Some(partition),
        Some("vpc-lattice"),
        Some(region),
        Some(account),
        Some(resource),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return false;
    };
    let n = resource.chars().count();
    is_segment(partition)
        && (region.is_empty() || is_segment(region))
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (1..=1024).contains(&n)
        && !resource.starts_with('/')
        && resource.chars().skip(1).all(is_line_char)
}

fn check_arn(c: &mut Checks, arn: &str) -> bool {
    c.length(FIELD, arn, 0, 1224) && c.pattern(FIELD, arn, is_lattice_arn(arn), ARN_PATTERN)
}

/// ResourceNotFound for an ARN nothing is stored under, typed after the kind the ARN names.
fn not_found(ctx: &Context, arn: &str) -> ApiError {
    if let Some(kind) = ResourceKind::ALL
        .into_iter()
        .find(|k| !matches!(ctx.resolve(*k, arn), Resolved::Malformed))
    {
        return ApiError::not_found(kind, arn);
    }
    // Kinds Trellis does not implement (resource configurations, gateways, …) exist nowhere here.
    let segment = arn
        .splitn(6, ':')
        .nth(5)
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    let resource_type = match segment {
        "resourceconfiguration" => "RESOURCE_CONFIGURATION",
        "resourcegateway" => "RESOURCE_GATEWAY",
        "servicenetworkresourceassociation" => "SERVICE_NETWORK_RESOURCE_ASSOCIATION",
        "resourceendpointassociation" => "RESOURCE_ENDPOINT_ASSOCIATION",
        "domainverification" => "DOMAIN_VERIFICATION",
        _ => "RESOURCE",
    };
    ApiError::NotFound {
        message: format!("Resource not found: {arn}"),
        resource_id: arn.to_string(),
        resource_type: resource_type.to_string(),
    }
}

async fn load_by_arn(tx: &mut Tx, ctx: &Context, arn: &str) -> ApiResult<Record> {
    tx.get_by_arn(arn).await?.ok_or_else(|| not_found(ctx, arn))
}

/// The record's tags: its body's top-level `tags` object (absent means none).
pub(crate) fn tags_of(rec: &Record) -> ApiResult<Tags> {
    match rec.body.get("tags") {
        None | Some(Value::Null) => Ok(Tags::new()),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            ApiError::Internal(format!(
                "stored tags of {} {} are unreadable: {e}",
                rec.kind, rec.id
            ))
        }),
    }
}

fn set_tags(rec: &mut Record, tags: &Tags) -> ApiResult<()> {
    let Value::Object(body) = &mut rec.body else {
        return Err(ApiError::Internal(format!(
            "stored {} {} is not a JSON object",
            rec.kind, rec.id
        )));
    };
    body.insert("tags".into(), json!(tags));
    Ok(())
}

/// `existing` with `new` added or overwritten. Errs with the resulting count when that exceeds
/// [`MAX_TAGS_PER_RESOURCE`] and the request adds keys; overwriting values of a resource already
/// over the limit (it may have been created with up to 200 tags) stays possible.
fn merge(existing: &Tags, new: Tags) -> Result<Tags, usize> {
    let mut merged = existing.clone();
    merged.extend(new);
    if merged.len() > MAX_TAGS_PER_RESOURCE && merged.len() > existing.len() {
        return Err(merged.len());
    }
    Ok(merged)
}

pub(crate) async fn tag(
    s: AppState,
    input: TagResourceInput,
    _: Call,
) -> ApiResult<TagResourceOutput> {
    let new = input.validate()?;
    let mut tx = s.store.write().await?;
    let mut rec = load_by_arn(&mut tx, &s.ctx, &input.resource_arn).await?;
    if add_tags(&mut rec, new.clone())? {
        tx.update(&rec).await?;
        tx.commit().await?;
    }
    Ok(TagResourceOutput {})
}

/// Adds `new` to the record's tags (overwriting values of keys it has), in memory; whether
/// anything changed. The one tag-write rule of both tagging APIs (Lattice's TagResource and the
/// Resource Groups Tagging API's TagResources), so they enforce the same limit.
pub(crate) fn add_tags(rec: &mut Record, new: Tags) -> ApiResult<bool> {
    let existing = tags_of(rec)?;
    // A ValidationException: TagResource does not model ServiceQuotaExceededException, and the
    // limit is a fixed property of tagging, not an account quota.
    let merged = merge(&existing, new).map_err(|n| {
        ApiError::validation_field(
            "tags",
            format!("The resource would have {n} tags; a resource can have at most {MAX_TAGS_PER_RESOURCE} tags"),
        )
    })?;
    if merged == existing {
        return Ok(false);
    }
    set_tags(rec, &merged)?;
    Ok(true)
}

/// Removes `keys` from the record's tags, in memory; whether anything changed. Keys the resource
/// does not have are ignored, as in every AWS untag operation.
pub(crate) fn remove_tags<'a>(
    rec: &mut Record,
    keys: impl IntoIterator<Item = &'a str>,
) -> ApiResult<bool> {
    let mut tags = tags_of(rec)?;
    let before = tags.len();
    for k in keys {
        tags.remove(k);
    }
    if tags.len() == before {
        return Ok(false);
    }
    set_tags(rec, &tags)?;
    Ok(true)
}

pub(crate) async fn untag(
    s: AppState,
    input: UntagResourceInput,
    _: Call,
) -> ApiResult<UntagResourceOutput> {
    input.validate()?;
    let mut tx = s.store.write().await?;
    let mut rec = load_by_arn(&mut tx, &s.ctx, &input.resource_arn).await?;
    if remove_tags(&mut rec, input.tag_keys.iter().map(String::as_str))? {
        tx.update(&rec).await?;
        tx.commit().await?;
    }
    Ok(UntagResourceOutput {})
}

pub(crate) async fn list(
    s: AppState,
    input: ListTagsForResourceInput,
    _: Call,
) -> ApiResult<ListTagsForResourceOutput> {
    input.validate()?;
    let mut tx = s.store.read().await?;
    let rec = load_by_arn(&mut tx, &s.ctx, &input.resource_arn).await?;
    Ok(ListTagsForResourceOutput {
        tags: tags_of(&rec)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// (input document, expected tagKeys or the failing fields): what the front door decodes
    /// from the query string and what `validate` makes of it.
    #[test]
    fn untag_input_table() {
        let arn = "arn:aws:vpc-lattice:us-west-2:111122223333:servicenetwork/sn-0123456789abcdef0";
        /// The keys kept, or the fields that fail.
        type Want = Result<Vec<&'static str>, Vec<&'static str>>;
        let cases: Vec<(Value, Want)> = vec![
            (json!({ "resourceArn": arn }), Ok(vec![])),
            (json!({ "resourceArn": arn, "tagKeys": "a" }), Ok(vec!["a"])),
            (
                json!({ "resourceArn": arn, "tagKeys": ["a", "b"] }),
                Ok(vec!["a", "b"]),
            ),
            // `?tagKeys=` names the empty key, which is too short.
            (
                json!({ "resourceArn": arn, "tagKeys": "" }),
                Err(vec!["tagKeys"]),
            ),
            (
                json!({ "resourceArn": arn, "tagKeys": "k".repeat(129) }),
                Err(vec!["tagKeys"]),
            ),
            (
                json!({ "resourceArn": arn, "tagKeys": (0..201).map(|i| format!("k{i}")).collect::<Vec<_>>() }),
                Err(vec!["tagKeys"]),
            ),
            (
                json!({ "resourceArn": "nope", "tagKeys": "" }),
                Err(vec!["resourceArn", "tagKeys"]),
            ),
        ];
        for (doc, want) in cases {
            let input: UntagResourceInput = trellis_wire::de::from_value(doc.clone()).unwrap();
            let got = match input.validate() {
                Ok(()) => Ok(input
                    .tag_keys
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()),
                Err(e) => Err(e.fields.into_iter().map(|f| f.name).collect::<Vec<_>>()),
            };
            let want = want
                .map(|k| k.into_iter().map(str::to_string).collect::<Vec<_>>())
                .map_err(|f| f.into_iter().map(str::to_string).collect::<Vec<_>>());
            let got = got.map(|k| k.into_iter().map(str::to_string).collect::<Vec<_>>());
            assert_eq!(got, want, "{doc}");
        }
    }

    #[test]
    fn tag_input_reports_every_member() {
        let input: TagResourceInput =
            trellis_wire::de::from_value(json!({ "resourceArn": "nope" })).unwrap();
        let e = input.validate().unwrap_err();
        let fields: Vec<_> = e.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(fields, ["resourceArn", "tags"]);
    }

    #[test]
    fn arn_pattern_table() {
        let base = "arn:aws:vpc-lattice:us-west-2:111122223333:";
        let cases: Vec<(String, bool)> = vec![
            (format!("{base}servicenetwork/sn-0123456789abcdef0"), true),
            (
                format!("{base}service/svc-0123456789abcdef0/listener/listener-0123456789abcdef0"),
                true,
            ),
            (format!("{base}anything-goes:even/colons"), true),
            ("arn:aws:vpc-lattice::111122223333:x".into(), true),
            ("arn:aws:vpc-lattice:us-west-2:11112222333:x".into(), false),
            ("arn:aws:vpc-lattice:us-west-2::x".into(), false),
            ("arn:aws:s3:us-west-2:111122223333:x".into(), false),
            ("arn:AWS:vpc-lattice:us-west-2:111122223333:x".into(), false),
            (
                "arn:-aws:vpc-lattice:us-west-2:111122223333:x".into(),
                false,
            ),
            (format!("{base}/service"), false),
            (base.to_string(), false),
            (format!("{base}a\nb"), false),
            (format!("{base}{}", "x".repeat(1024)), true),
            (format!("{base}{}", "x".repeat(1025)), false),
            ("sn-0123456789abcdef0".into(), false),
            ("".into(), false),
        ];
        for (arn, want) in cases {
            assert_eq!(is_lattice_arn(&arn), want, "{arn}");
        }
    }

    #[test]
    fn arn_checks_name_the_member() {
        for (arn, ok) in [("not-an-arn".to_string(), false), ("x".repeat(1225), false)] {
            let mut c = Checks::new();
            assert_eq!(check_arn(&mut c, &arn), ok);
            let e = c.finish().unwrap_err();
            assert_eq!(e.fields.len(), 1);
            assert_eq!(e.fields[0].name, "resourceArn");
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn numbered(n: usize) -> Tags {
        (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()
    }

    #[test]
    fn merge_table() {
        let cases: Vec<(Tags, Tags, Result<Tags, usize>)> = vec![
            (
                tags(&[("a", "1")]),
                tags(&[("b", "2")]),
                Ok(tags(&[("a", "1"), ("b", "2")])),
            ),
            (
                tags(&[("a", "1")]),
                tags(&[("a", "9")]),
                Ok(tags(&[("a", "9")])),
            ),
            (tags(&[]), tags(&[]), Ok(tags(&[]))),
            (
                numbered(49),
                tags(&[("new", "x")]),
                Ok({
                    let mut t = numbered(49);
                    t.insert("new".into(), "x".into());
                    t
                }),
            ),
            (numbered(50), tags(&[("new", "x")]), Err(51)),
            (tags(&[]), numbered(51), Err(51)),
            // Already over the limit: changing values is fine, adding keys is not.
            (
                numbered(60),
                tags(&[("k0", "changed")]),
                Ok({
                    let mut t = numbered(60);
                    t.insert("k0".into(), "changed".into());
                    t
                }),
            ),
            (numbered(60), tags(&[("new", "x")]), Err(61)),
        ];
        for (existing, new, want) in cases {
            assert_eq!(
                merge(&existing, new.clone()),
                want,
                "{existing:?} + {new:?}"
            );
        }
    }

    #[test]
    fn tags_are_read_and_written_at_the_top_level() {
        let mut rec = Record {
            kind: "service".into(),
            id: "svc-0123456789abcdef0".into(),
            parent: None,
            name: Some("s".into()),
            arn: Some("arn".into()),
            refs: vec![],
            body: json!({ "id": "svc-0123456789abcdef0", "authType": "NONE" }),
            seq: 1,
        };
        assert_eq!(tags_of(&rec).unwrap(), Tags::new());
        set_tags(&mut rec, &tags(&[("team", "x")])).unwrap();
        assert_eq!(rec.body["tags"], json!({ "team": "x" }));
        assert_eq!(rec.body["authType"], "NONE");
        assert_eq!(tags_of(&rec).unwrap(), tags(&[("team", "x")]));
        rec.body = json!({ "tags": ["not", "a", "map"] });
        assert!(matches!(tags_of(&rec), Err(ApiError::Internal(_))));
    }

    #[test]
    fn not_found_is_typed_after_the_arn() {
        let c = ctx();
        let cases = [
            (
                c.top_level_arn(ResourceKind::Service, "svc-0123456789abcdef0"),
                "SERVICE",
            ),
            (
                c.listener_arn("svc-0123456789abcdef0", "listener-0123456789abcdef0"),
                "LISTENER",
            ),
            (
                c.top_level_arn(ResourceKind::TargetGroup, "tg-0123456789abcdef0"),
                "TARGET_GROUP",
            ),
            (
                "arn:aws:vpc-lattice:us-east-1:111122223333:servicenetwork/sn-0123456789abcdef0"
                    .into(),
                "SERVICE_NETWORK",
            ),
            (
                c.arn("resourceconfiguration/rcfg-0123456789abcdef0"),
                "RESOURCE_CONFIGURATION",
            ),
            (c.arn("whatever"), "RESOURCE"),
        ];
        for (arn, want) in cases {
            match not_found(&c, &arn) {
                ApiError::NotFound {
                    resource_type,
                    resource_id,
                    ..
                } => {
                    assert_eq!(resource_type, want, "{arn}");
                    assert_eq!(resource_id, arn);
                }
                other => panic!("{arn}: {other:?}"),
            }
        }
    }
}

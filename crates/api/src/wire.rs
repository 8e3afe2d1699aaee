//! Wire helpers shared by every resource module: query strings, pagination,
//! idempotency tokens, record ↔ document conversion, and identifier lookups.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use trellis_model::arn::Resolved;
use trellis_model::{Checks, ResourceKind};
use trellis_store::{IdempotencyEntry, Record, Tx};

use crate::error::{ApiError, ApiResult};

/// `maxResults` / `nextToken` of a List call.
#[derive(Debug, Clone)]
pub struct Page {
    pub max_results: usize,
    /// Records with `seq` greater than this come next.
    pub after_seq: Option<i64>,
}

impl Page {
    pub const DEFAULT_MAX: usize = 100;

    /// The page a List call's `maxResults` and `nextToken` members ask for. Both arrive in the
    /// query string, so both are read as text and checked here, where a bad value can be named.
    pub fn new(max_results: Option<&str>, next_token: Option<&str>) -> ApiResult<Page> {
        let mut checks = Checks::new();
        let mut max_results_n = Page::DEFAULT_MAX;
        if let Some(m) = max_results {
            match m.parse::<i64>() {
                Ok(n) if checks.range("maxResults", n, 1, 100) => max_results_n = n as usize,
                Ok(_) => {}
                Err(_) => checks.fail(
                    "maxResults",
                    format!("Value '{m}' at 'maxResults' is not an integer"),
                ),
            }
        }
        let mut after_seq = None;
        if let Some(t) = next_token
            && checks.length("nextToken", t, 1, 2048)
        {
            match decode_token(t) {
                Some(seq) => after_seq = Some(seq),
                None => checks.fail("nextToken", "The pagination token is invalid or expired"),
            }
        }
        checks.finish()?;
        Ok(Page {
            max_results: max_results_n,
            after_seq,
        })
    }

    /// Applies the page to records already in `seq` order (and already filtered), returning the
    /// page and the token for the next one.
    pub fn apply(&self, records: Vec<Record>) -> (Vec<Record>, Option<String>) {
        let mut rest: Vec<Record> = records
            .into_iter()
            .filter(|r| self.after_seq.is_none_or(|after| r.seq > after))
            .collect();
        if rest.len() > self.max_results {
            rest.truncate(self.max_results);
            let token = rest.last().map(|r| encode_token(r.seq));
            (rest, token)
        } else {
            (rest, None)
        }
    }
}

fn encode_token(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("trellis:{seq}"))
}

fn decode_token(t: &str) -> Option<i64> {
    let raw = URL_SAFE_NO_PAD.decode(t).ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("trellis:")?
        .parse()
        .ok()
}

/// A List operation's output: `{"items": [...], "nextToken": ...}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListOutput<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// Idempotency for Create* calls: the same `clientToken` with the same input returns the
/// original response; with different input it is a ConflictException.
pub struct Idempotency {
    scope: String,
    token: Option<String>,
    request_hash: String,
}

impl Idempotency {
    /// `operation` names the call (`CreateService`); `scope` adds the parent for nested
    /// resources so the same token can be reused under another parent; `request` is the body.
    pub fn new(
        operation: &str,
        scope: &str,
        token: Option<&str>,
        request: &Value,
    ) -> ApiResult<Idempotency> {
        if let Some(t) = token {
            let mut c = Checks::new();
            c.client_token(t);
            c.finish()?;
        }
        let mut canonical = request.clone();
        if let Value::Object(m) = &mut canonical {
            m.remove("clientToken");
        }
        let hash = hex::encode(Sha256::digest(canonical_json(&canonical).as_bytes()));
        Ok(Idempotency {
            scope: format!("{operation}:{scope}"),
            token: token.map(str::to_string),
            request_hash: hash,
        })
    }

    /// The earlier output to replay, if this token was used before with the same input.
    pub async fn replay_output<O: DeserializeOwned>(
        &self,
        tx: &mut Tx,
        kind: ResourceKind,
    ) -> ApiResult<Option<O>> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        match tx.idempotency_get(&self.scope, token).await? {
            None => Ok(None),
            Some(entry) if entry.request_hash == self.request_hash => {
                let body = entry.response.get("body").cloned().unwrap_or(Value::Null);
                serde_json::from_value(body).map(Some).map_err(|e| {
                    ApiError::Internal(format!("a remembered response does not decode: {e}"))
                })
            }
            Some(_) => Err(ApiError::Conflict {
                message: "The clientToken was already used with different request parameters"
                    .into(),
                resource_id: token.clone(),
                resource_type: kind.error_type().to_string(),
            }),
        }
    }

    /// Finishes a Create whose output is typed: remembers it for the token in the same
    /// transaction as the change it describes, and commits.
    pub async fn finish_output<O: Serialize>(self, mut tx: Tx, output: O) -> ApiResult<O> {
        if let Some(token) = &self.token {
            let body =
                serde_json::to_value(&output).map_err(|e| ApiError::Internal(e.to_string()))?;
            let entry = IdempotencyEntry {
                request_hash: self.request_hash.clone(),
                response: serde_json::json!({ "body": body }),
            };
            tx.idempotency_put(&self.scope, token, &entry).await?;
        }
        tx.commit().await?;
        Ok(output)
    }
}

/// JSON with object keys sorted, so that semantically equal requests hash alike.
fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, String> =
                m.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let parts: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::String((*k).clone())))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Builds a store record around a resource document.
pub struct NewRecord<'a> {
    pub kind: ResourceKind,
    pub id: &'a str,
    pub parent: Option<&'a str>,
    pub name: Option<&'a str>,
    pub arn: Option<&'a str>,
    pub refs: Vec<String>,
}

impl NewRecord<'_> {
    pub fn with_body<T: Serialize>(self, doc: &T) -> ApiResult<Record> {
        Ok(Record {
            kind: self.kind.store_kind().to_string(),
            id: self.id.to_string(),
            parent: self.parent.map(str::to_string),
            name: self.name.map(str::to_string),
            arn: self.arn.map(str::to_string),
            refs: self.refs,
            body: serde_json::to_value(doc).map_err(|e| ApiError::Internal(e.to_string()))?,
            seq: 0,
        })
    }
}

/// Like [`load_doc`], for a resource nested under a parent (a listener under its service, a rule
/// under its listener): one that belongs to another parent does not exist here.
pub async fn load_child_doc<T: DeserializeOwned>(
    tx: &mut Tx,
    ctx: &trellis_model::Context,
    kind: ResourceKind,
    field: &str,
    identifier: &str,
    parent_id: &str,
) -> ApiResult<(Record, T)> {
    let (rec, d) = load_doc::<T>(tx, ctx, kind, field, identifier).await?;
    if rec.parent.as_deref() != Some(parent_id) {
        return Err(ApiError::not_found(kind, identifier));
    }
    Ok((rec, d))
}

/// The two preconditions of creating an account-scoped resource (service network, service,
/// target group): no other resource of its kind has `name` (ConflictException), and the
/// per-region quota has room (ServiceQuotaExceededException). `what` names the kind in messages.
pub async fn check_new_top_level(
    tx: &mut Tx,
    kind: ResourceKind,
    name: &str,
    quota: u64,
    quota_code: &str,
) -> ApiResult<()> {
    let what = crate::error::human(kind);
    if let Some(existing) = tx.get_by_name(kind.store_kind(), None, name).await? {
        return Err(ApiError::conflict(
            kind,
            &existing.id,
            format!("A {what} named '{name}' already exists"),
        ));
    }
    if tx.count(kind.store_kind(), None).await? >= quota {
        return Err(ApiError::quota(
            kind,
            None,
            quota_code,
            &format!("{what}s per region"),
            quota,
        ));
    }
    Ok(())
}

/// Decodes a record's body.
pub fn doc<T: DeserializeOwned>(rec: &Record) -> ApiResult<T> {
    serde_json::from_value(rec.body.clone()).map_err(|e| {
        ApiError::Internal(format!("stored {} {} is unreadable: {e}", rec.kind, rec.id))
    })
}

/// Replaces a record's body with `doc`, keeping the rest.
pub fn set_doc<T: Serialize>(rec: &mut Record, doc: &T) -> ApiResult<()> {
    rec.body = serde_json::to_value(doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(())
}

/// Resolves `identifier` (ID or ARN) of `kind` and loads the record. A malformed identifier is a
/// ValidationException on `field`; anything that doesn't exist here is ResourceNotFound.
pub async fn load(
    tx: &mut Tx,
    ctx: &trellis_model::Context,
    kind: ResourceKind,
    field: &str,
    identifier: &str,
) -> ApiResult<Record> {
    match ctx.resolve(kind, identifier) {
        Resolved::Id(id) => tx
            .get(kind.store_kind(), &id)
            .await?
            .ok_or_else(|| ApiError::not_found(kind, identifier)),
        Resolved::Foreign(_) => Err(ApiError::not_found(kind, identifier)),
        Resolved::Malformed => Err(ApiError::validation_field(
            field,
            format!(
                "Value '{identifier}' at '{field}' failed to satisfy constraint: Member must be a {} ID or ARN",
                crate::error::human(kind)
            ),
        )),
    }
}

/// Like [`load`], decoding the document too.
pub async fn load_doc<T: DeserializeOwned>(
    tx: &mut Tx,
    ctx: &trellis_model::Context,
    kind: ResourceKind,
    field: &str,
    identifier: &str,
) -> ApiResult<(Record, T)> {
    let rec = load(tx, ctx, kind, field, identifier).await?;
    let d = doc(&rec)?;
    Ok((rec, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: i64) -> Record {
        Record {
            kind: "k".into(),
            id: format!("id{seq}"),
            parent: None,
            name: None,
            arn: None,
            refs: vec![],
            body: Value::Null,
            seq,
        }
    }

    #[test]
    fn pagination_walks_all_records_once() {
        let all: Vec<Record> = (1..=7).map(rec).collect();
        let mut seen = vec![];
        let mut token: Option<String> = None;
        for _ in 0..10 {
            let page = Page::new(Some("3"), token.as_deref()).unwrap();
            let (items, next) = page.apply(all.clone());
            seen.extend(items.iter().map(|r| r.seq));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, (1..=7).collect::<Vec<_>>());
    }

    #[test]
    fn bad_page_parameters_are_validation_errors() {
        for (k, v) in [
            ("maxResults", "0"),
            ("maxResults", "101"),
            ("maxResults", "x"),
            ("nextToken", "garbage!"),
        ] {
            let page = if k == "maxResults" {
                Page::new(Some(v), None)
            } else {
                Page::new(None, Some(v))
            };
            match page {
                Err(ApiError::Validation(e)) => assert_eq!(e.fields[0].name, k),
                other => panic!("{k}={v}: {other:?}"),
            }
        }
    }

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":[1,{"p":2,"q":1}],"y":2},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }
}

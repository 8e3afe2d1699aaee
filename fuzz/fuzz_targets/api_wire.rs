//! The control-plane API's request decoders as the front door runs them (`trellis_wire`'s JSON
//! body and query-string readers, then its lenient typed decoding) into Lattice's and Lambda's
//! typed inputs and their validation, and both APIs' pagination tokens.
//!
//! The first byte picks the decoder, the rest is its input. Invariants beyond "no panic":
//! * a rule match / rule action that validates serialises to the stored shape, and a target
//!   group config that validates to the shape Get shows, which parse and validate back to the
//!   same value;
//! * query parsing: one pair per non-empty `&` segment; `get` is the first of `get_all`; pairs
//!   re-encoded and parsed again come back unchanged;
//! * a `nextToken` / `Marker` the server issued decodes to the position it was issued for, and a
//!   page never holds more than its size;
//! * `ZipFile` base64 round-trips.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::Value;
use trellis_api::actions::{RuleActionInput, RuleActionOutput};
use trellis_api::rules::input::RuleMatchInput;
use trellis_api::wire::Page;
use trellis_functions::api::wire as lambda;
use trellis_functions::api::{aliases, functions};
use trellis_model::Checks;
use trellis_model::resources::Tags;
use trellis_api::target_groups::TargetGroupConfigOutput;
use trellis_api::target_groups::input::{HealthCheckInput, TargetGroupConfigInput, check_config};
use trellis_model::resources::target_group::TargetGroupType;
use trellis_store::Record;
use trellis_wire::codec::{json_body_members, query_pairs};

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn record(seq: i64) -> Record {
    Record {
        kind: "service".into(),
        id: format!("svc-{seq}"),
        parent: None,
        name: None,
        arn: None,
        refs: Vec::new(),
        body: Value::Null,
        seq,
    }
}

fn query(raw: &str) {
    let params = query_pairs(raw);
    let segments = raw.split('&').filter(|s| !s.is_empty()).count();
    assert_eq!(params.len(), segments);
    let encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let again = query_pairs(&encoded.join("&"));
    // An empty key and value encode to a bare `=`, which is still a segment.
    assert_eq!(again, params);

    // Pagination: whatever the query holds, a page is at most its size; and a token the server
    // issues for any position decodes back to it.
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let Ok(page) = Page::new(get("maxResults"), get("nextToken")) else {
        return;
    };
    assert!((1..=100).contains(&page.max_results));
    let seqs: Vec<i64> = params
        .iter()
        .map(|(k, v)| (k.len() as i64) << 32 | v.len() as i64)
        .collect();
    let mut records: Vec<Record> = seqs.iter().copied().map(record).collect();
    records.sort_by_key(|r| r.seq);
    records.dedup_by_key(|r| r.seq);
    let (items, token) = page.apply(records);
    assert!(items.len() <= page.max_results);
    if let Some(token) = token {
        let next = Page::new(None, Some(&token)).expect("an issued token is valid");
        assert_eq!(next.after_seq, items.last().map(|r| r.seq));
    }
}

/// A JSON body read as both REST-JSON APIs read it: members, then the operation's typed input.
fn body<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    let members = json_body_members(data).ok()?;
    trellis_wire::de::from_value(Value::Object(members)).ok()
}

fn rule_match(data: &[u8]) {
    let Some(input) = body::<RuleMatchInput>(data) else {
        return;
    };
    let mut c = Checks::new();
    let checked = input.check(&mut c, "match");
    let Some(checked) = checked.filter(|_| c.finish().is_ok()) else {
        return;
    };
    let stored = serde_json::to_vec(&checked).unwrap();
    let again: RuleMatchInput = body(&stored).expect("stored shape parses");
    let mut c = Checks::new();
    assert_eq!(again.check(&mut c, "match"), Some(checked));
    assert!(c.finish().is_ok());
}

fn rule_action(data: &[u8]) {
    let Some(input) = body::<RuleActionInput>(data) else {
        return;
    };
    let mut c = Checks::new();
    let checked = input.check(&mut c, "action");
    let Some(checked) = checked.filter(|_| c.finish().is_ok()) else {
        return;
    };
    // What the API shows for the action parses and validates back to it.
    let shown = serde_json::to_vec(&RuleActionOutput::from(&checked)).unwrap();
    let again: RuleActionInput = body(&shown).expect("shown shape parses");
    let mut c = Checks::new();
    assert_eq!(again.check(&mut c, "action"), Some(checked));
    assert!(c.finish().is_ok());
}

fn target_group_config(kind: u8, data: &[u8]) {
    let Some(input) = body::<TargetGroupConfigInput>(data) else {
        return;
    };
    let types = [
        TargetGroupType::Ip,
        TargetGroupType::Lambda,
        TargetGroupType::Instance,
        TargetGroupType::Alb,
    ];
    let target_type = types[usize::from(kind) % types.len()];
    let mut c = Checks::new();
    let config = check_config(&mut c, target_type, Some(&input));
    if c.finish().is_err() {
        return;
    }
    // What Get shows of the config must validate again to the same config (a fixed point).
    let shown = serde_json::to_vec(&TargetGroupConfigOutput::from(&config)).unwrap();
    let again: TargetGroupConfigInput = body(&shown).expect("shown shape parses");
    let mut c = Checks::new();
    let config_again = check_config(&mut c, target_type, Some(&again));
    assert!(c.finish().is_ok(), "{config:?} does not validate again");
    assert_eq!(config_again, config);
}

fn lambda_page(text: &str) {
    let (marker, max_items) = text.split_once('\n').unwrap_or((text, ""));
    let max_items = (!max_items.is_empty()).then_some(max_items);
    if let Ok(page) = lambda::page(Some(marker), max_items) {
        assert!((1..=lambda::MAX_PAGE).contains(&page.size));
        let items: Vec<(i64, ())> = marker.bytes().map(|b| (i64::from(b), ())).collect();
        let (out, next) = lambda::paginate(items, page);
        assert!(out.len() <= page.size);
        if let Some(next) = next {
            assert!(lambda::page(Some(&next), None).is_ok());
        }
    }
    // Every position's marker decodes to that position.
    let seq = text.bytes().fold(0i64, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(i64::from(b))
    });
    let page = lambda::page(Some(&lambda::encode_marker(seq)), None).unwrap();
    assert_eq!(page.after_seq, Some(seq));
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = std::str::from_utf8(rest).ok();
    match selector % 12 {
        0 => rule_match(rest),
        1 => rule_action(rest),
        2 => target_group_config(selector / 12, rest),
        3 => {
            let _ = body::<HealthCheckInput>(rest);
            let _ = body::<Tags>(rest);
        }
        4 => {
            if let Some(text) = text {
                query(text);
            }
        }
        5 => {
            let _ = body::<functions::CreateFunctionInput>(rest);
            let _ = body::<functions::UpdateFunctionCodeInput>(rest);
        }
        6 => {
            let _ = body::<functions::UpdateFunctionConfigurationInput>(rest);
            let _ = body::<functions::PublishVersionInput>(rest);
            let _ = body::<aliases::CreateAliasInput>(rest);
            let _ = body::<aliases::UpdateAliasInput>(rest);
        }
        7 => {
            if let Some(text) = text {
                lambda_page(text);
            }
        }
        8 => {
            if let Some(text) = text
                && let Ok(zip) = lambda::decode_zip(text)
            {
                let again = base64::engine::general_purpose::STANDARD.encode(&zip);
                assert_eq!(lambda::decode_zip(&again).unwrap(), zip);
            }
            let encoded = base64::engine::general_purpose::STANDARD.encode(rest);
            assert_eq!(lambda::decode_zip(&encoded).unwrap(), rest);
        }
        _ => {
            // Any JSON document as a generic body (what idempotency hashing parses).
            let _ = body::<Value>(rest);
        }
    }
});

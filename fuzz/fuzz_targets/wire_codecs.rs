//! The front door's protocol codecs (`trellis_wire`), reached before any handler validates
//! anything: query-protocol forms into documents (bounded, never a panic), the lenient typed
//! decoding of any document, and the XML writer over arbitrary text.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use trellis_wire::codec::{Map, decode_form, output_response};
use trellis_wire::{AwsError, OperationMeta, Protocol, RequestId, Service, ServiceErrors};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
struct Input {
    name: Option<String>,
    max_items: Option<u32>,
    enabled: Option<bool>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    nested: Option<Box<Input>>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: Option<String>,
    value: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Output {
    text: String,
    items: Vec<String>,
    tags: Vec<Tag>,
    attributes: Map<BTreeMap<String, String>>,
    count: u64,
}

fn errors() -> ServiceErrors {
    ServiceErrors {
        unknown_operation: |w| AwsError::new("Unknown", http::StatusCode::BAD_REQUEST, w),
        bad_input: |m| AwsError::new("Bad", http::StatusCode::BAD_REQUEST, m),
        internal_code: "InternalFailure",
        throttling_code: "Throttling",
        too_large: |_| AwsError::new("TooLarge", http::StatusCode::PAYLOAD_TOO_LARGE, ""),
        common: &[],
    }
}

fn service(protocol: Protocol) -> &'static Service {
    Box::leak(Box::new(Service {
        id: "Fuzz",
        signing_name: "fuzz",
        endpoint_prefix: "fuzz",
        api_version: "2010-05-08",
        protocol,
        target_prefix: None,
        xml_namespace: Some("https://fuzz.example/<&>\""),
        path_prefixes: &[],
        errors: errors(),
    }))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 | 1 => {
            let protocol = if mode % 3 == 0 { Protocol::AwsQuery } else { Protocol::Ec2Query };
            if let Ok(doc) = decode_form(protocol, &text) {
                let _ = trellis_wire::de::from_value::<Input>(doc);
            }
        }
        _ => {
            if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) {
                let _ = trellis_wire::de::from_value::<Input>(doc.clone());
            }
            // Arbitrary text through the XML writer, both query flavours.
            for protocol in [Protocol::AwsQuery, Protocol::Ec2Query] {
                let meta = OperationMeta {
                    service: service(protocol),
                    name: "Fuzz",
                    http: None,
                    body_cap: None,
                    too_large: None,
                    errors: &[],
                    errors_declared: true,
                };
                let parts: Vec<&str> = text.split('\u{1}').collect();
                let out = Output {
                    text: text.to_string(),
                    items: parts.iter().map(|s| s.to_string()).collect(),
                    tags: parts
                        .iter()
                        .map(|s| Tag { key: Some(s.to_string()), value: None })
                        .collect(),
                    attributes: Map(parts.iter().map(|s| (s.to_string(), text.to_string())).collect()),
                    count: rest.len() as u64,
                };
                let resp = output_response(&meta, &RequestId::new(), &out);
                assert!(resp.status().is_success());
            }
        }
    }
});

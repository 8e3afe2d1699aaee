//! The embedded DNS server's request handling over arbitrary bytes: `trellis_dns::answer_bytes`
//! is exactly what the server answers a message it received (hickory-server's decoding, the
//! handler's policy, the response encoding), from a fixed zone with A, AAAA and empty names, a
//! nested zone and a custom domain name.
//!
//! Invariants beyond "no panic":
//! * every message hickory decodes as a query gets a response (none is silently dropped);
//! * the response decodes, is a response, carries the query's ID and op code and echoes its
//!   questions;
//! * an authoritative answer's records all belong to the name asked for.
#![no_main]

use std::sync::LazyLock;

use hickory_server::proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use trellis_dns::{Zone, answer_bytes};

static ZONE: LazyLock<Zone> = LazyLock::new(|| {
    Zone::new(
        [
            "vpc-lattice-svcs.us-west-2.on.aws".to_string(),
            "inner.vpc-lattice-svcs.us-west-2.on.aws".to_string(),
        ],
        [
            (
                "billing-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws".to_string(),
                vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
            ),
            (
                "empty-0123456789abcdef0.7d67968.vpc-lattice-svcs.us-west-2.on.aws".to_string(),
                vec![],
            ),
            (
                "a.inner.vpc-lattice-svcs.us-west-2.on.aws".to_string(),
                vec!["10.0.0.1".parse().unwrap()],
            ),
            (
                "Api.Example.COM.".to_string(),
                vec!["192.0.2.7".parse().unwrap()],
            ),
        ],
    )
});

/// Whether a question name of `message` follows a compression pointer into the header.
fn question_points_into_header(message: &[u8]) -> bool {
    let Some(count) = message.get(4..6) else {
        return false;
    };
    let mut at = 12;
    for _ in 0..u16::from_be_bytes([count[0], count[1]]) {
        let (mut label, mut end, mut hops) = (at, None, 0);
        loop {
            let Some(&len) = message.get(label) else {
                return false;
            };
            if len & 0xc0 == 0xc0 {
                let Some(&low) = message.get(label + 1) else {
                    return false;
                };
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                if target < 12 {
                    return true;
                }
                end.get_or_insert(label + 2);
                hops += 1;
                if hops > 128 {
                    return false;
                }
                label = target;
            } else if len == 0 {
                end.get_or_insert(label + 1);
                break;
            } else {
                label += 1 + usize::from(len);
            }
        }
        // The type and class follow the name.
        at = end.unwrap_or(label) + 4;
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let response = answer_bytes(&ZONE, data);
    let query = Message::from_vec(data).ok();
    let Some(response) = response else {
        if let Some(query) = query {
            assert_ne!(
                query.metadata.message_type,
                MessageType::Query,
                "a decodable query got no response"
            );
        }
        return;
    };
    // hickory-server echoes the question section byte for byte. A question whose name uses a
    // compression pointer into the 12-byte header (which the response rewrites) therefore comes
    // back pointing at different bytes: the echoed name differs, or does not decode at all. That
    // is hickory-server's answer to a garbage query and harmless; such responses are only held
    // to their ID. Every other response must decode and echo the question exactly.
    let points_into_header = question_points_into_header(data);
    assert_eq!(&data[..2], &response[..2]);
    let Ok(response) = Message::from_vec(&response) else {
        assert!(points_into_header, "the response does not decode");
        return;
    };
    if points_into_header {
        return;
    }
    assert_eq!(response.metadata.message_type, MessageType::Response);
    if let Some(query) = query {
        assert_eq!(response.metadata.op_code, query.metadata.op_code);
        assert_eq!(response.queries, query.queries);
        if response.metadata.authoritative
            && let [question] = query.queries.as_slice()
        {
            for record in &response.answers {
                assert!(
                    record.name.eq_case(question.name()) || record.name == *question.name(),
                    "{record:?} answers {question:?}"
                );
            }
        }
    }
});

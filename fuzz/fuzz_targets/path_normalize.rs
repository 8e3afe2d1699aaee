//! Request-path normalisation (`trellis_router::path::normalize`): arbitrary text in, a
//! normalised path or a typed error out.
//!
//! Invariants beyond "no panic": the output has no `.` or `..` segment, and normalising it
//! again returns it unchanged (idempotence).
#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_router::path::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(normalized) = normalize(path) else {
        return;
    };
    let query_free = normalized.split('?').next().unwrap_or("");
    for segment in query_free.split('/') {
        assert!(
            segment != "." && segment != "..",
            "{path:?} normalised to {normalized:?}, which has a dot segment"
        );
    }
    let again = normalize(&normalized)
        .unwrap_or_else(|e| panic!("{normalized:?} (from {path:?}) no longer normalises: {e:?}"));
    assert_eq!(again, normalized, "normalising {path:?} is not idempotent");
});

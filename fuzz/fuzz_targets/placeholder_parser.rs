//! The placeholder parser (SPEC §3.2, tap-core `placeholder`): never panics;
//! literals never hold a plain marker; rendering what was parsed and parsing
//! it again finds the same references; the position detector sees every
//! placeholder the parser sees.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tap_core::placeholder::{Segment, find_marker, parse};

fuzz_target!(|data: &[u8]| {
    let marker = find_marker(data);
    if let Some(i) = marker {
        assert!(i < data.len(), "marker offset past the end");
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(segments) = parse(text) else {
        return;
    };
    let mut rendered = String::new();
    let mut refs = Vec::new();
    for s in &segments {
        match s {
            Segment::Literal(l) => {
                assert!(
                    !l.to_ascii_uppercase().contains("<CREDENTIAL:"),
                    "a literal holds a marker"
                );
                rendered.push_str(l);
            }
            Segment::Reference(r) => {
                rendered.push_str(&r.to_string());
                refs.push(*r);
            }
        }
    }
    if !refs.is_empty() {
        assert!(marker.is_some(), "the detector missed a placeholder the parser found");
    }
    let again = parse(&rendered).expect("a rendered parse parses again");
    let again_refs: Vec<_> = again
        .iter()
        .filter_map(|s| match s {
            Segment::Reference(r) => Some(*r),
            Segment::Literal(_) => None,
        })
        .collect();
    assert_eq!(again_refs, refs, "rendering changed the references");
});

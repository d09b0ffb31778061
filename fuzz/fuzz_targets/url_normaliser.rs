//! Target URL parsing (tap-core `target`) and path normalisation (tap-core
//! `policy`): never panic; parsing the parsed form again gives the same URL;
//! normalising the displayed form again gives the same path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tap_core::policy::NormalizedTarget;
use tap_core::target::TargetUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(target) = TargetUrl::parse(raw) else {
        return;
    };
    let again = TargetUrl::parse(target.as_str())
        .unwrap_or_else(|e| panic!("a parsed target does not parse again: {e}"));
    assert_eq!(again.as_str(), target.as_str(), "parsing is not idempotent");
    assert_eq!(again.host_str(), target.host_str());
    assert_eq!(again.port(), target.port());

    let normalized = NormalizedTarget::from_url(target.url());
    assert!(
        normalized.path().starts_with('/'),
        "path without a leading /"
    );
    if let Ok(url) = url::Url::parse(&normalized.as_display()) {
        let twice = NormalizedTarget::from_url(&url);
        assert_eq!(
            twice.path(),
            normalized.path(),
            "normalising is not idempotent"
        );
    }
});

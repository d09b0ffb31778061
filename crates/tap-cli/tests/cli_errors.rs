//! With `--json`, every failing command prints one error document on stdout:
//! `{"error": <stable code>, "detail": <sentence>}`, and exits 1.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use tap_testkit::TapHome;

fn json_error(tap: &TapHome, args: &[&str]) -> Value {
    let out = tap.run(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} must fail");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{args:?}: not JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).is_empty(),
        "stderr still says why"
    );
    v
}

#[test]
fn every_command_fails_with_the_same_json_shape() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    // No store yet.
    let v = json_error(&tap, &["agent", "list", "--json"]);
    assert!(v["error"].is_string(), "{v}");
    tap.init();
    assert_eq!(
        json_error(&tap, &["agent", "show", "nope", "--json"])["error"],
        "not_found"
    );
    assert_eq!(
        json_error(&tap, &["cred", "show", "nope", "--json"])["error"],
        "not_found"
    );
    assert_eq!(
        json_error(&tap, &["pending", "show", "txn_nope", "--json"])["error"],
        "not_found"
    );
    let v = json_error(&tap, &["approve", "txn_nope", "--json"]);
    assert_eq!(v["txn_id"], "txn_nope", "{v}");
    assert!(v["error"].is_string(), "{v}");
    let v = json_error(
        &tap,
        &[
            "--json",
            "member",
            "add",
            "not-an-email",
            "--role",
            "viewer",
        ],
    );
    assert!(v["error"].is_string(), "{v}");
}

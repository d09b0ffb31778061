//! `POST /sign` (SPEC §6.4, §15) end to end through the real `tap` binary:
//! ed25519, secp256k1 and p256 signing keys sign only after a human approves
//! (whatever the policy), the signature is polled like any approval result
//! and verified here with the public key derived by the test itself, using
//! the curve crates' verifiers (independent of the proxy's signing path); a
//! denial leaves no signature, and a signing key on `/forward` is refused.
//!
//! Every wait is bounded; nothing asserts on wall-clock time.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tap_testkit::{Reply, Served, TapHome, eventually};

const ED_KEY: &str = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb";
const K1_KEY: &str = "0c28fca386c7a227600b2fe50b7cae11ec86d3bf1fbe471be89827e19d72aa1d";
const P2_KEY: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";

fn bundle(alg: &str, key: &str) -> String {
    json!({"algorithm": alg, "private_key": key}).to_string()
}

/// Signing keys `ed`, `k1`, `p2`, a plain token `plain`, and agent `bot`
/// granted all; `ed`'s policy auto-approves every method (it must not matter).
fn setup() -> (TapHome, String) {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    for (name, alg, key) in [
        ("ed", "ed25519", ED_KEY),
        ("k1", "secp256k1", K1_KEY),
        ("p2", "p256", P2_KEY),
    ] {
        tap.add_credential(name, &bundle(alg, key), &["--allow-any-host"]);
    }
    tap.add_credential("plain", "plain-token-value-1234", &["--allow-any-host"]);
    tap.ok(&[
        "policy",
        "set",
        "ed",
        "--auto-approve-methods",
        "GET,POST,SIGN",
    ]);
    let key = tap.agent("bot", &["--credential", "ed,k1,p2,plain"]);
    let shown = tap.json(&["cred", "show", "ed"]);
    assert_eq!(shown["value_shape"], "signing_key", "{shown}");
    assert!(!shown.to_string().contains(ED_KEY), "{shown}");
    (tap, key)
}

async fn sign(served: &Served, key: &str, credential: &str, body: &Value, prefer: bool) -> Reply {
    let mut req = tap_testkit::http_client()
        .post(format!("{}/sign", served.url))
        .header("X-TAP-Key", key)
        .header("X-TAP-Credential", credential)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if prefer {
        req = req.header("Prefer", "respond-async");
    }
    Reply::read(req.send().await.unwrap()).await
}

/// Sends an async sign request and returns its txn id.
async fn sign_async(served: &Served, key: &str, credential: &str, body: &Value) -> String {
    let r = sign(served, key, credential, body, true).await;
    assert_eq!(
        r.status,
        202,
        "a signature always waits for approval: {}",
        r.text()
    );
    let v = r.json();
    assert_eq!(v["status"], "pending", "{v}");
    v["txn_id"].as_str().unwrap().to_owned()
}

fn decide(tap: &TapHome, verb: &str, txn: &str) {
    let v = tap.json(&[verb, txn]);
    assert_eq!(v["txn_id"], txn, "{v}");
}

/// The signing result of a forwarded poll.
fn result(v: &Value) -> Value {
    assert_eq!(v["status"], "forwarded", "{v}");
    let resp = &v["response"];
    assert_eq!(resp["status"], 200, "{v}");
    serde_json::from_str(resp["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn signatures_verify_after_approval_for_every_curve() {
    let (tap, key) = setup();
    let served = tap.serve();
    let payload = b"transfer 10 units to account 42".to_vec();
    let hex_body = json!({"payload": hex::encode(&payload), "encoding": "hex", "payload_description": "a transfer"});
    let b64_body = json!({"payload": base64::engine::general_purpose::STANDARD.encode(&payload), "encoding": "base64"});

    // ed25519 over the raw payload.
    let txn = sign_async(&served, &key, "ed", &hex_body).await;
    decide(&tap, "approve", &txn);
    let out = result(&served.approval_outcome(&key, &txn).await);
    assert_eq!(out["algorithm"], "ed25519");
    let seed: [u8; 32] = hex::decode(ED_KEY).unwrap().try_into().unwrap();
    let expected_pk = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    assert_eq!(out["public_key"], hex::encode(expected_pk.to_bytes()));
    let sig: [u8; 64] = hex::decode(out["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    expected_pk
        .verify_strict(&payload, &ed25519_dalek::Signature::from_bytes(&sig))
        .expect("ed25519 signature verifies");

    // secp256k1 over SHA-256(payload), low S, r||s.
    let txn = sign_async(&served, &key, "k1", &hex_body).await;
    decide(&tap, "approve", &txn);
    let out = result(&served.approval_outcome(&key, &txn).await);
    assert_eq!(out["algorithm"], "secp256k1");
    let sk = k256::ecdsa::SigningKey::from_slice(&hex::decode(K1_KEY).unwrap()).unwrap();
    let pk = sk.verifying_key();
    assert_eq!(
        out["public_key"],
        hex::encode(pk.to_sec1_point(true).as_bytes())
    );
    let sig = k256::ecdsa::Signature::from_slice(
        &hex::decode(out["signature"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(sig.normalize_s(), sig, "low S");
    k256::ecdsa::signature::Verifier::verify(pk, &payload, &sig).expect("secp256k1 verifies");

    // p256, payload sent as base64; the synchronous answer is the same JSON.
    let r = sign(&served, &key, "p2", &b64_body, false);
    let approver = async {
        let txn = eventually(400, Duration::from_millis(25), || async {
            let pending = tap.json(&["pending"]);
            pending.as_array().unwrap().iter().find_map(|p| {
                (p["credential"] == "p2").then(|| p["txn_id"].as_str().unwrap().to_owned())
            })
        })
        .await
        .expect("a pending p256 signature");
        decide(&tap, "approve", &txn);
    };
    let (r, ()) = tokio::join!(r, approver);
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    assert_eq!(out["algorithm"], "p256");
    let sk = p256::ecdsa::SigningKey::from_slice(&hex::decode(P2_KEY).unwrap()).unwrap();
    let pk = sk.verifying_key();
    assert_eq!(
        out["public_key"],
        hex::encode(pk.to_sec1_point(true).as_bytes())
    );
    let sig = p256::ecdsa::Signature::from_slice(
        &hex::decode(out["signature"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(sig.normalize_s(), sig, "low S");
    p256::ecdsa::signature::Verifier::verify(pk, &payload, &sig).expect("p256 verifies");

    // Audited like /forward; no private key anywhere the agent or an operator reads.
    let rows = tap.logs(&["--credential", "ed"]);
    assert!(
        rows.iter()
            .any(|r| r["method"] == "SIGN" && r["approval_status"] == "forwarded"),
        "{rows:?}"
    );
    let all = format!(
        "{} {}",
        serde_json::to_string(&tap.logs(&[])).unwrap(),
        served.log()
    );
    for k in [ED_KEY, K1_KEY, P2_KEY] {
        assert!(!all.contains(k), "private key leaked");
    }
}

#[tokio::test]
async fn a_denied_signature_never_exists_and_signing_keys_stay_off_forward() {
    let (tap, key) = setup();
    // A public address pinned for the /forward check (never connected to).
    let served = tap.serve_with(&[("TAP_RESOLVE", "example.com=93.184.215.14")]);
    let body = json!({"payload": "deadbeef", "encoding": "hex"});
    let txn = sign_async(&served, &key, "ed", &body).await;
    decide(&tap, "deny", &txn);
    let v = served.approval_outcome(&key, &txn).await;
    assert_eq!(v["status"], "denied", "{v}");
    assert!(v.get("response").is_none_or(Value::is_null), "{v}");
    assert!(!v.to_string().contains("signature"), "{v}");
    let rows = tap.logs(&["--credential", "ed"]);
    assert!(
        rows.iter()
            .any(|r| r["request_id"] == txn.as_str() && r["error_code"] == "approval_denied"),
        "{rows:?}"
    );

    // A signing key on /forward.
    served
        .forward(&key)
        .credential("ed")
        .target("https://example.com/")
        .send()
        .await
        .assert_refused(400, "signing_key_on_forward");
    // Not a signing key, or a payload that does not decode: refused before any approval.
    sign(&served, &key, "plain", &body, true)
        .await
        .assert_refused(400, "invalid_request");
    sign(
        &served,
        &key,
        "ed",
        &json!({"payload": "xyz", "encoding": "hex"}),
        true,
    )
    .await
    .assert_refused(400, "invalid_request");
    sign(&served, &key, "nope", &body, true)
        .await
        .assert_refused(404, "credential_not_found");
    let pending = tap.json(&["pending"]);
    assert_eq!(pending.as_array().unwrap().len(), 0, "{pending}");
}

//! Time is injected: a manual clock expires a pending approval without any
//! sleep or stored-row edit, through the real HTTP pipeline in process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tap_core::crypto::MasterKey;
use tap_core::store::Store;
use tap_core::time::{Clock, ManualClock};
use tap_proxy::config::ProxyConfig;
use tap_proxy::ops::agents::CreateAgent;
use tap_proxy::ops::credentials::{PutCredential, ValueInput};
use tap_proxy::ops::{CredentialSpec, Ops};
use tap_proxy::server::Proxy;
use tap_store::SqliteStore;

/// Bound on waiting for the executor's next tick (it runs every 200 ms).
const EXECUTOR_BOUND: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_expires_when_the_clock_passes_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("tap.db")).await.unwrap());
    let (ops, _) = Ops::init(Arc::clone(&store), MasterKey::generate().unwrap(), None)
        .await
        .unwrap();
    let scope = ops.operator_scope("default", None).await.unwrap();
    let spec = CredentialSpec {
        name: "svc".into(),
        allowed_hosts: vec!["http://127.0.0.1:9".into()],
        ..CredentialSpec::default()
    };
    ops.put_credential(
        &scope,
        PutCredential {
            spec,
            keep_description: false,
            value: Some(ValueInput::from_bytes(b"clock-test-secret-value".to_vec())),
        },
    )
    .await
    .unwrap();
    let key = ops
        .create_agent(
            &scope,
            CreateAgent {
                id: "bot".into(),
                description: None,
                roles: None,
                credentials: Some(vec!["svc".into()]),
                rate_limit_per_hour: None,
            },
        )
        .await
        .unwrap()
        .api_key;

    let mut config = ProxyConfig::from_lookup(|k| match k {
        "TAP_ALLOW_PRIVATE_TARGETS" => Some("true".into()),
        "TAP_APPROVAL_TIMEOUT_SECS" => Some("600".into()),
        _ => None,
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    config.listen = listener.local_addr().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let proxy = Proxy::build_with_clock(
        Arc::clone(&store),
        (*ops.keys).clone(),
        config.clone(),
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(proxy.serve(listener, async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{}", config.listen);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let r = http
        .post(format!("{base}/forward"))
        .header("X-TAP-Key", key.as_str())
        .header("X-TAP-Credential", "svc")
        .header("X-TAP-Target", "http://127.0.0.1:9/items")
        .header("X-TAP-Method", "POST")
        .header("Prefer", "respond-async")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["expires_in"], 600, "{v}");
    let poll = format!("{base}{}", v["poll_url"].as_str().unwrap());
    let status = |http: reqwest::Client, poll: String, key: String| async move {
        let v: serde_json::Value = http
            .get(&poll)
            .header("X-TAP-Key", key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["status"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(
        status(http.clone(), poll.clone(), key.to_string()).await,
        "pending"
    );

    // 599 s later it is still pending; one more second and it has timed out.
    clock.advance(Duration::from_secs(599));
    assert_eq!(
        ops.approvals(&scope, Some(tap_core::model::ApprovalStatus::Pending))
            .await
            .unwrap()
            .len(),
        1,
        "the CLI's own clock is the system's: still pending"
    );
    assert_eq!(
        status(http.clone(), poll.clone(), key.to_string()).await,
        "pending"
    );
    clock.advance(Duration::from_secs(1));
    let started = Instant::now();
    loop {
        let s = status(http.clone(), poll.clone(), key.to_string()).await;
        if s == "timed_out" {
            break;
        }
        assert_eq!(s, "pending");
        assert!(
            started.elapsed() < EXECUTOR_BOUND,
            "the executor never expired it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

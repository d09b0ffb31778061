//! The proxy's own retention task (TAP_AUDIT_RETENTION_DAYS): with an
//! injected clock two days ahead of the rows' stamps, a proxy keeping one day
//! prunes at start and the chain still verifies from its sealed anchor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tap_core::audit::{AuditPhase, AuditRecord};
use tap_core::crypto::MasterKey;
use tap_core::store::{AuditAppend, Store};
use tap_core::time::{Clock, ManualClock};
use tap_proxy::config::ProxyConfig;
use tap_proxy::ops::Ops;
use tap_proxy::server::Proxy;
use tap_store::SqliteStore;

/// Bound on waiting for the executor loop's first pass.
const EXECUTOR_BOUND: Duration = Duration::from_secs(10);
const DAY_MS: i64 = 86_400_000;

/// Serves a proxy keeping audit rows `days` days, with `clock`, until the
/// returned sender fires.
async fn serve(
    store: &Arc<dyn Store>,
    ops: &Ops,
    days: &str,
    clock: Arc<ManualClock>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), tap_proxy::server::ServerError>>,
) {
    let days = days.to_owned();
    let mut config = ProxyConfig::from_lookup(|k| match k {
        "TAP_AUDIT_RETENTION_DAYS" => Some(days.clone()),
        _ => None,
    })
    .expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    config.listen = listener.local_addr().expect("addr");
    let proxy = Proxy::build_with_clock(
        Arc::clone(store),
        (*ops.keys).clone(),
        config,
        clock as Arc<dyn Clock>,
    )
    .await
    .expect("proxy");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(proxy.serve(listener, async move {
        let _ = stopped.await;
    }));
    (stop, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_prunes_rows_older_than_the_retention_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("tap.db")).await.unwrap());
    let (ops, _) = Ops::init(Arc::clone(&store), MasterKey::generate().unwrap(), None)
        .await
        .unwrap();
    let scope = ops.operator_scope("default", None).await.unwrap();
    let team = scope.team.internal_id;
    let now = tap_proxy::clock::now_ms();
    let stamp = tap_proxy::retention::rfc3339_millis(now).unwrap();
    let rows: Vec<AuditAppend> = (0..4)
        .map(|i| AuditAppend {
            team_internal_id: team,
            phase: AuditPhase::Finish,
            record: AuditRecord {
                request_id: format!("req-{i}"),
                team_id: "default".into(),
                agent_id: "bot".into(),
                method: "GET".into(),
                decision: "proceed".into(),
                timestamp: stamp.clone(),
                ..Default::default()
            },
        })
        .collect();
    store.append_audit(&rows).await.unwrap();

    // Keeping one day, two days later: pruned at start down to the last row.
    let later = Arc::new(ManualClock::new(now + 2 * DAY_MS));
    let (stop, server) = serve(&store, &ops, "1", later).await;
    let started = Instant::now();
    loop {
        let chain = store.audit_chain(team).await.unwrap();
        if chain.rows.len() == 1 {
            assert_eq!(chain.first_seq, 4);
            break;
        }
        assert!(
            started.elapsed() < EXECUTOR_BOUND,
            "the retention task never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let v = ops.verify_audit(&scope, None).await.unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.rows, 1);
}

//! The store contract (`tests/contract`) on PostgreSQL: each case in a fresh
//! schema of the database `DATABASE_URL` names, dropped after it, so cases
//! run in parallel without seeing each other's data. Without `DATABASE_URL`
//! every case is skipped with a message.
//!
//! Beside the contract: several `PgStore`s on one database (replicas)
//! appending at once keep one unforked chain per team.

use std::sync::Arc;

use tap_core::audit::{AuditPhase, verify_keyed};
use tap_core::model::ApprovalStatus;
use tap_core::policy::ApprovalMode;
use tap_core::store::{AuditAppend, Store};
use tap_store::PgStore;

mod contract;

/// The test database, or `None` (and a message) when `DATABASE_URL` is unset.
fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ => {
            eprintln!("skipped: DATABASE_URL is not set to a postgres:// URL");
            None
        }
    }
}

/// A schema that exists until this is dropped.
struct TempSchema {
    url: String,
    name: String,
}

impl TempSchema {
    async fn create(url: &str) -> Self {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).expect("random");
        let name = format!(
            "tap_test_{}",
            id.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let admin = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .expect("create schema");
        admin.close().await;
        Self {
            url: url.to_owned(),
            name,
        }
    }

    async fn store(&self) -> PgStore {
        PgStore::connect_in_schema(&self.url, &self.name)
            .await
            .expect("connect")
    }
}

impl Drop for TempSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: drop the schema on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let admin = sqlx::PgPool::connect(&url).await.expect("connect");
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {name} CASCADE")))
                    .execute(&admin)
                    .await
                    .expect("drop schema");
                admin.close().await;
            });
        })
        .join();
        if dropped.is_err() {
            eprintln!("schema {} was not dropped", self.name);
        }
    }
}

async fn pg_store() -> Option<contract::Subject> {
    let url = database_url()?;
    let schema = TempSchema::create(&url).await;
    let store = schema.store().await;
    Some(contract::Subject::new(Arc::new(store), schema))
}

contract::store_contract!(pg_store().await);

/// Two replicas (each its own `PgStore` and pool on one database) append
/// concurrently to two teams; each team ends with one gap-free chain that
/// verifies, every row hashing onto the one before it (no fork).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_appending_at_once_keep_one_unforked_chain_per_team() {
    let Some(url) = database_url() else { return };
    let schema = TempSchema::create(&url).await;
    let replicas: Vec<Arc<dyn Store>> = vec![
        Arc::new(schema.store().await),
        Arc::new(schema.store().await),
    ];
    let a = contract::migrated_with_team(replicas[0].as_ref(), "a").await;
    let b = contract::new_team(replicas[0].as_ref(), "b").await;
    replicas[1]
        .set_audit_key(contract::audit_key())
        .await
        .expect("key on the second replica");
    const WRITERS: usize = 8;
    const BATCHES: usize = 25;
    let stores = replicas.clone();
    contract::race(WRITERS, move |i| {
        let store = Arc::clone(&stores[i % stores.len()]);
        async move {
            for n in 0..BATCHES {
                let id = format!("w{i}-{n}");
                let rows: Vec<AuditAppend> = [a, b]
                    .into_iter()
                    .map(|team| contract::audit_row(team, &id, AuditPhase::Start, "bot", "c"))
                    .collect();
                store.append_audit(&rows).await.expect("append");
            }
        }
    })
    .await;
    for team in [a, b] {
        let chain = replicas[1].audit_chain(team).await.expect("chain");
        let seqs: Vec<i64> = chain.rows.iter().map(|r| r.seq).collect();
        let expected: Vec<i64> = (1..=i64::try_from(WRITERS * BATCHES).expect("small")).collect();
        assert_eq!(seqs, expected, "team {team}: one gap-free sequence");
        for pair in chain.rows.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].row_hash, "team {team}: no fork");
        }
        let verified = verify_keyed(&contract::audit_key(), team, &chain, None);
        assert!(verified.ok, "team {team}: {verified:?}");
    }
}

/// A replica's restart (`fail_interrupted`) leaves alone an approval another
/// live replica is forwarding, and ends it once that replica is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_interrupts_only_approvals_of_replicas_that_are_gone() {
    let Some(url) = database_url() else { return };
    let schema = TempSchema::create(&url).await;
    let forwarding: Arc<dyn Store> = Arc::new(schema.store().await);
    let restarted: Arc<dyn Store> = Arc::new(schema.store().await);
    let team = contract::migrated_with_team(forwarding.as_ref(), "a").await;
    let t = contract::now_ms();
    forwarding
        .create_approval(&contract::approval(team, "in-flight", 1, t - 1000))
        .await
        .expect("create");
    forwarding
        .vote(
            "in-flight",
            "amy@example.com",
            true,
            "web",
            t,
            contract::EVERYONE,
        )
        .await
        .expect("vote");
    assert!(forwarding.claim_approved("in-flight").await.expect("claim"));

    assert_eq!(restarted.fail_interrupted(t).await.expect("fail"), 0);
    let status = |s: Arc<dyn Store>| async move {
        s.approval("in-flight")
            .await
            .expect("read")
            .expect("exists")
            .status
    };
    assert_eq!(
        status(Arc::clone(&restarted)).await,
        ApprovalStatus::Forwarding
    );

    // The forwarding replica dies: its lock goes with its connection.
    drop(forwarding);
    let mut ended = 0;
    for _ in 0..100 {
        ended = restarted.fail_interrupted(t).await.expect("fail");
        if ended == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(ended, 1, "the dead replica's approval was never ended");
    assert_eq!(status(restarted).await, ApprovalStatus::Error);
}

/// Of two replicas exactly one leads a role; when it is gone the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_replica_leads_a_role_and_another_takes_over_when_it_is_gone() {
    let Some(url) = database_url() else { return };
    let schema = TempSchema::create(&url).await;
    let first: Arc<dyn Store> = Arc::new(schema.store().await);
    let second: Arc<dyn Store> = Arc::new(schema.store().await);
    first.migrate().await.expect("migrate");
    assert!(first.lead("telegram-poll").await.expect("lead"));
    assert!(!second.lead("telegram-poll").await.expect("lead"));
    assert!(first.lead("telegram-poll").await.expect("still leads"));
    assert!(!second.lead("telegram-poll").await.expect("still not"));
    // Another role is independent.
    assert!(second.lead("other").await.expect("lead other"));
    drop(first);
    let mut took_over = false;
    for _ in 0..100 {
        if second.lead("telegram-poll").await.expect("lead") {
            took_over = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(took_over, "the second replica never took over");
}

/// A write committed through one replica wakes a waiter on another
/// (LISTEN/NOTIFY), without waiting for a poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_one_replica_wakes_waiters_on_another() {
    let Some(url) = database_url() else { return };
    let schema = TempSchema::create(&url).await;
    let writer: Arc<dyn Store> = Arc::new(schema.store().await);
    let waiter: Arc<dyn Store> = Arc::new(schema.store().await);
    let team = contract::migrated_with_team(writer.as_ref(), "a").await;
    let waiting = Arc::clone(&waiter);
    let woken = tokio::spawn(async move { waiting.changed().await });
    // The listener starts with the first wait: write until it hears one.
    for i in 0..100 {
        if woken.is_finished() {
            break;
        }
        writer
            .set_team_mode(
                team,
                if i % 2 == 0 {
                    ApprovalMode::Autonomous
                } else {
                    ApprovalMode::Gated
                },
            )
            .await
            .expect("write");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(woken.is_finished(), "no write woke the other replica");
    // Once listening, one write is enough, and it arrives at once.
    let waiting = Arc::clone(&waiter);
    let woken = tokio::spawn(async move { waiting.changed().await });
    tokio::task::yield_now().await;
    let started = std::time::Instant::now();
    let mut writes = 0;
    while !woken.is_finished() && writes < 20 {
        writer.set_meta("k", b"v").await.expect("write");
        writes += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(woken.is_finished(), "not woken after {writes} writes");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

/// `url` with `params` (`k=v&…`) added to its query.
fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// The server's certificate file when the server offers TLS and the file is
/// readable here (the server runs on this machine); `None` with a message
/// otherwise (the TLS cases then skip).
async fn server_certificate(url: &str) -> Option<String> {
    let admin = sqlx::PgPool::connect(url).await.expect("connect");
    let ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&admin)
        .await
        .expect("show ssl");
    let file: String = sqlx::query_scalar("SHOW ssl_cert_file")
        .fetch_one(&admin)
        .await
        .expect("show ssl_cert_file");
    admin.close().await;
    if ssl != "on" || std::fs::metadata(&file).is_err() {
        eprintln!(
            "skipped: the test server offers no TLS, or its certificate is not readable here"
        );
        return None;
    }
    Some(file)
}

/// `sslmode=require`: the store's connections are all encrypted (the server
/// says so in `pg_stat_ssl`), and the store works over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_encrypts_every_connection_of_the_store() {
    let Some(url) = database_url() else { return };
    if server_certificate(&url).await.is_none() {
        return;
    }
    let schema = TempSchema::create(&url).await;
    let app = format!("tls-{}", schema.name);
    let tls_url = with_params(&url, &format!("sslmode=require&application_name={app}"));
    let store = PgStore::connect_in_schema(&tls_url, &schema.name)
        .await
        .expect("connect over TLS");
    let team = contract::migrated_with_team(&store, "a").await;
    store
        .set_team_mode(team, ApprovalMode::Autonomous)
        .await
        .expect("write over TLS");
    assert!(store.lead("telegram-poll").await.expect("lead over TLS"));

    let admin = sqlx::PgPool::connect(&url).await.expect("connect");
    let encrypted: Vec<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind(&app)
    .fetch_all(&admin)
    .await
    .expect("pg_stat_ssl");
    admin.close().await;
    // The pool's connections and the role lock's own connection.
    assert!(encrypted.len() >= 2, "{encrypted:?}");
    assert!(encrypted.iter().all(|e| *e), "{encrypted:?}");
}

/// `sslmode=verify-full` checks the server's certificate against the public
/// roots (or `sslrootcert`) and its name: a certificate it cannot verify is
/// refused, never used unverified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_verify_full_refuses_a_certificate_it_cannot_verify_and_takes_its_root() {
    let Some(url) = database_url() else { return };
    let Some(cert) = server_certificate(&url).await else {
        return;
    };
    let schema = TempSchema::create(&url).await;
    // The test server's certificate is its own (Debian's snakeoil): no public
    // root vouches for it.
    let unverified = with_params(&url, "sslmode=verify-full");
    let err = match PgStore::connect_in_schema(&unverified, &schema.name).await {
        Err(e) => e,
        Ok(store) => store
            .migrate()
            .await
            .expect_err("an unverifiable server was used"),
    };
    assert!(
        matches!(err, tap_core::store::StoreError::Unavailable(_)),
        "{err:?}"
    );

    // With the certificate as the root, under the name it is issued for
    // (snakeoil names the machine: `localhost`), the same server verifies.
    let names_localhost = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in", &cert])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("DNS:localhost"))
        .unwrap_or(false);
    if !names_localhost || !url.contains("@127.0.0.1") {
        eprintln!("skipped the verified half: the server's certificate does not name localhost");
        return;
    }
    let verified = with_params(
        &url.replacen("@127.0.0.1", "@localhost", 1),
        &format!("sslmode=verify-full&sslrootcert={cert}"),
    );
    let store = PgStore::connect_in_schema(&verified, &schema.name)
        .await
        .expect("connect with the server's root");
    store.migrate().await.expect("migrate over verified TLS");
    store.ping().await.expect("ping");
}

/// What is kept stays bounded: each counted failure deletes a batch of
/// expired windows, so a wave of failing addresses is gone a few failures
/// after its window ends.
#[tokio::test]
async fn expired_abuse_windows_are_deleted_as_failures_are_counted() {
    use tap_core::store::AbuseKind;
    const MINUTE: i64 = 60_000;
    let Some(url) = database_url() else { return };
    let schema = TempSchema::create(&url).await;
    let store = schema.store().await;
    store.migrate().await.expect("migrate");
    let t0 = 2_000_000_000;
    for i in 0..200 {
        let address = format!("10.2.{}.{}", i / 256, i % 256);
        let counted = store
            .count_abuse_failure(AbuseKind::Login, &address, 5, MINUTE, t0)
            .await
            .expect("count");
        assert_eq!(counted, None);
    }
    for i in 0..4 {
        let address = format!("10.3.0.{i}");
        let counted = store
            .count_abuse_failure(AbuseKind::Login, &address, 5, MINUTE, t0 + MINUTE)
            .await
            .expect("count");
        assert_eq!(counted, None);
    }
    let db = sqlx::PgPool::connect(&url).await.expect("connect");
    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.abuse_failures",
        schema.name
    )))
    .fetch_one(&db)
    .await
    .expect("count rows");
    assert_eq!(rows, 4, "only the windows still open are kept");
    db.close().await;
}

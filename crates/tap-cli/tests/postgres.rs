//! TAP on PostgreSQL through the real binary: `TAP_DATABASE_URL=postgres://…`
//! selects the PostgreSQL store for `tap serve` and for every store command,
//! and `tap migrate --to` moves a SQLite deployment there.
//! Each test runs in a fresh schema of `DATABASE_URL` (dropped after); without
//! it the tests are skipped with a message.

use std::time::Duration;

use serde_json::json;
use tap_testkit::{FakeUpstream, Served, TapHome, TempPg, eventually};

const SECRET: &str = "s3cr3t-value-for-postgres";
/// Configuration changes reach the proxy within 1 s; allow for a loaded machine.
const TRIES: u32 = 100;
const EVERY: Duration = Duration::from_millis(100);

async fn forward(served: &Served, key: &str, up: &FakeUpstream, path: &str) -> u16 {
    served
        .forward(key)
        .credential("echo")
        .target(&format!("{}/{path}", up.base()))
        .send()
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgres_forwards_and_audits_in_the_database() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap")).env("TAP_DATABASE_URL", &pg.url());
    // The first start initialises the empty schema.
    let served = tap.serve();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);

    // The agent and credential were made by the CLI, on the database: the
    // running proxy serves them once it sees the new revision.
    let status = eventually(TRIES, EVERY, || async {
        let s = forward(&served, &key, &up, "first").await;
        (s == 200).then_some(s)
    })
    .await;
    assert_eq!(status, Some(200), "{}", served.log());
    let seen = up.requests();
    assert_eq!(
        seen.last()
            .and_then(|r| r.header("authorization"))
            .as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(forward(&served, &key, &up, "second").await, 200);

    // The audit rows are in PostgreSQL: `tap logs` reads them from there.
    let logs = tap.logs(&[]);
    let second = logs
        .iter()
        .find(|r| {
            r["target_url"]
                .as_str()
                .is_some_and(|t| t.ends_with("/second"))
        })
        .unwrap_or_else(|| panic!("no audit row for /second: {logs:?}"));
    assert_eq!(second["agent_id"], "bot", "{second}");
    assert_eq!(second["decision"], "proceed", "{second}");
    assert_eq!(second["upstream_status"], 200, "{second}");
    // Nothing went to an embedded store.
    assert!(!tap.db_path().exists(), "a SQLite file was created");

    // The chain verifies with the same command as on SQLite.
    let out = tap.run(&["audit", "verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_commands_work_on_postgres_and_init_is_idempotent() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap")).env("TAP_DATABASE_URL", &pg.url());
    let first = tap.init();
    assert_eq!(first["created"], true, "{first}");
    let again = tap.init();
    assert_eq!(again["created"], false, "{again}");
    tap.add_credential(
        "echo",
        SECRET,
        &["--allowed-host", "https://api.example.com"],
    );
    tap.agent("bot", &["--credential", "echo"]);
    let agents = tap.json(&["agent", "list"]);
    assert!(agents.to_string().contains("\"bot\""), "{agents}");
    let creds = tap.json(&["cred", "list"]);
    assert!(creds.to_string().contains("\"echo\""), "{creds}");
    assert!(!creds.to_string().contains(SECRET), "{creds}");
    let migrated = tap.json(&["migrate"]);
    assert_eq!(migrated["migrated"], true, "{migrated}");
    assert!(!tap.db_path().exists(), "a SQLite file was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_sqlite_deployment_serves_the_same_agents_and_verifies_its_chain() {
    let Some(pg) = TempPg::create().await else {
        return;
    };
    let up = FakeUpstream::start().await;
    // A SQLite deployment with traffic in its audit trail.
    let sqlite = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    sqlite.init();
    sqlite.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = sqlite.agent("bot", &["--credential", "echo"]);
    sqlite.ok(&[
        "policy",
        "set",
        "echo",
        "--auto-approve-methods",
        "GET,POST",
    ]);
    let served = sqlite.serve();
    assert_eq!(forward(&served, &key, &up, "before").await, 200);
    // A running proxy owns the store: the copy is refused.
    let busy = sqlite.run(&["migrate", "--to", &pg.url()]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("stop it"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );
    assert_eq!(served.terminate(), Some(0));

    let report = sqlite.json(&["migrate", "--to", &pg.url()]);
    assert_eq!(report["migrated"], true, "{report}");
    assert_eq!(report["tables"]["agents"], 1, "{report}");
    assert_eq!(report["tables"]["credentials"], 1, "{report}");
    assert_eq!(report["tables"]["audit"], 2, "{report}");
    assert_eq!(report["teams"][0]["chain_ok"], true, "{report}");
    // A second copy into the now non-empty database is refused.
    let again = sqlite.run(&["migrate", "--to", &pg.url()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The same master key serves the copy: same agent key, same credential.
    let key_file = sqlite.path("master.key");
    let moved = TapHome::new(env!("CARGO_BIN_EXE_tap"))
        .env("TAP_DATABASE_URL", &pg.url())
        .env(
            "TAP_MASTER_KEY_FILE",
            key_file.to_str().expect("utf-8 path"),
        );
    let served = moved.serve();
    assert_eq!(forward(&served, &key, &up, "after").await, 200);
    assert_eq!(
        up.requests()
            .last()
            .and_then(|r| r.header("authorization"))
            .as_deref(),
        Some(format!("Bearer {SECRET}").as_str())
    );
    let logs = moved.logs(&[]);
    let targets: Vec<&str> = logs
        .iter()
        .filter_map(|r| r["target_url"].as_str())
        .collect();
    assert!(
        targets.iter().any(|t| t.ends_with("/before")),
        "{targets:?}"
    );
    assert!(targets.iter().any(|t| t.ends_with("/after")), "{targets:?}");
    let out = moved.run(&["audit", "verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(
        (v["ok"].clone(), v["rows"].clone()),
        (json!(true), json!(4)),
        "{v}"
    );
    assert_eq!(served.terminate(), Some(0));
}

/// A database URL may hold a password: `--help` and a failed connection
/// never print it (this needs no database).
#[test]
fn the_database_password_is_never_printed() {
    const PASSWORD: &str = "pg-canary-password-7f3a";
    // Port 9 (discard) on loopback: nothing answers as PostgreSQL there.
    let url = format!("postgres://tap:{PASSWORD}@127.0.0.1:9/tap");
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap")).env("TAP_DATABASE_URL", &url);
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["agent", "list"],
        &["init"],
    ] {
        let out = tap.run(args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains(PASSWORD),
            "tap {args:?} printed the password: {all}"
        );
    }
    let failed = tap.run(&["agent", "list"]);
    assert_eq!(failed.status.code(), Some(1));
}

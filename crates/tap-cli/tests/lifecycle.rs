//! `tap init`, `tap serve` start-up and shutdown, `tap status`.

use std::time::Duration;

use tap_testkit::{FakeUpstream, TapHome};

/// Bound on a command that should exit at once.
const EXIT_BOUND: Duration = Duration::from_secs(60);

#[test]
fn init_is_idempotent_and_shows_secrets_once() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let first = tap.init();
    assert_eq!(first["created"], true, "{first}");
    assert_eq!(first["team"], "default");
    assert!(
        first["owner_email"]
            .as_str()
            .is_some_and(|e| e.contains('@'))
    );
    let password = first["owner_password"].as_str().unwrap().to_owned();
    let token = first["admin_token"].as_str().unwrap().to_owned();
    assert!(!password.is_empty() && !token.is_empty());
    let key_file = first["master_key_file"].as_str().unwrap();
    assert_eq!(
        std::path::Path::new(key_file),
        tap.path("master.key"),
        "{first}"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(tap.path("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "master.key is readable by others: {mode:o}"
        );
    }
    let key_before = std::fs::read(tap.path("master.key")).unwrap();

    let second = tap.init();
    assert_eq!(second["created"], false, "{second}");
    assert_eq!(second["team"], "default");
    assert_eq!(second["owner_email"], first["owner_email"]);
    assert!(second.get("owner_password").is_none(), "{second}");
    assert!(second.get("admin_token").is_none(), "{second}");
    let raw = tap.ok(&["init", "--json"]);
    assert!(!raw.contains(&password) && !raw.contains(&token));
    assert_eq!(std::fs::read(tap.path("master.key")).unwrap(), key_before);

    // Pretty output says nothing changed, and shows no secret.
    let pretty = tap.ok(&["init"]);
    assert!(!pretty.contains(&password) && !pretty.contains(&token));
    assert!(pretty.contains("nothing changed"), "{pretty}");
}

#[test]
fn serve_refuses_a_wrong_or_malformed_master_key() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let other = "11".repeat(32);
    for (key, says) in [
        (other.as_str(), "master key does not match"),
        ("not-a-key", "TAP_MASTER_KEY"),
    ] {
        let out = tap.run_bounded(
            &["serve", "--listen", "127.0.0.1:0"],
            &[("TAP_MASTER_KEY", key)],
            EXIT_BOUND,
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "serve with key {key:?} must exit 1"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "unclear message: {stderr}");
        assert!(!stderr.contains("listening on"), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: "),
            "one-line error expected: {stderr}"
        );
        // The other key is never echoed.
        assert!(!stderr.contains(&other), "{stderr}");
    }
    // A missing key file for an initialised store is fatal too.
    std::fs::rename(tap.path("master.key"), tap.root().join("moved.key")).unwrap();
    let out = tap.run_bounded(&["serve", "--listen", "127.0.0.1:0"], &[], EXIT_BOUND);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("master key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With the right key it starts.
    let moved = tap.root().join("moved.key");
    let served = tap.serve_with(&[("TAP_MASTER_KEY_FILE", moved.to_str().unwrap())]);
    assert_eq!(served.terminate(), Some(0));
}

#[test]
fn sigterm_right_after_start_is_graceful() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    // SIGTERM as soon as "listening" is printed: no window where it kills the process.
    for _ in 0..3 {
        assert_eq!(tap.serve().terminate(), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_serve_cleanly_and_audit_survives() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential(
        "echo",
        "s3cr3t-lifecycle-value",
        &["--allowed-host", &up.base()],
    );
    let key = tap.agent("bot", &["--credential", "echo"]);
    let served = tap.serve();
    let r = served
        .forward(&key)
        .credential("echo")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let id = r.request_id();
    let url = served.url.clone();
    assert_eq!(served.terminate(), Some(0), "SIGTERM must exit 0");
    // The queued finish row was written before exit.
    let rows = tap.logs(&[]);
    let row = rows
        .iter()
        .find(|r| r["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(row["upstream_status"], 200, "{row}");
    // And the port is closed.
    assert!(
        tap_testkit::http_client()
            .get(format!("{url}/health"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_store_proxy_and_counts() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential(
        "echo",
        "s3cr3t-status-value",
        &["--allowed-host", &up.base()],
    );
    tap.add_credential(
        "two",
        "s3cr3t-status-value2",
        &["--allowed-host", "api.two.test"],
    );
    tap.agent("bot", &["--credential", "echo"]);

    let down = format!("http://127.0.0.1:{}", tap_testkit::closed_port());
    let v = tap.json(&["status", "--proxy-url", &down]);
    assert_eq!(v["store"], "ok", "{v}");
    assert_eq!(v["proxy"], "unreachable", "{v}");
    assert_eq!(v["agents"], 1, "{v}");
    assert_eq!(v["credentials"], 2, "{v}");
    assert_eq!(v["pending_approvals"], 0, "{v}");
    let key_id = v["key_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    assert!(!key_id.is_empty());
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    for k in [
        "store",
        "proxy",
        "agents",
        "credentials",
        "pending_approvals",
        "key_id",
    ] {
        assert!(keys.iter().any(|x| *x == k), "{k} missing: {v}");
    }

    let served = tap.serve();
    let v = tap.json(&["status", "--proxy-url", &served.url]);
    assert_eq!(v["store"], "ok", "{v}");
    assert_eq!(v["proxy"], "ok", "{v}");
    assert_eq!(v["key_id"], key_id.as_str(), "{v}");
    assert_eq!(served.terminate(), Some(0));

    // Without a store: error, exit 1.
    let empty = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let out = empty.run(&["status", "--json", "--proxy-url", &down]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["store"], "error", "{v}");
}

#[test]
fn serve_on_a_busy_port_creates_nothing() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    let out = tap.run_bounded(&["serve", "--listen", &addr], &[], EXIT_BOUND);
    assert!(!out.status.success(), "serve on a busy port must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr), "names the address: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.to_lowercase().contains("password") && !stdout.contains("admin token"),
        "no first-run credentials printed for a proxy that never ran: {stdout}"
    );
    assert!(
        !tap.db_path().exists() && !tap.path("master.key").exists(),
        "no store and no master key left behind"
    );
    // The port is free again: the same home starts and creates its deployment then.
    drop(busy);
    let served = tap.serve();
    assert!(tap.db_path().exists());
    drop(served);
}

#[test]
fn logs_carry_no_colour_codes_when_not_on_a_terminal() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let served = tap.serve();
    // serve() returns once the "listening" line was read from the pipe.
    let log = served.log();
    assert!(log.contains("listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a piped log: {log:?}"
    );
}

#[test]
fn status_tells_its_own_proxy_from_another_deployments() {
    let mine = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    mine.init();
    let other = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    other.init();
    let served_mine = mine.serve();
    let served_other = other.serve();
    let v = mine.json(&["status", "--proxy-url", &served_mine.url]);
    assert_eq!(v["proxy"], "ok", "{v}");
    assert_eq!(v["store"], "ok", "{v}");
    assert_eq!(
        v["data_dir"].as_str(),
        Some(mine.data_dir().display().to_string().as_str()),
        "{v}"
    );
    assert!(v["audit_spool_bytes"].is_u64(), "{v}");
    let v = mine.json(&["status", "--proxy-url", &served_other.url]);
    assert_eq!(v["proxy"], "other_deployment", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_telegram_channel() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let status = |env: &[(&str, &str)]| {
        let out =
            tokio::task::block_in_place(|| tap.run_bounded(&["status", "--json"], env, EXIT_BOUND));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            !text.contains("123:secret-bot-token"),
            "the token is never printed"
        );
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    assert_eq!(status(&[])["telegram"], "not_configured");
    let bot = tap_testkit::FakeTelegram::start().await;
    let base = bot.base();
    let v = status(&[
        ("TELEGRAM_BOT_TOKEN", "123:secret-bot-token"),
        ("TELEGRAM_API_URL", base.as_str()),
    ]);
    assert_eq!(v["telegram"], "ok", "{v}");
    let closed = format!("http://127.0.0.1:{}", tap_testkit::closed_port());
    let v = status(&[
        ("TELEGRAM_BOT_TOKEN", "123:secret-bot-token"),
        ("TELEGRAM_API_URL", closed.as_str()),
    ]);
    assert_eq!(v["telegram"], "unreachable", "{v}");
}

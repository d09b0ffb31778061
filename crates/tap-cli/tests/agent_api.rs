//! The agent endpoints besides `/forward` (SPEC §3.4), through the real binary.

use std::time::Duration;

use tap_testkit::{FakeUpstream, TapHome, eventually};

const SECRET: &str = "s3cr3t-value-for-agent-api";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_instructions_need_no_key() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let served = tap.serve();

    let h = served.get("/health", None).await;
    assert_eq!(h.status, 200, "{}", h.text());
    h.request_id();
    let v = h.json();
    assert_eq!(v["status"], "ok", "{v}");
    assert!(v["version"].as_str().is_some_and(|s| !s.is_empty()), "{v}");

    let i = served.get("/instructions", None).await;
    assert_eq!(i.status, 200);
    i.request_id();
    let ct = i.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "{ct}");
    let text = i.text();
    for needle in ["/forward", "X-TAP-Key", "X-TAP-Credential", "X-TAP-Target"] {
        assert!(text.contains(needle), "instructions lack {needle}");
    }
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_endpoints_need_a_valid_key() {
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    let served = tap.serve();
    for path in [
        "/agent/services",
        "/agent/config",
        "/agent/bootstrap",
        "/agent/logs?limit=5",
    ] {
        served
            .get(path, None)
            .await
            .assert_refused(401, "missing_tap_key");
        served
            .get(path, Some("tap_not-a-real-key"))
            .await
            .assert_refused(401, "invalid_tap_key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_config_and_bootstrap_describe_what_the_agent_may_use() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential(
        "echo",
        SECRET,
        &[
            "--allowed-host",
            &up.base(),
            "--description",
            "the echo API",
        ],
    );
    tap.add_credential(
        "rel",
        "relative-secret-value",
        &[
            "--api-base",
            &format!("{}/api", up.base()),
            "--relative-target",
            "--allowed-host",
            &up.base(),
        ],
    );
    tap.add_credential(
        "hidden",
        "hidden-secret-value",
        &["--allowed-host", "api.hidden.test"],
    );
    let key = tap.agent("bot", &["--credential", "echo,rel"]);
    let idle = tap.agent("idle", &[]);
    let served = tap.serve();

    let s = served.get("/agent/services", Some(&key)).await;
    assert_eq!(s.status, 200, "{}", s.text());
    s.request_id();
    let text = s.text();
    for secret in [SECRET, "relative-secret-value", "hidden-secret-value"] {
        assert!(!text.contains(secret), "a value in /agent/services");
    }
    assert!(
        !text.contains("hidden"),
        "an ungranted credential is listed"
    );
    let v = s.json();
    // The public TAP shape (SPEC §3.4): services keyed by credential name.
    let services = v["services"].as_object().unwrap_or_else(|| panic!("{v}"));
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, ["echo", "rel"], "{v}");
    let echo = &services["echo"];
    assert_eq!(echo["description"], "the echo API");
    assert_eq!(echo["target_shape"], "full_url");
    assert_eq!(echo["target_is_relative_path"], false);
    assert_eq!(echo["allowed_hosts"], serde_json::json!([up.base()]));
    assert_eq!(echo["auth_mode"], "authorization_header", "{echo}");
    assert_eq!(
        echo["auth_header_names"],
        serde_json::json!(["Authorization"])
    );
    assert_eq!(
        echo["request_template"]["headers"]["X-TAP-Credential"], "echo",
        "{echo}"
    );
    assert_eq!(echo["request_template"]["method"], "POST", "{echo}");
    assert!(
        echo["request_template"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http") && u.ends_with("/forward")),
        "{echo}"
    );
    // Team default `gated`: reads proceed, everything else pauses for a human.
    let approval = &echo["approval"];
    assert_eq!(
        approval["default_decision"], "pauses_for_human",
        "{approval}"
    );
    assert_eq!(
        approval["url_match"],
        "path_prefix_or_exact_host_path_prefix_with_star_segments"
    );
    assert_eq!(
        approval["rules"],
        serde_json::json!([
            {"target": "*", "methods": ["GET", "HEAD"], "decision": "proceeds_immediately"},
            {"target": "*", "methods": ["*"], "decision": "pauses_for_human"}
        ]),
        "{approval}"
    );
    let rel = &services["rel"];
    assert_eq!(rel["target_shape"], "relative_path");
    assert_eq!(rel["target_is_relative_path"], true);
    assert_eq!(rel["target_base"], format!("{}/api", up.base()));
    assert_eq!(v["agent_id"], "bot");
    assert_eq!(v["team_id"], "default");
    assert_eq!(v["home_team_id"], "default");
    assert!(v.get("accounts").is_none(), "{v}");
    // The approval block tells the truth: web and terminal approval work here.
    let channels = v["approval"]["channels"].as_array().unwrap();
    assert!(channels.iter().any(|c| c == "web"), "{v}");
    assert!(v["approval"].get("available").is_none(), "{v}");
    assert_eq!(v["approval"]["timeout_seconds"], 3600, "{v}");
    assert_eq!(v["usage"]["method"], "POST", "{v}");
    assert!(
        v["usage"]["supported_tap_headers"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h == "X-TAP-Credential")),
        "{v}"
    );
    assert!(v["usage"]["request_body"].is_string(), "{v}");
    assert_eq!(v["linked_teams"], serde_json::json!([]), "{v}");

    let c = served.get("/agent/config", Some(&key)).await;
    assert_eq!(c.status, 200, "{}", c.text());
    c.request_id();
    let c = c.json();
    assert_eq!(c["agent_id"], "bot");
    assert_eq!(c["team_id"], "default");
    let creds = c["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 2, "{c}");
    assert_eq!(creds[0]["name"], "echo");
    assert_eq!(creds[0]["description"], "the echo API");
    assert!(creds[0]["api_base"].is_null(), "{c}");
    assert_eq!(creds[1]["name"], "rel");
    assert_eq!(creds[1]["api_base"], format!("{}/api", up.base()));

    let b = served.get("/agent/bootstrap", Some(&key)).await;
    assert_eq!(b.status, 200);
    b.request_id();
    let b = b.json();
    assert_eq!(b["protocol"], "tap");
    assert_eq!(b["version"], 1);
    assert_eq!(b["status"], "ready");
    assert_eq!(b["agent_id"], "bot");
    assert_eq!(b["team_id"], "default");
    assert_eq!(b["credential_count"], 2);
    assert_eq!(b["services_url"], "/agent/services");
    assert_eq!(b["forward_url"], "/forward");
    assert_eq!(b["logs_url"], "/agent/logs");
    assert_eq!(b["safe_to_retry"], true);

    let b = served.get("/agent/bootstrap", Some(&idle)).await.json();
    assert_eq!(b["status"], "needs_credentials", "{b}");
    assert_eq!(b["agent_id"], "idle");
    assert_eq!(b["credential_count"], 0);
    let s = served.get("/agent/services", Some(&idle)).await.json();
    assert_eq!(s["services"], serde_json::json!({}), "{s}");
    assert_eq!(served.terminate(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_the_agents_own_latest_oldest_first() {
    let up = FakeUpstream::start().await;
    let tap = TapHome::new(env!("CARGO_BIN_EXE_tap"));
    tap.init();
    tap.add_credential("echo", SECRET, &["--allowed-host", &up.base()]);
    let key = tap.agent("bot", &["--credential", "echo"]);
    let other = tap.agent("other", &["--credential", "echo"]);
    let served = tap.serve();

    let mut ids = Vec::new();
    for i in 0..3 {
        let r = served
            .forward(&key)
            .credential("echo")
            .target(&format!("{}/echo/{i}", up.base()))
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.request_id());
    }
    let r = served
        .forward(&key)
        .credential("nope")
        .target(&format!("{}/echo", up.base()))
        .send()
        .await;
    r.assert_refused(404, "credential_not_found");
    ids.push(r.request_id());
    let r = served
        .forward(&other)
        .credential("echo")
        .target(&format!("{}/echo/other", up.base()))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let other_id = r.request_id();

    // Wait (bounded) until every finish row is written.
    let all = eventually(100, Duration::from_millis(100), || async {
        let r = served.get("/agent/logs?limit=100", Some(&key)).await;
        let v = r.json();
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        let done = entries.len() == 4
            && entries
                .iter()
                .all(|e| !e["upstream_status"].is_null() || !e["error_code"].is_null());
        done.then_some((r, entries))
    })
    .await;
    let (reply, entries) = all.expect("the agent's audit entries did not appear");
    reply.request_id();
    let got: Vec<&str> = entries
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids, "own entries, oldest first");
    assert!(!reply.text().contains(&other_id), "another agent's entry");
    assert!(!reply.text().contains(SECRET));
    assert!(!reply.text().contains(&key), "agent key in its logs");
    assert!(entries.iter().all(|e| e["agent_id"] == "bot"));

    let r = served.get("/agent/logs?limit=2", Some(&key)).await;
    assert_eq!(r.status, 200);
    r.request_id();
    let v = r.json();
    let got: Vec<&str> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids[2..], "the latest two, oldest first");

    let v = served.get("/agent/logs", Some(&other)).await.json();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{v}");
    assert_eq!(entries[0]["request_id"], other_id.as_str());
    assert_eq!(served.terminate(), Some(0));
}

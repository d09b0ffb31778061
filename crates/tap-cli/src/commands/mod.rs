//! Every command but `serve`: the dispatch, the helpers every command
//! shares, and the commands that are not adapters over one admin operation
//! (`init`, `status`, `test`). The admin commands live one per file, each a
//! thin adapter: open the store, take the operator's scope, call the admin
//! service, print its view (`--json`) or a human rendering of it.

mod add;
mod agent;
mod audit;
mod cred;
mod logs;
mod role;
mod team;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tap_core::model::Team;
use tap_proxy::ops::agents::CreateAgent;
use tap_proxy::ops::{Ops as Admin, Scope};

use crate::env::Globals;
use crate::init_report::print_init;
use crate::{AuditCmd, Cli, Command, TestArgs};

pub(crate) async fn run(cli: Cli) -> Result<ExitCode> {
    let g = Globals {
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        team: cli.team,
        json: cli.json,
    };
    match cli.command {
        Command::Init { admin_email } => init(&g, admin_email.as_deref()).await,
        Command::Serve { listen } => crate::serve::serve(&g, listen).await,
        Command::Status { proxy_url } => status(&g, proxy_url).await,
        Command::Add(a) => add::add(&g, a).await,
        Command::Cred(c) => cred::cred(&g, c).await,
        Command::Agent(c) => agent::agent(&g, c).await,
        Command::Role(c) => role::role(&g, c).await,
        Command::Team(c) => team::team(&g, c).await,
        Command::Logs(a) => logs::logs(&g, a).await,
        Command::Test(a) => test(&g, a).await,
        Command::Audit(AuditCmd::Verify { anchor }) => audit::verify(&g, anchor.as_ref()).await,
        Command::Audit(AuditCmd::Anchor) => audit::anchor(&g).await,
        Command::Policy(c) => crate::governance::policy(&g, c).await,
        Command::Grant(c) => crate::governance::grant(&g, c).await,
        Command::Member(c) => crate::governance::member(&g, c).await,
        Command::Pending => crate::governance::pending(&g).await,
        Command::Link(c) => crate::governance::link(&g, c).await,
        Command::Token(c) => crate::governance::token(&g, c).await,
        Command::Channel(c) => crate::governance::channel(&g, c).await,
        Command::Approve { txn, as_email } => {
            crate::governance::decide(&g, &txn, as_email, true).await
        }
        Command::Deny { txn, as_email } => {
            crate::governance::decide(&g, &txn, as_email, false).await
        }
        Command::Migrate => {
            let store = g.open_store(true).await?;
            store.migrate().await?;
            emit(&g, &json!({"migrated": true}), || {
                "store schema is up to date".into()
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn emit(g: &Globals, v: &Value, pretty: impl FnOnce() -> String) {
    if g.json {
        println!("{v}");
    } else {
        println!("{}", pretty());
    }
}

async fn init(g: &Globals, admin_email: Option<&str>) -> Result<ExitCode> {
    let store = g.open_store(true).await?;
    let (key, source) = if store.is_initialized().await? {
        g.require_key()?
    } else {
        g.key_or_generate()?
    };
    let (_, report) = Admin::init(store, key, admin_email).await?;
    print_init(g, &report, &source)?;
    Ok(ExitCode::SUCCESS)
}

async fn open(g: &Globals) -> Result<Admin> {
    let store = g.open_store(false).await?;
    let (key, _) = g.require_key()?;
    Ok(Admin::open(store, key).await?)
}

pub(crate) async fn open_team(g: &Globals) -> Result<(Admin, Team)> {
    let admin = open(g).await?;
    let team = admin.team(&g.team).await?;
    Ok((admin, team))
}

/// The admin service and the local operator's scope in `--team`: the
/// operator holds the master key and acts as an owner.
pub(crate) async fn operator(g: &Globals) -> Result<(Admin, Scope)> {
    let admin = open(g).await?;
    let scope = admin.operator_scope(&g.team, None).await?;
    Ok((admin, scope))
}

/// `--json`: the view as one JSON document; otherwise the human rendering.
pub(crate) fn emit_view<T: serde::Serialize>(
    g: &Globals,
    view: &T,
    pretty: impl FnOnce() -> String,
) -> Result<()> {
    if g.json {
        println!("{}", serde_json::to_string(view)?);
    } else {
        println!("{}", pretty());
    }
    Ok(())
}

fn default_proxy_url() -> String {
    let addr = std::env::var("TAP_LISTEN_ADDR")
        .unwrap_or_else(|_| tap_proxy::config::DEFAULT_LISTEN.into());
    format!("http://{}", addr.trim())
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build an HTTP client")
}

async fn status(g: &Globals, proxy_url: Option<String>) -> Result<ExitCode> {
    let mut v = json!({"store": "error", "proxy": "unreachable", "agents": 0, "credentials": 0, "pending_approvals": 0, "key_id": Value::Null});
    let mut problem = None;
    match open_team(g).await {
        Ok((admin, team)) => {
            v["store"] = json!("ok");
            v["agents"] = json!(admin.store.agents(team.internal_id).await?.len());
            v["credentials"] = json!(admin.store.credentials(team.internal_id).await?.len());
            v["key_id"] = json!(admin.keys.kek().key_id());
        }
        Err(e) => problem = Some(e.to_string()),
    }
    let url = proxy_url.unwrap_or_else(default_proxy_url);
    let client = http_client()?;
    if let Ok(r) = client
        .get(format!("{}/health", url.trim_end_matches('/')))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        && r.status().is_success()
    {
        v["proxy"] = json!("ok");
    }
    emit(g, &v, || {
        let mut s = format!(
            "store: {}\nproxy: {} ({url})\nagents: {}\ncredentials: {}\npending approvals: {}\nkey id: {}",
            v["store"].as_str().unwrap_or(""),
            v["proxy"].as_str().unwrap_or(""),
            v["agents"],
            v["credentials"],
            v["pending_approvals"],
            v["key_id"].as_str().unwrap_or("-"),
        );
        if let Some(p) = &problem {
            s.push_str(&format!("\nstore problem: {p}"));
        }
        s
    });
    Ok(if problem.is_some() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn test(g: &Globals, a: TestArgs) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    let team = &scope.team;
    let cred = admin
        .store
        .credential(team.internal_id, &a.credential)
        .await?
        .ok_or_else(|| {
            anyhow!(
                "credential {} not found in team {}",
                a.credential,
                team.slug
            )
        })?;
    let target = match a.target.clone() {
        Some(t) => t,
        None if cred.relative_target => "/".into(),
        None => match (&cred.api_base, cred.allowed_hosts.first()) {
            (Some(b), _) => b.clone(),
            (None, Some(h)) if h.starts_with("http://") || h.starts_with("https://") => {
                format!("{h}/")
            }
            (None, Some(h)) => format!("https://{}/", h.trim_start_matches("*.")),
            (None, None) => bail!("give --target: the credential has no api_base or allowed host"),
        },
    };
    let proxy = a.proxy_url.clone().unwrap_or_else(default_proxy_url);
    let proxy = proxy.trim_end_matches('/').to_owned();
    let id = format!("tap-test-{}", random_suffix()?);
    let made = admin
        .create_agent(
            &scope,
            CreateAgent {
                id: id.clone(),
                description: Some("throwaway agent of `tap test`".into()),
                credentials: Some(vec![a.credential.clone()]),
                ..CreateAgent::default()
            },
        )
        .await?;
    let result = run_test(&proxy, &made.api_key, &a, &target).await;
    let _ = admin.delete_agent(&scope, &id).await;
    let report = result?;
    let ok = report["ok"].as_bool().unwrap_or(false);
    emit(g, &report, || {
        let mut s = String::new();
        if let Some(steps) = report["steps"].as_array() {
            for st in steps {
                s.push_str(&format!(
                    "{} {:<8} {}\n",
                    if st["ok"].as_bool().unwrap_or(false) {
                        "ok  "
                    } else {
                        "FAIL"
                    },
                    st["step"].as_str().unwrap_or(""),
                    st["detail"].as_str().unwrap_or("")
                ));
            }
        }
        s.trim_end().to_owned()
    });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A random lower-case suffix for throwaway names.
fn random_suffix() -> Result<String> {
    let raw = tap_core::crypto::generate_password().map_err(|e| anyhow!(e.to_string()))?;
    Ok(raw
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .take(8)
        .collect())
}

async fn run_test(proxy: &str, key: &str, a: &TestArgs, target: &str) -> Result<Value> {
    let client = http_client()?;
    let mut steps = Vec::new();
    // The new agent becomes visible to the proxy within its reload interval.
    let mut ready = false;
    for _ in 0..30 {
        match client
            .get(format!("{proxy}/agent/bootstrap"))
            .header("X-TAP-Key", key)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                ready = true;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => {
                steps.push(json!({"step": "proxy", "ok": false, "detail": format!("proxy at {proxy} unreachable: {}", e.without_url())}));
                return Ok(
                    json!({"ok": false, "credential": a.credential, "target": target, "method": a.method, "steps": steps}),
                );
            }
        }
    }
    steps.push(json!({"step": "auth", "ok": ready, "detail": if ready { "throwaway agent authenticated" } else { "the proxy did not accept the throwaway agent" }}));
    if !ready {
        return Ok(
            json!({"ok": false, "credential": a.credential, "target": target, "method": a.method, "steps": steps}),
        );
    }
    let resp = client
        .post(format!("{proxy}/forward"))
        .header("X-TAP-Key", key)
        .header("X-TAP-Credential", &a.credential)
        .header("X-TAP-Target", target)
        .header("X-TAP-Method", &a.method)
        .send()
        .await
        .map_err(|e| anyhow!("request to the proxy failed: {}", e.without_url()))?;
    let status = resp.status().as_u16();
    let tap_error = resp
        .headers()
        .get("x-tap-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.text().await.unwrap_or_default();
    let scrubbed = body.contains(&format!("[REDACTED:{}", a.credential));
    let ok = match &tap_error {
        None => {
            steps.push(json!({"step": "policy", "ok": true, "detail": "request proceeded"}));
            steps.push(json!({"step": "inject", "ok": true, "detail": "credential injected"}));
            steps.push(json!({"step": "upstream", "ok": status < 500, "detail": format!("upstream answered {status}")}));
            steps.push(json!({"step": "scrub", "ok": true, "detail": if scrubbed { "secret echoed by the upstream was redacted" } else { "no secret in the answer" }}));
            status < 500
        }
        Some(code) => {
            let msg = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(str::to_owned))
                .unwrap_or_default();
            steps.push(
                json!({"step": "proxy", "ok": false, "detail": format!("{status} {code}: {msg}")}),
            );
            false
        }
    };
    Ok(json!({
        "ok": ok,
        "credential": a.credential,
        "target": target,
        "method": a.method.to_ascii_uppercase(),
        "upstream_status": if tap_error.is_none() { json!(status) } else { Value::Null },
        "error_code": tap_error,
        "scrubbed": scrubbed,
        "steps": steps,
    }))
}

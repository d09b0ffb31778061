//! `tap test CREDENTIAL`: one real request through the running proxy with a
//! throwaway agent, step by step as it happens. A write that needs a human
//! says so at once (with the command that approves it), waits up to
//! `--timeout`, and names who approved. The throwaway agent is removed on
//! every exit path, Ctrl-C and SIGTERM included.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};
use tap_proxy::ops::agents::CreateAgent;

use super::{default_proxy_url, emit, http_client, operator};
use crate::TestArgs;
use crate::env::Globals;

/// The steps so far; each is printed as it is added unless `--json`.
struct Steps {
    json: bool,
    list: Vec<Value>,
}

impl Steps {
    fn push(&mut self, step: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        if !self.json {
            println!("{} {step:<8} {detail}", if ok { "ok  " } else { "FAIL" });
        }
        self.list
            .push(json!({"step": step, "ok": ok, "detail": detail}));
    }

    /// A line that is not a step outcome (waiting).
    fn note(&self, text: &str) {
        if !self.json {
            println!("...  {text}");
        }
    }
}

pub(crate) async fn test(g: &Globals, a: TestArgs) -> Result<ExitCode> {
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
    let mut steps = Steps {
        json: g.json,
        list: Vec::new(),
    };
    // Whatever happens next, the throwaway agent goes away.
    let outcome = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = run_test(&proxy, &made.api_key, &a, &target, &mut steps) => r,
            _ = int.recv() => Err(anyhow!("interrupted")),
            _ = term.recv() => Err(anyhow!("terminated")),
        }
    };
    let removed = admin.delete_agent(&scope, &id).await;
    if let Err(e) = &removed {
        eprintln!(
            "warning: could not remove the throwaway agent {id}: {e}; remove it with `tap agent delete {id}`"
        );
    }
    let mut report = outcome?;
    report["steps"] = Value::Array(steps.list);
    let ok = report["ok"].as_bool().unwrap_or(false);
    if g.json {
        emit(g, &report, String::new);
    }
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

fn report(a: &TestArgs, target: &str, ok: bool) -> Value {
    json!({
        "ok": ok,
        "credential": a.credential,
        "target": target,
        "method": a.method.to_ascii_uppercase(),
        "upstream_status": Value::Null,
        "error_code": Value::Null,
        "scrubbed": false,
        "approved_by": Value::Null,
    })
}

async fn run_test(
    proxy: &str,
    key: &str,
    a: &TestArgs,
    target: &str,
    steps: &mut Steps,
) -> Result<Value> {
    let client = http_client()?;
    // An agent created through the admin service is usable at once by a
    // proxy on this store; a proxy of another process sees it within 1 s.
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
                steps.push(
                    "proxy",
                    false,
                    format!("proxy at {proxy} unreachable: {}", e.without_url()),
                );
                return Ok(report(a, target, false));
            }
        }
    }
    if !ready {
        steps.push(
            "auth",
            false,
            "the proxy did not accept the throwaway agent",
        );
        return Ok(report(a, target, false));
    }
    steps.push("auth", true, "throwaway agent authenticated");
    let resp = client
        .post(format!("{proxy}/forward"))
        .header("X-TAP-Key", key)
        .header("X-TAP-Credential", &a.credential)
        .header("X-TAP-Target", target)
        .header("X-TAP-Method", &a.method)
        .header("Prefer", "respond-async")
        .send()
        .await
        .map_err(|e| anyhow!("request to the proxy failed: {}", e.without_url()))?;
    let mut status = resp.status().as_u16();
    let tap_error = resp
        .headers()
        .get("x-tap-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = resp.text().await.unwrap_or_default();
    let mut out = report(a, target, false);
    if let Some(code) = &tap_error {
        let msg = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_owned))
            .unwrap_or_default();
        steps.push("policy", false, format!("{status} {code}: {msg}"));
        out["error_code"] = json!(code);
        return Ok(out);
    }
    if status == 202 {
        let accepted: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let txn = accepted["txn_id"].as_str().unwrap_or_default().to_owned();
        steps.push("policy", true, "needs a human");
        steps.note(&format!(
            "waiting for approval (up to {} s) — approve with `tap approve {txn}` or open {}",
            a.timeout,
            accepted["approval_url"]
                .as_str()
                .unwrap_or("the approval page")
        ));
        let poll = format!("{proxy}/agent/approvals/{txn}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(a.timeout);
        let last = loop {
            let v: Value = client
                .get(&poll)
                .header("X-TAP-Key", key)
                .send()
                .await
                .map_err(|e| anyhow!("polling the approval failed: {}", e.without_url()))?
                .json()
                .await
                .unwrap_or(Value::Null);
            let st = v["status"].as_str().unwrap_or("").to_owned();
            if st != "pending" && st != "approved" {
                break v;
            }
            if tokio::time::Instant::now() >= deadline {
                steps.push(
                    "approval",
                    false,
                    format!(
                        "still pending after {} s; it stays decidable: `tap approve {txn}`",
                        a.timeout
                    ),
                );
                out["error_code"] = json!("approval_pending");
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let who = last["decided_by"]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        out["approved_by"] = json!(who);
        match last["status"].as_str() {
            Some("forwarded") => {
                steps.push("approval", true, format!("approved by {who}"));
                status = last["response"]["status"].as_u64().unwrap_or(0) as u16;
                body = last["response"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
            other => {
                let st = other.unwrap_or("unknown");
                let detail = if who.is_empty() {
                    st.to_owned()
                } else {
                    format!("{st} (decided by {who})")
                };
                steps.push("approval", false, detail);
                out["error_code"] = last["error_code"].clone();
                return Ok(out);
            }
        }
    } else {
        steps.push("policy", true, "request proceeded");
    }
    let scrubbed = body.contains(&format!("[REDACTED:{}", a.credential));
    steps.push("inject", true, "credential injected");
    steps.push(
        "upstream",
        status < 500,
        format!("upstream answered {status}"),
    );
    steps.push(
        "scrub",
        true,
        if scrubbed {
            "secret echoed by the upstream was redacted"
        } else {
            "no secret in the answer"
        },
    );
    out["ok"] = json!(status < 500);
    out["upstream_status"] = json!(status);
    out["scrubbed"] = json!(scrubbed);
    Ok(out)
}

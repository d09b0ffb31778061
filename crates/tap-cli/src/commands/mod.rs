//! Every command but `serve`: the dispatch, the helpers every command
//! shares, and the commands that are not adapters over one admin operation
//! (`init`, `status`, `test`). The admin commands live one per file, each a
//! thin adapter: open the store, take the operator's scope, call the admin
//! service, print its view (`--json`) or a human rendering of it.

mod add;
mod agent;
mod audit;
mod backup;
mod cred;
mod key;
mod logs;
pub(crate) mod mcp;
mod migrate;
mod role;
mod team;
mod test;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tap_core::model::Team;
use tap_proxy::ops::{Ops as Admin, Scope};

use crate::env::Globals;
use crate::init_report::print_init;
use crate::{AuditCmd, Cli, Command};

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
        Command::Test(a) => test::test(&g, a).await,
        Command::Audit(AuditCmd::Verify { anchor }) => audit::verify(&g, anchor.as_ref()).await,
        Command::Audit(AuditCmd::Anchor) => audit::anchor(&g).await,
        Command::Audit(AuditCmd::Prune { days, before }) => {
            audit::prune(&g, days, before.as_deref()).await
        }
        Command::Policy(c) => crate::governance::policy(&g, c).await,
        Command::Grant(c) => crate::governance::grant(&g, c).await,
        Command::Member(c) => crate::governance::member(&g, c).await,
        Command::Pending { cmd: None } => crate::governance::pending(&g).await,
        Command::Pending {
            cmd: Some(crate::PendingCmd::Show { txn }),
        } => crate::governance::pending_show(&g, &txn).await,
        Command::Link(c) => crate::governance::link(&g, c).await,
        Command::Token(c) => crate::governance::token(&g, c).await,
        Command::Channel(c) => crate::governance::channel(&g, c).await,
        Command::Approve { txn, as_email } => {
            crate::governance::decide(&g, &txn, as_email, true).await
        }
        Command::Deny { txn, as_email } => {
            crate::governance::decide(&g, &txn, as_email, false).await
        }
        Command::Mcp(a) => mcp::mcp(a).await,
        Command::McpConfig(a) => mcp::mcp_config(&g, a),
        Command::Backup { file } => backup::backup(&g, &file).await,
        Command::Key(crate::KeyCmd::Rotate {
            new_key_file,
            reencrypt,
        }) => key::rotate(&g, new_key_file, reencrypt).await,
        Command::Restore { file } => backup::restore(&g, &file).await,
        Command::Completions { .. } | Command::Man => {
            unreachable!("completions and man are answered before the runtime starts")
        }
        Command::Migrate { to: Some(url) } => migrate::to_postgres(&g, &url).await,
        Command::Migrate { to: None } => {
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
    let (store, fresh) = g.open_store_for_init().await?;
    let made = async {
        let (key, source) = if store.is_initialized().await? {
            g.require_key()?
        } else {
            g.key_or_generate()?
        };
        let (_, report) = Admin::init(Arc::clone(&store), key, admin_email).await?;
        Ok::<_, anyhow::Error>((report, source))
    }
    .await;
    match made {
        Ok((report, source)) => {
            print_init(g, &report, &source)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if fresh {
                drop(store);
                g.discard_fresh_store();
            }
            Err(e)
        }
    }
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

pub(crate) fn default_proxy_url() -> String {
    let addr = std::env::var("TAP_LISTEN_ADDR")
        .unwrap_or_else(|_| tap_proxy::config::DEFAULT_LISTEN.into());
    format!("http://{}", addr.trim())
}

pub(crate) fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build an HTTP client")
}

/// Most pending approvals `tap status` counts (each agent may hold 20 at once).
const MAX_COUNTED_PENDING: u32 = 100_000;

/// Approvals of the team still waiting for a decision: pending and not past
/// their expiry (the executor may not have swept an expired one yet), as
/// `tap pending` lists them.
async fn pending_approvals(admin: &Admin, team: i64) -> Result<usize> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let pending = admin
        .store
        .approvals(
            team,
            Some(tap_core::model::ApprovalStatus::Pending),
            MAX_COUNTED_PENDING,
        )
        .await?;
    Ok(pending.iter().filter(|a| a.expires_at > now).count())
}

/// The Telegram channel as this environment configures it: `not_configured`
/// without `TELEGRAM_BOT_TOKEN`, else what the Bot API answers to `getMe`
/// (`ok`, `invalid_token`, `unreachable`). The token is in the URL path and
/// never printed.
async fn telegram_health(client: &reqwest::Client) -> &'static str {
    let Some(token) = std::env::var("TELEGRAM_BOT_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
    else {
        return "not_configured";
    };
    let base = std::env::var("TELEGRAM_API_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| tap_proxy::config::DEFAULT_API_URL.to_owned());
    let answer = client
        .post(format!(
            "{}/bot{}/getMe",
            base.trim_end_matches('/'),
            token.trim()
        ))
        .header("content-type", "application/json")
        .body("{}")
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => match r.json::<Value>().await {
            Ok(v) if v["ok"] == true => "ok",
            _ => "unreachable",
        },
        Ok(r) if r.status().as_u16() == 401 || r.status().as_u16() == 404 => "invalid_token",
        _ => "unreachable",
    }
}

async fn status(g: &Globals, proxy_url: Option<String>) -> Result<ExitCode> {
    let mut v = json!({"store": "error", "proxy": "unreachable", "agents": 0, "credentials": 0, "pending_approvals": 0, "key_id": Value::Null});
    let mut problem = None;
    let mut store_id: Option<String> = None;
    v["data_dir"] = json!(g.data_dir.display().to_string());
    match open_team(g).await {
        Ok((admin, team)) => {
            v["store"] = json!("ok");
            v["agents"] = json!(admin.store.agents(team.internal_id).await?.len());
            v["credentials"] = json!(admin.store.credentials(team.internal_id).await?.len());
            v["pending_approvals"] = json!(pending_approvals(&admin, team.internal_id).await?);
            v["key_id"] = json!(admin.keys.kek_id());
            store_id = admin
                .store
                .meta(tap_proxy::keyring::STORE_ID_META)
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned());
        }
        Err(e) => problem = Some(e.to_string()),
    }
    // Rows made durable in the spool but not yet folded into the store.
    let spool = g.data_dir.join("tap.db.audit-spool");
    v["audit_spool_bytes"] = json!(std::fs::metadata(&spool).map_or(0, |m| m.len()));
    let url = proxy_url.unwrap_or_else(default_proxy_url);
    let client = http_client()?;
    if let Ok(r) = client
        .get(format!("{}/health", url.trim_end_matches('/')))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        && r.status().is_success()
    {
        let served = r
            .headers()
            .get("x-tap-store-id")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        // A proxy that answers but serves another store is not this
        // deployment's proxy.
        v["proxy"] = match (&store_id, &served) {
            (Some(mine), Some(theirs)) if mine != theirs => json!("other_deployment"),
            _ => json!("ok"),
        };
    }
    v["telegram"] = json!(telegram_health(&client).await);
    emit(g, &v, || {
        let mut s = format!(
            "store: {}\nproxy: {} ({url})\ntelegram: {}\ndata dir: {}\nagents: {}\ncredentials: {}\npending approvals: {}\naudit spool: {} bytes not yet folded\nkey id: {}",
            v["store"].as_str().unwrap_or(""),
            v["proxy"].as_str().unwrap_or(""),
            v["telegram"].as_str().unwrap_or(""),
            v["data_dir"].as_str().unwrap_or(""),
            v["agents"],
            v["credentials"],
            v["pending_approvals"],
            v["audit_spool_bytes"],
            v["key_id"].as_str().unwrap_or("-"),
        );
        if v["proxy"] == "other_deployment" {
            s.push_str(
                "\nthe proxy at that address serves another store (another data dir or database)",
            );
        }
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

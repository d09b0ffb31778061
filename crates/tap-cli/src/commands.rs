//! Every command but `serve`.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use comfy_table::Table;
use serde_json::{Value, json};
use tap_core::audit::{AuditPhase, AuditRecord, merge_rows};
use tap_core::inject::AuthBinding;
use tap_core::model::{Agent, Connector, Credential, Role, Team};
use tap_core::store::AuditQuery;
use tap_proxy::ops::{CredentialSpec, InitReport, Ops as Admin};
use zeroize::Zeroizing;

use crate::env::{Globals, KeySource, display};
use crate::{
    AddArgs, AgentCmd, AuditCmd, Cli, Command, CredCmd, LogsArgs, RoleCmd, TeamCmd, TestArgs,
};

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
        Command::Add(a) => add(&g, a).await,
        Command::Cred(c) => cred(&g, c).await,
        Command::Agent(c) => agent(&g, c).await,
        Command::Role(c) => role(&g, c).await,
        Command::Team(c) => team(&g, c).await,
        Command::Logs(a) => logs(&g, a).await,
        Command::Test(a) => test(&g, a).await,
        Command::Audit(AuditCmd::Verify) => audit_verify(&g).await,
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

pub(crate) fn rfc3339(ms: i64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

pub(crate) fn print_init(g: &Globals, r: &InitReport, source: &KeySource) -> Result<()> {
    let key_file = match source {
        KeySource::DataDir(p) | KeySource::File(p) => Value::String(display(p)),
        KeySource::Env | KeySource::Command => Value::Null,
    };
    if g.json {
        let mut v = json!({
            "created": r.created,
            "data_dir": display(&g.data_dir),
            "team": r.team,
            "owner_email": r.owner_email,
            "master_key_file": key_file,
        });
        if let (Some(pw), Some(tok)) = (&r.owner_password, &r.admin_token) {
            v["owner_password"] = json!(pw);
            v["admin_token"] = json!(tok);
        }
        println!("{v}");
    } else if r.created {
        println!("TAP initialised in {}", display(&g.data_dir));
        println!("  team:           {}", r.team);
        println!("  owner:          {}", r.owner_email);
        if let (Some(pw), Some(tok)) = (&r.owner_password, &r.admin_token) {
            println!("  owner password: {pw}");
            println!("  admin token:    {tok}");
        }
        if let Some(k) = key_file.as_str() {
            println!(
                "  master key:     {k}  (keep it safe; without it the store cannot be opened)"
            );
        }
        println!("The password and token are shown only now.");
    } else {
        println!(
            "TAP is already initialised in {} (team {}, owner {}); nothing changed.",
            display(&g.data_dir),
            r.team,
            r.owner_email
        );
    }
    Ok(())
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

fn read_value(value_stdin: bool, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if value_stdin {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the value from stdin")?;
        return Ok(Some(buf));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let v = rpassword::prompt_password(format!(
        "Value for {name} (input hidden, empty keeps the current value): "
    ))
    .context("cannot read the value")?;
    let v = Zeroizing::new(v.into_bytes());
    if v.trim_ascii().is_empty() {
        return Ok(None);
    }
    Ok(Some(v))
}

fn parse_bindings(a: &AddArgs) -> Result<Vec<AuthBinding>> {
    let mut out = Vec::new();
    for (raw, query) in a
        .bind
        .iter()
        .map(|b| (b, false))
        .chain(a.bind_query.iter().map(|b| (b, true)))
    {
        let (k, f) = raw.split_once('=').ok_or_else(|| {
            anyhow!("binding {raw:?} must look like NAME=FORMAT, e.g. X-Api-Key={{value}}")
        })?;
        out.push(AuthBinding {
            header: (!query).then(|| k.trim().to_owned()),
            query: query.then(|| k.trim().to_owned()),
            format: f.to_owned(),
        });
    }
    Ok(out)
}

async fn add(g: &Globals, a: AddArgs) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let existing = admin.store.credential(team.internal_id, &a.name).await?;
    let connector: Connector = a
        .connector
        .parse()
        .map_err(|e: tap_core::model::ParseEnumError| anyhow!(e))?;
    let spec = CredentialSpec {
        name: a.name.clone(),
        description: a
            .description
            .clone()
            .or_else(|| existing.as_ref().map(|c| c.description.clone()))
            .unwrap_or_default(),
        connector,
        api_base: a.api_base.clone(),
        relative_target: a.relative_target,
        auth_header_format: a.auth_header_format.clone(),
        auth_bindings: parse_bindings(&a)?,
        allowed_hosts: a
            .allowed_host
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        allow_any_host: a.allow_any_host,
    };
    // Validate before asking for the value.
    spec.clone().validate()?;
    let raw = read_value(a.value_stdin, &a.name)?;
    let value = raw.as_ref().map(|r| Admin::parse_value(r)).transpose()?;
    if value.is_none() && existing.is_none() && a.value_stdin {
        bail!("no value given on stdin");
    }
    let created = admin.put_credential(&team, spec, value.as_ref()).await?;
    let c = admin
        .store
        .credential(team.internal_id, &a.name)
        .await?
        .ok_or_else(|| anyhow!("credential {} vanished", a.name))?;
    let mut v = cred_json(&c);
    v["created"] = json!(created);
    emit(g, &v, || {
        format!(
            "{} credential {} in team {} ({})",
            if created { "Added" } else { "Updated" },
            c.name,
            team.slug,
            if c.sealed_value.is_some() {
                "value set"
            } else {
                "no value yet: tap cred set-value"
            }
        )
    });
    Ok(ExitCode::SUCCESS)
}

fn cred_json(c: &Credential) -> Value {
    json!({
        "name": c.name,
        "description": c.description,
        "connector": c.connector.as_str(),
        "api_base": c.api_base,
        "relative_target": c.relative_target,
        "auth_header_format": c.auth_header_format,
        "auth_bindings": c.auth_bindings,
        "allowed_hosts": c.allowed_hosts,
        "allow_any_host": c.allow_any_host,
        "value_set": c.sealed_value.is_some(),
        "value_kind": if c.sealed_value.is_none() { Value::Null } else if c.value_is_json { json!("json") } else { json!("text") },
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

async fn cred(g: &Globals, c: CredCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    match c {
        CredCmd::List => {
            let creds = admin.store.credentials(team.internal_id).await?;
            let arr: Vec<Value> = creds.iter().map(cred_json).collect();
            emit(g, &Value::Array(arr), || {
                let mut t = Table::new();
                t.set_header(["name", "hosts", "value", "description"]);
                for c in &creds {
                    t.add_row([
                        c.name.clone(),
                        if c.allow_any_host {
                            "*".into()
                        } else {
                            c.allowed_hosts.join(", ")
                        },
                        if c.sealed_value.is_some() {
                            "set".into()
                        } else {
                            "missing".into()
                        },
                        c.description.clone(),
                    ]);
                }
                t.to_string()
            });
        }
        CredCmd::Show { name } => {
            let c = admin
                .store
                .credential(team.internal_id, &name)
                .await?
                .ok_or_else(|| anyhow!("credential {name} not found in team {}", team.slug))?;
            let mut v = cred_json(&c);
            if let Some(p) = admin.store.policy(team.internal_id, &name).await? {
                v["policy"] = serde_json::to_value(p)?;
            }
            emit(g, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        CredCmd::Rm { name } => {
            if !admin
                .store
                .delete_credential(team.internal_id, &name)
                .await?
            {
                bail!("credential {name} not found in team {}", team.slug);
            }
            emit(g, &json!({"deleted": name}), || {
                format!("Deleted credential {name}")
            });
        }
        CredCmd::SetValue { name, value_stdin } => {
            if admin
                .store
                .credential(team.internal_id, &name)
                .await?
                .is_none()
            {
                bail!("credential {name} not found in team {}", team.slug);
            }
            let raw = read_value(value_stdin, &name)?
                .ok_or_else(|| anyhow!("no value given; use --value-stdin or a terminal"))?;
            let value = Admin::parse_value(&raw)?;
            admin.set_credential_value(&team, &name, &value).await?;
            emit(g, &json!({"name": name, "value_set": true}), || {
                format!("Value of {name} replaced")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn agent_json(a: &Agent) -> Value {
    json!({
        "id": a.id,
        "team": a.team,
        "description": a.description,
        "enabled": a.enabled,
        "roles": a.roles,
        "credentials": a.credentials,
        "rate_limit_per_hour": a.rate_limit_per_hour,
        "created_at": rfc3339(a.created_at),
    })
}

async fn agent(g: &Globals, c: AgentCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let store = &admin.store;
    let t = team.internal_id;
    let missing = |id: &str| anyhow!("agent {id} not found in team {}", team.slug);
    match c {
        AgentCmd::Create {
            id,
            role,
            credential,
            rate_limit,
            description,
        } => {
            let (a, key) = admin
                .create_agent(
                    &team,
                    &id,
                    description.as_deref().unwrap_or(""),
                    &role,
                    &credential,
                    rate_limit,
                )
                .await?;
            let v = json!({"id": a.id, "team": a.team, "api_key": key.as_str()});
            emit(g, &v, || {
                format!(
                    "Created agent {} in team {}\nAPI key (shown once): {}",
                    a.id,
                    a.team,
                    key.as_str()
                )
            });
        }
        AgentCmd::List => {
            let agents = store.agents(t).await?;
            let arr: Vec<Value> = agents.iter().map(agent_json).collect();
            emit(g, &Value::Array(arr), || {
                let mut tb = Table::new();
                tb.set_header(["id", "enabled", "roles", "credentials", "rate/h"]);
                for a in &agents {
                    tb.add_row([
                        a.id.clone(),
                        a.enabled.to_string(),
                        a.roles.join(", "),
                        a.credentials.join(", "),
                        a.rate_limit_per_hour
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]);
                }
                tb.to_string()
            });
        }
        AgentCmd::Show { id } => {
            let a = store.agent(t, &id).await?.ok_or_else(|| missing(&id))?;
            let v = agent_json(&a);
            emit(g, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        AgentCmd::Enable { id } => {
            if !store.set_agent_enabled(t, &id, true).await? {
                return Err(missing(&id));
            }
            emit(g, &json!({"id": id, "enabled": true}), || {
                format!("Enabled agent {id}")
            });
        }
        AgentCmd::Disable { id } => {
            if !store.set_agent_enabled(t, &id, false).await? {
                return Err(missing(&id));
            }
            emit(g, &json!({"id": id, "enabled": false}), || {
                format!("Disabled agent {id}")
            });
        }
        AgentCmd::Delete { id } => {
            if !store.delete_agent(t, &id).await? {
                return Err(missing(&id));
            }
            emit(g, &json!({"deleted": id}), || format!("Deleted agent {id}"));
        }
        AgentCmd::RotateKey { id } => {
            let key = admin.rotate_agent_key(&team, &id).await?;
            let v = json!({"id": id, "team": team.slug, "api_key": key.as_str()});
            emit(g, &v, || {
                format!("New API key for {id} (shown once): {}", key.as_str())
            });
        }
        AgentCmd::Grant { id, credential } => {
            if store.credential(t, &credential).await?.is_none() {
                bail!("credential {credential} not found in team {}", team.slug);
            }
            if !store
                .set_agent_credential(t, &id, &credential, true)
                .await?
            {
                return Err(missing(&id));
            }
            emit(
                g,
                &json!({"id": id, "credential": credential, "granted": true}),
                || format!("Granted {credential} to {id}"),
            );
        }
        AgentCmd::Ungrant { id, credential } => {
            if !store
                .set_agent_credential(t, &id, &credential, false)
                .await?
            {
                return Err(missing(&id));
            }
            emit(
                g,
                &json!({"id": id, "credential": credential, "granted": false}),
                || format!("Removed {credential} from {id}"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn role_json(r: &Role) -> Value {
    json!({"name": r.name, "description": r.description, "credentials": r.credentials, "rate_limit_per_hour": r.rate_limit_per_hour})
}

async fn role(g: &Globals, c: RoleCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let store = &admin.store;
    let t = team.internal_id;
    let missing = |n: &str| anyhow!("role {n} not found in team {}", team.slug);
    match c {
        RoleCmd::Create {
            name,
            credential,
            description,
            rate_limit,
        } => {
            tap_core::names::validate_name("role", &name)?;
            for c in &credential {
                if store.credential(t, c).await?.is_none() {
                    bail!("credential {c} not found in team {}", team.slug);
                }
            }
            let r = Role {
                team_internal_id: t,
                name: name.clone(),
                description: description.unwrap_or_default(),
                credentials: credential,
                rate_limit_per_hour: rate_limit,
            };
            store.create_role(&r).await?;
            emit(g, &role_json(&r), || format!("Created role {name}"));
        }
        RoleCmd::List => {
            let roles = store.roles(t).await?;
            let arr: Vec<Value> = roles.iter().map(role_json).collect();
            emit(g, &Value::Array(arr), || {
                let mut tb = Table::new();
                tb.set_header(["role", "credentials", "description"]);
                for r in &roles {
                    tb.add_row([
                        r.name.clone(),
                        r.credentials.join(", "),
                        r.description.clone(),
                    ]);
                }
                tb.to_string()
            });
        }
        RoleCmd::Show { name } => {
            let r = store.role(t, &name).await?.ok_or_else(|| missing(&name))?;
            let v = role_json(&r);
            emit(g, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            });
        }
        RoleCmd::AddCredential { role, credential } => {
            if store.credential(t, &credential).await?.is_none() {
                bail!("credential {credential} not found in team {}", team.slug);
            }
            if !store
                .set_role_credential(t, &role, &credential, true)
                .await?
            {
                return Err(missing(&role));
            }
            emit(
                g,
                &json!({"role": role, "credential": credential, "added": true}),
                || format!("Added {credential} to role {role}"),
            );
        }
        RoleCmd::RemoveCredential { role, credential } => {
            if !store
                .set_role_credential(t, &role, &credential, false)
                .await?
            {
                return Err(missing(&role));
            }
            emit(
                g,
                &json!({"role": role, "credential": credential, "added": false}),
                || format!("Removed {credential} from role {role}"),
            );
        }
        RoleCmd::Delete { name } => {
            if !store.delete_role(t, &name).await? {
                return Err(missing(&name));
            }
            emit(g, &json!({"deleted": name}), || {
                format!("Deleted role {name}")
            });
        }
        RoleCmd::Assign { role, agent } => {
            if !store.set_agent_role(t, &agent, &role, true).await? {
                bail!("agent {agent} not found in team {}", team.slug);
            }
            emit(
                g,
                &json!({"role": role, "agent": agent, "assigned": true}),
                || format!("Gave role {role} to {agent}"),
            );
        }
        RoleCmd::Unassign { role, agent } => {
            if !store.set_agent_role(t, &agent, &role, false).await? {
                bail!("agent {agent} not found in team {}", team.slug);
            }
            emit(
                g,
                &json!({"role": role, "agent": agent, "assigned": false}),
                || format!("Took role {role} from {agent}"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn team(g: &Globals, c: TeamCmd) -> Result<ExitCode> {
    let admin = open(g).await?;
    match c {
        TeamCmd::Create { slug } => {
            let t = admin.create_team(&slug).await?;
            emit(
                g,
                &json!({"team": t.slug, "default_approval_mode": t.default_approval_mode.as_str()}),
                || format!("Created team {}", t.slug),
            );
        }
        TeamCmd::List => {
            let teams = admin.store.teams().await?;
            let arr: Vec<Value> = teams
                .iter()
                .map(|t| json!({"team": t.slug, "default_approval_mode": t.default_approval_mode.as_str(), "created_at": rfc3339(t.created_at)}))
                .collect();
            emit(g, &Value::Array(arr), || {
                teams
                    .iter()
                    .map(|t| t.slug.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status_matches(r: &AuditRecord, status: Option<&str>) -> bool {
    match status {
        None => true,
        Some("ok") => r.error_code.is_none(),
        Some("error") | Some("refused") => r.error_code.is_some(),
        Some(s) => {
            r.error_code.as_deref() == Some(s)
                || r.upstream_status.map(|n| n.to_string()).as_deref() == Some(s)
        }
    }
}

fn print_record(g: &Globals, r: &AuditRecord) {
    if g.json {
        if let Ok(s) = serde_json::to_string(r) {
            println!("{s}");
        }
    } else {
        let outcome = match (&r.error_code, r.upstream_status) {
            (Some(code), _) => code.clone(),
            (None, Some(s)) => s.to_string(),
            (None, None) => "in progress".into(),
        };
        println!(
            "{}  {:<16} {:<14} {:<6} {:<22} {}  [{}]",
            r.timestamp,
            r.agent_id,
            r.credential_names.join(","),
            r.method,
            outcome,
            r.target_url,
            r.policy_reason.as_deref().unwrap_or("-"),
        );
    }
}

async fn logs(g: &Globals, a: LogsArgs) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let query = AuditQuery {
        agent: a.agent.clone(),
        credential: a.credential.clone(),
        after_seq: None,
        limit: Some(a.limit.clamp(1, 10_000)),
    };
    let rows = admin.store.audit_rows(team.internal_id, &query).await?;
    let mut last_seq = rows.last().map(|r| r.seq).unwrap_or(0);
    for r in merge_rows(&rows)
        .iter()
        .filter(|r| status_matches(r, a.status.as_deref()))
    {
        print_record(g, r);
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let q = AuditQuery {
            after_seq: Some(last_seq),
            limit: Some(10_000),
            ..query.clone()
        };
        let rows = admin.store.audit_rows(team.internal_id, &q).await?;
        let from = last_seq;
        for row in rows.iter().filter(|r| r.seq > from) {
            last_seq = last_seq.max(row.seq);
            if row.phase == AuditPhase::Finish
                && let Ok(rec) = row.record()
                && status_matches(&rec, a.status.as_deref())
            {
                print_record(g, &rec);
            }
        }
    }
}

async fn audit_verify(g: &Globals) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let v = admin.verify_audit(&team).await?;
    emit(g, &serde_json::to_value(&v)?, || {
        if v.ok {
            format!(
                "audit chain of team {} is intact ({} rows)",
                team.slug, v.rows
            )
        } else {
            format!(
                "audit chain of team {} is BROKEN at row {} ({} rows checked)",
                team.slug,
                v.first_bad_row.unwrap_or(0),
                v.rows
            )
        }
    });
    Ok(if v.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
    let (admin, team) = open_team(g).await?;
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
    let (_, key) = admin
        .create_agent(
            &team,
            &id,
            "throwaway agent of `tap test`",
            &[],
            std::slice::from_ref(&a.credential),
            None,
        )
        .await?;
    let result = run_test(&proxy, &key, &a, &target).await;
    let _ = admin.store.delete_agent(team.internal_id, &id).await;
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

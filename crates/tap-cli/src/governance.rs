//! Policies, grants, members and approvals from the terminal.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use comfy_table::Table;
use serde_json::{Value, json};
use tap_core::model::{ApprovalStatus, Grant, MemberRole};
use tap_core::policy::{CompiledPolicy, EvalInput, GrantView, NormalizedTarget, Policy, evaluate};
use tap_core::target::TargetUrl;
use tap_proxy::clock::now_secs;
use zeroize::Zeroizing;

use crate::commands::{emit, open_team, rfc3339};
use crate::env::Globals;
use crate::{
    ChannelCmd, GrantCmd, LinkCmd, MemberCmd, PolicyCmd, PolicySetArgs, TelegramCmd, TokenCmd,
};

fn clean(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn merge(mut p: Policy, a: PolicySetArgs) -> Policy {
    if let Some(v) = a.auto_approve_methods {
        p.auto_approve_methods = clean(v);
    }
    if let Some(v) = a.require_approval_methods {
        p.require_approval_methods = clean(v);
    }
    if let Some(v) = a.auto_approve_urls {
        p.auto_approve_urls = clean(v);
    }
    if let Some(v) = a.require_approval_urls {
        p.require_approval_urls = clean(v);
    }
    if let Some(v) = a.allowed_approvers {
        p.allowed_approvers = Some(
            clean(v)
                .into_iter()
                .map(|e| e.to_ascii_lowercase())
                .collect(),
        );
    }
    if let Some(v) = a.approval_channel {
        p.approval_channel = (!v.trim().is_empty()).then(|| v.trim().to_owned());
    }
    if let Some(v) = a.telegram_chat_id {
        p.telegram_chat_id = (!v.trim().is_empty()).then(|| v.trim().to_owned());
    }
    if a.require_passkey {
        p.require_passkey = true;
    }
    if a.no_require_passkey {
        p.require_passkey = false;
    }
    if let Some(n) = a.min_approvals {
        p.min_approvals = n;
    }
    p
}

pub(crate) async fn policy(g: &Globals, c: PolicyCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let t = team.internal_id;
    let need_cred = |name: &str, found: bool| -> Result<()> {
        if found {
            Ok(())
        } else {
            Err(anyhow!("credential {name} not found in team {}", team.slug))
        }
    };
    match c {
        PolicyCmd::Show { credential } => {
            need_cred(
                &credential,
                admin.store.credential(t, &credential).await?.is_some(),
            )?;
            let p = admin.store.policy(t, &credential).await?;
            let v = json!({"credential": credential, "policy": p, "team_default": team.default_approval_mode.as_str()});
            emit(g, &v, || match &p {
                Some(p) => serde_json::to_string_pretty(p).unwrap_or_default(),
                None => format!(
                    "no policy for {credential}: team default ({}) applies",
                    team.default_approval_mode.as_str()
                ),
            });
        }
        PolicyCmd::Set(a) => {
            let credential = a.credential.clone();
            need_cred(
                &credential,
                admin.store.credential(t, &credential).await?.is_some(),
            )?;
            let current = admin
                .store
                .policy(t, &credential)
                .await?
                .unwrap_or_default();
            let p = merge(current, a)
                .normalized()
                .map_err(|e| anyhow!("invalid policy: {e}"))?;
            CompiledPolicy::new(&p).map_err(|e| anyhow!("invalid policy: {e}"))?;
            admin.store.set_policy(t, &credential, &p).await?;
            let v = json!({"credential": credential, "policy": p});
            emit(g, &v, || format!("Policy of {credential} set"));
        }
        PolicyCmd::Clear { credential } => {
            let cleared = admin.store.clear_policy(t, &credential).await?;
            emit(
                g,
                &json!({"credential": credential, "cleared": cleared}),
                || {
                    if cleared {
                        format!("Policy of {credential} cleared; the team default applies")
                    } else {
                        format!("{credential} had no policy")
                    }
                },
            );
        }
        PolicyCmd::Test {
            credential,
            method,
            target,
        } => {
            need_cred(
                &credential,
                admin.store.credential(t, &credential).await?.is_some(),
            )?;
            let method = tap_core::policy::normalize_method(&method).map_err(|e| anyhow!("{e}"))?;
            let url = TargetUrl::parse(&target).map_err(|e| anyhow!("invalid target: {e}"))?;
            let normalized = NormalizedTarget::from_url(url.url());
            let compiled = admin
                .store
                .policy(t, &credential)
                .await?
                .map(|p| CompiledPolicy::new(&p))
                .transpose()
                .map_err(|e| anyhow!("stored policy does not compile: {e}"))?;
            let now = now_secs();
            let grants: Vec<Grant> = admin
                .store
                .grants(t)
                .await?
                .into_iter()
                .filter(|gr| gr.credential == credential && gr.revoked_at.is_none())
                .collect();
            let views: Vec<GrantView<'_>> = grants
                .iter()
                .map(|gr| GrantView {
                    id: &gr.id,
                    methods: &gr.methods,
                    route_scope: &gr.route_scope,
                    expires_at: gr.expires_at,
                    uses_left: gr.max_uses.map(|m| m.saturating_sub(gr.uses)),
                })
                .collect();
            let eval = evaluate(&EvalInput {
                method: &method,
                target: &normalized,
                policy: compiled.as_ref(),
                team_mode: team.default_approval_mode,
                grants: &views,
                now,
            });
            let v = serde_json::to_value(&eval)?;
            emit(g, &v, || {
                format!(
                    "{}: {} ({}{})",
                    normalized.as_display(),
                    eval.decision.as_str(),
                    eval.reason.as_str(),
                    eval.rule
                        .as_deref()
                        .map(|r| format!(", rule {r}"))
                        .unwrap_or_default()
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn grant_json(gr: &Grant) -> Value {
    json!({
        "id": gr.id,
        "credential": gr.credential,
        "methods": gr.methods,
        "route_scope": gr.route_scope,
        "expires_at": rfc3339(gr.expires_at * 1000),
        "max_uses": gr.max_uses,
        "uses": gr.uses,
        "created_by": gr.created_by,
        "revoked": gr.revoked_at.is_some(),
        "active": gr.revoked_at.is_none() && gr.expires_at > now_secs() && gr.max_uses.is_none_or(|m| gr.uses < m),
    })
}

pub(crate) async fn grant(g: &Globals, c: GrantCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let t = team.internal_id;
    match c {
        GrantCmd::Create {
            credential,
            methods,
            route,
            ttl_minutes,
            max_uses,
        } => {
            if admin.store.credential(t, &credential).await?.is_none() {
                bail!("credential {credential} not found in team {}", team.slug);
            }
            let mut ms = Vec::new();
            for m in methods {
                ms.push(tap_core::policy::normalize_method(&m).map_err(|e| anyhow!("{e}"))?);
            }
            tap_core::policy::UrlPattern::parse(&route)
                .map_err(|e| anyhow!("invalid route: {e}"))?;
            if ttl_minutes == 0 {
                bail!("--ttl-minutes must be at least 1");
            }
            let actor = admin.default_actor(&team).await?;
            let id = format!(
                "g{}",
                tap_core::crypto::generate_password()
                    .map_err(|e| anyhow!(e.to_string()))?
                    .bytes()
                    .filter(u8::is_ascii_alphanumeric)
                    .map(|b| char::from(b.to_ascii_lowercase()))
                    .take(11)
                    .collect::<String>()
            );
            let gr = Grant {
                id,
                team_internal_id: t,
                credential,
                methods: ms,
                route_scope: route,
                expires_at: now_secs() + i64::from(ttl_minutes) * 60,
                max_uses,
                uses: 0,
                created_by: actor,
                created_at: 0,
                revoked_at: None,
            };
            admin.store.create_grant(&gr).await?;
            let v = grant_json(&gr);
            emit(g, &v, || {
                format!("Created grant {} on {}", gr.id, gr.credential)
            });
        }
        GrantCmd::List => {
            let grants = admin.store.grants(t).await?;
            let arr: Vec<Value> = grants.iter().map(grant_json).collect();
            emit(g, &Value::Array(arr.clone()), || {
                let mut tb = Table::new();
                tb.set_header([
                    "id",
                    "credential",
                    "methods",
                    "route",
                    "expires",
                    "uses",
                    "active",
                ]);
                for (gr, v) in grants.iter().zip(&arr) {
                    tb.add_row([
                        gr.id.clone(),
                        gr.credential.clone(),
                        gr.methods.join(","),
                        gr.route_scope.clone(),
                        rfc3339(gr.expires_at * 1000),
                        format!(
                            "{}/{}",
                            gr.uses,
                            gr.max_uses.map_or("∞".into(), |m| m.to_string())
                        ),
                        v["active"].to_string(),
                    ]);
                }
                tb.to_string()
            });
        }
        GrantCmd::Revoke { id } => {
            if !admin.store.revoke_grant(t, &id).await? {
                bail!(
                    "grant {id} not found (or already revoked) in team {}",
                    team.slug
                );
            }
            emit(g, &json!({"id": id, "revoked": true}), || {
                format!("Revoked grant {id}")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn member(g: &Globals, c: MemberCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let t = team.internal_id;
    let role_of =
        |r: &str| -> Result<MemberRole> { r.parse::<MemberRole>().map_err(|e| anyhow!(e)) };
    match c {
        MemberCmd::Add {
            email,
            role,
            password_stdin,
        } => {
            let role = role_of(&role)?;
            let password = if password_stdin {
                let mut buf = Zeroizing::new(String::new());
                std::io::stdin()
                    .read_to_string(&mut buf)
                    .context("cannot read the password")?;
                Some(Zeroizing::new(
                    buf.trim_end_matches(['\r', '\n']).to_owned(),
                ))
            } else {
                None
            };
            let (email, generated) = admin
                .add_member(&team, &email, role, password.as_ref().map(|p| p.as_str()))
                .await?;
            let mut v = json!({"email": email, "team": team.slug, "role": role.as_str()});
            if let Some(pw) = &generated {
                v["password"] = json!(pw.as_str());
            }
            emit(g, &v, || match &generated {
                Some(pw) => format!(
                    "Added {email} as {role} in team {}\nPassword (shown once): {}",
                    team.slug,
                    pw.as_str()
                ),
                None => format!("Added {email} as {role} in team {}", team.slug),
            });
        }
        MemberCmd::List => {
            let members = admin.store.members(t).await?;
            let arr: Vec<Value> = members
                .iter()
                .map(|m| json!({"email": m.email, "role": m.role.as_str(), "credentials": m.credentials, "created_at": rfc3339(m.created_at)}))
                .collect();
            emit(g, &Value::Array(arr), || {
                let mut tb = Table::new();
                tb.set_header(["email", "role", "credentials"]);
                for m in &members {
                    tb.add_row([
                        m.email.clone(),
                        m.role.to_string(),
                        m.credentials.join(", "),
                    ]);
                }
                tb.to_string()
            });
        }
        MemberCmd::Role { email, role } => {
            let role = role_of(&role)?;
            let email = email.trim().to_ascii_lowercase();
            if !admin.store.set_member_role(t, &email, role).await? {
                bail!("{email} is not a member of team {}", team.slug);
            }
            emit(g, &json!({"email": email, "role": role.as_str()}), || {
                format!("{email} is now {role}")
            });
        }
        MemberCmd::Rm { email } => {
            let email = email.trim().to_ascii_lowercase();
            if !admin.store.remove_member(t, &email).await? {
                bail!("{email} is not a member of team {}", team.slug);
            }
            emit(g, &json!({"removed": email}), || {
                format!("Removed {email} from team {}", team.slug)
            });
        }
        MemberCmd::Assign { email, credential } => {
            let email = email.trim().to_ascii_lowercase();
            let members = admin.store.members(t).await?;
            let Some(m) = members.iter().find(|m| m.email == email) else {
                bail!("{email} is not a member of team {}", team.slug);
            };
            for c in &credential {
                if admin.store.credential(t, c).await?.is_none() {
                    bail!("credential {c} not found in team {}", team.slug);
                }
            }
            let mut all = m.credentials.clone();
            for c in credential {
                if !all.contains(&c) {
                    all.push(c);
                }
            }
            admin.store.set_member_credentials(t, &email, &all).await?;
            emit(g, &json!({"email": email, "credentials": all}), || {
                format!("{email} approves for {}", all.join(", "))
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn pending(g: &Globals) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let scope = admin.operator_scope(&team.slug, None).await?;
    let list = admin
        .approvals(&scope, Some(ApprovalStatus::Pending))
        .await?;
    let rows: Vec<Value> = list.iter().map(|a| json!(a)).collect();
    emit(g, &Value::Array(rows.clone()), || {
        if rows.is_empty() {
            return "no pending approvals".into();
        }
        let mut tb = Table::new();
        tb.set_header([
            "txn",
            "agent",
            "credential",
            "request",
            "approvals",
            "expires",
        ]);
        for r in &rows {
            tb.add_row([
                r["txn_id"].as_str().unwrap_or("").to_owned(),
                r["agent_id"].as_str().unwrap_or("").to_owned(),
                r["credential"].as_str().unwrap_or("").to_owned(),
                format!(
                    "{} {}",
                    r["method"].as_str().unwrap_or(""),
                    r["target"].as_str().unwrap_or("")
                ),
                format!("{}/{}", r["approvals"], r["min_approvals"]),
                r["expires_at"].as_str().unwrap_or("").to_owned(),
            ]);
        }
        tb.to_string()
    });
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn decide(
    g: &Globals,
    txn: &str,
    as_email: Option<String>,
    approve: bool,
) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    let scope = admin
        .operator_scope(&team.slug, as_email.as_deref())
        .await?;
    match admin.decide(&scope, txn, approve, "terminal").await {
        Ok(d) => {
            let v = json!(d);
            emit(g, &v, || {
                format!(
                    "{} {}: status {} ({}/{} approvals)",
                    if approve { "Approved" } else { "Denied" },
                    d.txn_id,
                    d.status,
                    d.approvals,
                    d.min_approvals
                )
            });
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if g.json {
                println!("{}", json!({"txn_id": txn, "error": e.to_string()}));
            }
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

pub(crate) async fn link(g: &Globals, c: LinkCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    match c {
        LinkCmd::Add {
            agent,
            home_team,
            role,
        } => {
            let l = tap_proxy::http::admin::make_link(
                admin.store.as_ref(),
                &team,
                &agent,
                &home_team,
                role.as_deref(),
            )
            .await
            .map_err(|(_, m)| anyhow!(m))?;
            let v = json!({"team": team.slug, "agent_id": l.agent_id, "home_team": l.home_team, "role": l.role});
            emit(g, &v, || match &l.role {
                Some(r) => format!(
                    "Linked {}/{} to team {} with role {r}",
                    l.home_team, l.agent_id, team.slug
                ),
                None => format!(
                    "Linked {}/{} to team {} without a role: it grants nothing until a role is set",
                    l.home_team, l.agent_id, team.slug
                ),
            });
        }
        LinkCmd::List => {
            let links = admin.store.links(team.internal_id).await?;
            let arr: Vec<Value> = links
                .iter()
                .map(|l| json!({"agent_id": l.agent_id, "home_team": l.home_team, "role": l.role}))
                .collect();
            emit(g, &Value::Array(arr), || {
                let mut tb = Table::new();
                tb.set_header(["home team", "agent", "role"]);
                for l in &links {
                    tb.add_row([
                        l.home_team.clone(),
                        l.agent_id.clone(),
                        l.role.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                tb.to_string()
            });
        }
        LinkCmd::Rm { agent, home_team } => {
            let home = admin
                .store
                .team(&home_team)
                .await?
                .ok_or_else(|| anyhow!("team {home_team} not found"))?;
            if !admin
                .store
                .delete_link(team.internal_id, home.internal_id, &agent)
                .await?
            {
                bail!("no link of {home_team}/{agent} in team {}", team.slug);
            }
            emit(
                g,
                &json!({"removed": {"agent_id": agent, "home_team": home_team}}),
                || format!("Removed the link of {home_team}/{agent}"),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn token(g: &Globals, c: TokenCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    match c {
        TokenCmd::Create { member, label } => {
            let email = member.trim().to_ascii_lowercase();
            let members = admin.store.members(team.internal_id).await?;
            let Some(m) = members.iter().find(|m| m.email == email) else {
                bail!("{email} is not a member of team {}", team.slug);
            };
            let token =
                tap_core::crypto::generate_admin_token().map_err(|e| anyhow!(e.to_string()))?;
            let id = admin
                .store
                .create_admin_token(
                    m.account_id,
                    &admin.keys.mac().digest(&token),
                    label.as_deref().unwrap_or("created by tap token create"),
                )
                .await?;
            let v = json!({"id": id, "member": email, "token": token.as_str()});
            emit(g, &v, || {
                format!(
                    "Admin token {id} for {email} (shown once): {}",
                    token.as_str()
                )
            });
        }
        TokenCmd::List => {
            let tokens = admin.store.admin_tokens(team.internal_id).await?;
            let arr: Vec<Value> = tokens
                .iter()
                .map(|(t, email)| {
                    json!({"id": t.id, "member": email, "label": t.label, "created_at": rfc3339(t.created_at), "revoked": t.revoked_at.is_some()})
                })
                .collect();
            emit(g, &Value::Array(arr), || {
                let mut tb = Table::new();
                tb.set_header(["id", "member", "label", "revoked"]);
                for (t, email) in &tokens {
                    tb.add_row([
                        t.id.to_string(),
                        email.clone(),
                        t.label.clone(),
                        t.revoked_at.is_some().to_string(),
                    ]);
                }
                tb.to_string()
            });
        }
        TokenCmd::Revoke { id } => {
            let tokens = admin.store.admin_tokens(team.internal_id).await?;
            if !tokens.iter().any(|(t, _)| t.id == id) {
                bail!("token {id} not found in team {}", team.slug);
            }
            admin.store.revoke_admin_token(id).await?;
            emit(g, &json!({"id": id, "revoked": true}), || {
                format!("Revoked token {id}")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn channel(g: &Globals, c: ChannelCmd) -> Result<ExitCode> {
    let (admin, team) = open_team(g).await?;
    match c {
        ChannelCmd::Telegram(TelegramCmd::Set { chat_id, name }) => {
            let ch = tap_proxy::http::admin::put_channel(
                admin.store.as_ref(),
                &team,
                &name,
                "telegram",
                &chat_id,
            )
            .await
            .map_err(|e| anyhow!(e))?;
            emit(
                g,
                &json!({"name": ch.name, "type": ch.kind, "chat_id": ch.chat_id}),
                || {
                    format!(
                        "Telegram channel {} of team {} set to chat {}",
                        ch.name, team.slug, ch.chat_id
                    )
                },
            );
        }
        ChannelCmd::List => {
            let list = admin.store.channels(team.internal_id).await?;
            let arr: Vec<Value> = list
                .iter()
                .map(|c| json!({"name": c.name, "type": c.kind, "chat_id": c.chat_id}))
                .collect();
            emit(g, &Value::Array(arr), || {
                if list.is_empty() {
                    return "no channels (approvals use the web page and the terminal)".into();
                }
                list.iter()
                    .map(|c| format!("{}  {}  {}", c.name, c.kind, c.chat_id))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        ChannelCmd::Rm { name } => {
            if !admin.store.delete_channel(team.internal_id, &name).await? {
                bail!("channel {name} not found in team {}", team.slug);
            }
            emit(g, &json!({"deleted": name}), || {
                format!("Removed channel {name}")
            });
        }
        ChannelCmd::Test { name } => {
            let ch = admin
                .store
                .channels(team.internal_id)
                .await?
                .into_iter()
                .find(|c| c.name == name)
                .ok_or_else(|| anyhow!("channel {name} not found in team {}", team.slug))?;
            let config = tap_proxy::config::ProxyConfig::from_lookup(|k| std::env::var(k).ok())
                .map_err(anyhow::Error::msg)?;
            let resolver = std::sync::Arc::new(tap_proxy::outbound::GuardedResolver::new(
                config.outbound.clone(),
                config.resolve.clone(),
            ));
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let client =
                tap_proxy::outbound::upstream_client(&config, std::sync::Arc::clone(&resolver))
                    .map_err(anyhow::Error::msg)?;
            let text = format!(
                "TAP test message for team {} (channel {}).",
                team.slug, ch.name
            );
            tap_proxy::telegram::send_message(
                &client,
                &resolver,
                &config.telegram,
                &ch.chat_id,
                &text,
            )
            .await
            .map_err(|e| anyhow!(e.to_string()))?;
            emit(g, &json!({"name": ch.name, "delivered": true}), || {
                format!("Test message sent to {}", ch.chat_id)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `tap agent create|list|show|enable|disable|delete|rotate-key|grant|ungrant`
//! (SPEC §10): a key is printed once, by the command that made it.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Table;
use tap_proxy::ops::agents::CreateAgent;

use super::{emit_view, operator};
use crate::AgentCmd;
use crate::env::Globals;

pub(super) async fn agent(g: &Globals, c: AgentCmd) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    match c {
        AgentCmd::Create {
            id,
            role,
            credential,
            rate_limit,
            description,
        } => {
            let made = admin
                .create_agent(
                    &scope,
                    CreateAgent {
                        id,
                        description,
                        roles: Some(role),
                        credentials: Some(credential),
                        rate_limit_per_hour: rate_limit,
                    },
                )
                .await?;
            emit_view(g, &made, || {
                format!(
                    "Created agent {} in team {}\nAPI key (shown once): {}",
                    made.id,
                    made.team,
                    made.api_key.as_str()
                )
            })?;
        }
        AgentCmd::List => {
            let agents = admin.agents(&scope).await?;
            emit_view(g, &agents, || {
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
            })?;
        }
        AgentCmd::Show { id } => {
            let v = admin.agent(&scope, &id).await?;
            emit_view(g, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            })?;
        }
        AgentCmd::Enable { id } => {
            let v = admin.set_agent_enabled(&scope, &id, true).await?;
            emit_view(g, &v, || format!("Enabled agent {id}"))?;
        }
        AgentCmd::Disable { id } => {
            let v = admin.set_agent_enabled(&scope, &id, false).await?;
            emit_view(g, &v, || format!("Disabled agent {id}"))?;
        }
        AgentCmd::Delete { id } => {
            let v = admin.delete_agent(&scope, &id).await?;
            emit_view(g, &v, || format!("Deleted agent {id}"))?;
        }
        AgentCmd::RotateKey { id } => {
            let v = admin.rotate_agent_key(&scope, &id).await?;
            emit_view(g, &v, || {
                format!("New API key for {id} (shown once): {}", v.api_key.as_str())
            })?;
        }
        AgentCmd::Grant { id, credential } => {
            let v = admin
                .grant_agent_credential(&scope, &id, &credential, true)
                .await?;
            emit_view(g, &v, || format!("Granted {credential} to {id}"))?;
        }
        AgentCmd::Ungrant { id, credential } => {
            let v = admin
                .grant_agent_credential(&scope, &id, &credential, false)
                .await?;
            emit_view(g, &v, || format!("Removed {credential} from {id}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

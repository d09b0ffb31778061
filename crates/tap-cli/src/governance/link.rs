//! `tap link add|list|rm`, run in the linking team (`--team`).

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Table;
use tap_proxy::ops::links::CreateLink;

use super::{emit, operator};
use crate::LinkCmd;
use crate::env::Globals;

pub(crate) async fn link(g: &Globals, c: LinkCmd) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    match c {
        LinkCmd::Add {
            agent,
            home_team,
            role,
        } => {
            let v = ops
                .create_link(
                    &scope,
                    CreateLink {
                        agent_id: agent,
                        home_team,
                        role,
                    },
                )
                .await?;
            emit(g, &v, || match &v.role {
                Some(r) => format!(
                    "Linked {}/{} to team {} with role {r}",
                    v.home_team, v.agent_id, v.team
                ),
                None => format!(
                    "Linked {}/{} to team {} without a role: it grants nothing until a role is set",
                    v.home_team, v.agent_id, v.team
                ),
            })?;
        }
        LinkCmd::List => {
            let list = ops.links(&scope).await?;
            emit(g, &list, || {
                let mut tb = Table::new();
                tb.set_header(["home team", "agent", "role"]);
                for l in &list {
                    tb.add_row([
                        l.home_team.clone(),
                        l.agent_id.clone(),
                        l.role.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                tb.to_string()
            })?;
        }
        LinkCmd::Rm { agent, home_team } => {
            let v = ops.delete_link(&scope, &home_team, &agent).await?;
            emit(g, &v, || {
                format!(
                    "Removed the link of {}/{}",
                    v.deleted.home_team, v.deleted.agent_id
                )
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

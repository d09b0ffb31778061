//! `tap team create|list|show|settings` (SPEC §10): tenancy.

use std::process::ExitCode;

use anyhow::Result;
use tap_proxy::ops::team::TeamSettings;

use super::{emit_view, open, operator};
use crate::TeamCmd;
use crate::env::Globals;

pub(super) async fn team(g: &Globals, c: TeamCmd) -> Result<ExitCode> {
    match c {
        TeamCmd::Create { slug } => {
            let t = open(g).await?.add_team(&slug).await?;
            emit_view(g, &t, || format!("Created team {}", t.team))?;
        }
        TeamCmd::List => {
            let teams = open(g).await?.teams().await?;
            emit_view(g, &teams, || {
                teams
                    .iter()
                    .map(|t| t.team.clone())
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        TeamCmd::Show => {
            let (admin, scope) = operator(g).await?;
            let v = admin.team_view(&scope).await?;
            emit_view(g, &v, || {
                format!(
                    "team {}: default approval mode {}",
                    v.team, v.default_approval_mode
                )
            })?;
        }
        TeamCmd::Settings {
            default_approval_mode,
        } => {
            let (admin, scope) = operator(g).await?;
            let v = admin
                .set_team_settings(
                    &scope,
                    TeamSettings {
                        default_approval_mode,
                    },
                )
                .await?;
            emit_view(g, &v, || {
                format!(
                    "team {}: default approval mode {}",
                    v.team, v.default_approval_mode
                )
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `tap audit verify` (SPEC §10, §14): checks the team's hash chain; exit 1 when broken.

use std::process::ExitCode;

use anyhow::Result;

use super::{emit_view, operator};
use crate::env::Globals;

pub(super) async fn verify(g: &Globals) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    let v = admin.verify_audit(&scope).await?;
    let team = &scope.team.slug;
    emit_view(g, &v, || {
        if v.ok {
            format!("audit chain of team {team} is intact ({} rows)", v.rows)
        } else {
            format!(
                "audit chain of team {team} is BROKEN at row {} ({} rows checked)",
                v.first_bad_row.unwrap_or(0),
                v.rows
            )
        }
    })?;
    Ok(if v.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

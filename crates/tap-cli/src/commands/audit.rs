//! `tap audit verify` and `tap audit anchor` (SPEC §9, §10, §14): check the
//! team's keyed audit chain (exit 1 when broken), and print its head as an
//! anchor an operator keeps outside TAP; `tap audit prune` applies retention now.

use std::process::ExitCode;

use anyhow::Result;
use tap_core::audit::ChainAnchor;

use super::{emit_view, operator};
use crate::env::Globals;

pub(super) async fn verify(g: &Globals, anchor: Option<&ChainAnchor>) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    let v = admin.verify_audit(&scope, anchor).await?;
    let team = &scope.team.slug;
    emit_view(g, &v, || {
        if v.ok {
            let extends = anchor
                .map(|a| format!(", extends anchor at row {}", a.rows))
                .unwrap_or_default();
            format!(
                "audit chain of team {team} is intact ({} rows{extends})",
                v.rows
            )
        } else {
            format!(
                "audit chain of team {team} is BROKEN at row {}: {} ({} rows checked)",
                v.first_bad_row.unwrap_or(0),
                v.error.as_deref().unwrap_or("it does not verify"),
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

pub(super) async fn anchor(g: &Globals) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    let a = admin.audit_anchor(&scope).await?;
    emit_view(g, &a, || a.anchor.clone())?;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn prune(
    g: &Globals,
    days: Option<u32>,
    before: Option<&str>,
) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    let before = match (before, days) {
        (Some(b), _) => b.to_owned(),
        (None, d) => tap_proxy::retention::cutoff(admin.clock.now_ms(), d.unwrap_or(0))
            .ok_or_else(|| anyhow::anyhow!("--days is too large"))?,
    };
    let v = admin.prune_audit(&scope, &before).await?;
    emit_view(g, &v, || {
        format!(
            "deleted {} audit rows stamped before {}; the chains verify from their anchors",
            v.deleted, v.before
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

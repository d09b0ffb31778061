//! `tap pending`, `tap approve|deny <txn> [--as EMAIL]`.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Table;
use serde_json::json;
use tap_core::model::ApprovalStatus;

use super::{emit, operator};
use crate::env::Globals;

pub(crate) async fn pending(g: &Globals) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    let list = ops.approvals(&scope, Some(ApprovalStatus::Pending)).await?;
    emit(g, &list, || {
        if list.is_empty() {
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
        for a in &list {
            tb.add_row([
                a.txn_id.clone(),
                a.agent_id.clone(),
                a.credential.clone(),
                format!("{} {}", a.method, a.target),
                format!("{}/{}", a.approvals, a.min_approvals),
                a.expires_at.clone(),
            ]);
        }
        tb.to_string()
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `tap pending show TXN`: everything the approver must see before deciding.
pub(crate) async fn pending_show(g: &Globals, txn: &str) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    let d = ops.approval_detail(&scope, txn).await?;
    emit(g, &d, || {
        let a = &d.approval;
        let r = &d.request;
        let mut out = format!(
            "txn         {}\nstatus      {}\nagent       {}\ncredential  {}\nrequest     {} {}\napprovals   {}/{}\nexpires     {}\n",
            a.txn_id,
            a.status,
            a.agent_id,
            a.credential,
            a.method,
            a.target,
            a.approvals,
            a.min_approvals,
            a.expires_at
        );
        out.push_str("\nheaders forwarded:\n");
        if r.headers.is_empty() {
            out.push_str("  (none)\n");
        }
        for h in &r.headers {
            out.push_str(&format!("  {}: {}\n", h.name, h.value));
        }
        out.push_str(&format!(
            "headers the credential injects (values hidden): {}\n",
            if r.injected.is_empty() {
                "(none)".to_owned()
            } else {
                r.injected.join(", ")
            }
        ));
        out.push_str(&format!(
            "\nbody ({}, {} bytes, sha256 {}):\n{}",
            r.body_format, r.body_bytes, r.body_sha256, r.body
        ));
        out
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn decide(
    g: &Globals,
    txn: &str,
    as_email: Option<String>,
    approve: bool,
) -> Result<ExitCode> {
    let (ops, scope) = operator(g, as_email.as_deref()).await?;
    match ops.decide(&scope, txn, approve, "terminal").await {
        Ok(d) => {
            emit(g, &d, || {
                format!(
                    "{} {}: status {} ({}/{} approvals)",
                    if approve { "Approved" } else { "Denied" },
                    d.txn_id,
                    d.status,
                    d.approvals,
                    d.min_approvals
                )
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if g.json {
                println!(
                    "{}",
                    json!({"txn_id": txn, "error": e.reason().code(), "detail": e.to_string()})
                );
            }
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

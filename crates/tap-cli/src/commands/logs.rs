//! `tap logs [--follow]` (SPEC §10, §14): the audit trail, one JSON line per
//! entry with `--json`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use tap_core::audit::AuditRecord;
use tap_proxy::ops::audit::{AuditEntry, AuditFilter};

use super::operator;
use crate::LogsArgs;
use crate::env::Globals;

/// How often `--follow` looks for new entries.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

fn print_entry(g: &Globals, AuditEntry(r): &AuditEntry) {
    if g.json {
        if let Ok(s) = serde_json::to_string(r) {
            println!("{s}");
        }
    } else {
        println!("{}", pretty(r));
    }
}

fn pretty(r: &AuditRecord) -> String {
    let outcome = match (&r.error_code, r.upstream_status) {
        (Some(code), _) => code.clone(),
        (None, Some(s)) => s.to_string(),
        (None, None) => "in progress".into(),
    };
    format!(
        "{}  {:<16} {:<14} {:<6} {:<22} {}  [{}]",
        r.timestamp,
        r.agent_id,
        r.credential_names.join(","),
        r.method,
        outcome,
        r.target_url,
        r.policy_reason.as_deref().unwrap_or("-"),
    )
}

pub(super) async fn logs(g: &Globals, a: LogsArgs) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    let filter = AuditFilter {
        agent: a.agent,
        credential: a.credential,
        status: a.status,
        since: None,
        limit: Some(a.limit),
    };
    let page = admin.audit_export(&scope, &filter).await?;
    for e in &page.entries {
        print_entry(g, e);
    }
    if !a.follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut last_seq = page.last_seq;
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let page = admin.audit_after(&scope, &filter, last_seq).await?;
        for e in &page.entries {
            print_entry(g, e);
        }
        last_seq = page.last_seq;
    }
}

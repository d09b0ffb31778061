//! `tap policy show|set|clear|test`.

use std::process::ExitCode;

use anyhow::Result;
use tap_proxy::ops::policies::{PolicyTest, SetPolicy};

use super::{emit, operator};
use crate::env::Globals;
use crate::{PolicyCmd, PolicySetArgs};

/// The flags given, as the service's command; flags not given keep their value.
fn set_policy(a: PolicySetArgs) -> SetPolicy {
    SetPolicy {
        auto_approve_methods: a.auto_approve_methods,
        require_approval_methods: a.require_approval_methods,
        auto_approve_urls: a.auto_approve_urls,
        require_approval_urls: a.require_approval_urls,
        allowed_approvers: a.allowed_approvers,
        approval_channel: a.approval_channel,
        telegram_chat_id: a.telegram_chat_id,
        // `--no-require-passkey` wins, as the stricter flag never silently sticks.
        require_passkey: if a.no_require_passkey {
            Some(false)
        } else if a.require_passkey {
            Some(true)
        } else {
            None
        },
        min_approvals: a.min_approvals,
    }
}

pub(crate) async fn policy(g: &Globals, c: PolicyCmd) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    match c {
        PolicyCmd::Show { credential } => {
            let v = ops.policy(&scope, &credential).await?;
            emit(g, &v, || match &v.policy {
                Some(p) => serde_json::to_string_pretty(p).unwrap_or_default(),
                None => format!(
                    "no policy for {credential}: team default ({}) applies",
                    v.team_default
                ),
            })?;
        }
        PolicyCmd::Set(a) => {
            let credential = a.credential.clone();
            let v = ops
                .update_policy(&scope, &credential, set_policy(a))
                .await?;
            emit(g, &v, || format!("Policy of {credential} set"))?;
        }
        PolicyCmd::Clear { credential } => {
            let v = ops.clear_policy(&scope, &credential).await?;
            emit(g, &v, || {
                if v.cleared {
                    format!("Policy of {credential} cleared; the team default applies")
                } else {
                    format!("{credential} had no policy")
                }
            })?;
        }
        PolicyCmd::Test {
            credential,
            method,
            target,
        } => {
            let v = ops
                .policy_test(
                    &scope,
                    &credential,
                    PolicyTest {
                        method: Some(method),
                        target,
                    },
                )
                .await?;
            emit(g, &v, || {
                format!(
                    "{}: {} ({}{})",
                    v.target,
                    v.decision,
                    v.policy_reason,
                    v.rule
                        .as_deref()
                        .map(|r| format!(", rule {r}"))
                        .unwrap_or_default()
                )
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `tap token create|list|revoke`: admin API tokens.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Table;
use tap_proxy::ops::tokens::CreateToken;

use super::{emit, operator};
use crate::TokenCmd;
use crate::env::Globals;

pub(crate) async fn token(g: &Globals, c: TokenCmd) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    match c {
        TokenCmd::Create { member, label } => {
            let v = ops
                .create_token(&scope, CreateToken { member, label })
                .await?;
            emit(g, &v, || {
                format!(
                    "Admin token {} for {} (shown once): {}",
                    v.id, v.member, v.token
                )
            })?;
        }
        TokenCmd::List => {
            let list = ops.tokens(&scope).await?;
            emit(g, &list, || {
                let mut tb = Table::new();
                tb.set_header(["id", "member", "label", "revoked"]);
                for t in &list {
                    tb.add_row([
                        t.id.to_string(),
                        t.member.clone(),
                        t.label.clone(),
                        t.revoked.to_string(),
                    ]);
                }
                tb.to_string()
            })?;
        }
        TokenCmd::Revoke { id } => {
            let v = ops.revoke_token(&scope, id).await?;
            emit(g, &v, || format!("Revoked token {}", v.id))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

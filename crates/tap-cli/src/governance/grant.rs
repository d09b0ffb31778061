//! `tap grant create|list|revoke`.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Table;
use tap_proxy::ops::grants::CreateGrant;

use super::{emit, operator};
use crate::GrantCmd;
use crate::env::Globals;

pub(crate) async fn grant(g: &Globals, c: GrantCmd) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    match c {
        GrantCmd::Create {
            credential,
            methods,
            route,
            ttl_minutes,
            max_uses,
        } => {
            let v = ops
                .create_grant(
                    &scope,
                    &credential,
                    CreateGrant {
                        methods,
                        route_scope: route,
                        ttl_minutes,
                        max_uses,
                    },
                )
                .await?;
            emit(g, &v, || {
                format!("Created grant {} on {}", v.id, v.credential)
            })?;
        }
        GrantCmd::List => {
            let list = ops.grants(&scope).await?;
            emit(g, &list, || {
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
                for gr in &list {
                    tb.add_row([
                        gr.id.clone(),
                        gr.credential.clone(),
                        gr.methods.join(","),
                        gr.route_scope.clone(),
                        gr.expires_at.clone(),
                        format!(
                            "{}/{}",
                            gr.uses,
                            gr.max_uses.map_or("∞".into(), |m| m.to_string())
                        ),
                        gr.active.to_string(),
                    ]);
                }
                tb.to_string()
            })?;
        }
        GrantCmd::Revoke { id } => {
            let v = ops.revoke_grant(&scope, &id).await?;
            emit(g, &v, || format!("Revoked grant {}", v.id))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

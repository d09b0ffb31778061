//! `tap role create|list|show|add-credential|remove-credential|delete|assign|unassign`
//! (SPEC §10): agent RBAC.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Table;
use tap_proxy::ops::roles::CreateRole;

use super::{emit_view, operator};
use crate::RoleCmd;
use crate::env::Globals;

pub(super) async fn role(g: &Globals, c: RoleCmd) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    match c {
        RoleCmd::Create {
            name,
            credential,
            description,
            rate_limit,
        } => {
            let v = admin
                .create_role(
                    &scope,
                    CreateRole {
                        name: name.clone(),
                        description,
                        credentials: Some(credential),
                        rate_limit_per_hour: rate_limit,
                    },
                )
                .await?;
            emit_view(g, &v, || format!("Created role {name}"))?;
        }
        RoleCmd::List => {
            let roles = admin.roles(&scope).await?;
            emit_view(g, &roles, || {
                let mut tb = Table::new();
                tb.set_header(["role", "credentials", "description"]);
                for r in &roles {
                    tb.add_row([
                        r.name.clone(),
                        r.credentials.join(", "),
                        r.description.clone(),
                    ]);
                }
                tb.to_string()
            })?;
        }
        RoleCmd::Show { name } => {
            let v = admin.role(&scope, &name).await?;
            emit_view(g, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            })?;
        }
        RoleCmd::AddCredential { role, credential } => {
            let v = admin
                .set_role_credential(&scope, &role, &credential, true)
                .await?;
            emit_view(g, &v, || format!("Added {credential} to role {role}"))?;
        }
        RoleCmd::RemoveCredential { role, credential } => {
            let v = admin
                .set_role_credential(&scope, &role, &credential, false)
                .await?;
            emit_view(g, &v, || format!("Removed {credential} from role {role}"))?;
        }
        RoleCmd::Delete { name } => {
            let v = admin.delete_role(&scope, &name).await?;
            emit_view(g, &v, || format!("Deleted role {name}"))?;
        }
        RoleCmd::Assign { role, agent } => {
            let v = admin.set_agent_role(&scope, &agent, &role, true).await?;
            emit_view(g, &v, || format!("Gave role {role} to {agent}"))?;
        }
        RoleCmd::Unassign { role, agent } => {
            let v = admin.set_agent_role(&scope, &agent, &role, false).await?;
            emit_view(g, &v, || format!("Took role {role} from {agent}"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `tap member add|list|role|rm|assign|link-telegram`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result};
use comfy_table::Table;
use tap_proxy::ops::members::{ChangeRole, InviteMember, MemberCredentials};
use zeroize::Zeroizing;

use super::{emit, operator};
use crate::MemberCmd;
use crate::env::Globals;

/// The password on stdin, without its line ending.
fn read_password() -> Result<String> {
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut buf)
        .context("cannot read the password")?;
    Ok(buf.trim_end_matches(['\r', '\n']).to_owned())
}

pub(crate) async fn member(g: &Globals, c: MemberCmd) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    match c {
        MemberCmd::Add {
            email,
            role,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let v = ops
                .invite_member(
                    &scope,
                    InviteMember {
                        email,
                        role,
                        password,
                    },
                )
                .await?;
            emit(g, &v, || match &v.password {
                Some(pw) => format!(
                    "Added {} as {} in team {}\nPassword (shown once): {pw}",
                    v.email, v.role, v.team
                ),
                None => format!("Added {} as {} in team {}", v.email, v.role, v.team),
            })?;
        }
        MemberCmd::List => {
            let list = ops.members(&scope).await?;
            emit(g, &list, || {
                let mut tb = Table::new();
                tb.set_header(["email", "role", "credentials"]);
                for m in &list {
                    tb.add_row([m.email.clone(), m.role.clone(), m.credentials.join(", ")]);
                }
                tb.to_string()
            })?;
        }
        MemberCmd::Role { email, role } => {
            let v = ops
                .change_member_role(&scope, &email, ChangeRole { role })
                .await?;
            emit(g, &v, || format!("{} is now {}", v.email, v.role))?;
        }
        MemberCmd::Rm { email } => {
            let v = ops.remove_member(&scope, &email).await?;
            emit(g, &v, || {
                format!("Removed {} from team {}", v.removed, scope.team.slug)
            })?;
        }
        MemberCmd::Assign { email, credential } => {
            let v = ops
                .assign_member_credentials(
                    &scope,
                    &email,
                    MemberCredentials {
                        credentials: credential,
                    },
                )
                .await?;
            emit(g, &v, || {
                format!("{} approves for {}", v.email, v.credentials.join(", "))
            })?;
        }
        MemberCmd::LinkTelegram {
            email,
            telegram_user_id,
            code,
        } => {
            let v = match (code, telegram_user_id) {
                (false, Some(id)) => ops.link_telegram(&scope, &email, id).await?,
                _ => ops.telegram_link_code(&scope, &email).await?,
            };
            emit(g, &v, || match (&v.code, v.telegram_user_id) {
                (Some(c), _) => {
                    format!("Send this to the TAP bot within 15 minutes (shown once): /link {c}")
                }
                (None, Some(id)) => format!("{} is linked to Telegram user {id}", v.email),
                (None, None) => format!("{} unchanged", v.email),
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

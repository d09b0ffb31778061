//! `tap cred list|show|rm|set-value` (SPEC §10): never prints a value.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use comfy_table::Table;
use tap_proxy::ops::credentials::{SetSecret, ValueInput};
use zeroize::Zeroizing;

use super::{emit_view, operator};
use crate::CredCmd;
use crate::env::Globals;

/// The value from stdin (`--value-stdin`) or a no-echo prompt; `None` when
/// neither gives one (no terminal, or an empty answer keeps the current value).
pub(super) fn read_value(value_stdin: bool, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if value_stdin {
        let mut buf = Zeroizing::new(Vec::new());
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the value from stdin")?;
        return Ok(Some(buf));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let v = rpassword::prompt_password(format!(
        "Value for {name} (input hidden, empty keeps the current value): "
    ))
    .context("cannot read the value")?;
    let v = Zeroizing::new(v.into_bytes());
    if v.trim_ascii().is_empty() {
        return Ok(None);
    }
    Ok(Some(v))
}

pub(super) async fn cred(g: &Globals, c: CredCmd) -> Result<ExitCode> {
    let (admin, scope) = operator(g).await?;
    match c {
        CredCmd::List => {
            let creds = admin.credentials(&scope).await?;
            emit_view(g, &creds, || {
                let mut t = Table::new();
                t.set_header(["name", "hosts", "value", "description"]);
                for c in &creds {
                    t.add_row([
                        c.name.clone(),
                        if c.allow_any_host {
                            "*".into()
                        } else {
                            c.allowed_hosts.join(", ")
                        },
                        if c.value_set {
                            "set".into()
                        } else {
                            "missing".into()
                        },
                        c.description.clone(),
                    ]);
                }
                t.to_string()
            })?;
        }
        CredCmd::Show { name } => {
            let v = admin.credential(&scope, &name).await?;
            emit_view(g, &v, || {
                serde_json::to_string_pretty(&v).unwrap_or_default()
            })?;
        }
        CredCmd::Rm { name } => {
            let v = admin.delete_credential(&scope, &name).await?;
            emit_view(g, &v, || format!("Deleted credential {name}"))?;
        }
        CredCmd::SetValue { name, value_stdin } => {
            // Asked only for an existing credential: the prompt names it.
            admin.credential(&scope, &name).await?;
            let raw = read_value(value_stdin, &name)?
                .ok_or_else(|| anyhow!("no value given; use --value-stdin or a terminal"))?;
            let v = admin
                .set_credential_value(
                    &scope,
                    &name,
                    SetSecret {
                        value: ValueInput::from_bytes(raw),
                    },
                )
                .await?;
            emit_view(g, &v, || format!("Value of {name} replaced"))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

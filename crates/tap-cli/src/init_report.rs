//! What `tap init` and a first `tap serve` print: the one-time owner
//! password and admin token (shared by both commands, imported by neither's
//! dispatch).

use anyhow::Result;
use serde_json::{Value, json};
use tap_proxy::ops::InitReport;

use crate::env::{Globals, KeySource, display};

/// Prints what `init` did; the password and token only when just created.
pub(crate) fn print_init(g: &Globals, r: &InitReport, source: &KeySource) -> Result<()> {
    let key_file = match source {
        KeySource::DataDir(p) | KeySource::File(p) => Value::String(display(p)),
        KeySource::Env | KeySource::Command => Value::Null,
    };
    if g.json {
        let mut v = json!({
            "created": r.created,
            "data_dir": display(&g.data_dir),
            "team": r.team,
            "owner_email": r.owner_email,
            "master_key_file": key_file,
        });
        if let (Some(pw), Some(tok)) = (&r.owner_password, &r.admin_token) {
            v["owner_password"] = json!(pw);
            v["admin_token"] = json!(tok);
        }
        println!("{v}");
    } else if r.created {
        println!("TAP initialised in {}", display(&g.data_dir));
        println!("  team:           {}", r.team);
        println!("  owner:          {}", r.owner_email);
        if let (Some(pw), Some(tok)) = (&r.owner_password, &r.admin_token) {
            println!("  owner password: {pw}");
            println!("  admin token:    {tok}");
        }
        if let Some(k) = key_file.as_str() {
            println!(
                "  master key:     {k}  (keep it safe; without it the store cannot be opened)"
            );
        }
        println!("The password and token are shown only now.");
    } else {
        println!(
            "TAP is already initialised in {} (team {}, owner {}); nothing changed.",
            display(&g.data_dir),
            r.team,
            r.owner_email
        );
    }
    Ok(())
}

//! `tap migrate --to postgres://…` (SPEC §9): copies the SQLite deployment of
//! --data-dir into an empty PostgreSQL database, then checks the copy: every
//! table's row count (inside the copy's transaction) and, with the master
//! key, that the copy opens and every team's audit chain verifies.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};
use tap_core::audit::verify_keyed;
use tap_core::store::{Store, StoreError};
use tap_proxy::ops::Ops as Admin;
use tap_store::{PgStore, SqliteStore, copy_sqlite_to_pg};

use super::emit;
use crate::env::{Globals, is_postgres};

/// One team's chain on the target.
struct Checked {
    team: String,
    rows: usize,
    ok: bool,
    error: Option<String>,
}

pub(super) async fn to_postgres(g: &Globals, url: &str) -> Result<ExitCode> {
    if !is_postgres(url) {
        bail!("--to takes a postgres:// URL");
    }
    let src = source(g).await?;
    let (key, _) = g.require_key()?;
    // Opening checks the key and gives the store its audit key.
    Admin::open(Arc::new(src.clone()), key.clone()).await?;
    // Owning the audit spool refuses a store a proxy still serves, and folds
    // what a stopped one left, so the copy holds every audit row.
    let _spool = match src.audit_writer() {
        Ok(Some(w)) => {
            w.fold().context("cannot fold the audit spool")?;
            Some(w)
        }
        Ok(None) => None,
        Err(StoreError::Conflict(_)) => {
            bail!("a running `tap serve` owns this store; stop it before `tap migrate --to`")
        }
        Err(e) => return Err(e.into()),
    };
    let dst = PgStore::connect(url)
        .await
        .context("cannot open the PostgreSQL store")?;
    let report = copy_sqlite_to_pg(&src, &dst).await?;
    let admin = Admin::open(Arc::new(dst.clone()), key)
        .await
        .context("the copy does not open with the master key")?;
    let mut checked = Vec::new();
    for team in dst.teams().await? {
        let chain = dst.audit_chain(team.internal_id).await?;
        let v = verify_keyed(&admin.keys.audit_key(), team.internal_id, &chain, None);
        checked.push(Checked {
            team: team.slug,
            rows: chain.rows.len(),
            ok: v.ok,
            error: v.error,
        });
    }
    let ok = checked.iter().all(|c| c.ok);
    let tables: Map<String, Value> = report
        .tables
        .iter()
        .map(|(t, n)| (t.clone(), json!(n)))
        .collect();
    let teams: Vec<Value> = checked
        .iter()
        .map(|c| json!({"team": c.team, "audit_rows": c.rows, "chain_ok": c.ok, "error": c.error}))
        .collect();
    emit(
        g,
        &json!({"migrated": ok, "to": "postgres", "tables": tables, "teams": teams}),
        || {
            let mut out = String::from("copied into PostgreSQL:\n");
            for (t, n) in &report.tables {
                out.push_str(&format!("  {t}: {n} rows\n"));
            }
            for c in &checked {
                match (&c.ok, &c.error) {
                    (true, _) => out.push_str(&format!(
                        "  audit chain of team {} verifies ({} rows)\n",
                        c.team, c.rows
                    )),
                    (false, e) => out.push_str(&format!(
                        "  audit chain of team {} does NOT verify: {}\n",
                        c.team,
                        e.as_deref().unwrap_or("broken")
                    )),
                }
            }
            out.push_str("set TAP_DATABASE_URL to the same URL to serve from it");
            out
        },
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The SQLite store to copy: --data-dir's, or a `sqlite:` --database-url.
async fn source(g: &Globals) -> Result<SqliteStore> {
    let store = match &g.database_url {
        Some(url) if is_postgres(url) => {
            bail!("tap migrate --to copies a SQLite store; unset TAP_DATABASE_URL (the source)")
        }
        Some(url) => SqliteStore::open_url(url).await,
        None => {
            let path = g.db_path();
            if !path.exists() {
                bail!("no store at {}; nothing to copy", path.display());
            }
            SqliteStore::open(&path).await
        }
    }
    .context("cannot open the SQLite store")?;
    if !store.is_initialized().await? {
        bail!("the SQLite store holds no deployment; nothing to copy");
    }
    Ok(store)
}

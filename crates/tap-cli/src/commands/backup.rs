//! `tap backup FILE` and `tap restore FILE --data-dir D`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use serde_json::json;
use tap_store::SqliteStore;

use super::emit;
use crate::env::Globals;

/// The embedded store of `--data-dir` (a Postgres store has its own tools).
async fn local_store(g: &Globals) -> Result<SqliteStore> {
    if g.database_url.is_some() {
        bail!(
            "tap backup works on the embedded SQLite store; back up a database server with its own tools"
        );
    }
    let path = g.db_path();
    if !path.exists() {
        bail!("no store at {}; nothing to back up", path.display());
    }
    SqliteStore::open(&path)
        .await
        .context("cannot open the store")
}

pub(crate) async fn backup(g: &Globals, file: &Path) -> Result<ExitCode> {
    let store = local_store(g).await?;
    store
        .backup_to(file)
        .await
        .with_context(|| format!("backup to {} failed", file.display()))?;
    restrict(file)?;
    let bytes = std::fs::metadata(file)?.len();
    emit(
        g,
        &json!({"backup": file.display().to_string(), "bytes": bytes}),
        || {
            format!(
                "backup written to {} ({bytes} bytes); it holds no master key: keep the key apart, a restore needs it",
                file.display()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn restore(g: &Globals, file: &Path) -> Result<ExitCode> {
    if g.database_url.is_some() {
        bail!("tap restore restores into the embedded store of --data-dir; unset TAP_DATABASE_URL");
    }
    if !file.is_file() {
        bail!("no backup file at {}", file.display());
    }
    let dir = &g.data_dir;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty; restore into a new data dir (nothing was changed)",
            dir.display()
        );
    }
    g.ensure_data_dir()?;
    let staged = dir.join("tap.db.restoring");
    std::fs::copy(file, &staged)
        .with_context(|| format!("cannot copy {} into {}", file.display(), dir.display()))?;
    restrict(&staged)?;
    let checked = async {
        let s = SqliteStore::open(&staged).await?;
        let mut verdict = s.check_integrity().await;
        if verdict.is_ok() {
            verdict = s.detach_spool().await;
        }
        tap_core::store::Store::close(&s).await;
        verdict?;
        Ok::<_, tap_core::store::StoreError>(())
    }
    .await;
    if let Err(e) = checked {
        let _ = std::fs::remove_dir_all(dir);
        bail!("{} is not a usable TAP backup: {e}", file.display());
    }
    // After a clean close the WAL is folded into the file; move whatever is
    // there into place together.
    for suffix in ["-wal", "-shm"] {
        let side = dir.join(format!("tap.db.restoring{suffix}"));
        if side.exists() {
            std::fs::rename(&side, dir.join(format!("tap.db{suffix}")))?;
        }
    }
    // The staged file's lock file held no state.
    let _ = std::fs::remove_file(dir.join("tap.db.restoring-lock"));
    std::fs::rename(&staged, g.db_path())?;
    emit(
        g,
        &json!({"restored": g.db_path().display().to_string()}),
        || {
            format!(
                "restored into {}; start it with the master key the backup was made with (TAP_MASTER_KEY_FILE, or copy master.key into the data dir)",
                g.db_path().display()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// Backups hold sealed secrets and the audit trail: owner-only.
fn restrict(p: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", p.display()))
}

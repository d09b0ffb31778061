//! Online backup and restore of the embedded store: a consistent snapshot of
//! a store that may be serving (`VACUUM INTO` reads one transaction's view),
//! with the audit spool folded first so no audit row is left behind.

use std::path::Path;

use tap_core::store::{StoreError, StoreResult};

use super::SqliteStore;
use super::pool::unavailable;

impl SqliteStore {
    /// Writes a consistent snapshot of this store to `dest`, which must not
    /// exist. Audit rows still in this process's spool, or in a spool left by
    /// a stopped proxy, are folded in first; a running proxy folds its own
    /// within milliseconds.
    pub async fn backup_to(&self, dest: &Path) -> StoreResult<()> {
        if dest.exists() {
            return Err(StoreError::Conflict(format!(
                "{} exists; a backup never overwrites a file",
                dest.display()
            )));
        }
        self.spool.fold_pending().await?;
        let target = dest.to_str().ok_or_else(|| {
            StoreError::Unavailable(format!("{} is not a UTF-8 path", dest.display()))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        // The snapshot is whole: it must not look like a copy of a store in use.
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || super::in_use::unmark(&dest))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(|e| StoreError::Unavailable(format!("backup snapshot: {e}")))?;
        Ok(())
    }

    /// Checks a database file is a whole, initialised TAP store: SQLite's
    /// integrity check passes and the schema is there.
    pub async fn check_integrity(&self) -> StoreResult<()> {
        let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        if verdict != "ok" {
            return Err(StoreError::Corrupt(format!(
                "integrity check failed: {verdict}"
            )));
        }
        if !super::pool::is_initialized(&self.pool).await? {
            return Err(StoreError::Corrupt("the file holds no TAP store".into()));
        }
        Ok(())
    }

    /// Makes a restored snapshot its own: every audit row of a backup was
    /// folded before it was taken, so the source's spool position means
    /// nothing here (and a missing spool would otherwise be refused).
    pub async fn detach_spool(&self) -> StoreResult<()> {
        sqlx::query("DELETE FROM audit_spool")
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Lets go of the store (the in-use guard's release: the in-use mark
    /// removed and the WAL folded into the file when no other process has the
    /// store open), then closes every connection of the pool.
    pub(super) async fn close_files(&self) {
        self.in_use.release();
        self.pool.close().await;
    }
}

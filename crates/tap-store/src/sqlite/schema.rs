//! What every connection to a TAP SQLite file agrees on, whichever driver
//! opened it (the sqlx pool or the audit spool's own rusqlite connection): how
//! long a writer waits for the lock, how a team's audit chain head is read and
//! written, and the audit key both hold.
//!
//! A leaf: it imports nothing from the modules that use it.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tap_core::audit::{AuditHead, ChainHead};
use tap_core::crypto::AuditKey;
use tap_core::store::{StoreError, StoreResult};

/// How long a writer waits for SQLite's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A team's stored head `(seq, last_hash, keyed_from, mac)`; `$1` is the team.
pub(crate) const AUDIT_HEAD: &str =
    "SELECT seq, last_hash, keyed_from, mac FROM audit_head WHERE team_id = $1";

/// Writes a team's head: `$1` team, `$2` seq, `$3` last hash, `$4` keyed_from, `$5` mac.
pub(crate) const AUDIT_PUT_HEAD: &str = "INSERT INTO audit_head (team_id, seq, last_hash, keyed_from, mac) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (team_id) DO UPDATE SET seq = excluded.seq, last_hash = excluded.last_hash, \
     keyed_from = excluded.keyed_from, mac = excluded.mac";

/// 1 when the team has any audit row; `$1` is the team.
pub(crate) const AUDIT_HAS_ROWS: &str = "SELECT EXISTS (SELECT 1 FROM audit WHERE team_id = $1)";

/// A team's retention anchor `(anchor_hash, first_seq)`; `$1` is the team.
pub(crate) const AUDIT_ANCHOR: &str =
    "SELECT anchor_hash, first_seq FROM audit_anchor WHERE team_id = $1";

/// A team's retention anchor with its seal `(anchor_hash, first_seq, mac)`
/// (`''` for an unsealed one, which never verifies); `$1` is the team.
pub(crate) const AUDIT_ANCHOR_SEALED: &str =
    "SELECT anchor_hash, first_seq, coalesce(mac, '') FROM audit_anchor WHERE team_id = $1";

/// `meta` key of the marker that migrated heads were sealed once.
pub(crate) const META_HEADS_SEALED: &str = "audit_heads_sealed";

/// A stored head row as read by either driver.
pub(crate) type HeadRow = (i64, String, i64, Option<String>);

/// The head as the domain type.
pub(crate) fn head_of(team: i64, (seq, last_hash, keyed_from, mac): HeadRow) -> AuditHead {
    AuditHead {
        team_internal_id: team,
        seq,
        last_hash,
        keyed_from,
        mac,
    }
}

/// Where `team`'s chain continues, from what the write transaction read: the
/// stored head once its seal verifies; with no head, a fresh chain (after the
/// retention anchor, if any) unless the team has rows, whose head was then
/// deleted. Fails closed: nothing is chained onto a head edited behind the
/// store's back, so the edit stays visible to `tap audit verify`.
pub(crate) fn resume(
    key: &AuditKey,
    team: i64,
    stored: Option<HeadRow>,
    has_rows: impl FnOnce() -> StoreResult<bool>,
    anchor: impl FnOnce() -> StoreResult<Option<(String, i64)>>,
) -> StoreResult<ChainHead> {
    match stored {
        Some(row) => head_of(team, row).open(key).map_err(|e| {
            StoreError::Corrupt(format!(
                "audit chain head of team {team} {e}; run `tap audit verify`"
            ))
        }),
        None if has_rows()? => Err(StoreError::Corrupt(format!(
            "audit chain head of team {team} is missing; run `tap audit verify`"
        ))),
        None => Ok(ChainHead::fresh(anchor()?)),
    }
}

/// The audit key, shared by a store's clones and its spool; set once the
/// master key is open ([`tap_core::store::Store::set_audit_key`]).
#[derive(Clone, Default)]
pub(crate) struct AuditKeySlot(Arc<RwLock<Option<AuditKey>>>);

impl std::fmt::Debug for AuditKeySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKeySlot([redacted])")
    }
}

impl AuditKeySlot {
    pub(crate) fn set(&self, key: AuditKey) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(key);
    }

    /// The key, when set.
    pub(crate) fn current(&self) -> Option<AuditKey> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The key; `Unavailable` before it is set (nothing unkeyed is written).
    pub(crate) fn get(&self) -> StoreResult<AuditKey> {
        self.current().ok_or_else(|| {
            StoreError::Unavailable(
                "the audit key is not set: the store must be opened with the master key".into(),
            )
        })
    }
}

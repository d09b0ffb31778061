//! What every connection to a TAP SQLite file agrees on, whichever driver
//! opened it (the sqlx pool or the audit spool's own rusqlite connection): how
//! long a writer waits for the lock, and how a team's audit chain head is read.
//!
//! A leaf: it imports nothing from the modules that use it.

use std::time::Duration;

/// How long a writer waits for SQLite's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A team's last audit row `(seq, row_hash)`; `$1` is the team.
pub(crate) const AUDIT_LAST_ROW: &str =
    "SELECT seq, row_hash FROM audit WHERE team_id = $1 ORDER BY seq DESC LIMIT 1";

/// A team's retention anchor `(anchor_hash, first_seq)`; `$1` is the team.
pub(crate) const AUDIT_ANCHOR: &str =
    "SELECT anchor_hash, first_seq FROM audit_anchor WHERE team_id = $1";

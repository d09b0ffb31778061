//! The audit trail: filtered reads (API and `tap logs`) and chain verification.

use serde::{Deserialize, Serialize};
use tap_core::audit::{AuditPhase, AuditRecord, ChainAnchor, merge_rows, verify_keyed};
use tap_core::store::AuditQuery;
use utoipa::{IntoParams, ToSchema};

use super::{Need, Ops, OpsError, OpsResult, Scope};

/// Entries `GET /team/audit` answers without `limit`.
pub const AUDIT_PAGE_DEFAULT: u32 = 100;
/// Most entries `GET /team/audit` answers.
pub const AUDIT_PAGE_MAX: u32 = 1000;
/// Most entries an export (`GET /team/audit/export`, `tap logs`) holds.
pub const AUDIT_EXPORT_MAX: u32 = 100_000;

/// Filter of `GET /team/audit`, `/team/audit/export` and `tap logs`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Agent id: `bot` is this team's own agent, `home/bot` a linked agent of team `home`.
    pub agent: Option<String>,
    /// Credential name.
    pub credential: Option<String>,
    /// `ok`, `error` (or `refused`), an error code, or an upstream status.
    pub status: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Most rows read.
    pub limit: Option<u32>,
}

/// One request's audit entry (SPEC §9): never a secret or an agent key.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct AuditEntry(pub AuditRecord);

/// Entries and the position they were read up to (for `tap logs --follow`).
#[derive(Clone, Debug)]
pub struct AuditPage {
    /// Entries, oldest first.
    pub entries: Vec<AuditEntry>,
    /// The highest row sequence number read (0 when none).
    pub last_seq: i64,
}

/// The result of checking a team's audit chain (`tap audit verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditVerification {
    /// True when every row links and its MAC verifies, up to the sealed head
    /// (and the chain extends the anchor, when one was given).
    pub ok: bool,
    /// Rows checked.
    pub rows: u64,
    /// Sequence number of the first bad (or first missing) row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_row: Option<i64>,
    /// First and last sequence number of rows found missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_rows: Option<(i64, i64)>,
    /// What is wrong, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What `tap audit prune` did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditPruneView {
    /// Rows stamped before this time were deleted (RFC 3339 UTC).
    pub before: String,
    /// Rows deleted, over every team.
    pub deleted: u64,
}

/// The head of a team's audit chain as an operator saves it (`tap audit anchor`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AuditAnchorView {
    /// Team slug.
    pub team: String,
    /// Sequence number of the last row (0: no row yet).
    pub rows: i64,
    /// MAC of the last row, hex.
    pub hash: String,
    /// `tap1:<team>:<rows>:<hash>`, for `tap audit verify --anchor`.
    pub anchor: String,
}

fn status_matches(r: &AuditRecord, status: Option<&str>) -> bool {
    match status {
        None | Some("") => true,
        Some("ok") => r.error_code.is_none(),
        Some("error") | Some("refused") => r.error_code.is_some(),
        Some(s) => {
            r.error_code.as_deref() == Some(s)
                || r.upstream_status.map(|n| n.to_string()).as_deref() == Some(s)
        }
    }
}

/// The filter, split into what the store filters and what is checked here.
struct Wanted<'a> {
    home: &'a str,
    agent_home: Option<&'a str>,
    agent_id: Option<&'a str>,
    filter: &'a AuditFilter,
}

impl<'a> Wanted<'a> {
    fn new(scope: &'a Scope, filter: &'a AuditFilter) -> Self {
        // Agents are keyed by (home team, id): `agent=bot` is this team's own
        // `bot`, `agent=home/bot` a linked agent of team `home`.
        let (agent_home, agent_id) = match filter.agent.as_deref().map(|a| (a, a.split_once('/'))) {
            Some((_, Some((home, id)))) => (Some(home), Some(id)),
            Some((a, None)) => (None, Some(a)),
            None => (None, None),
        };
        Self {
            home: &scope.team.slug,
            agent_home,
            agent_id,
            filter,
        }
    }

    fn query(&self, after_seq: Option<i64>, limit: u32) -> AuditQuery {
        AuditQuery {
            agent: self.agent_id.map(str::to_owned),
            credential: self.filter.credential.clone(),
            after_seq,
            limit: Some(limit),
        }
    }

    fn keeps(&self, r: &AuditRecord) -> bool {
        (self.agent_id.is_none()
            || r.agent_home_team.as_deref().unwrap_or(self.home)
                == self.agent_home.unwrap_or(self.home))
            && status_matches(r, self.filter.status.as_deref())
            && self
                .filter
                .since
                .as_deref()
                .is_none_or(|since| r.timestamp.as_str() >= since)
    }
}

impl Ops {
    async fn audit_read(
        &self,
        scope: &Scope,
        filter: &AuditFilter,
        default: u32,
        max: u32,
    ) -> OpsResult<AuditPage> {
        scope.require(Need::Read)?;
        let w = Wanted::new(scope, filter);
        let limit = filter.limit.unwrap_or(default).clamp(1, max);
        let rows = self
            .store
            .audit_rows(scope.team.internal_id, &w.query(None, limit))
            .await?;
        let last_seq = rows.iter().map(|r| r.seq).max().unwrap_or(0);
        Ok(AuditPage {
            entries: merge_rows(&rows)
                .into_iter()
                .filter(|r| w.keeps(r))
                .map(AuditEntry)
                .collect(),
            last_seq,
        })
    }

    /// `GET /team/audit`: entries of the scope's team, oldest first; `limit`
    /// defaults to [`AUDIT_PAGE_DEFAULT`], at most [`AUDIT_PAGE_MAX`].
    pub async fn audit(&self, scope: &Scope, filter: &AuditFilter) -> OpsResult<Vec<AuditEntry>> {
        Ok(self
            .audit_read(scope, filter, AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX)
            .await?
            .entries)
    }

    /// `GET /team/audit/export`, `tap logs`: like [`Ops::audit`] up to
    /// [`AUDIT_EXPORT_MAX`] entries, with the position read up to.
    pub async fn audit_export(&self, scope: &Scope, filter: &AuditFilter) -> OpsResult<AuditPage> {
        self.audit_read(scope, filter, AUDIT_EXPORT_MAX, AUDIT_EXPORT_MAX)
            .await
    }

    /// `tap logs --follow`: requests finished after row `after_seq`.
    pub async fn audit_after(
        &self,
        scope: &Scope,
        filter: &AuditFilter,
        after_seq: i64,
    ) -> OpsResult<AuditPage> {
        scope.require(Need::Read)?;
        let w = Wanted::new(scope, filter);
        let rows = self
            .store
            .audit_rows(
                scope.team.internal_id,
                &w.query(Some(after_seq), AUDIT_EXPORT_MAX),
            )
            .await?;
        let mut last_seq = after_seq;
        let mut entries = Vec::new();
        for row in rows.iter().filter(|r| r.seq > after_seq) {
            last_seq = last_seq.max(row.seq);
            // A follower prints each request once, when it finished.
            if row.phase == AuditPhase::Finish
                && let Ok(rec) = row.record()
                && w.keeps(&rec)
            {
                entries.push(AuditEntry(rec));
            }
        }
        Ok(AuditPage { entries, last_seq })
    }

    /// Checks the scope's team's audit chain with the audit key: every row's
    /// MAC and link, up to the sealed head; with `anchor`, also that the chain
    /// still holds the anchored row.
    pub async fn verify_audit(
        &self,
        scope: &Scope,
        anchor: Option<&ChainAnchor>,
    ) -> OpsResult<AuditVerification> {
        scope.require(Need::Read)?;
        if let Some(a) = anchor
            && a.team != scope.team.slug
        {
            return Err(OpsError::Invalid(format!(
                "the anchor is for team {}, not team {}",
                a.team, scope.team.slug
            )));
        }
        let team = scope.team.internal_id;
        let chain = self.store.audit_chain(team).await?;
        let v = verify_keyed(
            &self.keys.audit_key(),
            team,
            &chain,
            anchor.map(|a| (a.rows, a.hash.as_str())),
        );
        Ok(AuditVerification {
            ok: v.ok,
            rows: v.rows,
            first_bad_row: v.first_bad_row,
            missing_rows: v.missing_rows,
            error: v.error,
        })
    }

    /// The head of the scope's team's chain as an anchor to save, once the
    /// chain verifies (an anchor of a broken chain would vouch for it).
    pub async fn audit_anchor(&self, scope: &Scope) -> OpsResult<AuditAnchorView> {
        scope.require(Need::Read)?;
        let team = scope.team.internal_id;
        let chain = self.store.audit_chain(team).await?;
        let v = verify_keyed(&self.keys.audit_key(), team, &chain, None);
        if !v.ok {
            return Err(OpsError::Conflict(format!(
                "the audit chain of team {} does not verify ({}); run `tap audit verify`",
                scope.team.slug,
                v.error.unwrap_or_default()
            )));
        }
        let (rows, hash) = match chain.head {
            Some(h) => (h.seq, h.last_hash),
            None => (chain.first_seq - 1, chain.anchor_hash),
        };
        let anchor = ChainAnchor {
            team: scope.team.slug.clone(),
            rows,
            hash,
        };
        Ok(AuditAnchorView {
            team: anchor.team.clone(),
            rows: anchor.rows,
            hash: anchor.hash.clone(),
            anchor: anchor.to_string(),
        })
    }

    /// Retention by hand (`tap audit prune`): deletes every team's rows
    /// stamped before `before` (RFC 3339), never a team's last row; each
    /// chain then verifies from its sealed anchor. Deployment-wide, so only
    /// an owner; the same store call as `TAP_AUDIT_RETENTION_DAYS`.
    pub async fn prune_audit(&self, scope: &Scope, before: &str) -> OpsResult<AuditPruneView> {
        scope.require(Need::Owner)?;
        let before = crate::retention::normalize(before)
            .ok_or_else(|| OpsError::Invalid(format!("{before:?} is not an RFC 3339 time")))?;
        let deleted = self.store.prune_audit(&before).await?;
        Ok(AuditPruneView { before, deleted })
    }
}

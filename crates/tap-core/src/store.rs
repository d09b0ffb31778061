//! The backend-neutral storage contract.
//!
//! Implementations (SQLite, Postgres) live in `tap-store`. Invariants every
//! implementation keeps:
//! - every write that changes configuration bumps [`Store::revision`] in the same
//!   transaction, so proxies notice within their poll interval;
//! - audit appends are chained per team inside one transaction and are durable
//!   when the call returns; rows are MACed with the audit key given by
//!   [`Store::set_audit_key`] (appends without one fail: nothing unkeyed is
//!   written) and the team's sealed [`AuditHead`] moves in that transaction;
//! - values are stored only sealed; nothing here decrypts.

use async_trait::async_trait;

use crate::audit::{AuditChain, AuditHead, AuditPhase, AuditRecord, AuditRow};
use crate::crypto::AuditKey;
use crate::model::{
    Account, AdminToken, Agent, Approval, ApprovalStatus, CeremonyKind, CeremonyRecord, Channel,
    Credential, Grant, Link, Member, MemberRole, PasskeyRecord, Role, Team, TelegramMessage,
};
use crate::policy::{ApprovalMode, Policy};

/// Storage errors. Messages name objects, never values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A uniqueness or invariant conflict.
    #[error("{0}")]
    Conflict(String),
    /// The store has no schema yet.
    #[error("store is not initialised; run `tap init`")]
    Uninitialized,
    /// The backend failed (I/O, lock, corruption).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// A new agent.
#[derive(Clone, Debug)]
pub struct NewAgent {
    /// Home team.
    pub team_internal_id: i64,
    /// Agent id.
    pub id: String,
    /// Free text.
    pub description: String,
    /// Keyed hash of the key.
    pub key_hash: String,
    /// Roles held.
    pub roles: Vec<String>,
    /// Direct credential grants.
    pub credentials: Vec<String>,
    /// Requests per rolling hour.
    pub rate_limit_per_hour: Option<u32>,
}

/// Changes to an agent, applied together by [`Store::update_agent`]. Every
/// field is optional: `None` leaves that part of the agent unchanged.
#[derive(Clone, Debug, Default)]
pub struct AgentUpdate {
    /// New free text; `None` = unchanged.
    pub description: Option<String>,
    /// Enable or disable; `None` = unchanged.
    pub enabled: Option<bool>,
    /// Replaces the whole set of roles held (`Some(vec![])` removes all);
    /// `None` = unchanged. Every role must exist in the agent's team.
    pub roles: Option<Vec<String>>,
    /// Replaces the whole set of direct credential grants (`Some(vec![])`
    /// removes all); `None` = unchanged. Every credential must exist in the
    /// agent's team.
    pub credentials: Option<Vec<String>>,
    /// `Some(Some(n))` sets the limit, `Some(None)` removes it; `None` = unchanged.
    pub rate_limit_per_hour: Option<Option<u32>>,
}

/// One team's data key in a master-key rotation ([`Store::rewrap_keys`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamKeyChange {
    /// The team.
    pub team_internal_id: i64,
    /// The DEK id the team has now; the change applies only while it still does.
    pub dek_id: String,
    /// The DEK id afterwards: `dek_id` itself when the DEK is only re-wrapped.
    pub new_dek_id: String,
    /// The (new) DEK wrapped under the new master key.
    pub wrapped_dek: Vec<u8>,
    /// With a new DEK: every sealed value of the team, re-sealed under it.
    pub values: Vec<ResealedValue>,
}

/// A credential value re-sealed under a team's new DEK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResealedValue {
    /// Credential name.
    pub credential: String,
    /// The sealed value as read; the change applies only while it is still stored.
    pub sealed: Vec<u8>,
    /// The value sealed under the new DEK.
    pub resealed: Vec<u8>,
}

/// One audit row to append.
#[derive(Clone, Debug)]
pub struct AuditAppend {
    /// Team whose chain gets the row.
    pub team_internal_id: i64,
    /// Row phase.
    pub phase: AuditPhase,
    /// The record.
    pub record: AuditRecord,
}

/// An in-process, synchronous audit appender with a durable log of its own
/// (for SQLite, an append-only spool file), so that making a row durable costs
/// no thread hand-off and no database transaction.
///
/// Invariants: a call to [`AuditWriter::append`] that returns `Ok` has made
/// every row durable (as durable as [`Store::append_audit`]) and fixed their
/// order; any error leaves none of them behind. Appended rows reach the
/// store's tables, chained in that order, by [`AuditWriter::fold`]; the
/// store's own audit reads fold first, so they always see them.
pub trait AuditWriter: Send + Sync {
    /// Makes `rows` durable, in order. Never waits for the database.
    fn append(&self, rows: &[AuditAppend]) -> StoreResult<()>;
    /// Moves appended rows into the store's tables; returns how many. May wait
    /// for the database's lock: call it off the async runtime's workers.
    fn fold(&self) -> StoreResult<usize>;
}

/// Filters for reading audit rows (newest `limit` requests, returned oldest first).
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Only this agent.
    pub agent: Option<String>,
    /// Only rows naming this credential.
    pub credential: Option<String>,
    /// Only rows after this sequence number.
    pub after_seq: Option<i64>,
    /// At most this many rows.
    pub limit: Option<u32>,
}

/// Everything the proxy's hot path needs, loaded in one read.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Revision the snapshot was read at.
    pub revision: i64,
    /// All teams.
    pub teams: Vec<Team>,
    /// All agents.
    pub agents: Vec<Agent>,
    /// All credentials, values sealed.
    pub credentials: Vec<Credential>,
    /// All roles.
    pub roles: Vec<Role>,
    /// Policies by (team internal id, credential).
    pub policies: Vec<(i64, String, Policy)>,
    /// Unrevoked, unexpired grants.
    pub grants: Vec<Grant>,
    /// Members of every team with their approver assignments.
    pub members: Vec<(i64, Member)>,
    /// Multi-account links.
    pub links: Vec<Link>,
}

/// The outcome of recording one vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VoteOutcome {
    /// Counted; the approval now has this status and approval count.
    Counted {
        /// New status.
        status: ApprovalStatus,
        /// Distinct approvals so far.
        approvals: u32,
    },
    /// The member already voted on it.
    AlreadyVoted,
    /// Not pending any more (or expired).
    NotPending(ApprovalStatus),
    /// No such approval.
    Missing,
}

/// What a per-address abuse counter ([`Store::count_abuse_failure`]) counts.
/// Each kind has its own limit and window; an address's failures of one kind
/// never count against another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AbuseKind {
    /// A failed member sign-in (password or passkey).
    Login,
    /// An invalid agent key.
    AgentKey,
}

impl AbuseKind {
    /// The stored spelling: `login`, `agent_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::AgentKey => "agent_key",
        }
    }
}

/// What [`Store::token_lease`] found for a credential's shared OAuth 2
/// access token (SPEC §6.3; one token call across replicas).
#[derive(Clone, PartialEq, Eq)]
pub enum TokenLease {
    /// A token stored for the credential's current value, still usable:
    /// sealed with the team's data key, used until `until_ms`.
    Cached {
        /// The sealed access token.
        sealed: Vec<u8>,
        /// Time (ms) until which it is used.
        until_ms: i64,
    },
    /// Another holder is calling the token endpoint; ask again shortly.
    Busy,
    /// The caller holds the lease: it calls the endpoint, then
    /// [`Store::put_token`]. The lease ends by itself after `lease_ms`.
    Acquired,
}

impl std::fmt::Debug for TokenLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cached { until_ms, .. } => write!(f, "Cached {{ until_ms: {until_ms}, .. }}"),
            Self::Busy => f.write_str("Busy"),
            Self::Acquired => f.write_str("Acquired"),
        }
    }
}

/// The storage contract. See the module docs for invariants.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// True when the schema exists.
    async fn is_initialized(&self) -> StoreResult<bool>;
    /// A cheap liveness check.
    async fn ping(&self) -> StoreResult<()>;
    /// Configuration revision; grows on every configuration write.
    async fn revision(&self) -> StoreResult<i64>;

    /// Reads a deployment-wide metadata value.
    async fn meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Writes a metadata value (insert or replace).
    async fn set_meta(&self, key: &str, value: &[u8]) -> StoreResult<()>;

    /// Master-key rotation: applies each team's [`TeamKeyChange`] (a
    /// re-wrapped DEK, or a new DEK with every value re-sealed under it) and
    /// writes each metadata value, all in one transaction. It fails with
    /// `Conflict`, changing nothing, when a team's DEK id is no longer the
    /// one listed, a team is missing from the list, or (with a new DEK) a
    /// sealed value is not exactly the one read or a value is missing from
    /// the list. Re-sealed values keep their `updated_at`.
    async fn rewrap_keys(
        &self,
        teams: &[TeamKeyChange],
        meta: &[(String, Vec<u8>)],
    ) -> StoreResult<()>;

    /// Creates a team.
    async fn create_team(
        &self,
        slug: &str,
        mode: ApprovalMode,
        dek_id: &str,
        wrapped_dek: &[u8],
    ) -> StoreResult<Team>;
    /// A team by slug.
    async fn team(&self, slug: &str) -> StoreResult<Option<Team>>;
    /// All teams.
    async fn teams(&self) -> StoreResult<Vec<Team>>;
    /// Changes a team's default approval mode.
    async fn set_team_mode(&self, team_internal_id: i64, mode: ApprovalMode) -> StoreResult<()>;

    /// Creates an account; conflict when the e-mail exists.
    async fn create_account(&self, email: &str, password_hash: &str) -> StoreResult<i64>;
    /// An account by e-mail.
    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>>;
    /// Adds or changes a membership.
    async fn set_membership(
        &self,
        team_internal_id: i64,
        account_id: i64,
        role: MemberRole,
    ) -> StoreResult<()>;
    /// Members of a team.
    async fn members(&self, team_internal_id: i64) -> StoreResult<Vec<Member>>;
    /// Stores an admin token hash.
    async fn create_admin_token(
        &self,
        account_id: i64,
        token_hash: &str,
        label: &str,
    ) -> StoreResult<i64>;
    /// An unrevoked admin token by hash.
    async fn admin_token(&self, token_hash: &str) -> StoreResult<Option<AdminToken>>;

    /// Creates an agent; conflict when the id exists in the team.
    async fn create_agent(&self, agent: &NewAgent) -> StoreResult<Agent>;
    /// An agent by (team, id).
    async fn agent(&self, team_internal_id: i64, id: &str) -> StoreResult<Option<Agent>>;
    /// Agents of a team.
    async fn agents(&self, team_internal_id: i64) -> StoreResult<Vec<Agent>>;
    /// Enables or disables; false when absent.
    async fn set_agent_enabled(
        &self,
        team_internal_id: i64,
        id: &str,
        enabled: bool,
    ) -> StoreResult<bool>;
    /// Replaces the key hash; false when absent.
    async fn set_agent_key(
        &self,
        team_internal_id: i64,
        id: &str,
        key_hash: &str,
    ) -> StoreResult<bool>;
    /// Deletes an agent and its grants; false when absent.
    async fn delete_agent(&self, team_internal_id: i64, id: &str) -> StoreResult<bool>;
    /// Grants or ungrants a credential directly; false when the agent is absent.
    async fn set_agent_credential(
        &self,
        team_internal_id: i64,
        id: &str,
        credential: &str,
        granted: bool,
    ) -> StoreResult<bool>;
    /// Adds or removes a role from an agent; false when the agent is absent.
    async fn set_agent_role(
        &self,
        team_internal_id: i64,
        id: &str,
        role: &str,
        held: bool,
    ) -> StoreResult<bool>;

    /// Applies `update` to an agent in one transaction that bumps the revision
    /// once; returns the agent as updated, `None` when it is absent. A named
    /// role or credential that does not exist in the team is
    /// `NotFound("role X")` / `NotFound("credential X")`, and then nothing is
    /// written.
    async fn update_agent(
        &self,
        team_internal_id: i64,
        id: &str,
        update: &AgentUpdate,
    ) -> StoreResult<Option<Agent>>;

    /// Creates or replaces a credential's metadata; keeps the stored value when
    /// `credential.sealed_value` is `None`, else replaces it as
    /// [`Store::set_credential_value`] does (its shared OAuth 2 token row
    /// goes). Returns true when created.
    async fn upsert_credential(&self, credential: &Credential) -> StoreResult<bool>;
    /// A credential by (team, name).
    async fn credential(
        &self,
        team_internal_id: i64,
        name: &str,
    ) -> StoreResult<Option<Credential>>;
    /// Credentials of a team.
    async fn credentials(&self, team_internal_id: i64) -> StoreResult<Vec<Credential>>;
    /// Replaces a sealed value as an admin does: `updated_at` moves (pending
    /// approvals on the credential end `credential_changed`) and the
    /// credential's shared OAuth 2 token row (its token, lease and any state
    /// derived from the old value) is deleted in the same transaction. False
    /// when absent.
    async fn set_credential_value(
        &self,
        team_internal_id: i64,
        name: &str,
        sealed: &[u8],
        is_json: bool,
    ) -> StoreResult<bool>;
    /// Persists a refresh token the credential's token endpoint rotated
    /// (SPEC §6.3): replaces the sealed value with `sealed` only while the
    /// stored one is still exactly `expected`, so a value an admin set
    /// meanwhile is never overwritten (false then, and when absent). Keeps
    /// `updated_at`, the version pending approvals compare (no human changed
    /// the credential), and the shared token row; the revision grows.
    async fn rotate_credential_value(
        &self,
        team_internal_id: i64,
        name: &str,
        expected: &[u8],
        sealed: &[u8],
    ) -> StoreResult<bool>;
    /// Deletes a credential, its grants, policy and shared OAuth 2 token row;
    /// conflict when a role names it.
    async fn delete_credential(&self, team_internal_id: i64, name: &str) -> StoreResult<bool>;

    /// Creates a role; conflict when it exists.
    async fn create_role(&self, role: &Role) -> StoreResult<()>;
    /// A role by (team, name).
    async fn role(&self, team_internal_id: i64, name: &str) -> StoreResult<Option<Role>>;
    /// Roles of a team.
    async fn roles(&self, team_internal_id: i64) -> StoreResult<Vec<Role>>;
    /// Adds or removes a credential from a role; false when the role is absent.
    async fn set_role_credential(
        &self,
        team_internal_id: i64,
        role: &str,
        credential: &str,
        present: bool,
    ) -> StoreResult<bool>;
    /// Deletes a role; false when absent.
    async fn delete_role(&self, team_internal_id: i64, name: &str) -> StoreResult<bool>;
    /// Creates a role or replaces its description, credential set and rate
    /// limit, in one transaction that bumps the revision once; true when
    /// created. Agents holding the role keep it. A credential that does not
    /// exist in the team is `NotFound("credential X")`, and then nothing is
    /// written.
    async fn put_role(&self, role: &Role) -> StoreResult<bool>;

    /// A credential's policy.
    async fn policy(&self, team_internal_id: i64, credential: &str) -> StoreResult<Option<Policy>>;
    /// Sets a credential's policy.
    async fn set_policy(
        &self,
        team_internal_id: i64,
        credential: &str,
        policy: &Policy,
    ) -> StoreResult<()>;
    /// Removes a credential's policy; false when there was none.
    async fn clear_policy(&self, team_internal_id: i64, credential: &str) -> StoreResult<bool>;

    /// Gives the store the audit key (derived from the master key's MAC key;
    /// called once the keys are opened, before any audit append). The first
    /// time a deployment gets a key, heads a migration recorded for chains
    /// written by earlier versions are sealed, and a sealed marker records
    /// that this happened: a head found unsealed later is never sealed again.
    async fn set_audit_key(&self, key: AuditKey) -> StoreResult<()>;
    /// A team's stored chain head (after folding pending rows); `None` when
    /// the team never had one.
    async fn audit_head(&self, team_internal_id: i64) -> StoreResult<Option<AuditHead>>;
    /// Appends rows, chaining each to its team's sealed head with the audit
    /// key and moving the head, in one transaction. `Unavailable` without a
    /// key; `Corrupt` when a head's seal does not verify (fail closed: nothing
    /// is chained onto a head edited behind the store's back).
    async fn append_audit(&self, rows: &[AuditAppend]) -> StoreResult<()>;
    /// A synchronous appender on a connection of its own, where the backend has
    /// one (the embedded SQLite store); `None` means use [`Store::append_audit`].
    fn audit_writer(&self) -> StoreResult<Option<std::sync::Arc<dyn AuditWriter>>> {
        Ok(None)
    }
    /// Housekeeping after many appends (SQLite: copy the write-ahead log into the
    /// database without blocking anyone). A no-op where there is nothing to do.
    async fn checkpoint(&self) -> StoreResult<()> {
        Ok(())
    }
    /// Lets go of the store at a clean stop, once nothing uses it any more
    /// (SQLite: the in-use mark is removed when no other process has the
    /// store open, and the write-ahead log is folded into the database file,
    /// so the file alone is whole). Best effort; a no-op by default.
    async fn close(&self) {}
    /// Rows of a team, filtered, ordered by seq.
    async fn audit_rows(
        &self,
        team_internal_id: i64,
        query: &AuditQuery,
    ) -> StoreResult<Vec<AuditRow>>;
    /// Every row of a team's chain in order, with the hash and first seq to
    /// verify from and the stored head. A row whose index columns disagree
    /// with its record comes back with a `row_hash` that never verifies.
    async fn audit_chain(&self, team_internal_id: i64) -> StoreResult<AuditChain>;
    /// Retention: for every team, deletes the rows whose timestamp is before
    /// `before` (RFC 3339 UTC, as the rows store it), never the team's last
    /// row, and moves the team's sealed retention anchor to the last deleted
    /// row (`anchor_hash` its hash, `first_seq` its seq + 1), per team in one
    /// write transaction; pending spooled rows are folded first. Idempotent and
    /// safe to run from several processes at once. Answers the rows deleted.
    async fn prune_audit(&self, before: &str) -> StoreResult<u64>;

    /// Everything the hot path needs.
    async fn snapshot(&self) -> StoreResult<Snapshot>;

    /// Changes a member's role; conflict when it would leave the team without an owner.
    async fn set_member_role(
        &self,
        team_internal_id: i64,
        email: &str,
        role: MemberRole,
    ) -> StoreResult<bool>;
    /// Removes a member; conflict when it is the last owner.
    async fn remove_member(&self, team_internal_id: i64, email: &str) -> StoreResult<bool>;
    /// Replaces an approver's assigned credentials.
    async fn set_member_credentials(
        &self,
        team_internal_id: i64,
        email: &str,
        credentials: &[String],
    ) -> StoreResult<bool>;

    /// Stores a new pending approval.
    async fn create_approval(&self, approval: &Approval) -> StoreResult<()>;
    /// An approval with its votes.
    async fn approval(&self, txn_id: &str) -> StoreResult<Option<Approval>>;
    /// Approvals of a team in a status (all statuses when `None`), newest first.
    async fn approvals(
        &self,
        team_internal_id: i64,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Approval>>;
    /// Pending approvals created by an agent.
    async fn pending_count(&self, agent_team_internal_id: i64, agent_id: &str) -> StoreResult<u32>;
    /// Records a vote atomically: only on a pending, unexpired approval, once per member;
    /// a deny decides `denied`, the `min_approvals`-th distinct approval decides `approved`.
    /// Only approvals by members in `counted` (those eligible now) count toward
    /// `min_approvals`: a member removed or demoted since voting no longer counts.
    async fn vote(
        &self,
        txn_id: &str,
        email: &str,
        approve: bool,
        channel: &str,
        now: i64,
        counted: &[&str],
    ) -> StoreResult<VoteOutcome>;
    /// Approvals waiting to be forwarded (`approved`), oldest first.
    async fn approved_unclaimed(&self, limit: u32) -> StoreResult<Vec<String>>;
    /// Claims an approved approval for forwarding; true for exactly one caller.
    async fn claim_approved(&self, txn_id: &str) -> StoreResult<bool>;
    /// Finishes an approval with its final status, error code and stored response.
    async fn finish_approval(
        &self,
        txn_id: &str,
        status: ApprovalStatus,
        error_code: Option<&str>,
        response: Option<&str>,
        now: i64,
    ) -> StoreResult<()>;
    /// Moves pending approvals past their expiry to `timed_out`; returns their ids.
    async fn expire_approvals(&self, now: i64) -> StoreResult<Vec<String>>;
    /// Ends approvals left `forwarding` by a stopped process as `error` / `interrupted`:
    /// the upstream may have seen them, so they are never forwarded twice.
    async fn fail_interrupted(&self, now: i64) -> StoreResult<u64>;
    /// Deletes decided approvals whose results are older than `before`.
    async fn purge_approvals(&self, before: i64) -> StoreResult<u64>;

    /// Creates a grant.
    async fn create_grant(&self, grant: &Grant) -> StoreResult<()>;
    /// Grants of a team (revoked and expired included).
    async fn grants(&self, team_internal_id: i64) -> StoreResult<Vec<Grant>>;
    /// Revokes a grant; false when absent.
    async fn revoke_grant(&self, team_internal_id: i64, id: &str) -> StoreResult<bool>;
    /// Uses a grant once, atomically; false when it is exhausted, expired or revoked.
    async fn use_grant(&self, id: &str, now_secs: i64) -> StoreResult<bool>;
    /// Gives back one use claimed by [`Store::use_grant`] when nothing was
    /// forwarded under it (the call failed before reaching the upstream);
    /// false when the grant has no use to give back.
    async fn release_grant_use(&self, id: &str) -> StoreResult<bool>;
    /// Counts one request of an agent against its sliding window, atomically
    /// for every process sharing the store: `None` when counted, or
    /// `Some(retry_after_ms)` when `limit` requests already fall in the
    /// `window_ms` before `now_ms` (then nothing is counted). A limit of N
    /// allows exactly N per window across every replica.
    async fn take_rate(
        &self,
        team_internal_id: i64,
        agent_id: &str,
        limit: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Option<i64>>;

    /// Counts one failure of `address` (a client address or block, as the
    /// caller buckets it) under `kind`, atomically for every process sharing
    /// the store: `None` when counted, or `Some(retry_after_ms)` when `limit`
    /// failures already fall in the address's current window (then nothing
    /// is counted). A window starts at the address's first failure and lasts
    /// `window_ms`; a failure after it starts a new one. Expired windows of
    /// `kind` are deleted as failures are counted (a bounded number per
    /// call), so what is kept is bounded by the failures of one window.
    async fn count_abuse_failure(
        &self,
        kind: AbuseKind,
        address: &str,
        limit: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Option<i64>>;
    /// `Some(retry_after_ms)` when `address` has `limit` failures of `kind`
    /// in its current window (see [`Store::count_abuse_failure`]); reads only.
    async fn abuse_blocked(
        &self,
        kind: AbuseKind,
        address: &str,
        limit: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Option<i64>>;

    /// Stores a session.
    async fn create_session(
        &self,
        account_id: i64,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The account of an unexpired session.
    async fn session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<i64>>;
    /// Deletes a session.
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// An account by id.
    async fn account(&self, id: i64) -> StoreResult<Option<Account>>;

    /// Creates or replaces a link.
    async fn set_link(&self, link: &Link) -> StoreResult<()>;
    /// Links made by a team.
    async fn links(&self, team_internal_id: i64) -> StoreResult<Vec<Link>>;
    /// Removes a link; false when absent.
    async fn delete_link(
        &self,
        team_internal_id: i64,
        home_team_internal_id: i64,
        agent_id: &str,
    ) -> StoreResult<bool>;

    /// Lists admin tokens of the accounts that are members of a team.
    async fn admin_tokens(&self, team_internal_id: i64) -> StoreResult<Vec<(AdminToken, String)>>;
    /// Revokes an admin token by id; false when absent.
    async fn revoke_admin_token(&self, id: i64) -> StoreResult<bool>;

    /// Resolves when a change (configuration, approvals) may have been
    /// committed by any process sharing the store: a wake-up to poll now,
    /// never the only way to see a change. Where nothing signals (SQLite),
    /// never resolves: poll.
    async fn changed(&self) {
        std::future::pending::<()>().await;
    }

    /// Tries to become, or confirms this store still is, the one process of
    /// the deployment that does `role` (e.g. `telegram-poll`): true while it
    /// is. Another process gets true only once this one is gone. Where one
    /// process owns the store (SQLite), always true.
    async fn lead(&self, role: &str) -> StoreResult<bool>;

    /// The shared access token of credential `name`, under a lock keyed by
    /// (team, credential) that every replica takes: `Cached` while a stored
    /// token is usable at `now_ms` and the credential was not changed since
    /// it was stored; else `Busy` while another holder's lease runs; else
    /// the lease passes to `holder` for `lease_ms` and `Acquired`.
    async fn token_lease(
        &self,
        team_internal_id: i64,
        name: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<TokenLease>;
    /// Ends `holder`'s lease on credential `name`'s token, storing `sealed`
    /// as its token until `until_ms` (nothing stored when `None`). A holder
    /// whose lease was taken over stores nothing.
    async fn put_token(
        &self,
        team_internal_id: i64,
        name: &str,
        holder: &str,
        sealed: Option<&[u8]>,
        until_ms: i64,
    ) -> StoreResult<()>;

    /// Creates or replaces a notification channel.
    async fn set_channel(&self, channel: &Channel) -> StoreResult<()>;
    /// Channels of a team.
    async fn channels(&self, team_internal_id: i64) -> StoreResult<Vec<Channel>>;
    /// Deletes a channel; false when absent.
    async fn delete_channel(&self, team_internal_id: i64, name: &str) -> StoreResult<bool>;

    /// Links a Telegram user id to the account of `email` (replacing any
    /// earlier link of that Telegram user or of that account); false when no
    /// such account exists.
    async fn link_telegram_user(&self, email: &str, telegram_user_id: i64) -> StoreResult<bool>;
    /// The e-mail of the account a Telegram user is linked to.
    async fn telegram_user(&self, telegram_user_id: i64) -> StoreResult<Option<String>>;
    /// Stores a one-time link code (its hash) for `email`, valid until `expires_at`;
    /// false when no such account exists.
    async fn create_telegram_link_code(
        &self,
        email: &str,
        code_hash: &str,
        expires_at: i64,
    ) -> StoreResult<bool>;
    /// Redeems a link code once, atomically: links `telegram_user_id` to the
    /// code's account and returns its e-mail; `None` when the code is unknown,
    /// used or expired at `now`.
    async fn redeem_telegram_link_code(
        &self,
        code_hash: &str,
        telegram_user_id: i64,
        now: i64,
    ) -> StoreResult<Option<String>>;
    /// Stores a new Telegram approval message; conflict when the nonce hash exists.
    async fn create_telegram_message(&self, message: &TelegramMessage) -> StoreResult<()>;
    /// A Telegram approval message by its nonce hash.
    async fn telegram_message(&self, nonce_hash: &str) -> StoreResult<Option<TelegramMessage>>;
    /// Messages not yet closed whose `next_attempt_at` is at most `now`, oldest first.
    async fn open_telegram_messages(
        &self,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<TelegramMessage>>;
    /// Replaces the delivery state of a message (message id, shown state,
    /// closed, attempts, next attempt); false when absent.
    async fn update_telegram_message(&self, message: &TelegramMessage) -> StoreResult<bool>;

    /// Registers a passkey; conflict when its credential id is registered already.
    async fn add_passkey(&self, passkey: &PasskeyRecord) -> StoreResult<()>;
    /// The passkeys of an account, oldest first.
    async fn passkeys(&self, account_id: i64) -> StoreResult<Vec<PasskeyRecord>>;
    /// Replaces a passkey's serialised state (its counter) after an assertion
    /// and stamps `last_used_at`; false when absent.
    async fn update_passkey(&self, id: &str, passkey: &str, last_used_at: i64)
    -> StoreResult<bool>;
    /// Removes one of the account's passkeys; false when it has no such passkey.
    async fn delete_passkey(&self, account_id: i64, id: &str) -> StoreResult<bool>;

    /// Keeps a WebAuthn ceremony in progress for any process sharing the
    /// store to finish, replacing one with the same id (a newer begin wins).
    /// First deletes every ceremony expired at `now_ms`, and when `cap`
    /// ceremonies of its kind are kept, the oldest of them (so a flood of
    /// anonymous begins cannot refuse anyone's new one); then stores it,
    /// answering false (nothing stored) only when a put racing it filled the
    /// kind again.
    async fn put_ceremony(
        &self,
        ceremony: &CeremonyRecord,
        now_ms: i64,
        cap: u32,
    ) -> StoreResult<bool>;
    /// Takes the ceremony `id` of `kind` out, in one statement: deletes it
    /// and returns it when it is unexpired at `now_ms`. `None` when there is
    /// none (never put, taken already, of another kind) or it expired (then
    /// it is deleted too). Of two callers racing for one id, at most one gets it.
    async fn take_ceremony(
        &self,
        id: &str,
        kind: CeremonyKind,
        now_ms: i64,
    ) -> StoreResult<Option<CeremonyRecord>>;
}

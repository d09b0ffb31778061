//! SQLite backend.
//!
//! [`SqliteStore`] is a thin front: each [`Store`] method delegates to a free
//! function of the module for its concern, taking the pool (and, for the
//! audit trail, the spool). Submodules import only leaves (`pool`, `rows`,
//! `schema`) and each other downward, never this module, so there is no
//! import circle:
//!
//! - `schema`: settings, statements and the audit key shared with the spool's
//!   own connection;
//! - `pool`: opening, migrations, revision, metadata, write transactions;
//! - `rows`: decoding rows into domain types;
//! - `teams`, `accounts`, `agents`, `credentials`, `roles`, `grants`,
//!   `approvals`, `telegram`, `passkeys`, `ceremonies`: one concern each;
//! - `audit` (pool-side appends and reads) over `spool` (the audit spool);
//! - `snapshot`: the hot path's consistent read.

mod accounts;
mod agents;
mod approvals;
mod audit;
mod backup;
mod ceremonies;
mod credentials;
mod grants;
mod in_use;
mod passkeys;
mod pool;
pub(crate) mod rates;
mod roles;
mod rows;
pub(crate) mod schema;
mod snapshot;
mod spool;
mod teams;
mod telegram;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::SqlitePool;
use sqlx::sqlite::SqliteConnectOptions;
use tap_core::audit::{AuditChain, AuditHead, AuditRow};
use tap_core::crypto::AuditKey;
use tap_core::model::{
    Account, AdminToken, Agent, Approval, ApprovalStatus, CeremonyKind, CeremonyRecord, Channel,
    Credential, Grant, Link, Member, MemberRole, PasskeyRecord, Role, Team, TelegramMessage,
};
use tap_core::policy::{ApprovalMode, Policy};
use tap_core::store::{
    AgentUpdate, AuditAppend, AuditQuery, AuditWriter, NewAgent, Snapshot, Store, StoreResult,
    TeamKeyChange, TokenLease, VoteOutcome,
};

/// The embedded SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Declared first, so it is dropped (and the in-use marker removed)
    /// before the pool's connections close.
    in_use: Arc<in_use::InUse>,
    pool: SqlitePool,
    /// The audit spool, once this store handed out its writer.
    spool: audit::SpoolSlot,
}

impl SqliteStore {
    /// Opens (creating the file if needed) the database at `path`.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::connect(pool::file_options(path)).await
    }

    /// Opens a `sqlite://` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        Self::connect(pool::url_options(url)?).await
    }

    /// The pool, for the SQLite-to-PostgreSQL copy.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        let file = pool::file_of(&opts);
        let guard = in_use::InUse::acquire(file.clone()).await?;
        let wal_was_present = file
            .as_deref()
            .is_some_and(|f| in_use::wal_path(f).exists());
        let (pool, path) = pool::connect(opts).await?;
        if let Err(e) = guard.check_and_mark(&pool, wal_was_present).await {
            pool.close().await;
            if !wal_was_present && let Some(f) = &path {
                // Leave the directory as it was: an empty WAL created by
                // this refused open must not let a second start through.
                pool::remove_empty_companions(f);
            }
            return Err(e);
        }
        Ok(Self {
            in_use: Arc::new(guard),
            pool,
            spool: audit::SpoolSlot::new(path),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        pool::migrate(&self.pool).await?;
        self.in_use.mark(&self.pool).await
    }

    async fn is_initialized(&self) -> StoreResult<bool> {
        pool::is_initialized(&self.pool).await
    }

    async fn ping(&self) -> StoreResult<()> {
        pool::ping(&self.pool).await
    }

    async fn revision(&self) -> StoreResult<i64> {
        pool::revision(&self.pool).await
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        pool::meta(&self.pool, key).await
    }

    async fn set_meta(&self, key: &str, value: &[u8]) -> StoreResult<()> {
        pool::set_meta(&self.pool, key, value).await
    }

    async fn rewrap_keys(
        &self,
        teams: &[TeamKeyChange],
        meta: &[(String, Vec<u8>)],
    ) -> StoreResult<()> {
        teams::rewrap_keys(&self.pool, teams, meta).await
    }

    async fn create_team(
        &self,
        slug: &str,
        mode: ApprovalMode,
        dek_id: &str,
        wrapped_dek: &[u8],
    ) -> StoreResult<Team> {
        teams::create_team(&self.pool, slug, mode, dek_id, wrapped_dek).await
    }

    async fn team(&self, slug: &str) -> StoreResult<Option<Team>> {
        teams::team(&self.pool, slug).await
    }

    async fn teams(&self) -> StoreResult<Vec<Team>> {
        teams::teams(&self.pool).await
    }

    async fn set_team_mode(&self, team: i64, mode: ApprovalMode) -> StoreResult<()> {
        teams::set_team_mode(&self.pool, team, mode).await
    }

    async fn create_account(&self, email: &str, password_hash: &str) -> StoreResult<i64> {
        accounts::create_account(&self.pool, email, password_hash).await
    }

    async fn account_by_email(&self, email: &str) -> StoreResult<Option<Account>> {
        accounts::account_by_email(&self.pool, email).await
    }

    async fn set_membership(
        &self,
        team: i64,
        account_id: i64,
        role: MemberRole,
    ) -> StoreResult<()> {
        teams::set_membership(&self.pool, team, account_id, role).await
    }

    async fn members(&self, team: i64) -> StoreResult<Vec<Member>> {
        teams::members(&self.pool, team).await
    }

    async fn create_admin_token(
        &self,
        account_id: i64,
        token_hash: &str,
        label: &str,
    ) -> StoreResult<i64> {
        accounts::create_admin_token(&self.pool, account_id, token_hash, label).await
    }

    async fn admin_token(&self, token_hash: &str) -> StoreResult<Option<AdminToken>> {
        accounts::admin_token(&self.pool, token_hash).await
    }

    async fn create_agent(&self, a: &NewAgent) -> StoreResult<Agent> {
        agents::create_agent(&self.pool, a).await
    }

    async fn agent(&self, team: i64, id: &str) -> StoreResult<Option<Agent>> {
        agents::agent(&self.pool, team, id).await
    }

    async fn agents(&self, team: i64) -> StoreResult<Vec<Agent>> {
        agents::agents(&self.pool, team).await
    }

    async fn set_agent_enabled(&self, team: i64, id: &str, enabled: bool) -> StoreResult<bool> {
        agents::set_agent_enabled(&self.pool, team, id, enabled).await
    }

    async fn set_agent_key(&self, team: i64, id: &str, key_hash: &str) -> StoreResult<bool> {
        agents::set_agent_key(&self.pool, team, id, key_hash).await
    }

    async fn delete_agent(&self, team: i64, id: &str) -> StoreResult<bool> {
        agents::delete_agent(&self.pool, team, id).await
    }

    async fn set_agent_credential(
        &self,
        team: i64,
        id: &str,
        credential: &str,
        granted: bool,
    ) -> StoreResult<bool> {
        agents::set_agent_credential(&self.pool, team, id, credential, granted).await
    }

    async fn set_agent_role(
        &self,
        team: i64,
        id: &str,
        role: &str,
        held: bool,
    ) -> StoreResult<bool> {
        agents::set_agent_role(&self.pool, team, id, role, held).await
    }

    async fn update_agent(
        &self,
        team: i64,
        id: &str,
        update: &AgentUpdate,
    ) -> StoreResult<Option<Agent>> {
        agents::update_agent(&self.pool, team, id, update).await
    }

    async fn upsert_credential(&self, c: &Credential) -> StoreResult<bool> {
        credentials::upsert_credential(&self.pool, c).await
    }

    async fn credential(&self, team: i64, name: &str) -> StoreResult<Option<Credential>> {
        credentials::credential(&self.pool, team, name).await
    }

    async fn credentials(&self, team: i64) -> StoreResult<Vec<Credential>> {
        credentials::credentials(&self.pool, team).await
    }

    async fn set_credential_value(
        &self,
        team: i64,
        name: &str,
        sealed: &[u8],
        is_json: bool,
    ) -> StoreResult<bool> {
        credentials::set_credential_value(&self.pool, team, name, sealed, is_json).await
    }

    async fn rotate_credential_value(
        &self,
        team: i64,
        name: &str,
        expected: &[u8],
        sealed: &[u8],
    ) -> StoreResult<bool> {
        tokens::rotate_credential_value(&self.pool, team, name, expected, sealed).await
    }

    async fn delete_credential(&self, team: i64, name: &str) -> StoreResult<bool> {
        credentials::delete_credential(&self.pool, team, name).await
    }

    async fn create_role(&self, role: &Role) -> StoreResult<()> {
        roles::create_role(&self.pool, role).await
    }

    async fn role(&self, team: i64, name: &str) -> StoreResult<Option<Role>> {
        roles::role(&self.pool, team, name).await
    }

    async fn roles(&self, team: i64) -> StoreResult<Vec<Role>> {
        roles::roles(&self.pool, team).await
    }

    async fn set_role_credential(
        &self,
        team: i64,
        role: &str,
        credential: &str,
        present: bool,
    ) -> StoreResult<bool> {
        roles::set_role_credential(&self.pool, team, role, credential, present).await
    }

    async fn delete_role(&self, team: i64, name: &str) -> StoreResult<bool> {
        roles::delete_role(&self.pool, team, name).await
    }

    async fn put_role(&self, role: &Role) -> StoreResult<bool> {
        roles::put_role(&self.pool, role).await
    }

    async fn policy(&self, team: i64, credential: &str) -> StoreResult<Option<Policy>> {
        credentials::policy(&self.pool, team, credential).await
    }

    async fn set_policy(&self, team: i64, credential: &str, policy: &Policy) -> StoreResult<()> {
        credentials::set_policy(&self.pool, team, credential, policy).await
    }

    async fn clear_policy(&self, team: i64, credential: &str) -> StoreResult<bool> {
        credentials::clear_policy(&self.pool, team, credential).await
    }

    async fn set_audit_key(&self, key: AuditKey) -> StoreResult<()> {
        audit::set_audit_key(&self.pool, self.spool.key(), key).await
    }

    async fn audit_head(&self, team: i64) -> StoreResult<Option<AuditHead>> {
        self.spool.fold_pending().await?;
        audit::audit_head(&self.pool, team).await
    }

    async fn append_audit(&self, rows: &[AuditAppend]) -> StoreResult<()> {
        self.spool.append(&self.pool, rows).await
    }

    fn audit_writer(&self) -> StoreResult<Option<Arc<dyn AuditWriter>>> {
        self.spool.writer()
    }

    async fn checkpoint(&self) -> StoreResult<()> {
        pool::checkpoint(&self.pool).await
    }

    async fn audit_rows(&self, team: i64, q: &AuditQuery) -> StoreResult<Vec<AuditRow>> {
        self.spool.fold_pending().await?;
        audit::audit_rows(&self.pool, team, q).await
    }

    async fn audit_chain(&self, team: i64) -> StoreResult<AuditChain> {
        self.spool.fold_pending().await?;
        audit::audit_chain(&self.pool, team).await
    }

    async fn prune_audit(&self, before: &str) -> StoreResult<u64> {
        // Only folded rows are pruned.
        self.spool.fold_pending().await?;
        audit::prune_audit(&self.pool, self.spool.key(), before).await
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        snapshot::snapshot(&self.pool).await
    }

    async fn set_member_role(&self, team: i64, email: &str, role: MemberRole) -> StoreResult<bool> {
        teams::set_member_role(&self.pool, team, email, role).await
    }

    async fn remove_member(&self, team: i64, email: &str) -> StoreResult<bool> {
        teams::remove_member(&self.pool, team, email).await
    }

    async fn set_member_credentials(
        &self,
        team: i64,
        email: &str,
        credentials: &[String],
    ) -> StoreResult<bool> {
        teams::set_member_credentials(&self.pool, team, email, credentials).await
    }

    async fn create_approval(&self, a: &Approval) -> StoreResult<()> {
        approvals::create_approval(&self.pool, a).await
    }

    async fn approval(&self, txn_id: &str) -> StoreResult<Option<Approval>> {
        approvals::approval(&self.pool, txn_id).await
    }

    async fn approvals(
        &self,
        team: i64,
        status: Option<ApprovalStatus>,
        limit: u32,
    ) -> StoreResult<Vec<Approval>> {
        approvals::approvals(&self.pool, team, status, limit).await
    }

    async fn pending_count(&self, agent_team: i64, agent_id: &str) -> StoreResult<u32> {
        approvals::pending_count(&self.pool, agent_team, agent_id).await
    }

    async fn vote(
        &self,
        txn_id: &str,
        email: &str,
        approve: bool,
        channel: &str,
        now: i64,
        counted: &[&str],
    ) -> StoreResult<VoteOutcome> {
        approvals::vote(&self.pool, txn_id, email, approve, channel, now, counted).await
    }

    async fn approved_unclaimed(&self, limit: u32) -> StoreResult<Vec<String>> {
        approvals::approved_unclaimed(&self.pool, limit).await
    }

    async fn claim_approved(&self, txn_id: &str) -> StoreResult<bool> {
        approvals::claim_approved(&self.pool, txn_id).await
    }

    async fn finish_approval(
        &self,
        txn_id: &str,
        status: ApprovalStatus,
        error_code: Option<&str>,
        response: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        approvals::finish_approval(&self.pool, txn_id, status, error_code, response, now).await
    }

    async fn expire_approvals(&self, now: i64) -> StoreResult<Vec<String>> {
        approvals::expire_approvals(&self.pool, now).await
    }

    async fn fail_interrupted(&self, now: i64) -> StoreResult<u64> {
        approvals::fail_interrupted(&self.pool, now).await
    }

    async fn purge_approvals(&self, before: i64) -> StoreResult<u64> {
        approvals::purge_approvals(&self.pool, before).await
    }

    async fn create_grant(&self, g: &Grant) -> StoreResult<()> {
        grants::create_grant(&self.pool, g).await
    }

    async fn grants(&self, team: i64) -> StoreResult<Vec<Grant>> {
        grants::grants(&self.pool, team).await
    }

    async fn revoke_grant(&self, team: i64, id: &str) -> StoreResult<bool> {
        grants::revoke_grant(&self.pool, team, id).await
    }

    async fn use_grant(&self, id: &str, now_secs: i64) -> StoreResult<bool> {
        grants::use_grant(&self.pool, id, now_secs).await
    }

    async fn take_rate(
        &self,
        team: i64,
        agent_id: &str,
        limit: u32,
        window_ms: i64,
        now_ms: i64,
    ) -> StoreResult<Option<i64>> {
        rates::take_rate(&self.pool, team, agent_id, limit, window_ms, now_ms).await
    }

    async fn create_session(
        &self,
        account_id: i64,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        accounts::create_session(&self.pool, account_id, token_hash, expires_at).await
    }

    async fn session_account(&self, token_hash: &str, now: i64) -> StoreResult<Option<i64>> {
        accounts::session_account(&self.pool, token_hash, now).await
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        accounts::delete_session(&self.pool, token_hash).await
    }

    async fn account(&self, id: i64) -> StoreResult<Option<Account>> {
        accounts::account(&self.pool, id).await
    }

    async fn set_link(&self, l: &Link) -> StoreResult<()> {
        teams::set_link(&self.pool, l).await
    }

    async fn links(&self, team: i64) -> StoreResult<Vec<Link>> {
        teams::links(&self.pool, team).await
    }

    async fn delete_link(&self, team: i64, home: i64, agent_id: &str) -> StoreResult<bool> {
        teams::delete_link(&self.pool, team, home, agent_id).await
    }

    async fn admin_tokens(&self, team: i64) -> StoreResult<Vec<(AdminToken, String)>> {
        accounts::admin_tokens(&self.pool, team).await
    }

    async fn revoke_admin_token(&self, id: i64) -> StoreResult<bool> {
        accounts::revoke_admin_token(&self.pool, id).await
    }

    async fn lead(&self, _role: &str) -> StoreResult<bool> {
        // One proxy per database file (its audit spool is locked): it leads.
        Ok(true)
    }

    async fn token_lease(
        &self,
        team: i64,
        name: &str,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<TokenLease> {
        tokens::token_lease(&self.pool, team, name, holder, now_ms, lease_ms).await
    }

    async fn put_token(
        &self,
        team: i64,
        name: &str,
        holder: &str,
        sealed: Option<&[u8]>,
        until_ms: i64,
    ) -> StoreResult<()> {
        tokens::put_token(&self.pool, team, name, holder, sealed, until_ms).await
    }

    async fn set_channel(&self, c: &Channel) -> StoreResult<()> {
        teams::set_channel(&self.pool, c).await
    }

    async fn channels(&self, team: i64) -> StoreResult<Vec<Channel>> {
        teams::channels(&self.pool, team).await
    }

    async fn delete_channel(&self, team: i64, name: &str) -> StoreResult<bool> {
        teams::delete_channel(&self.pool, team, name).await
    }

    async fn link_telegram_user(&self, email: &str, telegram_user_id: i64) -> StoreResult<bool> {
        telegram::link_telegram_user(&self.pool, email, telegram_user_id).await
    }

    async fn telegram_user(&self, telegram_user_id: i64) -> StoreResult<Option<String>> {
        telegram::telegram_user(&self.pool, telegram_user_id).await
    }

    async fn create_telegram_link_code(
        &self,
        email: &str,
        code_hash: &str,
        expires_at: i64,
    ) -> StoreResult<bool> {
        telegram::create_telegram_link_code(&self.pool, email, code_hash, expires_at).await
    }

    async fn redeem_telegram_link_code(
        &self,
        code_hash: &str,
        telegram_user_id: i64,
        now: i64,
    ) -> StoreResult<Option<String>> {
        telegram::redeem_telegram_link_code(&self.pool, code_hash, telegram_user_id, now).await
    }

    async fn create_telegram_message(&self, message: &TelegramMessage) -> StoreResult<()> {
        telegram::create_telegram_message(&self.pool, message).await
    }

    async fn telegram_message(&self, nonce_hash: &str) -> StoreResult<Option<TelegramMessage>> {
        telegram::telegram_message(&self.pool, nonce_hash).await
    }

    async fn open_telegram_messages(
        &self,
        now: i64,
        limit: u32,
    ) -> StoreResult<Vec<TelegramMessage>> {
        telegram::open_telegram_messages(&self.pool, now, limit).await
    }

    async fn update_telegram_message(&self, message: &TelegramMessage) -> StoreResult<bool> {
        telegram::update_telegram_message(&self.pool, message).await
    }

    async fn add_passkey(&self, passkey: &PasskeyRecord) -> StoreResult<()> {
        passkeys::add_passkey(&self.pool, passkey).await
    }

    async fn passkeys(&self, account_id: i64) -> StoreResult<Vec<PasskeyRecord>> {
        passkeys::passkeys(&self.pool, account_id).await
    }

    async fn update_passkey(
        &self,
        id: &str,
        passkey: &str,
        last_used_at: i64,
    ) -> StoreResult<bool> {
        passkeys::update_passkey(&self.pool, id, passkey, last_used_at).await
    }

    async fn delete_passkey(&self, account_id: i64, id: &str) -> StoreResult<bool> {
        passkeys::delete_passkey(&self.pool, account_id, id).await
    }

    async fn put_ceremony(
        &self,
        ceremony: &CeremonyRecord,
        now_ms: i64,
        cap: u32,
    ) -> StoreResult<bool> {
        ceremonies::put_ceremony(&self.pool, ceremony, now_ms, cap).await
    }

    async fn take_ceremony(
        &self,
        id: &str,
        kind: CeremonyKind,
        now_ms: i64,
    ) -> StoreResult<Option<CeremonyRecord>> {
        ceremonies::take_ceremony(&self.pool, id, kind, now_ms).await
    }
}

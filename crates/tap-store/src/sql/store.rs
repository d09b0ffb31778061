//! The `Store` methods both backends forward word for word: each calls the
//! function of the same name in the module of its concern, with the pool.

/// `impl Store for $store`: the backend's own methods, written out in the
/// braces, and every method of the table below, which forwards to
/// `concern::method(&self.pool, args…)`. Expanded in the backend's `mod.rs`,
/// so each concern names that backend's module. One macro wraps the whole
/// impl because `#[async_trait]` must see every method at once; the
/// `const _` block scopes the table's imports to the impl.
macro_rules! store_impl {
    ($store:ty { $($own:tt)* }) => {
        crate::sql::store::store_impl!(@forward $store { $($own)* }
            pool::is_initialized() -> bool;
            pool::ping() -> ();
            pool::revision() -> i64;
            pool::meta(key: &str) -> Option<Vec<u8>>;
            pool::set_meta(key: &str, value: &[u8]) -> ();

            teams::rewrap_keys(teams: &[TeamKeyChange], meta: &[(String, Vec<u8>)]) -> ();
            teams::create_team(
                slug: &str,
                mode: ApprovalMode,
                dek_id: &str,
                wrapped_dek: &[u8],
            ) -> Team;
            teams::team(slug: &str) -> Option<Team>;
            teams::teams() -> Vec<Team>;
            teams::set_team_mode(team: i64, mode: ApprovalMode) -> ();
            teams::set_membership(team: i64, account_id: i64, role: MemberRole) -> ();
            teams::members(team: i64) -> Vec<Member>;
            teams::set_member_role(team: i64, email: &str, role: MemberRole) -> bool;
            teams::remove_member(team: i64, email: &str) -> bool;
            teams::set_member_credentials(team: i64, email: &str, credentials: &[String]) -> bool;
            teams::set_link(l: &Link) -> ();
            teams::links(team: i64) -> Vec<Link>;
            teams::delete_link(team: i64, home: i64, agent_id: &str) -> bool;
            teams::set_channel(c: &Channel) -> ();
            teams::channels(team: i64) -> Vec<Channel>;
            teams::delete_channel(team: i64, name: &str) -> bool;

            accounts::create_account(email: &str, password_hash: &str) -> i64;
            accounts::account_by_email(email: &str) -> Option<Account>;
            accounts::create_admin_token(account_id: i64, token_hash: &str, label: &str) -> i64;
            accounts::admin_token(token_hash: &str) -> Option<AdminToken>;
            accounts::create_session(account_id: i64, token_hash: &str, expires_at: i64) -> ();
            accounts::session_account(token_hash: &str, now: i64) -> Option<i64>;
            accounts::delete_session(token_hash: &str) -> ();
            accounts::account(id: i64) -> Option<Account>;
            accounts::admin_tokens(team: i64) -> Vec<(AdminToken, String)>;
            accounts::revoke_admin_token(id: i64) -> bool;

            agents::create_agent(a: &NewAgent) -> Agent;
            agents::agent(team: i64, id: &str) -> Option<Agent>;
            agents::agents(team: i64) -> Vec<Agent>;
            agents::set_agent_enabled(team: i64, id: &str, enabled: bool) -> bool;
            agents::set_agent_key(team: i64, id: &str, key_hash: &str) -> bool;
            agents::delete_agent(team: i64, id: &str) -> bool;
            agents::set_agent_credential(
                team: i64,
                id: &str,
                credential: &str,
                granted: bool,
            ) -> bool;
            agents::set_agent_role(team: i64, id: &str, role: &str, held: bool) -> bool;
            agents::update_agent(team: i64, id: &str, update: &AgentUpdate) -> Option<Agent>;

            credentials::upsert_credential(c: &Credential) -> bool;
            credentials::credential(team: i64, name: &str) -> Option<Credential>;
            credentials::credentials(team: i64) -> Vec<Credential>;
            credentials::set_credential_value(
                team: i64,
                name: &str,
                sealed: &[u8],
                is_json: bool,
            ) -> bool;
            credentials::delete_credential(team: i64, name: &str) -> bool;
            credentials::policy(team: i64, credential: &str) -> Option<Policy>;
            credentials::set_policy(team: i64, credential: &str, policy: &Policy) -> ();
            credentials::clear_policy(team: i64, credential: &str) -> bool;

            tokens::rotate_credential_value(
                team: i64,
                name: &str,
                expected: &[u8],
                sealed: &[u8],
            ) -> bool;
            tokens::token_lease(
                team: i64,
                name: &str,
                holder: &str,
                now_ms: i64,
                lease_ms: i64,
            ) -> TokenLease;
            tokens::put_token(
                team: i64,
                name: &str,
                holder: &str,
                sealed: Option<&[u8]>,
                until_ms: i64,
            ) -> ();

            roles::create_role(role: &Role) -> ();
            roles::role(team: i64, name: &str) -> Option<Role>;
            roles::roles(team: i64) -> Vec<Role>;
            roles::set_role_credential(
                team: i64,
                role: &str,
                credential: &str,
                present: bool,
            ) -> bool;
            roles::delete_role(team: i64, name: &str) -> bool;
            roles::put_role(role: &Role) -> bool;

            approvals::create_approval(a: &Approval) -> ();
            approvals::approval(txn_id: &str) -> Option<Approval>;
            approvals::approvals(
                team: i64,
                status: Option<ApprovalStatus>,
                limit: u32,
            ) -> Vec<Approval>;
            approvals::pending_count(agent_team: i64, agent_id: &str) -> u32;
            approvals::vote(
                txn_id: &str,
                email: &str,
                approve: bool,
                channel: &str,
                now: i64,
                counted: &[&str],
            ) -> VoteOutcome;
            approvals::approved_unclaimed(limit: u32) -> Vec<String>;
            approvals::finish_approval(
                txn_id: &str,
                status: ApprovalStatus,
                error_code: Option<&str>,
                response: Option<&str>,
                now: i64,
            ) -> ();
            approvals::expire_approvals(now: i64) -> Vec<String>;
            approvals::purge_approvals(before: i64) -> u64;

            grants::create_grant(g: &Grant) -> ();
            grants::grants(team: i64) -> Vec<Grant>;
            grants::revoke_grant(team: i64, id: &str) -> bool;
            grants::use_grant(id: &str, now_secs: i64) -> bool;
            grants::release_grant_use(id: &str) -> bool;

            rates::take_rate(
                team: i64,
                agent_id: &str,
                limit: u32,
                window_ms: i64,
                now_ms: i64,
            ) -> Option<i64>;

            abuse::count_abuse_failure(
                kind: AbuseKind,
                address: &str,
                limit: u32,
                window_ms: i64,
                now_ms: i64,
            ) -> Option<i64>;
            abuse::abuse_blocked(
                kind: AbuseKind,
                address: &str,
                limit: u32,
                window_ms: i64,
                now_ms: i64,
            ) -> Option<i64>;

            snapshot::snapshot() -> Snapshot;

            telegram::link_telegram_user(email: &str, telegram_user_id: i64) -> bool;
            telegram::telegram_user(telegram_user_id: i64) -> Option<String>;
            telegram::create_telegram_link_code(
                email: &str,
                code_hash: &str,
                expires_at: i64,
            ) -> bool;
            telegram::redeem_telegram_link_code(
                code_hash: &str,
                telegram_user_id: i64,
                now: i64,
            ) -> Option<String>;
            telegram::create_telegram_message(message: &TelegramMessage) -> ();
            telegram::telegram_message(nonce_hash: &str) -> Option<TelegramMessage>;
            telegram::open_telegram_messages(now: i64, limit: u32) -> Vec<TelegramMessage>;
            telegram::update_telegram_message(message: &TelegramMessage) -> bool;

            passkeys::add_passkey(passkey: &PasskeyRecord) -> ();
            passkeys::passkeys(account_id: i64) -> Vec<PasskeyRecord>;
            passkeys::update_passkey(id: &str, passkey: &str, last_used_at: i64) -> bool;
            passkeys::delete_passkey(account_id: i64, id: &str) -> bool;

            ceremonies::put_ceremony(ceremony: &CeremonyRecord, now_ms: i64, cap: u32) -> bool;
            ceremonies::take_ceremony(
                id: &str,
                kind: CeremonyKind,
                now_ms: i64,
            ) -> Option<CeremonyRecord>;
        );
    };
    (@forward $store:ty { $($own:tt)* }
        $($concern:ident::$method:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty;)*
    ) => {
        const _: () = {
            use tap_core::model::{
                Account, AdminToken, Agent, Approval, ApprovalStatus, CeremonyKind,
                CeremonyRecord, Channel, Credential, Grant, Link, Member, MemberRole,
                PasskeyRecord, Role, Team, TelegramMessage,
            };
            use tap_core::policy::{ApprovalMode, Policy};
            use tap_core::store::{
                AbuseKind, AgentUpdate, NewAgent, Snapshot, Store, StoreResult, TeamKeyChange, TokenLease,
                VoteOutcome,
            };

            #[async_trait::async_trait]
            impl Store for $store {
                $($own)*

                $(
                    async fn $method(&self, $($arg: $ty),*) -> StoreResult<$ret> {
                        $concern::$method(&self.pool, $($arg),*).await
                    }
                )*
            }
        };
    };
}

pub(crate) use store_impl;

//! The store contract: what every [`Store`] backend does, written once against
//! `Arc<dyn Store>` and run on a backend by one line in its own test file:
//!
//! ```ignore
//! mod contract;
//! contract::store_contract!(sqlite_store().await); // tests/store_sqlite.rs
//! contract::store_contract!(pg_store().await);     // tests/store_pg.rs
//! ```
//!
//! The expression gives a [`Subject`] (or `Option<Subject>`, `None` skipping
//! the case where the backend is not available): a fresh, empty, not yet migrated store
//! and whatever must outlive it (a temp dir, a throwaway database). Each case
//! becomes one `#[tokio::test]` on a multi-thread runtime, so the concurrency
//! cases race for real. `every_store_method_has_a_contract_case` fails when a
//! method of the `Store` trait has no case in [`COVERAGE`], so a new method
//! cannot ship untested on any backend.

use std::any::Any;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tap_core::audit::{AuditPhase, AuditRecord};
use tap_core::crypto::AuditKey;
use tap_core::model::{Approval, ApprovalStatus, Connector, Credential, Grant};
use tap_core::policy::ApprovalMode;
use tap_core::store::{AuditAppend, NewAgent, Store, StoreError};
use tokio::sync::Barrier;

/// Every e-mail the cases vote with: all count.
pub(crate) const EVERYONE: &[&str] = &[
    "amy@example.com",
    "bob@example.com",
    "cat@example.com",
    "o@example.com",
    "member0@example.com",
    "member1@example.com",
    "member2@example.com",
    "member3@example.com",
    "member4@example.com",
    "member5@example.com",
    "member6@example.com",
    "member7@example.com",
    "member8@example.com",
    "member9@example.com",
    "member10@example.com",
    "member11@example.com",
    "member12@example.com",
    "member13@example.com",
    "member14@example.com",
    "member15@example.com",
];

pub(crate) mod abuse;
pub(crate) mod accounts;
pub(crate) mod agents;
pub(crate) mod approvals;
pub(crate) mod audit;
pub(crate) mod ceremonies;
pub(crate) mod credentials;
pub(crate) mod database;
pub(crate) mod grants;
pub(crate) mod passkeys;
pub(crate) mod rates;
pub(crate) mod snapshot;
pub(crate) mod teams;
pub(crate) mod telegram;
pub(crate) mod tokens;

/// Expands to one `#[tokio::test]` per contract case, each on a fresh store
/// from `$subject` (an expression evaluating to a [`Subject`], may `.await`).
macro_rules! store_contract {
    ($subject:expr) => {
        $crate::contract::store_contract!(@cases $subject;
            database {
                migrate_creates_the_schema_once,
                meta_values_round_trip_and_are_replaced,
                revision_grows_on_every_configuration_write,
                audit_and_approvals_leave_the_revision_alone,
                a_store_alone_leads_a_role_and_keeps_it,
                changed_is_a_wake_up_and_reads_see_the_change,
                close_lets_go_and_never_answers_wrongly_after,
            }
            teams {
                teams_are_created_found_and_listed,
                rewrap_keys_replaces_every_wrapped_dek_and_meta_at_once,
                rewrap_keys_with_a_new_dek_reseals_every_value_or_nothing,
                a_team_slug_is_unique,
                set_team_mode_changes_the_default,
                memberships_hold_roles_and_approver_credentials,
                the_last_owner_can_be_neither_demoted_nor_removed,
                links_are_set_replaced_listed_and_deleted,
                channels_are_set_replaced_listed_and_deleted,
            }
            accounts {
                accounts_are_found_by_email_and_id,
                admin_tokens_are_found_by_hash_until_revoked,
                sessions_resolve_until_they_expire_or_are_deleted,
            }
            agents {
                agents_are_created_with_roles_and_credentials,
                an_agent_with_an_unknown_role_is_not_created,
                agents_are_enabled_rekeyed_and_deleted,
                credentials_and_roles_are_granted_and_removed_one_at_a_time,
                update_agent_applies_every_field_in_one_revision,
                update_agent_leaves_unset_fields_unchanged,
                update_agent_with_an_unknown_name_writes_nothing,
                update_agent_of_a_missing_agent_is_none,
            }
            credentials {
                credentials_are_upserted_keeping_the_value_when_none_is_given,
                set_credential_value_replaces_the_sealed_value,
                deleting_a_credential_removes_its_grants_and_policy_unless_a_role_names_it,
                policies_are_set_read_and_cleared,
                roles_are_created_read_changed_and_deleted,
                put_role_creates_then_replaces_in_one_revision_each,
                put_role_with_an_unknown_credential_writes_nothing,
            }
            grants {
                grants_are_created_listed_and_revoked,
                use_grant_counts_to_max_uses_and_refuses_expired_or_revoked,
                use_grant_allows_exactly_max_uses_under_contention,
                a_released_use_can_be_claimed_again_and_never_goes_below_zero,
            }
            abuse {
                abuse_failures_count_to_the_limit_per_kind_and_address_in_a_window,
                abuse_failures_count_exactly_the_limit_under_contention,
                expired_abuse_windows_are_pruned_while_many_addresses_fail_at_once,
            }
            rates {
                take_rate_allows_exactly_the_limit_in_a_sliding_window,
                take_rate_allows_exactly_the_limit_under_contention,
            }
            tokens {
                one_holder_leases_a_token_call_and_its_token_is_shared,
                a_released_or_lapsed_lease_passes_on,
                an_admin_value_or_a_deletion_drops_the_token_row,
                a_rotated_value_keeps_the_version_and_never_overwrites_an_admin_value,
            }
            approvals {
                approvals_round_trip_and_list_by_status_newest_first,
                pending_count_counts_an_agents_pending_approvals,
                a_deny_decides_and_later_votes_see_it_decided,
                the_min_approvals_th_distinct_approval_decides,
                a_vote_after_expiry_times_the_approval_out,
                approved_approvals_are_claimed_once_then_finished,
                expire_approvals_times_out_only_pending_ones_past_expiry,
                fail_interrupted_ends_forwarding_approvals_as_errors,
                purge_approvals_deletes_only_decided_ones_before_the_cutoff,
                concurrent_voters_decide_an_approval_exactly_once,
                vote_counts_each_member_once,
                only_votes_of_members_still_eligible_count,
                claim_approved_is_won_by_exactly_one_task,
            }
            audit {
                appended_rows_are_chained_per_team_from_genesis,
                audit_rows_select_the_newest_requests_by_filter,
                a_credential_filter_matches_rows_naming_several_credentials,
                the_audit_writer_makes_rows_durable_and_folds_them_into_the_chain,
                checkpoint_keeps_the_chain_intact,
                concurrent_appends_keep_one_gap_free_chain_per_team,
                concurrent_writer_appends_keep_one_gap_free_chain_per_team,
                the_sealed_head_moves_with_every_append_on_every_path,
                appends_need_the_audit_key_and_refuse_a_head_sealed_under_another,
                the_chain_verifies_with_the_key_only_and_shows_a_lost_tail,
                pruning_keeps_the_chain_verifiable_from_a_sealed_anchor,
            }
            snapshot {
                the_snapshot_holds_the_whole_configuration,
            }
            telegram {
                telegram_users_link_to_one_account_each,
                a_link_code_is_redeemed_once_before_it_expires,
                telegram_messages_are_stored_found_and_updated,
            }
            passkeys {
                passkeys_belong_to_one_account_and_are_unique,
            }
            ceremonies {
                a_ceremony_is_taken_out_once_by_its_id_and_kind,
                an_expired_ceremony_is_never_taken_out,
                a_full_kind_makes_room_by_dropping_its_oldest,
                racing_takers_get_a_ceremony_at_most_once,
            }
        );
    };
    (@cases $subject:expr; $($module:ident { $($case:ident),* $(,)? })*) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        // A backend that is not available here (no
                        // DATABASE_URL) gives `None`: the case is skipped.
                        let subject: Option<$crate::contract::Subject> = $subject.into();
                        let Some(subject) = subject else { return };
                        $crate::contract::$module::$case(subject.store()).await;
                    }
                )*
            }
        )*

        #[test]
        fn every_store_method_has_a_contract_case() {
            $crate::contract::check_coverage(&[$($(stringify!($case)),*),*]);
        }
    };
}
pub(crate) use store_contract;

/// A fresh store under test and what must live as long as it.
pub(crate) struct Subject {
    store: Arc<dyn Store>,
    _keep: Box<dyn Any + Send>,
}

impl Subject {
    /// `store` must be empty and not yet migrated; `keep` is dropped after it.
    pub(crate) fn new(store: Arc<dyn Store>, keep: impl Any + Send) -> Self {
        Self {
            store,
            _keep: Box::new(keep),
        }
    }

    pub(crate) fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }
}

/// Each `Store` method and the cases that exercise it.
pub(crate) const COVERAGE: &[(&str, &[&str])] = &[
    ("migrate", &["migrate_creates_the_schema_once"]),
    (
        "rewrap_keys",
        &[
            "rewrap_keys_replaces_every_wrapped_dek_and_meta_at_once",
            "rewrap_keys_with_a_new_dek_reseals_every_value_or_nothing",
        ],
    ),
    ("is_initialized", &["migrate_creates_the_schema_once"]),
    ("ping", &["migrate_creates_the_schema_once"]),
    (
        "revision",
        &[
            "revision_grows_on_every_configuration_write",
            "audit_and_approvals_leave_the_revision_alone",
        ],
    ),
    ("meta", &["meta_values_round_trip_and_are_replaced"]),
    (
        "set_meta",
        &[
            "meta_values_round_trip_and_are_replaced",
            "revision_grows_on_every_configuration_write",
        ],
    ),
    (
        "create_team",
        &[
            "teams_are_created_found_and_listed",
            "a_team_slug_is_unique",
        ],
    ),
    ("team", &["teams_are_created_found_and_listed"]),
    ("teams", &["teams_are_created_found_and_listed"]),
    ("set_team_mode", &["set_team_mode_changes_the_default"]),
    ("create_account", &["accounts_are_found_by_email_and_id"]),
    ("account_by_email", &["accounts_are_found_by_email_and_id"]),
    (
        "set_membership",
        &["memberships_hold_roles_and_approver_credentials"],
    ),
    (
        "members",
        &[
            "memberships_hold_roles_and_approver_credentials",
            "the_last_owner_can_be_neither_demoted_nor_removed",
        ],
    ),
    (
        "create_admin_token",
        &["admin_tokens_are_found_by_hash_until_revoked"],
    ),
    (
        "admin_token",
        &["admin_tokens_are_found_by_hash_until_revoked"],
    ),
    (
        "create_agent",
        &[
            "agents_are_created_with_roles_and_credentials",
            "an_agent_with_an_unknown_role_is_not_created",
        ],
    ),
    ("agent", &["agents_are_created_with_roles_and_credentials"]),
    ("agents", &["agents_are_created_with_roles_and_credentials"]),
    (
        "set_agent_enabled",
        &["agents_are_enabled_rekeyed_and_deleted"],
    ),
    ("set_agent_key", &["agents_are_enabled_rekeyed_and_deleted"]),
    ("delete_agent", &["agents_are_enabled_rekeyed_and_deleted"]),
    (
        "set_agent_credential",
        &["credentials_and_roles_are_granted_and_removed_one_at_a_time"],
    ),
    (
        "set_agent_role",
        &["credentials_and_roles_are_granted_and_removed_one_at_a_time"],
    ),
    (
        "update_agent",
        &[
            "update_agent_applies_every_field_in_one_revision",
            "update_agent_leaves_unset_fields_unchanged",
            "update_agent_with_an_unknown_name_writes_nothing",
            "update_agent_of_a_missing_agent_is_none",
        ],
    ),
    (
        "upsert_credential",
        &["credentials_are_upserted_keeping_the_value_when_none_is_given"],
    ),
    (
        "credential",
        &["credentials_are_upserted_keeping_the_value_when_none_is_given"],
    ),
    (
        "credentials",
        &["credentials_are_upserted_keeping_the_value_when_none_is_given"],
    ),
    (
        "set_credential_value",
        &[
            "set_credential_value_replaces_the_sealed_value",
            "an_admin_value_or_a_deletion_drops_the_token_row",
        ],
    ),
    (
        "rotate_credential_value",
        &["a_rotated_value_keeps_the_version_and_never_overwrites_an_admin_value"],
    ),
    (
        "delete_credential",
        &[
            "deleting_a_credential_removes_its_grants_and_policy_unless_a_role_names_it",
            "an_admin_value_or_a_deletion_drops_the_token_row",
        ],
    ),
    (
        "create_role",
        &["roles_are_created_read_changed_and_deleted"],
    ),
    ("role", &["roles_are_created_read_changed_and_deleted"]),
    ("roles", &["roles_are_created_read_changed_and_deleted"]),
    (
        "set_role_credential",
        &["roles_are_created_read_changed_and_deleted"],
    ),
    (
        "delete_role",
        &["roles_are_created_read_changed_and_deleted"],
    ),
    (
        "put_role",
        &[
            "put_role_creates_then_replaces_in_one_revision_each",
            "put_role_with_an_unknown_credential_writes_nothing",
        ],
    ),
    ("policy", &["policies_are_set_read_and_cleared"]),
    ("set_policy", &["policies_are_set_read_and_cleared"]),
    ("clear_policy", &["policies_are_set_read_and_cleared"]),
    (
        "append_audit",
        &[
            "appended_rows_are_chained_per_team_from_genesis",
            "concurrent_appends_keep_one_gap_free_chain_per_team",
        ],
    ),
    (
        "audit_writer",
        &[
            "the_audit_writer_makes_rows_durable_and_folds_them_into_the_chain",
            "concurrent_writer_appends_keep_one_gap_free_chain_per_team",
        ],
    ),
    ("checkpoint", &["checkpoint_keeps_the_chain_intact"]),
    ("close", &["close_lets_go_and_never_answers_wrongly_after"]),
    (
        "audit_rows",
        &["audit_rows_select_the_newest_requests_by_filter"],
    ),
    (
        "audit_chain",
        &[
            "appended_rows_are_chained_per_team_from_genesis",
            "concurrent_appends_keep_one_gap_free_chain_per_team",
            "the_chain_verifies_with_the_key_only_and_shows_a_lost_tail",
        ],
    ),
    (
        "prune_audit",
        &["pruning_keeps_the_chain_verifiable_from_a_sealed_anchor"],
    ),
    (
        "set_audit_key",
        &["appends_need_the_audit_key_and_refuse_a_head_sealed_under_another"],
    ),
    (
        "audit_head",
        &[
            "the_sealed_head_moves_with_every_append_on_every_path",
            "the_chain_verifies_with_the_key_only_and_shows_a_lost_tail",
        ],
    ),
    ("snapshot", &["the_snapshot_holds_the_whole_configuration"]),
    (
        "set_member_role",
        &["the_last_owner_can_be_neither_demoted_nor_removed"],
    ),
    (
        "remove_member",
        &["the_last_owner_can_be_neither_demoted_nor_removed"],
    ),
    (
        "set_member_credentials",
        &["memberships_hold_roles_and_approver_credentials"],
    ),
    (
        "create_approval",
        &["approvals_round_trip_and_list_by_status_newest_first"],
    ),
    (
        "approval",
        &["approvals_round_trip_and_list_by_status_newest_first"],
    ),
    (
        "approvals",
        &["approvals_round_trip_and_list_by_status_newest_first"],
    ),
    (
        "pending_count",
        &["pending_count_counts_an_agents_pending_approvals"],
    ),
    (
        "vote",
        &[
            "a_deny_decides_and_later_votes_see_it_decided",
            "the_min_approvals_th_distinct_approval_decides",
            "a_vote_after_expiry_times_the_approval_out",
            "concurrent_voters_decide_an_approval_exactly_once",
            "vote_counts_each_member_once",
            "only_votes_of_members_still_eligible_count",
        ],
    ),
    (
        "approved_unclaimed",
        &["approved_approvals_are_claimed_once_then_finished"],
    ),
    (
        "claim_approved",
        &[
            "approved_approvals_are_claimed_once_then_finished",
            "claim_approved_is_won_by_exactly_one_task",
        ],
    ),
    (
        "finish_approval",
        &["approved_approvals_are_claimed_once_then_finished"],
    ),
    (
        "expire_approvals",
        &["expire_approvals_times_out_only_pending_ones_past_expiry"],
    ),
    (
        "fail_interrupted",
        &["fail_interrupted_ends_forwarding_approvals_as_errors"],
    ),
    (
        "purge_approvals",
        &["purge_approvals_deletes_only_decided_ones_before_the_cutoff"],
    ),
    ("create_grant", &["grants_are_created_listed_and_revoked"]),
    ("grants", &["grants_are_created_listed_and_revoked"]),
    ("revoke_grant", &["grants_are_created_listed_and_revoked"]),
    ("lead", &["a_store_alone_leads_a_role_and_keeps_it"]),
    (
        "changed",
        &["changed_is_a_wake_up_and_reads_see_the_change"],
    ),
    (
        "token_lease",
        &[
            "one_holder_leases_a_token_call_and_its_token_is_shared",
            "a_released_or_lapsed_lease_passes_on",
        ],
    ),
    (
        "put_token",
        &[
            "one_holder_leases_a_token_call_and_its_token_is_shared",
            "a_released_or_lapsed_lease_passes_on",
        ],
    ),
    (
        "count_abuse_failure",
        &[
            "abuse_failures_count_to_the_limit_per_kind_and_address_in_a_window",
            "abuse_failures_count_exactly_the_limit_under_contention",
            "expired_abuse_windows_are_pruned_while_many_addresses_fail_at_once",
        ],
    ),
    (
        "abuse_blocked",
        &[
            "abuse_failures_count_to_the_limit_per_kind_and_address_in_a_window",
            "abuse_failures_count_exactly_the_limit_under_contention",
        ],
    ),
    (
        "take_rate",
        &[
            "take_rate_allows_exactly_the_limit_in_a_sliding_window",
            "take_rate_allows_exactly_the_limit_under_contention",
        ],
    ),
    (
        "use_grant",
        &[
            "use_grant_counts_to_max_uses_and_refuses_expired_or_revoked",
            "use_grant_allows_exactly_max_uses_under_contention",
        ],
    ),
    (
        "release_grant_use",
        &["a_released_use_can_be_claimed_again_and_never_goes_below_zero"],
    ),
    (
        "create_session",
        &["sessions_resolve_until_they_expire_or_are_deleted"],
    ),
    (
        "session_account",
        &["sessions_resolve_until_they_expire_or_are_deleted"],
    ),
    (
        "delete_session",
        &["sessions_resolve_until_they_expire_or_are_deleted"],
    ),
    ("account", &["accounts_are_found_by_email_and_id"]),
    ("set_link", &["links_are_set_replaced_listed_and_deleted"]),
    ("links", &["links_are_set_replaced_listed_and_deleted"]),
    (
        "delete_link",
        &["links_are_set_replaced_listed_and_deleted"],
    ),
    (
        "admin_tokens",
        &["admin_tokens_are_found_by_hash_until_revoked"],
    ),
    (
        "revoke_admin_token",
        &["admin_tokens_are_found_by_hash_until_revoked"],
    ),
    (
        "set_channel",
        &["channels_are_set_replaced_listed_and_deleted"],
    ),
    (
        "channels",
        &["channels_are_set_replaced_listed_and_deleted"],
    ),
    (
        "delete_channel",
        &["channels_are_set_replaced_listed_and_deleted"],
    ),
    (
        "link_telegram_user",
        &["telegram_users_link_to_one_account_each"],
    ),
    (
        "telegram_user",
        &["telegram_users_link_to_one_account_each"],
    ),
    (
        "create_telegram_link_code",
        &["a_link_code_is_redeemed_once_before_it_expires"],
    ),
    (
        "redeem_telegram_link_code",
        &["a_link_code_is_redeemed_once_before_it_expires"],
    ),
    (
        "create_telegram_message",
        &["telegram_messages_are_stored_found_and_updated"],
    ),
    (
        "telegram_message",
        &["telegram_messages_are_stored_found_and_updated"],
    ),
    (
        "open_telegram_messages",
        &["telegram_messages_are_stored_found_and_updated"],
    ),
    (
        "update_telegram_message",
        &["telegram_messages_are_stored_found_and_updated"],
    ),
    (
        "add_passkey",
        &["passkeys_belong_to_one_account_and_are_unique"],
    ),
    (
        "passkeys",
        &["passkeys_belong_to_one_account_and_are_unique"],
    ),
    (
        "update_passkey",
        &["passkeys_belong_to_one_account_and_are_unique"],
    ),
    (
        "delete_passkey",
        &["passkeys_belong_to_one_account_and_are_unique"],
    ),
    (
        "put_ceremony",
        &[
            "a_ceremony_is_taken_out_once_by_its_id_and_kind",
            "an_expired_ceremony_is_never_taken_out",
            "a_full_kind_makes_room_by_dropping_its_oldest",
        ],
    ),
    (
        "take_ceremony",
        &[
            "a_ceremony_is_taken_out_once_by_its_id_and_kind",
            "an_expired_ceremony_is_never_taken_out",
            "racing_takers_get_a_ceremony_at_most_once",
        ],
    ),
];

/// The `Store` trait's source, to list its methods.
const STORE_TRAIT_SRC: &str = include_str!("../../../tap-core/src/store.rs");

/// Method names declared in `pub trait Store { .. }` of `src`.
fn store_methods(src: &str) -> Vec<String> {
    let body = src
        .split_once("pub trait Store")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .map(|(body, _)| body)
        .expect("the Store trait in tap-core/src/store.rs");
    body.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            l.strip_prefix("async fn ")
                .or_else(|| l.strip_prefix("fn "))
                .and_then(|rest| rest.split(['(', '<']).next())
                .map(str::to_owned)
        })
        .collect()
}

/// Fails unless every `Store` method is in [`COVERAGE`], [`COVERAGE`] names
/// only methods that exist, and every case it names is one of `cases`.
pub(crate) fn check_coverage(cases: &[&str]) {
    let methods = store_methods(STORE_TRAIT_SRC);
    assert!(methods.len() > 50, "parsed too few methods: {methods:?}");
    let untested: Vec<&String> = methods
        .iter()
        .filter(|m| !COVERAGE.iter().any(|(name, _)| name == m))
        .collect();
    assert!(
        untested.is_empty(),
        "Store methods without a contract case: {untested:?}"
    );
    for (method, covered_by) in COVERAGE {
        assert!(
            methods.iter().any(|m| m == method),
            "COVERAGE names {method}, which the Store trait does not have"
        );
        assert!(!covered_by.is_empty(), "{method} lists no case");
        for case in *covered_by {
            assert!(
                cases.contains(case),
                "{method}: no contract case named {case}"
            );
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).expect("a sane clock"))
        .expect("after 1970")
}

/// Runs `f(i)` in `n` tasks released together; returns their results in task order.
pub(crate) async fn race<T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let start = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let start = Arc::clone(&start);
            let work = f(i);
            tokio::spawn(async move {
                start.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// Migrates `store` and creates a team; returns its internal id.
/// Migrates, gives the store [`audit_key`] (as the proxy and CLI do once the
/// master key is open) and creates a team; returns its internal id.
pub(crate) async fn migrated_with_team(store: &dyn Store, slug: &str) -> i64 {
    store.migrate().await.expect("migrate");
    store
        .set_audit_key(audit_key())
        .await
        .expect("set_audit_key");
    new_team(store, slug).await
}

/// The audit key the cases chain with.
pub(crate) fn audit_key() -> AuditKey {
    AuditKey::from_bytes([0x5a; 32])
}

/// Creates a team; returns its internal id.
pub(crate) async fn new_team(store: &dyn Store, slug: &str) -> i64 {
    store
        .create_team(slug, ApprovalMode::Gated, "dek-1", b"wrapped")
        .await
        .expect("create team")
        .internal_id
}

/// A credential of `team` named `name` with a sealed value.
pub(crate) fn credential(team: i64, name: &str) -> Credential {
    Credential {
        team_internal_id: team,
        name: name.to_owned(),
        description: format!("{name} api"),
        connector: Connector::Direct,
        api_base: Some(format!("https://{name}.example")),
        relative_target: false,
        auth_header_format: Some("Bearer {value}".into()),
        auth_bindings: Vec::new(),
        allowed_hosts: vec![format!("{name}.example")],
        allow_any_host: false,
        sealed_value: Some(format!("sealed-{name}").into_bytes()),
        value_is_json: false,
        created_at: 0,
        updated_at: 0,
    }
}

/// Stores [`credential`] `name` in `team`.
pub(crate) async fn add_credential(store: &dyn Store, team: i64, name: &str) {
    store
        .upsert_credential(&credential(team, name))
        .await
        .expect("upsert credential");
}

/// A new agent with no roles or credentials; key hashes are unique per store.
pub(crate) fn new_agent(team: i64, id: &str) -> NewAgent {
    NewAgent {
        team_internal_id: team,
        id: id.to_owned(),
        description: format!("agent {id}"),
        key_hash: format!("key-hash-{team}-{id}"),
        roles: Vec::new(),
        credentials: Vec::new(),
        rate_limit_per_hour: None,
    }
}

/// A pending approval of agent `bot` for credential `c`.
pub(crate) fn approval(team: i64, txn_id: &str, min_approvals: u32, created_at: i64) -> Approval {
    Approval {
        txn_id: txn_id.to_owned(),
        team_internal_id: team,
        agent_team_internal_id: team,
        agent_id: "bot".into(),
        credential: "c".into(),
        credential_version: 1,
        method: "POST".into(),
        target: "https://c.example/v1/things".into(),
        request: r#"{"method":"POST"}"#.into(),
        request_hash: format!("hash-{txn_id}"),
        status: ApprovalStatus::Pending,
        policy_reason: "team_default_gated_write".into(),
        min_approvals,
        channels: vec!["web".into()],
        created_at,
        expires_at: created_at + 600_000,
        decided_at: None,
        error_code: None,
        response: None,
        votes: Vec::new(),
    }
}

/// A grant on credential `c`, expiring at `expires_at` (seconds).
pub(crate) fn grant(team: i64, id: &str, max_uses: Option<u32>, expires_at: i64) -> Grant {
    Grant {
        id: id.to_owned(),
        team_internal_id: team,
        credential: "c".into(),
        methods: vec!["POST".into()],
        route_scope: "https://c.example/v1/*".into(),
        expires_at,
        max_uses,
        uses: 0,
        created_by: "owner@example.com".into(),
        created_at: 0,
        revoked_at: None,
    }
}

/// One audit row of `team` for request `request_id` by `agent`.
pub(crate) fn audit_row(
    team: i64,
    request_id: &str,
    phase: AuditPhase,
    agent: &str,
    credential: &str,
) -> AuditAppend {
    AuditAppend {
        team_internal_id: team,
        phase,
        record: AuditRecord {
            request_id: request_id.to_owned(),
            team_id: format!("team-{team}"),
            agent_id: agent.to_owned(),
            // "a,b": a legacy placeholder request naming both.
            credential_names: credential.split(',').map(str::to_owned).collect(),
            method: "GET".into(),
            target_url: "https://c.example/v1/things".into(),
            decision: "proceed".into(),
            timestamp: "2026-11-29T00:00:00.000Z".into(),
            ..Default::default()
        },
    }
}

/// Asserts a `NotFound` naming `what`.
pub(crate) fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound(m)) => assert_eq!(m, what),
        other => panic!("expected NotFound({what:?}), got {other:?}"),
    }
}

/// Asserts a `Conflict`.
pub(crate) fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(
        matches!(result, Err(StoreError::Conflict(_))),
        "expected a conflict, got {result:?}"
    );
}

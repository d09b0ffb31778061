//! Approvals: their lifecycle, and the transitions that must happen exactly
//! once however many voters or forwarders race.

use std::sync::Arc;

use tap_core::model::{Approval, ApprovalStatus};
use tap_core::store::{Store, VoteOutcome};

use super::{EVERYONE, approval, assert_conflict, migrated_with_team, new_team, now_ms, race};

async fn status(store: &dyn Store, txn_id: &str) -> ApprovalStatus {
    store
        .approval(txn_id)
        .await
        .expect("approval")
        .expect("exists")
        .status
}

fn ids(approvals: &[Approval]) -> Vec<&str> {
    approvals.iter().map(|a| a.txn_id.as_str()).collect()
}

fn counted(status: ApprovalStatus, approvals: u32) -> VoteOutcome {
    VoteOutcome::Counted { status, approvals }
}

/// Creates an approval needing one approval and approves it at `at`.
async fn approved(store: &dyn Store, team: i64, txn_id: &str, at: i64) {
    store
        .create_approval(&approval(team, txn_id, 1, at - 1000))
        .await
        .expect("create");
    assert_eq!(
        store
            .vote(txn_id, "amy@example.com", true, "web", at, EVERYONE)
            .await
            .expect("vote"),
        counted(ApprovalStatus::Approved, 1)
    );
}

pub(crate) async fn approvals_round_trip_and_list_by_status_newest_first(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let other = new_team(&*store, "beta").await;
    let t = now_ms();
    let first = approval(team, "t1", 2, t - 2000);
    store.create_approval(&first).await.expect("create");
    store
        .create_approval(&approval(team, "t2", 1, t - 1000))
        .await
        .expect("create");
    store
        .create_approval(&approval(team, "t3", 1, t))
        .await
        .expect("create");
    store
        .create_approval(&approval(other, "elsewhere", 1, t))
        .await
        .expect("create");
    assert_conflict(store.create_approval(&first).await);
    assert_eq!(store.approval("t1").await.expect("approval"), Some(first));
    assert_eq!(store.approval("nope").await.expect("approval"), None);
    assert_eq!(
        ids(&store.approvals(team, None, 10).await.expect("list")),
        ["t3", "t2", "t1"]
    );
    assert_eq!(
        ids(&store.approvals(team, None, 1).await.expect("list")),
        ["t3"]
    );
    store
        .vote("t2", "amy@example.com", false, "web", t, EVERYONE)
        .await
        .expect("deny");
    assert_eq!(
        ids(&store
            .approvals(team, Some(ApprovalStatus::Pending), 10)
            .await
            .expect("list")),
        ["t3", "t1"]
    );
    let denied = store
        .approvals(team, Some(ApprovalStatus::Denied), 10)
        .await
        .expect("list");
    assert_eq!(ids(&denied), ["t2"]);
    assert_eq!(denied[0].votes.len(), 1, "listed with votes");
    assert_eq!(
        ids(&store.approvals(other, None, 10).await.expect("list")),
        ["elsewhere"]
    );
}

pub(crate) async fn pending_count_counts_an_agents_pending_approvals(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    for id in ["p1", "p2", "p3"] {
        store
            .create_approval(&approval(team, id, 1, t))
            .await
            .expect("create");
    }
    store
        .create_approval(&Approval {
            agent_id: "other".into(),
            ..approval(team, "o1", 1, t)
        })
        .await
        .expect("create");
    assert_eq!(store.pending_count(team, "bot").await.expect("count"), 3);
    store
        .vote("p1", "amy@example.com", false, "web", t, EVERYONE)
        .await
        .expect("deny");
    store
        .vote("p2", "amy@example.com", true, "web", t, EVERYONE)
        .await
        .expect("approve");
    assert_eq!(store.pending_count(team, "bot").await.expect("count"), 1);
    assert_eq!(store.pending_count(team, "other").await.expect("count"), 1);
    assert_eq!(store.pending_count(team, "nobody").await.expect("count"), 0);
}

pub(crate) async fn a_deny_decides_and_later_votes_see_it_decided(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    store
        .create_approval(&approval(team, "t", 2, t))
        .await
        .expect("create");
    assert_eq!(
        store
            .vote("t", "amy@example.com", true, "web", t + 1, EVERYONE)
            .await
            .expect("vote"),
        counted(ApprovalStatus::Pending, 1)
    );
    assert_eq!(
        store
            .vote("t", "bob@example.com", false, "telegram", t + 2, EVERYONE)
            .await
            .expect("vote"),
        counted(ApprovalStatus::Denied, 1)
    );
    assert_eq!(
        store
            .vote("t", "cat@example.com", true, "web", t + 3, EVERYONE)
            .await
            .expect("vote"),
        VoteOutcome::NotPending(ApprovalStatus::Denied)
    );
    let a = store
        .approval("t")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(a.status, ApprovalStatus::Denied);
    assert_eq!(a.decided_at, Some(t + 2));
    let votes: Vec<(&str, &str, &str, i64)> = a
        .votes
        .iter()
        .map(|v| {
            (
                v.email.as_str(),
                v.decision.as_str(),
                v.channel.as_str(),
                v.at,
            )
        })
        .collect();
    assert_eq!(
        votes,
        [
            ("amy@example.com", "approve", "web", t + 1),
            ("bob@example.com", "deny", "telegram", t + 2),
        ]
    );
}

pub(crate) async fn the_min_approvals_th_distinct_approval_decides(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    store
        .create_approval(&approval(team, "t", 2, t))
        .await
        .expect("create");
    assert_eq!(
        store
            .vote("t", "amy@example.com", true, "web", t, EVERYONE)
            .await
            .expect("vote"),
        counted(ApprovalStatus::Pending, 1)
    );
    assert_eq!(
        store
            .vote("t", "amy@example.com", true, "telegram", t, EVERYONE)
            .await
            .expect("vote"),
        VoteOutcome::AlreadyVoted
    );
    assert_eq!(status(&*store, "t").await, ApprovalStatus::Pending);
    assert_eq!(
        store
            .vote("t", "bob@example.com", true, "web", t + 5, EVERYONE)
            .await
            .expect("vote"),
        counted(ApprovalStatus::Approved, 2)
    );
    assert_eq!(
        store
            .vote("t", "cat@example.com", true, "web", t + 6, EVERYONE)
            .await
            .expect("vote"),
        VoteOutcome::NotPending(ApprovalStatus::Approved)
    );
    let a = store
        .approval("t")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(a.status, ApprovalStatus::Approved);
    assert_eq!(a.decided_at, Some(t + 5));
    assert_eq!(a.votes.len(), 2);
}

pub(crate) async fn a_vote_after_expiry_times_the_approval_out(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    let a = approval(team, "t", 1, t);
    store.create_approval(&a).await.expect("create");
    assert_eq!(
        store
            .vote("t", "amy@example.com", true, "web", a.expires_at, EVERYONE)
            .await
            .expect("vote"),
        VoteOutcome::NotPending(ApprovalStatus::TimedOut)
    );
    let stored = store
        .approval("t")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(stored.status, ApprovalStatus::TimedOut);
    assert!(stored.votes.is_empty(), "a late vote is not recorded");
    assert_eq!(
        store
            .vote("nope", "amy@example.com", true, "web", t, EVERYONE)
            .await
            .expect("vote"),
        VoteOutcome::Missing
    );
}

pub(crate) async fn approved_approvals_are_claimed_once_then_finished(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    approved(&*store, team, "later", t + 20).await;
    approved(&*store, team, "sooner", t + 10).await;
    store
        .create_approval(&approval(team, "waiting", 1, t))
        .await
        .expect("create");
    assert_eq!(
        store.approved_unclaimed(10).await.expect("list"),
        ["sooner", "later"]
    );
    assert_eq!(store.approved_unclaimed(1).await.expect("list"), ["sooner"]);
    assert!(store.claim_approved("sooner").await.expect("claim"));
    assert!(!store.claim_approved("sooner").await.expect("claim again"));
    assert!(
        !store
            .claim_approved("waiting")
            .await
            .expect("claim pending")
    );
    assert!(!store.claim_approved("nope").await.expect("claim missing"));
    assert_eq!(status(&*store, "sooner").await, ApprovalStatus::Forwarding);
    assert_eq!(store.approved_unclaimed(10).await.expect("list"), ["later"]);
    store
        .finish_approval(
            "sooner",
            ApprovalStatus::Forwarded,
            None,
            Some("{\"status\":200}"),
            t + 99,
        )
        .await
        .expect("finish");
    let done = store
        .approval("sooner")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(done.status, ApprovalStatus::Forwarded);
    assert_eq!(done.response.as_deref(), Some("{\"status\":200}"));
    assert_eq!(done.error_code, None);
    assert_eq!(done.decided_at, Some(t + 10), "the decision time stays");
    assert!(store.claim_approved("later").await.expect("claim"));
    store
        .finish_approval(
            "later",
            ApprovalStatus::Error,
            Some("upstream_unreachable"),
            None,
            t + 99,
        )
        .await
        .expect("finish");
    let failed = store
        .approval("later")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(
        (failed.status, failed.error_code.as_deref(), failed.response),
        (ApprovalStatus::Error, Some("upstream_unreachable"), None)
    );
    assert!(store.approved_unclaimed(10).await.expect("list").is_empty());
}

pub(crate) async fn expire_approvals_times_out_only_pending_ones_past_expiry(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    let due = approval(team, "due", 1, t);
    store.create_approval(&due).await.expect("create");
    store
        .create_approval(&Approval {
            expires_at: due.expires_at + 1,
            ..approval(team, "not-yet", 1, t)
        })
        .await
        .expect("create");
    approved(&*store, team, "decided", t).await;
    let cutoff = due.expires_at;
    assert_eq!(
        store.expire_approvals(cutoff).await.expect("expire"),
        ["due"]
    );
    let expired = store
        .approval("due")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(
        (expired.status, expired.decided_at),
        (ApprovalStatus::TimedOut, Some(cutoff))
    );
    assert_eq!(status(&*store, "not-yet").await, ApprovalStatus::Pending);
    assert_eq!(status(&*store, "decided").await, ApprovalStatus::Approved);
    assert!(
        store
            .expire_approvals(cutoff)
            .await
            .expect("expire again")
            .is_empty()
    );
}

pub(crate) async fn fail_interrupted_ends_forwarding_approvals_as_errors(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    approved(&*store, team, "in-flight", t).await;
    approved(&*store, team, "unclaimed", t).await;
    assert!(store.claim_approved("in-flight").await.expect("claim"));
    assert_eq!(store.fail_interrupted(t + 50).await.expect("fail"), 1);
    let failed = store
        .approval("in-flight")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(
        (
            failed.status,
            failed.error_code.as_deref(),
            failed.decided_at
        ),
        (ApprovalStatus::Error, Some("interrupted"), Some(t))
    );
    assert_eq!(status(&*store, "unclaimed").await, ApprovalStatus::Approved);
    assert!(
        !store
            .claim_approved("in-flight")
            .await
            .expect("never forwarded twice")
    );
    assert_eq!(store.fail_interrupted(t + 60).await.expect("fail again"), 0);
}

pub(crate) async fn purge_approvals_deletes_only_decided_ones_before_the_cutoff(
    store: Arc<dyn Store>,
) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    let old = t - 100_000;
    for (id, approve) in [("old-denied", false), ("old-approved", true)] {
        store
            .create_approval(&approval(team, id, 1, old - 10))
            .await
            .expect("create");
        store
            .vote(id, "amy@example.com", approve, "web", old, EVERYONE)
            .await
            .expect("vote");
    }
    store
        .create_approval(&approval(team, "old-forwarded", 1, old - 10))
        .await
        .expect("create");
    store
        .vote(
            "old-forwarded",
            "amy@example.com",
            true,
            "web",
            old,
            EVERYONE,
        )
        .await
        .expect("vote");
    assert!(store.claim_approved("old-forwarded").await.expect("claim"));
    store
        .finish_approval(
            "old-forwarded",
            ApprovalStatus::Forwarded,
            None,
            Some("{}"),
            old,
        )
        .await
        .expect("finish");
    store
        .create_approval(&approval(team, "old-pending", 1, old - 10))
        .await
        .expect("create");
    store
        .create_approval(&approval(team, "new-denied", 1, t - 10))
        .await
        .expect("create");
    store
        .vote("new-denied", "amy@example.com", false, "web", t, EVERYONE)
        .await
        .expect("vote");
    assert_eq!(store.purge_approvals(old + 1).await.expect("purge"), 2);
    assert_eq!(store.approval("old-denied").await.expect("approval"), None);
    assert_eq!(
        store.approval("old-forwarded").await.expect("approval"),
        None
    );
    for kept in ["old-approved", "old-pending", "new-denied"] {
        assert!(
            store.approval(kept).await.expect("approval").is_some(),
            "{kept} purged"
        );
    }
    assert_eq!(
        store.purge_approvals(old + 1).await.expect("purge again"),
        0
    );
}

pub(crate) async fn concurrent_voters_decide_an_approval_exactly_once(store: Arc<dyn Store>) {
    const VOTERS: usize = 16;
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    for round in 0..4 {
        let txn = format!("t{round}");
        store
            .create_approval(&approval(team, &txn, 2, t))
            .await
            .expect("create");
        let outcomes = race(VOTERS, |i| {
            let store = Arc::clone(&store);
            let txn = txn.clone();
            async move {
                let email = format!("member{i}@example.com");
                store
                    .vote(&txn, &email, true, "web", t, EVERYONE)
                    .await
                    .expect("vote")
            }
        })
        .await;
        let count = |o: &VoteOutcome| outcomes.iter().filter(|x| *x == o).count();
        assert_eq!(
            count(&counted(ApprovalStatus::Approved, 2)),
            1,
            "{outcomes:?}"
        );
        assert_eq!(
            count(&counted(ApprovalStatus::Pending, 1)),
            1,
            "{outcomes:?}"
        );
        assert_eq!(
            count(&VoteOutcome::NotPending(ApprovalStatus::Approved)),
            VOTERS - 2,
            "{outcomes:?}"
        );
        let a = store
            .approval(&txn)
            .await
            .expect("approval")
            .expect("exists");
        assert_eq!(a.status, ApprovalStatus::Approved);
        assert_eq!(a.votes.len(), 2, "only the deciding votes are recorded");
    }
}

pub(crate) async fn vote_counts_each_member_once(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    store
        .create_approval(&approval(team, "t", 2, t))
        .await
        .expect("create");
    let outcomes = race(TASKS, |_| {
        let store = Arc::clone(&store);
        async move {
            store
                .vote("t", "amy@example.com", true, "web", t, EVERYONE)
                .await
                .expect("vote")
        }
    })
    .await;
    let counted_once = outcomes
        .iter()
        .filter(|o| **o == counted(ApprovalStatus::Pending, 1))
        .count();
    let repeats = outcomes
        .iter()
        .filter(|o| **o == VoteOutcome::AlreadyVoted)
        .count();
    assert_eq!((counted_once, repeats), (1, TASKS - 1), "{outcomes:?}");
    let a = store
        .approval("t")
        .await
        .expect("approval")
        .expect("exists");
    assert_eq!(
        a.status,
        ApprovalStatus::Pending,
        "one member cannot meet min_approvals=2"
    );
    assert_eq!(a.votes.len(), 1);
}

pub(crate) async fn claim_approved_is_won_by_exactly_one_task(store: Arc<dyn Store>) {
    const TASKS: usize = 16;
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    for round in 0..4 {
        let txn = format!("t{round}");
        approved(&*store, team, &txn, t).await;
        let wins = race(TASKS, |_| {
            let store = Arc::clone(&store);
            let txn = txn.clone();
            async move { store.claim_approved(&txn).await.expect("claim") }
        })
        .await;
        assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{wins:?}");
        assert_eq!(status(&*store, &txn).await, ApprovalStatus::Forwarding);
    }
}

pub(crate) async fn only_votes_of_members_still_eligible_count(store: Arc<dyn Store>) {
    let team = migrated_with_team(&*store, "alpha").await;
    let t = now_ms();
    store
        .create_approval(&approval(team, "t", 2, t))
        .await
        .expect("create");
    let vote = |email: &'static str, at: i64, counted: &'static [&'static str]| {
        let store = Arc::clone(&store);
        async move {
            store
                .vote("t", email, true, "web", at, counted)
                .await
                .expect("vote")
        }
    };
    assert_eq!(
        vote(
            "amy@example.com",
            t + 1,
            &["amy@example.com", "bob@example.com"]
        )
        .await,
        counted(ApprovalStatus::Pending, 1)
    );
    // Amy has since been removed: her vote no longer counts toward two.
    assert_eq!(
        vote(
            "bob@example.com",
            t + 2,
            &["bob@example.com", "cat@example.com"]
        )
        .await,
        counted(ApprovalStatus::Pending, 1)
    );
    assert_eq!(
        vote(
            "cat@example.com",
            t + 3,
            &["bob@example.com", "cat@example.com"]
        )
        .await,
        counted(ApprovalStatus::Approved, 2)
    );
    let a = store.approval("t").await.expect("read").expect("exists");
    assert_eq!(a.status, ApprovalStatus::Approved);
    assert_eq!(a.decided_at, Some(t + 3));
}

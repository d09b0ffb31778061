use super::*;

const NOW: i64 = 1_000_000;

fn member(email: &str, role: MemberRole, credentials: &[&str]) -> Member {
    Member {
        account_id: 1,
        email: email.into(),
        role,
        credentials: credentials.iter().map(|c| (*c).to_owned()).collect(),
        created_at: 0,
    }
}

fn team() -> Vec<Member> {
    vec![
        member("owner@x", MemberRole::Owner, &[]),
        member("admin@x", MemberRole::Admin, &[]),
        member("ok-approver@x", MemberRole::Approver, &["github"]),
        member("other-approver@x", MemberRole::Approver, &["slack"]),
        member("viewer@x", MemberRole::Viewer, &["github"]),
    ]
}

fn approval() -> Approval {
    Approval {
        txn_id: "txn1".into(),
        team_internal_id: 1,
        agent_team_internal_id: 1,
        agent_id: "bot".into(),
        credential: "github".into(),
        credential_version: 0,
        method: "POST".into(),
        target: "https://api.github.com/x".into(),
        request: "{}".into(),
        request_hash: "hash-of-request".into(),
        status: ApprovalStatus::Pending,
        policy_reason: "team_default_gated_write".into(),
        min_approvals: 1,
        channels: vec!["web".into(), "terminal".into()],
        created_at: NOW - 10,
        expires_at: NOW + 60_000,
        decided_at: None,
        error_code: None,
        response: None,
        votes: Vec::new(),
    }
}

fn decision<'a>(email: &'a str, approve: bool, passkey: Option<&'a PasskeyProof>) -> Decision<'a> {
    Decision {
        txn_id: "txn1",
        email,
        approve,
        channel: "web",
        passkey,
    }
}

fn passkey_policy() -> Policy {
    Policy {
        require_passkey: true,
        ..Policy::default()
    }
}

fn run(a: &Approval, policy: Option<&Policy>, d: &Decision<'_>) -> Result<(), GateError> {
    check(a, &team(), &[policy], d.email, d, NOW)
}

#[test]
fn owners_admins_and_assigned_approvers_may_decide() {
    for who in ["owner@x", "admin@x", "ok-approver@x"] {
        assert!(
            run(&approval(), None, &decision(who, true, None)).is_ok(),
            "{who}"
        );
    }
}

#[test]
fn viewers_and_unassigned_approvers_may_not_decide() {
    for who in ["viewer@x", "other-approver@x"] {
        assert!(
            matches!(run(&approval(), None, &decision(who, true, None)), Err(GateError::NotEligible(e)) if e == who),
            "{who}"
        );
    }
}

#[test]
fn an_outsider_cannot_learn_that_the_approval_exists() {
    let r = run(&approval(), None, &decision("stranger@y", true, None));
    assert!(matches!(r, Err(GateError::NotFound(t)) if t == "txn1"));
}

#[test]
fn an_empty_allowed_approvers_list_means_nobody() {
    let p = Policy {
        allowed_approvers: Some(Vec::new()),
        ..Policy::default()
    };
    assert!(eligible_approvers(&team(), "github", Some(&p)).is_empty());
    assert!(matches!(
        run(&approval(), Some(&p), &decision("owner@x", true, None)),
        Err(GateError::NotEligible(_))
    ));
}

#[test]
fn allowed_approvers_restricts_to_the_listed_members_in_any_case() {
    let p = Policy {
        allowed_approvers: Some(vec![" Admin@X ".into()]),
        ..Policy::default()
    };
    assert_eq!(eligible_approvers(&team(), "github", Some(&p)), ["admin@x"]);
    assert!(run(&approval(), Some(&p), &decision("admin@x", true, None)).is_ok());
    assert!(run(&approval(), Some(&p), &decision("owner@x", true, None)).is_err());
}

#[test]
fn decided_and_expired_approvals_are_not_pending() {
    let mut a = approval();
    a.status = ApprovalStatus::Denied;
    assert!(matches!(
        run(&a, None, &decision("owner@x", true, None)),
        Err(GateError::NotPending("denied"))
    ));
    let mut a = approval();
    a.expires_at = NOW;
    assert!(matches!(
        run(&a, None, &decision("owner@x", true, None)),
        Err(GateError::NotPending("timed_out"))
    ));
}

#[test]
fn a_channel_the_request_was_not_routed_to_is_refused() {
    let mut a = approval();
    a.channels = vec!["terminal".into()];
    assert!(matches!(
        run(&a, None, &decision("owner@x", true, None)),
        Err(GateError::NotRouted(c)) if c == "web"
    ));
}

#[test]
fn require_passkey_needs_a_proof_for_this_request_and_this_member() {
    let p = passkey_policy();
    let a = approval();
    assert!(matches!(
        run(&a, Some(&p), &decision("owner@x", true, None)),
        Err(GateError::PasskeyRequired)
    ));
    let other_txn = PasskeyProof::from_verified_assertion("txn2", "owner@x", "hash-of-request");
    let other_member = PasskeyProof::from_verified_assertion("txn1", "admin@x", "hash-of-request");
    let other_request = PasskeyProof::from_verified_assertion("txn1", "owner@x", "another-hash");
    for proof in [&other_txn, &other_member, &other_request] {
        assert!(matches!(
            run(&a, Some(&p), &decision("owner@x", true, Some(proof))),
            Err(GateError::PasskeyRequired)
        ));
    }
    let good = PasskeyProof::from_verified_assertion("txn1", "Owner@X", "hash-of-request");
    assert!(run(&a, Some(&p), &decision("owner@x", true, Some(&good))).is_ok());
}

#[test]
fn a_denial_needs_no_passkey() {
    let p = passkey_policy();
    assert!(run(&approval(), Some(&p), &decision("owner@x", false, None)).is_ok());
}

#[test]
fn several_credentials_need_a_member_eligible_for_all() {
    let mut a = approval();
    a.credential = "github,slack".into();
    assert_eq!(
        a.credential_names().collect::<Vec<_>>(),
        ["github", "slack"]
    );
    let none: [Option<&Policy>; 2] = [None, None];
    for who in ["owner@x", "admin@x"] {
        assert!(check(&a, &team(), &none, who, &decision(who, true, None), NOW).is_ok());
    }
    // Each approver is assigned only one of the two credentials.
    for who in ["ok-approver@x", "other-approver@x"] {
        assert!(matches!(
            check(&a, &team(), &none, who, &decision(who, true, None), NOW),
            Err(GateError::NotEligible(_))
        ));
    }
    // The second credential's allowed_approvers restricts the whole approval.
    let only_admin = Policy {
        allowed_approvers: Some(vec!["admin@x".into()]),
        ..Policy::default()
    };
    let policies = [None, Some(&only_admin)];
    assert!(matches!(
        check(
            &a,
            &team(),
            &policies,
            "owner@x",
            &decision("owner@x", true, None),
            NOW
        ),
        Err(GateError::NotEligible(_))
    ));
    assert!(
        check(
            &a,
            &team(),
            &policies,
            "admin@x",
            &decision("admin@x", true, None),
            NOW
        )
        .is_ok()
    );
    // Any credential's require_passkey applies.
    let p = passkey_policy();
    assert!(matches!(
        check(
            &a,
            &team(),
            &[None, Some(&p)],
            "owner@x",
            &decision("owner@x", true, None),
            NOW
        ),
        Err(GateError::PasskeyRequired)
    ));
}

#[test]
fn eligible_for_all_intersects_and_is_empty_for_no_credentials() {
    let mut m = team();
    m.push(member("both@x", MemberRole::Approver, &["github", "slack"]));
    let both = eligible_for_all(&m, &[("github", None), ("slack", None)]);
    assert_eq!(both, ["owner@x", "admin@x", "both@x"]);
    assert!(eligible_for_all(&m, &[]).is_empty());
}

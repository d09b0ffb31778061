//! Row 11 when policy says "approval": capture, store, route, then wait (sync)
//! or answer 202 (async).

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tap_core::model::{Approval, ApprovalStatus};

use super::audit::AuditDraft;
use super::forward::Prepared;
use super::{Prefer, refuse};
use tap_core::approval::{ApprovalSummary, eligible_for_all};
use tap_core::policy::Policy;

use crate::agent_views::PendingView;
use crate::approval::captured::CapturedRequest;
use crate::approval::executor::wait_final;
use crate::approval::results::{final_error, stored_response};
use crate::clock::rfc3339_ms;
use crate::error::{ProxyError, Reason};
use crate::state::AppState;

/// Most approvals one agent may have pending at once (429 beyond).
pub(super) const MAX_PENDING_PER_AGENT: u32 = 20;

/// Body preview length in approval summaries.
const PREVIEW_BYTES: usize = 512;

/// The 202 of SPEC §3.3.
pub(crate) fn accepted(
    state: &AppState,
    a: &Approval,
    notification_channel: &str,
    notice: Option<&str>,
) -> Response {
    let expires_in = ((a.expires_at - state.clock.now_ms()) / 1000).max(0);
    (
        StatusCode::ACCEPTED,
        Json(PendingView {
            txn_id: a.txn_id.clone(),
            status: a.status.public_str(),
            poll_url: format!("/agent/approvals/{}", a.txn_id),
            approval_url: state.config.approval_url(&a.txn_id),
            expires_in,
            notification_channel: notification_channel.to_owned(),
            notice: notice.map(str::to_owned),
            agent_hint: "A human must approve this request. Show approval_url to your human, then poll poll_url with your X-TAP-Key until status is forwarded, denied, timed_out or error.",
        }),
    )
        .into_response()
}

pub(crate) async fn request_approval(
    state: &AppState,
    p: Prepared,
    policy_reason: String,
    mut draft: AuditDraft,
    prefer: Prefer,
) -> Response {
    let r = &p.resolved;
    // Every credential the request uses (several in legacy placeholder mode):
    // the approval names them all, only members eligible for every one of
    // them may decide, any `require_passkey` applies and the largest
    // `min_approvals` counts. Channels follow the first credential with a policy.
    let names = r.credential_names();
    let cred = &names.join(",");
    let policies: Vec<Option<Policy>> = names
        .iter()
        .map(|n| r.team.policies.get(n).map(|c| c.policy().clone()))
        .collect();
    let per_credential: Vec<(&str, Option<&Policy>)> = names
        .iter()
        .map(String::as_str)
        .zip(policies.iter().map(Option::as_ref))
        .collect();
    let policy = policies.iter().flatten().next().cloned();
    let require_passkey = policies.iter().flatten().any(|p| p.require_passkey);
    let min_approvals = policies
        .iter()
        .flatten()
        .map(|p| p.min_approvals.max(1))
        .max()
        .unwrap_or(1);
    let credential_version = r
        .credentials()
        .map(|c| c.updated_at)
        .max()
        .unwrap_or_default();
    if eligible_for_all(&r.team.members, &per_credential).is_empty() {
        let e = ProxyError::new(
            Reason::ApprovalUnavailable,
            format!(
                "{} with credential {cred} needs human approval ({policy_reason}) and no member may approve it; nothing was forwarded",
                p.method
            ),
        )
        .with("policy_reason", policy_reason);
        return refuse(e, draft).await;
    }
    if require_passkey && state.passkeys.is_none() {
        let e = ProxyError::new(
            Reason::PasskeyUnavailable,
            format!("credential {cred} needs passkey approval and WebAuthn is not configured; nothing was forwarded"),
        )
        .with("policy_reason", policy_reason);
        return refuse(e, draft).await;
    }
    let agent_team = r.agent_team_internal_id;
    match state
        .store
        .pending_count(agent_team, &draft.record.agent_id)
        .await
    {
        Ok(n) if n >= MAX_PENDING_PER_AGENT => {
            let e = ProxyError::new(
                Reason::TooManyPending,
                format!(
                    "agent {} already has {n} requests waiting for approval",
                    draft.record.agent_id
                ),
            );
            return refuse(e, draft).await;
        }
        Ok(_) => {}
        Err(e) => return refuse(ProxyError::from(e), draft).await,
    }
    draft.record.decision = "approval".into();
    draft.record.approval_status = Some("pending".into());
    let mut captured =
        CapturedRequest::new(&p.method, &r.url, &r.headers, &r.body, draft.record.clone());
    captured.legacy = r.legacy;
    captured.auth_mode =
        (r.auth_mode != tap_core::inject::AuthMode::Auto).then(|| r.auth_mode.as_str().to_owned());
    let Ok(request) = serde_json::to_string(&captured) else {
        return refuse(
            ProxyError::new(Reason::Internal, "request could not be captured"),
            draft,
        )
        .await;
    };
    let now = state.clock.now_ms();
    let timeout = i64::try_from(state.config.approval_timeout.as_millis()).unwrap_or(i64::MAX);
    let approval = Approval {
        txn_id: draft.record.request_id.clone(),
        team_internal_id: r.team.internal_id,
        agent_team_internal_id: agent_team,
        agent_id: draft.record.agent_id.clone(),
        credential: cred.clone(),
        credential_version,
        method: p.method.clone(),
        target: r.url.as_str().to_owned(),
        request_hash: state.keys.mac().digest_bytes(request.as_bytes()),
        request,
        status: ApprovalStatus::Pending,
        policy_reason,
        min_approvals,
        channels: state.broker.names(policy.as_ref()),
        created_at: now,
        expires_at: now.saturating_add(timeout),
        decided_at: None,
        error_code: None,
        response: None,
        votes: Vec::new(),
    };
    if let Err(e) = state.store.create_approval(&approval).await {
        return refuse(ProxyError::from(e), draft).await;
    }
    if let Err(e) = draft.commit_start().await {
        tracing::error!(error = %e, "audit start row of an approval not committed");
    }
    draft.hand_over();
    let summary = ApprovalSummary {
        txn_id: approval.txn_id.clone(),
        team: r.team.slug.clone(),
        agent_id: approval.agent_id.clone(),
        credential: cred.clone(),
        method: approval.method.clone(),
        target: approval.target.clone(),
        body_preview: r
            .team
            .all_secrets
            .scrub_str(&captured.body_preview(PREVIEW_BYTES))
            .0,
        approval_url: state.config.approval_url(&approval.txn_id),
        min_approvals: approval.min_approvals,
        expires_at: rfc3339_ms(approval.expires_at),
    };
    let (notification_channel, notice) = state.broker.notify_new(policy.as_ref(), &summary).await;
    let notice = notice.as_deref();
    tracing::info!(txn = %approval.txn_id, agent = %approval.agent_id, credential = %cred, "approval requested");
    if prefer.respond_async {
        return accepted(state, &approval, notification_channel, notice);
    }
    let wait = prefer.wait_secs.map_or(state.config.sync_wait, |w| {
        Duration::from_secs(w).min(state.config.sync_wait)
    });
    match wait_final(state, &approval.txn_id, wait).await {
        Ok(Some(a)) if a.status == ApprovalStatus::Forwarded => stored_response(&a),
        Ok(Some(a)) => {
            let err = final_error(&a);
            let body = serde_json::to_vec(&err.body()).unwrap_or_default();
            let (scrubbed, _) = r.team.all_secrets.scrub(&body);
            crate::error::error_response(err.reason, scrubbed, None)
        }
        Ok(None) => match state.store.approval(&approval.txn_id).await {
            Ok(Some(a)) => accepted(state, &a, notification_channel, notice),
            _ => accepted(state, &approval, notification_channel, notice),
        },
        Err(e) => ProxyError::from(e).into_response(),
    }
}

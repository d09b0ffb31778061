//! Policies (SPEC §5): per-credential approval rules, and the dry run that
//! tells which decision and rule a request would get.

use serde::{Deserialize, Serialize};
use tap_core::model::Grant;
use tap_core::policy::{
    CompiledPolicy, EvalInput, GrantView as PolicyGrant, NormalizedTarget, Policy, evaluate,
    normalize_method,
};
use tap_core::target::TargetUrl;
use utoipa::ToSchema;

use super::{Need, Ops, OpsError, OpsResult, Scope};

/// A policy as stored and answered: the §5 fields, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PolicyRules {
    /// Methods that proceed without approval (`HEAD` is covered by `GET`).
    pub auto_approve_methods: Vec<String>,
    /// Methods that need approval.
    pub require_approval_methods: Vec<String>,
    /// URL patterns that proceed without approval (strict matching).
    pub auto_approve_urls: Vec<String>,
    /// URL patterns that always need approval (liberal matching).
    pub require_approval_urls: Vec<String>,
    /// Member e-mails allowed to approve; `null` means every eligible member.
    pub allowed_approvers: Option<Vec<String>>,
    /// Named notification channel for approvals.
    pub approval_channel: Option<String>,
    /// Telegram chat overriding the team channel.
    pub telegram_chat_id: Option<String>,
    /// Approval needs a fresh passkey assertion.
    pub require_passkey: bool,
    /// Distinct members needed to approve (at least 1).
    pub min_approvals: u32,
}

impl From<Policy> for PolicyRules {
    fn from(p: Policy) -> Self {
        Self {
            auto_approve_methods: p.auto_approve_methods,
            require_approval_methods: p.require_approval_methods,
            auto_approve_urls: p.auto_approve_urls,
            require_approval_urls: p.require_approval_urls,
            allowed_approvers: p.allowed_approvers,
            approval_channel: p.approval_channel,
            telegram_chat_id: p.telegram_chat_id,
            require_passkey: p.require_passkey,
            min_approvals: p.min_approvals,
        }
    }
}

/// A credential's policy (`GET|PUT /team/policies/{credential}`, `tap policy show|set`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PolicyView {
    /// Credential.
    pub credential: String,
    /// The stored policy; `null` when the team default applies.
    pub policy: Option<PolicyRules>,
    /// The team's default approval mode (`gated` or `autonomous`).
    pub team_default: String,
}

/// The result of clearing a policy (`DELETE /team/policies/{credential}`, `tap policy clear`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PolicyClearedView {
    /// Credential.
    pub credential: String,
    /// False when the credential had no policy (nothing changed).
    pub cleared: bool,
}

/// Policy fields to write. With `PUT` a missing field takes its default (the
/// body is the whole policy); with `tap policy set` a missing field keeps its
/// current value. An empty list clears a list.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct SetPolicy {
    /// Methods that proceed without approval.
    #[serde(default)]
    pub auto_approve_methods: Option<Vec<String>>,
    /// Methods that need approval.
    #[serde(default)]
    pub require_approval_methods: Option<Vec<String>>,
    /// URL patterns that proceed without approval.
    #[serde(default)]
    pub auto_approve_urls: Option<Vec<String>>,
    /// URL patterns that always need approval.
    #[serde(default)]
    pub require_approval_urls: Option<Vec<String>>,
    /// Member e-mails allowed to approve (`[]` means nobody).
    #[serde(default)]
    pub allowed_approvers: Option<Vec<String>>,
    /// Named notification channel (empty clears it).
    #[serde(default)]
    pub approval_channel: Option<String>,
    /// Telegram chat id (empty clears it).
    #[serde(default)]
    pub telegram_chat_id: Option<String>,
    /// Approval needs a passkey.
    #[serde(default)]
    pub require_passkey: Option<bool>,
    /// Distinct approvals needed (at least 1).
    #[serde(default)]
    pub min_approvals: Option<u32>,
}

/// A dry-run request (`tap policy test`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct PolicyTest {
    /// Method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// Full target URL.
    pub target: String,
}

/// What a request would get (`tap policy test`): SPEC §14's shape.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct PolicyTestView {
    /// `proceed` or `approval`.
    pub decision: String,
    /// The audited reason (`grant:<id>` when a grant turns an approval into proceed).
    pub policy_reason: String,
    /// The matching pattern, method entry or grant scope; `null` for defaults.
    pub rule: Option<String>,
    /// The normalised target the rules were matched against (for display).
    #[serde(skip)]
    pub target: String,
}

/// Trimmed entries, empty ones dropped (a list given as `a,,b` or `" a "`).
fn clean(list: Vec<String>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

impl SetPolicy {
    /// Applies the given fields onto `base`.
    fn apply(self, mut p: Policy) -> Policy {
        if let Some(v) = self.auto_approve_methods {
            p.auto_approve_methods = clean(v);
        }
        if let Some(v) = self.require_approval_methods {
            p.require_approval_methods = clean(v);
        }
        if let Some(v) = self.auto_approve_urls {
            p.auto_approve_urls = clean(v);
        }
        if let Some(v) = self.require_approval_urls {
            p.require_approval_urls = clean(v);
        }
        if let Some(v) = self.allowed_approvers {
            // E-mails compare lower-cased everywhere else (members, the gate).
            p.allowed_approvers = Some(
                clean(v)
                    .into_iter()
                    .map(|e| e.to_ascii_lowercase())
                    .collect(),
            );
        }
        if let Some(v) = self.approval_channel {
            p.approval_channel = Some(v);
        }
        if let Some(v) = self.telegram_chat_id {
            p.telegram_chat_id = Some(v);
        }
        if let Some(v) = self.require_passkey {
            p.require_passkey = v;
        }
        if let Some(n) = self.min_approvals {
            p.min_approvals = n;
        }
        p
    }
}

impl Ops {
    async fn need_credential(&self, scope: &Scope, credential: &str) -> OpsResult<()> {
        match self
            .store
            .credential(scope.team.internal_id, credential)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(OpsError::NotFound(format!(
                "credential {credential} in team {}",
                scope.team.slug
            ))),
        }
    }

    fn policy_view(scope: &Scope, credential: &str, p: Option<Policy>) -> PolicyView {
        PolicyView {
            credential: credential.to_owned(),
            policy: p.map(PolicyRules::from),
            team_default: scope.team.default_approval_mode.as_str().to_owned(),
        }
    }

    /// A credential's policy (`null` when the team default applies).
    pub async fn policy(&self, scope: &Scope, credential: &str) -> OpsResult<PolicyView> {
        scope.require(Need::Read)?;
        self.need_credential(scope, credential).await?;
        let p = self
            .store
            .policy(scope.team.internal_id, credential)
            .await?;
        Ok(Self::policy_view(scope, credential, p))
    }

    /// Replaces a credential's policy: fields not given take their defaults.
    pub async fn set_policy(
        &self,
        scope: &Scope,
        credential: &str,
        cmd: SetPolicy,
    ) -> OpsResult<PolicyView> {
        self.write_policy(scope, credential, cmd, false).await
    }

    /// Updates a credential's policy: fields not given keep their value (the
    /// policy starts from the defaults when there is none).
    pub async fn update_policy(
        &self,
        scope: &Scope,
        credential: &str,
        cmd: SetPolicy,
    ) -> OpsResult<PolicyView> {
        self.write_policy(scope, credential, cmd, true).await
    }

    async fn write_policy(
        &self,
        scope: &Scope,
        credential: &str,
        cmd: SetPolicy,
        merge: bool,
    ) -> OpsResult<PolicyView> {
        scope.require(Need::Write)?;
        self.need_credential(scope, credential).await?;
        let base = if merge {
            self.store
                .policy(scope.team.internal_id, credential)
                .await?
                .unwrap_or_default()
        } else {
            Policy::default()
        };
        let p = cmd
            .apply(base)
            .normalized()
            .map_err(|e| OpsError::Invalid(format!("invalid policy: {e}")))?;
        CompiledPolicy::new(&p).map_err(|e| OpsError::Invalid(format!("invalid policy: {e}")))?;
        self.store
            .set_policy(scope.team.internal_id, credential, &p)
            .await?;
        self.wrote().await?;
        Ok(Self::policy_view(scope, credential, Some(p)))
    }

    /// Removes a credential's policy (the team default applies again);
    /// clearing an absent policy changes nothing and says so.
    pub async fn clear_policy(
        &self,
        scope: &Scope,
        credential: &str,
    ) -> OpsResult<PolicyClearedView> {
        scope.require(Need::Write)?;
        self.need_credential(scope, credential).await?;
        let cleared = self
            .store
            .clear_policy(scope.team.internal_id, credential)
            .await?;
        if cleared {
            self.wrote().await?;
        }
        Ok(PolicyClearedView {
            credential: credential.to_owned(),
            cleared,
        })
    }

    /// Dry run: the decision, reason and rule `method target` would get on
    /// `credential` now (its policy, the team default and live grants). Pure:
    /// changes nothing, uses no grant.
    pub async fn policy_test(
        &self,
        scope: &Scope,
        credential: &str,
        cmd: PolicyTest,
    ) -> OpsResult<PolicyTestView> {
        scope.require(Need::Read)?;
        self.need_credential(scope, credential).await?;
        let method = normalize_method(cmd.method.as_deref().unwrap_or("GET"))
            .map_err(|e| OpsError::Invalid(e.to_string()))?;
        let url = TargetUrl::parse(&cmd.target)
            .map_err(|e| OpsError::Invalid(format!("invalid target: {e}")))?;
        let normalized = NormalizedTarget::from_url(url.url());
        let team = scope.team.internal_id;
        let compiled = self
            .store
            .policy(team, credential)
            .await?
            .map(|p| CompiledPolicy::new(&p))
            .transpose()
            .map_err(|e| OpsError::Invalid(format!("stored policy does not compile: {e}")))?;
        let grants: Vec<Grant> = self
            .store
            .grants(team)
            .await?
            .into_iter()
            .filter(|g| g.credential == credential && g.revoked_at.is_none())
            .collect();
        let views: Vec<PolicyGrant<'_>> = grants
            .iter()
            .map(|g| PolicyGrant {
                id: &g.id,
                methods: &g.methods,
                route_scope: &g.route_scope,
                expires_at: g.expires_at,
                uses_left: g.max_uses.map(|m| m.saturating_sub(g.uses)),
            })
            .collect();
        let eval = evaluate(&EvalInput {
            method: &method,
            target: &normalized,
            policy: compiled.as_ref(),
            team_mode: scope.team.default_approval_mode,
            grants: &views,
            now: self.clock.now_secs(),
        });
        Ok(PolicyTestView {
            decision: eval.decision.as_str().to_owned(),
            policy_reason: eval.reason.as_str().into_owned(),
            rule: eval.rule,
            target: normalized.as_display(),
        })
    }
}

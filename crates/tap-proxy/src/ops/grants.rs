//! Grants (SPEC §5 step 7): time-boxed auto-approvals of a method and route.

use serde::{Deserialize, Serialize};
use tap_core::model::Grant;
use tap_core::policy::{UrlPattern, normalize_method};
use utoipa::ToSchema;

use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;

/// A grant to create (`POST /team/credentials/{name}/grants`, `tap grant create`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateGrant {
    /// Methods covered (`GET` also covers `HEAD`); at least one, none blank.
    pub methods: Vec<String>,
    /// URL pattern, matched like `auto_approve_urls`.
    pub route_scope: String,
    /// Lifetime in minutes (at least 1).
    pub ttl_minutes: u32,
    /// Use limit (at least 1); unlimited when absent.
    #[serde(default)]
    pub max_uses: Option<u32>,
}

/// A grant as answered and listed.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct GrantView {
    /// Id (`grant:<id>` in audit rows).
    pub id: String,
    /// Credential.
    pub credential: String,
    /// Methods covered.
    pub methods: Vec<String>,
    /// Route pattern.
    pub route_scope: String,
    /// RFC 3339.
    pub expires_at: String,
    /// Use limit; `null` is unlimited.
    pub max_uses: Option<u32>,
    /// Uses so far.
    pub uses: u32,
    /// Member who created it.
    pub created_by: String,
    /// Revoked by a member.
    pub revoked: bool,
    /// Would apply now: not revoked, not expired, not used up.
    pub active: bool,
}

impl GrantView {
    fn new(g: &Grant, now_secs: i64) -> Self {
        Self {
            id: g.id.clone(),
            credential: g.credential.clone(),
            methods: g.methods.clone(),
            route_scope: g.route_scope.clone(),
            expires_at: rfc3339_ms(g.expires_at * 1000),
            max_uses: g.max_uses,
            uses: g.uses,
            created_by: g.created_by.clone(),
            revoked: g.revoked_at.is_some(),
            active: g.revoked_at.is_none()
                && g.expires_at > now_secs
                && g.max_uses.is_none_or(|m| g.uses < m),
        }
    }
}

/// A random grant id: `g` and 11 lower-case alphanumerics.
pub(crate) fn new_grant_id() -> OpsResult<String> {
    let raw =
        tap_core::crypto::generate_password().map_err(|e| OpsError::Invalid(e.to_string()))?;
    let tail: String = raw
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_lowercase()))
        .take(11)
        .collect();
    Ok(format!("g{tail}"))
}

impl CreateGrant {
    /// The methods to store: upper-cased, duplicates dropped. A blank entry is
    /// refused rather than read as `GET` (which is what an empty `X-TAP-Method`
    /// means): a grant must never cover more than the operator spelled out.
    fn methods(&self) -> OpsResult<Vec<String>> {
        if self.methods.is_empty() {
            return Err(OpsError::Invalid(
                "methods must name at least one method".into(),
            ));
        }
        let mut out: Vec<String> = Vec::with_capacity(self.methods.len());
        for m in &self.methods {
            if m.trim().is_empty() {
                return Err(OpsError::Invalid(
                    "methods must not contain an empty method".into(),
                ));
            }
            let m = normalize_method(m).map_err(|e| OpsError::Invalid(e.to_string()))?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }
}

impl Ops {
    /// Creates a grant on `credential`, made by the scope's member.
    pub async fn create_grant(
        &self,
        scope: &Scope,
        credential: &str,
        cmd: CreateGrant,
    ) -> OpsResult<GrantView> {
        scope.require(Need::Write)?;
        let team = scope.team.internal_id;
        if self.store.credential(team, credential).await?.is_none() {
            return Err(OpsError::NotFound(format!(
                "credential {credential} in team {}",
                scope.team.slug
            )));
        }
        let methods = cmd.methods()?;
        if cmd.ttl_minutes == 0 {
            return Err(OpsError::Invalid("ttl_minutes must be at least 1".into()));
        }
        if cmd.max_uses == Some(0) {
            return Err(OpsError::Invalid(
                "max_uses must be at least 1 (leave it out for no limit)".into(),
            ));
        }
        let route = cmd.route_scope.trim();
        UrlPattern::parse(route)
            .map_err(|e| OpsError::Invalid(format!("invalid route_scope: {e}")))?;
        let now = self.clock.now_secs();
        let g = Grant {
            id: new_grant_id()?,
            team_internal_id: team,
            credential: credential.to_owned(),
            methods,
            route_scope: route.to_owned(),
            expires_at: now + i64::from(cmd.ttl_minutes) * 60,
            max_uses: cmd.max_uses,
            uses: 0,
            created_by: scope.email.clone(),
            created_at: 0,
            revoked_at: None,
        };
        self.store.create_grant(&g).await?;
        self.wrote().await?;
        Ok(GrantView::new(&g, now))
    }

    /// Grants of the scope's team, revoked and expired ones included.
    pub async fn grants(&self, scope: &Scope) -> OpsResult<Vec<GrantView>> {
        scope.require(Need::Read)?;
        let now = self.clock.now_secs();
        Ok(self
            .store
            .grants(scope.team.internal_id)
            .await?
            .iter()
            .map(|g| GrantView::new(g, now))
            .collect())
    }

    /// Revokes a live grant; an unknown or already revoked one is not found.
    pub async fn revoke_grant(&self, scope: &Scope, id: &str) -> OpsResult<GrantView> {
        scope.require(Need::Write)?;
        let team = scope.team.internal_id;
        if !self.store.revoke_grant(team, id).await? {
            return Err(OpsError::NotFound(format!(
                "live grant {id} in team {}",
                scope.team.slug
            )));
        }
        self.wrote().await?;
        let now = self.clock.now_secs();
        self.store
            .grants(team)
            .await?
            .iter()
            .find(|g| g.id == id)
            .map(|g| GrantView::new(g, now))
            .ok_or_else(|| OpsError::NotFound(format!("grant {id}")))
    }
}

//! Admin API tokens (`tap token`): each acts as one member; shown once.

use serde::{Deserialize, Serialize};
use tap_core::crypto::generate_admin_token;
use utoipa::ToSchema;

use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;

/// The label of a token created without one.
const DEFAULT_TOKEN_LABEL: &str = "created by tap token create";

/// A token to create (`tap token create --member E`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateToken {
    /// The member the token acts as.
    pub member: String,
    /// Operator label.
    #[serde(default)]
    pub label: Option<String>,
}

/// A created token: the only time `token` is ever shown.
#[derive(Clone, Serialize, ToSchema)]
pub struct TokenCreatedView {
    /// Token id (for `tap token revoke`).
    pub id: i64,
    /// The member it acts as.
    pub member: String,
    /// The bearer token, shown once.
    pub token: String,
}

impl std::fmt::Debug for TokenCreatedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCreatedView")
            .field("id", &self.id)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

/// A token as listed: never the token nor its hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Token id.
    pub id: i64,
    /// The member it acts as.
    pub member: String,
    /// Operator label.
    pub label: String,
    /// RFC 3339.
    pub created_at: String,
    /// Revoked.
    pub revoked: bool,
}

/// A revoked token.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TokenRevokedView {
    /// Token id.
    pub id: i64,
    /// Always true.
    pub revoked: bool,
}

impl Ops {
    /// Creates an admin token for a member of the scope's team. A token acts
    /// with its member's full rights, so minting one is for owners.
    pub async fn create_token(
        &self,
        scope: &Scope,
        cmd: CreateToken,
    ) -> OpsResult<TokenCreatedView> {
        scope.require(Need::Owner)?;
        let email = cmd.member.trim().to_ascii_lowercase();
        let members = self.store.members(scope.team.internal_id).await?;
        let Some(m) = members.iter().find(|m| m.email == email) else {
            return Err(OpsError::NotFound(format!(
                "member {email} of team {}",
                scope.team.slug
            )));
        };
        let token = generate_admin_token().map_err(|e| OpsError::Invalid(e.to_string()))?;
        let label = cmd
            .label
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .unwrap_or(DEFAULT_TOKEN_LABEL);
        let id = self
            .store
            .create_admin_token(m.account_id, &self.keys.mac().digest(&token), label)
            .await?;
        self.wrote().await?;
        Ok(TokenCreatedView {
            id,
            member: email,
            token: token.to_string(),
        })
    }

    /// Tokens of the scope's team's members.
    pub async fn tokens(&self, scope: &Scope) -> OpsResult<Vec<TokenView>> {
        scope.require(Need::Write)?;
        Ok(self
            .store
            .admin_tokens(scope.team.internal_id)
            .await?
            .into_iter()
            .map(|(t, member)| TokenView {
                id: t.id,
                member,
                label: t.label,
                created_at: rfc3339_ms(t.created_at),
                revoked: t.revoked_at.is_some(),
            })
            .collect())
    }

    /// Revokes a token of one of the scope's team's members.
    pub async fn revoke_token(&self, scope: &Scope, id: i64) -> OpsResult<TokenRevokedView> {
        scope.require(Need::Owner)?;
        let tokens = self.store.admin_tokens(scope.team.internal_id).await?;
        if !tokens.iter().any(|(t, _)| t.id == id) {
            return Err(OpsError::NotFound(format!(
                "token {id} in team {}",
                scope.team.slug
            )));
        }
        self.store.revoke_admin_token(id).await?;
        self.wrote().await?;
        Ok(TokenRevokedView { id, revoked: true })
    }
}

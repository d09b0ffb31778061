//! Members: accounts, memberships, the default terminal approver.

use argon2::{Argon2, PasswordHasher};
use tap_core::crypto::generate_password;
use tap_core::model::{MemberRole, Team};
use tap_core::names::normalize_email;
use zeroize::Zeroizing;

use super::{META_INIT_OWNER, Ops, OpsError, OpsResult};

pub(super) fn hash_password(password: &str) -> OpsResult<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| OpsError::Invalid(format!("password hashing failed: {e}")))
}

impl Ops {
    /// The e-mail `tap approve` acts as without `--as`: the owner `tap init` created,
    /// else the team's first owner.
    pub async fn default_actor(&self, team: &Team) -> OpsResult<String> {
        if let Some(raw) = self.store.meta(META_INIT_OWNER).await? {
            let email = String::from_utf8_lossy(&raw).into_owned();
            if self
                .store
                .members(team.internal_id)
                .await?
                .iter()
                .any(|m| m.email == email)
            {
                return Ok(email);
            }
        }
        self.store
            .members(team.internal_id)
            .await?
            .into_iter()
            .find(|m| m.role == MemberRole::Owner)
            .map(|m| m.email)
            .ok_or_else(|| OpsError::NotFound(format!("an owner of team {}", team.slug)))
    }

    /// Adds an account (when new) and its membership; returns a generated password when
    /// none was given and the account is new.
    pub async fn add_member(
        &self,
        team: &Team,
        email: &str,
        role: MemberRole,
        password: Option<&str>,
    ) -> OpsResult<(String, Option<Zeroizing<String>>)> {
        let email = normalize_email(email).map_err(|e| OpsError::Invalid(e.to_string()))?;
        if self
            .store
            .members(team.internal_id)
            .await?
            .iter()
            .any(|m| m.email == email)
        {
            return Err(OpsError::Conflict(format!(
                "{email} is already a member of team {}",
                team.slug
            )));
        }
        let (account, generated) = match self.store.account_by_email(&email).await? {
            Some(a) => (a.id, None),
            None => {
                let generated = match password {
                    Some(_) => None,
                    None => {
                        Some(generate_password().map_err(|e| OpsError::Invalid(e.to_string()))?)
                    }
                };
                let pw = password
                    .map(str::to_owned)
                    .or_else(|| generated.as_ref().map(|g| g.to_string()));
                let pw = pw.unwrap_or_default();
                if pw.len() < 8 {
                    return Err(OpsError::Invalid(
                        "a password needs at least 8 characters".into(),
                    ));
                }
                (
                    self.store
                        .create_account(&email, &hash_password(&pw)?)
                        .await?,
                    generated,
                )
            }
        };
        self.store
            .set_membership(team.internal_id, account, role)
            .await?;
        self.wrote().await?;
        Ok((email, generated))
    }
}

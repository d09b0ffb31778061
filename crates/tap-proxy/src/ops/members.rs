//! Members: accounts, memberships, the default terminal approver.

use argon2::{Argon2, PasswordHasher};
use serde::{Deserialize, Serialize};
use tap_core::crypto::generate_password;
use tap_core::model::{Member, MemberRole, Team};
use tap_core::names::normalize_email;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::{META_INIT_OWNER, Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;

/// A member as listed (`GET /team/members`, `tap member list`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// E-mail (the member's id in paths).
    pub email: String,
    /// `owner`, `admin`, `approver` or `viewer`.
    pub role: String,
    /// Credentials assigned to an approver.
    pub credentials: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> Self {
        Self {
            email: m.email.clone(),
            role: m.role.as_str().to_owned(),
            credentials: m.credentials.clone(),
            created_at: rfc3339_ms(m.created_at),
        }
    }
}

/// An invitation (`POST /team/members`, `tap member add`).
#[derive(Clone, Deserialize, ToSchema)]
pub struct InviteMember {
    /// E-mail.
    pub email: String,
    /// `owner` (owners only), `admin`, `approver` or `viewer`.
    pub role: String,
    /// Password of a new account (at least 8 characters); generated and shown
    /// once when absent. Ignored when the account exists.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for InviteMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InviteMember")
            .field("email", &self.email)
            .field("role", &self.role)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The invited member; `password` only when one was generated (shown once).
#[derive(Clone, Serialize, ToSchema)]
pub struct InvitedView {
    /// E-mail.
    pub email: String,
    /// Team slug.
    pub team: String,
    /// Role.
    pub role: String,
    /// Generated password of a new account, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for InvitedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvitedView")
            .field("email", &self.email)
            .field("team", &self.team)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A role change (`PUT /team/members/{email}/role`, `tap member role`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct ChangeRole {
    /// `owner`, `admin`, `approver` or `viewer`.
    pub role: String,
}

/// Credentials assigned to an approver (`PUT /team/members/{email}/credentials`, `tap member assign`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct MemberCredentials {
    /// Credential names of the team.
    pub credentials: Vec<String>,
}

/// A removed member.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MemberRemovedView {
    /// E-mail of the removed member.
    pub removed: String,
}

fn parse_role(raw: &str) -> OpsResult<MemberRole> {
    raw.trim()
        .parse::<MemberRole>()
        .map_err(|_| OpsError::Invalid("role must be owner, admin, approver or viewer".into()))
}

fn email_of(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

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

impl Ops {
    /// Members of the scope's team.
    pub async fn members(&self, scope: &Scope) -> OpsResult<Vec<MemberView>> {
        scope.require(Need::Read)?;
        Ok(self
            .store
            .members(scope.team.internal_id)
            .await?
            .iter()
            .map(MemberView::from)
            .collect())
    }

    async fn member(&self, scope: &Scope, email: &str) -> OpsResult<Member> {
        self.store
            .members(scope.team.internal_id)
            .await?
            .into_iter()
            .find(|m| m.email == email)
            .ok_or_else(|| {
                OpsError::NotFound(format!("member {email} of team {}", scope.team.slug))
            })
    }

    /// Invites a member: the account is created when new (with a generated
    /// password, returned once, unless one is given). Making an owner needs
    /// the owner role.
    pub async fn invite_member(&self, scope: &Scope, cmd: InviteMember) -> OpsResult<InvitedView> {
        scope.require(Need::Write)?;
        let role = parse_role(&cmd.role)?;
        if role == MemberRole::Owner {
            scope.require(Need::Owner)?;
        }
        let (email, generated) = self
            .add_member(&scope.team, &cmd.email, role, cmd.password.as_deref())
            .await?;
        Ok(InvitedView {
            email,
            team: scope.team.slug.clone(),
            role: role.as_str().to_owned(),
            password: generated.map(|p| p.to_string()),
        })
    }

    /// Changes a member's role (owner only); demoting the last owner is a conflict.
    pub async fn change_member_role(
        &self,
        scope: &Scope,
        email: &str,
        cmd: ChangeRole,
    ) -> OpsResult<MemberView> {
        scope.require(Need::Owner)?;
        let role = parse_role(&cmd.role)?;
        let email = email_of(email);
        if !self
            .store
            .set_member_role(scope.team.internal_id, &email, role)
            .await?
        {
            return Err(OpsError::NotFound(format!(
                "member {email} of team {}",
                scope.team.slug
            )));
        }
        self.wrote().await?;
        Ok(MemberView::from(&self.member(scope, &email).await?))
    }

    /// Removes a member; admins may not remove owners, and the last owner stays.
    pub async fn remove_member(&self, scope: &Scope, email: &str) -> OpsResult<MemberRemovedView> {
        scope.require(Need::Write)?;
        let email = email_of(email);
        let target = self.member(scope, &email).await?;
        if target.role == MemberRole::Owner {
            scope.require(Need::Owner)?;
        }
        if !self
            .store
            .remove_member(scope.team.internal_id, &email)
            .await?
        {
            return Err(OpsError::NotFound(format!(
                "member {email} of team {}",
                scope.team.slug
            )));
        }
        self.wrote().await?;
        Ok(MemberRemovedView { removed: email })
    }

    /// Replaces the credentials assigned to a member (`PUT`).
    pub async fn set_member_credentials(
        &self,
        scope: &Scope,
        email: &str,
        cmd: MemberCredentials,
    ) -> OpsResult<MemberView> {
        self.write_member_credentials(scope, email, cmd, false)
            .await
    }

    /// Adds credentials to those assigned to a member (`tap member assign`).
    pub async fn assign_member_credentials(
        &self,
        scope: &Scope,
        email: &str,
        cmd: MemberCredentials,
    ) -> OpsResult<MemberView> {
        self.write_member_credentials(scope, email, cmd, true).await
    }

    async fn write_member_credentials(
        &self,
        scope: &Scope,
        email: &str,
        cmd: MemberCredentials,
        add: bool,
    ) -> OpsResult<MemberView> {
        scope.require(Need::Write)?;
        let email = email_of(email);
        let team = scope.team.internal_id;
        let m = self.member(scope, &email).await?;
        let mut all = if add { m.credentials } else { Vec::new() };
        for c in cmd.credentials {
            let c = c.trim().to_owned();
            if c.is_empty() || all.contains(&c) {
                continue;
            }
            if self.store.credential(team, &c).await?.is_none() {
                return Err(OpsError::NotFound(format!(
                    "credential {c} in team {}",
                    scope.team.slug
                )));
            }
            all.push(c);
        }
        if !self
            .store
            .set_member_credentials(team, &email, &all)
            .await?
        {
            return Err(OpsError::NotFound(format!(
                "member {email} of team {}",
                scope.team.slug
            )));
        }
        self.wrote().await?;
        Ok(MemberView::from(&self.member(scope, &email).await?))
    }
}

/// A member's Telegram link (`tap member link-telegram`).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TelegramLinkView {
    /// The member.
    pub email: String,
    /// The linked Telegram user id, when linked directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_user_id: Option<i64>,
    /// A one-time code to send to the bot as `/link CODE`, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Expiry of the code, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_expires_at: Option<String>,
}

/// Life of a `/link` code.
pub const TELEGRAM_LINK_CODE_TTL_MS: i64 = 15 * 60 * 1000;

impl Ops {
    /// Links a Telegram user id to a member of the scope's team: their
    /// clicks on Telegram approval buttons then count as that member.
    pub async fn link_telegram(
        &self,
        scope: &Scope,
        email: &str,
        telegram_user_id: i64,
    ) -> OpsResult<TelegramLinkView> {
        scope.require(Need::Write)?;
        let email = email_of(email);
        self.member(scope, &email).await?;
        if telegram_user_id <= 0 {
            return Err(OpsError::Invalid(
                "a Telegram user id is a positive number (the bot's /start answer shows it)".into(),
            ));
        }
        if !self
            .store
            .link_telegram_user(&email, telegram_user_id)
            .await?
        {
            return Err(OpsError::NotFound(format!(
                "member {email} of team {}",
                scope.team.slug
            )));
        }
        Ok(TelegramLinkView {
            email,
            telegram_user_id: Some(telegram_user_id),
            code: None,
            code_expires_at: None,
        })
    }

    /// Makes a one-time code the member sends to the bot as `/link CODE`;
    /// only its hash is stored.
    pub async fn telegram_link_code(
        &self,
        scope: &Scope,
        email: &str,
    ) -> OpsResult<TelegramLinkView> {
        scope.require(Need::Write)?;
        let email = email_of(email);
        self.member(scope, &email).await?;
        let raw = generate_password().map_err(|e| OpsError::Invalid(e.to_string()))?;
        let code: String = raw
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(16)
            .collect();
        let expires = self.clock.now_ms() + TELEGRAM_LINK_CODE_TTL_MS;
        self.store
            .create_telegram_link_code(
                &email,
                &tap_core::crypto::sha256_hex(code.as_bytes()),
                expires,
            )
            .await?;
        Ok(TelegramLinkView {
            email,
            telegram_user_id: None,
            code: Some(code),
            code_expires_at: Some(rfc3339_ms(expires)),
        })
    }
}

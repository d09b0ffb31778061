//! Notification channels (SPEC §11): where a team's approval requests are sent.

use serde::{Deserialize, Serialize};
use tap_core::model::Channel;
use tap_core::names::validate_name;
use utoipa::ToSchema;

use super::{Need, Ops, OpsError, OpsResult, Scope};
use crate::clock::rfc3339_ms;
use crate::config::TelegramConfig;
use crate::outbound::GuardedResolver;
use crate::telegram::{TelegramError, send_message};

/// The only channel type stored today.
const TELEGRAM: &str = "telegram";
/// Longest accepted chat id or `@channelname`.
const MAX_CHAT_ID_LEN: usize = 64;

/// A channel to add or replace (`POST /team/notification-channels`, `tap channel telegram set`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct CreateChannel {
    /// Channel name (default: the type).
    #[serde(default)]
    pub name: Option<String>,
    /// `telegram` (the default).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Numeric Telegram chat id, or `@channelname`.
    pub chat_id: String,
}

/// A notification channel.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// Name, unique in the team.
    pub name: String,
    /// `telegram`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Telegram chat id.
    pub chat_id: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> Self {
        Self {
            name: c.name.clone(),
            kind: c.kind.clone(),
            chat_id: c.chat_id.clone(),
            created_at: rfc3339_ms(c.created_at),
        }
    }
}

/// A removed channel.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChannelRemovedView {
    /// Name of the removed channel.
    pub deleted: String,
}

/// A delivered test message.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChannelTestedView {
    /// Channel name.
    pub name: String,
    /// Always true (a failure is an error).
    pub delivered: bool,
}

/// How a test message leaves: the Telegram client on the guarded resolver
/// (the running proxy's, or one the CLI builds from the environment).
#[derive(Clone, Copy, Debug)]
pub struct TelegramOut<'a> {
    /// The client.
    pub client: &'a reqwest::Client,
    /// Its resolver (private targets need the allowlist).
    pub resolver: &'a GuardedResolver,
    /// Bot token and API base.
    pub config: &'a TelegramConfig,
}

fn valid_chat_id(chat: &str) -> bool {
    if chat.is_empty() || chat.len() > MAX_CHAT_ID_LEN {
        return false;
    }
    let numeric = chat.strip_prefix('-').unwrap_or(chat);
    if !numeric.is_empty() && numeric.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    chat.strip_prefix('@')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

impl Ops {
    /// Channels of the scope's team.
    pub async fn channels(&self, scope: &Scope) -> OpsResult<Vec<ChannelView>> {
        scope.require(Need::Read)?;
        Ok(self
            .store
            .channels(scope.team.internal_id)
            .await?
            .iter()
            .map(ChannelView::from)
            .collect())
    }

    /// Adds or replaces a channel.
    pub async fn create_channel(
        &self,
        scope: &Scope,
        cmd: CreateChannel,
    ) -> OpsResult<ChannelView> {
        scope.require(Need::Write)?;
        let kind = cmd
            .kind
            .as_deref()
            .map(str::trim)
            .unwrap_or(TELEGRAM)
            .to_owned();
        if kind != TELEGRAM {
            return Err(OpsError::Invalid(format!(
                "unknown channel type {kind:?}: use telegram"
            )));
        }
        let name = cmd
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or(&kind)
            .to_owned();
        validate_name("channel", &name).map_err(|e| OpsError::Invalid(e.to_string()))?;
        let chat = cmd.chat_id.trim();
        if !valid_chat_id(chat) {
            return Err(OpsError::Invalid(
                "chat_id must be a numeric Telegram chat id or @channelname".into(),
            ));
        }
        let ch = Channel {
            team_internal_id: scope.team.internal_id,
            name,
            kind,
            chat_id: chat.to_owned(),
            created_at: 0,
        };
        self.store.set_channel(&ch).await?;
        self.wrote().await?;
        // Read back for the stored creation time.
        let stored = self.channel(scope, &ch.name).await.unwrap_or(ch);
        Ok(ChannelView::from(&stored))
    }

    async fn channel(&self, scope: &Scope, name: &str) -> OpsResult<Channel> {
        self.store
            .channels(scope.team.internal_id)
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                OpsError::NotFound(format!("channel {name} in team {}", scope.team.slug))
            })
    }

    /// Removes a channel.
    pub async fn delete_channel(&self, scope: &Scope, name: &str) -> OpsResult<ChannelRemovedView> {
        scope.require(Need::Write)?;
        if !self
            .store
            .delete_channel(scope.team.internal_id, name)
            .await?
        {
            return Err(OpsError::NotFound(format!(
                "channel {name} in team {}",
                scope.team.slug
            )));
        }
        self.wrote().await?;
        Ok(ChannelRemovedView {
            deleted: name.to_owned(),
        })
    }

    /// Sends a test message through a channel. The bot token never appears
    /// in the answer: Telegram errors name the failure, not the URL.
    pub async fn test_channel(
        &self,
        scope: &Scope,
        name: &str,
        out: TelegramOut<'_>,
    ) -> OpsResult<ChannelTestedView> {
        scope.require(Need::Write)?;
        let ch = self.channel(scope, name).await?;
        let text = format!(
            "TAP test message for team {} (channel {}).",
            scope.team.slug, ch.name
        );
        match send_message(out.client, out.resolver, out.config, &ch.chat_id, &text).await {
            Ok(()) => Ok(ChannelTestedView {
                name: ch.name,
                delivered: true,
            }),
            Err(TelegramError::NotConfigured) => Err(OpsError::ChannelUnavailable(
                "Telegram is not configured: set TELEGRAM_BOT_TOKEN".into(),
            )),
            Err(e) => Err(OpsError::Channel(e.to_string())),
        }
    }
}

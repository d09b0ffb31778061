//! The Telegram approval channel (SPEC §11).
//!
//! - [`api`]: the handful of Bot API methods TAP uses, as hand-typed serde
//!   structs over an injected [`api::Transport`]. The proxy implements the
//!   transport on its guarded outbound client and holds the bot token: this
//!   crate never sees the token, so it cannot leak it.
//! - [`render`]: the approval message and its inline keyboard.
//! - [`bot`]: [`bot::TelegramBot`], the [`tap_core::approval::ApprovalChannel`]
//!   implementation: sends approval messages, resolves button clicks through
//!   the injected [`bot::Decider`] (the proxy's one decision gate), keeps
//!   every message in step with its approval, and long-polls for updates.
//!
//! Callback data is `a:`/`d:`/`g:` followed by a 256-bit random per-message
//! nonce; the store keeps only its SHA-256, so any replica resolves a click
//! and neither the txn id nor the table alone is a clickable callback.

pub mod api;
pub mod bot;
pub mod render;

pub use api::{BotApi, Transport, TransportError};
pub use bot::{Decider, TelegramBot, TelegramSettings};

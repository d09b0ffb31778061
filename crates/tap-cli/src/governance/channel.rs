//! `tap channel telegram set|list|rm|test`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use tap_proxy::config::ProxyConfig;
use tap_proxy::ops::channels::{CreateChannel, TelegramOut};
use tap_proxy::outbound::{GuardedResolver, upstream_client};

use super::{emit, operator};
use crate::env::Globals;
use crate::{ChannelCmd, TelegramCmd};

pub(crate) async fn channel(g: &Globals, c: ChannelCmd) -> Result<ExitCode> {
    let (ops, scope) = operator(g, None).await?;
    match c {
        ChannelCmd::Telegram(TelegramCmd::Set { chat_id, name }) => {
            let v = ops
                .create_channel(
                    &scope,
                    CreateChannel {
                        name: Some(name),
                        kind: Some("telegram".into()),
                        chat_id,
                    },
                )
                .await?;
            emit(g, &v, || {
                format!(
                    "Telegram channel {} of team {} set to chat {}",
                    v.name, scope.team.slug, v.chat_id
                )
            })?;
        }
        ChannelCmd::List => {
            let list = ops.channels(&scope).await?;
            emit(g, &list, || {
                if list.is_empty() {
                    return "no channels (approvals use the web page and the terminal)".into();
                }
                list.iter()
                    .map(|c| format!("{}  {}  {}", c.name, c.kind, c.chat_id))
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        ChannelCmd::Rm { name } => {
            let v = ops.delete_channel(&scope, &name).await?;
            emit(g, &v, || format!("Removed channel {}", v.deleted))?;
        }
        ChannelCmd::Test { name } => {
            // The same guarded client a proxy would use, built from this environment.
            let config =
                ProxyConfig::from_lookup(|k| std::env::var(k).ok()).map_err(anyhow::Error::msg)?;
            let resolver = Arc::new(GuardedResolver::new(
                config.outbound.clone(),
                config.resolve.clone(),
            ));
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let client =
                upstream_client(&config, Arc::clone(&resolver)).map_err(anyhow::Error::msg)?;
            let out = TelegramOut {
                client: &client,
                resolver: &resolver,
                config: &config.telegram,
            };
            let v = ops.test_channel(&scope, &name, out).await?;
            emit(g, &v, || format!("Test message sent through {}", v.name))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

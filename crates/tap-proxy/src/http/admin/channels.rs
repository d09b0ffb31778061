//! Admin API: notification channels (SPEC §4, §11) over the admin service.

#![allow(clippy::result_large_err)]

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Need, ctx, parse_body};
use crate::ops::channels::{
    ChannelRemovedView, ChannelTestedView, ChannelView, CreateChannel, TelegramOut,
};
use crate::state::AppState;

/// `GET /team/notification-channels`.
#[utoipa::path(
    get,
    path = "/team/notification-channels",
    tag = "channels",
    summary = "List notification channels",
    security(("bearer" = [])),
    responses((status = 200, description = "Channels", body = Vec<ChannelView>))
)]
pub async fn list_channels(State(s): State<AppState>, h: HeaderMap) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.channels(&c.scope).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/notification-channels` `{"name"?, "type": "telegram", "chat_id"}`.
#[utoipa::path(
    post,
    path = "/team/notification-channels",
    tag = "channels",
    summary = "Add or replace a notification channel",
    request_body = CreateChannel,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = ChannelView),
        (status = 400, description = "Invalid")
    )
)]
pub async fn create_channel(State(s): State<AppState>, h: HeaderMap, body: Bytes) -> Response {
    let c = authorized!(s, h, Need::Member);
    let cmd: CreateChannel = json_body!(body);
    match s.ops.create_channel(&c.scope, cmd).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /team/notification-channels/{name}`.
#[utoipa::path(
    delete,
    path = "/team/notification-channels/{name}",
    tag = "channels",
    summary = "Remove a notification channel",
    params(("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Removed", body = ChannelRemovedView),
        (status = 404, description = "Not found")
    )
)]
pub async fn delete_channel(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    match s.ops.delete_channel(&c.scope, &name).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /team/notification-channels/{name}/test`: sends a test message.
#[utoipa::path(
    post,
    path = "/team/notification-channels/{name}/test",
    tag = "channels",
    summary = "Send a test message through a channel",
    params(("name" = String, Path, description = "Channel name")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Delivered", body = ChannelTestedView),
        (status = 404, description = "Not found"),
        (status = 502, description = "Telegram refused or unreachable"),
        (status = 503, description = "Telegram not configured")
    )
)]
pub async fn test_channel(
    State(s): State<AppState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let c = authorized!(s, h, Need::Member);
    let out = TelegramOut {
        client: &s.client,
        resolver: &s.resolver,
        config: &s.config.telegram,
    };
    match s.ops.test_channel(&c.scope, &name, out).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

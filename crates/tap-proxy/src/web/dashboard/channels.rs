//! `/dashboard/channels`: notification channels: list, add, delete, and a
//! button that sends a test message.

use askama::Template;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};

use super::{Frame, TeamQuery, act, enter};
use crate::ops::channels::{ChannelView, CreateChannel, TelegramOut};
use crate::state::AppState;
use crate::web::pages::Nav;

const SECTION: &str = "channels";
const LIST: &str = "/dashboard/channels";

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(LIST, get(list).post(create))
        .route("/dashboard/channels/{name}/test", post(test))
        .route(
            "/dashboard/channels/{name}/delete",
            get(confirm_delete).post(delete),
        )
}

#[derive(Template)]
#[template(path = "dashboard/channels.html")]
struct ListPage {
    title: &'static str,
    nav: Option<Nav>,
    frame: Frame,
    channels: Vec<ChannelView>,
}

/// `GET /dashboard/channels`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    match state.ops.channels(&d.scope).await {
        Ok(channels) => d.page(&ListPage {
            title: "Notification channels",
            nav: d.nav(),
            frame: d.frame.clone(),
            channels,
        }),
        Err(e) => d.failed(e, "/dashboard"),
    }
}

/// `POST /dashboard/channels`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    body: Bytes,
) -> Response {
    let (d, f) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let cmd = CreateChannel {
        name: f.get("name"),
        kind: None,
        chat_id: f.get("chat_id").unwrap_or_default(),
    };
    match state.ops.create_channel(&d.scope, cmd).await {
        Ok(c) => d.done(LIST, &format!("Channel {} saved.", c.name)),
        Err(e) => d.failed(e, LIST),
    }
}

/// `POST /dashboard/channels/{name}/test`: sends a test message.
pub async fn test(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let out = TelegramOut {
        client: &state.client,
        resolver: &state.resolver,
        config: &state.config.telegram,
    };
    match state.ops.test_channel(&d.scope, &name, out).await {
        Ok(v) => d.done(
            LIST,
            &format!("A test message was sent through {}.", v.name),
        ),
        Err(e) => d.failed(e, LIST),
    }
}

/// `GET /dashboard/channels/{name}/delete`: the confirmation step.
pub async fn confirm_delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
) -> Response {
    let d = match enter(&state, &headers, q.team.as_deref(), SECTION, LIST).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    d.confirm(
        &format!("Delete channel {name}?"),
        &format!("Approvals routed to channel {name} fall back to the team's other channels and the web inbox."),
        &format!("{LIST}/{name}/delete"),
        LIST,
    )
}

/// `POST /dashboard/channels/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TeamQuery>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let (d, _) = match act(&state, &headers, q.team.as_deref(), SECTION, LIST, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.ops.delete_channel(&d.scope, &name).await {
        Ok(v) => d.done(LIST, &format!("Channel {} deleted.", v.deleted)),
        Err(e) => d.failed(e, LIST),
    }
}

//! `/dashboard/agents`.

use axum::Router;

use crate::state::AppState;

/// The routes of this page.
pub fn routes() -> Router<AppState> {
    Router::new()
}

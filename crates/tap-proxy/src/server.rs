//! The HTTP service: routes, request ids, start-up and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tap_core::store::Store;
use tokio::net::TcpListener;

use crate::config::ProxyConfig;
use crate::directory::{Directory, DirectoryHandle};
use crate::error::{ProxyError, Reason};
use crate::journal::Journal;
use crate::keyring::Keyring;
use crate::outbound::{GuardedResolver, upstream_client};
use crate::proxy::forward_handler;
use crate::state::{AppState, RateLimiter};
use crate::{agent_api, team_api as t, web};

/// The request id of the current request; equals the `X-TAP-Request-Id` answered.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-tap-request-id", v);
    }
    resp
}

async fn not_found() -> Response {
    ProxyError::new(Reason::NotFound, "no such endpoint").into_response()
}

/// The router for a state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/forward", post(forward_handler))
        .route("/health", get(agent_api::health))
        .route("/instructions", get(agent_api::instructions))
        .route("/agent/services", get(agent_api::services))
        .route("/agent/config", get(agent_api::config))
        .route("/agent/logs", get(agent_api::logs))
        .route("/agent/bootstrap", get(agent_api::bootstrap))
        .route("/agent/approvals/{txn_id}", get(agent_api::approval))
        .route("/login", post(web::login))
        .route("/logout", post(web::logout))
        .route("/approve/{txn}", get(web::approve_page))
        .route("/approve/{txn}/approve", post(web::approve_post))
        .route("/approve/{txn}/deny", post(web::deny_post))
        .route("/team", get(t::get_team))
        .route("/team/settings", put(t::put_settings))
        .route(
            "/team/credentials",
            get(t::list_credentials).post(t::create_credential),
        )
        .route(
            "/team/credentials/{name}",
            get(t::get_credential)
                .patch(t::patch_credential)
                .delete(t::delete_credential),
        )
        .route("/team/credentials/{name}/secret", put(t::put_secret))
        .route("/team/credentials/{name}/grants", post(t::create_grant))
        .route("/team/grants", get(t::list_grants))
        .route("/team/grants/{id}/revoke", post(t::revoke_grant))
        .route("/team/agents", get(t::list_agents).post(t::create_agent))
        .route(
            "/team/agents/{id}",
            get(t::get_agent)
                .patch(t::patch_agent)
                .delete(t::delete_agent),
        )
        .route("/team/agents/{id}/enable", post(t::enable_agent))
        .route("/team/agents/{id}/disable", post(t::disable_agent))
        .route("/team/agents/{id}/rotate-key", post(t::rotate_agent_key))
        .route("/team/roles", get(t::list_roles).post(t::create_role))
        .route(
            "/team/roles/{name}",
            put(t::put_role).delete(t::delete_role),
        )
        .route(
            "/team/policies/{credential}",
            get(t::get_policy)
                .put(t::put_policy)
                .delete(t::delete_policy),
        )
        .route("/team/members", get(t::list_members).post(t::invite_member))
        .route("/team/members/{email}", delete(t::remove_member))
        .route("/team/members/{email}/role", put(t::change_member_role))
        .route(
            "/team/members/{email}/credentials",
            put(t::set_member_credentials),
        )
        .route("/team/links", get(t::list_links).post(t::create_link))
        .route("/team/links/{home_team}/{agent_id}", delete(t::delete_link))
        .route("/team/audit", get(t::audit))
        .route("/team/audit/export", get(t::audit_export))
        .route("/team/approvals", get(web::team_approvals))
        .route("/team/approvals/{txn}/approve", post(web::team_approve))
        .route("/team/approvals/{txn}/deny", post(web::team_deny))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ProxyError::new(Reason::Internal, "internal error").into_response()
        }))
}

/// A proxy whose state is built and whose background tasks run.
pub struct Proxy {
    /// Shared state.
    pub state: AppState,
    journal_task: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    executor: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Proxy")
    }
}

impl Proxy {
    /// Builds the state: first directory, audit journal, upstream client, config watcher.
    pub async fn build(
        store: Arc<dyn Store>,
        keys: Keyring,
        config: ProxyConfig,
    ) -> Result<Self, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let snapshot = store.snapshot().await.map_err(|e| e.to_string())?;
        let directory = Arc::new(DirectoryHandle::new(Directory::build(
            snapshot, &keys, None,
        )));
        let (journal, journal_task) = Journal::start(Arc::clone(&store));
        let resolver = Arc::new(GuardedResolver::new(
            config.outbound.clone(),
            config.resolve.clone(),
        ));
        let client = upstream_client(&config, Arc::clone(&resolver))?;
        let keys = Arc::new(keys);
        let config = Arc::new(config);
        let watcher = {
            let store = Arc::clone(&store);
            let keys = Arc::clone(&keys);
            let directory = Arc::clone(&directory);
            let every = config.reload_interval;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    match directory.refresh(store.as_ref(), &keys).await {
                        Ok(true) => tracing::debug!("configuration reloaded"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "configuration reload failed; keeping the last view")
                        }
                    }
                }
            })
        };
        let state = AppState {
            store,
            keys,
            directory,
            journal,
            client,
            resolver,
            config,
            rate: Arc::new(RateLimiter::default()),
            broker: Arc::new(crate::approval::Broker::default()),
        };
        let executor = tokio::spawn(crate::approval::run_executor(state.clone()));
        Ok(Self {
            state,
            journal_task,
            watcher,
            executor,
        })
    }

    /// Serves on `listener` until `shutdown` resolves; in-flight requests finish and
    /// queued audit rows are written before this returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let Self {
            state,
            journal_task,
            watcher,
            executor,
        } = self;
        let app = router(state);
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string());
        watcher.abort();
        executor.abort();
        let _ = executor.await;
        // Every AppState clone is gone with the router: the journal drains and stops.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), journal_task).await;
        served
    }
}

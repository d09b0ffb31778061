//! The HTTP service: routes, request ids, start-up and graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tap_core::store::{Store, StoreError};
use tap_core::time::{Clock, SystemClock};
use tokio::net::TcpListener;

use crate::config::ProxyConfig;
use crate::directory::{Directory, DirectoryHandle};
use crate::error::{ProxyError, Reason};
use crate::http::admin as t;
use crate::journal::Journal;
use crate::keyring::Keyring;
use crate::outbound::{GuardedResolver, OutboundError, upstream_client};
use crate::state::{AppState, RateLimiter};
use crate::{agent_api, web};

async fn not_found() -> Response {
    ProxyError::new(Reason::NotFound, "no such endpoint").into_response()
}

/// Generated from the handlers' `#[utoipa::path]` annotations by [`router`].
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "TAP — Tool Authorization Protocol proxy",
        description = "Agents call APIs through the proxy with X-TAP-Key; members manage teams under /team with a bearer token."
    ),
    modifiers(&Security)
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "agent_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-TAP-Key"))),
        );
    }
}

/// The routes with their OpenAPI description, built from the same list.
pub fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi as _;
    use utoipa_axum::router::OpenApiRouter;
    use utoipa_axum::routes;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(crate::proxy::forward_handler))
        .routes(routes!(crate::proxy::sign::sign_handler))
        .routes(routes!(agent_api::health))
        .routes(routes!(crate::http::metrics_endpoint::metrics_handler))
        .routes(routes!(agent_api::instructions))
        .routes(routes!(crate::agent_services::services))
        .routes(routes!(agent_api::config))
        .routes(routes!(agent_api::logs))
        .routes(routes!(agent_api::bootstrap))
        .routes(routes!(agent_api::approval))
        .routes(routes!(web::session::login))
        .routes(routes!(web::session::logout))
        .routes(routes!(web::approve::approve_page))
        .routes(routes!(web::approve::approve_post))
        .routes(routes!(web::approve::deny_post))
        .routes(routes!(web::passkey::register_begin))
        .routes(routes!(web::passkey::register_finish))
        .routes(routes!(web::passkey::delete_passkey))
        .routes(routes!(web::passkey::approve_begin))
        .routes(routes!(web::passkey::approve_finish))
        .routes(routes!(web::passkey_login::begin))
        .routes(routes!(web::passkey_login::finish))
        .routes(routes!(t::team_approvals))
        .routes(routes!(t::team_approval))
        .routes(routes!(t::team_approve))
        .routes(routes!(t::team_deny))
        .routes(routes!(t::get_team))
        .routes(routes!(t::put_settings))
        .routes(routes!(t::list_credentials, t::create_credential))
        .routes(routes!(
            t::get_credential,
            t::patch_credential,
            t::delete_credential
        ))
        .routes(routes!(t::put_secret))
        .routes(routes!(t::create_grant))
        .routes(routes!(t::list_grants))
        .routes(routes!(t::revoke_grant))
        .routes(routes!(t::list_agents, t::create_agent))
        .routes(routes!(t::get_agent, t::patch_agent, t::delete_agent))
        .routes(routes!(t::enable_agent))
        .routes(routes!(t::disable_agent))
        .routes(routes!(t::rotate_agent_key))
        .routes(routes!(t::list_roles, t::create_role))
        .routes(routes!(t::put_role, t::delete_role))
        .routes(routes!(t::get_policy, t::put_policy, t::delete_policy))
        .routes(routes!(t::list_members, t::invite_member))
        .routes(routes!(t::remove_member))
        .routes(routes!(t::change_member_role))
        .routes(routes!(t::set_member_credentials))
        .routes(routes!(t::list_links, t::create_link))
        .routes(routes!(t::delete_link))
        .routes(routes!(t::list_channels, t::create_channel))
        .routes(routes!(t::delete_channel))
        .routes(routes!(t::test_channel))
        .routes(routes!(t::audit))
        .routes(routes!(t::audit_export))
        .split_for_parts()
}

/// The router for a state.
///
/// Layers, outermost first: panic catcher, request id, then
/// [`crate::http::guard`] (browser-origin and media-type checks, per-address
/// agent-key limits, bounded body reads).
///
/// `/mcp` ([`crate::mcp`]) sends its tool calls through a second copy of the
/// same router, built without `/mcp`, so they meet every layer an HTTP agent
/// meets.
pub fn router(state: AppState) -> Router {
    let agent_routes = app(state.clone(), None);
    let mcp = crate::mcp::routes(&state, agent_routes);
    app(state, Some(mcp))
}

fn app(state: AppState, mcp: Option<Router<AppState>>) -> Router {
    let (mut routes, api) = api_router();
    if let Some(mcp) = mcp {
        routes = routes.merge(mcp);
    }
    let doc = Arc::new(api);
    let guards = state.clone();
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route("/", get(web::session::root))
        .route("/login", get(web::session::login_form))
        .route("/inbox", get(web::inbox::inbox))
        .route("/dashboard/audit", get(web::dashboard::audit::list))
        .route(
            "/dashboard/audit/export",
            get(web::dashboard::audit::export),
        )
        .route(
            "/dashboard/audit/{id}",
            get(web::dashboard::audit::timeline),
        )
        .route("/dashboard/status", get(web::dashboard::status::status))
        .route("/static/tap.css", get(web::assets::css))
        .route("/static/tap.js", get(web::assets::js))
        .route("/favicon.ico", get(web::assets::favicon))
        .route("/passkeys", get(web::passkey::passkeys_page))
        .merge(web::dashboard::routes())
        .route(
            "/telegram/webhook",
            axum::routing::post(crate::approval::telegram::webhook),
        )
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            guards,
            crate::http::guard,
        ))
        .layer(axum::middleware::from_fn(crate::request_id::request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ProxyError::new(Reason::Internal, "internal error").into_response()
        }))
}

/// Why the proxy could not start. Never carries a secret or a URL.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The first configuration snapshot could not be read from the store.
    #[error("cannot read the configuration from the store: {0}")]
    Store(#[source] StoreError),
    /// An upstream client could not be built.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// The WebAuthn relying party could not be set up.
    #[error(transparent)]
    Webauthn(#[from] web::passkey_service::PasskeySetupError),
}

/// A proxy whose state is built and whose background tasks run.
pub struct Proxy {
    /// Shared state.
    pub state: AppState,
    journal_task: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    executor: tokio::task::JoinHandle<()>,
    telegram_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Proxy")
    }
}

/// Answer bytes queued per agent connection (HTTP/1.1) before the proxy
/// stops pulling the upstream's body: bounds memory when agents read slower
/// than upstreams answer (hyper's default is ~400 KiB).
pub const CONNECTION_WRITE_BUFFER: usize = 64 * 1024;

/// Connection bounds of [`serve_connections`].
#[derive(Clone, Copy, Debug)]
struct Bounds {
    idle: std::time::Duration,
    max_connections: usize,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight
/// requests finish (idle keep-alive connections are closed). A failed accept
/// (out of file descriptors and the like) is logged and retried, never fatal.
///
/// Bounds (THREATS §K, §P): at most `max_connections` connections are served
/// at once; one more is accepted, answered 503 `too_many_connections` and
/// closed at once, so excess clients learn it instead of piling up in the
/// backlog. HTTP/1 heads must arrive within [`HEADER_READ_TIMEOUT`] (capped by
/// the idle timeout), HTTP/2 peers answer keep-alive pings, and a connection
/// of either version with no request in flight for `idle` is closed.
async fn serve_connections(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    bounds: Bounds,
    trusted: Arc<crate::http::forwarded::TrustedProxies>,
) {
    use crate::http::connection::{
        Activity, H2_KEEP_ALIVE_INTERVAL, H2_KEEP_ALIVE_TIMEOUT, HEADER_READ_TIMEOUT, TrackedBody,
        over_capacity_answer,
    };
    use crate::http::limiter::ClientAddr;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt as _;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT.min(bounds.idle))
        .max_buf_size(CONNECTION_WRITE_BUFFER);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL.min(bounds.idle))
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    let max = bounds
        .max_connections
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Best effort, never blocking the accept loop: the answer fits the socket buffer.
            let _ = tcp.try_write(&over_capacity_answer());
            tracing::warn!(client = %peer.ip(), max, "connection refused: connection cap reached");
            drop(tcp);
            continue;
        };
        // Answers are written whole or in large chunks: no reason to delay small writes.
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let svc = {
            let app = app.clone();
            let activity = Arc::clone(&activity);
            let trusted = Arc::clone(&trusted);
            tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let in_flight = activity.enter();
                let mut req = req.map(axum::body::Body::new);
                // The peer, or the client a trusted load balancer names (per request).
                let client = ClientAddr(trusted.client(peer.ip(), req.headers()));
                req.extensions_mut().insert(client);
                let call = app.clone().oneshot(req);
                async move {
                    let resp = call.await?;
                    Ok::<_, std::convert::Infallible>(
                        resp.map(|b| axum::body::Body::new(TrackedBody::new(b, in_flight))),
                    )
                }
            })
        };
        let conn = builder
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(svc))
            .into_owned();
        let mut stop = stop_rx.clone();
        let idle = bounds.idle;
        tokio::spawn(async move {
            let _slot = slot;
            let mut conn = std::pin::pin!(conn);
            let mut closing = false;
            loop {
                tokio::select! {
                    // A broken connection ends here; the request's own path logs what matters.
                    _ = conn.as_mut() => break,
                    () = activity.idle_for(idle), if !closing => {
                        conn.as_mut().graceful_shutdown();
                        // Bound the goodbye too: a peer that never lets go is dropped.
                        let _ = tokio::time::timeout(idle, conn.as_mut()).await;
                        break;
                    }
                    changed = stop.changed(), if !closing => {
                        // Server shutdown (or the sender gone): finish in-flight requests, then close.
                        let _ = changed;
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it ends: all slots back means all done.
    let _ = slots
        .acquire_many(u32::try_from(max).unwrap_or(u32::MAX))
        .await;
}

impl Proxy {
    /// Builds the state: first directory, audit journal, upstream client, config watcher.
    pub async fn build(
        store: Arc<dyn Store>,
        keys: Keyring,
        config: ProxyConfig,
    ) -> Result<Self, ServerError> {
        Self::build_with_clock(store, keys, config, Arc::new(SystemClock)).await
    }

    /// [`Proxy::build`] reading time from `clock` (tests pass a manual clock).
    pub async fn build_with_clock(
        store: Arc<dyn Store>,
        keys: Keyring,
        config: ProxyConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServerError> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        ensure_store_id(store.as_ref()).await?;
        // Before the journal opens the audit spool: nothing is chained without it.
        store
            .set_audit_key(keys.audit_key())
            .await
            .map_err(ServerError::Store)?;
        let snapshot = store.snapshot().await.map_err(ServerError::Store)?;
        let directory = Arc::new(DirectoryHandle::new(Directory::build(
            snapshot, &keys, None,
        )));
        let (journal, journal_task) =
            Journal::start(Arc::clone(&store)).map_err(ServerError::Store)?;
        let resolver = Arc::new(GuardedResolver::new(
            config.outbound.clone(),
            config.resolve.clone(),
        ));
        let client = upstream_client(&config, Arc::clone(&resolver))?;
        let upstream = crate::outbound::UpstreamClient::new(&config, Arc::clone(&resolver))?;
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
                    // Polled; woken at once where the store signals another
                    // replica's change (PostgreSQL NOTIFY).
                    tokio::select! {
                        _ = tick.tick() => {},
                        () = store.changed() => {},
                    }
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
        let telegram = crate::approval::telegram::bot(
            &config,
            client.clone(),
            Arc::clone(&resolver),
            Arc::clone(&store),
            Arc::clone(&clock),
            Arc::clone(&keys),
        );
        let passkeys = config
            .webauthn
            .as_ref()
            .map(web::passkey_service::PasskeyService::new)
            .transpose()
            .map_err(ServerError::Webauthn)?
            .map(Arc::new);
        let broker = Arc::new(crate::approval::broker::Broker::with_channels(
            telegram.clone(),
            passkeys.is_some(),
        ));
        // The dummy argon2 hash for unknown e-mails: hashed once, off the async workers.
        let abuse = tokio::task::spawn_blocking(crate::http::limiter::AbuseLimits::new)
            .await
            .unwrap_or_default();
        // Replicas sharing the store share the per-address limits too.
        let abuse = Arc::new(if config.shared_store {
            abuse.counted_in(Arc::clone(&store), Arc::clone(&clock))
        } else {
            abuse
        });
        let ops = crate::ops::Ops::new(Arc::clone(&store), Arc::clone(&keys), Arc::clone(&clock))
            .attach(Arc::clone(&directory), Arc::clone(&broker));
        let state = AppState::new(crate::state::Shared {
            store,
            keys,
            directory,
            journal,
            upstream,
            client,
            resolver,
            config,
            rate: Arc::new(RateLimiter::default()),
            broker,
            telegram,
            ops,
            clock,
            abuse,
            passkeys,
            tokens: Arc::default(),
        });
        let executor = tokio::spawn(crate::approval::executor::run_executor(state.clone()));
        let telegram_tasks = crate::approval::telegram::start(&state);
        Ok(Self {
            state,
            journal_task,
            watcher,
            executor,
            telegram_tasks,
        })
    }

    /// Serves on `listener` until `shutdown` resolves; in-flight requests finish and
    /// queued audit rows are written before this returns. Failed accepts are
    /// logged and retried, so today this always returns `Ok`.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let Self {
            state,
            journal_task,
            watcher,
            executor,
            telegram_tasks,
        } = self;
        let journal = state.journal.clone();
        let bounds = Bounds {
            idle: state.config.idle_timeout,
            max_connections: state.config.max_connections,
        };
        let trusted = Arc::new(state.config.trusted_proxies.clone());
        let app = router(state);
        serve_connections(listener, app, shutdown, bounds, trusted).await;
        watcher.abort();
        executor.abort();
        for t in telegram_tasks {
            t.abort();
        }
        let _ = executor.await;
        // In-flight requests are done: write what is queued, then stop the flusher.
        journal.shutdown().await;
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), journal_task).await;
        Ok(())
    }
}

/// Gives the store a random public id once.
async fn ensure_store_id(store: &dyn Store) -> Result<(), ServerError> {
    if store
        .meta(crate::keyring::STORE_ID_META)
        .await
        .map_err(ServerError::Store)?
        .is_none()
    {
        let id = tap_core::crypto::generate_id()
            .map_err(|e| ServerError::Store(StoreError::Unavailable(e.to_string())))?;
        store
            .set_meta(crate::keyring::STORE_ID_META, id.as_bytes())
            .await
            .map_err(ServerError::Store)?;
    }
    Ok(())
}

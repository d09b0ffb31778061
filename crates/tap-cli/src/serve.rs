//! `tap serve`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tap_proxy::config::ProxyConfig;
use tap_proxy::ops::Ops as Admin;
use tap_proxy::server::Proxy;

use crate::env::Globals;
use crate::init_report::print_init;

fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The MCP SDK logs whole messages (tool arguments, results) at debug:
    // agent input may hold a secret a leak attempt carries, so it stays at info.
    if let Ok(d) = "rmcp=info".parse() {
        filter = filter.add_directive(d);
    }
    // The SigV4 signer traces the request it signs (and, on request, its body)
    // at trace level: agent input and signed headers stay out of the logs.
    if let Ok(d) = "aws_sigv4=info".parse() {
        filter = filter.add_directive(d);
    }
    let json = std::env::var("TAP_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    // Colour only on a terminal, and never with NO_COLOR set (no-color.org).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub(crate) async fn serve(g: &Globals, listen: Option<String>) -> Result<ExitCode> {
    init_logging();
    let mut config = ProxyConfig::from_lookup(|k| std::env::var(k).ok())?;
    if let Some(l) = listen {
        config.listen = l
            .trim()
            .parse()
            .with_context(|| format!("--listen {l:?} is not an address like 127.0.0.1:3100"))?;
    }
    // Bind first: a busy port must not leave a new deployment behind (data
    // folder, owner password, admin token) for a proxy that never ran.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (store, fresh) = g.open_store_for_init().await?;
    // Auto-init only a store that is not initialised (no schema, or another
    // replica is initialising it right now); otherwise a missing or wrong key
    // is fatal.
    let admin = if Admin::is_initialized(store.as_ref()).await? {
        let (key, _) = g.require_key()?;
        Admin::open(Arc::clone(&store), key).await?
    } else {
        let made = async {
            let (key, source) = g.key_or_generate()?;
            let (admin, report) = Admin::init(Arc::clone(&store), key, None).await?;
            Ok::<_, anyhow::Error>((admin, report, source))
        }
        .await;
        match made {
            Ok((admin, report, source)) => {
                print_init(g, &report, &source)?;
                admin
            }
            Err(e) => {
                if fresh {
                    drop(store);
                    g.discard_fresh_store();
                }
                return Err(e);
            }
        }
    };
    // On PostgreSQL several replicas may serve the store: count limits in it.
    config.shared_store = g
        .database_url
        .as_deref()
        .is_some_and(crate::env::is_postgres);
    let addr = listener.local_addr()?;
    // The bound address (port 0 resolved) is what links such as `approval_url` name.
    config.listen = addr;
    // After `tap key rotate` the proxy re-reads its key file or command.
    let source = g.clone();
    let keys = (*admin.keys).clone().with_reload(Arc::new(move || {
        source.load_key().ok().flatten().map(|(key, _)| key)
    }));
    let proxy = Proxy::build(Arc::clone(&store), keys, config.clone()).await?;
    // Install the handlers before announcing the address: a SIGTERM sent as soon as
    // "listening" is printed must shut down gracefully, not kill the process.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tracing::info!(%addr, "TAP proxy listening");
    if !g.json {
        eprintln!("TAP proxy listening on http://{addr}");
    }
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down: finishing in-flight requests");
    };
    proxy.serve(listener, shutdown).await?;
    // Nothing uses the store any more: leave its file whole (SQLite: the WAL
    // folded in, the in-use mark gone).
    store.close().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

//! `tap-signer serve`: the standalone OAuth 1.0a signer sidecar (SPEC §6.5).
//! The service is `tap_signer::serve`; this is its command line.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tap_signer::serve::{Service, SignerConfig, Upstream, listen_addr};

/// The TAP signer sidecar: signs requests from the TAP proxy with OAuth 1.0a
/// and forwards them to X-OAuth-Target.
#[derive(Debug, Parser)]
#[command(name = "tap-signer", version, after_help = ENV_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve until terminated.
    Serve {
        /// Listen address (default 127.0.0.1:8090).
        #[arg(long, env = "TAP_SIGNER_LISTEN_ADDR")]
        listen: Option<String>,
    },
}

const ENV_HELP: &str = "Environment:
  TAP_SIGNER_SECRET                 required; the proxy's TAP_SIGNER_SECRET (sent in X-OAuth-Signer-Secret)
  TAP_SIGNER_ALLOWED_HOSTS          required; upstream hosts signed requests may go to ([http://]host[:port] or *.suffix, comma-separated)
  TAP_SIGNER_ALLOW_PRIVATE_TARGETS  true: private upstream addresses allowed [false]
  TAP_SIGNER_TIMEOUT_SECS           upstream time limit [30]
  TAP_SIGNER_CREDENTIAL_<NAME>      a JSON OAuth 1.0a key set for X-OAuth-Credential: <name>
  TAP_SIGNER_LISTEN_ADDR            listen address [127.0.0.1:8090]";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Cmd::Serve { listen } = cli.command;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let fail = |msg: String| {
        eprintln!("tap-signer: {msg}");
        ExitCode::from(1)
    };
    let addr = match listen_addr(listen.as_deref()) {
        Ok(a) => a,
        Err(e) => return fail(e.to_string()),
    };
    let config = match SignerConfig::from_vars(std::env::vars()) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        let upstream = match Upstream::new(config.outbound.clone(), config.timeout) {
            Ok(u) => u,
            Err(e) => return fail(format!("cannot load the TLS trust store: {e}")),
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return fail(format!("cannot listen on {addr}: {e}")),
        };
        let bound = listener.local_addr().map_or(addr, |a| a);
        eprintln!("tap-signer listening on http://{bound}");
        let service = Arc::new(Service::new(config, upstream));
        tokio::select! {
            () = tap_signer::serve::run(listener, service) => ExitCode::SUCCESS,
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
            () = terminated() => ExitCode::SUCCESS,
        }
    })
}

#[cfg(unix)]
async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}

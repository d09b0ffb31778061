//! Every environment variable TAP reads, with its default: the one list
//! `tap serve --help` prints (a test checks that no variable read anywhere in
//! the sources is missing from it).

/// One environment variable.
#[derive(Clone, Copy, Debug)]
pub struct EnvVar {
    /// Its name.
    pub name: &'static str,
    /// Its default, or what happens without it.
    pub default: &'static str,
    /// What it sets.
    pub help: &'static str,
}

const fn v(name: &'static str, default: &'static str, help: &'static str) -> EnvVar {
    EnvVar {
        name,
        default,
        help,
    }
}

/// Every variable, grouped as an operator meets them.
pub const ENV_VARS: &[EnvVar] = &[
    v(
        "TAP_DATA_DIR",
        "./tap-data",
        "data folder: store, master key, audit spool",
    ),
    v(
        "TAP_DATABASE_URL",
        "<data-dir>/tap.db",
        "store URL (sqlite://...)",
    ),
    v(
        "TAP_LISTEN_ADDR",
        "127.0.0.1:3100",
        "address `tap serve` listens on",
    ),
    v(
        "TAP_PUBLIC_URL",
        "http://<listen address>",
        "address humans and agents reach the proxy on (approval links)",
    ),
    v(
        "TAP_WEBAUTHN_RP_ID",
        "- (passkeys off)",
        "WebAuthn relying party id for passkeys, e.g. tap.example.com (with TAP_WEBAUTHN_ORIGIN)",
    ),
    v(
        "TAP_WEBAUTHN_ORIGIN",
        "-",
        "browser origin of the passkey pages, e.g. https://tap.example.com",
    ),
    v(
        "TAP_MASTER_KEY",
        "-",
        "master key, 64 hex digits or base64 of 32 bytes (TAP_ENCRYPTION_KEY is an alias)",
    ),
    v("TAP_ENCRYPTION_KEY", "-", "alias of TAP_MASTER_KEY"),
    v(
        "TAP_MASTER_KEY_FILE",
        "-",
        "file holding the master key (a Docker secret, say)",
    ),
    v(
        "TAP_MASTER_KEY_COMMAND",
        "-",
        "command whose stdout is the master key (Vault, KMS, a password manager)",
    ),
    v("TAP_FORWARD_TIMEOUT_SECS", "30", "upstream call time limit"),
    v(
        "TAP_MAX_BODY_BYTES",
        "10485760",
        "largest request body accepted (413 above)",
    ),
    v(
        "TAP_ALLOW_PRIVATE_TARGETS",
        "false",
        "let secrets reach private and loopback addresses",
    ),
    v(
        "TAP_PRIVATE_ALLOWLIST",
        "-",
        "private hosts or CIDRs a secret may reach (comma-separated)",
    ),
    v("TAP_RESOLVE", "-", "DNS pins, host=ip,..."),
    v(
        "TAP_GOOGLE_TOKEN_URL",
        "https://oauth2.googleapis.com/token",
        "token endpoint of OAuth 2 refresh-token credentials without token_url",
    ),
    v(
        "TAP_TRUSTED_SIDECARS",
        "-",
        "sidecar hosts besides loopback that may receive credential values (comma-separated)",
    ),
    v(
        "TAP_TRUSTED_PROXIES",
        "- (the TCP peer is the client)",
        "load balancers (IPs/CIDRs, comma-separated) whose X-Forwarded-For names the client address for abuse limits and logs",
    ),
    v(
        "TAP_SIGNER_SECRET",
        "-",
        "shared secret sent to loopback or trusted sidecars in X-OAuth-Signer-Secret",
    ),
    v(
        "TAP_SIGNER_ALLOWED_HOSTS",
        "-",
        "tap-signer serve: upstream hosts signed requests may go to (required)",
    ),
    v(
        "TAP_SIGNER_ALLOW_PRIVATE_TARGETS",
        "false",
        "tap-signer serve: let signed requests reach private addresses",
    ),
    v(
        "TAP_SIGNER_TIMEOUT_SECS",
        "30",
        "tap-signer serve: upstream time limit",
    ),
    v(
        "TAP_SIGNER_LISTEN_ADDR",
        "127.0.0.1:8090",
        "tap-signer serve: listen address",
    ),
    v(
        "TAP_APPROVAL_TIMEOUT_SECS",
        "3600",
        "life of a pending approval",
    ),
    v(
        "TAP_SYNC_APPROVAL_WAIT_SECS",
        "20",
        "how long a write without Prefer waits for a human before the 202",
    ),
    v(
        "TAP_RESULT_RETENTION_SECS",
        "3600",
        "how long an approved request's result stays pollable after the decision",
    ),
    v(
        "TAP_AUDIT_RETENTION_DAYS",
        "0",
        "days audit rows are kept; older ones are deleted hourly, the chain verifies from a sealed anchor (0: keep forever)",
    ),
    v(
        "TAP_BODY_TIMEOUT_SECS",
        "30",
        "time to receive a whole request body on any route (408 after)",
    ),
    v(
        "TAP_IDLE_TIMEOUT_SECS",
        "60",
        "an idle connection (HTTP/1 or HTTP/2) is closed after this",
    ),
    v(
        "TAP_MAX_CONNECTIONS",
        "1024",
        "connections served at once; more are refused",
    ),
    v(
        "TAP_METRICS_PUBLIC",
        "false",
        "serve /metrics without the admin bearer",
    ),
    v(
        "TAP_WORKER_THREADS",
        "one per core",
        "runtime threads serving requests",
    ),
    v(
        "TAP_AGENT_KEY",
        "-",
        "agent key `tap mcp` (the stdio MCP relay) presents to the proxy",
    ),
    v(
        "TAP_PROXY_URL",
        "TAP_PUBLIC_URL, else http://<listen address>",
        "proxy `tap mcp` relays to and `tap mcp-config` points clients at",
    ),
    v("TAP_LOG_FORMAT", "pretty", "pretty or json"),
    v("RUST_LOG", "info", "log filter"),
    v("NO_COLOR", "-", "set: no colour in logs even on a terminal"),
    v(
        "TELEGRAM_BOT_TOKEN",
        "-",
        "Telegram bot token (approval messages)",
    ),
    v(
        "TELEGRAM_API_URL",
        "https://api.telegram.org",
        "Telegram Bot API base",
    ),
    v(
        "TELEGRAM_CHAT_ID",
        "-",
        "chat for approvals when neither the policy nor the team names one",
    ),
    v(
        "TELEGRAM_MODE",
        "polling",
        "polling (getUpdates) or webhook (POST /telegram/webhook)",
    ),
    v(
        "TELEGRAM_WEBHOOK_SECRET",
        "-",
        "secret Telegram sends with each webhook update; webhook mode refuses to start without it",
    ),
];

/// The variables as `tap serve --help` prints them.
pub fn help_text() -> String {
    let width = ENV_VARS.iter().map(|e| e.name.len()).max().unwrap_or(0);
    let mut s = String::from("Environment (default in brackets):\n");
    for e in ENV_VARS {
        s.push_str(&format!(
            "  {:width$}  {} [{}]\n",
            e.name,
            e.help,
            e.default,
            width = width
        ));
    }
    s
}

//! `tap`: the TAP command line (SPEC §10).

mod commands;
mod env;
mod governance;
mod init_report;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// TAP, the Tool Authorization Protocol proxy: agents name credentials, the proxy injects them.
#[derive(Debug, Parser)]
#[command(name = "tap", version, about)]
pub(crate) struct Cli {
    /// Data directory (store, master key).
    #[arg(
        long,
        global = true,
        env = "TAP_DATA_DIR",
        default_value = "./tap-data"
    )]
    data_dir: PathBuf,
    /// Store URL: postgres://… (several replicas may share it) or sqlite://…;
    /// default is <data-dir>/tap.db. Its value is never shown in --help (it
    /// may hold a password).
    #[arg(long, global = true, env = "TAP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Team slug.
    #[arg(long, global = true, default_value = "default")]
    team: String,
    /// Machine-readable output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the data dir, master key, schema, team `default`, an owner and an admin token.
    Init {
        /// The owner's e-mail.
        #[arg(long)]
        admin_email: Option<String>,
    },
    /// Run the proxy.
    #[command(after_long_help = tap_proxy::env_vars::help_text())]
    Serve {
        /// Listen address (default 127.0.0.1:3100).
        #[arg(long, env = "TAP_LISTEN_ADDR")]
        listen: Option<String>,
    },
    /// Health of the store and the proxy, and counts.
    Status {
        /// Proxy URL to probe.
        #[arg(long)]
        proxy_url: Option<String>,
    },
    /// Add or update a credential.
    Add(AddArgs),
    /// Manage credentials.
    #[command(subcommand)]
    Cred(CredCmd),
    /// Manage agents.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Manage agent roles.
    #[command(subcommand)]
    Role(RoleCmd),
    /// Manage teams.
    #[command(subcommand)]
    Team(TeamCmd),
    /// Show the audit trail.
    Logs(LogsArgs),
    /// Send a real request through the running proxy as a throwaway agent.
    Test(TestArgs),
    /// Audit trail operations.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Per-credential approval policy.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Time-boxed auto-approvals.
    #[command(subcommand)]
    Grant(GrantCmd),
    /// Team members (humans).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Multi-account links: let another team's agent use this team's credentials.
    #[command(subcommand)]
    Link(LinkCmd),
    /// Admin API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Approval notification channels.
    #[command(subcommand)]
    Channel(ChannelCmd),
    /// Approvals waiting for a decision; `tap pending show TXN` shows one
    /// request in full before you decide.
    Pending {
        #[command(subcommand)]
        cmd: Option<PendingCmd>,
    },
    /// Approve a pending request.
    Approve {
        /// Transaction id.
        txn: String,
        /// Decide as this member (default: the owner `tap init` created).
        #[arg(long = "as")]
        as_email: Option<String>,
    },
    /// Deny a pending request.
    Deny {
        /// Transaction id.
        txn: String,
        /// Decide as this member (default: the owner `tap init` created).
        #[arg(long = "as")]
        as_email: Option<String>,
    },
    /// Apply pending store migrations; with --to, copy this SQLite
    /// deployment into an empty PostgreSQL database instead.
    Migrate {
        /// A `postgres://` URL of an empty database (stop the proxy first;
        /// the copy is verified: row counts and every team's audit chain).
        #[arg(long)]
        to: Option<String>,
    },
    /// The master key.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Write a consistent snapshot of the store to FILE while the proxy keeps
    /// serving (audit spool folded first). The master key is not in it: keep
    /// it apart.
    Backup {
        /// Where to write the snapshot (must not exist).
        file: PathBuf,
    },
    /// Restore a snapshot made by `tap backup` into an empty --data-dir.
    Restore {
        /// The snapshot file.
        file: PathBuf,
    },
    /// MCP server on stdin/stdout relaying to a running proxy's /mcp (the
    /// agent key comes from TAP_AGENT_KEY).
    Mcp(commands::mcp::McpArgs),
    /// Print an MCP client configuration snippet for the proxy's /mcp.
    McpConfig(commands::mcp::McpConfigArgs),
    /// Print a shell completion script (`tap completions bash > /etc/bash_completion.d/tap`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page, roff (`tap man | man -l -`).
    Man,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Credential name.
    pub(crate) name: String,
    /// Description shown to agents.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// direct or sidecar.
    #[arg(long, default_value = "direct")]
    pub(crate) connector: String,
    /// Base URL (for relative targets and agent hints).
    #[arg(long)]
    pub(crate) api_base: Option<String>,
    /// Targets are paths appended to --api-base.
    #[arg(long)]
    pub(crate) relative_target: bool,
    /// Authorization header format, default `Bearer {value}`.
    #[arg(long)]
    pub(crate) auth_header_format: Option<String>,
    /// Bind a header: HEADER=FORMAT (repeatable).
    #[arg(long = "bind", value_name = "HEADER=FORMAT")]
    pub(crate) bind: Vec<String>,
    /// Bind a query parameter: KEY=FORMAT (repeatable).
    #[arg(long = "bind-query", value_name = "KEY=FORMAT")]
    pub(crate) bind_query: Vec<String>,
    /// Host the value may be sent to (repeatable; comma-separated lists accepted).
    #[arg(long = "allowed-host", value_delimiter = ',')]
    pub(crate) allowed_host: Vec<String>,
    /// Send the value to any host (explicit opt-out of host binding).
    #[arg(long)]
    pub(crate) allow_any_host: bool,
    /// Read the value from stdin (a JSON object stores a multi-secret value).
    #[arg(long)]
    pub(crate) value_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCmd {
    /// Replace the master key: every data key and the MAC key re-wrapped in
    /// one transaction while proxies keep serving; the old key stops working.
    Rotate {
        /// Write the new key to this file (required when the key comes from
        /// TAP_MASTER_KEY, TAP_MASTER_KEY_FILE or TAP_MASTER_KEY_COMMAND;
        /// default: replace <data-dir>/master.key).
        #[arg(long)]
        new_key_file: Option<PathBuf>,
        /// Also give every team a new data key and re-seal every credential
        /// value under it, in the same transaction.
        #[arg(long)]
        reencrypt: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PendingCmd {
    /// Show one approval's whole request: body, headers, injected headers, digest.
    Show {
        /// Transaction id.
        txn: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CredCmd {
    /// List credentials.
    List,
    /// Show one credential (never its value).
    Show {
        /// Credential name.
        name: String,
    },
    /// Delete a credential.
    Rm {
        /// Credential name.
        name: String,
    },
    /// Replace a credential's value.
    SetValue {
        /// Credential name.
        name: String,
        /// Read the value from stdin.
        #[arg(long)]
        value_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCmd {
    /// Create an agent and print its key once.
    Create {
        /// Agent id.
        id: String,
        /// Role (repeatable).
        #[arg(long = "role", value_delimiter = ',')]
        role: Vec<String>,
        /// Credential granted directly (repeatable).
        #[arg(long = "credential", value_delimiter = ',')]
        credential: Vec<String>,
        /// Requests per rolling hour.
        #[arg(long)]
        rate_limit: Option<u32>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
    },
    /// List agents.
    List,
    /// Show an agent.
    Show {
        /// Agent id.
        id: String,
    },
    /// Enable an agent.
    Enable {
        /// Agent id.
        id: String,
    },
    /// Disable an agent (effective within 1 s).
    Disable {
        /// Agent id.
        id: String,
    },
    /// Delete an agent.
    Delete {
        /// Agent id.
        id: String,
    },
    /// Give an agent a new key; the old one stops working within 1 s.
    RotateKey {
        /// Agent id.
        id: String,
    },
    /// Grant a credential directly.
    Grant {
        /// Agent id.
        id: String,
        /// Credential name.
        credential: String,
    },
    /// Remove a direct credential grant.
    Ungrant {
        /// Agent id.
        id: String,
        /// Credential name.
        credential: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RoleCmd {
    /// Create a role.
    Create {
        /// Role name.
        name: String,
        /// Credential (repeatable).
        #[arg(long = "credential", value_delimiter = ',')]
        credential: Vec<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// Requests per rolling hour for each agent holding the role.
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// List roles.
    List,
    /// Show a role.
    Show {
        /// Role name.
        name: String,
    },
    /// Add a credential to a role.
    AddCredential {
        /// Role name.
        role: String,
        /// Credential name.
        credential: String,
    },
    /// Remove a credential from a role.
    RemoveCredential {
        /// Role name.
        role: String,
        /// Credential name.
        credential: String,
    },
    /// Delete a role.
    Delete {
        /// Role name.
        name: String,
    },
    /// Give an agent a role.
    Assign {
        /// Role name.
        role: String,
        /// Agent id.
        agent: String,
    },
    /// Take a role from an agent.
    Unassign {
        /// Role name.
        role: String,
        /// Agent id.
        agent: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TeamCmd {
    /// Create a team.
    Create {
        /// Team slug (lower-case letters, digits, dashes).
        slug: String,
    },
    /// List teams.
    List,
    /// Show the team (`--team`) and its settings.
    Show,
    /// Change the team's settings.
    Settings {
        /// gated or autonomous: what happens for credentials without a policy.
        #[arg(long)]
        default_approval_mode: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Keep printing new entries.
    #[arg(long)]
    pub(crate) follow: bool,
    /// Only this agent.
    #[arg(long)]
    pub(crate) agent: Option<String>,
    /// Only this credential.
    #[arg(long)]
    pub(crate) credential: Option<String>,
    /// Only this outcome: ok, error, refused or an error code.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Most entries shown.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Credential to test.
    pub(crate) credential: String,
    /// Target URL (default: the credential's api_base or first allowed host).
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// Method.
    #[arg(long, default_value = "GET")]
    pub(crate) method: String,
    /// Proxy URL (default from TAP_LISTEN_ADDR).
    #[arg(long)]
    pub(crate) proxy_url: Option<String>,
    /// Seconds to wait for a human when the request needs approval.
    #[arg(long, default_value_t = 120)]
    pub(crate) timeout: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCmd {
    /// Show a credential's policy.
    Show {
        /// Credential name.
        credential: String,
    },
    /// Set policy fields (fields not given keep their value; an empty list clears one).
    Set(PolicySetArgs),
    /// Remove the policy (the team default applies again).
    Clear {
        /// Credential name.
        credential: String,
    },
    /// Dry run: which decision and rule a request would get. Changes nothing.
    Test {
        /// Credential name.
        credential: String,
        /// Method.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Target URL.
        #[arg(long)]
        target: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PolicySetArgs {
    /// Credential name.
    pub(crate) credential: String,
    /// Methods forwarded without a human (comma-separated; empty clears).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub(crate) auto_approve_methods: Option<Vec<String>>,
    /// Methods that always need approval (comma-separated; empty clears).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub(crate) require_approval_methods: Option<Vec<String>>,
    /// URL patterns forwarded without a human, e.g. api.example.com/v1/* (empty clears).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub(crate) auto_approve_urls: Option<Vec<String>>,
    /// URL patterns that always need approval; they beat every auto rule (empty clears).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub(crate) require_approval_urls: Option<Vec<String>>,
    /// Only these members' e-mails may approve (empty clears; naming nobody means nobody).
    #[arg(long, value_delimiter = ',', num_args = 0..)]
    pub(crate) allowed_approvers: Option<Vec<String>>,
    /// Where approval requests go: web, terminal or telegram.
    #[arg(long)]
    pub(crate) approval_channel: Option<String>,
    /// Telegram chat for this credential's approvals (beats the team channel).
    #[arg(long)]
    pub(crate) telegram_chat_id: Option<String>,
    /// Approval needs a passkey (WebAuthn) assertion.
    #[arg(long)]
    pub(crate) require_passkey: bool,
    /// Approval no longer needs a passkey.
    #[arg(long)]
    pub(crate) no_require_passkey: bool,
    /// Distinct members who must approve (default 1).
    #[arg(long)]
    pub(crate) min_approvals: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GrantCmd {
    /// Create a grant.
    Create {
        /// Credential name.
        credential: String,
        /// Methods covered.
        #[arg(long, value_delimiter = ',', required = true)]
        methods: Vec<String>,
        /// Route pattern, e.g. /v1/messages or api.example.com/v1/*.
        #[arg(long)]
        route: String,
        /// Lifetime in minutes.
        #[arg(long)]
        ttl_minutes: u32,
        /// Use limit.
        #[arg(long)]
        max_uses: Option<u32>,
    },
    /// List grants.
    List,
    /// Revoke a grant.
    Revoke {
        /// Grant id (`tap grant list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MemberCmd {
    /// Add a member (a password is generated and printed once unless --password-stdin).
    Add {
        /// The member's e-mail.
        email: String,
        /// owner, admin, approver or viewer.
        #[arg(long)]
        role: String,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List members.
    List,
    /// Change a member's role.
    Role {
        /// The member's e-mail.
        email: String,
        /// owner, admin, approver or viewer.
        role: String,
    },
    /// Remove a member.
    Rm {
        /// The member's e-mail.
        email: String,
    },
    /// Assign a credential to an approver.
    Assign {
        /// The member's e-mail.
        email: String,
        /// Credential (repeatable).
        #[arg(long = "credential", value_delimiter = ',', required = true)]
        credential: Vec<String>,
    },
    /// Link a Telegram user to a member (their button clicks count as the
    /// member), or with --code make a one-time code to send the bot as /link CODE.
    LinkTelegram {
        /// The member's e-mail.
        email: String,
        /// The Telegram user id (the bot's /start answer shows it).
        #[arg(required_unless_present = "code", conflicts_with = "code")]
        telegram_user_id: Option<i64>,
        /// Make a one-time /link code instead (valid 15 minutes).
        #[arg(long)]
        code: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LinkCmd {
    /// Link an agent of another team (run in the linking team, `--team`).
    Add {
        /// Agent id in its home team.
        #[arg(long)]
        agent: String,
        /// The agent's home team.
        #[arg(long)]
        home_team: String,
        /// Role of this team the agent gets; without it the link grants nothing.
        #[arg(long)]
        role: Option<String>,
    },
    /// List links made by this team.
    List,
    /// Remove a link.
    Rm {
        /// Agent id in its home team.
        #[arg(long)]
        agent: String,
        /// The agent's home team.
        #[arg(long)]
        home_team: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ChannelCmd {
    /// Telegram channels.
    #[command(subcommand)]
    Telegram(TelegramCmd),
    /// List channels.
    List,
    /// Remove a channel.
    Rm {
        /// Channel name (`tap channel list`).
        name: String,
    },
    /// Send a test message (needs TELEGRAM_BOT_TOKEN).
    Test {
        /// Channel name (`tap channel list`).
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TelegramCmd {
    /// Set the team's Telegram chat.
    Set {
        /// Chat id (numeric, or @channelname).
        #[arg(long)]
        chat_id: String,
        /// Channel name.
        #[arg(long, default_value = "telegram")]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Create an admin API token for a member (printed once).
    Create {
        /// The member.
        #[arg(long)]
        member: String,
        /// A label.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens of this team's members (never the tokens themselves).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id (`tap token list`).
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Check the team's audit chain: every row's MAC and link up to the sealed
    /// head; exit 1 naming the first bad or missing row.
    Verify {
        /// An anchor saved earlier with `tap audit anchor`
        /// (`tap1:<team>:<rows>:<hex>`): also fail unless the chain extends it.
        #[arg(long, value_name = "ANCHOR")]
        anchor: Option<tap_core::audit::ChainAnchor>,
    },
    /// Print the head of the team's audit chain as an anchor to keep outside
    /// TAP (`tap1:<team>:<rows>:<hex>`), once the chain verifies.
    Anchor,
    /// Delete old audit rows of every team now (what TAP_AUDIT_RETENTION_DAYS
    /// does hourly): each chain keeps its last row and verifies from a sealed
    /// anchor afterwards.
    Prune {
        /// Delete rows older than this many days.
        #[arg(
            long,
            value_name = "N",
            conflicts_with = "before",
            required_unless_present = "before"
        )]
        days: Option<u32>,
        /// Delete rows stamped before this RFC 3339 time.
        #[arg(long, value_name = "TIME")]
        before: Option<String>,
    },
}

/// jemalloc instead of the platform allocator: at 16-64 connections a proxy
/// allocates and frees small buffers on two threads all the time, and glibc's
/// malloc took ~10 % of the CPU per request; jemalloc with one arena (set at
/// build time in `.cargo/config.toml`) spends 13-19 % less CPU per request and
/// peaks lower (docs/benchmarks.md).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Generated from the clap definitions; no runtime, no store.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "tap", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::Man::new(cmd).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the man page: {e}");
                    ExitCode::from(1)
                }
            };
        }
        _ => {}
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // TAP_WORKER_THREADS: how many runtime threads serve requests (default: one per core).
    if let Some(n) = std::env::var("TAP_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = cli.json;
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            let detail = one_line(&e);
            if json {
                // One error document for every command under --json.
                println!(
                    "{}",
                    serde_json::json!({"error": error_code(&e), "detail": detail})
                );
            }
            eprintln!("error: {detail}");
            ExitCode::from(1)
        }
    }
}

/// The stable code of a command's error: the admin service's reason code
/// when it came from there, else `store_unavailable` or `invalid_request`.
pub(crate) fn error_code(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(o) = cause.downcast_ref::<tap_proxy::ops::OpsError>() {
            return o.reason().code();
        }
        if let Some(s) = cause.downcast_ref::<tap_core::store::StoreError>() {
            return match s {
                tap_core::store::StoreError::NotFound(_) => "not_found",
                tap_core::store::StoreError::Conflict(_) => "conflict",
                _ => "store_unavailable",
            };
        }
    }
    "invalid_request"
}

fn one_line(e: &anyhow::Error) -> String {
    let mut s = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
    }
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every subcommand and every flag says what it does in `--help`.
    #[test]
    fn every_command_and_flag_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                let p = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(p.clone());
                }
                walk(sub, &p, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tap", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}

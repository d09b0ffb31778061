//! `tap-bench-seed`: fills an initialised TAP store with many agents and
//! credentials, for the scale run of the benchmark (`bench/run.sh --scale`).
//!
//! It goes through [`Admin`] like the CLI does (values sealed under the team
//! key, agent keys hashed), in one process, so 10,000 of each take seconds
//! instead of the minutes a loop of `tap` invocations would.
//!
//! Usage: `tap-bench-seed --data-dir DIR --allowed-host URL [--agents N]
//! [--credentials N] [--team SLUG]`. The master key is read from
//! `TAP_MASTER_KEY` or `DIR/master.key`, the store is `DIR/tap.db`. Agent
//! `bench-agent-NNNNN` is granted credential `bench-cred-NNNNN` (modulo the
//! credential count); the agent keys are not printed.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use tap_core::crypto::MasterKey;
use tap_core::store::Store;
use tap_proxy::ops::agents::CreateAgent;
use tap_proxy::ops::credentials::{PutCredential, ValueInput};
use tap_proxy::ops::{CredentialSpec, Ops as Admin};
use tap_store::SqliteStore;

/// Default number of agents and of credentials.
const DEFAULT_COUNT: usize = 10_000;
/// Requests to the store in flight at once (SQLite still serialises writers;
/// overlapping them hides the per-statement round trips).
const IN_FLIGHT: usize = 8;

struct Options {
    data_dir: std::path::PathBuf,
    allowed_host: String,
    agents: usize,
    credentials: usize,
    team: String,
}

fn parse_args() -> Result<Options, String> {
    let mut data_dir = std::env::var_os("TAP_DATA_DIR").map(std::path::PathBuf::from);
    let mut allowed_host = None;
    let (mut agents, mut credentials) = (DEFAULT_COUNT, DEFAULT_COUNT);
    let mut team = "default".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let count = |v: String| -> Result<usize, String> {
            v.parse().map_err(|_| format!("{v:?} is not a count"))
        };
        match a.as_str() {
            "--data-dir" => data_dir = Some(value()?.into()),
            "--allowed-host" => allowed_host = Some(value()?),
            "--agents" => agents = count(value()?)?,
            "--credentials" => credentials = count(value()?)?,
            "--team" => team = value()?,
            "-h" | "--help" => {
                return Err("usage: tap-bench-seed --data-dir DIR --allowed-host URL [--agents N] [--credentials N] [--team SLUG]".into());
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    if agents > 0 && credentials == 0 {
        return Err("agents need at least one credential to be granted".into());
    }
    Ok(Options {
        data_dir: data_dir.ok_or("--data-dir (or TAP_DATA_DIR) is required")?,
        allowed_host: allowed_host.ok_or("--allowed-host is required")?,
        agents,
        credentials,
        team,
    })
}

/// SplitMix64: distinct, secret-looking values without a RNG dependency.
fn token(state: &mut u64) -> String {
    let mut next = || {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    format!("sk_bench_{:016x}{:016x}", next(), next())
}

async fn seed(o: Options) -> Result<(), String> {
    let key_text = match std::env::var("TAP_MASTER_KEY") {
        Ok(k) if !k.trim().is_empty() => k,
        _ => {
            let path = o.data_dir.join("master.key");
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    let kek = MasterKey::parse(&key_text).map_err(|e| format!("master key: {e}"))?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&o.data_dir.join("tap.db"))
            .await
            .map_err(|e| format!("store: {e}"))?,
    );
    let admin = Admin::open(store, kek)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let scope = admin
        .operator_scope(&o.team, None)
        .await
        .map_err(|e| format!("team: {e}"))?;

    let started = Instant::now();
    let mut seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..o.credentials {
        let value = ValueInput::from_bytes(token(&mut seed).into_bytes());
        let spec = CredentialSpec {
            name: format!("bench-cred-{i:05}"),
            allowed_hosts: vec![o.allowed_host.clone()],
            ..CredentialSpec::default()
        };
        let (admin, scope) = (admin.clone(), scope.clone());
        tasks.spawn(async move {
            admin
                .put_credential(
                    &scope,
                    PutCredential {
                        spec,
                        keep_description: false,
                        value: Some(value),
                    },
                )
                .await
                .map(drop)
        });
        if tasks.len() >= IN_FLIGHT {
            join_one(&mut tasks).await?;
        }
    }
    while !tasks.is_empty() {
        join_one(&mut tasks).await?;
    }
    let creds_done = started.elapsed();
    for i in 0..o.agents {
        let (admin, scope) = (admin.clone(), scope.clone());
        let credential = format!("bench-cred-{:05}", i % o.credentials.max(1));
        tasks.spawn(async move {
            admin
                .create_agent(
                    &scope,
                    CreateAgent {
                        id: format!("bench-agent-{i:05}"),
                        credentials: Some(vec![credential]),
                        ..CreateAgent::default()
                    },
                )
                .await
                .map(drop)
        });
        if tasks.len() >= IN_FLIGHT {
            join_one(&mut tasks).await?;
        }
    }
    while !tasks.is_empty() {
        join_one(&mut tasks).await?;
    }
    println!(
        "seeded {} credentials in {:.1}s and {} agents in {:.1}s (team {})",
        o.credentials,
        creds_done.as_secs_f64(),
        o.agents,
        (started.elapsed() - creds_done).as_secs_f64(),
        scope.team.slug
    );
    Ok(())
}

async fn join_one(
    tasks: &mut tokio::task::JoinSet<Result<(), tap_proxy::ops::OpsError>>,
) -> Result<(), String> {
    match tasks.join_next().await {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(e.to_string()),
        Some(Err(e)) => Err(format!("task: {e}")),
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tap-bench-seed: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tap-bench-seed: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(seed(o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tap-bench-seed: {e}");
            ExitCode::FAILURE
        }
    }
}

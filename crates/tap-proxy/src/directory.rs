//! The in-memory view of configuration the hot path reads.
//!
//! Built from one [`Snapshot`] of the store, with values decrypted, host
//! bindings and policies compiled and scrubbers built. A watcher polls the
//! store's revision every [`crate::config::RELOAD_INTERVAL`] and swaps in a new
//! directory when it changed, so disable / delete / rotate made anywhere (the
//! CLI, another replica) take effect within a second, while a request never
//! waits on the store for configuration.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use tap_core::inject::{AuthBinding, injected_header_names};
use tap_core::model::{Connector, Credential, Grant, Member, Millis};
use tap_core::policy::{ApprovalMode, CompiledPolicy};
use tap_core::scrub::{LEAK_MIN_SECRET_LEN, ScrubSecret, Scrubber};
use tap_core::secret::{CredentialValue, Secret};
use tap_core::store::{Snapshot, Store, StoreError};
use tap_core::target::{AllowedHosts, HostPattern, TargetUrl};

use crate::keyring::Keyring;

/// A credential ready for use. Invariant: `value` is the decrypted value or why it is unusable.
#[derive(Debug)]
pub struct CredentialEntry {
    /// Internal id of the team that owns it.
    pub team_internal_id: i64,
    /// Name.
    pub name: String,
    /// Description for agents.
    pub description: String,
    /// Connector.
    pub connector: Connector,
    /// Parsed `api_base`.
    pub api_base: Option<TargetUrl>,
    /// `api_base` as configured.
    pub api_base_raw: Option<String>,
    /// Targets are paths.
    pub relative_target: bool,
    /// Authorization format.
    pub auth_header_format: Option<String>,
    /// Bindings.
    pub bindings: Vec<AuthBinding>,
    /// Compiled host binding.
    pub allowed_hosts: AllowedHosts,
    /// Host binding as configured.
    pub allowed_hosts_raw: Vec<String>,
    /// The value: `Ok(None)` when unset, `Err` when it failed to decrypt.
    pub value: Result<Option<CredentialValue>, String>,
    /// Headers this credential injects (lower-case); stripped from agent input.
    pub injected_headers: Vec<String>,
    /// Scrubs this credential's secrets: built on first use (most of a large
    /// store's credentials answer no request between two reloads).
    scrubber: OnceLock<Arc<Scrubber>>,
    /// Finds this credential's secrets, ASCII lower-cased, in header names
    /// (which HTTP lower-cases on the way): built on first use.
    name_scrubber: OnceLock<Arc<Scrubber>>,
    /// The value is a signing bundle (`algorithm` + `private_key`).
    pub signing_key: bool,
    /// Version (last change by an admin); an approval is refused when it
    /// moved. A refresh token the token endpoint rotates keeps it.
    pub updated_at: Millis,
    /// Tells apart the sealed values of one version: a rotated refresh
    /// token replaces the value without moving `updated_at`.
    sealed_tag: u64,
}

/// A team's configuration.
#[derive(Debug)]
pub struct TeamEntry {
    /// Internal id.
    pub internal_id: i64,
    /// Slug.
    pub slug: String,
    /// Default approval mode.
    pub mode: ApprovalMode,
    /// Credentials by name.
    pub credentials: HashMap<String, Arc<CredentialEntry>>,
    /// Policies by credential.
    pub policies: HashMap<String, Arc<CompiledPolicy>>,
    /// Finds any team secret of at least 8 bytes in agent input.
    pub leak_detector: Arc<Scrubber>,
    /// Scrubs every team secret (audit rows of refused requests, error bodies).
    pub all_secrets: Arc<Scrubber>,
    /// Members with their roles and approver assignments.
    pub members: Vec<Member>,
    /// Live grants by credential.
    pub grants: HashMap<String, Vec<Grant>>,
}

/// An agent ready for authentication.
#[derive(Debug)]
pub struct AgentEntry {
    /// Home team internal id.
    pub team_internal_id: i64,
    /// Home team slug.
    pub team: String,
    /// Agent id.
    pub id: String,
    /// Disabled agents are refused.
    pub enabled: bool,
    /// Keyed hash of the key.
    pub key_hash: String,
    /// Credentials usable, directly or through roles.
    pub credentials: HashSet<String>,
    /// Requests per rolling hour.
    pub rate_limit_per_hour: Option<u32>,
    /// Credentials usable in other teams through links (team internal id → credentials;
    /// a link without a role maps to an empty set).
    pub links: HashMap<i64, HashSet<String>>,
}

impl AgentEntry {
    /// Credentials this agent may use in `team`; `None` when it is not linked there.
    pub fn credentials_in(&self, team: i64) -> Option<&HashSet<String>> {
        if team == self.team_internal_id {
            Some(&self.credentials)
        } else {
            self.links.get(&team)
        }
    }
}

/// The whole view.
#[derive(Debug, Default)]
pub struct Directory {
    /// Store revision this view was built from.
    pub revision: i64,
    /// Teams by internal id.
    pub teams: HashMap<i64, Arc<TeamEntry>>,
    /// Team internal ids by slug.
    pub team_ids: HashMap<String, i64>,
    /// Agents by keyed hash of their key.
    pub agents_by_key: HashMap<String, Arc<AgentEntry>>,
}

impl Directory {
    /// A team by slug.
    pub fn team_by_slug(&self, slug: &str) -> Option<&Arc<TeamEntry>> {
        self.team_ids.get(slug).and_then(|id| self.teams.get(id))
    }

    /// Builds a view, reusing unchanged credential entries of `previous`.
    pub fn build(snapshot: Snapshot, keys: &Keyring, previous: Option<&Directory>) -> Directory {
        let mut teams = HashMap::new();
        let mut team_ids = HashMap::new();
        let mut creds_by_team: HashMap<i64, Vec<Credential>> = HashMap::new();
        for c in snapshot.credentials {
            creds_by_team.entry(c.team_internal_id).or_default().push(c);
        }
        let mut policies_by_team: HashMap<i64, HashMap<String, Arc<CompiledPolicy>>> =
            HashMap::new();
        for (team, cred, policy) in snapshot.policies {
            match CompiledPolicy::new(&policy) {
                Ok(p) => {
                    policies_by_team
                        .entry(team)
                        .or_default()
                        .insert(cred, Arc::new(p));
                }
                Err(e) => {
                    // Fail closed: a policy that does not compile requires approval for everything.
                    tracing::error!(credential = %cred, error = %e, "stored policy does not compile; requiring approval");
                    let strict = tap_core::policy::Policy {
                        require_approval_urls: vec!["/".into()],
                        min_approvals: 1,
                        ..Default::default()
                    };
                    if let Ok(p) = CompiledPolicy::new(&strict) {
                        policies_by_team
                            .entry(team)
                            .or_default()
                            .insert(cred, Arc::new(p));
                    }
                }
            }
        }
        let mut members_by_team: HashMap<i64, Vec<Member>> = HashMap::new();
        for (team, m) in snapshot.members {
            members_by_team.entry(team).or_default().push(m);
        }
        let mut grants_by_team: HashMap<i64, HashMap<String, Vec<Grant>>> = HashMap::new();
        for g in snapshot.grants {
            grants_by_team
                .entry(g.team_internal_id)
                .or_default()
                .entry(g.credential.clone())
                .or_default()
                .push(g);
        }
        for team in snapshot.teams {
            let prev_team = previous.and_then(|d| d.teams.get(&team.internal_id));
            let dek = keys.team_dek(&team);
            let mut credentials = HashMap::new();
            let mut changed = prev_team.is_none();
            for c in creds_by_team.remove(&team.internal_id).unwrap_or_default() {
                if let Some(prev) = prev_team.and_then(|t| t.credentials.get(&c.name))
                    && prev.updated_at == c.updated_at
                    && prev.sealed_tag == sealed_tag(c.sealed_value.as_deref())
                {
                    credentials.insert(c.name.clone(), Arc::clone(prev));
                    continue;
                }
                changed = true;
                let value = match (&c.sealed_value, &dek) {
                    (None, _) => Ok(None),
                    (Some(blob), Ok(dek)) => dek
                        .open(team.internal_id, &c.name, blob)
                        .map(|s| Some(CredentialValue::from_stored(s.expose().to_vec(), c.value_is_json)))
                        .map_err(|e| {
                            tracing::error!(team = %team.slug, credential = %c.name, error = %e, "credential value does not decrypt");
                            e.to_string()
                        }),
                    (Some(_), Err(e)) => Err(e.to_string()),
                };
                let entry = credential_entry(c, value);
                credentials.insert(entry.name.clone(), Arc::new(entry));
            }
            if let Some(prev) = prev_team {
                changed |= prev.credentials.len() != credentials.len();
            }
            let (leak_detector, all_secrets) = match prev_team {
                Some(prev) if !changed => (
                    Arc::clone(&prev.leak_detector),
                    Arc::clone(&prev.all_secrets),
                ),
                _ => team_scrubbers(&credentials),
            };
            team_ids.insert(team.slug.clone(), team.internal_id);
            teams.insert(
                team.internal_id,
                Arc::new(TeamEntry {
                    internal_id: team.internal_id,
                    slug: team.slug,
                    mode: team.default_approval_mode,
                    credentials,
                    policies: policies_by_team
                        .remove(&team.internal_id)
                        .unwrap_or_default(),
                    leak_detector,
                    all_secrets,
                    members: members_by_team
                        .remove(&team.internal_id)
                        .unwrap_or_default(),
                    grants: grants_by_team.remove(&team.internal_id).unwrap_or_default(),
                }),
            );
        }
        let mut role_creds: HashMap<(i64, String), Vec<String>> = HashMap::new();
        let mut role_limits: HashMap<(i64, String), u32> = HashMap::new();
        for r in snapshot.roles {
            if let Some(l) = r.rate_limit_per_hour {
                role_limits.insert((r.team_internal_id, r.name.clone()), l);
            }
            role_creds.insert((r.team_internal_id, r.name), r.credentials);
        }
        let mut links: HashMap<(i64, String), HashMap<i64, HashSet<String>>> = HashMap::new();
        for l in snapshot.links {
            let creds: HashSet<String> = l
                .role
                .as_ref()
                .and_then(|r| role_creds.get(&(l.team_internal_id, r.clone())))
                .map(|cs| cs.iter().cloned().collect())
                .unwrap_or_default();
            links
                .entry((l.home_team_internal_id, l.agent_id))
                .or_default()
                .insert(l.team_internal_id, creds);
        }
        let mut agents_by_key = HashMap::new();
        for a in snapshot.agents {
            let mut credentials: HashSet<String> = a.credentials.into_iter().collect();
            for role in &a.roles {
                if let Some(cs) = role_creds.get(&(a.team_internal_id, role.clone())) {
                    credentials.extend(cs.iter().cloned());
                }
            }
            let agent_links = links
                .remove(&(a.team_internal_id, a.id.clone()))
                .unwrap_or_default();
            agents_by_key.insert(
                a.key_hash.clone(),
                Arc::new(AgentEntry {
                    links: agent_links,
                    team_internal_id: a.team_internal_id,
                    team: a.team,
                    id: a.id,
                    enabled: a.enabled,
                    key_hash: a.key_hash,
                    credentials,
                    // The strictest of the agent's own limit and its roles' limits.
                    rate_limit_per_hour: a
                        .roles
                        .iter()
                        .filter_map(|r| role_limits.get(&(a.team_internal_id, r.clone())).copied())
                        .chain(a.rate_limit_per_hour)
                        .min(),
                }),
            );
        }
        Directory {
            revision: snapshot.revision,
            teams,
            team_ids,
            agents_by_key,
        }
    }
}

impl CredentialEntry {
    /// The scrubber of this credential's secrets (built once, on first use).
    pub fn scrubber(&self) -> Arc<Scrubber> {
        Arc::clone(self.scrubber.get_or_init(|| {
            let secrets: Vec<(String, Secret)> = match &self.value {
                Ok(Some(v)) => v.secrets(&self.name),
                _ => Vec::new(),
            };
            Arc::new(Scrubber::new(secrets.iter().map(|(label, s)| {
                ScrubSecret {
                    label,
                    value: s.expose(),
                }
            })))
        }))
    }
}

impl CredentialEntry {
    /// Finds this credential's secrets in an (always lower-case) header name:
    /// the secrets ASCII lower-cased, with every variant. A mixed-case secret
    /// echoed as a header name arrives lower-cased, which the plain scrubber
    /// would miss.
    pub fn header_name_scrubber(&self) -> Arc<Scrubber> {
        Arc::clone(self.name_scrubber.get_or_init(|| {
            let secrets: Vec<(String, Secret)> = match &self.value {
                Ok(Some(v)) => v
                    .secrets(&self.name)
                    .into_iter()
                    .map(|(label, s)| (label, Secret::new(s.expose().to_ascii_lowercase())))
                    .collect(),
                _ => Vec::new(),
            };
            Arc::new(Scrubber::new(secrets.iter().map(|(label, s)| {
                ScrubSecret {
                    label,
                    value: s.expose(),
                }
            })))
        }))
    }
}

fn is_signing_bundle(value: &CredentialValue) -> bool {
    value.is_json() && value.field("algorithm").is_some() && value.field("private_key").is_some()
}

/// A digest of a sealed value (ciphertext under a fresh nonce each time it
/// is sealed): equal tags mean the entry built from it still holds.
fn sealed_tag(sealed: Option<&[u8]>) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    sealed.hash(&mut h);
    h.finish()
}

fn credential_entry(
    c: Credential,
    value: Result<Option<CredentialValue>, String>,
) -> CredentialEntry {
    let allowed_hosts = if c.allow_any_host {
        AllowedHosts::Any
    } else {
        AllowedHosts::List(
            c.allowed_hosts
                .iter()
                .filter_map(|h| match HostPattern::parse(h) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        tracing::error!(credential = %c.name, error = %e, "stored host pattern does not parse; ignoring it");
                        None
                    }
                })
                .collect(),
        )
    };
    let api_base = c.api_base.as_deref().and_then(|b| TargetUrl::parse(b).ok());
    let signing_key = matches!(&value, Ok(Some(v)) if is_signing_bundle(v));
    CredentialEntry {
        injected_headers: injected_header_names(&c.auth_bindings),
        team_internal_id: c.team_internal_id,
        name: c.name,
        description: c.description,
        connector: c.connector,
        api_base,
        api_base_raw: c.api_base,
        relative_target: c.relative_target,
        auth_header_format: c.auth_header_format,
        bindings: c.auth_bindings,
        allowed_hosts,
        allowed_hosts_raw: c.allowed_hosts,
        value,
        scrubber: OnceLock::new(),
        name_scrubber: OnceLock::new(),
        signing_key,
        updated_at: c.updated_at,
        sealed_tag: sealed_tag(c.sealed_value.as_deref()),
    }
}

fn team_scrubbers(
    credentials: &HashMap<String, Arc<CredentialEntry>>,
) -> (Arc<Scrubber>, Arc<Scrubber>) {
    let mut secrets: Vec<(String, Secret)> = Vec::new();
    for c in credentials.values() {
        if let Ok(Some(v)) = &c.value {
            secrets.extend(v.secrets(&c.name));
        }
    }
    scrubbers_for(&secrets)
}

/// The team's leak detector and all-secrets scrubber for `secrets`.
fn scrubbers_for(secrets: &[(String, Secret)]) -> (Arc<Scrubber>, Arc<Scrubber>) {
    let all = Arc::new(Scrubber::new(secrets.iter().map(|(l, s)| ScrubSecret {
        label: l,
        value: s.expose(),
    })));
    // Usually every secret is long enough for leak blocking: then both are the
    // same compiled set, shared (for a team of 10,000 credentials each one is large).
    if secrets
        .iter()
        .all(|(_, s)| s.expose().len() >= LEAK_MIN_SECRET_LEN)
    {
        return (Arc::clone(&all), all);
    }
    let leak = Scrubber::leak_detector(secrets.iter().map(|(l, s)| ScrubSecret {
        label: l,
        value: s.expose(),
    }));
    (Arc::new(leak), all)
}

/// The current directory, swapped atomically on reload.
#[derive(Debug)]
pub struct DirectoryHandle {
    current: RwLock<Arc<Directory>>,
}

impl DirectoryHandle {
    /// Wraps a first directory.
    pub fn new(d: Directory) -> Self {
        Self {
            current: RwLock::new(Arc::new(d)),
        }
    }

    /// The current view (cheap: one Arc clone).
    pub fn get(&self) -> Arc<Directory> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    fn set(&self, d: Directory) {
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(d),
            Err(p) => *p.into_inner() = Arc::new(d),
        }
    }

    /// Rebuilds when the store's revision moved. Returns true when it did.
    ///
    /// The build (decrypting values, compiling scrubbers: seconds for a store of
    /// 10,000 credentials) runs on the blocking pool, never on a runtime worker.
    pub async fn refresh(
        &self,
        store: &dyn Store,
        keys: &Arc<Keyring>,
    ) -> Result<bool, StoreError> {
        let rev = store.revision().await?;
        let current = self.get();
        if rev == current.revision {
            if keys.behind() {
                let _ = keys.follow(store).await;
            }
            return Ok(false);
        }
        // After `tap key rotate` elsewhere: take the new master key if the
        // key source gives it; data keys opened before stay usable either way.
        if let Err(e) = keys.follow(store).await {
            tracing::warn!(error = %e, "master key not followed");
        }
        let snap = store.snapshot().await?;
        let keys = Arc::clone(keys);
        let d = tokio::task::spawn_blocking(move || Directory::build(snap, &keys, Some(&current)))
            .await
            .map_err(|_| StoreError::Unavailable("configuration rebuild failed".into()))?;
        self.set(d);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Vec<(String, Secret)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("c{i}"), Secret::new(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn long_secrets_share_one_compiled_set() {
        let (leak, all) = scrubbers_for(&secrets(&["long-secret-one", "long-secret-two"]));
        assert!(Arc::ptr_eq(&leak, &all));
        assert_eq!(leak.find(b"x long-secret-two y"), Some("c1"));
        assert_eq!(all.scrub(b"long-secret-one").0, b"[REDACTED:c0]");
    }

    #[test]
    fn a_short_secret_is_scrubbed_but_not_blocked_as_a_leak() {
        let (leak, all) = scrubbers_for(&secrets(&["long-secret-one", "pin4"]));
        assert!(!Arc::ptr_eq(&leak, &all));
        assert_eq!(leak.find(b"my pin4 here"), None);
        assert_eq!(leak.find(b"long-secret-one"), Some("c0"));
        assert_eq!(all.scrub(b"my pin4 here").0, b"my [REDACTED:c1] here");
    }
}

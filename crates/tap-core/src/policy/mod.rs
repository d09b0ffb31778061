//! The policy engine (SPEC §5): decides whether a request proceeds at once or
//! waits for a human, and names the reason that is audited.
//!
//! Evaluation is pure — no I/O, no clock (time is passed in) — and works on
//! pre-compiled patterns ([`CompiledPolicy`]) and a pre-normalised target
//! ([`NormalizedTarget`]), so one evaluation is a handful of segment
//! comparisons.
//!
//! Safety rule of thumb: `require` patterns match liberally and `auto`
//! patterns strictly, so any doubt about how the upstream reads a path ends in
//! an approval, never in an unexpected auto-approval.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod normalize;
mod pattern;
#[cfg(test)]
mod tests;

pub use normalize::NormalizedTarget;
pub use pattern::{MAX_PATTERN_LEN, UrlPattern};

/// Longest method or pattern echoed back in an error message.
const MAX_ECHO_LEN: usize = 64;

/// Errors of policy parsing and validation. Messages are lower-case and never
/// hold a secret (only methods, patterns and mode names, clipped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The method is not an RFC 9110 token.
    #[error("invalid method `{method}`: not an rfc 9110 token")]
    InvalidMethod {
        /// The offending method, clipped.
        method: String,
    },
    /// `TRACE` or `CONNECT`: never forwarded (`method_not_allowed`).
    #[error("method `{method}` is not allowed")]
    MethodNotAllowed {
        /// The refused method, upper-case.
        method: String,
    },
    /// A URL pattern (policy list or grant route scope) does not parse.
    #[error("invalid url pattern `{pattern}`: {reason}")]
    InvalidUrlPattern {
        /// The offending pattern, clipped.
        pattern: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// `min_approvals` is 0.
    #[error("min_approvals must be at least 1")]
    MinApprovalsTooLow,
    /// Not `gated` or `autonomous`.
    #[error("unknown approval mode `{value}`: expected `gated` or `autonomous`")]
    UnknownApprovalMode {
        /// The offending value, clipped.
        value: String,
    },
    /// Not one of the §14 policy reason spellings.
    #[error("unknown policy reason `{value}`")]
    UnknownPolicyReason {
        /// The offending value, clipped.
        value: String,
    },
}

/// Cuts `s` to at most [`MAX_ECHO_LEN`] bytes on a character boundary.
fn clip(s: &str) -> String {
    let mut end = s.len().min(MAX_ECHO_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// True when `s` is a non-empty RFC 9110 token.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Normalises an agent-supplied method (`X-TAP-Method`).
///
/// Trims surrounding whitespace; empty means `GET`; the rest must be an RFC
/// 9110 token and is upper-cased. `TRACE` and `CONNECT` (any case) are
/// refused with [`PolicyError::MethodNotAllowed`]. The result is what both
/// policy and the upstream see.
pub fn normalize_method(raw: &str) -> Result<String, PolicyError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok("GET".to_owned());
    }
    if !is_token(trimmed) {
        return Err(PolicyError::InvalidMethod {
            method: clip(trimmed),
        });
    }
    let method = trimmed.to_ascii_uppercase();
    if method == "TRACE" || method == "CONNECT" {
        return Err(PolicyError::MethodNotAllowed { method });
    }
    Ok(method)
}

/// True for the read methods `GET` and `HEAD` only (expects an upper-cased
/// method: anything else, `get` included, counts as a write).
pub fn is_read(method: &str) -> bool {
    method == "GET" || method == "HEAD"
}

/// Upper-cases and checks one policy method entry.
fn policy_method(raw: &str) -> Result<String, PolicyError> {
    let trimmed = raw.trim();
    if is_token(trimmed) {
        Ok(trimmed.to_ascii_uppercase())
    } else {
        Err(PolicyError::InvalidMethod {
            method: clip(trimmed),
        })
    }
}

fn default_min_approvals() -> u32 {
    1
}

/// The policy stored per (team, credential), as the admin API and the store
/// exchange it. Missing fields take their defaults (`min_approvals` 1,
/// everything else empty/false).
///
/// Invariant once [`validate`](Policy::validate)d: `min_approvals >= 1`,
/// every URL pattern parses and every method is an RFC 9110 token.
/// `allowed_approvers`: `None` means every eligible member, any list (`[]`
/// included) restricts to those members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    /// Methods that proceed without approval (`HEAD` is covered by `GET`).
    pub auto_approve_methods: Vec<String>,
    /// Methods that need approval.
    pub require_approval_methods: Vec<String>,
    /// Patterns that proceed without approval (strict matching).
    pub auto_approve_urls: Vec<String>,
    /// Patterns that always need approval (liberal matching; beats
    /// everything else, grants included).
    pub require_approval_urls: Vec<String>,
    /// Member emails allowed to approve; `None` = every eligible member.
    pub allowed_approvers: Option<Vec<String>>,
    /// Named notification channel for approvals.
    pub approval_channel: Option<String>,
    /// Telegram chat overriding the team channel.
    pub telegram_chat_id: Option<String>,
    /// Approval needs a fresh passkey assertion; grants never apply.
    pub require_passkey: bool,
    /// Distinct members needed to approve; at least 1. Above 1, grants never
    /// apply.
    #[serde(default = "default_min_approvals")]
    pub min_approvals: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            auto_approve_methods: Vec::new(),
            require_approval_methods: Vec::new(),
            auto_approve_urls: Vec::new(),
            require_approval_urls: Vec::new(),
            allowed_approvers: None,
            approval_channel: None,
            telegram_chat_id: None,
            require_passkey: false,
            min_approvals: default_min_approvals(),
        }
    }
}

impl Policy {
    /// Checks the invariants: `min_approvals >= 1`, every URL pattern parses,
    /// every method is an RFC 9110 token (any case).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_approvals < 1 {
            return Err(PolicyError::MinApprovalsTooLow);
        }
        for m in self
            .auto_approve_methods
            .iter()
            .chain(&self.require_approval_methods)
        {
            policy_method(m)?;
        }
        for p in self
            .auto_approve_urls
            .iter()
            .chain(&self.require_approval_urls)
        {
            UrlPattern::parse(p)?;
        }
        Ok(())
    }

    /// The form to store: validated, methods trimmed and upper-cased,
    /// patterns and approvers trimmed, exact duplicates dropped (first kept),
    /// empty channel names turned into `None`.
    pub fn normalized(&self) -> Result<Policy, PolicyError> {
        self.validate()?;
        let methods = |list: &[String]| -> Result<Vec<String>, PolicyError> {
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for m in list {
                let m = policy_method(m)?;
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            Ok(out)
        };
        let trimmed = |list: &[String]| -> Vec<String> {
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for item in list.iter().map(|s| s.trim()) {
                if !out.iter().any(|o| o == item) {
                    out.push(item.to_owned());
                }
            }
            out
        };
        let non_empty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Ok(Policy {
            auto_approve_methods: methods(&self.auto_approve_methods)?,
            require_approval_methods: methods(&self.require_approval_methods)?,
            auto_approve_urls: trimmed(&self.auto_approve_urls),
            require_approval_urls: trimmed(&self.require_approval_urls),
            allowed_approvers: self.allowed_approvers.as_deref().map(trimmed),
            approval_channel: non_empty(&self.approval_channel),
            telegram_chat_id: non_empty(&self.telegram_chat_id),
            require_passkey: self.require_passkey,
            min_approvals: self.min_approvals,
        })
    }
}

/// A [`Policy`] with its patterns parsed and methods upper-cased once, ready
/// for [`evaluate`].
///
/// Invariant: only built from a policy that passes [`Policy::validate`].
#[derive(Clone, Debug)]
pub struct CompiledPolicy {
    policy: Policy,
    auto_methods: Vec<String>,
    require_methods: Vec<String>,
    auto_urls: Vec<UrlPattern>,
    require_urls: Vec<UrlPattern>,
}

impl CompiledPolicy {
    /// Validates and compiles `policy` (which need not be
    /// [`normalized`](Policy::normalized): methods are upper-cased here).
    pub fn new(policy: &Policy) -> Result<CompiledPolicy, PolicyError> {
        if policy.min_approvals < 1 {
            return Err(PolicyError::MinApprovalsTooLow);
        }
        let methods = |list: &[String]| -> Result<Vec<String>, PolicyError> {
            list.iter().map(|m| policy_method(m)).collect()
        };
        let patterns = |list: &[String]| -> Result<Vec<UrlPattern>, PolicyError> {
            list.iter().map(|p| UrlPattern::parse(p)).collect()
        };
        Ok(CompiledPolicy {
            auto_methods: methods(&policy.auto_approve_methods)?,
            require_methods: methods(&policy.require_approval_methods)?,
            auto_urls: patterns(&policy.auto_approve_urls)?,
            require_urls: patterns(&policy.require_approval_urls)?,
            policy: policy.clone(),
        })
    }

    /// The policy this was compiled from, as given.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// True when grants may turn this policy's approvals into proceeds
    /// (no passkey requirement, a single approver).
    fn grants_allowed(&self) -> bool {
        !self.policy.require_passkey && self.policy.min_approvals <= 1
    }
}

/// A team's default for credentials without a policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    /// Reads (GET, HEAD) proceed, everything else needs approval. The default
    /// for every new team.
    #[default]
    Gated,
    /// Everything proceeds.
    Autonomous,
}

impl ApprovalMode {
    /// `gated` or `autonomous`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalMode::Gated => "gated",
            ApprovalMode::Autonomous => "autonomous",
        }
    }
}

impl fmt::Display for ApprovalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalMode {
    type Err = PolicyError;

    /// Accepts `gated` / `autonomous`, ASCII case-insensitive, trimmed.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("gated") {
            Ok(ApprovalMode::Gated)
        } else if s.eq_ignore_ascii_case("autonomous") {
            Ok(ApprovalMode::Autonomous)
        } else {
            Err(PolicyError::UnknownApprovalMode { value: clip(s) })
        }
    }
}

/// A grant as policy evaluation needs to see it (borrowed from the store's
/// row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantView<'a> {
    /// Grant id, reported as `grant:<id>`.
    pub id: &'a str,
    /// Methods covered (`GET` also covers `HEAD`); compared case-insensitively.
    pub methods: &'a [String],
    /// A URL pattern, matched strictly like `auto_approve_urls`. A scope that
    /// does not parse covers nothing.
    pub route_scope: &'a str,
    /// Unix seconds; the grant applies only while `now < expires_at`.
    pub expires_at: i64,
    /// Remaining uses; `None` is unlimited, `Some(0)` covers nothing.
    pub uses_left: Option<u32>,
}

impl GrantView<'_> {
    /// True when this grant turns an approval for `method` on `target` at
    /// `now` into a proceed: unexpired, uses left, method covered, route
    /// matched strictly.
    fn covers(&self, method: &str, target: &NormalizedTarget, now: i64) -> bool {
        now < self.expires_at
            && self.uses_left != Some(0)
            && method_entry(self.methods, method, str::eq_ignore_ascii_case).is_some()
            && pattern::grant_scope_matches(self.route_scope, target)
    }
}

/// Outcome of policy evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Forward at once.
    Proceed,
    /// Wait for a human decision.
    Approval,
}

impl Decision {
    /// `proceed` or `approval`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Proceed => "proceed",
            Decision::Approval => "approval",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a decision was taken; audited as `policy_reason` with the exact §14
/// spellings (see [`as_str`](PolicyReason::as_str)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PolicyReason {
    /// No policy, team `gated`, GET/HEAD: proceed.
    TeamDefaultGatedRead,
    /// No policy, team `gated`, any other method: approval.
    TeamDefaultGatedWrite,
    /// No policy, team `autonomous`: proceed.
    TeamDefaultAutonomous,
    /// A `require_approval_urls` pattern matched: approval (no grant applies).
    RequireApprovalUrl,
    /// An `auto_approve_urls` pattern matched: proceed.
    AutoApproveUrl,
    /// The method is in `auto_approve_methods`: proceed.
    AutoApproveMethod,
    /// The method is in `require_approval_methods`: approval.
    RequireApprovalMethod,
    /// Nothing matched: approval.
    RequireApprovalDefault,
    /// The grant with this id turned an approval into a proceed.
    Grant(String),
}

const GRANT_PREFIX: &str = "grant:";

impl PolicyReason {
    /// The audited spelling: `team_default_gated_read`,
    /// `team_default_gated_write`, `team_default_autonomous`,
    /// `require_approval_url`, `auto_approve_url`, `auto_approve_method`,
    /// `require_approval_method`, `require_approval_default` or
    /// `grant:<id>`. Borrowed for all but grants.
    pub fn as_str(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            PolicyReason::TeamDefaultGatedRead => "team_default_gated_read",
            PolicyReason::TeamDefaultGatedWrite => "team_default_gated_write",
            PolicyReason::TeamDefaultAutonomous => "team_default_autonomous",
            PolicyReason::RequireApprovalUrl => "require_approval_url",
            PolicyReason::AutoApproveUrl => "auto_approve_url",
            PolicyReason::AutoApproveMethod => "auto_approve_method",
            PolicyReason::RequireApprovalMethod => "require_approval_method",
            PolicyReason::RequireApprovalDefault => "require_approval_default",
            PolicyReason::Grant(id) => return Cow::Owned(format!("{GRANT_PREFIX}{id}")),
        })
    }
}

impl fmt::Display for PolicyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyReason::Grant(id) => write!(f, "{GRANT_PREFIX}{id}"),
            other => f.write_str(&other.as_str()),
        }
    }
}

impl FromStr for PolicyReason {
    type Err = PolicyError;

    /// Parses the exact spellings of [`PolicyReason::as_str`]; `grant:` needs
    /// a non-empty id.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "team_default_gated_read" => PolicyReason::TeamDefaultGatedRead,
            "team_default_gated_write" => PolicyReason::TeamDefaultGatedWrite,
            "team_default_autonomous" => PolicyReason::TeamDefaultAutonomous,
            "require_approval_url" => PolicyReason::RequireApprovalUrl,
            "auto_approve_url" => PolicyReason::AutoApproveUrl,
            "auto_approve_method" => PolicyReason::AutoApproveMethod,
            "require_approval_method" => PolicyReason::RequireApprovalMethod,
            "require_approval_default" => PolicyReason::RequireApprovalDefault,
            other => match other.strip_prefix(GRANT_PREFIX) {
                Some(id) if !id.is_empty() => PolicyReason::Grant(id.to_owned()),
                _ => return Err(PolicyError::UnknownPolicyReason { value: clip(s) }),
            },
        })
    }
}

impl Serialize for PolicyReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for PolicyReason {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The result of [`evaluate`]; serialises as the `tap policy test` JSON
/// (`decision`, `policy_reason`, `rule`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Proceed or wait for approval.
    pub decision: Decision,
    /// The audited reason; always consistent with `decision`.
    #[serde(rename = "policy_reason")]
    pub reason: PolicyReason,
    /// What matched, as written in the policy: the URL pattern, the method
    /// entry, or the grant's route scope; `None` for team defaults and
    /// `require_approval_default`.
    pub rule: Option<String>,
}

impl Evaluation {
    fn new(decision: Decision, reason: PolicyReason, rule: Option<&str>) -> Self {
        Evaluation {
            decision,
            reason,
            rule: rule.map(str::to_owned),
        }
    }
}

/// Everything one evaluation looks at.
#[derive(Clone, Copy, Debug)]
pub struct EvalInput<'a> {
    /// The method, already [`normalize_method`]ed (upper-case).
    pub method: &'a str,
    /// The normalised target.
    pub target: &'a NormalizedTarget,
    /// The credential's policy; `None` means the team default applies.
    pub policy: Option<&'a CompiledPolicy>,
    /// The team's default approval mode.
    pub team_mode: ApprovalMode,
    /// Grants on this credential (any order; the first that covers wins).
    pub grants: &'a [GrantView<'a>],
    /// Current time, unix seconds.
    pub now: i64,
}

/// The entry of `list` that covers `method` (`GET` also covers `HEAD`).
fn method_entry<'l>(
    list: &'l [String],
    method: &str,
    eq: fn(&str, &str) -> bool,
) -> Option<&'l str> {
    let find = |wanted: &str| {
        list.iter()
            .find(|m| eq(m.as_str(), wanted))
            .map(String::as_str)
    };
    find(method).or_else(|| if method == "HEAD" { find("GET") } else { None })
}

fn exact_eq(a: &str, b: &str) -> bool {
    a == b
}

/// Steps 1–6 of SPEC §5, first match wins.
fn decide(input: &EvalInput<'_>) -> Evaluation {
    use Decision::{Approval, Proceed};
    let Some(policy) = input.policy else {
        return match input.team_mode {
            ApprovalMode::Autonomous => {
                Evaluation::new(Proceed, PolicyReason::TeamDefaultAutonomous, None)
            }
            ApprovalMode::Gated if is_read(input.method) => {
                Evaluation::new(Proceed, PolicyReason::TeamDefaultGatedRead, None)
            }
            ApprovalMode::Gated => {
                Evaluation::new(Approval, PolicyReason::TeamDefaultGatedWrite, None)
            }
        };
    };
    if let Some(p) = policy
        .require_urls
        .iter()
        .find(|p| p.matches_require(input.target))
    {
        return Evaluation::new(Approval, PolicyReason::RequireApprovalUrl, Some(p.as_str()));
    }
    if let Some(p) = policy
        .auto_urls
        .iter()
        .find(|p| p.matches_auto(input.target))
    {
        return Evaluation::new(Proceed, PolicyReason::AutoApproveUrl, Some(p.as_str()));
    }
    if let Some(m) = method_entry(&policy.auto_methods, input.method, exact_eq) {
        return Evaluation::new(Proceed, PolicyReason::AutoApproveMethod, Some(m));
    }
    if let Some(m) = method_entry(&policy.require_methods, input.method, exact_eq) {
        return Evaluation::new(Approval, PolicyReason::RequireApprovalMethod, Some(m));
    }
    Evaluation::new(Approval, PolicyReason::RequireApprovalDefault, None)
}

/// Evaluates SPEC §5: steps 1–6 (first match wins), then step 7 (grants).
///
/// Invariants: pure and deterministic; a `require_approval_urls` hit is always
/// [`Decision::Approval`]; a grant only ever turns an approval into a proceed,
/// and never for `require_passkey` policies, `require_approval_urls` hits or
/// `min_approvals > 1`; `auto` patterns and grants never match a target that
/// is not [auto-matchable](NormalizedTarget::is_auto_matchable). Allocates
/// only the returned rule and grant id.
pub fn evaluate(input: &EvalInput<'_>) -> Evaluation {
    let base = decide(input);
    match base.decision {
        Decision::Proceed => base,
        Decision::Approval => {
            let grants_allowed = base.reason != PolicyReason::RequireApprovalUrl
                && input.policy.is_none_or(CompiledPolicy::grants_allowed);
            let grant = grants_allowed
                .then(|| {
                    input
                        .grants
                        .iter()
                        .find(|g| g.covers(input.method, input.target, input.now))
                })
                .flatten();
            match grant {
                Some(g) => Evaluation::new(
                    Decision::Proceed,
                    PolicyReason::Grant(g.id.to_owned()),
                    Some(g.route_scope.trim()),
                ),
                None => base,
            }
        }
    }
}

//! Errors of the admin service, and their one mapping onto [`Reason`].

use axum::response::{IntoResponse, Response};
use tap_core::approval::GateError;
use tap_core::store::StoreError;

use crate::error::{ProxyError, Reason};
use crate::keyring::KeyringError;

/// Errors of administrative operations; messages are for operators and never hold secrets.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// No or an invalid credential for the admin API.
    #[error("missing or invalid bearer token; log in with POST /login or use an admin token")]
    Unauthorized,
    /// The member's role does not allow the operation, or they are not in the team.
    #[error("{0}")]
    Forbidden(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// Missing object.
    #[error("{0} not found")]
    NotFound(String),
    /// Invariant or uniqueness conflict.
    #[error("{0}")]
    Conflict(String),
    /// The approval gate refused a decision.
    #[error(transparent)]
    Gate(GateError),
    /// A notification channel is not configured.
    #[error("{0}")]
    ChannelUnavailable(String),
    /// A notification channel could not deliver.
    #[error("{0}")]
    Channel(String),
    /// Keys.
    #[error(transparent)]
    Keys(#[from] KeyringError),
    /// Store.
    #[error("{0}")]
    Store(StoreError),
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(what) => Self::Conflict(what),
            other => Self::Store(other),
        }
    }
}

impl From<GateError> for OpsError {
    fn from(e: GateError) -> Self {
        match e {
            GateError::Store(s) => Self::from(s),
            other => Self::Gate(other),
        }
    }
}

/// Result alias.
pub type OpsResult<T> = Result<T, OpsError>;

impl OpsError {
    /// The reason that decides status, code and fix.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Unauthorized => Reason::Unauthorized,
            Self::Forbidden(_) => Reason::Forbidden,
            Self::Invalid(_) => Reason::InvalidRequest,
            Self::NotFound(_) => Reason::NotFound,
            Self::Conflict(_) => Reason::Conflict,
            Self::Gate(g) => match g {
                GateError::NotFound(_) => Reason::NotFound,
                GateError::NotPending(_) => Reason::NotPending,
                GateError::AlreadyVoted(_) => Reason::AlreadyDecided,
                GateError::NotEligible(_) | GateError::NotRouted(_) => Reason::Forbidden,
                GateError::PasskeyRequired => Reason::PasskeyRequired,
                GateError::Store(_) => Reason::StoreUnavailable,
            },
            Self::ChannelUnavailable(_) => Reason::ChannelUnavailable,
            Self::Channel(_) => Reason::ChannelError,
            Self::Keys(_) => Reason::Internal,
            Self::Store(_) => Reason::StoreUnavailable,
        }
    }
}

impl From<OpsError> for ProxyError {
    fn from(e: OpsError) -> Self {
        let detail = match &e {
            // The cause is logged once; the caller learns only what failed.
            OpsError::Keys(k) => {
                tracing::error!(error = %k, "key error in an admin operation");
                "key material problem".to_owned()
            }
            OpsError::Store(s) => {
                tracing::error!(error = %s, "store error in an admin operation");
                "the store is unavailable".to_owned()
            }
            other => other.to_string(),
        };
        ProxyError::new(e.reason(), detail)
    }
}

impl IntoResponse for OpsError {
    fn into_response(self) -> Response {
        ProxyError::from(self).into_response()
    }
}

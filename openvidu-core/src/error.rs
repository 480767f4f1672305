//! Errors of the domain, one enum per concern, each knowing the HTTP status OpenVidu answers.

use thiserror::Error;

use crate::model::{ConnectionStatus, RecordingStatus};

/// A malformed identifier.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// The text is not a valid id of this kind.
    #[error("invalid {kind} id {value:?}: must match ^[a-zA-Z0-9_-]+$")]
    Invalid {
        /// Which kind of id.
        kind: &'static str,
        /// The rejected text.
        value: String,
    },
}

/// A request body or parameter that OpenVidu would refuse.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Wrong type, unknown enum value, missing mandatory field, malformed id: 400.
    #[error("{0}")]
    BadRequest(String),
    /// Well-typed but out of range (recording parameters): 422.
    #[error("{0}")]
    Unprocessable(String),
}

impl RequestError {
    /// The HTTP status OpenVidu answers.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unprocessable(_) => 422,
        }
    }
}

impl From<IdError> for RequestError {
    fn from(e: IdError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

/// A state transition the rules refuse.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleError {
    /// A connection can become active only once, from pending.
    #[error("connection is already {0:?}")]
    ConnectionNotPending(ConnectionStatus),
    /// The role may not do this.
    #[error("role {role:?} may not {action}")]
    NotAllowed {
        /// The participant's role.
        role: crate::model::OpenViduRole,
        /// What it tried.
        action: &'static str,
    },
    /// A recording cannot move between these statuses.
    #[error("recording cannot go from {from:?} to {to:?}")]
    RecordingTransition {
        /// Current status.
        from: RecordingStatus,
        /// Requested status.
        to: RecordingStatus,
    },
}

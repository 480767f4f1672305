//! The participant's error type.

use std::time::Duration;

use openvidu_core::id::{ConnectionId, StreamId};
use thiserror::Error;

/// Everything that can go wrong for a [`Participant`](super::Participant).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ParticipantError {
    /// The token is not an OpenVidu token URL (`ws[s]://host[:port]?sessionId=…&token=…`).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// OpenVidu answered a request with a JSON-RPC error (see [`ParticipantError::rpc_code`]).
    #[error("OpenVidu refused {method}: {message} (code {code})")]
    Rpc {
        /// The JSON-RPC method, e.g. `joinRoom`.
        method: String,
        /// OpenVidu's error code (spec §2.6), e.g. 401 for an invalid token, 40007 for an
        /// unknown session in `connect`.
        code: i64,
        /// The server's message.
        message: String,
    },
    /// The WebSocket could not be opened, or closed while a request was waiting.
    #[error("signalling socket: {0}")]
    Socket(String),
    /// No answer to a request in time.
    #[error("no answer to {method} within {timeout:?}")]
    Timeout {
        /// The JSON-RPC method.
        method: String,
        /// How long the participant waited.
        timeout: Duration,
    },
    /// The server answered with something this client cannot read.
    #[error("unexpected answer to {method}: {message}")]
    Protocol {
        /// The JSON-RPC method.
        method: String,
        /// What was wrong.
        message: String,
    },
    /// The WebRTC stack failed (peer connection, SDP, tracks).
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// The media source could not be read (e.g. a missing or malformed IVF file).
    #[error("media source: {0}")]
    MediaSource(String),
    /// The options cannot work (e.g. an unreadable certificate, nothing to publish).
    #[error("invalid participant configuration: {0}")]
    Config(String),
    /// `publish` while already publishing.
    #[error("already publishing{}", .0.as_ref().map(|s| format!(" {s}")).unwrap_or_default())]
    AlreadyPublishing(Option<StreamId>),
    /// `unpublish` without a published stream.
    #[error("not publishing")]
    NotPublishing,
    /// The stream is not (or no longer) published in the session.
    #[error("stream {0} is not published in this session")]
    StreamNotFound(StreamId),
    /// `unsubscribe` from a publisher this participant does not receive.
    #[error("not subscribed to {0}")]
    NotSubscribed(ConnectionId),
    /// The participant left, was evicted, or its socket could not be re-established.
    #[error("the participant is no longer in the session")]
    Closed,
}

impl ParticipantError {
    /// The OpenVidu JSON-RPC error code when the server refused the request, else `None`.
    pub fn rpc_code(&self) -> Option<i64> {
        match self {
            Self::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn webrtc(e: impl std::fmt::Display) -> Self {
        Self::WebRtc(e.to_string())
    }
}

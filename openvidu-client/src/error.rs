//! The one error type of the client.

use thiserror::Error;

/// Longest server-provided text kept in [`Error::Http`]'s message.
const MAX_MESSAGE_CHARS: usize = 300;

/// Everything that can go wrong talking to OpenVidu.
///
/// The Java client splits these into `OpenViduHttpException` (an unexpected HTTP status, see
/// [`Error::status`]) and `OpenViduJavaClientException` (everything else). No variant ever
/// contains the secret: requests authenticate through a header, and the URL kept by the client
/// has no user info.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a status this operation does not expect (`OpenViduHttpException`).
    #[error("OpenVidu answered HTTP {status}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Http {
        /// The HTTP status code, e.g. 404 for an unknown session.
        status: u16,
        /// The `message` of OpenVidu's error body when it sent one, else the body's text, else the
        /// status's reason phrase (OpenVidu answers many errors with an empty body).
        message: String,
    },
    /// The request could not be sent or its answer not received (connection refused, TLS
    /// failure, timeout, …).
    #[error("could not talk to OpenVidu: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered with a success status but a body this client cannot read.
    #[error("unexpected answer to {route}: {source}")]
    Decode {
        /// The request, e.g. `GET /openvidu/api/sessions`.
        route: String,
        /// What was wrong with the body.
        #[source]
        source: serde_json::Error,
    },
    /// The client could not be set up: a malformed URL, an unreadable certificate, a TLS
    /// configuration reqwest refuses.
    #[error("invalid OpenVidu client configuration: {0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of an [`Error::Http`] (like `OpenViduHttpException.getStatus()`), `None`
    /// for other errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when the request timed out (see [`crate::OpenViduBuilder::timeout`]).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Transport(e) if e.is_timeout())
    }

    /// True when no connection to the server could be made.
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Transport(e) if e.is_connect())
    }

    /// The error for an unexpected `status` answered with `body`.
    pub(crate) fn from_status(status: u16, body: &[u8]) -> Self {
        Self::Http { status, message: error_message(status, body) }
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Self::Transport(e)
    }
}

/// What to say about an error answer: OpenVidu's `message` member, or the (trimmed, bounded)
/// text body, or the reason phrase of `status`.
fn error_message(status: u16, body: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(serde_json::Value::String(m)) = map.get("message")
    {
        return bounded(m);
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() {
        return bounded(text);
    }
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or_default().to_owned()
}

fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests;

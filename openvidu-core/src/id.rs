//! Identifier newtypes and their generation, exactly as OpenVidu 2.20 formats them (spec §1.2).
//!
//! Text becomes an id only through `parse` (validated) at the edge; new ids are minted through an
//! [`IdGenerator`], which tests can replace to get stable ids.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::IdError;

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// True when `s` matches OpenVidu's custom id regex `^[a-zA-Z0-9_-]+$`.
pub fn is_valid_custom_id(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Validates `s` and makes it an id.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if is_valid_custom_id(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Invalid { kind: $kind, value: s.to_owned() })
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A session id: generated `ses_…` or a custom id matching `^[a-zA-Z0-9_-]+$`.
    SessionId, "session"
);
string_id!(
    /// A connection id: `con_…` for WebRTC connections, `ipc_…` for IP cameras.
    ConnectionId, "connection"
);
string_id!(
    /// A stream id: `str_<TYPE>_<4 chars>_<owner connection id>`.
    StreamId, "stream"
);
string_id!(
    /// A recording id: `<sessionId>` then `<sessionId>-1`, `<sessionId>-2`, ….
    RecordingId, "recording"
);
string_id!(
    /// A media node id: `media_…`.
    MediaNodeId, "media node"
);
string_id!(
    /// The secret part of a token: `tok_` + 1 uppercase letter + 15 alphanumerics.
    TokenId, "token"
);

impl StreamId {
    /// The connection that owns this stream: stream ids end in the owner's connection id.
    pub fn owner(&self) -> Option<ConnectionId> {
        ["_con_", "_ipc_"].iter().find_map(|sep| self.0.find(sep).map(|i| ConnectionId(self.0[i + 1..].to_owned())))
    }
}

impl RecordingId {
    /// The recording id for the `n`-th recording of a session id (`0` = the bare session id).
    pub fn nth(session: &SessionId, n: u32) -> Self {
        if n == 0 { Self(session.0.clone()) } else { Self(format!("{}-{n}", session.0)) }
    }
}

/// The reserved connection id of the COMPOSED recording module.
pub const RECORDER_CONNECTION_ID: &str = "RECORDER";

/// The kind of video a stream carries, as in `typeOfVideo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TypeOfVideo {
    /// A camera.
    Camera,
    /// A screen share.
    Screen,
    /// A custom MediaStreamTrack.
    Custom,
    /// An IP camera.
    Ipcam,
}

/// A source of random characters from which every id is minted.
///
/// The default [`RandomIds`] uses the thread-local CSPRNG; tests may supply a deterministic one.
pub trait IdGenerator: Send + Sync {
    /// One uppercase ASCII letter followed by `rest` characters of `[A-Za-z0-9]`.
    fn random_suffix(&self, rest: usize) -> String;

    /// A new generated session id (`ses_` + 1 uppercase + 9 alphanumerics).
    fn session_id(&self) -> SessionId {
        SessionId(format!("ses_{}", self.random_suffix(9)))
    }
    /// A new connection id (`con_` + 1 uppercase + 9 alphanumerics).
    fn connection_id(&self) -> ConnectionId {
        ConnectionId(format!("con_{}", self.random_suffix(9)))
    }
    /// A new token id (`tok_` + 1 uppercase + 15 alphanumerics).
    fn token_id(&self) -> TokenId {
        TokenId(format!("tok_{}", self.random_suffix(15)))
    }
    /// A new media node id (`media_` + 1 uppercase + 7 alphanumerics).
    fn media_node_id(&self) -> MediaNodeId {
        MediaNodeId(format!("media_{}", self.random_suffix(7)))
    }
    /// A new stream id for a stream of `owner`; `video` is `None` for audio-only streams.
    fn stream_id(&self, video: Option<TypeOfVideo>, owner: &ConnectionId) -> StreamId {
        let kind = match video {
            None => "MIC",
            Some(TypeOfVideo::Camera) => "CAM",
            Some(TypeOfVideo::Screen) => "SCR",
            Some(TypeOfVideo::Custom) => "CUS",
            Some(TypeOfVideo::Ipcam) => "IPC",
        };
        StreamId(format!("str_{kind}_{}_{owner}", self.random_suffix(3)))
    }
}

/// Ids from the thread-local cryptographically secure generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomIds;

impl IdGenerator for RandomIds {
    fn random_suffix(&self, rest: usize) -> String {
        use rand::Rng;
        let mut rng = rand::rng();
        let mut s = String::with_capacity(rest + 1);
        s.push(UPPER[rng.random_range(0..UPPER.len())] as char);
        for _ in 0..rest {
            s.push(ALNUM[rng.random_range(0..ALNUM.len())] as char);
        }
        s
    }
}

/// Deterministic ids for tests: a counter rendered in the same alphabet.
#[derive(Debug, Default)]
pub struct SequentialIds(std::sync::atomic::AtomicU64);

impl IdGenerator for SequentialIds {
    fn random_suffix(&self, rest: usize) -> String {
        let mut n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut s = vec![b'0'; rest];
        for slot in s.iter_mut().rev() {
            *slot = ALNUM[(n % ALNUM.len() as u64) as usize];
            n /= ALNUM.len() as u64;
        }
        let mut out = String::with_capacity(rest + 1);
        out.push('A');
        out.push_str(std::str::from_utf8(&s).unwrap_or_default());
        out
    }
}

/// A participant token as handed to clients:
/// `<wsUrl>?sessionId=<sessionId>&token=tok_…` (spec §1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The WebSocket base URL (`wss://host[:port]`, no path).
    pub ws_url: String,
    /// The session the token belongs to.
    pub session_id: SessionId,
    /// The secret token id.
    pub token_id: TokenId,
}

impl Token {
    /// The `wsUrl` OpenVidu derives from a public URL: `https://`→`wss://`, `http://`→`ws://`,
    /// trailing `/` removed.
    pub fn ws_url_from_public_url(public_url: &str) -> String {
        let trimmed = public_url.trim_end_matches('/');
        if let Some(rest) = trimmed.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = trimmed.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            trimmed.to_owned()
        }
    }

    /// Parses a full token URL, or a bare `tok_…` id (then `ws_url` is empty and `session_id` must
    /// come from elsewhere, so this returns an error for bare ids).
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let invalid = || IdError::Invalid { kind: "token", value: s.to_owned() };
        let (base, query) = s.split_once('?').ok_or_else(invalid)?;
        let mut session = None;
        let mut token = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sessionId", v)) => session = Some(SessionId::parse(v)?),
                Some(("token", v)) => token = Some(TokenId::parse(v)?),
                _ => {}
            }
        }
        Ok(Self {
            ws_url: base.to_owned(),
            session_id: session.ok_or_else(invalid)?,
            token_id: token.ok_or_else(invalid)?,
        })
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}?sessionId={}&token={}", self.ws_url, self.session_id, self.token_id)
    }
}

#[cfg(test)]
mod tests;

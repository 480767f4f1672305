//! The shared state of a master node behind the [`Store`] trait.
//!
//! Every method is one atomic transition, named after it, that takes what the caller expects and
//! returns a conflict as a typed outcome; callers never stitch a read and a write. The in-memory
//! [`MemoryStore`] is the default; [`RedisStore`], with the same contract, serves several masters
//! (each method is one Lua script or one compare-and-set of a session document there). Both apply
//! the same per-session rules, written once in `transitions`.

mod memory;
mod redis;
mod transitions;

use std::sync::Arc;

use async_trait::async_trait;
use openvidu_core::id::{ConnectionId, SessionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, OpenViduRole, Publisher, Session, Subscriber};
use thiserror::Error;

pub use self::redis::RedisStore;
pub(crate) use self::redis::{RedisConn, RedisTarget};
pub use memory::MemoryStore;

/// A session with its connections, in creation order.
///
/// Cloning one is cheap whatever the size of the session: the connections are shared, and a store
/// copies them only when it changes a session while an older snapshot of it is still held. Every
/// signalling call reads the session, so a copy per read would make a join storm quadratic.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSnapshot {
    /// The session.
    pub session: Session,
    /// Its connections, pending and active.
    pub connections: Arc<Vec<Connection>>,
}

impl SessionSnapshot {
    /// The connection with this id.
    pub fn connection(&self, id: &ConnectionId) -> Option<&Connection> {
        self.connections.iter().find(|c| &c.id == id)
    }

    /// Active connections.
    pub fn active_connections(&self) -> impl Iterator<Item = &Connection> {
        self.connections.iter().filter(|c| c.active.is_some())
    }
}

/// Why a store operation did not happen.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// No session with this id.
    #[error("session {0} not found")]
    SessionNotFound(SessionId),
    /// A session with this id exists already.
    #[error("session {0} already exists")]
    SessionExists(SessionId),
    /// No connection with this id in the session.
    #[error("connection {0} not found")]
    ConnectionNotFound(ConnectionId),
    /// No usable token with this id.
    #[error("token not found or already used")]
    TokenNotFound,
    /// No such stream.
    #[error("stream {0} not found")]
    StreamNotFound(StreamId),
    /// The backend failed (Redis down, …); the operation may not have happened.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// What an update changed.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionUpdate {
    /// The connection after the update.
    pub connection: Connection,
    /// Whether anything changed.
    pub changed: bool,
}

/// The state shared by the masters. Each method is atomic.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Adds a new session; fails with `SessionExists` if the id is taken.
    async fn create_session(&self, session: Session) -> Result<(), StoreError>;

    /// A session and its connections.
    async fn session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError>;

    /// Every session.
    async fn sessions(&self) -> Result<Vec<SessionSnapshot>, StoreError>;

    /// Removes a session with its connections and tokens; returns what was removed.
    async fn remove_session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError>;

    /// Removes every never-activated session created before `created_before`; returns them.
    async fn remove_inactive_sessions(&self, created_before: Millis) -> Result<Vec<Session>, StoreError>;

    /// Adds a pending connection, usable with `token`.
    async fn create_connection(&self, connection: Connection, token: TokenId) -> Result<(), StoreError>;

    /// Removes a connection (pending or active); its token can no longer be used.
    async fn remove_connection(&self, session: &SessionId, connection: &ConnectionId)
    -> Result<Connection, StoreError>;

    /// Uses a token: its pending connection becomes active, the session active. Once only.
    async fn activate_connection(
        &self,
        session: &SessionId,
        token: &TokenId,
        info: ActiveInfo,
    ) -> Result<Connection, StoreError>;

    /// Changes a connection's role and/or record flag.
    async fn update_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        role: Option<OpenViduRole>,
        record: Option<bool>,
    ) -> Result<ConnectionUpdate, StoreError>;

    /// Adds a published stream to an active connection.
    async fn add_publisher(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        publisher: Publisher,
    ) -> Result<(), StoreError>;

    /// Removes a published stream and every subscription to it.
    async fn remove_publisher(&self, session: &SessionId, stream: &StreamId) -> Result<Unpublished, StoreError>;

    /// Records that `connection` receives a stream.
    async fn add_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        subscriber: Subscriber,
    ) -> Result<(), StoreError>;

    /// Removes a subscription.
    async fn remove_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        stream: &StreamId,
    ) -> Result<Subscriber, StoreError>;

    /// Sets whether the session is being recorded; returns the previous value, so that
    /// `set_recording(s, true) == Ok(false)` claims the session's one recording atomically.
    async fn set_recording(&self, session: &SessionId, recording: bool) -> Result<bool, StoreError>;

    /// Changes a stream's media options; returns the owner.
    async fn set_stream_property(
        &self,
        session: &SessionId,
        stream: &StreamId,
        property: StreamProperty,
    ) -> Result<ConnectionId, StoreError>;
}

/// A change of a published stream's media options (`streamPropertyChanged`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamProperty {
    /// Audio muted/unmuted.
    AudioActive(bool),
    /// Video muted/unmuted.
    VideoActive(bool),
    /// New `{"width":W,"height":H}`.
    VideoDimensions(String),
}

/// What removing a publisher took with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Unpublished {
    /// The owner.
    pub owner: ConnectionId,
    /// The publisher entry.
    pub publisher: Publisher,
    /// Connections that were subscribed to it (their entries are gone too).
    pub subscribers: Vec<ConnectionId>,
}

#[cfg(test)]
pub(crate) mod conformance;

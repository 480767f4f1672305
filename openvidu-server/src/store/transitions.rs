//! The per-session transitions of the [`Store`](super::Store) contract as pure functions over one
//! session's whole state ([`SessionDoc`]), so that every store implementation applies the same
//! rules: the in-memory store under its lock, the Redis store between a read and a
//! compare-and-set.
//!
//! Contract of every transition: one that fails changes nothing. The in-memory store applies them
//! to the live session and the Redis store applies a queued group of them one after the other, so
//! a refusal must not leave half a change behind.

use std::collections::HashMap;
use std::sync::Arc;

use openvidu_core::id::{ConnectionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, OpenViduRole, Publisher, Session, Subscriber};
use openvidu_core::rules;

use super::{ConnectionUpdate, SessionSnapshot, StoreError, StreamProperty, Unpublished};

/// Everything a store keeps about one session: the snapshot callers see, plus the usable tokens
/// of its pending connections (at most one per connection).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SessionDoc {
    /// The session and its connections.
    pub snapshot: SessionSnapshot,
    /// Usable tokens → the pending connection each one activates.
    tokens: HashMap<TokenId, ConnectionId>,
    /// The same pairs the other way round, so a connection's token is found without a scan.
    token_of: HashMap<ConnectionId, TokenId>,
}

impl SessionDoc {
    /// A new session without connections.
    pub fn new(session: Session) -> Self {
        Self::from_parts(SessionSnapshot { session, connections: Arc::default() }, [])
    }

    /// A document from its snapshot and its usable tokens (token, connection).
    pub fn from_parts(snapshot: SessionSnapshot, tokens: impl IntoIterator<Item = (TokenId, ConnectionId)>) -> Self {
        let mut doc = Self { snapshot, tokens: HashMap::new(), token_of: HashMap::new() };
        for (token, connection) in tokens {
            doc.add_token(token, connection);
        }
        doc
    }

    /// The usable token of a pending connection.
    pub fn token_of(&self, connection: &ConnectionId) -> Option<&TokenId> {
        self.token_of.get(connection)
    }

    fn add_token(&mut self, token: TokenId, connection: ConnectionId) {
        if let Some(old) = self.token_of.insert(connection.clone(), token.clone()) {
            self.tokens.remove(&old);
        }
        if let Some(previous) = self.tokens.insert(token, connection) {
            self.token_of.remove(&previous);
        }
    }

    fn remove_token_of(&mut self, connection: &ConnectionId) {
        if let Some(token) = self.token_of.remove(connection) {
            self.tokens.remove(&token);
        }
    }

    /// The connections, to be changed: copied first if an older snapshot still shares them.
    fn connections_mut(&mut self) -> &mut Vec<Connection> {
        Arc::make_mut(&mut self.snapshot.connections)
    }

    fn connection_mut(&mut self, connection: &ConnectionId) -> Result<&mut Connection, StoreError> {
        let at = self.position(connection).ok_or_else(|| StoreError::ConnectionNotFound(connection.clone()))?;
        Ok(&mut self.connections_mut()[at])
    }

    /// Where a connection is in the session's list.
    fn position(&self, connection: &ConnectionId) -> Option<usize> {
        self.snapshot.connections.iter().position(|c| &c.id == connection)
    }

    /// Where a published stream is: its owner's index, and its index among the owner's publishers.
    fn publisher_position(&self, stream: &StreamId) -> Option<(usize, usize)> {
        self.snapshot
            .connections
            .iter()
            .enumerate()
            .find_map(|(at, c)| Some((at, c.publishers.iter().position(|p| &p.stream_id == stream)?)))
    }
}

/// Whether the garbage collector takes this session: never activated, created before the threshold.
pub(crate) fn collectable(doc: &SessionDoc, created_before: Millis) -> bool {
    !doc.snapshot.session.active && doc.snapshot.session.created_at < created_before
}

/// Orders a listing of sessions as `Store::sessions` returns it: by creation time, then id.
pub(crate) fn sort_sessions(all: &mut [SessionSnapshot]) {
    all.sort_by(|a, b| (a.session.created_at, &a.session.id).cmp(&(b.session.created_at, &b.session.id)));
}

/// Adds a pending connection, usable with `token`.
pub(crate) fn create_connection(
    doc: &mut SessionDoc,
    connection: Connection,
    token: TokenId,
) -> Result<(), StoreError> {
    doc.add_token(token, connection.id.clone());
    doc.connections_mut().push(connection);
    Ok(())
}

/// Removes a connection; any token of it dies with it.
pub(crate) fn remove_connection(doc: &mut SessionDoc, connection: &ConnectionId) -> Result<Connection, StoreError> {
    let idx = doc.position(connection).ok_or_else(|| StoreError::ConnectionNotFound(connection.clone()))?;
    let removed = doc.connections_mut().remove(idx);
    doc.remove_token_of(connection);
    Ok(removed)
}

/// Uses a token: its pending connection becomes active and the session active. Once only.
pub(crate) fn activate_connection(
    doc: &mut SessionDoc,
    token: &TokenId,
    info: ActiveInfo,
) -> Result<Connection, StoreError> {
    let cid = doc.tokens.get(token).cloned().ok_or(StoreError::TokenNotFound)?;
    let conn = doc.connection_mut(&cid).map_err(|_| StoreError::TokenNotFound)?;
    rules::activate(conn, info).map_err(|_| StoreError::TokenNotFound)?;
    let activated = conn.clone();
    doc.snapshot.session.active = true;
    doc.remove_token_of(&cid);
    Ok(activated)
}

/// Changes a connection's role and/or record flag.
pub(crate) fn update_connection(
    doc: &mut SessionDoc,
    connection: &ConnectionId,
    role: Option<OpenViduRole>,
    record: Option<bool>,
) -> Result<ConnectionUpdate, StoreError> {
    let conn = doc.connection_mut(connection)?;
    let before = (conn.properties.role, conn.properties.record);
    if let Some(r) = role {
        conn.properties.role = r;
    }
    if let Some(r) = record {
        conn.properties.record = r;
    }
    let changed = before != (conn.properties.role, conn.properties.record);
    Ok(ConnectionUpdate { connection: conn.clone(), changed })
}

/// Sets the recording flag; returns the previous value.
pub(crate) fn set_recording(doc: &mut SessionDoc, recording: bool) -> Result<bool, StoreError> {
    Ok(std::mem::replace(&mut doc.snapshot.session.recording, recording))
}

/// Adds (or replaces) a published stream of a connection.
pub(crate) fn add_publisher(
    doc: &mut SessionDoc,
    connection: &ConnectionId,
    publisher: Publisher,
) -> Result<(), StoreError> {
    let c = doc.connection_mut(connection)?;
    c.publishers.retain(|p| p.stream_id != publisher.stream_id);
    c.publishers.push(publisher);
    Ok(())
}

/// Removes a published stream and every subscription to it.
pub(crate) fn remove_publisher(doc: &mut SessionDoc, stream: &StreamId) -> Result<Unpublished, StoreError> {
    let (at, i) = doc.publisher_position(stream).ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
    let connections = doc.connections_mut();
    let owner = &mut connections[at];
    let (owner, publisher) = (owner.id.clone(), owner.publishers.remove(i));
    let mut subscribers = Vec::new();
    for c in connections {
        let before = c.subscribers.len();
        c.subscribers.retain(|sub| &sub.stream_id != stream);
        if c.subscribers.len() != before {
            subscribers.push(c.id.clone());
        }
    }
    Ok(Unpublished { owner, publisher, subscribers })
}

/// Adds (or replaces) a subscription of a connection.
pub(crate) fn add_subscriber(
    doc: &mut SessionDoc,
    connection: &ConnectionId,
    subscriber: Subscriber,
) -> Result<(), StoreError> {
    let c = doc.connection_mut(connection)?;
    c.subscribers.retain(|x| x.stream_id != subscriber.stream_id);
    c.subscribers.push(subscriber);
    Ok(())
}

/// Removes a subscription.
pub(crate) fn remove_subscriber(
    doc: &mut SessionDoc,
    connection: &ConnectionId,
    stream: &StreamId,
) -> Result<Subscriber, StoreError> {
    let c = doc.connection_mut(connection)?;
    let i = c
        .subscribers
        .iter()
        .position(|x| &x.stream_id == stream)
        .ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
    Ok(c.subscribers.remove(i))
}

/// Changes a stream's media options; returns the owner.
pub(crate) fn set_stream_property(
    doc: &mut SessionDoc,
    stream: &StreamId,
    property: StreamProperty,
) -> Result<ConnectionId, StoreError> {
    let (at, i) = doc.publisher_position(stream).ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
    let c = &mut doc.connections_mut()[at];
    let m = &mut c.publishers[i].media_options;
    match property {
        StreamProperty::AudioActive(v) => m.audio_active = v,
        StreamProperty::VideoActive(v) => m.video_active = v,
        StreamProperty::VideoDimensions(d) => m.video_dimensions = Some(d),
    }
    Ok(c.id.clone())
}

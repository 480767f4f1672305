//! The in-memory [`Store`]: one map behind one lock, so every method is trivially atomic.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use openvidu_core::id::{ConnectionId, SessionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, OpenViduRole, Publisher, Session, Subscriber};
use openvidu_core::rules;

use super::{ConnectionUpdate, SessionSnapshot, Store, StoreError, StreamProperty, Unpublished};

fn connection_mut<'a>(
    s: &'a mut State,
    session: &SessionId,
    connection: &ConnectionId,
) -> Result<&'a mut Connection, StoreError> {
    s.sessions
        .get_mut(session)
        .ok_or_else(|| StoreError::SessionNotFound(session.clone()))?
        .connections
        .iter_mut()
        .find(|c| &c.id == connection)
        .ok_or_else(|| StoreError::ConnectionNotFound(connection.clone()))
}

#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, SessionSnapshot>,
    /// token → (session, connection) of pending connections.
    tokens: HashMap<TokenId, (SessionId, ConnectionId)>,
}

impl State {
    fn drop_tokens_of(&mut self, snapshot: &SessionSnapshot) {
        for c in &snapshot.connections {
            if let Some(t) = c.token.as_deref().and_then(|t| openvidu_core::id::Token::parse(t).ok()) {
                self.tokens.remove(&t.token_id);
            }
        }
    }
}

/// State in this process's memory: the single-process default.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, StoreError> {
        // A poisoned lock means a panic mid-update elsewhere; the data is still consistent
        // because every mutation below is completed before returning.
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut guard))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        self.with(|s| {
            if s.sessions.contains_key(&session.id) {
                return Err(StoreError::SessionExists(session.id));
            }
            s.sessions.insert(session.id.clone(), SessionSnapshot { session, connections: Vec::new() });
            Ok(())
        })?
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        self.with(|s| s.sessions.get(id).cloned())
    }

    async fn sessions(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        self.with(|s| {
            let mut all: Vec<_> = s.sessions.values().cloned().collect();
            all.sort_by(|a, b| (a.session.created_at, &a.session.id).cmp(&(b.session.created_at, &b.session.id)));
            all
        })
    }

    async fn remove_session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        self.with(|s| {
            let removed = s.sessions.remove(id);
            if let Some(snapshot) = &removed {
                s.drop_tokens_of(snapshot);
            }
            removed
        })
    }

    async fn remove_inactive_sessions(&self, created_before: Millis) -> Result<Vec<Session>, StoreError> {
        self.with(|s| {
            let ids: Vec<SessionId> = s
                .sessions
                .values()
                .filter(|snap| !snap.session.active && snap.session.created_at < created_before)
                .map(|snap| snap.session.id.clone())
                .collect();
            let mut removed = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(snap) = s.sessions.remove(&id) {
                    s.drop_tokens_of(&snap);
                    removed.push(snap.session);
                }
            }
            removed
        })
    }

    async fn create_connection(&self, connection: Connection, token: TokenId) -> Result<(), StoreError> {
        self.with(|s| {
            let snap = s
                .sessions
                .get_mut(&connection.session_id)
                .ok_or_else(|| StoreError::SessionNotFound(connection.session_id.clone()))?;
            s.tokens.insert(token, (connection.session_id.clone(), connection.id.clone()));
            snap.connections.push(connection);
            Ok(())
        })?
    }

    async fn remove_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
    ) -> Result<Connection, StoreError> {
        self.with(|s| {
            let snap = s.sessions.get_mut(session).ok_or_else(|| StoreError::SessionNotFound(session.clone()))?;
            let idx = snap
                .connections
                .iter()
                .position(|c| &c.id == connection)
                .ok_or_else(|| StoreError::ConnectionNotFound(connection.clone()))?;
            let removed = snap.connections.remove(idx);
            s.tokens.retain(|_, (_, c)| c != connection);
            Ok(removed)
        })?
    }

    async fn activate_connection(
        &self,
        session: &SessionId,
        token: &TokenId,
        info: ActiveInfo,
    ) -> Result<Connection, StoreError> {
        self.with(|s| {
            let Some((sid, cid)) = s.tokens.get(token).cloned().filter(|(sid, _)| sid == session) else {
                return Err(StoreError::TokenNotFound);
            };
            let snap = s.sessions.get_mut(&sid).ok_or(StoreError::TokenNotFound)?;
            let conn = snap.connections.iter_mut().find(|c| c.id == cid).ok_or(StoreError::TokenNotFound)?;
            rules::activate(conn, info).map_err(|_| StoreError::TokenNotFound)?;
            let activated = conn.clone();
            snap.session.active = true;
            s.tokens.remove(token);
            Ok(activated)
        })?
    }

    async fn update_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        role: Option<OpenViduRole>,
        record: Option<bool>,
    ) -> Result<ConnectionUpdate, StoreError> {
        self.with(|s| {
            let snap = s.sessions.get_mut(session).ok_or_else(|| StoreError::SessionNotFound(session.clone()))?;
            let conn = snap
                .connections
                .iter_mut()
                .find(|c| &c.id == connection)
                .ok_or_else(|| StoreError::ConnectionNotFound(connection.clone()))?;
            let before = (conn.properties.role, conn.properties.record);
            if let Some(r) = role {
                conn.properties.role = r;
            }
            if let Some(r) = record {
                conn.properties.record = r;
            }
            let changed = before != (conn.properties.role, conn.properties.record);
            Ok(ConnectionUpdate { connection: conn.clone(), changed })
        })?
    }

    async fn add_publisher(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        publisher: Publisher,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let c = connection_mut(s, session, connection)?;
            c.publishers.retain(|p| p.stream_id != publisher.stream_id);
            c.publishers.push(publisher);
            Ok(())
        })?
    }

    async fn remove_publisher(&self, session: &SessionId, stream: &StreamId) -> Result<Unpublished, StoreError> {
        self.with(|s| {
            let snap = s.sessions.get_mut(session).ok_or_else(|| StoreError::SessionNotFound(session.clone()))?;
            let mut found = None;
            let mut subscribers = Vec::new();
            for c in &mut snap.connections {
                if let Some(i) = c.publishers.iter().position(|p| &p.stream_id == stream) {
                    found = Some((c.id.clone(), c.publishers.remove(i)));
                }
                let before = c.subscribers.len();
                c.subscribers.retain(|sub| &sub.stream_id != stream);
                if c.subscribers.len() != before {
                    subscribers.push(c.id.clone());
                }
            }
            let (owner, publisher) = found.ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
            Ok(Unpublished { owner, publisher, subscribers })
        })?
    }

    async fn add_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        subscriber: Subscriber,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let c = connection_mut(s, session, connection)?;
            c.subscribers.retain(|x| x.stream_id != subscriber.stream_id);
            c.subscribers.push(subscriber);
            Ok(())
        })?
    }

    async fn remove_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        stream: &StreamId,
    ) -> Result<Subscriber, StoreError> {
        self.with(|s| {
            let c = connection_mut(s, session, connection)?;
            let i = c
                .subscribers
                .iter()
                .position(|x| &x.stream_id == stream)
                .ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
            Ok(c.subscribers.remove(i))
        })?
    }

    async fn set_stream_property(
        &self,
        session: &SessionId,
        stream: &StreamId,
        property: StreamProperty,
    ) -> Result<ConnectionId, StoreError> {
        self.with(|s| {
            let snap = s.sessions.get_mut(session).ok_or_else(|| StoreError::SessionNotFound(session.clone()))?;
            for c in &mut snap.connections {
                if let Some(p) = c.publishers.iter_mut().find(|p| &p.stream_id == stream) {
                    let m = &mut p.media_options;
                    match property {
                        StreamProperty::AudioActive(v) => m.audio_active = v,
                        StreamProperty::VideoActive(v) => m.video_active = v,
                        StreamProperty::VideoDimensions(d) => m.video_dimensions = Some(d),
                    }
                    return Ok(c.id.clone());
                }
            }
            Err(StoreError::StreamNotFound(stream.clone()))
        })?
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_conforms() {
        super::super::conformance::run(&super::MemoryStore::new()).await;
    }
}

//! The in-memory [`Store`]: one map behind one lock, so every method is trivially atomic. The
//! per-session rules live in [`super::transitions`], shared with the other stores.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use openvidu_core::id::{ConnectionId, SessionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, OpenViduRole, Publisher, Session, Subscriber};

use super::transitions::{self, SessionDoc};
use super::{ConnectionUpdate, SessionSnapshot, Store, StoreError, StreamProperty, Unpublished};

/// Every session, by id.
#[derive(Default)]
struct State {
    sessions: HashMap<SessionId, SessionDoc>,
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

    /// Applies a transition to one session under the lock.
    fn transition<R>(
        &self,
        session: &SessionId,
        missing: impl FnOnce() -> StoreError,
        f: impl FnOnce(&mut SessionDoc) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.with(|s| f(s.sessions.get_mut(session).ok_or_else(missing)?))?
    }
}

/// The error of a method whose session does not exist.
fn not_found(session: &SessionId) -> impl FnOnce() -> StoreError + '_ {
    move || StoreError::SessionNotFound(session.clone())
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        self.with(|s| {
            if s.sessions.contains_key(&session.id) {
                return Err(StoreError::SessionExists(session.id));
            }
            s.sessions.insert(session.id.clone(), SessionDoc::new(session));
            Ok(())
        })?
    }

    async fn session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        self.with(|s| s.sessions.get(id).map(|d| d.snapshot.clone()))
    }

    async fn sessions(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        self.with(|s| {
            let mut all: Vec<_> = s.sessions.values().map(|d| d.snapshot.clone()).collect();
            transitions::sort_sessions(&mut all);
            all
        })
    }

    async fn remove_session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        self.with(|s| s.sessions.remove(id).map(|d| d.snapshot))
    }

    async fn remove_inactive_sessions(&self, created_before: Millis) -> Result<Vec<Session>, StoreError> {
        self.with(|s| {
            let ids: Vec<SessionId> = s
                .sessions
                .values()
                .filter(|d| transitions::collectable(d, created_before))
                .map(|d| d.snapshot.session.id.clone())
                .collect();
            ids.iter().filter_map(|id| s.sessions.remove(id)).map(|d| d.snapshot.session).collect()
        })
    }

    async fn create_connection(&self, connection: Connection, token: TokenId) -> Result<(), StoreError> {
        let session = connection.session_id.clone();
        self.transition(&session, not_found(&session), |d| transitions::create_connection(d, connection, token))
    }

    async fn remove_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
    ) -> Result<Connection, StoreError> {
        self.transition(session, not_found(session), |d| transitions::remove_connection(d, connection))
    }

    async fn activate_connection(
        &self,
        session: &SessionId,
        token: &TokenId,
        info: ActiveInfo,
    ) -> Result<Connection, StoreError> {
        self.transition(session, || StoreError::TokenNotFound, |d| transitions::activate_connection(d, token, info))
    }

    async fn update_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        role: Option<OpenViduRole>,
        record: Option<bool>,
    ) -> Result<ConnectionUpdate, StoreError> {
        self.transition(session, not_found(session), |d| transitions::update_connection(d, connection, role, record))
    }

    async fn set_recording(&self, session: &SessionId, recording: bool) -> Result<bool, StoreError> {
        self.transition(session, not_found(session), |d| transitions::set_recording(d, recording))
    }

    async fn add_publisher(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        publisher: Publisher,
    ) -> Result<(), StoreError> {
        self.transition(session, not_found(session), |d| transitions::add_publisher(d, connection, publisher))
    }

    async fn remove_publisher(&self, session: &SessionId, stream: &StreamId) -> Result<Unpublished, StoreError> {
        self.transition(session, not_found(session), |d| transitions::remove_publisher(d, stream))
    }

    async fn add_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        subscriber: Subscriber,
    ) -> Result<(), StoreError> {
        self.transition(session, not_found(session), |d| transitions::add_subscriber(d, connection, subscriber))
    }

    async fn remove_subscriber(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        stream: &StreamId,
    ) -> Result<Subscriber, StoreError> {
        self.transition(session, not_found(session), |d| transitions::remove_subscriber(d, connection, stream))
    }

    async fn set_stream_property(
        &self,
        session: &SessionId,
        stream: &StreamId,
        property: StreamProperty,
    ) -> Result<ConnectionId, StoreError> {
        self.transition(session, not_found(session), |d| transitions::set_stream_property(d, stream, property))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use openvidu_core::id::{IdGenerator, SequentialIds};
    use openvidu_core::model::{Connection, ConnectionProperties, Session, SessionProperties};

    use super::{MemoryStore, Store};

    #[tokio::test]
    async fn memory_store_conforms() {
        super::super::conformance::run(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn snapshots_share_the_connections_and_a_later_change_does_not_reach_them() {
        let (store, ids) = (MemoryStore::new(), SequentialIds::default());
        let sid = ids.session_id();
        store.create_session(Session::new(sid.clone(), 1, SessionProperties::default())).await.unwrap();
        let pending =
            |n| Connection::pending(ids.connection_id(), sid.clone(), n, ConnectionProperties::default(), None);
        store.create_connection(pending(2), ids.token_id()).await.unwrap();

        let (a, b) = (store.session(&sid).await.unwrap().unwrap(), store.session(&sid).await.unwrap().unwrap());
        assert!(Arc::ptr_eq(&a.connections, &b.connections), "a read copies no connection");

        store.create_connection(pending(3), ids.token_id()).await.unwrap();
        let c = store.session(&sid).await.unwrap().unwrap();
        assert_eq!((a.connections.len(), c.connections.len()), (1, 2), "a held snapshot keeps what it saw");
        assert_eq!(a.connections[0], c.connections[0]);
        drop((a, b, c));

        // Nobody holds the list any more: the next change makes no copy of it.
        let before = Arc::as_ptr(&store.session(&sid).await.unwrap().unwrap().connections);
        store.create_connection(pending(4), ids.token_id()).await.unwrap();
        assert_eq!(Arc::as_ptr(&store.session(&sid).await.unwrap().unwrap().connections), before);
    }
}

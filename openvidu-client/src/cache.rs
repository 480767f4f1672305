//! The local picture of the server's sessions, shared by [`crate::OpenVidu`] and every
//! [`crate::Session`] handle, and how a fetch updates it.
//!
//! Like the Java and Node clients, the cache changes in two ways: a fetch replaces it with what
//! the server answered (reporting whether anything changed), and each successful mutating call
//! applies its own effect locally without refetching.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use openvidu_core::id::{ConnectionId, SessionId, StreamId};
use openvidu_core::model::{Connection, Session as SessionModel};
use openvidu_core::wire::rest::SessionJson;

/// One cached session, shared between the registry and the [`crate::Session`] handles.
pub(crate) type SharedState = Arc<Mutex<SessionState>>;

/// The registry of cached sessions by id.
pub(crate) type Registry = HashMap<SessionId, SharedState>;

/// Locks `m`, ignoring poisoning: the cached data is plain values, always left consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A session and its connections (pending and active), in a canonical order so that two
/// pictures of the same server state compare equal whatever order the server listed them in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SessionState {
    /// The session.
    pub session: SessionModel,
    /// Its connections, ordered by creation time then id.
    pub connections: Vec<Connection>,
}

impl SessionState {
    /// The state a Session object of the REST API describes.
    pub fn from_json(json: SessionJson) -> Self {
        let (session, connections) = json.into_model();
        Self::new(session, connections)
    }

    /// The state of `session` with `connections`, canonically ordered.
    pub fn new(session: SessionModel, connections: Vec<Connection>) -> Self {
        let mut state = Self { session, connections };
        state.normalize();
        state
    }

    /// Sorts connections, publishers and subscribers, and derives `active` as
    /// `SessionJson::into_model` does, so local edits and fetched states stay comparable.
    fn normalize(&mut self) {
        self.connections.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        for c in &mut self.connections {
            c.publishers.sort_by(|a, b| (a.created_at, &a.stream_id).cmp(&(b.created_at, &b.stream_id)));
            c.subscribers.sort_by(|a, b| (a.created_at, &a.stream_id).cmp(&(b.created_at, &b.stream_id)));
        }
        self.session.active = self.connections.iter().any(|c| c.active.is_some());
    }

    /// Replaces this state with `fresh`; true iff anything differs.
    pub fn replace(&mut self, fresh: SessionState) -> bool {
        let changed = *self != fresh;
        *self = fresh;
        changed
    }

    /// The cached connection `id`.
    pub fn connection(&self, id: &ConnectionId) -> Option<&Connection> {
        self.connections.iter().find(|c| &c.id == id)
    }

    /// Adds `connection`, or replaces the cached one with the same id.
    pub fn upsert_connection(&mut self, connection: Connection) {
        self.connections.retain(|c| c.id != connection.id);
        self.connections.push(connection);
        self.normalize();
    }

    /// The effect of a force-disconnect: the connection goes, and so do the other connections'
    /// subscriptions to its streams.
    pub fn remove_connection(&mut self, id: &ConnectionId) {
        let Some(i) = self.connections.iter().position(|c| &c.id == id) else {
            return;
        };
        let gone = self.connections.remove(i);
        for c in &mut self.connections {
            c.subscribers.retain(|s| !gone.publishers.iter().any(|p| p.stream_id == s.stream_id));
        }
        self.normalize();
    }

    /// The effect of a force-unpublish: the publisher goes, and so do the subscriptions to it.
    pub fn remove_stream(&mut self, stream: &StreamId) {
        for c in &mut self.connections {
            c.publishers.retain(|p| &p.stream_id != stream);
            c.subscribers.retain(|s| &s.stream_id != stream);
        }
    }
}

/// Brings `registry` in line with `fresh` (every session the server listed): known sessions are
/// updated in place, so existing handles see the change; new ones are added; vanished ones are
/// dropped. True iff anything changed, counting new and vanished sessions.
pub(crate) fn apply_fetch(registry: &mut Registry, fresh: Vec<SessionState>) -> bool {
    let mut changed = false;
    let mut seen = HashMap::with_capacity(fresh.len());
    for state in fresh {
        let id = state.session.id.clone();
        let shared = match registry.remove(&id) {
            Some(shared) => {
                changed |= lock(&shared).replace(state);
                shared
            }
            None => {
                changed = true;
                Arc::new(Mutex::new(state))
            }
        };
        seen.insert(id, shared);
    }
    // What is left in the registry was not listed: those sessions are gone.
    changed |= !registry.is_empty();
    *registry = seen;
    changed
}

/// Puts `state` in the registry: the existing shared state of that id is updated in place (so
/// handles to it see the change), or a new one is added. Returns the shared state.
pub(crate) fn upsert(registry: &mut Registry, state: SessionState) -> SharedState {
    match registry.get(&state.session.id) {
        Some(shared) => {
            lock(shared).replace(state);
            Arc::clone(shared)
        }
        None => {
            let id = state.session.id.clone();
            let shared = Arc::new(Mutex::new(state));
            registry.insert(id, Arc::clone(&shared));
            shared
        }
    }
}

/// Removes `id` from the registry if it still holds this very `shared` state (a newer session
/// with the same custom id must not be dropped by an old handle).
pub(crate) fn remove_if_same(registry: &mut Registry, id: &SessionId, shared: &SharedState) {
    if registry.get(id).is_some_and(|s| Arc::ptr_eq(s, shared)) {
        registry.remove(id);
    }
}

#[cfg(test)]
mod tests;

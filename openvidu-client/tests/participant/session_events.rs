//! Who is in the session: joins, leaves, evictions, errors.

use openvidu_client::OpenViduRole;
use openvidu_client::participant::{EndReason, JoinOptions, Participant, ParticipantError, ParticipantEvent};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use openvidu_core::id::{ConnectionId, SessionId, StreamId, TokenId};
use openvidu_core::model::{ActiveInfo, Connection, Millis, Publisher, Session, Subscriber};
use openvidu_server::store::{
    ConnectionUpdate, MemoryStore, SessionSnapshot, Store, StoreError, StreamProperty, Unpublished,
};
use tokio::sync::{Notify, Semaphore};

use super::{Harness, expect_event, light};

#[tokio::test]
async fn participants_see_each_other_join_and_leave() {
    let h = Harness::start().await;
    let session = h.session("events-join").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    assert!(a.remote_participants().is_empty());
    assert_eq!(a.role(), Some(OpenViduRole::Publisher));
    assert_eq!(a.metadata(), "{\"bot\":\"a\"}%/%a");
    assert_eq!(a.media_server(), "kurento");
    let sa = a.publish(light()).await.unwrap();
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    let seen = b.remote_participants();
    assert_eq!(seen.len(), 1);
    assert_eq!((&seen[0].connection_id, seen[0].metadata.as_str()), (a.connection_id(), "{\"bot\":\"a\"}%/%a"));
    assert_eq!(seen[0].streams[0].id, sa, "the joinRoom result lists a's stream");
    let joined = expect_event(&a, "b joining", |e| matches!(e, ParticipantEvent::ParticipantJoined { .. })).await;
    assert!(
        matches!(joined, ParticipantEvent::ParticipantJoined { connection_id, .. } if &connection_id == b.connection_id())
    );
    assert_eq!(a.remote_participants()[0].connection_id, *b.connection_id());

    b.leave().await.unwrap();
    let left = expect_event(&a, "b leaving", |e| matches!(e, ParticipantEvent::ParticipantLeft { .. })).await;
    assert_eq!(
        left,
        ParticipantEvent::ParticipantLeft {
            connection_id: b.connection_id().clone(),
            reason: Some(EndReason::Disconnect)
        }
    );
    assert!(a.remote_participants().is_empty());
    assert!(b.is_closed());
    assert!(matches!(b.leave().await, Err(ParticipantError::Closed)));
    assert_eq!(b.next_event().await, None, "a participant that left has no more events");
}

#[tokio::test]
async fn rest_force_disconnect_evicts_the_participant() {
    let h = Harness::start().await;
    let session = h.session("events-evict").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    a.publish(light()).await.unwrap();
    b.subscribe_all().await.unwrap();
    session.force_disconnect(a.connection_id()).await.expect("REST eviction");

    let evicted = expect_event(&a, "its eviction", |e| matches!(e, ParticipantEvent::ParticipantEvicted { .. })).await;
    assert_eq!(
        evicted,
        ParticipantEvent::ParticipantEvicted {
            connection_id: a.connection_id().clone(),
            reason: Some(EndReason::ForceDisconnectByServer)
        }
    );
    assert_eq!(a.next_event().await, None, "the evicted participant is closed");
    assert!(a.is_closed());
    assert!(matches!(a.signal(&[], "x", "y").await, Err(ParticipantError::Closed)));

    let left = expect_event(&b, "a leaving", |e| matches!(e, ParticipantEvent::ParticipantLeft { .. })).await;
    assert!(matches!(left, ParticipantEvent::ParticipantLeft { reason: Some(EndReason::ForceDisconnectByServer), .. }));
    expect_event(&b, "a's eviction", |e| {
        matches!(e, ParticipantEvent::ParticipantEvicted { connection_id, .. } if connection_id == a.connection_id())
    })
    .await;
    assert!(b.stats().is_empty(), "the subscription to a is gone");
}

#[tokio::test]
async fn moderators_evict_over_rpc_and_refusals_carry_openvidu_codes() {
    let h = Harness::start().await;
    let session = h.session("events-rpc").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let m = h.join(&session, OpenViduRole::Moderator, "m").await;
    assert_eq!(a.force_disconnect(m.connection_id()).await.unwrap_err().rpc_code(), Some(401));
    m.force_disconnect(a.connection_id()).await.expect("a moderator evicts");
    let evicted = expect_event(&a, "its eviction", |e| matches!(e, ParticipantEvent::ParticipantEvicted { .. })).await;
    assert!(matches!(
        evicted,
        ParticipantEvent::ParticipantEvicted { reason: Some(EndReason::ForceDisconnectByUser), .. }
    ));

    // A token is single-use: 401. A token of another server's session: 202 or 401.
    let connection = session.create_connection(Default::default()).await.unwrap();
    let token = connection.token.unwrap();
    let first = Participant::join(&token, JoinOptions::new()).await.expect("the token works once");
    let again = Participant::join(&token, JoinOptions::new()).await.unwrap_err();
    assert_eq!(again.rpc_code(), Some(401), "{again}");
    first.leave().await.unwrap();
    assert!(matches!(
        Participant::join("not a token", JoinOptions::new()).await,
        Err(ParticipantError::InvalidToken(_))
    ));
}

/// A participant who joins while another's publish is under way (the media node has answered, the
/// stream is not stored yet) is told of the stream: its `joinRoom` answer, read before the stream
/// was stored, could not list it.
#[tokio::test]
async fn a_participant_joining_during_a_publish_is_told_of_the_stream() {
    let store = Arc::new(Held::default());
    store.publish.store(true, Ordering::SeqCst);
    let h = Harness::start_with(openvidu_server::Server::builder().store(store.clone())).await;
    let session = h.session("events-join-during-publish").await;
    let a = Arc::new(h.join(&session, OpenViduRole::Publisher, "a").await);
    let publishing = tokio::spawn({
        let a = a.clone();
        async move { a.publish(light()).await }
    });
    store.reached.notified().await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    assert!(b.remote_participants()[0].streams.is_empty(), "b joined before the stream was stored");
    store.go.add_permits(1);
    let stream = publishing.await.expect("the publish task").expect("a publishes");

    let told = expect_event(&b, "a's stream", |e| matches!(e, ParticipantEvent::StreamPublished { .. })).await;
    assert!(
        matches!(&told, ParticipantEvent::StreamPublished { connection_id, stream: s } if connection_id == a.connection_id() && s.id == stream),
        "{told:?}"
    );
}

/// Two participants joining at once each learn of the other, whichever order their reads and
/// activations interleave in: here `a` read the session before `b` joined and is activated after.
#[tokio::test]
async fn participants_joining_at_once_learn_of_each_other() {
    let store = Arc::new(Held::default());
    let h = Arc::new(Harness::start_with(openvidu_server::Server::builder().store(store.clone())).await);
    let session = Arc::new(h.session("events-join-at-once").await);
    store.activation.store(true, Ordering::SeqCst);
    let joining = tokio::spawn({
        let (h, session) = (h.clone(), session.clone());
        async move { h.join(&session, OpenViduRole::Publisher, "a").await }
    });
    store.reached.notified().await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    assert!(b.remote_participants().is_empty(), "a is not active yet");
    store.go.add_permits(1);
    let a = joining.await.expect("the join task");

    assert_eq!(a.remote_participants()[0].connection_id, *b.connection_id(), "a's answer lists b");
    let told = expect_event(&b, "a joining", |e| matches!(e, ParticipantEvent::ParticipantJoined { .. })).await;
    assert!(
        matches!(&told, ParticipantEvent::ParticipantJoined { connection_id, .. } if connection_id == a.connection_id()),
        "{told:?}"
    );
}

/// The in-memory store, except that the next `add_publisher` (when `publish` is set) or the next
/// `activate_connection` (when `activation` is set) tells `reached` and waits for a permit of `go`.
struct Held {
    inner: MemoryStore,
    publish: AtomicBool,
    activation: AtomicBool,
    reached: Notify,
    go: Semaphore,
}

impl Default for Held {
    fn default() -> Self {
        Self {
            inner: MemoryStore::new(),
            publish: AtomicBool::new(false),
            activation: AtomicBool::new(false),
            reached: Notify::new(),
            go: Semaphore::new(0),
        }
    }
}

impl Held {
    /// Holds the call if `flag` is set (and clears it).
    async fn hold(&self, flag: &AtomicBool) -> Result<(), StoreError> {
        if flag.swap(false, Ordering::SeqCst) {
            self.reached.notify_one();
            let permit = self.go.acquire().await.map_err(|e| StoreError::Unavailable(e.to_string()))?;
            permit.forget();
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Store for Held {
    async fn create_session(&self, session: Session) -> Result<(), StoreError> {
        self.inner.create_session(session).await
    }
    async fn session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        self.inner.session(id).await
    }
    async fn sessions(&self) -> Result<Vec<SessionSnapshot>, StoreError> {
        self.inner.sessions().await
    }
    async fn remove_session(&self, id: &SessionId) -> Result<Option<SessionSnapshot>, StoreError> {
        self.inner.remove_session(id).await
    }
    async fn remove_inactive_sessions(&self, created_before: Millis) -> Result<Vec<Session>, StoreError> {
        self.inner.remove_inactive_sessions(created_before).await
    }
    async fn create_connection(&self, connection: Connection, token: TokenId) -> Result<(), StoreError> {
        self.inner.create_connection(connection, token).await
    }
    async fn remove_connection(&self, s: &SessionId, c: &ConnectionId) -> Result<Connection, StoreError> {
        self.inner.remove_connection(s, c).await
    }
    async fn activate_connection(&self, s: &SessionId, t: &TokenId, i: ActiveInfo) -> Result<Connection, StoreError> {
        self.hold(&self.activation).await?;
        self.inner.activate_connection(s, t, i).await
    }
    async fn update_connection(
        &self,
        s: &SessionId,
        c: &ConnectionId,
        role: Option<OpenViduRole>,
        record: Option<bool>,
    ) -> Result<ConnectionUpdate, StoreError> {
        self.inner.update_connection(s, c, role, record).await
    }
    async fn add_publisher(&self, s: &SessionId, c: &ConnectionId, p: Publisher) -> Result<(), StoreError> {
        self.hold(&self.publish).await?;
        self.inner.add_publisher(s, c, p).await
    }
    async fn remove_publisher(&self, s: &SessionId, stream: &StreamId) -> Result<Unpublished, StoreError> {
        self.inner.remove_publisher(s, stream).await
    }
    async fn add_subscriber(&self, s: &SessionId, c: &ConnectionId, sub: Subscriber) -> Result<(), StoreError> {
        self.inner.add_subscriber(s, c, sub).await
    }
    async fn remove_subscriber(
        &self,
        s: &SessionId,
        c: &ConnectionId,
        stream: &StreamId,
    ) -> Result<Subscriber, StoreError> {
        self.inner.remove_subscriber(s, c, stream).await
    }
    async fn set_recording(&self, s: &SessionId, recording: bool) -> Result<bool, StoreError> {
        self.inner.set_recording(s, recording).await
    }
    async fn set_stream_property(
        &self,
        s: &SessionId,
        stream: &StreamId,
        property: StreamProperty,
    ) -> Result<ConnectionId, StoreError> {
        self.inner.set_stream_property(s, stream, property).await
    }
}

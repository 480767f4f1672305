//! The `Store` contract, written once against `&dyn Store`; every implementation runs it.

use openvidu_core::id::{IdGenerator, SequentialIds, Token};
use openvidu_core::model::{ActiveInfo, Connection, ConnectionProperties, OpenViduRole, Session, SessionProperties};

use openvidu_core::model::{MediaOptions, Publisher, Subscriber};

use super::{Store, StoreError, StreamProperty, Unpublished};

pub(crate) async fn run(store: &dyn Store) {
    let ids = SequentialIds::default();
    let sid = ids.session_id();
    store.create_session(Session::new(sid.clone(), 10, SessionProperties::default())).await.unwrap();
    assert_eq!(
        store.create_session(Session::new(sid.clone(), 11, SessionProperties::default())).await,
        Err(StoreError::SessionExists(sid.clone())),
        "a session id is created once"
    );

    let token_id = ids.token_id();
    let token = Token { ws_url: "wss://h".into(), session_id: sid.clone(), token_id: token_id.clone() };
    let cid = ids.connection_id();
    let conn =
        Connection::pending(cid.clone(), sid.clone(), 12, ConnectionProperties::default(), Some(token.to_string()));
    store.create_connection(conn, token_id.clone()).await.unwrap();

    let other = ids.session_id();
    let orphan = Connection::pending(ids.connection_id(), other.clone(), 1, ConnectionProperties::default(), None);
    assert_eq!(store.create_connection(orphan, ids.token_id()).await, Err(StoreError::SessionNotFound(other)));

    // pending → active once
    let info = ActiveInfo::new(20, Some("127.0.0.1".into()), "test".into(), "".into());
    let wrong_session = ids.session_id();
    assert_eq!(
        store.activate_connection(&wrong_session, &token_id, info.clone()).await,
        Err(StoreError::TokenNotFound)
    );
    let active = store.activate_connection(&sid, &token_id, info.clone()).await.unwrap();
    assert_eq!(active.ip(), Some("127.0.0.1"));
    assert_eq!(store.activate_connection(&sid, &token_id, info.clone()).await, Err(StoreError::TokenNotFound));
    let snap = store.session(&sid).await.unwrap().unwrap();
    assert!(snap.session.active);
    assert_eq!(snap.active_connections().count(), 1);

    // one recording per session, claimed atomically
    assert_eq!(store.set_recording(&sid, true).await, Ok(false), "claims the recording");
    assert_eq!(store.set_recording(&sid, true).await, Ok(true), "a second claim sees it taken");
    assert!(store.session(&sid).await.unwrap().unwrap().session.recording);
    assert_eq!(store.set_recording(&sid, false).await, Ok(true));
    assert!(!store.session(&sid).await.unwrap().unwrap().session.recording);
    let missing = ids.session_id();
    assert_eq!(store.set_recording(&missing, true).await, Err(StoreError::SessionNotFound(missing)));

    // update
    let u = store.update_connection(&sid, &cid, Some(OpenViduRole::Moderator), None).await.unwrap();
    assert!(u.changed);
    assert_eq!(u.connection.properties.role, OpenViduRole::Moderator);
    let u = store.update_connection(&sid, &cid, Some(OpenViduRole::Moderator), Some(true)).await.unwrap();
    assert!(!u.changed);

    // a removed pending connection's token is dead
    let t2 = ids.token_id();
    let c2 = ids.connection_id();
    store
        .create_connection(
            Connection::pending(c2.clone(), sid.clone(), 13, ConnectionProperties::default(), None),
            t2.clone(),
        )
        .await
        .unwrap();
    store.remove_connection(&sid, &c2).await.unwrap();
    assert_eq!(store.activate_connection(&sid, &t2, info).await, Err(StoreError::TokenNotFound));
    assert_eq!(store.remove_connection(&sid, &c2).await, Err(StoreError::ConnectionNotFound(c2)));

    // garbage collection takes only never-joined sessions older than the threshold
    let idle = ids.session_id();
    store.create_session(Session::new(idle.clone(), 5, SessionProperties::default())).await.unwrap();
    let young = ids.session_id();
    store.create_session(Session::new(young.clone(), 500, SessionProperties::default())).await.unwrap();
    let gone = store.remove_inactive_sessions(100).await.unwrap();
    assert_eq!(gone.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![idle]);
    assert!(store.session(&sid).await.unwrap().is_some(), "active sessions are never collected");
    assert!(store.session(&young).await.unwrap().is_some());

    // publishers and subscribers
    let stream = ids.stream_id(Some(openvidu_core::id::TypeOfVideo::Camera), &cid);
    let mut options = MediaOptions::new(true, true, Some(openvidu_core::id::TypeOfVideo::Camera));
    options.frame_rate = Some(30);
    let mut publisher = Publisher::new(stream.clone(), 30, options);
    store.add_publisher(&sid, &cid, publisher.clone()).await.unwrap();
    store.add_subscriber(&sid, &cid, Subscriber::new(stream.clone(), 31)).await.unwrap();
    let owner = store.set_stream_property(&sid, &stream, StreamProperty::AudioActive(false)).await.unwrap();
    assert_eq!(owner, cid);
    let gone = store.remove_publisher(&sid, &stream).await.unwrap();
    publisher.media_options.audio_active = false;
    assert_eq!(gone, Unpublished { owner: cid.clone(), publisher, subscribers: vec![cid.clone()] });
    let snap = store.session(&sid).await.unwrap().unwrap();
    assert!(snap.connection(&cid).unwrap().publishers.is_empty());
    assert!(snap.connection(&cid).unwrap().subscribers.is_empty(), "subscriptions go with the publisher");
    assert_eq!(store.remove_publisher(&sid, &stream).await, Err(StoreError::StreamNotFound(stream.clone())));
    assert_eq!(store.remove_subscriber(&sid, &cid, &stream).await, Err(StoreError::StreamNotFound(stream)));

    assert_eq!(store.sessions().await.unwrap().len(), 2);
    let removed = store.remove_session(&sid).await.unwrap().unwrap();
    assert_eq!(removed.connections.len(), 1);
    assert!(store.remove_session(&sid).await.unwrap().is_none());
}

//! Connections: create, token flow, lookup, update, force-disconnect, force-unpublish.

use openvidu_client::{
    ConnectionId, ConnectionProperties, ConnectionStatus, ConnectionType, KurentoOptions, OpenViduRole,
    SessionProperties, StreamId, TokenOptions,
};

use crate::{Harness, status_of};

async fn session(h: &Harness) -> openvidu_client::Session {
    h.client.create_session(SessionProperties::default()).await.expect("created")
}

#[tokio::test]
async fn a_default_connection_is_pending_with_a_token() {
    let h = Harness::start().await;
    let s = session(&h).await;
    let c = s.create_connection(ConnectionProperties::default()).await.expect("created");

    assert!(c.id.as_str().starts_with("con_"), "{}", c.id);
    assert_eq!(&c.session_id, s.id());
    assert_eq!(c.status(), ConnectionStatus::Pending);
    assert_eq!(c.properties.connection_type, ConnectionType::Webrtc);
    assert_eq!(c.properties.role, OpenViduRole::Publisher);
    assert_eq!(c.properties.data, "");
    assert!(c.properties.record);
    assert_eq!(c.ip(), None);
    assert!(c.publishers.is_empty() && c.subscribers.is_empty());
    let token = c.token.as_deref().expect("a token");
    assert!(token.contains(&format!("sessionId={}", s.id())), "{token}");
    assert!(token.contains("token=tok_"), "{token}");

    assert_eq!(s.connections(), vec![c.clone()]);
    assert_eq!(s.connection(&c.id), Some(c));
    assert!(s.active_connections().is_empty());
}

#[tokio::test]
async fn properties_are_sent_and_read_back() {
    let h = Harness::start().await;
    let s = session(&h).await;
    let kurento = KurentoOptions::builder()
        .video_max_recv_bandwidth(1000)
        .video_min_send_bandwidth(300)
        .allowed_filters(["GStreamerFilter", "FaceOverlayFilter"])
        .build();
    let properties = ConnectionProperties::builder()
        .role(OpenViduRole::Moderator)
        .data("{\"name\":\"alice\"}")
        .kurento_options(kurento.clone())
        .build();
    let c = s.create_connection(properties).await.expect("created");
    assert_eq!(c.properties.role, OpenViduRole::Moderator);
    assert_eq!(c.properties.data, "{\"name\":\"alice\"}");
    assert_eq!(c.properties.kurento_options.as_ref(), Some(&kurento));
    assert!(c.properties.kurento_options.as_ref().is_some_and(|k| k.is_filter_allowed("GStreamerFilter")));
    // The cache holds exactly what the server has.
    assert!(!s.fetch().await.expect("fetched"));
}

#[tokio::test]
async fn an_ip_camera_needs_an_rtsp_or_file_uri() {
    let h = Harness::start().await;
    let s = session(&h).await;
    let bad = ConnectionProperties::builder()
        .connection_type(ConnectionType::Ipcam)
        .rtsp_uri("http://camera.local/stream")
        .build();
    assert_eq!(status_of(s.create_connection(bad).await), 400);
    assert!(s.connections().is_empty());
}

#[tokio::test]
async fn a_connection_in_a_closed_session_is_a_404() {
    let h = Harness::start().await;
    let s = session(&h).await;
    s.close().await.expect("closed");
    assert_eq!(status_of(s.create_connection(ConnectionProperties::default()).await), 404);
}

#[tokio::test]
async fn the_deprecated_token_flow_creates_a_pending_connection() {
    let h = Harness::start().await;
    let s = session(&h).await;
    let options = TokenOptions::builder().role(OpenViduRole::Subscriber).data("bob").build();
    let token = s.generate_token(options).await.expect("a token");
    assert!(token.contains(&format!("sessionId={}", s.id())) && token.contains("token=tok_"), "{token}");

    let cached = s.connections();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].token.as_deref(), Some(token.as_str()));
    assert_eq!(cached[0].properties.role, OpenViduRole::Subscriber);
    assert_eq!(cached[0].properties.data, "bob");
    // The locally cached connection is the one the server lists.
    assert!(!s.fetch().await.expect("fetched"));

    s.close().await.expect("closed");
    assert_eq!(status_of(s.generate_token(TokenOptions::default()).await), 404);
}

#[tokio::test]
async fn force_disconnect_invalidates_a_pending_connection() {
    let h = Harness::start().await;
    let s = session(&h).await;
    let keep = s.create_connection(ConnectionProperties::default()).await.expect("created");
    let gone = s.create_connection(ConnectionProperties::default()).await.expect("created");

    s.force_disconnect(&gone.id).await.expect("disconnected");
    assert_eq!(s.connections(), vec![keep]);
    assert_eq!(s.connection(&gone.id), None);
    assert!(!s.fetch().await.expect("fetched"), "the server agrees");

    assert_eq!(status_of(s.force_disconnect(&gone.id).await), 404);
    let unknown = ConnectionId::parse("con_Unknown000").expect("valid id");
    assert_eq!(status_of(s.force_disconnect(&unknown).await), 404);

    s.close().await.expect("closed");
    assert_eq!(status_of(s.force_disconnect(&unknown).await), 400, "unknown session");
}

#[tokio::test]
async fn update_connection_changes_role_and_record() {
    let h = Harness::start().await;
    let s = session(&h).await;
    let c = s.create_connection(ConnectionProperties::default()).await.expect("created");

    let updated = s.update_connection(&c.id, Some(OpenViduRole::Moderator), Some(false)).await.expect("updated");
    assert_eq!(updated.properties.role, OpenViduRole::Moderator);
    assert_eq!(updated.id, c.id);
    assert_eq!(s.connection(&c.id).map(|c| c.properties.role), Some(OpenViduRole::Moderator));

    // Nothing to change: 204, and the cached connection is returned.
    let same = s.update_connection(&c.id, Some(OpenViduRole::Moderator), None).await.expect("unchanged");
    assert_eq!(same, s.connection(&c.id).expect("cached"));
    assert!(!s.fetch().await.expect("fetched"), "the cache matches the server");

    // A 204 for a connection this client never cached fetches it.
    let other = h.another_client();
    other.fetch().await.expect("fetched");
    let theirs = other.active_sessions().pop().expect("cached");
    let fresh = s.create_connection(ConnectionProperties::default()).await.expect("created");
    let unchanged = theirs.update_connection(&fresh.id, None, None).await.expect("unchanged");
    assert_eq!(unchanged.id, fresh.id);
    assert_eq!(theirs.connection(&fresh.id).map(|c| c.id), Some(fresh.id));

    let unknown = ConnectionId::parse("con_Unknown000").expect("valid id");
    assert_eq!(status_of(s.update_connection(&unknown, Some(OpenViduRole::Subscriber), None).await), 404);
}

#[tokio::test]
async fn force_unpublish_of_a_session_without_participants_is_a_404() {
    let h = Harness::start().await;
    let s = session(&h).await;
    let c = s.create_connection(ConnectionProperties::default()).await.expect("created");
    let stream = StreamId::parse(&format!("str_CAM_Abcd_{}", c.id)).expect("valid id");
    assert_eq!(status_of(s.force_unpublish(&stream).await), 404);

    s.close().await.expect("closed");
    assert_eq!(status_of(s.force_unpublish(&stream).await), 400, "unknown session");
}

//! Re-binding a new signalling socket to a participant (`connect`).

use openvidu_client::OpenViduRole;
use openvidu_client::participant::ParticipantEvent;

use super::{Harness, expect_event, light, receives};

#[tokio::test]
async fn a_new_socket_keeps_the_connection_its_media_and_its_signals() {
    let h = Harness::start().await;
    let session = h.session("reconnect").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    a.publish(light()).await.unwrap();
    b.publish(light()).await.unwrap();
    a.subscribe_all().await.unwrap();
    b.subscribe_all().await.unwrap();
    receives(&a, &b).await;

    let (id, rpc) = (a.connection_id().clone(), a.rpc_session_id().to_owned());
    a.reconnect_socket().await.expect("the socket is re-bound");
    assert_eq!((a.connection_id(), a.rpc_session_id()), (&id, rpc.as_str()));

    b.signal(std::slice::from_ref(&id), "after", "still here?").await.unwrap();
    let e = expect_event(&a, "a signal on the new socket", |e| matches!(e, ParticipantEvent::Signal { .. })).await;
    assert!(matches!(e, ParticipantEvent::Signal { data: Some(d), .. } if d == "still here?"));
    a.signal(&[b.connection_id().clone()], "back", "yes").await.expect("requests go through the new socket");
    expect_event(&b, "a's answer", |e| matches!(e, ParticipantEvent::Signal { data: Some(d), .. } if d == "yes")).await;

    // Media never depended on the socket.
    receives(&a, &b).await;
    receives(&b, &a).await;
    session.fetch().await.unwrap();
    assert_eq!(session.active_connections().len(), 2, "nobody was evicted");
    // Twice in a row works too.
    a.reconnect_socket().await.unwrap();
    b.signal(&[id], "again", "x").await.unwrap();
    expect_event(&a, "a signal after the second reconnection", |e| matches!(e, ParticipantEvent::Signal { .. })).await;
}

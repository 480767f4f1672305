//! Who is in the session: joins, leaves, evictions, errors.

use openvidu_client::OpenViduRole;
use openvidu_client::participant::{EndReason, JoinOptions, Participant, ParticipantError, ParticipantEvent};

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

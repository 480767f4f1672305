//! Signals: `POST /openvidu/api/signal` for sessions without participants.

use openvidu_client::{ConnectionProperties, SessionId, SessionProperties, SignalOptions};

use crate::{Harness, status_of};

#[tokio::test]
async fn a_signal_to_a_session_without_participants_is_a_406() {
    let h = Harness::start().await;
    let s = h.client.create_session(SessionProperties::default()).await.expect("created");
    let broadcast = SignalOptions::new().signal_type("chat").data("hello");
    assert_eq!(status_of(h.client.signal(s.id(), broadcast).await), 406);

    // Even when naming a connection of the session: it has not joined.
    let c = s.create_connection(ConnectionProperties::default()).await.expect("created");
    let direct = SignalOptions::new().to([c.id]).data("psst");
    assert_eq!(status_of(h.client.signal(s.id(), direct).await), 406);

    // No type, no data.
    assert_eq!(status_of(h.client.signal(s.id(), SignalOptions::new()).await), 406);
}

#[tokio::test]
async fn a_signal_to_an_unknown_session_is_a_404() {
    let h = Harness::start().await;
    let unknown = SessionId::parse("ses_Unknown000").expect("valid id");
    assert_eq!(status_of(h.client.signal(&unknown, SignalOptions::new().data("x")).await), 404);
}

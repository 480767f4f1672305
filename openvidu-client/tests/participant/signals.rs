//! Signals between participants and from the REST API.

use openvidu_client::participant::ParticipantEvent;
use openvidu_client::{OpenViduRole, SignalOptions};

use super::{Harness, expect_event};

fn is_signal(e: &ParticipantEvent) -> bool {
    matches!(e, ParticipantEvent::Signal { .. })
}

#[tokio::test]
async fn signals_reach_some_or_all() {
    let h = Harness::start().await;
    let session = h.session("signals").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    let c = h.join(&session, OpenViduRole::Publisher, "c").await;

    a.signal(&[b.connection_id().clone()], "chat", "only b").await.unwrap();
    a.signal(&[], "chat", "everyone").await.unwrap();
    let to_b = expect_event(&b, "the signal to b", is_signal).await;
    assert_eq!(
        to_b,
        ParticipantEvent::Signal {
            from: Some(a.connection_id().clone()),
            signal_type: Some("signal:chat".into()),
            data: Some("only b".into())
        }
    );
    for p in [&a, &b, &c] {
        // c's first signal is the broadcast: it never saw the one to b.
        let e = expect_event(p, "the broadcast", is_signal).await;
        assert!(matches!(&e, ParticipantEvent::Signal { data: Some(d), .. } if d == "everyone"), "{e:?}");
    }

    h.rest
        .signal(
            session.id(),
            SignalOptions::new().to([c.connection_id().clone()]).signal_type("news").data("from REST"),
        )
        .await
        .unwrap();
    let from_rest = expect_event(&c, "the REST signal", is_signal).await;
    assert_eq!(
        from_rest,
        ParticipantEvent::Signal { from: None, signal_type: Some("news".into()), data: Some("from REST".into()) }
    );

    let unknown = openvidu_client::ConnectionId::parse("con_Nobody").unwrap();
    assert_eq!(a.signal(&[unknown], "x", "y").await.unwrap_err().rpc_code(), Some(601));
}

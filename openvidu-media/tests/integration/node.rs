use openvidu_media::{EndpointId, MediaNode};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_router_is_idempotent_and_close_router_closes_everything() {
    let h = Harness::new().await;
    h.node.create_router(&h.session).await.unwrap();
    let stream = stream("str_CAM_Clse_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let peer = subscribe_client_offer(&h, &connection("con_Sub"), &stream).await;
    assert_receives_both(&peer, 5).await;
    assert_eq!(h.node.load().await.subscribers, 1);

    h.node.close_router(&h.session).await.unwrap();
    h.node.close_router(&h.session).await.unwrap();
    let load = h.node.load().await;
    assert_eq!((load.routers, load.publishers, load.subscribers), (0, 0, 0));
    let before = peer.video.packets.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(peer.video.packets.load(std::sync::atomic::Ordering::SeqCst), before);
    let err = h
        .node
        .add_ice_candidate(&h.session, EndpointId::Publisher(stream), openvidu_media::IceCandidate::new("", None, None))
        .await
        .unwrap_err();
    assert_eq!(err.rpc_code(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_is_reported_failed() {
    let mut config = openvidu_media::MediaConfig::default();
    config.ice_disconnected_timeout = std::time::Duration::from_secs(2);
    config.ice_failed_timeout = std::time::Duration::from_secs(2);
    let h = Harness::with_config(config).await;
    let stream = stream("str_CAM_Gone_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    let endpoint = EndpointId::Publisher(stream.clone());
    eventually("connected", || h.connected(&endpoint)).await;
    publisher.peer.close().await;
    eventually("Failed event", || {
        h.state_events(&endpoint).iter().any(|e| matches!(e, openvidu_media::MediaEvent::Failed { .. }))
    })
    .await;
}

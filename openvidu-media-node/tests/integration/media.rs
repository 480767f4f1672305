//! Media through a remote node: publish, subscribe both ways, candidates as events.

use std::sync::atomic::Ordering;

use openvidu_media::{EndpointId, MediaEvent, MediaNode};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_through_a_remote_node() {
    let h = Harness::remote().await;
    let remote = h.extra.remote.clone().unwrap();
    assert_eq!(remote.id().as_str(), "media_Test");
    assert!(remote.is_connected());

    let stream = stream("str_CAM_Rmte_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let publisher_endpoint = EndpointId::Publisher(stream.clone());
    eventually("the publisher connects", || h.connected(&publisher_endpoint)).await;

    // Client offers.
    let sub1 = subscribe_client_offer(&h, &connection("con_Sub1"), &stream).await;
    assert_receives_both(&sub1, 20).await;
    // Node offers.
    let sub2 = subscribe_server_offer(&h, &connection("con_Sub2"), &stream).await;
    assert_receives_both(&sub2, 20).await;
    assert!(sub1.is_connected() && sub2.is_connected());

    // The node's candidates came back as events, for every endpoint, naming its UDP port.
    let port = h.extra.server.lock().unwrap().as_ref().unwrap().local.udp_port().unwrap();
    let events = h.events.lock().unwrap().clone();
    for endpoint in [
        publisher_endpoint.clone(),
        EndpointId::Subscriber { subscriber: connection("con_Sub1"), stream: stream.clone() },
        EndpointId::Subscriber { subscriber: connection("con_Sub2"), stream: stream.clone() },
    ] {
        let candidate = events
            .iter()
            .find_map(|e| match e {
                MediaEvent::IceCandidate { endpoint: ep, candidate, session } if *ep == endpoint => {
                    assert_eq!(*session, h.session);
                    Some(candidate.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("a candidate event for {endpoint}"));
        assert!(candidate.candidate.contains(&format!("127.0.0.1 {port} typ host")), "{candidate:?}");
        assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
        assert!(h.connected(&endpoint), "Connected event for {endpoint}");
    }

    // The load report crosses the wire.
    let load = h.node.load().await;
    assert_eq!((load.routers, load.publishers, load.subscribers), (1, 1, 2));

    // Unsubscribe and unpublish through the remote node stop the media.
    h.node.unsubscribe(&h.session, &connection("con_Sub1"), &stream).await.unwrap();
    h.node.unpublish(&h.session, &stream).await.unwrap();
    let load = h.node.load().await;
    assert_eq!((load.publishers, load.subscribers), (0, 0));
    let before = sub2.video.packets.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let settled = sub2.video.packets.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(sub2.video.packets.load(Ordering::SeqCst) - settled <= 1, "no media after unpublish ({before})");
    h.node.close_router(&h.session).await.unwrap();
    assert_eq!(h.node.load().await.routers, 0);
}

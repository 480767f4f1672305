use std::time::Duration;

use openvidu_media::{EndpointId, MediaConfig, MediaEvent, MediaNode, PublishOptions, UdpPorts};
use webrtc::peer_connection::RTCSessionDescription;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_candidates_name_the_shared_port_and_the_first_mid() {
    let h = Harness::new().await;
    let port = h.node.udp_port().expect("mux mode by default");
    let stream = stream("str_CAM_Cnd0_con_Pub");
    let _publisher = TestPublisher::publish(&h, &stream).await;
    let endpoint = EndpointId::Publisher(stream.clone());
    eventually("a node candidate", || h.events_for_stream(&stream) > 0).await;
    let events = h.events.lock().unwrap().clone();
    let candidate = events
        .iter()
        .find_map(|e| match e {
            MediaEvent::IceCandidate { endpoint: ep, candidate, session } if *ep == endpoint => {
                assert_eq!(*session, h.session);
                Some(candidate.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(candidate.candidate.starts_with("candidate:"), "{candidate:?}");
    assert!(
        candidate.candidate.contains(&format!("127.0.0.1 {port} typ host")),
        "{candidate:?} should name 127.0.0.1:{port}"
    );
    assert_eq!(candidate.sdp_mid.as_deref(), Some("0"));
    assert_eq!(candidate.sdp_m_line_index, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_sent_before_the_endpoint_exists_are_queued_and_used() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Erly_con_Pub");
    let endpoint = EndpointId::Publisher(stream.clone());
    // This client never learns the node's candidates: only the node's checks towards the
    // client's (queued) candidates can connect them.
    let (peer, mut candidates) = h.silent_peer(endpoint.clone()).await;
    let (publisher, offer) = TestPublisher::prepare_with_peer(peer.clone(), &stream).await;
    let first = tokio::time::timeout(DEADLINE, candidates.recv()).await.expect("client gathers a candidate").unwrap();
    h.node.add_ice_candidate(&h.session, endpoint.clone(), first).await.expect("queued");
    // Anything else gathered by now goes too.
    tokio::time::sleep(Duration::from_millis(50)).await;
    while let Ok(c) = candidates.try_recv() {
        h.node.add_ice_candidate(&h.session, endpoint.clone(), c).await.unwrap();
    }
    let answer = h.node.publish(&h.session, &stream, PublishOptions::new(offer)).await.unwrap();
    peer.set_remote(RTCSessionDescription::answer(answer).unwrap()).await;
    publisher.start_media();
    eventually("connected through queued candidates", || h.connected(&endpoint)).await;
    eventually("client connected", || peer.is_connected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_range_works_too() {
    let base = 42_000 + (std::process::id() % 1000) as u16 * 10;
    let mut config = MediaConfig::default();
    config.udp = UdpPorts::Range { min: base, max: base + 9 };
    let h = Harness::with_config(config).await;
    assert_eq!(h.node.udp_port(), None);
    let stream = stream("str_CAM_Rnge_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let peer = subscribe_client_offer(&h, &connection("con_Sub"), &stream).await;
    assert_receives_both(&peer, 10).await;
    let events = h.events.lock().unwrap().clone();
    for e in events {
        if let MediaEvent::IceCandidate { candidate, .. } = e {
            let port: u16 = candidate.candidate.split_whitespace().nth(5).unwrap().parse().unwrap();
            assert!((base..=base + 9).contains(&port), "{candidate:?}");
        }
    }
}

/// `0.0.0.0` binds the mux on every interface and advertises the machine's non-loopback
/// addresses. Skipped on a machine without one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unspecified_address_means_every_interface() {
    let mut config = MediaConfig::default();
    config.ice_host_addresses = vec!["0.0.0.0".parse().unwrap()];
    let h = Harness::with_config(config).await;
    let stream = stream("str_CAM_Wild_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    eventually("a node candidate", || h.events_for_stream(&stream) > 0).await;
    let events = h.events.lock().unwrap().clone();
    let ip = events
        .iter()
        .find_map(|e| match e {
            MediaEvent::IceCandidate { candidate, .. } => {
                candidate.candidate.split_whitespace().nth(4).map(str::to_owned)
            }
            _ => None,
        })
        .unwrap();
    if ip == "0.0.0.0" {
        eprintln!("no non-loopback interface: skipped");
        return;
    }
    assert_ne!(ip, "127.0.0.1");
    eventually("publisher connected", || h.connected(&EndpointId::Publisher(stream.clone()))).await;
}

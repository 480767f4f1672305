use std::sync::atomic::Ordering;

use openvidu_media::{EndpointId, MediaNode};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_stream_connects_and_its_media_reaches_the_node() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_AAAA_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();

    let endpoint = EndpointId::Publisher(stream.clone());
    eventually("publisher Connected event", || h.connected(&endpoint)).await;
    eventually("client connected", || publisher.peer.is_connected()).await;
    let router = h.node.router(&h.session).unwrap();
    let node_side = router.publisher(&stream).expect("registered");
    eventually("node receives RTP", || node_side.packets_received() >= 20).await;
    assert!(publisher.sent_audio.load(Ordering::SeqCst) > 0);

    // The bandwidth cap (1000 kbps by default) reaches the publisher as REMB.
    eventually("REMB at the publisher", || publisher.remb_bps.load(Ordering::SeqCst) == 1_000_000).await;

    let load = h.node.load().await;
    assert_eq!((load.routers, load.publishers, load.subscribers), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_keeps_one_video_codec_and_announces_the_bandwidth() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_BBBB_con_Pub");
    let (_publisher, offer) = TestPublisher::prepare(&h, &stream).await;
    let mut options = openvidu_media::PublishOptions::new(offer);
    options.max_recv_bandwidth_kbps = 600;
    let answer = h.node.publish(&h.session, &stream, options).await.unwrap();
    let video = &answer[answer.find("m=video").expect("video section")..];
    assert!(video.contains("b=AS:600"), "{answer}");
    assert!(video.contains("VP8/90000"), "{answer}");
    assert!(video.contains("a=recvonly"), "{answer}");
    assert!(answer.contains("opus/48000/2"), "{answer}");
}

/// The `a=fingerprint` line of an SDP.
fn fingerprint(sdp: &str) -> Option<&str> {
    sdp.lines().find(|l| l.starts_with("a=fingerprint:")).map(str::trim_end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_peer_connection_of_a_node_shows_its_one_certificate() {
    let h = Harness::new().await;
    let mut fingerprints = Vec::new();
    for name in ["str_CAM_CCCC_con_Pub", "str_CAM_DDDD_con_Pub"] {
        let stream = stream(name);
        let (_publisher, offer) = TestPublisher::prepare(&h, &stream).await;
        let answer = h.node.publish(&h.session, &stream, openvidu_media::PublishOptions::new(offer)).await.unwrap();
        fingerprints.push(fingerprint(&answer).expect("a fingerprint").to_owned());
    }
    assert_eq!(fingerprints[0], fingerprints[1]);
    // Another node, another certificate.
    let other = Harness::new().await;
    let stream = stream("str_CAM_EEEE_con_Pub");
    let (_publisher, offer) = TestPublisher::prepare(&other, &stream).await;
    let answer = other.node.publish(&other.session, &stream, openvidu_media::PublishOptions::new(offer)).await.unwrap();
    assert_ne!(fingerprint(&answer).expect("a fingerprint"), fingerprints[0]);
}

//! What the fan-out does for a subscriber's connection when it sends the connection's RTP itself
//! (mux mode, the default): retransmissions answering the subscriber's NACKs, and sender reports.
//! In range mode the connection's own pipeline does both; the same tests hold there.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use openvidu_media::{EndpointId, MediaConfig, MediaEvent, MediaNode, UdpPorts};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use webrtc::peer_connection::RTCSessionDescription;

use crate::support::*;

/// A node in range mode, on ports of its own (`offset` keeps tests running at once apart).
async fn range_mode(offset: u16) -> Arc<Harness> {
    let base = 43_000 + (std::process::id() % 500) as u16 * 40 + offset;
    let mut config = MediaConfig::default();
    config.udp = UdpPorts::Range { min: base, max: base + 9 };
    Harness::with_config(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_again_what_it_lost_and_asked_for() {
    retransmissions(Harness::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_again_what_it_lost_and_asked_for_in_range_mode() {
    retransmissions(range_mode(0).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_sender_reports_for_both_tracks_counting_what_it_was_sent() {
    sender_reports(Harness::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_gets_sender_reports_in_range_mode_too() {
    sender_reports(range_mode(20).await).await;
}

async fn retransmissions(h: Arc<Harness>) {
    let stream = stream("str_CAM_Nack_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    // A subscriber behind a relay that loses one video packet in ten on its way to it.
    let subscriber = connection("con_Lossy");
    let endpoint = EndpointId::Subscriber { subscriber: subscriber.clone(), stream: stream.clone() };
    let relay = LossyRelay::start().await;
    let (peer, mut candidates) = h.silent_peer(endpoint.clone()).await;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
        peer.pc.add_transceiver_from_kind(kind, Some(init)).await.unwrap();
    }
    let offer = peer.pc.create_offer(None).await.unwrap();
    let sdp = offer.sdp.clone();
    peer.pc.set_local_description(offer).await.unwrap();
    let answer = h.node.subscribe(&h.session, &subscriber, &stream, sdp).await.expect("subscribe");
    peer.set_remote(RTCSessionDescription::answer(answer).unwrap()).await;
    let first = tokio::time::timeout(DEADLINE, candidates.recv()).await.expect("a client candidate").unwrap();
    h.node.add_ice_candidate(&h.session, endpoint.clone(), relay.client_candidate(&first)).await.unwrap();
    let node_candidate = loop {
        let found = h.events.lock().unwrap().iter().find_map(|e| match e {
            MediaEvent::IceCandidate { endpoint: at, candidate, .. } if *at == endpoint => Some(candidate.clone()),
            _ => None,
        });
        if let Some(c) = found {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    peer.add_node_candidate(relay.node_candidate(&node_candidate)).await;
    assert_receives_both(&peer, 5).await;

    *relay.lose.lock().unwrap() = Some((96, 10));
    eventually("ten lost video packets received again", || relay.recovered.load(Ordering::SeqCst) >= 10).await;
    assert_receives_both(&peer, 20).await;
    let lost = relay.lost.lock().unwrap().len() as u64;
    let recovered = relay.recovered.load(Ordering::SeqCst);
    // The last few may still be on their way.
    assert!(recovered + 5 >= lost, "{recovered} of {lost} lost packets came again");
}

async fn sender_reports(h: Arc<Harness>) {
    let stream = stream("str_CAM_Srep_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let peer = subscribe_client_offer(&h, &connection("con_Reports"), &stream).await;
    assert_receives_both(&peer, 5).await;
    eventually("sender reports for two SSRCs, twice each", || {
        let reports = peer.wire.sender_reports.lock().unwrap();
        let ssrcs: HashSet<u32> = reports.iter().map(|r| r.0).collect();
        ssrcs.len() == 2 && ssrcs.iter().all(|s| reports.iter().filter(|r| r.0 == *s).count() >= 2)
    })
    .await;
    let reports = peer.wire.sender_reports.lock().unwrap().clone();
    for ssrc in reports.iter().map(|r| r.0).collect::<HashSet<_>>() {
        let of: Vec<_> = reports.iter().filter(|r| r.0 == ssrc).collect();
        let (first, last) = (of[0], of[of.len() - 1]);
        assert!(first.1 > 0, "a report counts the packets sent before it");
        assert!(last.1 > first.1, "the count grows while media flows");
        assert_ne!(last.2, first.2, "the RTP time follows the clock");
    }
}

use std::sync::atomic::Ordering;
use std::time::Duration;

use openvidu_media::{EndpointId, MediaNode};
use rtc::rtp;
use webrtc::media_stream::track_local::TrackLocal;

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

/// The node asks a publisher again for the video packets it did not get, and for nothing else
/// (the crate's NACK generator in `GapNackGenerator`, in the publisher's connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_asks_a_publisher_again_for_the_video_packets_it_missed() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Gaps_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    eventually("publisher Connected event", || h.connected(&EndpointId::Publisher(stream.clone()))).await;
    eventually("client connected", || publisher.peer.is_connected()).await;

    let missed = [1020u16, 1021];
    for seq in (1000u16..1060).filter(|seq| !missed.contains(seq)) {
        let header = rtp::header::Header {
            version: 2,
            marker: true,
            payload_type: 96,
            sequence_number: seq,
            timestamp: u32::from(seq) * 3000,
            ssrc: VIDEO_SSRC,
            ..Default::default()
        };
        let packet =
            rtc::rtp::Packet { header, payload: payload(rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video, seq) };
        publisher.video.write_rtp(packet).await.expect("sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let asked = || publisher.peer.wire.nacked.lock().unwrap().clone();
    eventually("NACKs for the two missed packets", || missed.iter().all(|seq| asked().contains(&(VIDEO_SSRC, *seq))))
        .await;
    assert!(asked().iter().all(|(ssrc, seq)| *ssrc == VIDEO_SSRC && missed.contains(seq)), "{:?}", asked());
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

use std::sync::atomic::Ordering;
use std::time::Duration;

use openvidu_media::{EndpointId, MediaConfig, MediaNode};

use crate::support::*;

async fn n_subscribers_receive_both_tracks(n: usize) {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Nsub_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let mut subscribers = Vec::new();
    for i in 0..n {
        let sub = connection(&format!("con_Sub{i}"));
        subscribers.push(subscribe_client_offer(&h, &sub, &stream).await);
    }
    for (i, peer) in subscribers.iter().enumerate() {
        eventually(&format!("subscriber {i} connected"), || peer.is_connected()).await;
        assert_receives_both(peer, 15).await;
        // The node rewrote the payload type to what this subscriber negotiated.
        assert_eq!(peer.video.payload_type.load(Ordering::SeqCst), 96);
        assert_eq!(peer.audio.payload_type.load(Ordering::SeqCst), 111);
        let endpoint =
            EndpointId::Subscriber { subscriber: connection(&format!("con_Sub{i}")), stream: stream.clone() };
        eventually("subscriber Connected event", || h.connected(&endpoint)).await;
    }
    let load = h.node.load().await;
    assert_eq!((load.publishers, load.subscribers), (1, n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_offering_subscriber_receives_both_tracks() {
    n_subscribers_receive_both_tracks(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_client_offering_subscribers_receive_both_tracks() {
    n_subscribers_receive_both_tracks(5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_offered_subscriber_receives_both_tracks() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Srv0_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let peer = subscribe_server_offer(&h, &connection("con_Sub"), &stream).await;
    eventually("connected", || peer.is_connected()).await;
    assert_receives_both(&peer, 15).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_offering_subscribers_share_a_stream() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Mix0_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let a = subscribe_client_offer(&h, &connection("con_A"), &stream).await;
    let b = subscribe_server_offer(&h, &connection("con_B"), &stream).await;
    assert_receives_both(&a, 10).await;
    assert_receives_both(&b, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_came_before_the_media_gets_it_once_it_flows() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Earl_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    let peer = subscribe_client_offer(&h, &connection("con_Sub"), &stream).await;
    eventually("subscriber connected", || peer.is_connected()).await;
    assert_eq!(peer.video.packets.load(Ordering::SeqCst), 0);
    publisher.start_media();
    assert_receives_both(&peer, 10).await;
}

/// A subscriber whose connection comes up after the publisher's last keyframe starts from it:
/// the node sends that keyframe and every packet after it, from its history. The publisher has
/// stopped sending, so that nothing else could reach the subscriber; once the keyframe is older
/// than `keyframe_replay_age`, a subscriber gets nothing. This also needs the client's
/// connection to decrypt SRTP that arrives right behind the DTLS handshake's last flight (the
/// vendored `rtc`'s `handle_read`), which the replay is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_coming_up_after_a_keyframe_starts_from_it() {
    let replay_age = Duration::from_secs(5);
    let mut config = MediaConfig::default();
    config.keyframe_replay_age = replay_age;
    let h = Harness::with_config(config).await;
    let stream = stream("str_CAM_Rply_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    // A subscriber before, so that the node forwards (and keeps) the publisher's packets.
    let first = subscribe_client_offer(&h, &connection("con_First"), &stream).await;
    eventually("a keyframe at the first subscriber", || first.video.keyframes.load(Ordering::SeqCst) > 0).await;
    let packets = first.video.packets.load(Ordering::SeqCst);
    eventually("packets after it", || first.video.packets.load(Ordering::SeqCst) > packets + 3).await;
    publisher.stop_media();
    let stopped = std::time::Instant::now();

    let late = subscribe_client_offer(&h, &connection("con_Late"), &stream).await;
    eventually("the late subscriber's keyframe", || late.video.keyframes.load(Ordering::SeqCst) > 0).await;
    let got = late.video.packets.load(Ordering::SeqCst);
    // The test publisher sends a keyframe every 30 packets: the replay is the last one and
    // what followed it, intact.
    assert!((1..=30).contains(&got), "{got} packets replayed");
    assert_eq!(late.video.corrupt.load(Ordering::SeqCst), 0);
    assert_eq!(late.audio.packets.load(Ordering::SeqCst), 0, "audio is not replayed");

    // The same keyframe, too old now: the subscriber needs a new one, which never comes.
    tokio::time::sleep(
        (stopped + replay_age + Duration::from_millis(500)).saturating_duration_since(std::time::Instant::now()),
    )
    .await;
    let too_late = subscribe_client_offer(&h, &connection("con_TooLate"), &stream).await;
    eventually("the last subscriber connected", || too_late.is_connected()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(too_late.video.packets.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_pli_reaches_the_publisher() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Pli0_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let peer = subscribe_client_offer(&h, &connection("con_Sub"), &stream).await;
    assert_receives_both(&peer, 5).await;
    // The node asks for a keyframe by itself when a subscriber connects; count from here.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = publisher.plis.load(Ordering::SeqCst);
    peer.send_pli().await;
    eventually("PLI at the publisher", || publisher.plis.load(Ordering::SeqCst) > before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_plis_is_rate_limited() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Pli1_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let peer = subscribe_client_offer(&h, &connection("con_Sub"), &stream).await;
    assert_receives_both(&peer, 5).await;
    let start = std::time::Instant::now();
    let before = publisher.plis.load(Ordering::SeqCst);
    let keyframes_before = peer.video.keyframes.load(Ordering::SeqCst);
    for _ in 0..20 {
        peer.send_pli().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The burst is answered by one merged PLI, or by a keyframe the publisher sent meanwhile
    // of its own (the test publisher sends one every 30 packets), which makes a PLI needless.
    let last = start.elapsed();
    eventually("a merged PLI at the publisher or a keyframe at the subscriber", || {
        publisher.plis.load(Ordering::SeqCst) > before || peer.video.keyframes.load(Ordering::SeqCst) > keyframes_before
    })
    .await;
    assert!(start.elapsed() < last + Duration::from_millis(1500), "the burst waited for its keyframe too long");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let got = publisher.plis.load(Ordering::SeqCst) - before;
    // One request per 500 ms at most (plus one boundary), whatever the burst.
    let allowed = (start.elapsed().as_millis() / 500) as u32 + 2;
    assert!(got <= allowed, "{got} PLIs, at most {allowed} allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublish_stops_forwarding_and_nothing_is_emitted_afterwards() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Unpb_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let peers = [
        subscribe_client_offer(&h, &connection("con_S1"), &stream).await,
        subscribe_server_offer(&h, &connection("con_S2"), &stream).await,
    ];
    for peer in &peers {
        assert_receives_both(peer, 10).await;
    }

    h.node.unpublish(&h.session, &stream).await.unwrap();
    let events_after = h.events_for_stream(&stream);
    let received_after: Vec<u64> =
        peers.iter().map(|p| p.video.packets.load(Ordering::SeqCst) + p.audio.packets.load(Ordering::SeqCst)).collect();
    // The publisher keeps sending; nothing may come out of the node.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (peer, before) in peers.iter().zip(received_after) {
        let now = peer.video.packets.load(Ordering::SeqCst) + peer.audio.packets.load(Ordering::SeqCst);
        assert_eq!(now, before, "no packet after unpublish");
    }
    assert_eq!(h.events_for_stream(&stream), events_after, "no event after unpublish");
    let load = h.node.load().await;
    assert_eq!((load.publishers, load.subscribers), (0, 0));
    // Gone for good.
    let err = h.node.unsubscribe(&h.session, &connection("con_S1"), &stream).await.unwrap_err();
    assert_eq!(err.rpc_code(), 102);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_one_subscriber_only() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Unsb_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let a = subscribe_client_offer(&h, &connection("con_A"), &stream).await;
    let b = subscribe_client_offer(&h, &connection("con_B"), &stream).await;
    assert_receives_both(&a, 5).await;
    assert_receives_both(&b, 5).await;
    h.node.unsubscribe(&h.session, &connection("con_A"), &stream).await.unwrap();
    let a_after = a.video.packets.load(Ordering::SeqCst);
    assert_receives_both(&b, 10).await;
    assert_eq!(a.video.packets.load(Ordering::SeqCst), a_after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_again_replaces_the_previous_endpoint() {
    let h = Harness::new().await;
    let stream = stream("str_CAM_Resb_con_Pub");
    let publisher = TestPublisher::publish(&h, &stream).await;
    publisher.start_media();
    let sub = connection("con_Again");
    let first = subscribe_client_offer(&h, &sub, &stream).await;
    assert_receives_both(&first, 5).await;
    let second = subscribe_client_offer(&h, &sub, &stream).await;
    assert_receives_both(&second, 10).await;
    let load = h.node.load().await;
    assert_eq!(load.subscribers, 1);
    first.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_only_stream_reaches_a_subscriber_that_offered_audio_too() {
    let h = Harness::new().await;
    let stream = stream("str_SCR_Vonl_con_Pub");
    let peer = h.peer(EndpointId::Publisher(stream.clone()), true).await;
    let (publisher, offer) = TestPublisher::prepare_tracks(peer, &stream, false).await;
    let mut options = openvidu_media::PublishOptions::new(offer);
    options.has_audio = false;
    let answer = h.node.publish(&h.session, &stream, options).await.unwrap();
    publisher.peer.set_remote(webrtc::peer_connection::RTCSessionDescription::answer(answer).unwrap()).await;
    publisher.start_media();
    let sub = subscribe_client_offer(&h, &connection("con_Sub"), &stream).await;
    let before = sub.video.packets.load(Ordering::SeqCst);
    eventually("video packets", || sub.video.packets.load(Ordering::SeqCst) >= before + 10).await;
    assert_eq!(sub.video.corrupt.load(Ordering::SeqCst), 0);
    assert_eq!(sub.audio.packets.load(Ordering::SeqCst), 0);
    let server = subscribe_server_offer(&h, &connection("con_Srv"), &stream).await;
    eventually("video packets (server offer)", || server.video.packets.load(Ordering::SeqCst) >= 10).await;
}

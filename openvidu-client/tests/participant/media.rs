//! Publishing and subscribing through the SFU.

use std::time::Duration;

use openvidu_client::OpenViduRole;
use openvidu_client::participant::{
    JoinOptions, MediaSource, Negotiation, Participant, ParticipantError, ParticipantEvent, PublishOptions,
};

use super::{Harness, eventually, expect_event, light, received_from, receives};

#[tokio::test]
async fn two_participants_receive_each_others_audio_and_video() {
    let h = Harness::start().await;
    let session = h.session("media-two").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    let sa = a.publish(light()).await.expect("a publishes");
    assert!(sa.as_str().ends_with(a.connection_id().as_str()), "stream ids end with the owner: {sa}");
    assert_eq!(a.publish(light()).await.unwrap_err().to_string(), format!("already publishing {sa}"));
    // b subscribes to what is there and to what comes.
    let sb = b.publish(light()).await.expect("b publishes");
    assert_eq!(b.subscribe_all().await.unwrap(), vec![sa.clone()]);
    expect_event(
        &a,
        "b's stream",
        |e| matches!(e, ParticipantEvent::StreamPublished { stream, .. } if stream.id == sb),
    )
    .await;
    a.subscribe(&sb).await.expect("a subscribes");
    assert!(matches!(a.subscribe(&sa).await, Err(ParticipantError::Config(_))), "not its own stream");
    receives(&a, &b).await;
    receives(&b, &a).await;

    let stats = b.stats();
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert!(s.connected);
    assert_eq!((&s.stream_id, &s.publisher), (&sa, a.connection_id()));
    assert!(s.video.frames > 0 && s.video.keyframes > 0, "{s:?}");
    assert!(s.video.bytes >= s.video.packets * 200, "{s:?}");
    let p50 = s.video.latency_percentile(0.5).expect("latency samples");
    assert!(p50 < Duration::from_secs(1), "loopback forwarding takes {p50:?}");
    assert!(s.audio.latency_percentile(0.99).is_some());

    // The REST API sees the publishers and subscribers.
    session.fetch().await.unwrap();
    let ca = session.connection(a.connection_id()).unwrap();
    assert_eq!(ca.publishers.len(), 1);
    assert_eq!(ca.subscribers.len(), 1);

    a.unsubscribe(b.connection_id()).await.expect("a unsubscribes");
    assert!(a.stats().is_empty());
    assert!(matches!(a.unsubscribe(b.connection_id()).await, Err(ParticipantError::NotSubscribed(_))));
    a.leave().await.unwrap();
    b.leave().await.unwrap();
    assert!(matches!(a.publish(light()).await, Err(ParticipantError::Closed)));
}

#[tokio::test]
async fn ten_participants_all_receive_all_nine_others() {
    let h = Harness::start().await;
    let session = h.session("media-ten").await;
    let mut bots = Vec::new();
    for i in 0..10 {
        bots.push(h.join(&session, OpenViduRole::Publisher, &format!("bot{i}")).await);
    }
    let light = PublishOptions::new(MediaSource::Synthetic { fps: 5, packet_size: 100 });
    for bot in &bots {
        bot.publish(light.clone()).await.expect("publishes");
    }
    for bot in &bots {
        bot.subscribe_all().await.expect("subscribes to all");
    }
    for bot in &bots {
        eventually(&format!("{} receiving 9 streams", bot.connection_id()), || {
            let stats = bot.stats();
            stats.len() == 9 && stats.iter().all(|s| s.audio.packets > 0 && s.video.packets > 0)
        })
        .await;
    }
    for bot in &bots {
        bot.leave().await.unwrap();
    }
}

#[tokio::test]
async fn unpublish_then_publish_again() {
    let h = Harness::start().await;
    let session = h.session("media-republish").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Subscriber, "b").await;
    assert!(matches!(b.publish(light()).await.unwrap_err().rpc_code(), Some(401)), "subscribers may not publish");
    assert!(matches!(a.unpublish().await, Err(ParticipantError::NotPublishing)));
    b.subscribe_all().await.unwrap();
    let first = a.publish(light()).await.unwrap();
    receives(&b, &a).await;

    a.unpublish().await.expect("a unpublishes");
    assert_eq!(a.published_stream(), None);
    let event = expect_event(&b, "the unpublish", |e| matches!(e, ParticipantEvent::StreamUnpublished { .. })).await;
    assert!(
        matches!(event, ParticipantEvent::StreamUnpublished { connection_id, .. } if &connection_id == a.connection_id())
    );
    assert!(b.stats().is_empty(), "the subscription went with the stream");
    assert!(b.remote_streams().is_empty());

    let second = a.publish(light()).await.expect("a publishes again");
    assert_ne!(first, second);
    expect_event(
        &b,
        "the new stream",
        |e| matches!(e, ParticipantEvent::StreamPublished { stream, .. } if stream.id == second),
    )
    .await;
    receives(&b, &a).await;
    assert_eq!(b.subscriptions(), vec![second]);
}

#[tokio::test]
async fn audio_only_and_server_offered_subscriptions() {
    let h = Harness::start().await;
    let session = h.session("media-variants").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let c = h.join(&session, OpenViduRole::Publisher, "c").await;
    let connection = session.create_connection(Default::default()).await.unwrap();
    let b = Participant::join(
        connection.token.as_deref().unwrap(),
        JoinOptions::new().with_negotiation(Negotiation::ServerOffers),
    )
    .await
    .unwrap();
    a.publish(light().with_video(false)).await.unwrap();
    c.publish(light()).await.unwrap();
    b.subscribe_all().await.expect("b subscribes, the server offering");
    eventually("audio only from a", || matches!(received_from(&b, &a), (a, 0) if a > 0)).await;
    receives(&b, &c).await;
    let stats = b.stats();
    let from_a = stats.iter().find(|s| &s.publisher == a.connection_id()).unwrap();
    assert!(from_a.video.packets == 0 && from_a.audio.frames > 0, "{stats:?}");
}

/// Writes an IVF file of `frames` VP8 keyframes (synthetic bitstream, never decoded here).
fn ivf_file(dir: &std::path::Path, frames: u32) -> std::path::PathBuf {
    let mut out = Vec::new();
    out.extend_from_slice(b"DKIF");
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&32u16.to_le_bytes());
    out.extend_from_slice(b"VP80");
    out.extend_from_slice(&320u16.to_le_bytes());
    out.extend_from_slice(&240u16.to_le_bytes());
    out.extend_from_slice(&30u32.to_le_bytes()); // timebase denominator
    out.extend_from_slice(&1u32.to_le_bytes()); // timebase numerator
    out.extend_from_slice(&frames.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for i in 0..frames {
        // A keyframe tag (P=0, show_frame), the start code, 320x240, then 1500 bytes of payload:
        // the payloader splits it into two RTP packets.
        let mut frame = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        frame.extend((0..1500).map(|b| b as u8));
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&u64::from(i).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    let path = dir.join("video.ivf");
    std::fs::write(&path, out).unwrap();
    path
}

#[tokio::test]
async fn publish_vp8_frames_from_an_ivf_file() {
    let h = Harness::start().await;
    let session = h.session("media-ivf").await;
    let dir = tempfile::tempdir().unwrap();
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Publisher, "b").await;
    let missing = PublishOptions::new(MediaSource::IvfFile(dir.path().join("nope.ivf")));
    assert!(matches!(a.publish(missing).await, Err(ParticipantError::MediaSource(_))));
    a.publish(PublishOptions::new(MediaSource::IvfFile(ivf_file(dir.path(), 10)))).await.expect("a publishes the file");
    b.subscribe_all().await.unwrap();
    receives(&b, &a).await;
    eventually("whole frames", || {
        b.stats().first().is_some_and(|s| s.video.frames >= 3 && s.video.packets >= 2 * s.video.frames - 2)
    })
    .await;
    let s = &b.stats()[0];
    assert!(s.video.latency.is_empty(), "real frames carry no send time");
    assert!(s.video.keyframes > 0);
}

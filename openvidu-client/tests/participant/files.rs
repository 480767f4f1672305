//! Publishing real media from files (`MediaSource::Files`): VP8 from IVF, Opus from Ogg.

use std::time::{Duration, Instant};

use openvidu_client::OpenViduRole;
use openvidu_client::participant::{MediaSource, Participant, ParticipantError, PublishOptions};

use super::{Harness, eventually, received_from, receives, test_media};

/// Audio packets and video frames `b` received from `a`.
fn counts(b: &Participant, a: &Participant) -> (u64, u64) {
    b.stats()
        .iter()
        .find(|s| &s.publisher == a.connection_id())
        .map(|s| (s.audio.packets, s.video.frames))
        .unwrap_or((0, 0))
}

#[tokio::test]
async fn publish_real_vp8_and_opus_from_files() {
    let (video, audio) = test_media();
    let h = Harness::start().await;
    let session = h.session("media-files").await;
    let a = h.join(&session, OpenViduRole::Publisher, "a").await;
    let b = h.join(&session, OpenViduRole::Subscriber, "b").await;
    let c = h.join(&session, OpenViduRole::Publisher, "c").await;

    // A requested track needs its file, and each file must be what its track plays.
    let files = |video, audio| PublishOptions::new(MediaSource::Files { video, audio });
    let refused = [
        files(Some(video.clone()), None),
        files(None, Some(audio.clone())),
        files(Some(audio.clone()), Some(audio.clone())),
        files(Some(video.clone()), Some(video.clone())),
        files(Some(video.clone()), Some(video.with_file_name("missing.ogg"))),
    ];
    for options in refused {
        let source = format!("{:?}", options.source);
        let e = a.publish(options).await.expect_err(&source);
        assert!(matches!(e, ParticipantError::MediaSource(_)), "{source}: {e}");
        assert_eq!(a.published_stream(), None);
    }

    a.publish(files(Some(video.clone()), Some(audio.clone()))).await.expect("a publishes both files");
    // An audio-only publication needs no video file.
    c.publish(files(None, Some(audio.clone())).with_video(false)).await.expect("c publishes the Ogg file only");
    b.subscribe_all().await.expect("b subscribes");
    receives(&b, &a).await;
    eventually("audio only from c", || matches!(received_from(&b, &c), (n, 0) if n > 0)).await;

    // Real time: 20 ms Opus packets (50 per second) and 15 frames per second.
    let ((audio0, frames0), t0) = (counts(&b, &a), Instant::now());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (audio1, frames1) = counts(&b, &a);
    let seconds = t0.elapsed().as_secs_f64();
    let audio_rate = (audio1 - audio0) as f64 / seconds;
    let frame_rate = (frames1 - frames0) as f64 / seconds;
    assert!((42.0..=58.0).contains(&audio_rate), "{audio_rate:.1} Opus packets/s, expected ~50");
    assert!((11.0..=19.0).contains(&frame_rate), "{frame_rate:.1} VP8 frames/s, expected ~15");

    println!("from the files: {audio_rate:.1} Opus packets/s, {frame_rate:.1} VP8 frames/s");
    let stats = b.stats();
    let s = stats.iter().find(|s| &s.publisher == a.connection_id()).expect("a's stream");
    // 32 kb/s in 20 ms packets: ~80 bytes each (the synthetic ones are 60).
    let audio_size = s.audio.bytes / s.audio.packets;
    assert!((30..=300).contains(&audio_size), "{audio_size} bytes per Opus packet: {s:?}");
    assert!(s.video.keyframes > 0, "ffmpeg's keyframes (one per second) arrive: {s:?}");
    assert!(s.audio.latency.is_empty() && s.video.latency.is_empty(), "real media carries no send time");
    assert!(s.audio.lost <= s.audio.packets / 20, "little loss on loopback: {s:?}");

    a.leave().await.unwrap();
    b.leave().await.unwrap();
    c.leave().await.unwrap();
}

//! COMPOSED: the session's streams decoded, laid out, mixed and encoded into one MP4 (or one
//! Opus WebM when audio-only), with the thumbnail.

use std::time::{Duration, Instant};

use openvidu::client::{OutputMode, RecordingLayout, RecordingProperties, RecordingStatus, SessionProperties};

use crate::{Harness, assert_duration, decodes_cleanly, duration, probe, streams};

/// Records `participants` publishers for about `seconds`; returns the ffprobe of the MP4.
async fn record_composed(participants: usize, layout: RecordingLayout) -> serde_json::Value {
    let h = Harness::start(120).await;
    let id = format!("Composed{participants}");
    let session = h.session(SessionProperties::builder().custom_session_id(&id).build()).await;
    let mut bots = Vec::new();
    for i in 0..participants {
        bots.push(h.publisher(&session, &format!("P{i}"), false).await);
    }
    let props = RecordingProperties::builder()
        .output_mode(OutputMode::Composed)
        .recording_layout(layout)
        .resolution("640x480")
        .frame_rate(15)
        .build();
    let before_start = Instant::now();
    let started = h.rest.start_recording(session.id(), props).await.expect("the recording starts");
    let t0 = Instant::now();
    assert_eq!(started.status, RecordingStatus::Started);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The recording covers start → the stop request (processing comes after).
    let wall = t0.elapsed().as_secs_f64();
    let stopped = h.rest.stop_recording(&started.id).await.expect("the recording stops");
    let outer = before_start.elapsed().as_secs_f64();
    assert_eq!(stopped.status, RecordingStatus::Ready);
    assert!(stopped.properties.has_audio && stopped.properties.has_video);

    let folder = h.folder(started.id.as_str());
    let mp4 = folder.join(format!("{}.mp4", started.id));
    let p = probe(&mp4);
    assert_eq!(stopped.size, std::fs::metadata(&mp4).expect("the mp4").len(), "size of the MP4");
    let video = streams(&p, "video");
    let audio = streams(&p, "audio");
    assert_eq!(video.len(), 1, "{p}");
    assert_eq!(audio.len(), 1, "{p}");
    assert_eq!(video[0]["codec_name"], "h264");
    assert_eq!((video[0]["width"].as_u64(), video[0]["height"].as_u64()), (Some(640), Some(480)));
    assert_eq!(video[0]["r_frame_rate"], "15/1");
    assert_eq!(audio[0]["codec_name"], "aac");
    assert_duration("MP4 duration", duration(&p), wall, outer, 0.1);
    assert_duration("reported duration", stopped.duration, wall, outer, 0.1);
    decodes_cleanly(&mp4);

    let thumbnail = folder.join(format!("{}.jpg", started.id));
    let t = probe(&thumbnail);
    assert_eq!(streams(&t, "video")[0]["width"].as_u64(), Some(480), "the thumbnail is 480 px wide");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .expect("the folder")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [format!(".recording.{}", started.id), format!("{}.jpg", started.id), format!("{}.mp4", started.id)],
        "no temporary files are left"
    );
    drop(bots);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_participant() {
    record_composed(1, RecordingLayout::BestFit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_participants() {
    record_composed(2, RecordingLayout::BestFit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_participants_picture_in_picture() {
    record_composed(5, RecordingLayout::PictureInPicture).await;
}

/// Audio-only COMPOSED: one Opus WebM, no thumbnail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only() {
    let h = Harness::start(120).await;
    let session = h.session(SessionProperties::builder().custom_session_id("AudioOnly").build()).await;
    let _a = h.publisher(&session, "A", false).await;
    let _b = h.publisher(&session, "B", false).await;
    let props = RecordingProperties::builder().output_mode(OutputMode::Composed).has_video(false).name("voice").build();
    let before_start = Instant::now();
    let started = h.rest.start_recording(session.id(), props).await.expect("the recording starts");
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The recording covers start → the stop request (processing comes after).
    let wall = t0.elapsed().as_secs_f64();
    let stopped = h.rest.stop_recording(&started.id).await.expect("the recording stops");
    let outer = before_start.elapsed().as_secs_f64();
    assert_eq!(stopped.status, RecordingStatus::Ready);
    assert!(stopped.url.as_deref().is_some_and(|u| u.ends_with("/voice.webm")), "{:?}", stopped.url);
    let webm = h.folder(started.id.as_str()).join("voice.webm");
    let p = probe(&webm);
    assert!(streams(&p, "video").is_empty(), "{p}");
    assert_eq!(streams(&p, "audio")[0]["codec_name"], "opus");
    assert_duration("WebM duration", duration(&p), wall, outer, 0.1);
    decodes_cleanly(&webm);
    assert!(!h.folder(started.id.as_str()).join(format!("{}.jpg", started.id)).exists());
}

/// CUSTOM layouts are refused with a clear 422 and the session stays recordable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_layout_is_refused() {
    let h = Harness::start(120).await;
    let session = h.session(SessionProperties::builder().custom_session_id("CustomLayout").build()).await;
    let _a = h.join(&session, "A", false).await;
    let props = RecordingProperties::builder().recording_layout(RecordingLayout::Custom).build();
    let err = h.rest.start_recording(session.id(), props).await.expect_err("CUSTOM is refused");
    assert_eq!(err.status(), Some(422));
    let ok = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    let r = h.rest.start_recording(session.id(), ok).await.expect("another recording starts");
    h.rest.stop_recording(&r.id).await.expect("and stops");
}

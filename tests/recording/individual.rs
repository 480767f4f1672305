//! INDIVIDUAL: one WebM per stream in a zip with the sync file (spec §3.3–3.4).

use std::io::Read;
use std::time::{Duration, Instant};

use openvidu::client::{OutputMode, RecordingProperties, RecordingStatus, SessionProperties};
use openvidu::core::wire::recording::IndividualSyncJson;

use crate::{Harness, assert_close, decodes_cleanly, duration, probe, streams};

fn since(origin: Instant, at: Instant) -> i64 {
    at.duration_since(origin).as_millis() as i64
}

/// Three publishers: A from the start, B leaves early, C joins late; D does not record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_publishers_one_late_one_early() {
    let h = Harness::start(120).await;
    let session = h.session(SessionProperties::builder().custom_session_id("IndividualRec").build()).await;
    let a = h.publisher(&session, "A", true).await;
    let b = h.publisher(&session, "B", true).await;
    let d = h.publisher(&session, "D", false).await;

    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).name("individual").build();
    let before = Instant::now();
    let started = h.rest.start_recording(session.id(), props).await.expect("the recording starts");
    let origin = before + (Instant::now() - before) / 2;
    assert_eq!(started.status, RecordingStatus::Started);
    assert_eq!(started.properties.name, "individual");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c = h.publisher(&session, "C", true).await;
    let c_joined = since(origin, Instant::now());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    b.leave().await.expect("B leaves");
    let b_left = since(origin, Instant::now());
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let wall = since(origin, Instant::now()) as f64 / 1000.0;
    let stopped = h.rest.stop_recording(&started.id).await.expect("the recording stops");
    assert_eq!(stopped.status, RecordingStatus::Ready, "CE answers stop with the processed recording");
    assert!(stopped.size > 0);
    assert_close("recording duration", stopped.duration, wall, 0.1);
    assert!(stopped.url.as_deref().is_some_and(|u| u.ends_with("/individual.zip")), "url: {:?}", stopped.url);

    // The folder holds the entity file and the zip; the loose files are gone.
    let folder = h.folder(started.id.as_str());
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .expect("the recording folder")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [format!(".recording.{}", started.id), "individual.zip".to_owned()]);

    let zip_path = folder.join("individual.zip");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("the zip")).expect("a zip archive");
    let mut sync_text = String::new();
    zip.by_name("individual.json").expect("the sync file").read_to_string(&mut sync_text).expect("utf-8");
    let sync: IndividualSyncJson = serde_json::from_str(&sync_text).expect("the sync file parses");
    assert_eq!(sync.id, started.id);
    assert_eq!(sync.name, "individual");
    assert_eq!(sync.session_id.as_str(), "IndividualRec");
    assert_eq!(sync.created_at, started.created_at);
    let mut in_zip: Vec<String> = zip.file_names().map(|n| n.expect("a file name").into_owned()).collect();
    in_zip.sort();
    let mut listed: Vec<String> = sync.files.iter().map(|f| f.name.clone()).collect();
    listed.push("individual.json".into());
    listed.sort();
    assert_eq!(in_zip, listed, "the zip holds exactly the files the sync file lists");
    assert_eq!(sync.files.len(), 3, "A, B and C record; D has record=false");

    let file_of = |who: &str| {
        sync.files.iter().find(|f| f.server_data == who).unwrap_or_else(|| panic!("no file for {who}: {sync_text}"))
    };
    let (fa, fb, fc) = (file_of("A"), file_of("B"), file_of("C"));
    assert_eq!(fa.client_data, "client-A");
    assert_eq!(fa.stream_id, a.published_stream().expect("A's stream"));
    assert_eq!(fa.name, format!("{}.webm", fa.stream_id));
    assert!(fa.has_audio && fa.has_video);
    assert!(fa.start_time_offset.abs() <= 200, "A records from the start: {}", fa.start_time_offset);
    assert!((fb.end_time_offset - b_left).abs() <= 200, "B's end {} vs leave {b_left}", fb.end_time_offset);
    assert!((fc.start_time_offset - c_joined).abs() <= 200, "C's start {} vs join {c_joined}", fc.start_time_offset);
    let total: u64 = sync.files.iter().map(|f| f.size).sum();
    assert_eq!(total, stopped.size, "size = the sum of the WebM files");

    let dir = tempfile::tempdir().expect("a temporary folder");
    zip.extract(dir.path()).expect("the zip extracts");
    for f in &sync.files {
        let path = dir.path().join(&f.name);
        assert_eq!(std::fs::metadata(&path).expect("the webm").len(), f.size);
        let p = probe(&path);
        assert_eq!(p["format"]["format_name"].as_str().map(|n| n.contains("webm")), Some(true), "{p}");
        let video = streams(&p, "video");
        let audio = streams(&p, "audio");
        assert_eq!(video.len(), 1, "one video track in {}", f.name);
        assert_eq!(audio.len(), 1, "one audio track in {}", f.name);
        assert_eq!(video[0]["codec_name"], "vp8");
        assert_eq!((video[0]["width"].as_u64(), video[0]["height"].as_u64()), (Some(320), Some(240)));
        assert_eq!(audio[0]["codec_name"], "opus");
        let expected = (f.end_time_offset - f.start_time_offset) as f64 / 1000.0;
        assert_close(&format!("duration of {}", f.name), duration(&p), expected, 0.1);
        decodes_cleanly(&path);
    }
    drop((a, c, d));
}

/// A participant that unpublishes and publishes again during the recording leaves one file per
/// stream (`-1` suffixes for the same stream id are covered by openvidu-media's unit tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_again_adds_a_file() {
    let h = Harness::start(120).await;
    let session = h.session(SessionProperties::builder().custom_session_id("IndividualAgain").build()).await;
    let a = h.publisher(&session, "A", true).await;
    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    let started = h.rest.start_recording(session.id(), props).await.expect("the recording starts");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let first = a.published_stream().expect("A's first stream");
    a.unpublish().await.expect("A unpublishes");
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.publish(crate::real_media()).await.expect("A publishes again");
    crate::eventually("the publisher connects", || a.is_publisher_connected()).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stopped = h.rest.stop_recording(&started.id).await.expect("the recording stops");
    assert_eq!(stopped.status, RecordingStatus::Ready);
    assert_eq!(stopped.properties.name, started.id.as_str(), "no name: the id");

    let zip_path = h.folder(started.id.as_str()).join(format!("{}.zip", started.id));
    let zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("the zip")).expect("a zip archive");
    let mut names: Vec<String> = zip.file_names().map(|n| n.expect("a file name").into_owned()).collect();
    names.sort();
    let second = a.published_stream().expect("A's second stream");
    let mut expected = vec![format!("{first}.webm"), format!("{second}.webm"), format!("{}.json", started.id)];
    expected.sort();
    assert_eq!(names, expected);
}

//! The recording lifecycle around the media: ALWAYS mode with the autostop countdown, status
//! codes, restarts, downloads and failures (spec §1.4, §3.2, §3.5).

use std::time::Duration;

use openvidu::client::{OutputMode, RecordingMode, RecordingProperties, RecordingStatus, SessionProperties};
use openvidu::core::id::RecordingId;

use crate::{DEADLINE, Harness};

/// ALWAYS: the first publisher starts the recording; when everyone leaves, the countdown
/// closes the session and the recording ends `ready` with reason automaticStop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_mode_with_autostop() {
    let h = Harness::start(2).await;
    let defaults = RecordingProperties::builder().output_mode(OutputMode::Individual).name("auto").build();
    let session = h
        .session(
            SessionProperties::builder()
                .custom_session_id("Always")
                .recording_mode(RecordingMode::Always)
                .default_recording_properties(defaults)
                .build(),
        )
        .await;
    let id = RecordingId::parse("Always").expect("an id");
    let a = h.join(&session, "A", true).await;
    assert!(h.rest.get_recording(&id).await.is_err(), "nothing records before someone publishes");
    a.publish(crate::real_media()).await.expect("A publishes");
    let started = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(r) = h.rest.get_recording(&id).await
                && r.status == RecordingStatus::Started
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("ALWAYS starts the recording");
    assert_eq!(started.properties.output_mode, OutputMode::Individual);
    // Two seconds of media once it is being written (ICE and DTLS take their time on a busy
    // machine; the duration counts from the first frame written).
    let folder = h.folder(id.as_str());
    tokio::time::timeout(DEADLINE, async {
        loop {
            let writing =
                std::fs::read_dir(&folder).into_iter().flatten().flatten().any(|e| {
                    e.file_name().to_string_lossy().ends_with(".webm") && e.metadata().is_ok_and(|m| m.len() > 0)
                });
            if writing {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("A's stream is being recorded");
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.leave().await.expect("A leaves");
    // The session outlives its last participant while the countdown runs...
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(h.rest.fetch().await.is_ok());
    assert_eq!(h.rest.get_recording(&id).await.expect("the recording").status, RecordingStatus::Started);
    // ...and closes when it ends.
    let ready = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Ok(r) = h.rest.get_recording(&id).await
                && r.status == RecordingStatus::Ready
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the countdown stops the recording");
    assert!(ready.duration > 1.5, "{ready:?}");
    let sessions = reqwest::Client::new()
        .get(format!("{}openvidu/api/sessions/Always", slash(h.server.url())))
        .basic_auth("OPENVIDUAPP", Some(h.server.secret()))
        .send()
        .await
        .expect("GET session");
    assert_eq!(sessions.status(), 404, "automaticStop closed the session");
}

fn slash(url: &str) -> String {
    if url.ends_with('/') { url.to_owned() } else { format!("{url}/") }
}

/// Stop answers 404 for unknown ids and 409 once stopped; delete refuses a recording in
/// progress (409); recordings survive a restart; downloads need the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_restart_and_download() {
    let h = Harness::start(120).await;
    let session = h.session(SessionProperties::builder().custom_session_id("Codes").build()).await;
    let _a = h.publisher(&session, "A", true).await;
    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).name("codes").build();
    let r = h.rest.start_recording(session.id(), props.clone()).await.expect("starts");
    let again = h.rest.start_recording(session.id(), props.clone()).await.expect_err("one at a time");
    assert_eq!(again.status(), Some(409));
    let del = h.rest.delete_recording(&r.id).await.expect_err("in progress");
    assert_eq!(del.status(), Some(409));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = h.rest.stop_recording(&r.id).await.expect("stops");
    assert_eq!(stopped.status, RecordingStatus::Ready);
    assert_eq!(h.rest.stop_recording(&r.id).await.expect_err("stopped").status(), Some(409));
    let unknown = RecordingId::parse("Codes-9").expect("an id");
    assert_eq!(h.rest.stop_recording(&unknown).await.expect_err("unknown").status(), Some(404));

    // The next recording of the session takes the next id.
    let r2 = h.rest.start_recording(session.id(), props).await.expect("starts again");
    assert_eq!(r2.id.as_str(), "Codes-1");
    h.rest.stop_recording(&r2.id).await.expect("stops");

    // Downloads: authenticated.
    let url = stopped.url.clone().expect("a url");
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.expect("GET").status(), 401);
    let file = http.get(&url).basic_auth("OPENVIDUAPP", Some(h.server.secret())).send().await.expect("GET");
    assert_eq!(file.status(), 200);
    assert_eq!(
        file.bytes().await.expect("the zip").len() as u64,
        std::fs::metadata(h.folder("Codes").join("codes.zip")).expect("the zip").len()
    );

    // A new server on the same folder sees both recordings.
    let path = h.recordings.path().to_owned();
    let second = openvidu::server::Server::builder()
        .https(false)
        .recording(true)
        .recording_path(&path)
        .start()
        .await
        .expect("a second server");
    let rest = openvidu::client::OpenVidu::new(second.url(), second.secret()).expect("a client");
    let mut ids: Vec<String> = rest.list_recordings().await.expect("list").iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    assert_eq!(ids, ["Codes", "Codes-1"]);
    rest.delete_recording(&r.id).await.expect("delete");
    assert!(!h.folder("Codes").exists(), "delete removes the folder");
}

/// An unwritable recordings folder: start fails with 500, nothing else is affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_folder_fails_cleanly() {
    let h = Harness::start(120).await;
    let session = h.session(SessionProperties::builder().custom_session_id("Unwritable").build()).await;
    let _a = h.publisher(&session, "A", true).await;
    // A file where the recordings root should be: no folder can be created under it.
    let root = h.recordings.path().to_owned();
    std::fs::remove_dir_all(&root).expect("remove the folder");
    std::fs::write(&root, b"not a folder").expect("a file instead");
    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    let err = h.rest.start_recording(session.id(), props.clone()).await.expect_err("cannot record");
    assert_eq!(err.status(), Some(500));
    std::fs::remove_file(&root).expect("remove the file");
    std::fs::create_dir(&root).expect("the folder again");
    let r = h.rest.start_recording(session.id(), props).await.expect("the session records once the disk is back");
    h.rest.stop_recording(&r.id).await.expect("stops");
}

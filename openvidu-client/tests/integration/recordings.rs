//! Recordings: start/stop answers for sessions without participants, and get/list/delete of
//! recordings found on disk.

use openvidu_client::{OutputMode, RecordingId, RecordingProperties, RecordingStatus, SessionId, SessionProperties};
use openvidu_core::wire::rest::RecordingJson;

use crate::{Harness, Setup, status_of};

/// Puts a recording's entity file where the server looks for it (spec §3.3).
fn plant(h: &Harness, id: &str, created_at: u64, status: &str) {
    let entity = RecordingJson {
        id: RecordingId::parse(id).expect("valid id"),
        object: "recording".into(),
        name: id.into(),
        output_mode: OutputMode::Composed,
        resolution: Some("1280x720".into()),
        frame_rate: Some(25),
        recording_layout: Some(Default::default()),
        custom_layout: None,
        session_id: SessionId::parse("ses_Recorded01").expect("valid id"),
        unique_session_id: Some(format!("ses_Recorded01_{created_at}")),
        media_node: None,
        created_at,
        size: 1234,
        duration: 5.5,
        url: None,
        has_audio: true,
        has_video: true,
        status: serde_json::from_value(status.into()).expect("a status"),
    };
    let dir = h.recordings.path().join(id);
    std::fs::create_dir_all(&dir).expect("a folder");
    std::fs::write(dir.join(format!(".recording.{id}")), serde_json::to_vec(&entity).expect("JSON")).expect("written");
}

fn rid(s: &str) -> RecordingId {
    RecordingId::parse(s).expect("valid id")
}

#[tokio::test]
async fn a_session_without_participants_cannot_be_recorded() {
    let h = Harness::start().await;
    let s = h.client.create_session(SessionProperties::default()).await.expect("created");
    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    assert_eq!(status_of(h.client.start_recording(s.id(), props).await), 406);
    assert_eq!(status_of(h.client.start_recording_with_name(s.id(), "rec").await), 406);
    assert!(!s.is_being_recorded());

    let unknown = SessionId::parse("ses_Unknown000").expect("valid id");
    assert_eq!(status_of(h.client.start_recording(&unknown, RecordingProperties::default()).await), 404);
}

#[tokio::test]
async fn stopping_or_reading_an_unknown_recording_is_a_404() {
    let h = Harness::start().await;
    assert_eq!(status_of(h.client.stop_recording(&rid("ses_Nope")).await), 404);
    assert_eq!(status_of(h.client.get_recording(&rid("ses_Nope")).await), 404);
    assert_eq!(status_of(h.client.delete_recording(&rid("ses_Nope")).await), 404);
    assert!(h.client.list_recordings().await.expect("listed").is_empty());
}

#[tokio::test]
async fn recordings_on_disk_are_read_listed_newest_first_and_deleted() {
    let h = Harness::start().await;
    plant(&h, "ses_Recorded01", 1_000, "ready");
    plant(&h, "ses_Recorded01-1", 3_000, "ready");
    plant(&h, "ses_Recorded01-2", 2_000, "failed");

    let r = h.client.get_recording(&rid("ses_Recorded01-1")).await.expect("found");
    assert_eq!(r.id.as_str(), "ses_Recorded01-1");
    assert_eq!(r.session_id.as_str(), "ses_Recorded01");
    assert_eq!((r.created_at, r.size, r.duration), (3_000, 1234, 5.5));
    assert_eq!(r.status, RecordingStatus::Ready);
    assert_eq!(r.properties.output_mode, OutputMode::Composed);
    assert_eq!(r.properties.resolution, "1280x720");
    let url = r.url.as_deref().expect("a ready recording has a URL");
    assert!(url.ends_with("/openvidu/recordings/ses_Recorded01-1/ses_Recorded01-1.mp4"), "{url}");

    let listed: Vec<String> =
        h.client.list_recordings().await.expect("listed").iter().map(|r| r.id.to_string()).collect();
    assert_eq!(listed, ["ses_Recorded01-1", "ses_Recorded01-2", "ses_Recorded01"]);

    h.client.delete_recording(&rid("ses_Recorded01-2")).await.expect("deleted");
    assert_eq!(status_of(h.client.get_recording(&rid("ses_Recorded01-2")).await), 404);
    assert_eq!(h.client.list_recordings().await.expect("listed").len(), 2);
}

#[tokio::test]
async fn a_recording_in_progress_cannot_be_deleted() {
    let h = Harness::start().await;
    plant(&h, "ses_Recorded01", 1_000, "started");
    assert_eq!(status_of(h.client.delete_recording(&rid("ses_Recorded01")).await), 409);
    let r = h.client.get_recording(&rid("ses_Recorded01")).await.expect("still there");
    assert_eq!(r.status, RecordingStatus::Started);
    assert_eq!(r.url, None);
}

#[tokio::test]
async fn recording_routes_answer_501_when_recording_is_disabled() {
    let h = Harness::with(Setup { https: false, recording: false }).await;
    let s = h.client.create_session(SessionProperties::default()).await.expect("created");
    assert_eq!(status_of(h.client.start_recording(s.id(), RecordingProperties::default()).await), 501);
    assert_eq!(status_of(h.client.stop_recording(&rid("ses_Nope")).await), 501);
    assert_eq!(status_of(h.client.get_recording(&rid("ses_Nope")).await), 501);
    assert_eq!(status_of(h.client.list_recordings().await), 501);
    assert_eq!(status_of(h.client.delete_recording(&rid("ses_Nope")).await), 501);
}

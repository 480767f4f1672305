//! Sessions: create (and the 409 adoption), cache, fetch, close.

use openvidu_client::{
    MediaMode, OutputMode, RecordingMode, RecordingProperties, SessionId, SessionProperties, VideoCodec,
};

use crate::{Harness, status_of};

#[tokio::test]
async fn a_session_with_defaults_gets_a_generated_id_and_is_cached() {
    let h = Harness::start().await;
    let session = h.client.create_session(SessionProperties::default()).await.expect("created");

    let id = session.id().as_str();
    assert!(id.starts_with("ses_") && id.len() == 14, "{id}");
    assert!(session.created_at() > 0);
    assert!(!session.is_being_recorded());
    assert!(session.connections().is_empty());
    let p = session.properties();
    assert_eq!(p.media_mode, MediaMode::Routed);
    assert_eq!(p.recording_mode, RecordingMode::Manual);
    assert_eq!(p.default_recording_properties, RecordingProperties::default());

    let cached = h.client.active_sessions();
    assert_eq!(cached.len(), 1);
    assert_eq!(cached[0].id(), session.id());
}

#[tokio::test]
async fn properties_are_sent_and_read_back() {
    let h = Harness::start().await;
    let defaults =
        RecordingProperties::builder().output_mode(OutputMode::Individual).has_video(false).name("standup").build();
    let properties = SessionProperties::builder()
        .custom_session_id("Room-42_b")
        .recording_mode(RecordingMode::Always)
        .forced_video_codec(VideoCodec::Vp9)
        .allow_transcoding(true)
        .default_recording_properties(defaults.clone())
        .build();
    let session = h.client.create_session(properties).await.expect("created");

    assert_eq!(session.id().as_str(), "Room-42_b");
    let p = session.properties();
    assert_eq!(p.custom_session_id, "Room-42_b");
    assert_eq!(p.recording_mode, RecordingMode::Always);
    assert_eq!(p.forced_video_codec, VideoCodec::Vp9);
    assert!(p.allow_transcoding);
    assert_eq!(p.default_recording_properties.output_mode, OutputMode::Individual);
    assert_eq!(p.default_recording_properties.name, "standup");
    assert!(!p.default_recording_properties.has_video);
    // What another client fetches is what this one cached.
    assert!(!session.fetch().await.expect("fetched"));
}

#[tokio::test]
async fn an_existing_custom_id_is_adopted_not_an_error() {
    let h = Harness::start().await;
    let properties = SessionProperties::builder().custom_session_id("room").build();
    let first = h.client.create_session(properties.clone()).await.expect("created");

    // Same client: the 409 is swallowed and the same cached session comes back.
    let again = h.client.create_session(properties.clone()).await.expect("adopted");
    assert_eq!(again.id(), first.id());
    assert_eq!(again.created_at(), first.created_at());
    assert_eq!(h.client.active_sessions().len(), 1);

    // Another client: the existing session is fetched, with its real creation time.
    let other = h.another_client();
    let adopted = other.create_session(properties).await.expect("adopted");
    assert_eq!(adopted.id(), first.id());
    assert_eq!(adopted.created_at(), first.created_at());
    assert_eq!(other.active_sessions().len(), 1);
}

#[tokio::test]
async fn an_invalid_custom_id_is_a_400() {
    let h = Harness::start().await;
    let bad = SessionProperties::builder().custom_session_id("no spaces!").build();
    assert_eq!(status_of(h.client.create_session(bad).await), 400);
    assert!(h.client.active_sessions().is_empty());
}

#[tokio::test]
async fn fetch_reports_new_changed_and_vanished_sessions() {
    let h = Harness::start().await;
    let watcher = h.another_client();
    assert!(!watcher.fetch().await.expect("fetched"), "nothing on a fresh server");

    let a = h.client.create_session(SessionProperties::default()).await.expect("created");
    let b = h.client.create_session(SessionProperties::default()).await.expect("created");
    assert!(watcher.fetch().await.expect("fetched"), "two new sessions");
    assert!(!watcher.fetch().await.expect("fetched"), "nothing new");
    let mut seen: Vec<SessionId> = watcher.active_sessions().iter().map(|s| s.id().clone()).collect();
    seen.sort();
    let mut expected = vec![a.id().clone(), b.id().clone()];
    expected.sort();
    assert_eq!(seen, expected);

    // A new connection in a session is a change, seen through the watcher's handles too.
    let watched_a = watcher.active_sessions().into_iter().find(|s| s.id() == a.id()).expect("cached");
    assert!(watched_a.connections().is_empty());
    a.create_connection(Default::default()).await.expect("created");
    assert!(watcher.fetch().await.expect("fetched"));
    assert_eq!(watched_a.connections().len(), 1);

    // A vanished session is a change.
    b.close().await.expect("closed");
    assert!(watcher.fetch().await.expect("fetched"));
    assert_eq!(watcher.active_sessions().len(), 1);

    // The creating client's own cache already matches the server.
    assert!(!h.client.fetch().await.expect("fetched"), "b's close uncached it, a's connection is cached");
}

#[tokio::test]
async fn the_creators_cache_matches_the_server() {
    let h = Harness::start().await;
    let s = h.client.create_session(SessionProperties::default()).await.expect("created");
    s.create_connection(Default::default()).await.expect("created");
    assert!(!h.client.fetch().await.expect("fetched"));
    assert!(!s.fetch().await.expect("fetched"));
}

#[tokio::test]
async fn session_fetch_sees_other_clients_changes() {
    let h = Harness::start().await;
    let mine = h.client.create_session(SessionProperties::default()).await.expect("created");
    assert!(!mine.fetch().await.expect("fetched"));

    let other = h.another_client();
    assert!(other.fetch().await.expect("fetched"));
    let theirs = other.active_sessions().pop().expect("cached");
    theirs.create_connection(Default::default()).await.expect("created");

    assert!(mine.fetch().await.expect("fetched"));
    assert_eq!(mine.connections().len(), 1);
    assert!(!mine.fetch().await.expect("fetched"));
}

#[tokio::test]
async fn close_removes_the_session_and_a_second_close_is_a_404() {
    let h = Harness::start().await;
    let s = h.client.create_session(SessionProperties::default()).await.expect("created");
    s.close().await.expect("closed");
    assert!(h.client.active_sessions().is_empty());
    assert_eq!(status_of(s.close().await), 404);
    assert!(!h.client.fetch().await.expect("fetched"));
}

#[tokio::test]
async fn fetching_a_closed_session_is_a_404_and_uncaches_it() {
    let h = Harness::start().await;
    let s = h.client.create_session(SessionProperties::default()).await.expect("created");
    let other = h.another_client();
    other.fetch().await.expect("fetched");
    other.active_sessions()[0].close().await.expect("closed");

    assert_eq!(h.client.active_sessions().len(), 1);
    assert_eq!(status_of(s.fetch().await), 404);
    assert!(h.client.active_sessions().is_empty());
}

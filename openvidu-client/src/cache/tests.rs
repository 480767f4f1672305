use serde_json::{Value, json};

use super::*;

fn session(id: &str, recording: bool, connections: Vec<Value>) -> SessionState {
    let json = json!({
        "id": id, "object": "session", "sessionId": id, "createdAt": 1000,
        "mediaMode": "ROUTED", "recordingMode": "MANUAL",
        "defaultRecordingProperties": {"name": "", "hasAudio": true, "hasVideo": true,
            "outputMode": "COMPOSED", "recordingLayout": "BEST_FIT", "resolution": "1280x720",
            "frameRate": 25, "shmSize": 536870912},
        "customSessionId": "", "recording": recording, "forcedVideoCodec": "VP8",
        "allowTranscoding": false,
        "connections": {"numberOfElements": connections.len(), "content": connections},
    });
    SessionState::from_json(serde_json::from_value(json).expect("valid session JSON"))
}

fn pending(id: &str, created_at: u64) -> Value {
    json!({"id": id, "object": "connection", "status": "pending", "connectionId": id,
        "sessionId": "ses_A", "createdAt": created_at, "type": "WEBRTC", "record": true,
        "role": "PUBLISHER", "kurentoOptions": null, "rtspUri": null, "adaptativeBitrate": null,
        "onlyPlayWithSubscribers": null, "networkCache": null, "serverData": "",
        "token": format!("ws://localhost?sessionId=ses_A&token=tok_{id}"), "activeAt": null,
        "location": null, "ip": null, "platform": null, "clientData": null,
        "publishers": null, "subscribers": null})
}

fn active(id: &str, created_at: u64, publishes: &[&str], subscribes: &[&str]) -> Value {
    let publishers: Vec<Value> = publishes
        .iter()
        .map(|s| {
            json!({"createdAt": created_at + 1, "streamId": s,
            "mediaOptions": {"hasAudio": true, "audioActive": true, "hasVideo": false, "filter": {}}})
        })
        .collect();
    let subscribers: Vec<Value> =
        subscribes.iter().map(|s| json!({"createdAt": created_at + 2, "streamId": s})).collect();
    json!({"id": id, "object": "connection", "status": "active", "connectionId": id,
        "sessionId": "ses_A", "createdAt": created_at, "activeAt": created_at + 1,
        "location": "unknown", "ip": "127.0.0.1", "platform": "Chrome", "token": null,
        "type": "WEBRTC", "record": true, "role": "PUBLISHER", "kurentoOptions": null,
        "rtspUri": null, "adaptativeBitrate": null, "onlyPlayWithSubscribers": null,
        "networkCache": null, "serverData": "", "clientData": "",
        "publishers": publishers, "subscribers": subscribers})
}

fn registry(states: Vec<SessionState>) -> Registry {
    let mut r = Registry::new();
    for s in states {
        upsert(&mut r, s);
    }
    r
}

fn sid(s: &str) -> SessionId {
    SessionId::parse(s).expect("valid id")
}

#[test]
fn fetching_the_same_state_changes_nothing() {
    let mut r = registry(vec![session("ses_A", false, vec![pending("con_A", 1)])]);
    assert!(!apply_fetch(&mut r, vec![session("ses_A", false, vec![pending("con_A", 1)])]));
    assert!(!apply_fetch(&mut Registry::new(), vec![]));
}

#[test]
fn order_of_connections_and_streams_does_not_matter() {
    let a = active("con_A", 1, &["str_MIC_Aaaa_con_A", "str_SCR_Bbbb_con_A"], &[]);
    let a_swapped = active("con_A", 1, &["str_SCR_Bbbb_con_A", "str_MIC_Aaaa_con_A"], &[]);
    let mut r = registry(vec![session("ses_A", false, vec![a, pending("con_B", 2)])]);
    let fresh = session("ses_A", false, vec![pending("con_B", 2), a_swapped]);
    assert!(!apply_fetch(&mut r, vec![fresh]));
}

#[test]
fn new_and_vanished_sessions_count_as_changes() {
    let mut r = registry(vec![session("ses_A", false, vec![])]);
    assert!(apply_fetch(&mut r, vec![session("ses_A", false, vec![]), session("ses_B", false, vec![])]));
    assert_eq!(r.len(), 2);

    assert!(apply_fetch(&mut r, vec![session("ses_B", false, vec![])]));
    assert!(r.contains_key(&sid("ses_B")) && !r.contains_key(&sid("ses_A")));

    assert!(apply_fetch(&mut r, vec![]));
    assert!(r.is_empty());
}

#[test]
fn changed_members_count_and_are_seen_through_existing_handles() {
    let mut r = registry(vec![session("ses_A", false, vec![pending("con_A", 1)])]);
    let handle = Arc::clone(&r[&sid("ses_A")]);

    // The recording flag.
    assert!(apply_fetch(&mut r, vec![session("ses_A", true, vec![pending("con_A", 1)])]));
    assert!(lock(&handle).session.recording);
    assert!(Arc::ptr_eq(&handle, &r[&sid("ses_A")]), "updated in place");

    // A new connection, then a connection becoming active.
    assert!(apply_fetch(&mut r, vec![session("ses_A", true, vec![pending("con_A", 1), pending("con_B", 2)])]));
    assert_eq!(lock(&handle).connections.len(), 2);
    assert!(!lock(&handle).session.active);
    assert!(apply_fetch(&mut r, vec![session("ses_A", true, vec![active("con_A", 1, &[], &[]), pending("con_B", 2)])]));
    assert!(lock(&handle).session.active);

    // A new publisher, a vanished connection.
    assert!(apply_fetch(&mut r, vec![session("ses_A", true, vec![active("con_A", 1, &["str_MIC_Aaaa_con_A"], &[])])]));
    assert_eq!(lock(&handle).connections.len(), 1);
    assert!(!apply_fetch(&mut r, vec![session("ses_A", true, vec![active("con_A", 1, &["str_MIC_Aaaa_con_A"], &[])])]));
}

#[test]
fn session_fetch_reports_changes() {
    let mut s = session("ses_A", false, vec![]);
    assert!(!s.replace(session("ses_A", false, vec![])));
    assert!(s.replace(session("ses_A", false, vec![pending("con_A", 1)])));
    assert!(!s.replace(session("ses_A", false, vec![pending("con_A", 1)])));
}

#[test]
fn local_edits_match_what_the_server_would_answer() {
    let stream = "str_MIC_Aaaa_con_A";
    let mut s = session(
        "ses_A",
        false,
        vec![active("con_A", 1, &[stream], &[]), active("con_B", 2, &[], &[stream]), pending("con_C", 3)],
    );

    s.remove_stream(&StreamId::parse(stream).expect("valid id"));
    assert_eq!(
        s,
        session("ses_A", false, vec![active("con_A", 1, &[], &[]), active("con_B", 2, &[], &[]), pending("con_C", 3)])
    );

    let mut s2 = session("ses_A", false, vec![active("con_A", 1, &[stream], &[]), active("con_B", 2, &[], &[stream])]);
    s2.remove_connection(&ConnectionId::parse("con_A").expect("valid id"));
    assert_eq!(s2, session("ses_A", false, vec![active("con_B", 2, &[], &[])]));
    s2.remove_connection(&ConnectionId::parse("con_B").expect("valid id"));
    assert_eq!(s2, session("ses_A", false, vec![]));
    assert!(!s2.session.active);

    let mut s3 = session("ses_A", false, vec![pending("con_B", 2)]);
    let fresh = session("ses_A", false, vec![pending("con_A", 1)]);
    s3.upsert_connection(fresh.connections[0].clone());
    assert_eq!(s3, session("ses_A", false, vec![pending("con_A", 1), pending("con_B", 2)]));
}

#[test]
fn upsert_keeps_the_shared_state_and_remove_only_drops_the_same_one() {
    let mut r = Registry::new();
    let first = upsert(&mut r, session("ses_A", false, vec![]));
    let again = upsert(&mut r, session("ses_A", true, vec![]));
    assert!(Arc::ptr_eq(&first, &again));
    assert!(lock(&first).session.recording);

    let stranger: SharedState = Arc::new(Mutex::new(session("ses_A", false, vec![])));
    remove_if_same(&mut r, &sid("ses_A"), &stranger);
    assert_eq!(r.len(), 1);
    remove_if_same(&mut r, &sid("ses_A"), &first);
    assert!(r.is_empty());
}

//! Golden fixtures: the JSON our types produce must equal, member order included, the JSON in
//! `tests/golden/`, written from OpenVidu 2.20's code and docs (spec §1.3).

use super::*;
use crate::id::{StreamId, TokenId};
use crate::model::*;

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::to_string(&v).unwrap()
}

fn assert_golden<T: Serialize>(value: &T, name: &str) {
    assert_eq!(serde_json::to_string(value).unwrap(), golden(name), "fixture {name}");
}

fn sid() -> SessionId {
    SessionId::parse("ses_KqW3bX0aZ9").unwrap()
}

fn token() -> String {
    crate::id::Token {
        ws_url: "wss://ov.example.com:4443".into(),
        session_id: sid(),
        token_id: TokenId::parse("tok_Ab12Cd34Ef56Gh78").unwrap(),
    }
    .to_string()
}

fn pending() -> Connection {
    let props = ConnectionProperties {
        data: "server".into(),
        kurento_options: Some(KurentoOptions {
            video_max_recv_bandwidth: Some(1000),
            allowed_filters: Some(vec!["GStreamerFilter".into()]),
            ..Default::default()
        }),
        ..Default::default()
    };
    Connection::pending(ConnectionId::parse("con_Fx9k2LmQ0p").unwrap(), sid(), 1_632_400_001_000, props, Some(token()))
}

fn active() -> Connection {
    let mut c = Connection::pending(
        ConnectionId::parse("con_Fx9k2LmQ0p").unwrap(),
        sid(),
        1_632_400_001_000,
        ConnectionProperties::default(),
        Some(token()),
    );
    c.active = Some(ActiveInfo::new(
        1_632_400_002_000,
        Some("127.0.0.1".into()),
        "Chrome 93.0 on Linux 64-bit".into(),
        "{\"name\":\"alice\"}".into(),
    ));
    c.publishers.push(Publisher {
        stream_id: StreamId::parse("str_CAM_Qa1z_con_Fx9k2LmQ0p").unwrap(),
        created_at: 1_632_400_001_234,
        media_options: MediaOptions {
            has_audio: true,
            audio_active: true,
            has_video: true,
            video_active: true,
            type_of_video: Some(crate::id::TypeOfVideo::Camera),
            frame_rate: Some(30),
            video_dimensions: Some("{\"width\":640,\"height\":480}".into()),
            filter: serde_json::json!({}),
        },
    });
    c.subscribers.push(Subscriber {
        stream_id: StreamId::parse("str_MIC_Zz90_con_Other00001").unwrap(),
        created_at: 1_632_400_003_000,
    });
    c
}

fn recording(status: RecordingStatus) -> Recording {
    let sid = SessionId::parse("ses_A").unwrap();
    Recording {
        id: RecordingId::nth(&sid, 1),
        session_id: sid,
        unique_session_id: Some("ses_A_1632400000000".into()),
        created_at: 1_632_400_100_000,
        size: 0,
        duration: 0.0,
        url: None,
        status,
        properties: RecordingProperties { name: "ses_A-1".into(), ..Default::default() },
    }
}

#[test]
fn session_object() {
    let s = Session::new(sid(), 1_632_400_000_000, SessionProperties::default());
    assert_golden(&SessionJson::new(&s, []), "session.json");
}

#[test]
fn pending_connection_object() {
    assert_golden(&ConnectionJson::from(&pending()), "connection_pending.json");
}

#[test]
fn active_connection_object() {
    assert_golden(&ConnectionJson::from(&active()), "connection_active.json");
}

#[test]
fn connections_round_trip_through_json() {
    for c in [pending(), active()] {
        let json = serde_json::to_string(&ConnectionJson::from(&c)).unwrap();
        let back: ConnectionJson = serde_json::from_str(&json).unwrap();
        assert_eq!(back.into_model(), c);
    }
}

#[test]
fn session_round_trips_with_connections() {
    let s = Session::new(sid(), 5, SessionProperties::default());
    let json = serde_json::to_string(&SessionJson::new(&s, [&active()])).unwrap();
    let (s2, conns) = serde_json::from_str::<SessionJson>(&json).unwrap().into_model();
    assert_eq!(conns, vec![active()]);
    assert!(s2.active);
    assert_eq!(s2.properties, s.properties);
}

#[test]
fn recording_objects() {
    assert_golden(&RecordingJson::rest(&recording(RecordingStatus::Started)), "recording_composed.json");
    assert_golden(&RecordingJson::entity(&recording(RecordingStatus::Started)), "recording_entity.json");
    let mut r = recording(RecordingStatus::Ready);
    r.id = RecordingId::nth(&r.session_id, 0);
    r.properties.name = "meeting".into();
    r.properties.output_mode = OutputMode::Individual;
    r.size = 123_456;
    r.duration = 12.5;
    r.url = Some("https://ov.example.com:4443/openvidu/recordings/ses_A/meeting.zip".into());
    assert_golden(&RecordingJson::rest(&r), "recording_individual.json");
    let back: RecordingJson = serde_json::from_str(&golden("recording_entity.json")).unwrap();
    assert_eq!(back.into_model(), recording(RecordingStatus::Started));
}

#[test]
fn token_object() {
    let mut c = pending();
    c.properties.role = OpenViduRole::Subscriber;
    c.properties.data = "x".into();
    c.properties.kurento_options = None;
    assert_golden(&TokenJson::new(&c), "token.json");
}

#[test]
fn recording_properties_are_conditional() {
    let p = RecordingProperties { output_mode: OutputMode::Individual, ..Default::default() };
    let v = serde_json::to_value(RecordingPropertiesJson::from(&p)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"name":"","hasAudio":true,"hasVideo":true,"outputMode":"INDIVIDUAL","ignoreFailedStreams":false})
    );
    let p = RecordingProperties {
        recording_layout: RecordingLayout::Custom,
        custom_layout: "mine".into(),
        ..Default::default()
    };
    let v = serde_json::to_value(RecordingPropertiesJson::from(&p)).unwrap();
    assert_eq!(v["customLayout"], "mine");
}

#[test]
fn session_request_defaults_and_checks() {
    let d = RequestDefaults::default();
    let (custom, p) = serde_json::from_str::<CreateSessionRequest>("{}").unwrap().into_properties(&d).unwrap();
    assert!(custom.is_none());
    assert_eq!(p, SessionProperties::default());
    let r: CreateSessionRequest =
        serde_json::from_str(r#"{"customSessionId":"Room-42_b","mediaMode":null,"mediaNode":{"id":"media_A"}}"#)
            .unwrap();
    let (custom, p) = r.into_properties(&d).unwrap();
    assert_eq!(custom.unwrap().as_str(), "Room-42_b");
    assert_eq!(p.custom_session_id, "Room-42_b");
    assert_eq!(p.media_node.unwrap().as_str(), "media_A");
    let bad: CreateSessionRequest = serde_json::from_str(r#"{"customSessionId":"a b"}"#).unwrap();
    assert_eq!(bad.into_properties(&d).unwrap_err().status(), 400);
    assert!(serde_json::from_str::<CreateSessionRequest>(r#"{"mediaMode":"FOO"}"#).is_err());
    assert!(serde_json::from_str::<CreateSessionRequest>(r#"{"allowTranscoding":"true"}"#).is_err());
}

#[test]
fn what_the_java_client_sends_parses() {
    let java = r#"{"session":"ses_A","type":null,"data":null,"record":null,"role":null,"kurentoOptions":null,"rtspUri":null,"adaptativeBitrate":null,"onlyPlayWithSubscribers":null,"networkCache":null}"#;
    let p = serde_json::from_str::<CreateConnectionRequest>(java).unwrap().into_properties().unwrap();
    assert_eq!(p, ConnectionProperties::default());
}

#[test]
fn ipcam_connections_need_a_valid_uri() {
    let r: CreateConnectionRequest = serde_json::from_str(r#"{"type":"IPCAM"}"#).unwrap();
    assert_eq!(r.into_properties().unwrap_err().status(), 400);
    let r: CreateConnectionRequest = serde_json::from_str(r#"{"type":"IPCAM","rtspUri":"http://x"}"#).unwrap();
    assert_eq!(r.into_properties().unwrap_err().status(), 400);
    let r: CreateConnectionRequest = serde_json::from_str(r#"{"type":"IPCAM","rtspUri":"rtsp://cam/live"}"#).unwrap();
    let p = r.into_properties().unwrap();
    assert_eq!(
        (p.adaptative_bitrate, p.only_play_with_subscribers, p.network_cache),
        (Some(true), Some(true), Some(2000))
    );
}

#[test]
fn recording_request_falls_back_to_session_defaults() {
    let defaults =
        RecordingProperties { output_mode: OutputMode::ComposedQuickStart, frame_rate: 30, ..Default::default() };
    let r: StartRecordingRequest =
        serde_json::from_str(r#"{"session":"ses_A","outputMode":"COMPOSED","name":"n","mediaNode":"media_X"}"#)
            .unwrap();
    let p = r.properties.over(&defaults);
    assert_eq!(p.output_mode, OutputMode::ComposedQuickStart);
    assert_eq!(p.frame_rate, 30);
    assert_eq!(p.name, "n");
    assert_eq!(p.media_node.unwrap().as_str(), "media_X");
    assert!(serde_json::from_str::<StartRecordingRequest>(r#"{"session":"ses_A","frameRate":"25"}"#).is_err());
}

use super::*;
use crate::id::RecordingId;
use crate::model::{RecordingProperties, RecordingStatus};

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_string(&v).unwrap()
}

fn session() -> SessionRef {
    SessionRef { session_id: SessionId::parse("ses_A").unwrap(), unique_session_id: "ses_A_1632400000000".into() }
}

fn check(e: &WebhookEvent, name: &str) {
    assert_eq!(serde_json::to_string(&e.webhook_json()).unwrap(), golden(name), "{name}");
}

#[test]
fn session_destroyed() {
    let e = WebhookEvent::SessionDestroyed {
        session: session(),
        timestamp: 1_632_400_300_000,
        start_time: 1_632_400_000_000,
        reason: EndReason::LastParticipantLeft,
    };
    check(&e, "webhook_session_destroyed.json");
    let cdr = e.cdr_json();
    assert_eq!(cdr["sessionDestroyed"]["duration"], 300);
    assert!(cdr["sessionDestroyed"].get("event").is_none());
}

#[test]
fn participant_left() {
    let e = WebhookEvent::ParticipantLeft {
        session: session(),
        timestamp: 1_632_400_061_999,
        start_time: 1_632_400_000_000,
        reason: EndReason::ForceDisconnectByServer,
        participant: ParticipantInfo {
            connection_id: ConnectionId::parse("con_B").unwrap(),
            location: "unknown".into(),
            ip: Some("10.1.2.3".into()),
            platform: "Firefox".into(),
            client_data: "c".into(),
            server_data: "s".into(),
        },
    };
    check(&e, "webhook_participant_left.json");
}

#[test]
fn recording_status_changed() {
    let sid = SessionId::parse("ses_A").unwrap();
    let r = Recording {
        id: RecordingId::nth(&sid, 1),
        session_id: sid,
        unique_session_id: Some("ses_A_1632400000000".into()),
        created_at: 1_632_400_100_000,
        size: 1000,
        duration: 100.5,
        url: None,
        status: RecordingStatus::Stopped,
        properties: RecordingProperties { name: "ses_A-1".into(), ..Default::default() },
    };
    let e = WebhookEvent::recording(1_632_400_200_000, &r, Some(EndReason::RecordingStoppedByServer));
    check(&e, "webhook_recording_stopped.json");
    let started = Recording { status: RecordingStatus::Started, ..r };
    let e = WebhookEvent::recording(1, &started, Some(EndReason::RecordingStoppedByServer));
    assert!(e.webhook_json().get("reason").is_none());
}

#[test]
fn signal_sent() {
    let e = WebhookEvent::SignalSent {
        session: session(),
        timestamp: 1_632_400_000_500,
        from: None,
        to: vec![ConnectionId::parse("con_B").unwrap(), ConnectionId::parse("con_C").unwrap()],
        signal_type: "chat".into(),
        data: "hello".into(),
    };
    check(&e, "webhook_signal_sent.json");
}

#[test]
fn webrtc_inbound() {
    let e = WebhookEvent::WebrtcConnectionCreated {
        session: session(),
        timestamp: 1_632_400_005_000,
        webrtc: WebrtcInfo {
            stream_id: StreamId::parse("str_CAM_Qa1z_con_B").unwrap(),
            connection_id: ConnectionId::parse("con_C").unwrap(),
            receiving_from: Some(ConnectionId::parse("con_B").unwrap()),
            video_source: Some("CAMERA".into()),
            video_framerate: Some(30),
            video_dimensions: Some("{\"width\":640,\"height\":480}".into()),
            audio_enabled: true,
            video_enabled: true,
        },
    };
    check(&e, "webhook_webrtc_inbound.json");
}

#[test]
fn event_names_parse() {
    for e in EventType::ALL {
        assert_eq!(e.name().parse::<EventType>().unwrap(), e);
    }
    assert!("nodeRecovered".parse::<EventType>().is_err());
}

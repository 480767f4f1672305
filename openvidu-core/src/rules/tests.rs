use super::*;
use crate::id::{ConnectionId, SessionId};
use crate::model::{ConnectionProperties, SessionProperties};

fn session() -> Session {
    Session::new(SessionId::parse("s").unwrap(), 1, SessionProperties::default())
}

#[test]
fn a_connection_activates_once() {
    let mut c = Connection::pending(
        ConnectionId::parse("con_A").unwrap(),
        SessionId::parse("s").unwrap(),
        1,
        ConnectionProperties::default(),
        None,
    );
    assert_eq!(c.status(), ConnectionStatus::Pending);
    let info = ActiveInfo::new(2, Some("127.0.0.1".into()), "p".into(), "d".into());
    activate(&mut c, info.clone()).unwrap();
    assert_eq!(c.status(), ConnectionStatus::Active);
    assert_eq!(c.ip(), Some("127.0.0.1"));
    assert_eq!(activate(&mut c, info), Err(RuleError::ConnectionNotPending(ConnectionStatus::Active)));
}

#[test]
fn roles() {
    assert!(!can_publish(OpenViduRole::Subscriber));
    assert!(can_publish(OpenViduRole::Publisher));
    assert!(can_moderate(OpenViduRole::Moderator));
    assert!(check_moderate(OpenViduRole::Publisher).is_err());
}

#[test]
fn recording_lifecycle() {
    let mut s = RecordingStatus::Starting;
    recording_transition(&mut s, RecordingStatus::Started).unwrap();
    recording_transition(&mut s, RecordingStatus::Stopped).unwrap();
    recording_transition(&mut s, RecordingStatus::Ready).unwrap();
    assert!(recording_transition(&mut s, RecordingStatus::Started).is_err());
}

#[test]
fn recording_start_preconditions_follow_openvidu_order() {
    let mut s = session();
    assert_eq!(check_recording_start(&s, 0), Err(RecordingStartRefusal::NotAcceptable));
    s.properties.media_mode = MediaMode::Relayed;
    assert_eq!(check_recording_start(&s, 0), Err(RecordingStartRefusal::Conflict));
    s.properties.media_mode = MediaMode::Routed;
    s.active = true;
    assert_eq!(check_recording_start(&s, 1), Ok(()));
    s.recording = true;
    assert_eq!(check_recording_start(&s, 1).map_err(|r| r.status()), Err(409));
}

#[test]
fn recording_ids() {
    let s = SessionId::parse("ses_A").unwrap();
    let taken = ["ses_A", "ses_A-1"];
    assert_eq!(next_recording_id(&s, |id| taken.contains(&id.as_str())).as_str(), "ses_A-2");
    assert_eq!(next_recording_id(&s, |_| false).as_str(), "ses_A");
}

#[test]
fn resolutions() {
    for ok in ["1280x720", "100x100", "1999x1999", "640x480"] {
        assert!(is_valid_resolution(ok), "{ok}");
    }
    for bad in ["2000x720", "99x100", "0640x480", "1280X720", "1280x", "x", "2560x1440"] {
        assert!(!is_valid_resolution(bad), "{bad}");
    }
}

#[test]
fn recording_property_checks() {
    let mut p = RecordingProperties::default();
    validate_recording_properties(&p).unwrap();
    p.frame_rate = 121;
    assert_eq!(validate_recording_properties(&p).unwrap_err().status(), 422);
    p.frame_rate = 30;
    p.name = "bad name".into();
    assert_eq!(validate_recording_properties(&p).unwrap_err().status(), 400);
    p.name.clear();
    p.has_audio = false;
    p.has_video = false;
    assert_eq!(validate_recording_properties(&p).unwrap_err().status(), 422);
}

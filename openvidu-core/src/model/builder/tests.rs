use super::*;

#[test]
fn builders_start_from_defaults_and_set_what_is_asked() {
    let s = SessionProperties::builder().custom_session_id("room").build();
    assert_eq!(s.custom_session_id, "room");
    assert_eq!(s.recording_mode, RecordingMode::Manual);

    let c = ConnectionProperties::builder().role(OpenViduRole::Subscriber).data("d").build();
    assert_eq!((c.role, c.data.as_str(), c.record), (OpenViduRole::Subscriber, "d", true));

    let r = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    assert_eq!((r.output_mode, r.frame_rate), (OutputMode::Individual, 25));

    let k = KurentoOptions::builder().allowed_filters(["GStreamerFilter"]).build();
    assert!(k.is_filter_allowed("GStreamerFilter"));
    assert!(!k.is_filter_allowed("FaceOverlayFilter"));
    assert!(!KurentoOptions::default().is_filter_allowed("GStreamerFilter"));
}

use std::time::Instant;

use serde_json::{Value, json};

use super::events::{self, RemoteCandidate};
use super::stats::{Kind, TrackCounter};
use super::synthetic;
use super::*;

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn synthetic_vp8_payloads_are_keyframes_and_carry_their_send_time() {
    let key = synthetic::vp8_payload(true, true, 500, 1_234_567);
    assert_eq!(key.len(), 500);
    assert_eq!(key[0], 0x10, "S bit, partition 0");
    assert_eq!(&key[4..7], &[0x9d, 0x01, 0x2a], "keyframe start code");
    assert!(synthetic::vp8_is_keyframe_start(&key));
    assert_eq!(synthetic::send_timestamp(&key), Some(1_234_567));

    let inter = synthetic::vp8_payload(true, false, 100, 42);
    assert!(!synthetic::vp8_is_keyframe_start(&inter));
    assert_eq!(synthetic::send_timestamp(&inter), Some(42));
    let cont = synthetic::vp8_payload(false, false, 100, 43);
    assert!(!synthetic::vp8_is_keyframe_start(&cont));
    assert_eq!(synthetic::send_timestamp(&cont), Some(43));

    // Sizes are clamped to what a packet can hold.
    assert!(synthetic::vp8_payload(true, true, 5, 1).len() >= 23);
    assert_eq!(synthetic::vp8_payload(true, true, 100_000, 1).len(), synthetic::MAX_PAYLOAD);
    let opus = synthetic::opus_payload(60, 7);
    assert_eq!((opus.len(), opus[0]), (60, 0xF8));
    assert_eq!(synthetic::send_timestamp(&opus), Some(7));
    // Real media has no stamp.
    assert_eq!(synthetic::send_timestamp(&[0x10, 0, 0, 0, 0x9d, 1, 0x2a]), None);
    assert_eq!(synthetic::send_timestamp(&[]), None);
}

#[test]
fn keyframe_detection_reads_the_extended_descriptor() {
    // X=1 S=1, I=1 with a 2-byte picture id, then a keyframe tag.
    assert!(synthetic::vp8_is_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00]));
    // Same with an interframe tag.
    assert!(!synthetic::vp8_is_keyframe_start(&[0x90, 0x80, 0x81, 0x23, 0x11, 0x02, 0x00]));
    // Truncated: never a panic.
    assert!(!synthetic::vp8_is_keyframe_start(&[0x90, 0x80]));
    assert!(!synthetic::vp8_is_keyframe_start(&[0x90]));
}

#[test]
fn the_first_packet_and_the_first_keyframe_are_timed_once_until_a_reset() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut c = TrackCounter::new(Kind::Video);
    assert_eq!((c.snapshot().first_packet_at, c.snapshot().first_keyframe_at), (None, None));
    c.on_packet(1, true, &synthetic::vp8_payload(true, false, 100, 1), (t0, 1), None);
    c.on_packet(2, true, &synthetic::vp8_payload(true, true, 100, 2), (t0 + ms(5), 2), None);
    c.on_packet(3, true, &synthetic::vp8_payload(true, true, 100, 3), (t0 + ms(9), 3), None);
    c.restart_sequence();
    c.on_packet(4, true, &synthetic::vp8_payload(true, true, 100, 4), (t0 + ms(20), 4), None);
    let s = c.snapshot();
    assert_eq!((s.first_packet_at, s.first_keyframe_at), (Some(t0), Some(t0 + ms(5))));
    c.reset();
    c.on_packet(5, true, &synthetic::vp8_payload(true, true, 100, 5), (t0 + ms(30), 5), None);
    let s = c.snapshot();
    assert_eq!((s.first_packet_at, s.first_keyframe_at), (Some(t0 + ms(30)), Some(t0 + ms(30))));
    // Audio has no keyframes.
    let mut a = TrackCounter::new(Kind::Audio);
    a.on_packet(1, false, &synthetic::opus_payload(60, 1), (t0, 1), None);
    assert_eq!((a.snapshot().first_packet_at, a.snapshot().first_keyframe_at), (Some(t0), None));
}

#[test]
fn counters_count_frames_losses_across_a_wrap_and_latency() {
    let mut c = TrackCounter::new(Kind::Video);
    let payload = synthetic::vp8_payload(true, true, 100, 1_000_000);
    for seq in [65_533u16, 65_534, 65_535, 1, 2] {
        // 0 is lost
        c.on_packet(seq, true, &payload, (Instant::now(), 1_000_250), Some(1_000_040));
    }
    // A late duplicate does not move the window; its arrival at the socket is unknown.
    c.on_packet(65_535, true, &payload, (Instant::now(), 1_000_500), None);
    let s = c.snapshot();
    assert_eq!((s.packets, s.frames, s.keyframes), (6, 6, 6));
    assert_eq!(s.lost, 0, "6 packets over a span of 6 sequence numbers (one duplicate hides the loss)");
    assert_eq!(s.latency.len(), 6);
    assert_eq!(s.latency_percentile(0.0), Some(Duration::from_micros(250)));
    assert_eq!(s.latency_percentile(1.0), Some(Duration::from_micros(500)));
    // To the socket: the five packets whose arrival is known, without the wait in the process.
    assert_eq!(s.socket_latency.len(), 5);
    assert_eq!(s.socket_latency_percentile(1.0), Some(Duration::from_micros(40)));

    let mut a = TrackCounter::new(Kind::Audio);
    for seq in [10u16, 11, 15] {
        a.on_packet(seq, false, &synthetic::opus_payload(60, 1), (Instant::now(), 2), None);
    }
    let s = a.snapshot();
    assert_eq!((s.packets, s.frames, s.lost, s.bytes), (3, 3, 3, 180));
    a.reset();
    assert_eq!(a.snapshot(), TrackStats::default());
    assert_eq!(percentile(&[], 0.5), None);
}

#[test]
fn notifications_become_events() {
    let joined = events::parse_event(
        "participantJoined",
        &map(json!({"id": "con_A", "createdAt": 5, "metadata": "{\"n\":1}%/%srv"})),
    );
    assert_eq!(
        joined,
        Some(ParticipantEvent::ParticipantJoined {
            connection_id: ConnectionId::parse("con_A").unwrap(),
            created_at: 5,
            metadata: "{\"n\":1}%/%srv".into()
        })
    );
    let left = events::parse_event("participantLeft", &map(json!({"connectionId": "con_A", "reason": ""})));
    assert!(matches!(left, Some(ParticipantEvent::ParticipantLeft { reason: None, .. })));
    let evicted = events::parse_event(
        "participantEvicted",
        &map(json!({"connectionId": "con_A", "reason": "forceDisconnectByServer"})),
    );
    assert!(matches!(
        evicted,
        Some(ParticipantEvent::ParticipantEvicted { reason: Some(EndReason::ForceDisconnectByServer), .. })
    ));
    let published = events::parse_event(
        "participantPublished",
        &map(json!({"id": "con_A", "streams": [{"id": "str_CAM_AbCd_con_A", "createdAt": 9, "hasAudio": true,
            "hasVideo": true, "audioActive": true, "videoActive": true, "typeOfVideo": "CAMERA", "frameRate": -1,
            "videoDimensions": "{\"width\":640,\"height\":480}", "filter": {}}]})),
    );
    let Some(ParticipantEvent::StreamPublished { stream, .. }) = published else { panic!("{published:?}") };
    assert_eq!((stream.id.as_str(), stream.frame_rate, stream.has_video), ("str_CAM_AbCd_con_A", Some(-1), true));
    let rest_signal = events::parse_event("sendMessage", &map(json!({"data": "news", "type": "server"})));
    assert_eq!(
        rest_signal,
        Some(ParticipantEvent::Signal { from: None, signal_type: Some("server".into()), data: Some("news".into()) })
    );
    // Unreadable params are skipped; unknown methods pass through.
    assert_eq!(events::parse_event("participantJoined", &map(json!({"id": 5}))), None);
    assert_eq!(events::parse_event("participantPublished", &map(json!({"id": "con_A", "streams": []}))), None);
    assert!(matches!(
        events::parse_event("mediaError", &map(json!({"error": "x"}))),
        Some(ParticipantEvent::Other { .. })
    ));

    let (owner, c) = events::parse_ice_candidate(&map(json!({"senderConnectionId": "con_A", "endpointName": "con_A",
        "sdpMLineIndex": 0, "sdpMid": "0", "candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host"})))
    .unwrap();
    assert_eq!(owner.as_str(), "con_A");
    assert_eq!(
        c,
        RemoteCandidate {
            candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0)
        }
    );
    assert_eq!(events::parse_ice_candidate(&map(json!({"candidate": "x"}))), None);
}

#[test]
fn stream_properties_follow_changes() {
    let mut s =
        events::parse_stream(&json!({"id": "str_CAM_AbCd_con_A", "hasVideo": true, "videoActive": true})).unwrap();
    events::apply_property(&mut s, "videoActive", &json!("false"));
    assert!(!s.video_active);
    events::apply_property(&mut s, "audioActive", &json!(true));
    assert!(s.audio_active);
    events::apply_property(&mut s, "videoDimensions", &json!("\"{\\\"width\\\":320,\\\"height\\\":240}\""));
    assert_eq!(s.video_dimensions.as_deref(), Some("{\"width\":320,\"height\":240}"));
}

#[test]
fn join_results_and_ice_addresses() {
    let joined = parse_join(&map(json!({"id": "con_Me", "sessionId": "abc", "role": "MODERATOR", "metadata": "m",
        "mediaServer": "kurento", "value": [{"id": "con_B", "createdAt": 1, "metadata": "b",
        "streams": [{"id": "str_CAM_AbCd_con_B", "hasAudio": true}]}, {"id": "not valid!"}]})))
    .unwrap();
    assert_eq!((joined.me.as_str(), joined.rpc_session_id.as_str()), ("con_Me", "abc"));
    assert_eq!(joined.role, Some(OpenViduRole::Moderator));
    assert_eq!(joined.remotes.len(), 1);
    assert_eq!(joined.remotes[0].streams[0].id.as_str(), "str_CAM_AbCd_con_B");
    assert!(parse_join(&map(json!({"sessionId": "abc"}))).is_err());

    let url = url::Url::parse("ws://127.0.0.1:4443").unwrap();
    assert_eq!(udp_addrs(url.host(), &[]), vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
    let url = url::Url::parse("wss://localhost:4443").unwrap();
    assert_eq!(udp_addrs(url.host(), &[]), vec!["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
    let url = url::Url::parse("wss://example.org").unwrap();
    assert_eq!(udp_addrs(url.host(), &[]), vec!["0.0.0.0:0".parse::<SocketAddr>().unwrap()]);
    assert_eq!(
        udp_addrs(url.host(), &["10.0.0.2".parse().unwrap()]),
        vec!["10.0.0.2:0".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(media::first_mid("v=0\r\nm=audio 9 x 111\r\na=mid:0\r\nm=video\r\na=mid:1\r\n").as_deref(), Some("0"));
}

#[test]
fn sent_candidates_name_the_local_ufrag_once() {
    let sdp = "v=0\r\nm=audio 9 x 111\r\na=ice-ufrag:AbCd\r\na=mid:0\r\n";
    let ufrag = openvidu_core::wire::ice::sdp_ice_ufrag(sdp);
    assert_eq!(ufrag, Some("AbCd"));
    let host = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".to_owned();
    assert_eq!(media::with_ufrag(host.clone(), ufrag), format!("{host} ufrag AbCd"));
    let named = format!("{host} generation 0 ufrag Zz99");
    assert_eq!(media::with_ufrag(named.clone(), ufrag), named);
    assert_eq!(media::with_ufrag(host.clone(), None), host);
}

#[test]
fn bots_check_ice_consent_fast_unless_asked_for_a_browsers_pace() {
    // The default: a dead media node is noticed within two seconds (failover tests count on it).
    assert_eq!(JoinOptions::new().ice_liveness, IceLiveness::FAST);
    assert_eq!(raw::RawOptions::new().ice_liveness, IceLiveness::FAST);
    let fast = IceLiveness::FAST;
    assert!(fast.keepalive * 3 <= fast.disconnected && fast.disconnected < fast.failed);
    // Chrome's pace on a stable connection: a fifth of the checks, three missed before Disconnected.
    let browser = JoinOptions::new().with_ice_liveness(IceLiveness::BROWSER).ice_liveness;
    assert_eq!(browser.keepalive, fast.keepalive * 5);
    assert_eq!(browser.disconnected, browser.keepalive * 3);
    assert!(browser.disconnected < browser.failed);
    assert_eq!(raw::RawOptions::new().with_ice_liveness(browser).ice_liveness, browser);
}

#[test]
fn ice_liveness_of_other_timings_keeps_checks_before_timeouts() {
    let ms = Duration::from_millis;
    let custom = IceLiveness::new(ms(1000), ms(3000), ms(10_000)).expect("ordered timings");
    assert_eq!((custom.keepalive, custom.disconnected, custom.failed), (ms(1000), ms(3000), ms(10_000)));
    assert_eq!(JoinOptions::new().with_ice_liveness(custom).ice_liveness, custom);
    // Disconnected between two checks, Failed before Disconnected, or no checks at all: refused.
    assert_eq!(IceLiveness::new(ms(3000), ms(3000), ms(10_000)), None);
    assert_eq!(IceLiveness::new(ms(1000), ms(10_000), ms(10_000)), None);
    assert_eq!(IceLiveness::new(ms(1000), ms(10_000), ms(3000)), None);
    assert_eq!(IceLiveness::new(Duration::ZERO, ms(3000), ms(10_000)), None);
    for preset in [IceLiveness::FAST, IceLiveness::BROWSER] {
        assert_eq!(IceLiveness::new(preset.keepalive, preset.disconnected, preset.failed), Some(preset));
    }
}

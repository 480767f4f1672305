use super::*;

/// A trimmed Chrome publisher offer: Opus, then VP8, VP9, H264 (two profiles) with RTX.
pub(crate) const CHROME_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS stream\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=ice-options:trickle\r
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r
a=setup:actpass\r
a=mid:0\r
a=sendonly\r
a=msid:stream audio\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=ssrc:1111 cname:abc\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 102 103 127\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:abcd\r
a=ice-pwd:abcdefghijklmnopqrstuvwx\r
a=ice-options:trickle\r
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99\r
a=setup:actpass\r
a=mid:1\r
a=sendonly\r
a=msid:stream video\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:98 VP9/90000\r
a=fmtp:98 profile-id=0\r
a=rtpmap:99 rtx/90000\r
a=fmtp:99 apt=98\r
a=rtpmap:102 H264/90000\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rtpmap:127 H264/90000\r
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r
a=ssrc:2222 cname:abc\r
";

fn chrome() -> Sdp {
    parse(CHROME_OFFER).expect("fixture parses")
}

#[test]
fn garbage_empty_and_huge_sdp_are_errors() {
    for bad in ["", "   \r\n", "hello world", "v=0\r\nthis is not sdp", "\u{0}\u{1}\u{2}"] {
        assert!(matches!(parse(bad), Err(MediaError::Sdp(_))), "{bad:?}");
    }
    let huge = "a".repeat(MAX_SDP_LEN + 1);
    assert!(matches!(parse(&huge), Err(MediaError::Sdp(_))));
}

#[test]
fn sdp_without_media_is_an_error() {
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
    let err = parse(sdp).unwrap_err();
    assert!(err.to_string().contains("no audio or video"), "{err}");
}

#[test]
fn offered_codecs_follow_the_format_order() {
    let desc = chrome();
    let video = desc.section(RtpCodecKind::Video).unwrap();
    let names: Vec<_> = video.codecs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["VP8", "rtx", "VP9", "rtx", "H264", "rtx", "H264"]);
    let audio = desc.section(RtpCodecKind::Audio).unwrap();
    let opus = &audio.codecs[0];
    assert_eq!((opus.payload_type, opus.clock_rate, opus.channels), (111, 48000, 2));
    assert_eq!(opus.fmtp, "minptime=10;useinbandfec=1");
}

#[test]
fn without_forcing_the_clients_first_supported_codec_wins() {
    let chosen = choose_video_codec(&chrome(), VideoCodec::None).unwrap().unwrap();
    assert_eq!(chosen.rtp_codec.mime_type, MIME_TYPE_VP8);
    assert_eq!(chosen.payload_type, 96);
    assert_eq!(chosen.rtp_codec.clock_rate, 90000);
    assert!(chosen.rtp_codec.rtcp_feedback.iter().any(|f| f.typ == "goog-remb"));
}

#[test]
fn a_forced_codec_is_picked_with_the_offers_payload_type_and_fmtp() {
    let vp9 = choose_video_codec(&chrome(), VideoCodec::Vp9).unwrap().unwrap();
    assert_eq!((vp9.rtp_codec.mime_type.as_str(), vp9.payload_type), (MIME_TYPE_VP9, 98));
    assert_eq!(vp9.rtp_codec.sdp_fmtp_line, "profile-id=0");
    let h264 = choose_video_codec(&chrome(), VideoCodec::H264).unwrap().unwrap();
    assert_eq!(h264.payload_type, 102);
    assert!(h264.rtp_codec.sdp_fmtp_line.contains("packetization-mode=1"));
}

#[test]
fn a_forced_codec_missing_from_the_offer_is_error_800() {
    let vp8_only = CHROME_OFFER
        .replace(" 96 97 98 99 102 103 127", " 96 97")
        .replace("a=rtpmap:98 VP9", "a=x98:")
        .replace("a=rtpmap:102 H264", "a=x102:")
        .replace("a=rtpmap:127 H264", "a=x127:");
    let desc = parse(&vp8_only).unwrap();
    let err = choose_video_codec(&desc, VideoCodec::H264).unwrap_err();
    assert!(matches!(err, MediaError::ForcedCodecNotFound(VideoCodec::H264)));
    assert_eq!(err.rpc_code(), 800);
    assert!(err.to_string().contains("H264"), "{err}");
    assert!(choose_video_codec(&desc, VideoCodec::Vp8).unwrap().is_some());
}

#[test]
fn a_video_section_without_usable_codecs_is_an_sdp_error() {
    let av1 = CHROME_OFFER
        .replace(" 96 97 98 99 102 103 127", " 45")
        .replace("a=rtpmap:96 VP8/90000", "a=rtpmap:45 AV1/90000");
    let err = choose_video_codec(&parse(&av1).unwrap(), VideoCodec::None).unwrap_err();
    assert!(matches!(err, MediaError::Sdp(_)));
    assert_eq!(err.rpc_code(), 302);
}

#[test]
fn audio_must_offer_opus() {
    let opus = choose_audio_codec(&chrome()).unwrap().unwrap();
    assert_eq!((opus.payload_type, opus.rtp_codec.channels), (111, 2));
    let no_opus = CHROME_OFFER.replace("111 63 9 0 8", "9 0 8").replace("a=rtpmap:111 opus/48000/2", "a=x");
    assert!(matches!(choose_audio_codec(&parse(&no_opus).unwrap()), Err(MediaError::Sdp(_))));
}

#[test]
fn sections_that_are_missing_or_rejected_are_none() {
    let video_only = {
        let start = CHROME_OFFER.find("m=audio").unwrap();
        let end = CHROME_OFFER.find("m=video").unwrap();
        format!("{}{}", &CHROME_OFFER[..start], &CHROME_OFFER[end..])
    };
    assert_eq!(choose_audio_codec(&parse(&video_only).unwrap()).unwrap(), None);
    let rejected = CHROME_OFFER.replace("m=video 9 ", "m=video 0 ");
    assert_eq!(choose_video_codec(&parse(&rejected).unwrap(), VideoCodec::Vp8).unwrap(), None);
}

#[test]
fn offers_mime_looks_at_every_live_section_of_the_kind() {
    let desc = chrome();
    assert!(desc.offers_mime(RtpCodecKind::Video, MIME_TYPE_H264));
    assert!(desc.offers_mime(RtpCodecKind::Audio, MIME_TYPE_OPUS));
    assert!(!desc.offers_mime(RtpCodecKind::Audio, MIME_TYPE_VP8));
}

#[test]
fn first_mid_is_the_first_sections_mid() {
    assert_eq!(first_mid(CHROME_OFFER).as_deref(), Some("0"));
    assert_eq!(first_mid("v=0\r\nm=audio 9 RTP 0\r\nm=video 9 RTP 96\r\na=mid:v\r\n"), None);
    assert_eq!(first_mid("garbage"), None);
}

#[test]
fn video_bandwidth_goes_after_the_connection_line_of_video_sections_only() {
    let out = with_video_bandwidth(CHROME_OFFER, 1000);
    let lines: Vec<&str> = out.split("\r\n").collect();
    let m_video = lines.iter().position(|l| l.starts_with("m=video")).unwrap();
    assert_eq!(lines[m_video + 1], "c=IN IP4 0.0.0.0");
    assert_eq!(lines[m_video + 2], "b=AS:1000");
    assert_eq!(out.matches("b=AS:").count(), 1);
    assert!(out.ends_with("\r\n"));
    // Still a valid SDP with the same sections.
    assert_eq!(parse(&out).unwrap().sections.len(), 2);
    let desc = SessionDescription::unmarshal(&mut Cursor::new(out.as_bytes())).unwrap();
    assert_eq!(desc.media_descriptions[1].bandwidth.len(), 1);
}

#[test]
fn video_bandwidth_replaces_an_existing_value_and_zero_is_unchanged() {
    let once = with_video_bandwidth(CHROME_OFFER, 1000);
    let twice = with_video_bandwidth(&once, 600);
    assert!(twice.contains("b=AS:600") && !twice.contains("b=AS:1000"));
    assert_eq!(with_video_bandwidth(CHROME_OFFER, 0), CHROME_OFFER);
    let no_c = "v=0\nm=video 9 RTP 96\na=mid:0\n";
    assert_eq!(with_video_bandwidth(no_c, 300), "v=0\nm=video 9 RTP 96\nb=AS:300\na=mid:0\n");
}

#[test]
fn only_the_kept_payload_types_stay_with_their_lines() {
    let desc = chrome();
    let pruned = only_codecs(CHROME_OFFER, &desc, |kind, c| {
        (kind == RtpCodecKind::Video && c.name == "H264") || c.name == "opus"
    });
    assert!(pruned.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"));
    assert!(pruned.contains("m=video 9 UDP/TLS/RTP/SAVPF 102 127\r\n"));
    for gone in ["a=rtpmap:96 ", "a=rtcp-fb:96 ", "a=fmtp:97 ", "a=rtpmap:98 ", "a=rtpmap:63 ", "a=rtpmap:0 "] {
        assert!(!pruned.contains(gone), "{gone} should be gone");
    }
    for kept in ["a=fmtp:102 ", "a=fmtp:127 ", "a=fmtp:111 ", "a=rtcp-fb:111 transport-cc", "a=ssrc:2222 cname:abc"] {
        assert!(pruned.contains(kept), "{kept} should stay");
    }
    let reparsed = parse(&pruned).expect("the pruned offer parses");
    let video = reparsed.section(RtpCodecKind::Video).expect("video");
    assert_eq!(video.codecs.iter().map(|c| c.payload_type).collect::<Vec<_>>(), [102, 127]);
    assert_eq!(reparsed.sections.len(), desc.sections.len());
}

#[test]
fn a_section_keeping_nothing_is_left_whole() {
    let desc = chrome();
    let pruned = only_codecs(CHROME_OFFER, &desc, |kind, c| kind == RtpCodecKind::Video && c.name == "VP8");
    assert!(pruned.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8\r\n"));
    assert!(pruned.contains("a=rtpmap:0 PCMU/8000"));
    assert!(pruned.contains("m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"));
    assert_eq!(only_codecs(CHROME_OFFER, &desc, |_, _| false), CHROME_OFFER);
}

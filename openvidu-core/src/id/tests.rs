use super::*;

fn shape(s: &str, prefix: &str, len: usize) -> bool {
    let Some(rest) = s.strip_prefix(prefix) else {
        return false;
    };
    rest.len() == len && rest.as_bytes()[0].is_ascii_uppercase() && rest.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[test]
fn generated_ids_have_openvidu_shapes() {
    let g = RandomIds;
    for _ in 0..200 {
        assert!(shape(g.session_id().as_str(), "ses_", 10));
        assert!(shape(g.connection_id().as_str(), "con_", 10));
        assert!(shape(g.token_id().as_str(), "tok_", 16));
        assert!(shape(g.media_node_id().as_str(), "media_", 8));
    }
}

#[test]
fn stream_ids_end_in_their_owner() {
    let g = SequentialIds::default();
    let owner = g.connection_id();
    let cam = g.stream_id(Some(TypeOfVideo::Camera), &owner);
    assert!(cam.as_str().starts_with("str_CAM_"));
    assert!(cam.as_str().ends_with(owner.as_str()));
    assert_eq!(cam.owner(), Some(owner.clone()));
    let mic = g.stream_id(None, &owner);
    assert!(mic.as_str().starts_with("str_MIC_"));
    assert_eq!(mic.as_str().len(), "str_MIC_Abcd_".len() + owner.as_str().len());
}

#[test]
fn custom_ids_follow_the_regex() {
    assert!(SessionId::parse("Room-42_b").is_ok());
    for bad in ["", "a b", "ses/1", "é", "a.b", "a?b"] {
        assert!(SessionId::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn recording_ids_count_from_the_session_id() {
    let s = SessionId::parse("ses_A").unwrap();
    assert_eq!(RecordingId::nth(&s, 0).as_str(), "ses_A");
    assert_eq!(RecordingId::nth(&s, 2).as_str(), "ses_A-2");
}

#[test]
fn token_urls_round_trip() {
    let ws = Token::ws_url_from_public_url("https://ov.example.com:4443/");
    assert_eq!(ws, "wss://ov.example.com:4443");
    assert_eq!(Token::ws_url_from_public_url("http://10.0.0.1"), "ws://10.0.0.1");
    let t = Token {
        ws_url: ws,
        session_id: SessionId::parse("ses_KqW3bX0aZ9").unwrap(),
        token_id: TokenId::parse("tok_Ab12Cd34Ef56Gh78").unwrap(),
    };
    let s = t.to_string();
    assert_eq!(s, "wss://ov.example.com:4443?sessionId=ses_KqW3bX0aZ9&token=tok_Ab12Cd34Ef56Gh78");
    assert_eq!(Token::parse(&s).unwrap(), t);
    assert!(Token::parse("tok_only").is_err());
}

#[test]
fn sequential_ids_are_stable() {
    let g = SequentialIds::default();
    assert_eq!(g.session_id().as_str(), "ses_AAAAAAAAAA");
    assert_eq!(g.session_id().as_str(), "ses_AAAAAAAAAB");
}

use super::*;

#[test]
fn results_carry_the_injected_session_id() {
    let f = result_frame(&json!(3), json!({}), Some("rpc1"));
    assert_eq!(f, r#"{"id":3,"result":{"sessionId":"rpc1"},"jsonrpc":"2.0"}"#);
    let f = result_frame(&json!(4), json!("pong"), Some("rpc1"));
    assert_eq!(f, r#"{"id":4,"result":{"value":"pong","sessionId":"rpc1"},"jsonrpc":"2.0"}"#);
}

#[test]
fn errors_and_notifications() {
    let f = error_frame(&json!(7), &RpcError::new(ErrorCode::ReconnectionError, "reconnection error"), None);
    assert_eq!(f, r#"{"id":7,"error":{"code":40007,"message":"reconnection error"},"jsonrpc":"2.0"}"#);
    let n = Notification::ParticipantLeft {
        connection_id: ConnectionId::parse("con_A").unwrap(),
        reason: Some(EndReason::Disconnect),
    };
    assert_eq!(
        notification_frame(&n),
        r#"{"method":"participantLeft","params":{"connectionId":"con_A","reason":"disconnect"},"jsonrpc":"2.0"}"#
    );
    let n = Notification::SendMessage { data: Some("hi".into()), signal_type: Some("signal:chat".into()), from: None };
    assert_eq!(n.params(), json!({"data":"hi","type":"signal:chat"}));
    // openvidu-browser 2.20 reads connectionId (the publisher's), streamId and sdpOffer.
    let n = Notification::ForciblyReconnectSubscriber {
        connection_id: ConnectionId::parse("con_P").unwrap(),
        stream_id: StreamId::parse("str_CAM_AbCd_con_P").unwrap(),
        sdp_offer: "v=0".into(),
    };
    assert_eq!(
        notification_frame(&n),
        r#"{"method":"forciblyReconnectSubscriber","params":{"connectionId":"con_P","streamId":"str_CAM_AbCd_con_P","sdpOffer":"v=0"},"jsonrpc":"2.0"}"#
    );
}

#[test]
fn frames_parse_or_give_the_error_to_send() {
    let r = Request::parse(r#"{"jsonrpc":"2.0","method":"ping","params":{"interval":5000},"id":1}"#).unwrap();
    assert_eq!((r.method.as_str(), r.id), ("ping", Some(json!(1))));
    assert!(Request::parse("{").unwrap_err().contains("-32700"));
    assert!(Request::parse("[1]").unwrap_err().contains("-32600"));
    assert!(Request::parse(r#"{"id":2,"params":{}}"#).unwrap_err().contains("\"id\":2"));
    assert!(Request::parse(r#"{"id":2,"method":"x","params":[1]}"#).is_err());
    let r = Request::parse(r#"{"id":1,"method":"joinRoom","params":{"session":5}}"#).unwrap();
    assert_eq!(r.params::<JoinRoomParams>().unwrap_err().code, ErrorCode::InvalidParams);
}

#[test]
fn metadata_is_joined_like_openvidu() {
    assert_eq!(full_metadata("c", "s"), "c%/%s");
    assert_eq!(full_metadata("c", ""), "c");
    assert_eq!(full_metadata("", "s"), "s");
    assert_eq!(full_metadata("", ""), "");
}

use super::*;

#[test]
fn http_error_takes_openvidus_message_member() {
    let body = br#"{"timestamp":1632400000000,"status":400,"error":"Bad Request",
        "message":"Parameter 'customSessionId' is wrong","path":"/openvidu/api/sessions"}"#;
    let e = Error::from_status(400, body);
    assert_eq!(e.status(), Some(400));
    assert!(matches!(&e, Error::Http { message, .. } if message == "Parameter 'customSessionId' is wrong"));
    assert_eq!(e.to_string(), "OpenVidu answered HTTP 400: Parameter 'customSessionId' is wrong");
}

#[test]
fn empty_error_body_gives_the_reason_phrase() {
    let e = Error::from_status(404, b"");
    assert!(matches!(&e, Error::Http { status: 404, message } if message == "Not Found"));
    assert_eq!(e.to_string(), "OpenVidu answered HTTP 404: Not Found");
    assert!(matches!(Error::from_status(406, b"  \n"), Error::Http { message, .. } if message == "Not Acceptable"));
}

#[test]
fn unknown_status_without_body_has_an_empty_message() {
    let e = Error::from_status(599, b"");
    assert_eq!(e.status(), Some(599));
    assert_eq!(e.to_string(), "OpenVidu answered HTTP 599");
}

#[test]
fn text_bodies_are_kept_trimmed_and_bounded() {
    let e = Error::from_status(500, b"Error starting recording: boom\n");
    assert!(matches!(&e, Error::Http { message, .. } if message == "Error starting recording: boom"));

    let long = "x".repeat(1000);
    let Error::Http { message, .. } = Error::from_status(500, long.as_bytes()) else { panic!("not an HTTP error") };
    assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
    assert!(message.ends_with('…'));

    // JSON without a string `message` is shown as text; invalid UTF-8 does not fail.
    assert!(
        matches!(Error::from_status(400, br#"{"message":3}"#), Error::Http { message, .. } if message == r#"{"message":3}"#)
    );
    assert!(matches!(Error::from_status(400, &[0xff, 0xfe]), Error::Http { message, .. } if !message.is_empty()));
}

#[test]
fn non_http_errors_have_no_status() {
    let decode = Error::Decode {
        route: "GET /openvidu/api/sessions".into(),
        source: serde_json::from_str::<u8>("x").unwrap_err(),
    };
    assert_eq!(decode.status(), None);
    assert!(!decode.is_timeout());
    assert!(!decode.is_connect());
    assert!(decode.to_string().starts_with("unexpected answer to GET /openvidu/api/sessions"));
    assert_eq!(Error::Config("bad".into()).status(), None);
}

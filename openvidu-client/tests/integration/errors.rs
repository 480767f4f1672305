//! Errors: authentication, status codes with and without bodies, transport failures, timeouts,
//! unreadable answers; and the two informational routes.

use std::time::Duration;

use openvidu_client::{Error, OpenVidu, SessionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{Harness, SECRET, status_of};

#[tokio::test]
async fn a_wrong_secret_is_a_401_everywhere() {
    let h = Harness::start().await;
    let intruder = OpenVidu::new(h.server.url(), "NOT_THE_SECRET").expect("a client");
    assert_eq!(status_of(intruder.create_session(SessionProperties::default()).await), 401);
    assert_eq!(status_of(intruder.fetch().await), 401);
    assert_eq!(status_of(intruder.list_recordings().await), 401);
    assert_eq!(status_of(intruder.config().await), 401);
    let e = intruder.fetch().await.expect_err("401");
    assert!(!e.to_string().contains("NOT_THE_SECRET"), "{e}");
    assert!(intruder.active_sessions().is_empty());
}

#[tokio::test]
async fn error_bodies_give_the_message() {
    let h = Harness::start().await;
    let bad = SessionProperties::builder().custom_session_id("bad id").build();
    match h.client.create_session(bad).await {
        Err(Error::Http { status: 400, message }) => {
            assert!(message.contains("customSessionId"), "{message}");
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}

#[tokio::test]
async fn config_and_health() {
    let h = Harness::start().await;
    let config = h.client.config().await.expect("config");
    assert!(config["VERSION"].is_string(), "{config}");
    assert_eq!(config["OPENVIDU_RECORDING"], true);
    assert!(h.client.health().await.expect("health"));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = listener.local_addr().expect("an address");
    drop(listener);
    let client = OpenVidu::new(&format!("http://{addr}"), SECRET).expect("a client");
    let e = client.fetch().await.expect_err("nobody listens");
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(e.status(), None);
}

/// A server that accepts one connection and answers with `response` (or never, when `None`).
async fn fake_server(response: Option<&'static str>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                match response {
                    Some(r) => {
                        let _ = socket.write_all(r.as_bytes()).await;
                    }
                    None => {
                        // Keep the socket open, answer nothing.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_silent_server_is_a_timeout() {
    let url = fake_server(None).await;
    let client = OpenVidu::builder(&url, SECRET).timeout(Duration::from_millis(300)).build().expect("a client");
    let e = client.fetch().await.expect_err("no answer");
    assert!(e.is_timeout(), "{e:?}");
    assert!(!e.is_connect());
}

#[tokio::test]
async fn an_unreadable_answer_is_a_decode_error() {
    let url = fake_server(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"oops\": tru",
    ))
    .await;
    let client = OpenVidu::new(&url, SECRET).expect("a client");
    match client.fetch().await {
        Err(Error::Decode { route, .. }) => {
            assert_eq!(route, "GET /openvidu/api/sessions?pendingConnections=true")
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    match client.create_session(SessionProperties::default()).await {
        Err(Error::Decode { route, .. }) => assert_eq!(route, "POST /openvidu/api/sessions"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[tokio::test]
async fn ids_that_break_the_rules_are_decode_errors() {
    // A session id with a space is not an OpenVidu id: refused, not trusted.
    let url = fake_server(Some(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 47\r\nconnection: close\r\n\r\n{\"numberOfElements\":0,\"content\":[{\"id\":\"a b\"}]}",
    ))
    .await;
    let client = OpenVidu::new(&url, SECRET).expect("a client");
    assert!(matches!(client.fetch().await, Err(Error::Decode { .. })));
}

#[tokio::test]
async fn unexpected_statuses_carry_their_status() {
    let url = fake_server(Some(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 17\r\nconnection: close\r\n\r\n{\"status\":\"DOWN\"}",
    ))
    .await;
    let client = OpenVidu::new(&url, SECRET).expect("a client");
    assert!(!client.health().await.expect("a 503 is an answer"));
    assert_eq!(status_of(client.fetch().await), 503);
}

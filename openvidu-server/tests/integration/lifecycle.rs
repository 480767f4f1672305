//! TLS, garbage collection and shutdown.

use std::time::Duration;

use openvidu_server::Server;

#[tokio::test]
async fn self_signed_tls_serves_the_api() {
    let server = Server::builder().secret("S").start().await.unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let c = super::client(&server);
    let r = c
        .post(format!("{}/openvidu/api/sessions", server.url()))
        .basic_auth("OPENVIDUAPP", Some("S"))
        .json(&serde_json::json!({"customSessionId": "tls"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{}/openvidu/api/sessions/tls/connection", server.url()))
        .basic_auth("OPENVIDUAPP", Some("S"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    let conn: serde_json::Value = r.json().await.unwrap();
    let port = server.local_addr().port();
    assert!(conn["token"].as_str().unwrap().starts_with(&format!("wss://127.0.0.1:{port}?sessionId=tls&token=tok_")));
}

#[tokio::test]
async fn never_joined_sessions_are_collected() {
    let server = Server::builder()
        .https(false)
        .configure(|c| {
            c.garbage_interval = Some(Duration::from_millis(100));
            c.garbage_threshold = Duration::ZERO;
        })
        .start()
        .await
        .unwrap();
    let c = super::client(&server);
    let url = format!("{}/openvidu/api/sessions", server.url());
    let r = c.post(&url).basic_auth("OPENVIDUAPP", Some(server.secret())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.get(format!("{url}/{id}")).basic_auth("OPENVIDUAPP", Some(server.secret())).send().await.unwrap();
        if r.status() == 404 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "session never collected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let server = Server::builder().https(false).start().await.unwrap();
    let addr = server.local_addr();
    drop(server);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn bad_settings_are_refused_at_start() {
    let err = Server::builder().secret("not valid!").start().await.err().unwrap();
    assert!(err.to_string().contains("OPENVIDU_SECRET"), "{err}");
}

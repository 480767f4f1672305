//! The router driven through `oneshot`, without a socket: status codes of spec §1.4 and a table
//! of bad requests, none of which may produce a 5xx.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use openvidu_core::id::SequentialIds;
use tower::ServiceExt;

use super::*;
use crate::config::Config;
use crate::events::Events;
use crate::service::OpenViduService;
use crate::store::MemoryStore;

struct App {
    router: Router,
    auth: String,
    _dir: tempfile::TempDir,
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded("SECRET");
    config.recording = true;
    config.recording_path = dir.path().to_owned();
    config.max_request_body = 4096;
    let svc = OpenViduService::new(
        Arc::new(config),
        "https://127.0.0.1:4443".into(),
        Arc::new(MemoryStore::new()),
        Arc::new(SequentialIds::default()),
        Events::default(),
        Arc::new(
            openvidu_media::LocalMediaNode::new(Default::default(), tokio::sync::mpsc::unbounded_channel().0).unwrap(),
        ),
    );
    let router = Router::new().fallback_service(router(svc)).layer(middleware::map_request(rewrite_deprecated_path));
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("OPENVIDUAPP:SECRET"));
    App { router, auth, _dir: dir }
}

impl App {
    async fn call(&self, method: &str, path: &str, content_type: Option<&str>, body: &str) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, &self.auth);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let res = self.router.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn json(&self, method: &str, path: &str, body: &str) -> (StatusCode, String) {
        self.call(method, path, Some("application/json"), body).await
    }
}

#[tokio::test]
async fn session_lifecycle_status_codes() {
    let app = app().await;
    let (s, body) = app.json("POST", "/openvidu/api/sessions", "").await;
    assert_eq!(s, StatusCode::OK, "no body = defaults");
    assert!(body.contains("\"id\":\"ses_"));
    assert_eq!(app.json("POST", "/openvidu/api/sessions", r#"{"customSessionId":"room"}"#).await.0, StatusCode::OK);
    let (s, body) = app.json("POST", "/openvidu/api/sessions", r#"{"customSessionId":"room"}"#).await;
    assert_eq!((s, body.as_str()), (StatusCode::CONFLICT, ""));
    assert_eq!(app.json("GET", "/openvidu/api/sessions/room", "").await.0, StatusCode::OK);
    let (s, body) = app.json("GET", "/openvidu/api/sessions", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.starts_with("{\"numberOfElements\":2,"));
    assert_eq!(app.json("DELETE", "/openvidu/api/sessions/room", "").await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.json("DELETE", "/openvidu/api/sessions/room", "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.json("GET", "/openvidu/api/sessions/room", "").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn connection_status_codes() {
    let app = app().await;
    app.json("POST", "/openvidu/api/sessions", r#"{"customSessionId":"s"}"#).await;
    let (s, body) =
        app.json("POST", "/openvidu/api/sessions/s/connection", r#"{"role":"SUBSCRIBER","data":"d"}"#).await;
    assert_eq!(s, StatusCode::OK);
    let c: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cid = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["status"], "pending");
    assert_eq!(c["ip"], serde_json::Value::Null);
    assert_eq!(c["token"].as_str().unwrap().split('?').next(), Some("wss://127.0.0.1:4443"));

    let (s, body) = app.json("GET", "/openvidu/api/sessions/s/connection", "").await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.starts_with("{\"numberOfElements\":1"), "pending listed by default: {body}");
    let (_, body) = app.json("GET", "/openvidu/api/sessions/s", "").await;
    assert!(body.contains("\"connections\":{\"numberOfElements\":0"), "pending hidden by default");
    let (_, body) = app.json("GET", "/openvidu/api/sessions/s?pendingConnections=true", "").await;
    assert!(body.contains("\"connections\":{\"numberOfElements\":1"));

    let conn = format!("/openvidu/api/sessions/s/connection/{cid}");
    assert_eq!(app.json("GET", &conn, "").await.0, StatusCode::OK);
    assert_eq!(app.json("GET", "/openvidu/api/sessions/nope/connection/con_X", "").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.json("GET", "/openvidu/api/sessions/s/connection/con_X", "").await.0, StatusCode::NOT_FOUND);

    let (s, body) = app.json("PATCH", &conn, r#"{"role":"MODERATOR"}"#).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("\"role\":\"MODERATOR\""));
    assert_eq!(app.json("PATCH", &conn, r#"{"role":"MODERATOR"}"#).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.json("PATCH", &conn, r#"{"role":"KING"}"#).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.json("PATCH", "/openvidu/api/sessions/nope/connection/con_X", "{}").await.0, StatusCode::NOT_FOUND);

    assert_eq!(app.json("DELETE", &conn, "").await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.json("DELETE", &conn, "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.json("DELETE", "/openvidu/api/sessions/nope/connection/con_X", "").await.0, StatusCode::BAD_REQUEST);

    assert_eq!(
        app.json("DELETE", "/openvidu/api/sessions/nope/stream/str_CAM_A_con_X", "").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.json("DELETE", "/openvidu/api/sessions/s/stream/str_CAM_A_con_X", "").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn tokens_signals_recordings() {
    let app = app().await;
    app.json("POST", "/openvidu/api/sessions", r#"{"customSessionId":"s"}"#).await;
    let (s, body) = app.json("POST", "/openvidu/api/tokens", r#"{"session":"s","role":"SUBSCRIBER"}"#).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("\"role\":\"SUBSCRIBER\""));
    let (s, body) = app.json("POST", "/openvidu/api/tokens", r#"{"session":"nope"}"#).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(body.contains("\"status\":404"), "tokens answer 404 with the error body: {body}");
    assert_eq!(app.json("POST", "/openvidu/api/tokens", r#"{}"#).await.0, StatusCode::BAD_REQUEST);

    assert_eq!(
        app.json("POST", "/openvidu/api/signal", r#"{"session":"s","type":"t"}"#).await.0,
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(app.json("POST", "/openvidu/api/signal", r#"{"session":"nope"}"#).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.json("POST", "/openvidu/api/signal", r#"{"session":"s","to":"con_A"}"#).await.0,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        app.json("POST", "/openvidu/api/recordings/start", r#"{"session":"s"}"#).await.0,
        StatusCode::NOT_ACCEPTABLE
    );
    assert_eq!(
        app.json("POST", "/openvidu/api/recordings/start", r#"{"session":"nope"}"#).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.json("POST", "/openvidu/api/recordings/start", r#"{"session":7}"#).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.json("POST", "/openvidu/api/recordings/start", "").await.0, StatusCode::BAD_REQUEST);
    app.json("POST", "/openvidu/api/sessions", r#"{"customSessionId":"r","mediaMode":"RELAYED"}"#).await;
    assert_eq!(app.json("POST", "/openvidu/api/recordings/start", r#"{"session":"r"}"#).await.0, StatusCode::CONFLICT);
    assert_eq!(app.json("POST", "/openvidu/api/recordings/stop/s", "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.json("GET", "/openvidu/api/recordings/s", "").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.json("DELETE", "/openvidu/api/recordings/s", "").await.0, StatusCode::NOT_FOUND);
    let (s, body) = app.json("GET", "/openvidu/api/recordings", "").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "{\"count\":0,\"items\":[]}"));
}

#[tokio::test]
async fn deprecated_paths_and_auth() {
    let app = app().await;
    assert_eq!(app.json("POST", "/api/sessions", r#"{"customSessionId":"old"}"#).await.0, StatusCode::OK);
    assert_eq!(app.json("GET", "/api/sessions/old", "").await.0, StatusCode::OK);
    let (s, body) = app.call("GET", "/config/openvidu-version", None, "").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "2.20.0"));

    let res =
        app.router.clone().oneshot(Request::get("/openvidu/api/sessions").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap().starts_with("Basic"));
    let res = app
        .router
        .clone()
        .oneshot(Request::get("/openvidu/api/config/openvidu-publicurl").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "public URL needs no auth");
    let res = app
        .router
        .clone()
        .oneshot(Request::get("/openvidu/recordings/x/y.mp4").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "recordings are protected by default");
}

/// Bad input of every kind gets OpenVidu's 4xx, never a 5xx, and leaves other sessions alone.
#[tokio::test]
async fn bad_requests_get_4xx_and_change_nothing() {
    let app = app().await;
    app.json("POST", "/openvidu/api/sessions", r#"{"customSessionId":"keep"}"#).await;
    let (_, before) = app.json("GET", "/openvidu/api/sessions/keep?pendingConnections=true", "").await;
    let big = format!("{{\"data\":\"{}\"}}", "x".repeat(10_000));
    let table: &[(&str, &str, Option<&str>, &str, u16)] = &[
        ("POST", "/openvidu/api/sessions", Some("application/json"), "{", 400),
        ("POST", "/openvidu/api/sessions", Some("application/json"), "[]", 400),
        ("POST", "/openvidu/api/sessions", Some("application/json"), "null", 400),
        ("POST", "/openvidu/api/sessions", Some("application/json"), r#"{"mediaMode":"FOO"}"#, 400),
        ("POST", "/openvidu/api/sessions", Some("application/json"), r#"{"allowTranscoding":"true"}"#, 400),
        ("POST", "/openvidu/api/sessions", Some("application/json"), r#"{"customSessionId":"a/b"}"#, 400),
        ("POST", "/openvidu/api/sessions", Some("application/json"), r#"{"customSessionId":5}"#, 400),
        (
            "POST",
            "/openvidu/api/sessions",
            Some("application/json"),
            r#"{"defaultRecordingProperties":{"frameRate":"x"}}"#,
            400,
        ),
        ("POST", "/openvidu/api/sessions", Some("text/plain"), "{}", 415),
        ("POST", "/openvidu/api/sessions", None, "{}", 415),
        ("POST", "/openvidu/api/sessions", Some("application/xml"), "<a/>", 415),
        ("POST", "/openvidu/api/sessions/keep/connection", Some("application/json"), &big, 413),
        ("POST", "/openvidu/api/sessions/keep/connection", Some("application/json"), "", 400),
        ("POST", "/openvidu/api/sessions/keep/connection", Some("application/json"), r#"{"role":"ADMIN"}"#, 400),
        (
            "POST",
            "/openvidu/api/sessions/keep/connection",
            Some("application/json"),
            r#"{"kurentoOptions":{"videoMaxRecvBandwidth":-1}}"#,
            400,
        ),
        ("POST", "/openvidu/api/sessions/keep/connection", Some("application/json"), r#"{"kurentoOptions":"x"}"#, 400),
        (
            "POST",
            "/openvidu/api/sessions/keep/connection",
            Some("application/json"),
            r#"{"type":"IPCAM","rtspUri":"http://x"}"#,
            400,
        ),
        ("POST", "/openvidu/api/sessions/keep/connection", Some("application/json"), r#"{"record":1}"#, 400),
        ("POST", "/openvidu/api/sessions/nope/connection", Some("application/json"), "{}", 404),
        ("POST", "/openvidu/api/sessions/%20bad/connection", Some("application/json"), "{}", 404),
        ("GET", "/openvidu/api/sessions?pendingConnections=maybe", None, "", 400),
        ("GET", "/openvidu/api/sessions/%E2%82%AC", None, "", 404),
        ("POST", "/openvidu/api/recordings/start", Some("application/json"), r#"{"session":["keep"]}"#, 400),
        ("POST", "/openvidu/api/signal", Some("application/json"), r#"{"session":"keep","data":5}"#, 400),
        ("POST", "/openvidu/api/tokens", Some("application/json"), r#"{"session":"keep","role":5}"#, 400),
        ("PUT", "/openvidu/api/sessions", None, "", 405),
        ("GET", "/openvidu/api/nothing-here", None, "", 404),
        ("GET", "/openvidu/cdr/..%2Fetc%2Fpasswd", None, "", 404),
        ("GET", "/openvidu/recordings/..%2F..%2Fetc/passwd", None, "", 404),
    ];
    for (method, path, ct, body, expected) in table {
        let (status, text) = app.call(method, path, *ct, body).await;
        assert_eq!(status.as_u16(), *expected, "{method} {path} {body:.60} → {status} {text}");
    }
    let (_, after) = app.json("GET", "/openvidu/api/sessions/keep?pendingConnections=true", "").await;
    assert_eq!(before, after, "bad requests changed a session");
}

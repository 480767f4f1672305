//! Webhooks are posted for real, with the configured headers and filter; the CDR is written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use openvidu_core::wire::webhook::EventType;
use openvidu_server::Server;
use openvidu_server::config::WebhookConfig;

type Received = Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>;

/// A webhook receiver on a free loopback port; the first `fail_first` posts get a 503.
async fn receiver(fail_first: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let failures = Arc::new(Mutex::new(fail_first));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State((rx, failures)): State<(Received, Arc<Mutex<usize>>)>,
                 headers: HeaderMap,
                 body: String| async move {
                    let mut f = failures.lock().unwrap();
                    if *f > 0 {
                        *f -= 1;
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    rx.lock()
                        .unwrap()
                        .push((headers, serde_json::from_str(&body).unwrap()));
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state((received.clone(), failures));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn wait_for(received: &Received, n: usize) -> Vec<(HeaderMap, serde_json::Value)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = received.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} of {n} webhooks arrived", got.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn webhooks_are_posted_in_order_with_headers_and_retries() {
    let (endpoint, received) = receiver(2).await;
    let cdr = tempfile::tempdir().unwrap();
    let server = Server::builder()
        .https(false)
        .cdr_path(cdr.path())
        .configure(|c| {
            c.webhook = Some(WebhookConfig {
                endpoint: endpoint.parse().unwrap(),
                headers: vec![("Authorization".into(), "Bearer hook-secret".into())],
                events: vec![EventType::SessionCreated, EventType::SessionDestroyed],
            });
        })
        .start()
        .await
        .unwrap();
    let c = super::client(&server);
    let api = format!("{}/openvidu/api/sessions", server.url());
    for id in ["a", "b"] {
        let r = c
            .post(&api)
            .basic_auth("OPENVIDUAPP", Some(server.secret()))
            .json(&serde_json::json!({"customSessionId": id}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // a connection creation emits no webhook; closing emits sessionDestroyed
    let r = c.delete(format!("{api}/a")).basic_auth("OPENVIDUAPP", Some(server.secret())).send().await.unwrap();
    assert_eq!(r.status(), 204);

    let got = wait_for(&received, 3).await;
    let events: Vec<(String, String)> = got
        .iter()
        .map(|(_, b)| (b["event"].as_str().unwrap().to_owned(), b["sessionId"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        events,
        [("sessionCreated", "a"), ("sessionCreated", "b"), ("sessionDestroyed", "a")]
            .map(|(e, s)| (e.to_owned(), s.to_owned()))
    );
    for (headers, body) in &got {
        assert_eq!(headers["authorization"], "Bearer hook-secret");
        assert_eq!(headers["content-type"], "application/json");
        assert!(body["timestamp"].is_u64());
    }
    assert_eq!(got[2].1["reason"], "sessionClosedByServer");

    // the CDR holds the same events as {"<event>": {...}} lines
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(cdr.path()).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            lines.extend(text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()));
        }
        if lines.len() >= 3 {
            assert!(lines[0]["sessionCreated"]["sessionId"] == "a");
            assert!(lines[2]["sessionDestroyed"]["reason"] == "sessionClosedByServer");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "CDR incomplete: {lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

//! The control API itself: errors, auth, malformed frames, timeouts, health.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};
use openvidu_core::model::RecordingLayout;
use openvidu_media::{
    EndpointId, IceCandidate, LoadReport, MediaError, MediaEvent, MediaNode, PublishOptions, RecordedStream,
    RecordingKind, RecordingReport, RecordingSpec, RemoteMediaNode, RemoteOptions,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

/// A plain HTTP/1.1 GET; returns the status and the body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn basic(secret: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{secret}")))
}

/// The error of `result`, for comparing a local and a remote node.
fn shape<T: std::fmt::Debug>(result: Result<T, MediaError>) -> String {
    match result {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("{e:?} / {} / {}", e.rpc_code(), e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_the_same_variants_as_a_local_nodes() {
    let node = start_node("media_Err").await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let remote = RemoteMediaNode::connect(&node.server.url(), SECRET, tx).await.unwrap();
    let local = node.local.clone();
    let nodes: [&dyn MediaNode; 2] = [&*local, &remote];
    let folder = std::env::temp_dir();
    let mut outcomes: Vec<Vec<String>> = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        let session = SessionId::parse(&format!("ses_E{i}")).unwrap();
        let unknown = SessionId::parse("ses_Unknown").unwrap();
        let stream = StreamId::parse("str_CAM_Errs_con_Pub").unwrap();
        let sub = ConnectionId::parse("con_Sub").unwrap();
        let rec = RecordingId::parse("ses_Nope").unwrap();
        n.create_router(&session).await.unwrap();
        let mut out = vec![
            shape(n.publish(&unknown, &stream, PublishOptions::new("v=0")).await),
            shape(n.publish(&session, &stream, PublishOptions::new("garbage")).await),
            shape(n.subscribe(&session, &sub, &stream, "v=0".into()).await),
            shape(n.prepare_subscribe(&session, &sub, &stream).await),
            shape(n.complete_subscribe(&session, &sub, &stream, "x".into()).await),
            shape(n.unsubscribe(&session, &sub, &stream).await),
            shape(n.unpublish(&session, &stream).await),
            shape(
                n.add_ice_candidate(
                    &session,
                    EndpointId::Publisher(stream.clone()),
                    IceCandidate::new("garbage", None, None),
                )
                .await,
            ),
            shape(
                n.add_ice_candidate(&unknown, EndpointId::Publisher(stream.clone()), IceCandidate::new("", None, None))
                    .await,
            ),
            shape(n.stop_recording(&session, &rec).await),
            shape(n.stop_recording_stream(&session, &rec, &stream).await),
            shape(n.record_stream(&session, &rec, RecordedStream::new(stream.clone(), sub.clone())).await),
        ];
        let mut custom = RecordingSpec::new(
            session.clone(),
            rec.clone(),
            "n",
            PathBuf::from(&folder),
            0,
            RecordingKind::Composed { layout: RecordingLayout::Custom, width: 640, height: 480, frame_rate: 25 },
        );
        out.push(shape(n.start_recording(custom.clone(), vec![]).await));
        custom.session = unknown.clone();
        out.push(shape(n.start_recording(custom, vec![]).await));
        // Session ids differ between the two runs; compare the rest.
        outcomes.push(out.into_iter().map(|o| o.replace(session.as_str(), "ses_E")).collect());
    }
    assert_eq!(outcomes[0], outcomes[1]);
    let remote_outcomes = &outcomes[1];
    assert!(remote_outcomes[0].starts_with("NoRouter(SessionId(\"ses_Unknown\"))"), "{}", remote_outcomes[0]);
    assert!(remote_outcomes[1].starts_with("Sdp("), "{}", remote_outcomes[1]);
    assert!(remote_outcomes.iter().any(|o| o.starts_with("StreamNotFound(")), "{remote_outcomes:#?}");
    assert!(remote_outcomes.iter().any(|o| o.starts_with("RecordingNotFound(")), "{remote_outcomes:#?}");
    assert!(remote_outcomes.iter().any(|o| o.starts_with("Unsupported(")), "{remote_outcomes:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_is_required_and_health_is_open() {
    let node = start_node("media_Auth").await;
    let addr = node.server.local_addr();
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let wrong = basic("WRONG");
    for auth in [None, Some(wrong.as_str()), Some("Bearer MY_SECRET")] {
        let mut headers = upgrade.to_vec();
        headers.extend(auth.map(|a| ("Authorization", a)));
        let (status, _) = http_get(addr, "/media-node/ws", &headers).await;
        assert_eq!(status, 401, "{auth:?}");
    }
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = RemoteMediaNode::connect(&node.server.url(), "WRONG", tx).await.err().expect("refused");
    assert!(matches!(err, MediaError::Config(ref m) if m.contains("401")), "{err:?}");

    let (status, body) = http_get(addr, "/media-node/health", &[]).await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["id"], "media_Auth");
    assert_eq!(health["protocol"], 1);
    assert_eq!(health["load"]["routers"], 0);
    node.local.create_router(&SessionId::parse("ses_H").unwrap()).await.unwrap();
    let (_, body) = http_get(addr, "/media-node/health", &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["load"]["routers"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_errors_and_the_connection_survives() {
    let node = start_node("media_Bad").await;
    let mut request = format!("ws://{}/media-node/ws", node.server.local_addr()).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", basic(SECRET).parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello: Value = match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap().unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        hello,
        json!({"event": "hello", "nodeId": "media_Bad", "version": env!("CARGO_PKG_VERSION"), "protocol": 1})
    );
    for garbage in [
        Message::text("this is not JSON"),
        Message::text("{\"method\": \"load\"}"),
        Message::binary(vec![0u8, 1, 2]),
        Message::text("{\"id\": 5, \"method\": \"explode\", \"params\": {}}"),
        Message::text("{\"id\": 6, \"method\": \"createRouter\", \"params\": {\"sessionId\": \"bad id!\"}}"),
        Message::text("{\"id\": 7, \"method\": \"publish\", \"params\": {\"sessionId\": \"ses_A\"}}"),
        Message::text("{\"id\": 8, \"method\": \"load\", \"params\": {}}"),
    ] {
        ws.send(garbage).await.unwrap();
    }
    let mut answers = Vec::new();
    while answers.len() < 4 {
        if let Message::Text(t) = tokio::time::timeout(DEADLINE, ws.next()).await.unwrap().unwrap().unwrap() {
            answers.push(serde_json::from_str::<Value>(t.as_str()).unwrap());
        }
    }
    answers.sort_by_key(|a| a["id"].as_u64());
    for (answer, id) in answers.iter().zip(5..) {
        assert_eq!(answer["id"], id);
    }
    for bad in &answers[..3] {
        assert_eq!(bad["error"]["kind"], "badRequest", "{bad}");
        assert_eq!(bad["error"]["code"], 999);
    }
    assert_eq!(
        answers[3]["result"],
        json!({"routers": 0, "publishers": 0, "subscribers": 0, "cpuLoad": answers[3]["result"]["cpuLoad"]})
    );
    // A bad request through the typed client is an error, not a hang.
    let (tx, _rx) = mpsc::unbounded_channel();
    let remote = RemoteMediaNode::connect(&node.server.url(), SECRET, tx).await.unwrap();
    remote.create_router(&SessionId::parse("ses_Ok").unwrap()).await.unwrap();
}

/// A node that never answers `create_router` and sends an event for every `load`.
struct SlowNode {
    id: MediaNodeId,
    events: mpsc::UnboundedSender<MediaEvent>,
}

#[async_trait::async_trait]
impl MediaNode for SlowNode {
    fn id(&self) -> &MediaNodeId {
        &self.id
    }
    async fn create_router(&self, _: &SessionId) -> Result<(), MediaError> {
        std::future::pending().await
    }
    async fn close_router(&self, _: &SessionId) -> Result<(), MediaError> {
        panic!("a bug in the node")
    }
    async fn publish(&self, _: &SessionId, _: &StreamId, _: PublishOptions) -> Result<String, MediaError> {
        unimplemented!()
    }
    async fn unpublish(&self, _: &SessionId, _: &StreamId) -> Result<(), MediaError> {
        unimplemented!()
    }
    async fn subscribe(&self, _: &SessionId, _: &ConnectionId, _: &StreamId, _: String) -> Result<String, MediaError> {
        unimplemented!()
    }
    async fn prepare_subscribe(&self, _: &SessionId, _: &ConnectionId, _: &StreamId) -> Result<String, MediaError> {
        unimplemented!()
    }
    async fn complete_subscribe(
        &self,
        _: &SessionId,
        _: &ConnectionId,
        _: &StreamId,
        _: String,
    ) -> Result<(), MediaError> {
        unimplemented!()
    }
    async fn unsubscribe(&self, _: &SessionId, _: &ConnectionId, _: &StreamId) -> Result<(), MediaError> {
        unimplemented!()
    }
    async fn add_ice_candidate(&self, _: &SessionId, _: EndpointId, _: IceCandidate) -> Result<(), MediaError> {
        unimplemented!()
    }
    async fn load(&self) -> LoadReport {
        let _ = self.events.send(MediaEvent::RecordingFailed {
            session: SessionId::parse("ses_L").unwrap(),
            recording: RecordingId::parse("ses_L").unwrap(),
            reason: "disk full".into(),
        });
        LoadReport::default()
    }
    async fn start_recording(&self, _: RecordingSpec, _: Vec<RecordedStream>) -> Result<(), MediaError> {
        unimplemented!()
    }
    async fn record_stream(&self, _: &SessionId, _: &RecordingId, _: RecordedStream) -> Result<(), MediaError> {
        unimplemented!()
    }
    async fn stop_recording_stream(&self, _: &SessionId, _: &RecordingId, _: &StreamId) -> Result<(), MediaError> {
        unimplemented!()
    }
    async fn stop_recording(&self, _: &SessionId, _: &RecordingId) -> Result<RecordingReport, MediaError> {
        unimplemented!()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_time_out_panics_are_errors_and_events_reach_every_master() {
    init_tracing();
    let (node_tx, node_rx) = mpsc::unbounded_channel();
    let node = Arc::new(SlowNode { id: MediaNodeId::parse("media_Slow").unwrap(), events: node_tx });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = openvidu_media_node::serve(node, node_rx, listener, SECRET.into()).unwrap();
    let mut options = RemoteOptions::default();
    options.call_timeout = Duration::from_millis(300);
    let (tx1, mut rx1) = mpsc::unbounded_channel();
    let (tx2, mut rx2) = mpsc::unbounded_channel();
    let m1 = RemoteMediaNode::connect_with(&server.url(), SECRET, tx1, options.clone()).await.unwrap();
    let m2 = RemoteMediaNode::connect_with(&server.url(), SECRET, tx2, options).await.unwrap();
    let session = SessionId::parse("ses_S").unwrap();

    let start = Instant::now();
    let err = m1.create_router(&session).await.unwrap_err();
    assert!(
        matches!(err, MediaError::Internal(ref m) if m.contains("timed out") && m.contains("media_Slow")),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));

    let err = m1.close_router(&session).await.unwrap_err();
    assert!(matches!(err, MediaError::Internal(_)), "{err:?}");
    // Still connected and working after both.
    assert!(m1.is_connected());
    m1.load().await;
    for rx in [&mut rx1, &mut rx2] {
        let event = tokio::time::timeout(DEADLINE, rx.recv()).await.unwrap().unwrap();
        assert!(matches!(event, MediaEvent::RecordingFailed { ref reason, .. } if reason == "disk full"), "{event:?}");
    }
    assert!(m2.last_seen().unwrap().elapsed() < DEADLINE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_figures() {
    let node = start_node("media_Rtt").await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let remote = Arc::new(RemoteMediaNode::connect(&node.server.url(), SECRET, tx).await.unwrap());
    let session = SessionId::parse("ses_R").unwrap();
    remote.create_router(&session).await.unwrap();
    let n = 500;
    let start = Instant::now();
    for _ in 0..n {
        remote.create_router(&session).await.unwrap();
    }
    let sequential = start.elapsed() / n;
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (remote, session) = (remote.clone(), session.clone());
            tokio::spawn(async move { remote.create_router(&session).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let concurrent = start.elapsed();
    println!("remote createRouter: {sequential:?} per sequential call; {n} concurrent calls in {concurrent:?}");
}

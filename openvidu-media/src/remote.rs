//! [`RemoteMediaNode`]: a media node in another process (`openvidu-media-node`), driven through
//! its control WebSocket ([`openvidu_core::wire::media_node`]) behind the same [`MediaNode`]
//! trait as [`LocalMediaNode`](crate::LocalMediaNode).
//!
//! The connection is plain `ws://` with HTTP Basic auth: the control network between masters and
//! media nodes is trusted (loopback, a private network or a VPN), as OpenVidu's own master ⇄
//! Kurento link is.

pub mod protocol;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};
use openvidu_core::wire::media_node::{
    AddIceCandidateParams, Call, CompleteSubscribeParams, Empty, LoadJson, NodeEvent, NodeMessage, Outcome,
    PROTOCOL_VERSION, RecordStreamParams, RecordingParams, RecordingReportJson, Request, SdpAnswerResult,
    SdpOfferResult, SessionParams, StartRecordingParams, StopRecordingStreamParams, StreamParams, SubscribeParams,
    SubscriptionParams, WS_PATH,
};
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaEvent, MediaNode, PublishOptions};
use crate::recording::{RecordedStream, RecordingReport, RecordingSpec};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Timeouts and reconnection of a [`RemoteMediaNode`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// How long a call may wait for its answer. Default 10 s.
    pub call_timeout: Duration,
    /// How long `start_recording` and `stop_recording` may wait (finishing a COMPOSED file takes
    /// a while). Default 60 s.
    pub recording_timeout: Duration,
    /// How long connecting (TCP, WebSocket handshake, hello) may take. Default 5 s.
    pub connect_timeout: Duration,
    /// How often the master pings the node. Default 2 s.
    pub ping_interval: Duration,
    /// Silence (no frame, not even a pong) after which the connection counts as dead and is
    /// reopened. Default 6 s.
    pub dead_after: Duration,
    /// The first wait before reconnecting; doubled after each failure. Default 100 ms.
    pub reconnect_min: Duration,
    /// The longest wait between two reconnection attempts. Default 2 s.
    pub reconnect_max: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(10),
            recording_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(2),
            dead_after: Duration::from_secs(6),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(2),
        }
    }
}

/// A media node in another process, reached over its control WebSocket.
///
/// Calls are multiplexed on one connection and answered by id; each has a timeout
/// ([`RemoteOptions::call_timeout`]). Events the node pushes come out on the channel given to
/// [`connect`](Self::connect), exactly as a [`LocalMediaNode`](crate::LocalMediaNode)'s do. When
/// the connection drops it is reopened in the background with backoff; calls made meanwhile fail
/// at once with [`MediaError::Internal`] naming the node, and calls in flight fail the same way.
/// The node's routers survive a dropped control connection (the media keeps flowing).
///
/// Dropping the handle closes the connection.
#[must_use = "the control connection is closed when the RemoteMediaNode is dropped"]
pub struct RemoteMediaNode {
    shared: Arc<Shared>,
    driver: tokio::task::JoinHandle<()>,
}

struct Shared {
    id: MediaNodeId,
    url: String,
    authorization: HeaderValue,
    options: RemoteOptions,
    events: mpsc::UnboundedSender<MediaEvent>,
    next_id: AtomicU64,
    link: Mutex<Link>,
    last_seen: Mutex<Option<Instant>>,
}

/// The current connection, if any, and the calls waiting for an answer on it.
#[derive(Default)]
struct Link {
    out: Option<mpsc::UnboundedSender<Message>>,
    pending: HashMap<u64, oneshot::Sender<Outcome>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `ws://host:port` or `http://host:port` (with or without the path) → the control endpoint.
fn control_url(url: &str) -> Result<String, MediaError> {
    let url = url.trim();
    let rest = if let Some(rest) = url.strip_prefix("ws://").or_else(|| url.strip_prefix("http://")) {
        rest
    } else if url.starts_with("wss://") || url.starts_with("https://") {
        return Err(MediaError::Unsupported(format!(
            "{url}: the media node control connection is plain ws:// (trusted network), not TLS"
        )));
    } else {
        return Err(MediaError::Config(format!("{url:?} is not a ws:// or http:// media node URL")));
    };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if host.is_empty() {
        return Err(MediaError::Config(format!("{url:?} has no host")));
    }
    let path = path.trim_end_matches('/');
    Ok(if path.is_empty() { format!("ws://{host}{WS_PATH}") } else { format!("ws://{host}/{path}") })
}

impl RemoteMediaNode {
    /// Connects to the media node at `url` (`ws://host:port` or `http://host:port`; the control
    /// path `/media-node/ws` is added when absent) with the node's `secret`, with default
    /// [`RemoteOptions`]. Returns once the node has said who it is. Its events are sent to
    /// `events`. Must be called inside a tokio runtime.
    ///
    /// Fails with [`MediaError::Config`] when the URL is bad or the node refuses the secret, and
    /// [`MediaError::Internal`] when it cannot be reached.
    pub async fn connect(
        url: &str,
        secret: &str,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        Self::connect_with(url, secret, events, RemoteOptions::default()).await
    }

    /// [`connect`](Self::connect) with other timeouts.
    pub async fn connect_with(
        url: &str,
        secret: &str,
        events: mpsc::UnboundedSender<MediaEvent>,
        options: RemoteOptions,
    ) -> Result<Self, MediaError> {
        let url = control_url(url)?;
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{secret}"));
        let authorization = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| MediaError::Config("the secret cannot be sent in an HTTP header".into()))?;
        let (ws, id) = open(&url, &authorization, &options).await?;
        tracing::info!(node_id = %id, %url, "connected to media node");
        let shared = Arc::new(Shared {
            id,
            url,
            authorization,
            options,
            events,
            next_id: AtomicU64::new(1),
            link: Mutex::default(),
            last_seen: Mutex::new(Some(Instant::now())),
        });
        let out = shared.attach();
        let driver = tokio::spawn(drive(shared.clone(), ws, out));
        Ok(Self { shared, driver })
    }

    /// The control URL.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Whether the control connection is up now.
    pub fn is_connected(&self) -> bool {
        lock(&self.shared.link).out.is_some()
    }

    /// When the node last sent anything (a response, an event or a pong).
    pub fn last_seen(&self) -> Option<Instant> {
        *lock(&self.shared.last_seen)
    }

    fn unreachable(&self, method: &str) -> MediaError {
        MediaError::Internal(format!(
            "media node {} ({}) is not connected; {method} not sent",
            self.shared.id, self.shared.url
        ))
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, MediaError> {
        let shared = &self.shared;
        let method = call.method();
        let timeout = match call {
            Call::StartRecording(_) | Call::StopRecording(_) => shared.options.recording_timeout,
            _ => shared.options.call_timeout,
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let text = serde_json::to_string(&Request { id, call })
            .map_err(|e| MediaError::Internal(format!("cannot encode {method}: {e}")))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut link = lock(&shared.link);
            let sent = link.out.as_ref().is_some_and(|out| out.send(Message::text(text)).is_ok());
            if !sent {
                return Err(self.unreachable(method));
            }
            link.pending.insert(id, tx);
        }
        // Forgets the call if it times out or the caller gives up.
        let _pending = Forget { shared, id };
        let outcome = match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                tracing::warn!(node_id = %shared.id, method, request_id = id, "media node call timed out");
                return Err(MediaError::Internal(format!(
                    "media node {} timed out after {timeout:?} ({method})",
                    shared.id
                )));
            }
            Ok(Err(_)) => {
                return Err(MediaError::Internal(format!(
                    "media node {} ({}) disconnected during {method}",
                    shared.id, shared.url
                )));
            }
            Ok(Ok(outcome)) => outcome,
        };
        match outcome {
            Outcome::Result(value) => serde_json::from_value(value).map_err(|e| {
                MediaError::Internal(format!("media node {} sent an unreadable {method} result: {e}", shared.id))
            }),
            Outcome::Error(error) => Err(protocol::error_from_wire(error)),
        }
    }
}

impl Drop for RemoteMediaNode {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Removes a pending call on drop.
struct Forget<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.shared.link).pending.remove(&self.id);
    }
}

impl Shared {
    /// Makes a new connection the current one; returns its outgoing queue.
    fn attach(&self) -> mpsc::UnboundedReceiver<Message> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.link).out = Some(tx);
        *lock(&self.last_seen) = Some(Instant::now());
        rx
    }

    /// The connection is gone: calls in flight fail (their senders drop), new ones fail fast.
    fn detach(&self) {
        let mut link = lock(&self.link);
        link.out = None;
        link.pending.clear();
    }

    fn touch(&self) {
        *lock(&self.last_seen) = Some(Instant::now());
    }

    fn silent_for(&self) -> Duration {
        lock(&self.last_seen).map_or(Duration::MAX, |t| t.elapsed())
    }

    /// Handles one text frame from the node.
    fn receive(&self, text: &str) {
        match serde_json::from_str::<NodeMessage>(text) {
            Ok(NodeMessage::Response(response)) => {
                let waiting = lock(&self.link).pending.remove(&response.id);
                match waiting {
                    Some(tx) => {
                        let _ = tx.send(response.outcome);
                    }
                    None => tracing::debug!(node_id = %self.id, request_id = response.id, "late response dropped"),
                }
            }
            Ok(NodeMessage::Event(NodeEvent::Hello { node_id, .. })) => {
                if node_id != self.id {
                    tracing::warn!(node_id = %self.id, new_id = %node_id, "media node changed its id");
                }
            }
            Ok(NodeMessage::Event(event)) => {
                if let Some(event) = protocol::event_from_wire(event) {
                    let _ = self.events.send(event);
                }
            }
            Err(e) => tracing::warn!(node_id = %self.id, error = %e, "unreadable frame from media node ignored"),
        }
    }
}

/// Opens the control connection and reads the node's hello.
async fn open(
    url: &str,
    authorization: &HeaderValue,
    options: &RemoteOptions,
) -> Result<(Ws, MediaNodeId), MediaError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| MediaError::Config(format!("{url:?} is not a usable media node URL: {e}")))?;
    request.headers_mut().insert(header::AUTHORIZATION, authorization.clone());
    let connecting = async {
        let (mut ws, _) =
            tokio_tungstenite::connect_async_with_config(request, None, true).await.map_err(|e| match e {
                tungstenite::Error::Http(response) if response.status() == StatusCode::UNAUTHORIZED => {
                    MediaError::Config(format!("media node at {url} refused the secret (401)"))
                }
                e => MediaError::Internal(format!("cannot reach media node at {url}: {e}")),
            })?;
        while let Some(frame) = ws.next().await {
            let frame = frame.map_err(|e| MediaError::Internal(format!("media node at {url}: {e}")))?;
            if let Message::Text(text) = frame {
                return match serde_json::from_str::<NodeMessage>(text.as_str()) {
                    Ok(NodeMessage::Event(NodeEvent::Hello { node_id, protocol, .. }))
                        if protocol == PROTOCOL_VERSION =>
                    {
                        Ok((ws, node_id))
                    }
                    Ok(NodeMessage::Event(NodeEvent::Hello { protocol, .. })) => Err(MediaError::Config(format!(
                        "media node at {url} speaks protocol {protocol}, this master {PROTOCOL_VERSION}"
                    ))),
                    _ => Err(MediaError::Internal(format!("media node at {url} did not say hello"))),
                };
            }
        }
        Err(MediaError::Internal(format!("media node at {url} closed the connection")))
    };
    tokio::time::timeout(options.connect_timeout, connecting)
        .await
        .map_err(|_| MediaError::Internal(format!("connecting to media node at {url} timed out")))?
}

/// Runs connections one after the other for as long as the handle lives.
async fn drive(shared: Arc<Shared>, mut ws: Ws, mut out: mpsc::UnboundedReceiver<Message>) {
    loop {
        run(&shared, ws, &mut out).await;
        shared.detach();
        tracing::warn!(node_id = %shared.id, url = %shared.url, "media node connection lost; reconnecting");
        let mut delay = shared.options.reconnect_min;
        ws = loop {
            tokio::time::sleep(delay).await;
            match open(&shared.url, &shared.authorization, &shared.options).await {
                Ok((ws, id)) => {
                    if id != shared.id {
                        tracing::warn!(node_id = %shared.id, new_id = %id, "media node came back under another id");
                    }
                    tracing::info!(node_id = %shared.id, "media node reconnected");
                    break ws;
                }
                Err(e) => {
                    tracing::debug!(node_id = %shared.id, error = %e, "media node still unreachable");
                    delay = (delay * 2).min(shared.options.reconnect_max);
                }
            }
        };
        out = shared.attach();
    }
}

/// Pumps one connection until it closes, fails or goes silent.
async fn run(shared: &Shared, ws: Ws, out: &mut mpsc::UnboundedReceiver<Message>) {
    let (mut sink, mut stream) = ws.split();
    let mut ping = tokio::time::interval(shared.options.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = out.recv() => {
                let Some(message) = message else { break };
                if let Err(e) = sink.send(message).await {
                    tracing::warn!(node_id = %shared.id, error = %e, "cannot write to media node");
                    break;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    shared.touch();
                    shared.receive(text.as_str());
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => shared.touch(),
                Some(Err(e)) => {
                    tracing::warn!(node_id = %shared.id, error = %e, "media node connection failed");
                    break;
                }
            },
            _ = ping.tick() => {
                if shared.silent_for() > shared.options.dead_after {
                    tracing::warn!(node_id = %shared.id, "media node silent; dropping the connection");
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

#[async_trait::async_trait]
impl MediaNode for RemoteMediaNode {
    fn id(&self) -> &MediaNodeId {
        &self.shared.id
    }

    async fn create_router(&self, session: &SessionId) -> Result<(), MediaError> {
        let Empty {} = self.call(Call::CreateRouter(SessionParams { session_id: session.clone() })).await?;
        Ok(())
    }

    async fn close_router(&self, session: &SessionId) -> Result<(), MediaError> {
        let Empty {} = self.call(Call::CloseRouter(SessionParams { session_id: session.clone() })).await?;
        Ok(())
    }

    async fn publish(
        &self,
        session: &SessionId,
        stream: &StreamId,
        options: PublishOptions,
    ) -> Result<String, MediaError> {
        let params = protocol::publish_to_wire(session, stream, options);
        let result: SdpAnswerResult = self.call(Call::Publish(params)).await?;
        Ok(result.sdp_answer)
    }

    async fn unpublish(&self, session: &SessionId, stream: &StreamId) -> Result<(), MediaError> {
        let params = StreamParams { session_id: session.clone(), stream_id: stream.clone() };
        let Empty {} = self.call(Call::Unpublish(params)).await?;
        Ok(())
    }

    async fn subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, MediaError> {
        let params = SubscribeParams {
            session_id: session.clone(),
            subscriber_id: subscriber.clone(),
            stream_id: stream.clone(),
            sdp_offer,
        };
        let result: SdpAnswerResult = self.call(Call::Subscribe(params)).await?;
        Ok(result.sdp_answer)
    }

    async fn prepare_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<String, MediaError> {
        let params = SubscriptionParams {
            session_id: session.clone(),
            subscriber_id: subscriber.clone(),
            stream_id: stream.clone(),
        };
        let result: SdpOfferResult = self.call(Call::PrepareSubscribe(params)).await?;
        Ok(result.sdp_offer)
    }

    async fn complete_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), MediaError> {
        let params = CompleteSubscribeParams {
            session_id: session.clone(),
            subscriber_id: subscriber.clone(),
            stream_id: stream.clone(),
            sdp_answer,
        };
        let Empty {} = self.call(Call::CompleteSubscribe(params)).await?;
        Ok(())
    }

    async fn unsubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        let params = SubscriptionParams {
            session_id: session.clone(),
            subscriber_id: subscriber.clone(),
            stream_id: stream.clone(),
        };
        let Empty {} = self.call(Call::Unsubscribe(params)).await?;
        Ok(())
    }

    async fn add_ice_candidate(
        &self,
        session: &SessionId,
        endpoint: EndpointId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        let params = AddIceCandidateParams {
            session_id: session.clone(),
            endpoint: protocol::endpoint_to_wire(&endpoint),
            candidate: protocol::candidate_to_wire(candidate),
        };
        let Empty {} = self.call(Call::AddIceCandidate(params)).await?;
        Ok(())
    }

    /// The node's load; all zeros (and a warning) while it cannot be asked.
    async fn load(&self) -> LoadReport {
        match self.call::<LoadJson>(Call::Load(Empty {})).await {
            Ok(load) => protocol::load_from_wire(load),
            Err(e) => {
                tracing::warn!(node_id = %self.shared.id, error = %e, "no load report from media node");
                LoadReport::default()
            }
        }
    }

    async fn start_recording(&self, spec: RecordingSpec, streams: Vec<RecordedStream>) -> Result<(), MediaError> {
        let params = StartRecordingParams {
            recording: protocol::spec_to_wire(&spec),
            streams: streams.into_iter().map(protocol::recorded_stream_to_wire).collect(),
        };
        let Empty {} = self.call(Call::StartRecording(params)).await?;
        Ok(())
    }

    async fn record_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: RecordedStream,
    ) -> Result<(), MediaError> {
        let params = RecordStreamParams {
            session_id: session.clone(),
            recording_id: recording.clone(),
            stream: protocol::recorded_stream_to_wire(stream),
        };
        let Empty {} = self.call(Call::RecordStream(params)).await?;
        Ok(())
    }

    async fn stop_recording_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        let params = StopRecordingStreamParams {
            session_id: session.clone(),
            recording_id: recording.clone(),
            stream_id: stream.clone(),
        };
        let Empty {} = self.call(Call::StopRecordingStream(params)).await?;
        Ok(())
    }

    async fn stop_recording(
        &self,
        session: &SessionId,
        recording: &RecordingId,
    ) -> Result<RecordingReport, MediaError> {
        let params = RecordingParams { session_id: session.clone(), recording_id: recording.clone() };
        let report: RecordingReportJson = self.call(Call::StopRecording(params)).await?;
        Ok(protocol::report_from_wire(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_urls() {
        assert_eq!(control_url("ws://10.0.0.2:3000").unwrap(), "ws://10.0.0.2:3000/media-node/ws");
        assert_eq!(control_url("http://10.0.0.2:3000/").unwrap(), "ws://10.0.0.2:3000/media-node/ws");
        assert_eq!(control_url("ws://h:1/media-node/ws").unwrap(), "ws://h:1/media-node/ws");
        assert!(matches!(control_url("wss://h:1"), Err(MediaError::Unsupported(_))));
        assert!(matches!(control_url("h:1"), Err(MediaError::Config(_))));
        assert!(matches!(control_url("ws:///x"), Err(MediaError::Config(_))));
    }

    #[tokio::test]
    async fn unreachable_node_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let (tx, _rx) = mpsc::unbounded_channel();
        let err = RemoteMediaNode::connect(&format!("ws://127.0.0.1:{port}"), "s", tx).await.err().unwrap();
        assert!(matches!(err, MediaError::Internal(_)), "{err:?}");
    }
}

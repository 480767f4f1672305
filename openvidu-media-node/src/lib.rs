//! # openvidu-media-node
//!
//! An openvidu-rs media node as its own process: a [`LocalMediaNode`](openvidu_media::LocalMediaNode)
//! (the WebRTC SFU and the recorders) behind a WebSocket control API that masters drive with
//! [`RemoteMediaNode`](openvidu_media::RemoteMediaNode). It knows nothing of sessions' REST state,
//! participants or Redis: it only runs what a master asks for.
//!
//! ## How to start
//!
//! Run the binary (`openvidu-media-node --help` lists the settings, see [`config`]):
//!
//! ```text
//! OPENVIDU_SECRET=MY_SECRET MEDIA_NODE_PORT=3000 openvidu-media-node
//! openvidu-media-node listening on http://0.0.0.0:3000
//! ```
//!
//! or serve a node from your own process with [`serve`]:
//!
//! ```no_run
//! use std::sync::Arc;
//! use openvidu_media::{LocalMediaNode, MediaConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (events, rx) = tokio::sync::mpsc::unbounded_channel();
//! let node = Arc::new(LocalMediaNode::new(MediaConfig::default(), events)?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let server = openvidu_media_node::serve(node, rx, listener, "MY_SECRET".into())?;
//! println!("control API at {}", server.url());
//! # Ok(()) }
//! ```
//!
//! ## The control API
//!
//! - `GET /media-node/ws`: the WebSocket of [`openvidu_core::wire::media_node`], with HTTP Basic
//!   `OPENVIDUAPP:<secret>` (401 otherwise). The node says hello first; requests are run
//!   concurrently, each in its own task, and answered by id. A frame that is not a request gets
//!   a `badRequest` error when it has an id, and is logged and ignored otherwise; the connection
//!   stays open either way.
//! - `GET /media-node/health`: unauthenticated, 200 with `{"id", "version", "protocol", "load"}`.
//!
//! Events (ICE candidates, connection state, failed recordings) go to **every** connected master:
//! in a cluster several masters drive the same session, and each keeps the endpoints it created
//! and ignores the others. Events raised while no master is connected are kept (the latest
//! [`EVENT_BACKLOG`]) and delivered to the next master that connects.
//!
//! The control API is plain HTTP: run it on a trusted network (loopback, a private network or a
//! VPN), as OpenVidu's own master ⇄ media node link is.
#![deny(missing_docs)]

pub mod config;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use openvidu_core::wire::media_node::{
    self as wire, ErrorJson, ErrorKind, HealthJson, NodeEvent, PROTOCOL_VERSION, Request, Response as WireResponse,
};
use openvidu_media::{MediaEvent, MediaNode, protocol};
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, watch};

/// The node's software version, announced in the hello and the health report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Events kept while no master is connected.
pub const EVENT_BACKLOG: usize = 1024;

/// The largest control message accepted (SDPs are a few kB).
const MAX_MESSAGE: usize = 4 << 20;

/// Why the control API cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The secret is empty.
    #[error("the media node secret must not be empty")]
    EmptySecret,
    /// The listener is unusable.
    #[error("cannot use the listening socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The running control API. Dropping it (or [`shutdown`](Self::shutdown)) stops accepting,
/// closes every master's WebSocket and stops forwarding events; the node itself lives on as
/// long as other `Arc`s to it do.
#[must_use = "the control API stops when the MediaNodeServer is dropped"]
pub struct MediaNodeServer {
    addr: SocketAddr,
    closing: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    events: Option<tokio::task::JoinHandle<()>>,
}

impl MediaNodeServer {
    /// The address the control API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR:PORT`: the base URL masters use (`KMS_URIS`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the control API and waits (at most 5 s) until it no longer listens.
    pub async fn shutdown(mut self) {
        let _ = self.closing.send(true);
        if let Some(events) = self.events.take() {
            events.abort();
        }
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(std::time::Duration::from_secs(5), &mut server).await.is_err()
        {
            server.abort();
        }
    }
}

impl Drop for MediaNodeServer {
    fn drop(&mut self) {
        let _ = self.closing.send(true);
        for task in [self.events.take(), self.server.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

/// Masters connected now, and the events that arrived while there were none.
#[derive(Default)]
struct Hub {
    masters: HashMap<u64, mpsc::UnboundedSender<String>>,
    backlog: VecDeque<String>,
}

#[derive(Clone)]
struct AppState {
    node: Arc<dyn MediaNode>,
    /// `OPENVIDUAPP:<secret>`, compared in constant time.
    credentials: Arc<[u8]>,
    hub: Arc<Mutex<Hub>>,
    closing: watch::Receiver<bool>,
    next_master: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves `node`'s control API on `listener` with `secret`, forwarding the node's `events` to
/// connected masters. Runs in the background until the returned handle is dropped. Must be
/// called inside a tokio runtime.
///
/// `node` is usually an `Arc<MediaWorker>` (the binary's) or an `Arc<LocalMediaNode>`; any
/// [`MediaNode`] can be served.
pub fn serve(
    node: Arc<dyn MediaNode>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    listener: tokio::net::TcpListener,
    secret: String,
) -> Result<MediaNodeServer, ServeError> {
    if secret.is_empty() {
        return Err(ServeError::EmptySecret);
    }
    let addr = listener.local_addr()?;
    let (closing, closing_rx) = watch::channel(false);
    let hub = Arc::new(Mutex::new(Hub::default()));
    let state = AppState {
        node: node.clone(),
        credentials: format!("OPENVIDUAPP:{secret}").into_bytes().into(),
        hub: hub.clone(),
        closing: closing_rx.clone(),
        next_master: Arc::default(),
    };
    let app = router(state);
    let events = tokio::spawn(forward_events(events, hub));
    let mut shutdown = closing_rx;
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|closed| *closed).await;
        };
        // Control messages are small and latency-bound: no Nagle delay.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(stop).await {
            tracing::error!(error = %e, "media node control API failed");
        }
    });
    tracing::info!(node_id = %node.id(), %addr, "media node control API listening");
    Ok(MediaNodeServer { addr, closing, server: Some(server), events: Some(events) })
}

/// The control API's routes.
fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(wire::WS_PATH, get(control_socket))
        .route(wire::HEALTH_PATH, get(health))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Response {
    let load = protocol::load_to_wire(&state.node.load().await);
    let body = HealthJson { id: state.node.id().clone(), version: VERSION.into(), protocol: PROTOCOL_VERSION, load };
    axum::Json(body).into_response()
}

/// Whether `headers` carry `Basic base64(OPENVIDUAPP:<secret>)`.
fn authorized(headers: &HeaderMap, credentials: &[u8]) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    bool::from(decoded.as_slice().ct_eq(credentials))
}

async fn control_socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !authorized(&headers, &state.credentials) {
        let mut response = StatusCode::UNAUTHORIZED.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"openvidu-media-node\""));
        return response;
    }
    match upgrade {
        Ok(upgrade) => upgrade
            .max_message_size(MAX_MESSAGE)
            .max_frame_size(MAX_MESSAGE)
            .on_upgrade(move |socket| master_connection(socket, state)),
        Err(rejection) => rejection.into_response(),
    }
}

/// Sends the node's events to every master (or keeps them while there is none).
async fn forward_events(mut events: mpsc::UnboundedReceiver<MediaEvent>, hub: Arc<Mutex<Hub>>) {
    while let Some(event) = events.recv().await {
        let text = match serde_json::to_string(&protocol::event_to_wire(event)) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a media event");
                continue;
            }
        };
        let mut hub = lock(&hub);
        if hub.masters.is_empty() {
            if hub.backlog.len() == EVENT_BACKLOG {
                hub.backlog.pop_front();
                tracing::warn!("no master connected: oldest media event dropped");
            }
            hub.backlog.push_back(text);
        } else {
            hub.masters.retain(|_, master| master.send(text.clone()).is_ok());
        }
    }
}

/// One master's WebSocket: hello, then requests in and responses and events out.
async fn master_connection(socket: WebSocket, state: AppState) {
    let master = state.next_master.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let hello =
        NodeEvent::Hello { node_id: state.node.id().clone(), version: VERSION.into(), protocol: PROTOCOL_VERSION };
    match serde_json::to_string(&hello) {
        Ok(text) => {
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the hello");
            return;
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    {
        let mut hub = lock(&state.hub);
        for text in hub.backlog.drain(..) {
            let _ = tx.send(text);
        }
        hub.masters.insert(master, tx.clone());
    }
    tracing::info!(node_id = %state.node.id(), master, "master connected");
    let mut closing = state.closing.clone();
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(text) = out else { break };
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => handle_frame(text.as_str(), &state, master, &tx),
                Some(Ok(Message::Binary(_))) => {
                    tracing::warn!(master, "binary frame from master ignored");
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::info!(master, error = %e, "master connection failed");
                    break;
                }
            },
            () = closed(&mut closing) => break,
        }
    }
    lock(&state.hub).masters.remove(&master);
    let _ = sink.close().await;
    tracing::info!(node_id = %state.node.id(), master, "master disconnected");
}

/// Resolves once the server is closing (or gone).
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|closed| *closed).await;
}

/// Parses one frame and runs it in its own task; the answer goes out through `out`.
fn handle_frame(text: &str, state: &AppState, master: u64, out: &mpsc::UnboundedSender<String>) {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            tracing::warn!(master, error = %e, "frame that is not JSON ignored");
            return;
        }
    };
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let request = match serde_json::from_value::<Request>(value) {
        Ok(request) => request,
        Err(e) => {
            match id {
                Some(id) => {
                    tracing::warn!(master, request_id = id, error = %e, "bad request");
                    let detail = e.to_string();
                    let error = ErrorJson {
                        code: 999,
                        message: format!("bad request: {detail}"),
                        kind: ErrorKind::BadRequest { detail },
                    };
                    send(out, &WireResponse::error(id, error));
                }
                None => tracing::warn!(master, error = %e, "frame without an id ignored"),
            }
            return;
        }
    };
    let node = state.node.clone();
    let out = out.clone();
    tokio::spawn(async move {
        let Request { id, call } = request;
        let method = call.method();
        let session = call.session().map(ToString::to_string).unwrap_or_default();
        // The call runs in a task of its own, so that a panic in it is an error response.
        let result = match tokio::spawn(async move { protocol::dispatch(&*node, call).await }).await {
            Ok(result) => result,
            Err(e) => Err(openvidu_media::MediaError::Internal(format!("{method} failed: {e}"))),
        };
        let response = match result {
            Ok(value) => WireResponse::result(id, value),
            Err(e) => {
                tracing::debug!(master, request_id = id, method, session_id = %session, error = %e, "call failed");
                WireResponse::error(id, protocol::error_to_wire(&e))
            }
        };
        send(&out, &response);
    });
}

fn send(out: &mpsc::UnboundedSender<String>, response: &WireResponse) {
    match serde_json::to_string(response) {
        Ok(text) => {
            let _ = out.send(text);
        }
        Err(e) => tracing::error!(request_id = response.id, error = %e, "cannot encode a response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth() {
        let creds = b"OPENVIDUAPP:s3cret";
        let mut h = HeaderMap::new();
        assert!(!authorized(&h, creds));
        let good = base64::engine::general_purpose::STANDARD.encode("OPENVIDUAPP:s3cret");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {good}")).unwrap());
        assert!(authorized(&h, creds));
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("basic  {good}")).unwrap());
        assert!(authorized(&h, creds));
        for bad in ["OPENVIDUAPP:s3cre", "OPENVIDUAPP:s3cretX", "OTHER:s3cret", ""] {
            let enc = base64::engine::general_purpose::STANDARD.encode(bad);
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {enc}")).unwrap());
            assert!(!authorized(&h, creds), "{bad}");
        }
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert!(!authorized(&h, creds));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(!authorized(&h, creds));
    }
}

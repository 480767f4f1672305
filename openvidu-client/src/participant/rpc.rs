//! The JSON-RPC 2.0 client over the `/openvidu` WebSocket, with kurento-jsonrpc's habits:
//! integer request ids, results that are objects (a `sessionId` injected), notifications without
//! an id. One socket at a time; [`Rpc::replace_socket`] swaps it for a fresh one (the
//! reconnection of openvidu-browser), failing the requests still waiting on the old one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{Connector, connect_async_tls_with_config};

use super::ParticipantError;

/// How much a WebSocket read asks for. tungstenite zeroes that much before every read (its
/// default is 128 KiB); the server's messages are small (an SDP, the largest, is a few kB).
const READ_BUFFER: usize = 16 * 1024;

/// The close code openvidu-browser uses when it leaves on purpose.
const CLOSE_BY_CLIENT: u16 = 4102;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the socket delivers besides answers.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A server notification.
    Notification { method: String, params: Map<String, Value> },
    /// Socket number `generation` closed or failed.
    SocketLost { generation: u64 },
}

enum Answer {
    Result(Value),
    Error { code: i64, message: String },
}

struct Pending {
    generation: u64,
    tx: oneshot::Sender<Result<Answer, ParticipantError>>,
}

/// What the socket tasks share with the callers.
struct Shared {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    inbound: mpsc::UnboundedSender<Inbound>,
}

impl Shared {
    fn handle_frame(&self, frame: &str) {
        let mut obj = match serde_json::from_str::<Value>(frame) {
            Ok(Value::Object(obj)) => obj,
            _ => {
                tracing::debug!(frame = %truncate(frame), "ignoring a frame that is not a JSON object");
                return;
            }
        };
        let id = obj.get("id").filter(|v| !v.is_null()).cloned();
        if let (None, Some(Value::String(method))) = (&id, obj.remove("method")) {
            let params = match obj.remove("params") {
                Some(Value::Object(p)) => p,
                _ => Map::new(),
            };
            let _ = self.inbound.send(Inbound::Notification { method, params });
            return;
        }
        let Some(id) = id.as_ref().and_then(Value::as_u64) else {
            tracing::debug!(frame = %truncate(frame), "ignoring a frame with no usable id");
            return;
        };
        let Some(pending) = lock(&self.pending).remove(&id) else {
            tracing::debug!(id, "answer to no waiting request");
            return;
        };
        let answer = match obj.remove("error") {
            Some(error) => Answer::Error {
                code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
            },
            None => Answer::Result(obj.remove("result").unwrap_or(Value::Null)),
        };
        let _ = pending.tx.send(Ok(answer));
    }

    /// Fails the requests waiting on socket `generation`.
    fn fail_pending(&self, generation: u64, why: &str) {
        let failed: Vec<Pending> = {
            let mut pending = lock(&self.pending);
            let ids: Vec<u64> = pending.iter().filter(|(_, p)| p.generation == generation).map(|(id, _)| *id).collect();
            ids.iter().filter_map(|id| pending.remove(id)).collect()
        };
        for p in failed {
            let _ = p.tx.send(Err(ParticipantError::Socket(why.to_owned())));
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

struct Socket {
    generation: u64,
    tx: mpsc::UnboundedSender<Message>,
    reader: AbortHandle,
    writer: AbortHandle,
}

impl Socket {
    fn abort(&self) {
        self.reader.abort();
        self.writer.abort();
    }
}

struct RpcInner {
    url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    shared: Arc<Shared>,
    socket: Mutex<Option<Socket>>,
    generations: AtomicU64,
    ping_interval_due: AtomicBool,
}

impl Drop for RpcInner {
    fn drop(&mut self) {
        if let Some(socket) = lock(&self.socket).take() {
            socket.abort();
        }
    }
}

/// A JSON-RPC client; cheap to clone.
#[derive(Clone)]
pub(crate) struct Rpc {
    inner: Arc<RpcInner>,
}

impl Rpc {
    /// A client of `url` (`ws://…/openvidu?…` or `wss://…`); `tls` is required for `wss`.
    /// Nothing is opened yet: call [`replace_socket`](Self::replace_socket).
    pub(crate) fn new(
        url: String,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> (Self, mpsc::UnboundedReceiver<Inbound>) {
        let (inbound, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { next_id: AtomicU64::new(0), pending: Mutex::new(HashMap::new()), inbound });
        let inner = RpcInner {
            url,
            tls,
            timeout,
            shared,
            socket: Mutex::new(None),
            generations: AtomicU64::new(0),
            ping_interval_due: AtomicBool::new(true),
        };
        (Self { inner: Arc::new(inner) }, rx)
    }

    /// The generation of the current socket (0: none yet).
    pub(crate) fn generation(&self) -> u64 {
        lock(&self.inner.socket).as_ref().map(|s| s.generation).unwrap_or(0)
    }

    /// True once per socket: the next ping announces the interval.
    pub(crate) fn take_ping_interval_due(&self) -> bool {
        self.inner.ping_interval_due.swap(false, Ordering::AcqRel)
    }

    /// The next ping should announce the interval again.
    pub(crate) fn set_ping_interval_due(&self) {
        self.inner.ping_interval_due.store(true, Ordering::Release);
    }

    /// Opens a new socket and makes it the current one; the previous socket (if any) is dropped
    /// without a close frame, as a network failure would, and its waiting requests fail.
    pub(crate) async fn replace_socket(&self) -> Result<(), ParticipantError> {
        let connector = match &self.inner.tls {
            Some(config) => Connector::Rustls(config.clone()),
            None => Connector::Plain,
        };
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let connect = connect_async_tls_with_config(self.inner.url.as_str(), Some(config), true, Some(connector));
        let (ws, _) = tokio::time::timeout(self.inner.timeout, connect)
            .await
            .map_err(|_| {
                ParticipantError::Socket(format!("no WebSocket to {} within {:?}", self.inner.url, self.inner.timeout))
            })?
            .map_err(|e| ParticipantError::Socket(format!("cannot open {}: {e}", self.inner.url)))?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let generation = self.inner.generations.fetch_add(1, Ordering::AcqRel) + 1;
        let writer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let shared = self.inner.shared.clone();
        let reader = tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(Message::Text(text)) => shared.handle_frame(text.as_str()),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            shared.fail_pending(generation, "the socket closed");
            let _ = shared.inbound.send(Inbound::SocketLost { generation });
        });
        let socket = Socket { generation, tx, reader: reader.abort_handle(), writer: writer.abort_handle() };
        let previous = lock(&self.inner.socket).replace(socket);
        if let Some(previous) = previous {
            previous.abort();
            self.inner.shared.fail_pending(previous.generation, "the socket was replaced");
        }
        self.set_ping_interval_due();
        Ok(())
    }

    /// Closes the current socket with openvidu-browser's "closed by client" code.
    pub(crate) fn close(&self) {
        let previous = lock(&self.inner.socket).take();
        if let Some(socket) = previous {
            let frame =
                CloseFrame { code: CloseCode::from(CLOSE_BY_CLIENT), reason: "Connection closed by client".into() };
            let _ = socket.tx.send(Message::Close(Some(frame)));
            self.inner.shared.fail_pending(socket.generation, "the participant left");
            // The writer ends after sending the close frame; the reader when the server answers.
            let reader = socket.reader.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(async move {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        reader.abort();
                    });
                }
                Err(_) => socket.abort(),
            }
        }
    }

    /// Sends a request and waits for its answer: the `result` object (a non-object result comes
    /// wrapped as `{"value": …}`), or the error.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<Map<String, Value>, ParticipantError> {
        let shared = &self.inner.shared;
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (generation, tx) = match lock(&self.inner.socket).as_ref() {
            Some(s) => (s.generation, s.tx.clone()),
            None => return Err(ParticipantError::Socket("no open socket".into())),
        };
        let (answer_tx, answer_rx) = oneshot::channel();
        lock(&shared.pending).insert(id, Pending { generation, tx: answer_tx });
        let mut frame = json!({"jsonrpc": "2.0", "method": method, "id": id});
        if let Some(params) = params {
            frame["params"] = params;
        }
        tracing::trace!(method, id, "rpc request");
        if tx.send(Message::Text(frame.to_string().into())).is_err() {
            lock(&shared.pending).remove(&id);
            return Err(ParticipantError::Socket("the socket is closed".into()));
        }
        let answer = match tokio::time::timeout(self.inner.timeout, answer_rx).await {
            Ok(Ok(answer)) => answer?,
            Ok(Err(_)) => return Err(ParticipantError::Socket("the socket closed".into())),
            Err(_) => {
                lock(&shared.pending).remove(&id);
                return Err(ParticipantError::Timeout { method: method.to_owned(), timeout: self.inner.timeout });
            }
        };
        match answer {
            Answer::Result(Value::Object(result)) => Ok(result),
            Answer::Result(Value::Null) => Ok(Map::new()),
            Answer::Result(other) => {
                let mut m = Map::new();
                m.insert("value".into(), other);
                Ok(m)
            }
            Answer::Error { code, message } => Err(ParticipantError::Rpc { method: method.to_owned(), code, message }),
        }
    }

    /// [`call`](Self::call) with params serialized from `params`.
    pub(crate) async fn call_with<P: serde::Serialize>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<Map<String, Value>, ParticipantError> {
        let params = serde_json::to_value(params)
            .map_err(|e| ParticipantError::Protocol { method: method.to_owned(), message: e.to_string() })?;
        self.call(method, Some(params)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> (Shared, mpsc::UnboundedReceiver<Inbound>) {
        let (inbound, rx) = mpsc::unbounded_channel();
        (Shared { next_id: AtomicU64::new(0), pending: Mutex::new(HashMap::new()), inbound }, rx)
    }

    fn wait(shared: &Shared, id: u64, generation: u64) -> oneshot::Receiver<Result<Answer, ParticipantError>> {
        let (tx, rx) = oneshot::channel();
        lock(&shared.pending).insert(id, Pending { generation, tx });
        rx
    }

    #[test]
    fn frames_become_answers_and_notifications() {
        let (shared, mut inbound) = shared();
        let mut ok = wait(&shared, 1, 1);
        let mut refused = wait(&shared, 2, 1);
        shared.handle_frame(r#"{"id":1,"result":{"value":"pong","sessionId":"s"},"jsonrpc":"2.0"}"#);
        shared.handle_frame(r#"{"id":2,"error":{"code":401,"message":"no","data":"s"},"jsonrpc":"2.0"}"#);
        shared.handle_frame(r#"{"method":"participantJoined","params":{"id":"con_A"},"jsonrpc":"2.0"}"#);
        assert!(matches!(ok.try_recv(), Ok(Ok(Answer::Result(v))) if v["value"] == "pong"));
        assert!(matches!(refused.try_recv(), Ok(Ok(Answer::Error { code: 401, .. }))));
        assert!(matches!(inbound.try_recv(), Ok(Inbound::Notification { method, params })
            if method == "participantJoined" && params["id"] == "con_A"));

        // Garbage, unknown ids, odd shapes: ignored, never a panic.
        for frame in ["", "not json", "[]", "42", r#"{"id":99,"result":{}}"#, r#"{"id":"x"}"#, r#"{"method":5}"#] {
            shared.handle_frame(frame);
        }
        shared.handle_frame(r#"{"method":"sendMessage","params":[1]}"#);
        assert!(matches!(inbound.try_recv(), Ok(Inbound::Notification { params, .. }) if params.is_empty()));
        assert!(inbound.try_recv().is_err());
    }

    #[test]
    fn a_lost_socket_fails_only_its_own_requests() {
        let (shared, _inbound) = shared();
        let mut old = wait(&shared, 1, 1);
        let mut new = wait(&shared, 2, 2);
        shared.fail_pending(1, "gone");
        assert!(matches!(old.try_recv(), Ok(Err(ParticipantError::Socket(_)))));
        assert!(new.try_recv().is_err(), "still waiting");
    }
}

//! The `/openvidu` JSON-RPC socket driven by a raw WebSocket client, as openvidu-browser drives it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openvidu_server::{RunningServer, Server};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A JSON-RPC peer that keeps notifications aside while it waits for answers.
pub(crate) struct Peer {
    ws: Ws,
    next_id: u64,
    notifications: Vec<Value>,
}

impl Peer {
    pub(crate) async fn open(server: &RunningServer) -> Self {
        let url = format!("{}/openvidu", server.url().replacen("http", "ws", 1));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Self { ws, next_id: 0, notifications: Vec::new() }
    }

    pub(crate) async fn recv(&mut self) -> Option<Value> {
        loop {
            match tokio::time::timeout(Duration::from_secs(5), self.ws.next()).await.ok()?? {
                Ok(Message::Text(t)) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// Sends a request and returns its answer (`result` or `error` object).
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = self.next_id;
        self.send_raw(&json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).to_string()).await;
        loop {
            let msg = self.recv().await.unwrap_or_else(|| panic!("no answer to {method}"));
            if msg.get("id") == Some(&json!(id)) {
                return match msg.get("result") {
                    Some(r) => Ok(r.clone()),
                    None => Err(msg["error"].clone()),
                };
            }
            self.notifications.push(msg);
        }
    }

    /// The notifications of this method received so far (kept aside while waiting for answers).
    pub(crate) fn notifications_of(&self, method: &str) -> Vec<Value> {
        self.notifications.iter().filter(|n| n["method"] == method).cloned().collect()
    }

    /// Waits for a notification of this method.
    pub(crate) async fn notification(&mut self, method: &str) -> Value {
        if let Some(i) = self.notifications.iter().position(|n| n["method"] == method) {
            return self.notifications.remove(i)["params"].clone();
        }
        loop {
            let msg = self.recv().await.unwrap_or_else(|| panic!("no {method} notification"));
            if msg["method"] == method {
                return msg["params"].clone();
            }
            self.notifications.push(msg);
        }
    }
}

pub(crate) struct Rest {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl Rest {
    pub(crate) fn new(server: &RunningServer) -> Self {
        Self {
            http: super::client(server),
            base: format!("{}/openvidu/api", server.url()),
            secret: server.secret().into(),
        }
    }
    pub(crate) async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r =
            self.http.request(method, format!("{}{path}", self.base)).basic_auth("OPENVIDUAPP", Some(&self.secret));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
    pub(crate) async fn session(&self, id: &str) {
        let (s, _) = self.call(reqwest::Method::POST, "/sessions", Some(json!({"customSessionId": id}))).await;
        assert_eq!(s, 200);
    }
    pub(crate) async fn token(&self, session: &str, role: &str, data: &str) -> String {
        let (s, c) = self
            .call(
                reqwest::Method::POST,
                &format!("/sessions/{session}/connection"),
                Some(json!({"role": role, "data": data})),
            )
            .await;
        assert_eq!(s, 200);
        c["token"].as_str().unwrap().to_owned()
    }
}

pub(crate) async fn join(peer: &mut Peer, session: &str, token: &str, metadata: &str) -> Value {
    peer.call("joinRoom", json!({"token": token, "session": session, "platform": "Rust test", "metadata": metadata, "secret": "", "recorder": false}))
        .await
        .unwrap()
}

fn server() -> openvidu_server::ServerBuilder {
    Server::builder().https(false).configure(|c| c.reconnection_window = Duration::from_millis(800))
}

#[tokio::test]
async fn two_participants_join_see_each_other_and_signal() {
    let server = server().start().await.unwrap();
    let rest = Rest::new(&server);
    rest.session("room").await;
    let (ta, tb) = (rest.token("room", "PUBLISHER", "srvA").await, rest.token("room", "MODERATOR", "").await);

    let mut a = Peer::open(&server).await;
    assert_eq!(a.call("ping", json!({"interval": 5000})).await.unwrap()["value"], "pong");
    let ra = join(&mut a, "room", &ta, "{\"name\":\"a\"}").await;
    assert!(ra["id"].as_str().unwrap().starts_with("con_"));
    assert_eq!(ra["role"], "PUBLISHER");
    assert_eq!(ra["metadata"], "{\"name\":\"a\"}%/%srvA");
    assert_eq!(ra["value"], json!([]));
    assert_eq!(ra["mediaServer"], "kurento");
    assert_eq!(ra["version"], "2.20.0");
    assert!(ra["sessionId"].is_string(), "kurento-jsonrpc injects the rpc session id");

    let mut b = Peer::open(&server).await;
    let rb = join(&mut b, "room", &tb, "").await;
    assert_eq!(rb["value"][0]["id"], ra["id"]);
    assert_eq!(rb["value"][0]["metadata"], "{\"name\":\"a\"}%/%srvA");
    let joined = a.notification("participantJoined").await;
    assert_eq!(joined["id"], rb["id"]);

    // REST sees both active, with the client address
    let (_, s) = rest.call(reqwest::Method::GET, "/sessions/room", None).await;
    assert_eq!(s["connections"]["numberOfElements"], 2);
    for c in s["connections"]["content"].as_array().unwrap() {
        assert_eq!(c["status"], "active");
        assert_eq!(c["ip"], "127.0.0.1");
        assert_eq!(c["platform"], "Rust test");
    }

    // signals to all (sender included) and to one
    let msg = json!({"to": [], "data": "hi", "type": "signal:chat"}).to_string();
    a.call("sendMessage", json!({"message": msg})).await.unwrap();
    for p in [&mut a, &mut b] {
        let n = p.notification("sendMessage").await;
        assert_eq!(n, json!({"data": "hi", "type": "signal:chat", "from": ra["id"]}));
    }
    let msg = json!({"to": [ra["id"]], "data": "only you", "type": "signal"}).to_string();
    b.call("sendMessage", json!({"message": msg})).await.unwrap();
    assert_eq!(a.notification("sendMessage").await["data"], "only you");
    let bad_to = json!({"to": ["con_Nobody1234"], "data": "x"}).to_string();
    assert_eq!(b.call("sendMessage", json!({"message": bad_to})).await.unwrap_err()["code"], 601);
    assert_eq!(b.call("sendMessage", json!({"message": "{not json"})).await.unwrap_err()["code"], 600);

    // a REST signal has no `from`
    let (s, _) = rest
        .call(reqwest::Method::POST, "/signal", Some(json!({"session": "room", "type": "server", "data": "news"})))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b.notification("sendMessage").await, json!({"data": "news", "type": "server"}));

    // a publisher may not force others out; a moderator may
    let err = a.call("forceDisconnect", json!({"connectionId": rb["id"]})).await.unwrap_err();
    assert_eq!(err["code"], 401);
    b.call("forceDisconnect", json!({"connectionId": ra["id"]})).await.unwrap();
    let evicted = a.notification("participantEvicted").await;
    assert_eq!(evicted["reason"], "forceDisconnectByUser");
    let left = b.notification("participantLeft").await;
    assert_eq!(
        (left["connectionId"].clone(), left["reason"].clone()),
        (ra["id"].clone(), json!("forceDisconnectByUser"))
    );

    // the last participant leaving closes the session
    b.call("leaveRoom", json!({})).await.unwrap();
    let (s, _) = rest.call(reqwest::Method::GET, "/sessions/room", None).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn bad_input_gets_openvidu_errors_and_the_socket_survives() {
    let server = server().start().await.unwrap();
    let rest = Rest::new(&server);
    rest.session("bad").await;
    let token = rest.token("bad", "SUBSCRIBER", "").await;
    let mut p = Peer::open(&server).await;

    p.send_raw("{garbage").await;
    assert_eq!(p.recv().await.unwrap()["error"]["code"], -32700);
    assert_eq!(p.call("sendMessage", json!({"message": "{}"})).await.unwrap_err()["code"], 803, "before joinRoom");
    assert_eq!(p.call("joinRoom", json!({"session": 5})).await.unwrap_err()["code"], -32602);
    let e = p.call("joinRoom", json!({"token": token, "session": "nope", "metadata": ""})).await.unwrap_err();
    assert_eq!(e["code"], 202);
    let e = p
        .call("joinRoom", json!({"token": "wss://x?sessionId=bad&token=tok_Wrong", "session": "bad"}))
        .await
        .unwrap_err();
    assert_eq!(e["code"], 401);
    join(&mut p, "bad", &token, "").await;
    let mut q = Peer::open(&server).await;
    let e = q.call("joinRoom", json!({"token": token, "session": "bad"})).await.unwrap_err();
    assert_eq!(e["code"], 401, "a token is used once");
    assert_eq!(p.call("noSuchMethod", json!({})).await.unwrap_err()["code"], -32601);
    assert_eq!(
        p.call("applyFilter", json!({"streamId": "x", "type": "GStreamerFilter"})).await.unwrap_err()["code"],
        406
    );
    assert_eq!(
        p.call("echo", json!({})).await.unwrap(),
        json!({"sessionId": p.call("echo", json!({})).await.unwrap()["sessionId"]})
    );
    // a flood of frames does not kill the socket
    for i in 0..500 {
        p.send_raw(&json!({"jsonrpc": "2.0", "method": "videoData", "params": {"height": i}}).to_string()).await;
    }
    assert_eq!(p.call("ping", json!({})).await.unwrap()["value"], "pong");
}

#[tokio::test]
async fn rest_evictions_reach_the_socket() {
    let server = server().start().await.unwrap();
    let rest = Rest::new(&server);
    rest.session("ev").await;
    let (t1, t2) = (rest.token("ev", "PUBLISHER", "").await, rest.token("ev", "PUBLISHER", "").await);
    let (mut a, mut b) = (Peer::open(&server).await, Peer::open(&server).await);
    let ra = join(&mut a, "ev", &t1, "").await;
    let rb = join(&mut b, "ev", &t2, "").await;
    let id = ra["id"].as_str().unwrap();
    let (s, _) = rest.call(reqwest::Method::DELETE, &format!("/sessions/ev/connection/{id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(a.notification("participantEvicted").await["reason"], "forceDisconnectByServer");
    assert_eq!(b.notification("participantLeft").await["reason"], "forceDisconnectByServer");
    // everyone present sees the eviction too
    assert_eq!(b.notification("participantEvicted").await["connectionId"], ra["id"]);
    let (s, _) = rest.call(reqwest::Method::DELETE, "/sessions/ev", None).await;
    assert_eq!(s, 204);
    let evicted = b.notification("participantEvicted").await;
    assert_eq!(
        (evicted["connectionId"].clone(), evicted["reason"].clone()),
        (rb["id"].clone(), json!("sessionClosedByServer"))
    );
    assert!(b.recv().await.is_none(), "the evicted socket is closed");
}

/// openvidu-browser closes its socket after `leaveRoom`: the server answers the close and ends the
/// connection then. It used to hold it half-closed (CLOSE-WAIT) until the 10-s timer meant for
/// clients that stay: 100 sockets per storm of 100 joiners and leavers.
#[tokio::test]
async fn a_socket_closed_after_leave_room_ends_at_once() {
    let server = server().start().await.unwrap();
    let rest = Rest::new(&server);
    rest.session("bye").await;
    let token = rest.token("bye", "PUBLISHER", "").await;
    let mut a = Peer::open(&server).await;
    join(&mut a, "bye", &token, "").await;
    a.call("leaveRoom", json!({})).await.unwrap();
    a.ws.close(None).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        let mut close_answered = false;
        while let Some(Ok(msg)) = a.ws.next().await {
            close_answered |= matches!(msg, Message::Close(_));
        }
        close_answered
    })
    .await;
    assert_eq!(ended, Ok(true), "the server answers the close and ends the connection well before its 10-s timer");
}

#[tokio::test]
async fn a_dropped_socket_reconnects_within_the_window_or_is_evicted() {
    let server = server().start().await.unwrap();
    let rest = Rest::new(&server);
    rest.session("rc").await;
    let (t1, t2) = (rest.token("rc", "PUBLISHER", "").await, rest.token("rc", "PUBLISHER", "").await);
    let (mut a, mut b) = (Peer::open(&server).await, Peer::open(&server).await);
    let ra = join(&mut a, "rc", &t1, "").await;
    join(&mut b, "rc", &t2, "").await;
    let rpc_id = ra["sessionId"].as_str().unwrap().to_owned();

    drop(a);
    let mut a2 = Peer::open(&server).await;
    let r = a2.call("connect", json!({"sessionId": rpc_id})).await.unwrap();
    assert_eq!(r["value"], "reconnection successful");
    // the re-bound socket is the same participant: it receives signals
    let msg = json!({"to": [ra["id"]], "data": "still there?"}).to_string();
    b.call("sendMessage", json!({"message": msg})).await.unwrap();
    assert_eq!(a2.notification("sendMessage").await["data"], "still there?");
    assert_eq!(a2.call("connect", json!({"sessionId": "unknown"})).await.unwrap_err()["code"], 40007);

    // gone for longer than the window: evicted with networkDisconnect
    drop(a2);
    let left = b.notification("participantLeft").await;
    assert_eq!((left["connectionId"].clone(), left["reason"].clone()), (ra["id"].clone(), json!("networkDisconnect")));
    let mut late = Peer::open(&server).await;
    assert_eq!(late.call("connect", json!({"sessionId": rpc_id})).await.unwrap_err()["code"], 40007);
}

#[tokio::test]
async fn bad_media_requests_get_openvidu_errors() {
    let server = server().start().await.unwrap();
    let rest = Rest::new(&server);
    rest.session("media").await;
    let (ts, tp) = (rest.token("media", "SUBSCRIBER", "").await, rest.token("media", "PUBLISHER", "").await);
    let (mut sub, mut publ) = (Peer::open(&server).await, Peer::open(&server).await);
    join(&mut sub, "media", &ts, "").await;
    let rp = join(&mut publ, "media", &tp, "").await;
    let publish = |sdp: &str| {
        json!({"sdpOffer": sdp, "doLoopback": false, "hasAudio": true, "hasVideo": true, "audioActive": true,
               "videoActive": true, "typeOfVideo": "CAMERA", "frameRate": 30, "videoDimensions": "{\"width\":640,\"height\":480}"})
    };
    assert_eq!(
        sub.call("publishVideo", publish("v=0")).await.unwrap_err()["code"],
        401,
        "a SUBSCRIBER may not publish"
    );
    assert_eq!(publ.call("publishVideo", publish("garbage")).await.unwrap_err()["code"], 302);
    assert_eq!(publ.call("publishVideo", json!({"sdpOffer": "x"})).await.unwrap_err()["code"], -32602);
    assert_eq!(publ.call("unpublishVideo", json!({})).await.unwrap_err()["code"], 105);
    let missing = format!("str_CAM_Abcd_{}", rp["id"].as_str().unwrap());
    let e = sub.call("receiveVideoFrom", json!({"sender": missing, "sdpOffer": "v=0"})).await.unwrap_err();
    assert_eq!(e["code"], 105, "nothing published");
    let e = sub.call("receiveVideoFrom", json!({"sender": "str_CAM_Abcd_con_Nobody0000", "sdpOffer": "v=0"})).await;
    assert!(e.is_err());
    // a flood of candidates for a stream that does not exist is refused one by one, the socket lives
    for i in 0..300 {
        let c = json!({"endpointName": rp["id"], "candidate": format!("candidate:{i} 1 udp 1 10.0.0.1 {} typ host", 1000 + i),
                       "sdpMid": "0", "sdpMLineIndex": 0});
        sub.send_raw(&json!({"jsonrpc": "2.0", "method": "onIceCandidate", "params": c, "id": 10_000 + i}).to_string())
            .await;
    }
    assert_eq!(sub.call("ping", json!({})).await.unwrap()["value"], "pong");
    let (s, session) = rest.call(reqwest::Method::GET, "/sessions/media", None).await;
    assert_eq!(s, 200);
    assert_eq!(session["connections"]["numberOfElements"], 2, "nobody was affected");
}

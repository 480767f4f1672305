//! Two masters on one Redis (a `redis-server` this test starts on a free port): REST state,
//! notifications, signals and evictions cross masters, and a participant whose master died
//! reconnects to the other one with `connect` and is taken over.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openvidu_server::{RunningServer, Server};
use serde_json::json;

use super::signalling::{Peer, Rest, join};

/// A `redis-server` on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    url: String,
}

impl Redis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url: format!("redis://127.0.0.1:{port}") }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn master(redis: &Redis) -> RunningServer {
    let url = redis.url.clone();
    Server::builder()
        .https(false)
        .configure(move |c| {
            c.reconnection_window = Duration::from_millis(800);
            c.ha_redis_url = Some(url);
        })
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn participants_on_two_masters_share_a_session() {
    let redis = Redis::start();
    let (a, b) = (master(&redis).await, master(&redis).await);
    let (rest_a, rest_b) = (Rest::new(&a), Rest::new(&b));
    rest_a.session("shared").await;
    let (status, s) = rest_b.call(reqwest::Method::GET, "/sessions/shared", None).await;
    assert_eq!((status, s["id"].clone()), (200, json!("shared")), "REST through B sees A's session");

    let (t1, t2) =
        (rest_a.token("shared", "PUBLISHER", "on A").await, rest_b.token("shared", "PUBLISHER", "on B").await);
    let mut pa = Peer::open(&a).await;
    let ja = join(&mut pa, "shared", &t1, "{}").await;
    let mut pb = Peer::open(&b).await;
    let jb = join(&mut pb, "shared", &t2, "{}").await;
    assert_eq!(jb["value"][0]["id"], ja["id"], "B's joiner finds A's participant in the session");
    assert_eq!(ja["life"], jb["life"], "one cluster, one life");
    let status = pb.call("sessionStatus", json!({"sessionId": "shared"})).await.unwrap();
    assert_eq!(status["life"], ja["life"]);
    let joined = pa.notification("participantJoined").await;
    assert_eq!(joined["id"], jb["id"], "participantJoined crosses from B to A");

    // Signals both ways.
    let to_a = json!({"to": [ja["id"]], "data": "hello A", "type": "signal:chat"}).to_string();
    pb.call("sendMessage", json!({"message": to_a})).await.unwrap();
    assert_eq!(pa.notification("sendMessage").await["data"], "hello A");
    let to_b = json!({"to": [jb["id"]], "data": "hello B", "type": "signal:chat"}).to_string();
    pa.call("sendMessage", json!({"message": to_b})).await.unwrap();
    assert_eq!(pb.notification("sendMessage").await["data"], "hello B");

    // A REST eviction through A of B's participant reaches B's socket.
    let path = format!("/sessions/shared/connection/{}", jb["id"].as_str().unwrap());
    let (status, _) = rest_a.call(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    assert_eq!(pb.notification("participantEvicted").await["reason"], "forceDisconnectByServer");
    assert_eq!(pa.notification("participantLeft").await["connectionId"], jb["id"]);
}

#[tokio::test]
async fn a_participant_of_a_dead_master_reconnects_to_another() {
    let redis = Redis::start();
    let (a, b) = (master(&redis).await, master(&redis).await);
    let rest = Rest::new(&b);
    rest.session("failover").await;
    let (t1, t2) = (rest.token("failover", "PUBLISHER", "").await, rest.token("failover", "PUBLISHER", "").await);
    let mut on_a = Peer::open(&a).await;
    let ja = join(&mut on_a, "failover", &t1, "").await;
    let mut on_b = Peer::open(&b).await;
    let jb = join(&mut on_b, "failover", &t2, "").await;
    let rpc_id = ja["sessionId"].as_str().unwrap().to_owned();

    // Master A dies; its participant's socket comes back through B.
    drop(a);
    drop(on_a);
    let mut moved = Peer::open(&b).await;
    let r = moved.call("connect", json!({"sessionId": rpc_id})).await.unwrap();
    assert_eq!(r["value"], "reconnection successful", "B takes the participant over");
    let msg = json!({"to": [ja["id"]], "data": "still there?"}).to_string();
    on_b.call("sendMessage", json!({"message": msg})).await.unwrap();
    assert_eq!(moved.notification("sendMessage").await["data"], "still there?");

    // Well past the reconnection window it is still in the session (no eviction).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, s) = rest.call(reqwest::Method::GET, "/sessions/failover", None).await;
    let ids: Vec<_> = s["connections"]["content"].as_array().unwrap().iter().map(|c| c["id"].clone()).collect();
    assert!(ids.contains(&ja["id"]) && ids.contains(&jb["id"]), "both participants remain: {ids:?}");
    assert!(on_b.notifications_of("participantLeft").is_empty());

    // An unknown id is still refused.
    assert_eq!(moved.call("connect", json!({"sessionId": "nobody"})).await.unwrap_err()["code"], 40007);
}

/// A participant whose master died and who never comes back is evicted by a surviving master
/// once the dead master's lease ran out and the reconnection window passed: the others get
/// `participantLeft` with reason `networkDisconnect`, as from its own master.
#[tokio::test]
async fn a_dead_masters_participant_that_never_returns_is_evicted() {
    let redis = Redis::start();
    let (a, b) = (master(&redis).await, master(&redis).await);
    let rest = Rest::new(&b);
    rest.session("ghosts").await;
    let (t1, t2) = (rest.token("ghosts", "PUBLISHER", "").await, rest.token("ghosts", "PUBLISHER", "").await);
    let mut on_a = Peer::open(&a).await;
    let ja = join(&mut on_a, "ghosts", &t1, "").await;
    let mut on_b = Peer::open(&b).await;
    let jb = join(&mut on_b, "ghosts", &t2, "").await;

    // Master A dies with its participant, who never reconnects.
    let died = Instant::now();
    drop(a);
    drop(on_a);
    let left = on_b.notification("participantLeft").await;
    assert_eq!((left["connectionId"].clone(), left["reason"].clone()), (ja["id"].clone(), json!("networkDisconnect")));
    // Lease (3 s) + window (0.8 s) + one look (1 s), with slack for a loaded machine.
    assert!(died.elapsed() < Duration::from_secs(10), "evicted after {:?}", died.elapsed());
    let (_, s) = rest.call(reqwest::Method::GET, "/sessions/ghosts", None).await;
    let ids: Vec<_> = s["connections"]["content"].as_array().unwrap().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(ids, [jb["id"].clone()], "only B's participant remains");
}

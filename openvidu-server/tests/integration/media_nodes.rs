//! The media-node API (spec §6.3) and media-node crash detection (spec §6.7), with media nodes
//! served in-process by `openvidu_media_node::serve` and a master over them (`KMS_URIS`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use openvidu_core::id::MediaNodeId;
use openvidu_media::{LocalMediaNode, MediaConfig};
use openvidu_media_node::MediaNodeServer;
use openvidu_server::{RunningServer, Server};
use reqwest::Method;
use serde_json::{Value, json};

use crate::signalling::{Peer, Rest, join};

const SECRET: &str = "MEDIA_NODES_SECRET";

/// A media node serving its control API on a free loopback port.
async fn start_node(id: &str) -> MediaNodeServer {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let node = LocalMediaNode::new(MediaConfig::default(), tx).unwrap().with_id(MediaNodeId::parse(id).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    openvidu_media_node::serve(Arc::new(node), rx, listener, SECRET.into()).unwrap()
}

async fn start_master(nodes: &[&MediaNodeServer], grace: Duration) -> RunningServer {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    Server::builder()
        .https(false)
        .secret(SECRET)
        .configure(|c| {
            c.media_nodes = urls;
            c.media_node_grace = grace;
        })
        .start()
        .await
        .unwrap()
}

/// Places session `id` on a media node: a publisher joins and publishes (a bad offer: the
/// router is created before the offer is read). Returns the publisher's socket.
async fn place_session(server: &RunningServer, rest: &Rest, id: &str) -> Peer {
    rest.session(id).await;
    let token = rest.token(id, "PUBLISHER", "").await;
    let mut peer = Peer::open(server).await;
    join(&mut peer, id, &token, "").await;
    let e = peer
        .call(
            "publishVideo",
            json!({"sdpOffer": "garbage", "doLoopback": false, "hasAudio": true,
        "hasVideo": false, "audioActive": true, "videoActive": false}),
        )
        .await;
    assert!(e.is_err(), "{e:?}");
    peer
}

/// The id of the node hosting `session`, from `GET /media-nodes?sessions=true`.
async fn host_of(rest: &Rest, session: &str) -> String {
    let (s, page) = rest.call(Method::GET, "/media-nodes?sessions=true", None).await;
    assert_eq!(s, 200);
    let host = page["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["sessions"].as_array().unwrap().iter().any(|s| s["id"] == session))
        .unwrap_or_else(|| panic!("{session} is on no node: {page}"));
    host["id"].as_str().unwrap().to_owned()
}

fn ids(page: &Value) -> Vec<&str> {
    page["content"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect()
}

/// Polls `GET path` until it answers `status`, for at most `within`.
async fn wait_status(rest: &Rest, path: &str, status: u16, within: Duration) {
    let start = Instant::now();
    loop {
        let (s, _) = rest.call(Method::GET, path, None).await;
        if s == status {
            return;
        }
        assert!(start.elapsed() < within, "GET {path} still {s} after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn media_node_api_lists_adds_changes_and_removes_nodes() {
    let (a, b, c) = (start_node("media_A").await, start_node("media_B").await, start_node("media_C").await);
    let server = start_master(&[&a, &b], Duration::from_secs(3)).await;
    let rest = Rest::new(&server);

    let (s, page) = rest.call(Method::GET, "/media-nodes", None).await;
    assert_eq!(s, 200);
    assert_eq!(page["numberOfElements"], 2);
    assert_eq!(ids(&page), ["media_A", "media_B"]);
    let (s, node) = rest.call(Method::GET, "/media-nodes/media_A", None).await;
    assert_eq!(s, 200);
    assert_eq!(node["object"], "mediaNode");
    assert_eq!(node["uri"], a.url());
    assert_eq!(node["ip"], "127.0.0.1");
    assert_eq!(node["environmentId"], Value::Null);
    assert_eq!(node["connected"], true);
    assert_eq!(node["status"], "running");
    assert!(node.get("disconnectionTime").is_none() && node.get("sessions").is_none(), "{node}");
    assert!(node["launchingTime"].as_u64().unwrap() > 0 && node["connectionTime"].as_u64().unwrap() > 0);
    let load = node["load"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&load), "{load}");
    assert_eq!(rest.call(Method::GET, "/media-nodes/media_zz", None).await.0, 404);
    assert_eq!(rest.call(Method::GET, "/media-nodes/not an id", None).await.0, 404);

    // POST: already registered, unreachable, bad bodies, then a new node.
    assert_eq!(rest.call(Method::POST, "/media-nodes", Some(json!({"uri": a.url()}))).await.0, 409);
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let (s, _) = rest.call(Method::POST, "/media-nodes", Some(json!({"uri": format!("ws://{closed}")}))).await;
    assert_eq!(s, 404, "an unreachable node");
    assert_eq!(rest.call(Method::POST, "/media-nodes", None).await.0, 400);
    assert_eq!(rest.call(Method::POST, "/media-nodes", Some(json!({"uri": 5}))).await.0, 400);
    assert_eq!(rest.call(Method::POST, "/media-nodes", Some(json!({"uri": "nonsense"}))).await.0, 400);
    let (s, node) = rest.call(Method::POST, "/media-nodes", Some(json!({"uri": c.url()}))).await;
    assert_eq!(s, 200, "{node}");
    assert_eq!(
        (node["id"].as_str(), node["status"].as_str(), node["connected"].as_bool()),
        (Some("media_C"), Some("running"), Some(true))
    );
    assert_eq!(rest.call(Method::POST, "/media-nodes", Some(json!({"uri": c.url()}))).await.0, 409);
    assert_eq!(ids(&rest.call(Method::GET, "/media-nodes", None).await.1), ["media_A", "media_B", "media_C"]);

    // PATCH transitions.
    let patch = |status: &str| Some(json!({"status": status}));
    let (s, node) = rest.call(Method::PATCH, "/media-nodes/media_C", patch("waiting-idle-to-terminate")).await;
    assert_eq!((s, node["status"].as_str()), (200, Some("waiting-idle-to-terminate")));
    // … an idle waiting node terminates at once: back to running before the watcher sees it is racy,
    // so use another node for the running ⇄ waiting round trip.
    wait_status(&rest, "/media-nodes/media_C", 404, Duration::from_secs(2)).await;
    let (s, node) = rest.call(Method::PATCH, "/media-nodes/media_B", patch("running")).await;
    assert_eq!((s, node), (204, Value::Null), "unchanged");
    assert_eq!(rest.call(Method::PATCH, "/media-nodes/media_B", patch("launching")).await.0, 400);
    assert_eq!(rest.call(Method::PATCH, "/media-nodes/media_B", patch("terminated")).await.0, 400);
    assert_eq!(rest.call(Method::PATCH, "/media-nodes/media_B", patch("bogus")).await.0, 400);
    assert_eq!(rest.call(Method::PATCH, "/media-nodes/media_B", Some(json!({}))).await.0, 400);
    assert_eq!(rest.call(Method::PATCH, "/media-nodes/media_zz", patch("running")).await.0, 404);

    // A session on a node: it blocks if-no-sessions, waits for when-no-sessions.
    let _p1 = place_session(&server, &rest, "ses_one").await;
    let host = host_of(&rest, "ses_one").await;
    let other = if host == "media_A" { "media_B" } else { "media_A" };
    let (s, node) = rest.call(Method::PATCH, &format!("/media-nodes/{host}"), patch("waiting-idle-to-terminate")).await;
    assert_eq!((s, node["status"].as_str()), (200, Some("waiting-idle-to-terminate")));
    let (s, node) = rest.call(Method::PATCH, &format!("/media-nodes/{host}"), patch("running")).await;
    assert_eq!((s, node["status"].as_str()), (200, Some("running")));
    assert_eq!(rest.call(Method::DELETE, &format!("/media-nodes/{host}"), None).await.0, 409);
    assert_eq!(rest.call(Method::DELETE, &format!("/media-nodes/{host}?deletion-strategy=bogus"), None).await.0, 400);
    assert_eq!(rest.call(Method::DELETE, "/media-nodes/media_zz", None).await.0, 404);
    let (s, _) =
        rest.call(Method::DELETE, &format!("/media-nodes/{host}?deletion-strategy=when-no-sessions"), None).await;
    assert_eq!(s, 202);
    let (_, node) = rest.call(Method::GET, &format!("/media-nodes/{host}"), None).await;
    assert_eq!(node["status"], "waiting-idle-to-terminate");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(rest.call(Method::GET, &format!("/media-nodes/{host}"), None).await.0, 200, "still hosts a session");
    // A new session goes to a running node.
    let _p2 = place_session(&server, &rest, "ses_two").await;
    assert_eq!(host_of(&rest, "ses_two").await, other);
    assert_eq!(rest.call(Method::DELETE, "/sessions/ses_one", None).await.0, 204);
    wait_status(&rest, &format!("/media-nodes/{host}"), 404, Duration::from_secs(2)).await;

    // `now` closes the sessions of the node.
    let (s, _) = rest.call(Method::DELETE, &format!("/media-nodes/{other}?deletion-strategy=now"), None).await;
    assert_eq!(s, 204);
    assert_eq!(rest.call(Method::GET, "/sessions/ses_two", None).await.0, 404);
    let (_, page) = rest.call(Method::GET, "/media-nodes", None).await;
    assert_eq!(page["numberOfElements"], 0, "{page}");
}

#[tokio::test]
async fn an_idle_node_is_removed_with_if_no_sessions_and_patch_terminating() {
    let (a, b) = (start_node("media_A").await, start_node("media_B").await);
    let server = start_master(&[&a, &b], Duration::from_secs(3)).await;
    let rest = Rest::new(&server);
    assert_eq!(rest.call(Method::DELETE, "/media-nodes/media_A", None).await.0, 204);
    assert_eq!(rest.call(Method::GET, "/media-nodes/media_A", None).await.0, 404);
    let (s, node) = rest.call(Method::PATCH, "/media-nodes/media_B", Some(json!({"status": "terminating"}))).await;
    assert_eq!((s, node["status"].as_str()), (200, Some("terminating")));
    wait_status(&rest, "/media-nodes/media_B", 404, Duration::from_secs(2)).await;
    // Added back later.
    let (s, node) = rest.call(Method::POST, "/media-nodes", Some(json!({"uri": b.url()}))).await;
    assert_eq!((s, node["id"].as_str()), (200, Some("media_B")));
}

#[tokio::test]
async fn a_crashed_nodes_sessions_move_to_another_node() {
    let (a, b) = (start_node("media_A").await, start_node("media_B").await);
    let grace = Duration::from_secs(1);
    let server = start_master(&[&a, &b], grace).await;
    let rest = Rest::new(&server);
    let mut peer = place_session(&server, &rest, "ses_crash").await;
    let host = host_of(&rest, "ses_crash").await;
    let other = if host == "media_A" { "media_B" } else { "media_A" };
    let (crashed, survivor) = if host == "media_A" { (a, b) } else { (b, a) };
    let start = Instant::now();
    drop(crashed);
    // Disconnected at once; within the grace it is still listed.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (s, node) = rest.call(Method::GET, &format!("/media-nodes/{host}"), None).await;
    assert_eq!((s, node["connected"].as_bool()), (200, Some(false)), "{node}");
    assert!(node["disconnectionTime"].as_u64().is_some(), "{node}");
    // Within grace + 1 s of the crash (plus one polling step) the node is gone and the session
    // lives on the survivor, with its participant.
    let deadline = start + grace + Duration::from_millis(1200);
    loop {
        let (_, page) = rest.call(Method::GET, "/media-nodes?sessions=true", None).await;
        if ids(&page) == [other] && page.to_string().contains("ses_crash") {
            break;
        }
        assert!(Instant::now() < deadline, "not rebuilt in time: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(host_of(&rest, "ses_crash").await, other);
    let (s, session) = rest.call(Method::GET, "/sessions/ses_crash", None).await;
    assert_eq!((s, session["connections"]["numberOfElements"].as_u64()), (200, Some(1)), "{session}");
    // The participant was not evicted: its socket still answers.
    assert!(peer.call("echo", json!({})).await.is_ok());
    // The survivor takes new sessions.
    let _p = place_session(&server, &rest, "ses_after").await;
    assert_eq!(host_of(&rest, "ses_after").await, other);
    drop(survivor);
}

#[tokio::test]
async fn with_no_node_left_a_crashed_nodes_sessions_close() {
    let only = start_node("media_A").await;
    let grace = Duration::from_secs(1);
    let server = start_master(&[&only], grace).await;
    let rest = Rest::new(&server);
    let mut peer = place_session(&server, &rest, "ses_alone").await;
    let start = Instant::now();
    drop(only);
    let deadline = grace + Duration::from_millis(1200);
    wait_status(&rest, "/sessions/ses_alone", 404, deadline.saturating_sub(start.elapsed())).await;
    let evicted = peer.notification("participantEvicted").await;
    assert_eq!(evicted["reason"], "nodeCrashed");
    let (_, page) = rest.call(Method::GET, "/media-nodes", None).await;
    assert_eq!(page["numberOfElements"], 0, "{page}");
}

#[tokio::test]
async fn the_in_process_node_is_listed_but_cannot_be_changed() {
    let server = Server::builder().https(false).start().await.unwrap();
    let rest = Rest::new(&server);
    let (s, page) = rest.call(Method::GET, "/media-nodes", None).await;
    assert_eq!(s, 200);
    assert_eq!(page["numberOfElements"], 1);
    let node = &page["content"][0];
    assert_eq!(
        (node["uri"].as_str(), node["status"].as_str(), node["connected"].as_bool()),
        (Some("local"), Some("running"), Some(true))
    );
    let id = node["id"].as_str().unwrap().to_owned();
    assert_eq!(
        rest.call(Method::GET, &format!("/media-nodes/{id}?sessions=true"), None).await.1["sessions"],
        json!([])
    );
    assert_eq!(rest.call(Method::POST, "/media-nodes", Some(json!({"uri": "ws://127.0.0.1:1"}))).await.0, 501);
    assert_eq!(rest.call(Method::DELETE, &format!("/media-nodes/{id}"), None).await.0, 501);
    assert_eq!(
        rest.call(Method::PATCH, &format!("/media-nodes/{id}"), Some(json!({"status": "running"}))).await.0,
        501
    );
}

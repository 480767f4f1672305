//! Losing and regaining the control connection.

use std::time::{Duration, Instant};

use openvidu_media::MediaError;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_the_node_is_down_and_it_reconnects_by_itself() {
    let h = Harness::remote().await;
    let remote = h.extra.remote.clone().unwrap();
    let addr = h.extra.server.lock().unwrap().as_ref().unwrap().server.local_addr();

    // Kill the node.
    let killed = Instant::now();
    drop(h.extra.server.lock().unwrap().take());
    eventually("the remote node notices", || !remote.is_connected()).await;
    let noticed = killed.elapsed();
    let start = Instant::now();
    let err = h.node.create_router(&session("ses_Down")).await.unwrap_err();
    let fail_fast = start.elapsed();
    assert!(
        matches!(err, MediaError::Internal(ref m) if m.contains("media_Test") && m.contains("not connected")),
        "{err:?}"
    );
    assert!(fail_fast < Duration::from_millis(100), "{fail_fast:?}");
    // load() does not fail: it reports nothing.
    assert_eq!(h.node.load().await.routers, 0);

    // Restart on the same port (the old listener may take a moment to go away).
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) if killed.elapsed() < DEADLINE => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    };
    let restarted = Instant::now();
    let server = start_node_on(listener, "media_Test").await;
    eventually("the remote node reconnects", || remote.is_connected()).await;
    let reconnected = restarted.elapsed();
    *h.extra.server.lock().unwrap() = Some(server);
    h.node.create_router(&session("ses_Back")).await.unwrap();
    assert_eq!(h.node.load().await.routers, 1);
    println!(
        "node loss noticed in {noticed:?}; calls failed in {fail_fast:?}; reconnected {reconnected:?} after restart"
    );
}

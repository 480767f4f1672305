//! High availability with real parts on loopback: a `redis-server`, two `openvidu-media-node`
//! processes, three `openvidu-server` masters sharing state in Redis, and HAProxy in front of
//! the masters with health checks on `/openvidu/api/health`. Participant bots join through
//! HAProxy (so their sockets spread over the masters), publish and subscribe; then one master
//! is killed with SIGKILL and every bot re-binds its socket through HAProxy to a live master
//! while media keeps flowing through the untouched media nodes; then a media node is killed and
//! its sessions are rebuilt on the other one; then Redis restarts under load.
//!
//! Run with `cargo build -p openvidu-server -p openvidu-media-node && cargo test --features
//! participant --test ha` (the binaries are taken from `target/debug`).

mod cluster;

use std::time::{Duration, Instant};

use cluster::{Cluster, Profile, SECRET, redis};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};
use openvidu::client::{OpenVidu, OutputMode, RecordingProperties, RecordingStatus, SessionProperties};

async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every subscription of every bot receives packets.
fn all_receive(bots: &[Participant], per_bot: usize) -> bool {
    bots.iter().all(|b| {
        let stats = b.stats();
        stats.len() == per_bot && stats.iter().all(|s| s.connected && s.packets() > 0)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_behind_haproxy_survive_a_master_kill_and_a_redis_restart() {
    let mut cluster = Cluster::start(Profile::Debug, 3, 2);
    let (urls, public) = (cluster.urls.clone(), cluster.public.clone());
    let rest = OpenVidu::new(&public, SECRET).expect("a REST client");
    eventually("HAProxy sees the masters", Duration::from_secs(10), async || rest.health().await.is_ok()).await;

    // 4 sessions × 3 bots through HAProxy: sockets spread round-robin over the masters.
    const SESSIONS: usize = 4;
    const BOTS: usize = 3;
    let mut bots: Vec<Participant> = Vec::new();
    for s in 0..SESSIONS {
        let session = rest
            .create_session(SessionProperties::builder().custom_session_id(format!("ha{s}")).build())
            .await
            .expect("a session");
        for _ in 0..BOTS {
            let c = session.create_connection(Default::default()).await.expect("a connection");
            let bot = Participant::join(&c.token.expect("a token"), JoinOptions::new()).await.expect("a bot joins");
            bot.publish(PublishOptions::new(MediaSource::Synthetic { fps: 10, packet_size: 200 }))
                .await
                .expect("a bot publishes");
            bots.push(bot);
        }
    }
    for bot in &bots {
        bot.subscribe_all().await.expect("subscribe");
    }
    eventually("every bot receives every other bot of its session", Duration::from_secs(30), async || {
        all_receive(&bots, BOTS - 1)
    })
    .await;

    // A recording started through one master is stopped through another.
    let (via_b, via_c) =
        (OpenVidu::new(&urls[1], SECRET).expect("a client"), OpenVidu::new(&urls[2], SECRET).expect("a client"));
    via_b.fetch().await.expect("fetch");
    let session = via_b.active_sessions().into_iter().find(|x| x.id().as_str() == "ha1").expect("ha1");
    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    let started = via_b.start_recording(session.id(), props).await.expect("the recording starts on B");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped = via_c.stop_recording(&started.id).await.expect("the recording stops on C");
    assert_eq!(stopped.status, RecordingStatus::Ready, "{stopped:?}");
    assert_eq!(via_b.get_recording(&started.id).await.expect("B sees it").status, RecordingStatus::Ready);

    // Kill -9 one master: every bot re-binds through HAProxy; nothing is lost.
    cluster.masters[0].kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await; // HAProxy's health check marks it down (2 × 300 ms)
    let mut rebind = Vec::new();
    for bot in &bots {
        let t = Instant::now();
        bot.reconnect_socket().await.expect("the socket re-binds to a live master");
        rebind.push(t.elapsed());
    }
    let total = killed.elapsed();
    rebind.sort();
    println!(
        "re-bind after kill -9: {} bots, p50 {:?}, max {:?}, all done {:?} after the kill",
        rebind.len(),
        rebind[rebind.len() / 2],
        rebind[rebind.len() - 1],
        total
    );
    assert!(rest.fetch().await.is_ok());
    for s in 0..SESSIONS {
        let session = rest.active_sessions().into_iter().find(|x| x.id().as_str() == format!("ha{s}")).expect("kept");
        assert_eq!(session.connections().len(), BOTS, "no connection lost in ha{s}");
    }
    for bot in &bots {
        bot.reset_stats();
    }
    eventually("media keeps flowing after the kill", Duration::from_secs(10), async || all_receive(&bots, BOTS - 1))
        .await;
    // A new participant joins during/after the failover and gets media.
    let session = rest.active_sessions().into_iter().find(|x| x.id().as_str() == "ha0").expect("ha0");
    let c = session.create_connection(Default::default()).await.expect("a connection");
    let late = Participant::join(&c.token.expect("a token"), JoinOptions::new()).await.expect("a new join");
    late.subscribe_all().await.expect("subscribe");
    eventually("the newcomer receives", Duration::from_secs(20), async || {
        all_receive(std::slice::from_ref(&late), BOTS)
    })
    .await;

    // Kill -9 a media node: beyond OpenVidu (which closes them), the sessions it held are rebuilt
    // on the other node: each publisher republishes when its ICE fails (`reconnectStream`), then
    // its subscribers are offered new connections (`forciblyReconnectSubscriber`). No session,
    // connection or participant is lost, and every subscription carries media again.
    cluster.nodes[1].kill();
    let crashed = Instant::now();
    // Past the grace (1 s), when packets of the dead node can no longer be in flight.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for bot in bots.iter().chain(std::iter::once(&late)) {
        bot.reset_stats();
    }
    eventually("every session carries media again on the other node", Duration::from_secs(30), async || {
        all_receive(&bots, BOTS - 1) && all_receive(std::slice::from_ref(&late), BOTS)
    })
    .await;
    println!(
        "media node killed: all {SESSIONS} sessions carry media again {:?} after the kill (grace 1 s)",
        crashed.elapsed()
    );
    assert!(bots.iter().all(|b| !b.is_closed()) && !late.is_closed(), "nobody was evicted");
    assert!(rest.fetch().await.is_ok());
    for s in 0..SESSIONS {
        let session = rest.active_sessions().into_iter().find(|x| x.id().as_str() == format!("ha{s}")).expect("kept");
        let expected = BOTS + usize::from(s == 0);
        assert_eq!(session.connections().len(), expected, "no connection lost in ha{s}");
    }

    // Redis restarts: 503 meanwhile, full service afterwards, no master dies.
    cluster.redis.kill();
    let refused = rest.create_session(SessionProperties::default()).await.expect_err("no store");
    assert_eq!(refused.status(), Some(503), "{refused}");
    cluster.redis = redis(cluster.redis_port);
    eventually("service is back after Redis restarted", Duration::from_secs(15), async || {
        rest.create_session(SessionProperties::default()).await.is_ok()
    })
    .await;
    for m in cluster.masters.iter_mut().skip(1) {
        assert!(m.child.try_wait().expect("status").is_none(), "a master died");
    }
}

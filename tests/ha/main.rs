//! High availability with real parts on loopback: a `redis-server`, two `openvidu-media-node`
//! processes, three `openvidu-server` masters sharing state in Redis, and HAProxy in front of
//! the masters with health checks on `/openvidu/api/health`. Participant bots join through
//! HAProxy (so their sockets spread over the masters), publish and subscribe; then one master
//! is killed with SIGKILL while a recording it started runs: the bots on it re-bind their sockets
//! by themselves through HAProxy to live masters, every bot's signal reaches its whole session
//! across the masters, media keeps flowing through the untouched media nodes, a newcomer joins,
//! and the orphaned recording is stopped, complete, through another master; then a media node is
//! killed and its sessions are rebuilt on the other one; then Redis restarts under load. The
//! real-browser side of the same failover is `tests/e2e/browser/test/ha.test.js`.
//!
//! Run with `cargo build -p openvidu-server -p openvidu-media-node && cargo test --features
//! participant --test ha` (the binaries are taken from `target/debug`).

mod cluster;

use std::time::{Duration, Instant};

use cluster::{Cluster, Profile, SECRET, redis};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, ParticipantEvent, PublishOptions};
use openvidu::client::{OpenVidu, OutputMode, RecordingProperties, RecordingStatus, SessionProperties};

async fn eventually(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every bot has its `expected` subscriptions and each one receives packets.
fn all_receive(bots: &[Participant], expected: impl Fn(usize) -> usize) -> bool {
    bots.iter().enumerate().all(|(i, b)| {
        let stats = b.stats();
        stats.len() == expected(i) && stats.iter().all(|s| s.connected && s.packets() > 0)
    })
}

/// The load: `HA_SESSIONS` sessions × `HA_BOTS` bots, the first `HA_PUBLISHERS` of each session
/// publishing and every bot subscribing to every other publisher of its session. The default,
/// 10 × 10 with 2 publishing (100 bots, 180 subscriptions), fits CI's 2 cores with debug builds; the 20 × 10 (`HA_SESSIONS=20
/// HA_BOTS=10 HA_PUBLISHERS=2`) overloads them in debug (bots and nodes unoptimised: the media-node
/// rebuild then misses its 30 s), and is measured on release builds by `benches/ha_failover.rs`
/// (`-- --sessions 20 --bots 10 --publishers 2`).
struct Load {
    sessions: usize,
    bots: usize,
    publishers: usize,
}

impl Load {
    fn from_env() -> Self {
        let var = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let bots = var("HA_BOTS", 10).max(2);
        Self { sessions: var("HA_SESSIONS", 10).max(3), bots, publishers: var("HA_PUBLISHERS", 2).clamp(1, bots) }
    }

    fn session_of(&self, bot: usize) -> usize {
        bot / self.bots
    }

    fn publishes(&self, bot: usize) -> bool {
        bot % self.bots < self.publishers
    }

    /// The subscriptions of a bot: the other publishers of its session.
    fn subscriptions(&self, bot: usize) -> usize {
        self.publishers - usize::from(self.publishes(bot))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_behind_haproxy_survive_a_master_kill_and_a_redis_restart() {
    // The bots' logs (`RUST_LOG`; by default their warnings, without the webrtc crates' notes on
    // connections still being set up): their reconnections say what went wrong.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("warn,rtc=error,rtc_ice=error,rtc_dtls=error,webrtc=error")
    });
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    let mut cluster = Cluster::start(Profile::Debug, 3, 2);
    let (urls, public) = (cluster.urls.clone(), cluster.public.clone());
    let rest = OpenVidu::new(&public, SECRET).expect("a REST client");
    eventually("HAProxy sees the masters", Duration::from_secs(10), async || rest.health().await.is_ok()).await;

    // Sessions of bots through HAProxy: sockets spread round-robin over the masters.
    let load = Load::from_env();
    let (sessions, per_session) = (load.sessions, load.bots);
    println!("{sessions} sessions × {per_session} bots, {} publishing in each", load.publishers);
    let mut bots: Vec<Participant> = Vec::new();
    for s in 0..sessions {
        let session = rest
            .create_session(SessionProperties::builder().custom_session_id(format!("ha{s}")).build())
            .await
            .expect("a session");
        for _ in 0..per_session {
            let c = session.create_connection(Default::default()).await.expect("a connection");
            let bot = Participant::join(&c.token.expect("a token"), JoinOptions::new()).await.expect("a bot joins");
            if load.publishes(bots.len()) {
                bot.publish(PublishOptions::new(MediaSource::Synthetic { fps: 10, packet_size: 200 }))
                    .await
                    .expect("a bot publishes");
            }
            bots.push(bot);
        }
    }
    for bot in &bots {
        bot.subscribe_all().await.expect("subscribe");
    }
    let subscribed = Instant::now();
    eventually("every bot receives every other publisher of its session", Duration::from_secs(120), async || {
        all_receive(&bots, |i| load.subscriptions(i))
    })
    .await;
    println!("{} bots joined; every subscription receives {:?} after subscribing", bots.len(), subscribed.elapsed());

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

    // A recording started through the master about to die, still running when it dies.
    let via_a = OpenVidu::new(&urls[0], SECRET).expect("a client");
    via_a.fetch().await.expect("fetch");
    let session = via_a.active_sessions().into_iter().find(|x| x.id().as_str() == "ha2").expect("ha2");
    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    let orphan = via_a.start_recording(session.id(), props).await.expect("the recording starts on A");
    for bot in &bots {
        while bot.try_next_event().is_some() {}
    }

    let mut rebound = 0;
    // Kill -9 one master: the bots whose socket was on it re-bind by themselves through HAProxy
    // (`connect` with their JSON-RPC session id); nothing is lost.
    cluster.masters[0].kill();
    let killed = Instant::now();
    // Every bot's socket works again: each one's RPCs are answered (a signal to itself).
    let bound: Vec<_> = bots
        .iter()
        .cloned()
        .map(|bot| {
            tokio::spawn(async move {
                let me = [bot.connection_id().clone()];
                let deadline = Instant::now() + Duration::from_secs(15);
                while bot.signal(&me, "probe", "").await.is_err() {
                    assert!(Instant::now() < deadline, "a bot's socket works after the kill");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    for b in bound {
        b.await.expect("every bot's socket works after the kill");
    }
    println!("every bot's socket answers {:?} after the kill", killed.elapsed());
    // Then signals cross the masters: each bot signals its session and every other bot hears it.
    // (A notification published while a participant's socket is down, the few ms between its
    // master's death and its re-bind, is not delivered to it: at most once, as in OpenVidu.)
    let sent: Vec<_> = bots
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, bot)| tokio::spawn(async move { bot.signal(&[], &format!("after-kill-{i}"), "still here").await }))
        .collect();
    for s in sent {
        s.await.expect("a signal task").expect("a signal after the kill");
    }
    for (i, bot) in bots.iter().enumerate() {
        let mut heard = std::collections::HashSet::new();
        let expected: std::collections::HashSet<usize> =
            (0..bots.len()).filter(|j| *j != i && load.session_of(*j) == load.session_of(i)).collect();
        let deadline = Instant::now() + Duration::from_secs(15);
        while heard != expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, bot.next_event()).await {
                Ok(Some(ParticipantEvent::Signal { signal_type: Some(t), .. })) => {
                    if let Some(j) = t.strip_prefix("signal:after-kill-").and_then(|j| j.parse().ok())
                        && j != i
                    {
                        heard.insert(j);
                    }
                }
                Ok(Some(ParticipantEvent::Reconnected)) => rebound += 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => panic!("bot {i} heard {heard:?} of {expected:?} after the kill"),
            }
        }
    }
    while let Some(event) = bots.iter().find_map(|b| b.try_next_event()) {
        if matches!(event, ParticipantEvent::Reconnected) {
            rebound += 1;
        }
    }
    println!(
        "kill -9 of a master: {rebound} bots re-bound by themselves; every signal heard {:?} after the kill",
        killed.elapsed()
    );
    assert!(rebound > 0, "the killed master held some of the {} sockets", bots.len());
    assert!(bots.iter().all(|b| !b.is_closed()), "nobody was evicted");
    assert!(rest.fetch().await.is_ok());
    for s in 0..sessions {
        let session = rest.active_sessions().into_iter().find(|x| x.id().as_str() == format!("ha{s}")).expect("kept");
        assert_eq!(session.connections().len(), per_session, "no connection lost in ha{s}");
    }
    for bot in &bots {
        bot.reset_stats();
    }
    eventually("media keeps flowing after the kill", Duration::from_secs(30), async || {
        all_receive(&bots, |i| load.subscriptions(i))
    })
    .await;
    // The recording the dead master started is stopped through another one, complete.
    let stopped = via_b.stop_recording(&orphan.id).await.expect("the orphan recording stops on B");
    assert_eq!(stopped.status, RecordingStatus::Ready, "{stopped:?}");
    assert!(stopped.size > 0 && stopped.duration > 0.0, "the orphan recording has media: {stopped:?}");
    // A new participant joins during/after the failover and gets media.
    let session = rest.active_sessions().into_iter().find(|x| x.id().as_str() == "ha0").expect("ha0");
    let c = session.create_connection(Default::default()).await.expect("a connection");
    let late = Participant::join(&c.token.expect("a token"), JoinOptions::new()).await.expect("a new join");
    late.subscribe_all().await.expect("subscribe");
    eventually("the newcomer receives", Duration::from_secs(20), async || {
        all_receive(std::slice::from_ref(&late), |_| load.publishers)
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
    let rebuilt = Instant::now();
    while !(all_receive(&bots, |i| load.subscriptions(i))
        && all_receive(std::slice::from_ref(&late), |_| load.publishers))
    {
        // Liveness, not speed (the release figure is `benches/ha_failover`: about 2 s): in this
        // debug build, on 2 cores that the 100 bots saturate, a renegotiated connection sometimes
        // never connects and is retried after the bots' connect deadline (10 s), up to twice in
        // a row; 20 to 30 s in all was seen.
        if rebuilt.elapsed() > Duration::from_secs(60) {
            let silent: Vec<String> = bots
                .iter()
                .enumerate()
                .flat_map(|(i, b)| {
                    let (n, want) = (b.stats().len(), load.subscriptions(i));
                    b.stats()
                        .into_iter()
                        .filter(|s| !(s.connected && s.packets() > 0))
                        .map(move |s| format!("bot {i} ({n}/{want} subscriptions): {s:?}"))
                })
                .collect();
            panic!("{} subscriptions carry no media 60 s after the media node's death: {silent:#?}", silent.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "media node killed: all {sessions} sessions carry media again {:?} after the kill (grace 1 s)",
        crashed.elapsed()
    );
    assert!(bots.iter().all(|b| !b.is_closed()) && !late.is_closed(), "nobody was evicted");
    assert!(rest.fetch().await.is_ok());
    for s in 0..sessions {
        let session = rest.active_sessions().into_iter().find(|x| x.id().as_str() == format!("ha{s}")).expect("kept");
        let expected = per_session + usize::from(s == 0);
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

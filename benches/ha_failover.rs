//! Failover of a master, measured: a cluster of real processes (`redis-server`, 2
//! `openvidu-media-node`, 3 `openvidu-server` masters, all release builds, behind HAProxy), S
//! sessions × B participant bots joined through HAProxy, the first P of each session publishing
//! (all by default) and every bot subscribing to the other publishers of its session; then
//! `kill -9` of one master while they stream.
//!
//! Printed:
//! - the time from the kill to each socket re-bound (the bots whose socket was on the killed
//!   master reconnect by themselves through HAProxy and send `connect`), p50/p99/max;
//! - the media gap: the longest time any subscription went without a packet, in the seconds
//!   around the kill, beside the same figure over as long a window before the kill (sampled
//!   every 10 ms: gaps are measured to ~10 ms);
//! - new joins during the failover (bots joining right after the kill): how many got media, and
//!   how fast;
//! - that no session or connection was lost;
//! - then the failover of a media node: `kill -9` of one of the two nodes; after the masters'
//!   grace (`OPENVIDU_MEDIA_NODE_GRACE`, 1 s here) they declare it crashed and rebuild its
//!   sessions on the other node, the bots republish when their ICE fails and are pushed
//!   `forciblyReconnectSubscriber`: the time from the kill until each subscription that went
//!   silent carries media again (p50/p99/max), and the same minus the grace (the rebuild itself).
//!
//! Run with `cargo bench --bench ha_failover --features participant` (add
//! `-- --sessions 20 --bots 10 --publishers 2 --joins 5` for the 20 × 10; the default,
//! 10 × 5 all publishing, fits a 2-core machine running the bots too). Needs `redis-server` and
//! `haproxy` (scripts/install-deps); builds the release binaries when missing.

#[path = "../tests/ha/cluster.rs"]
mod cluster;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, Profile, SECRET};
use openvidu::client::participant::{JoinOptions, MediaSource, Participant, ParticipantEvent, PublishOptions};
use openvidu::client::{OpenVidu, SessionProperties};

struct Args {
    sessions: usize,
    bots: usize,
    fps: u32,
    packet_size: usize,
    joins: usize,
    publishers: usize,
}

fn args() -> Args {
    let mut a = Args { sessions: 10, bots: 5, fps: 15, packet_size: 300, joins: 3, publishers: usize::MAX };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--sessions" => a.sessions = w[1].parse().unwrap_or(a.sessions),
            "--bots" => a.bots = w[1].parse().unwrap_or(a.bots),
            "--publishers" => a.publishers = w[1].parse().unwrap_or(a.publishers),
            "--fps" => a.fps = w[1].parse().unwrap_or(a.fps),
            "--packet-size" => a.packet_size = w[1].parse().unwrap_or(a.packet_size),
            "--joins" => a.joins = w[1].parse().unwrap_or(a.joins),
            _ => {}
        }
    }
    a.publishers = a.publishers.clamp(1, a.bots);
    a
}

/// Per subscription (bot index, stream id): when its packet count last grew, and the longest
/// time without growth in the current window.
#[derive(Default)]
struct Gaps {
    last: HashMap<Key, (u64, Instant)>,
    longest: HashMap<Key, Duration>,
}

/// A subscription: (bot index, stream id).
type Key = (usize, String);

/// Samples every subscription's packet count: `f(key, silence, grew)` with the time since it
/// last grew (before this sample) and whether it grew now; `last` keeps (count, when it grew).
fn sample_growth(
    last: &mut HashMap<Key, (u64, Instant)>,
    bots: &[Participant],
    now: Instant,
    mut f: impl FnMut(Key, Duration, bool),
) {
    for (i, bot) in bots.iter().enumerate() {
        for s in bot.stats() {
            let key = (i, s.stream_id.to_string());
            let packets = s.packets();
            let entry = last.entry(key.clone()).or_insert((packets, now));
            let (silence, grew) = (now.duration_since(entry.1), packets != entry.0);
            if grew {
                *entry = (packets, now);
            }
            f(key, silence, grew);
        }
    }
}

impl Gaps {
    fn sample(&mut self, bots: &[Participant], now: Instant) {
        let longest = &mut self.longest;
        sample_growth(&mut self.last, bots, now, |key, silence, grew| {
            let gap = if grew { Duration::ZERO } else { silence };
            let longest = longest.entry(key).or_default();
            *longest = (*longest).max(gap);
        });
    }

    /// Starts a new window (keeps when each subscription last grew).
    fn take(&mut self) -> Vec<Duration> {
        let mut all: Vec<Duration> = self.longest.drain().map(|(_, d)| d).collect();
        all.sort();
        all
    }
}

/// Per subscription: its packet count, when it last grew, and when it grew again after a silence
/// of at least [`Resumes::SILENCE`] (the media node under it died and it was rebuilt elsewhere).
#[derive(Default)]
struct Resumes {
    last: HashMap<Key, (u64, Instant)>,
    resumed: HashMap<Key, Instant>,
}

impl Resumes {
    /// A subscription this long without a packet lost its media node.
    const SILENCE: Duration = Duration::from_millis(300);

    fn sample(&mut self, bots: &[Participant], now: Instant) {
        let resumed = &mut self.resumed;
        sample_growth(&mut self.last, bots, now, |key, silence, grew| {
            if grew && silence >= Self::SILENCE {
                resumed.entry(key).or_insert(now);
            }
        });
    }

    /// Subscriptions silent now (no packet for [`Self::SILENCE`]).
    fn silent(&self, now: Instant) -> usize {
        self.last.values().filter(|(_, at)| now.duration_since(*at) >= Self::SILENCE).count()
    }
}

/// Whether every session is still there with at least its bots' connections (read through HAProxy).
async fn sessions_kept(rest: &OpenVidu, a: &Args) -> bool {
    let _ = rest.fetch().await;
    (0..a.sessions).all(|s| {
        rest.active_sessions()
            .into_iter()
            .find(|x| x.id().as_str() == format!("failover{s}"))
            .is_some_and(|x| x.connections().len() >= a.bots)
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted.get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    // The bots log only when asked (`RUST_LOG`), beside the children's `OPENVIDU_HA_LOG_DIR`.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ =
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(std::io::stderr).try_init();
    }
    support::release_cluster_binaries();
    let mut cluster = Cluster::start(Profile::Release, 3, 2);
    let rest = OpenVidu::new(&cluster.public, SECRET).expect("a REST client");
    let up = Instant::now();
    while rest.health().await.is_err() {
        assert!(up.elapsed() < Duration::from_secs(10), "HAProxy does not see the masters");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "HA failover: 3 masters, 2 media nodes, HAProxy; {} sessions × {} bots ({} publishing; {} fps, {} B), {} cores",
        a.sessions,
        a.bots,
        a.publishers,
        a.fps,
        a.packet_size,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let source = MediaSource::Synthetic { fps: a.fps, packet_size: a.packet_size };
    let mut bots = Vec::new();
    for s in 0..a.sessions {
        let session = rest
            .create_session(SessionProperties::builder().custom_session_id(format!("failover{s}")).build())
            .await
            .expect("a session");
        for b in 0..a.bots {
            let c = session.create_connection(Default::default()).await.expect("a connection");
            let bot = Participant::join(&c.token.expect("a token"), JoinOptions::new()).await.expect("a bot joins");
            if b < a.publishers {
                bot.publish(PublishOptions::new(source.clone())).await.expect("a bot publishes");
            }
            bots.push(bot);
        }
    }
    for bot in &bots {
        bot.subscribe_all().await.expect("subscribe");
    }
    let everyone = Instant::now();
    loop {
        let ready = bots.iter().all(|b| {
            let stats = b.stats();
            stats.len() == a.publishers - usize::from(b.published_stream().is_some())
                && stats.iter().all(|s| s.connected && s.packets() > 0)
        });
        if ready {
            break;
        }
        assert!(everyone.elapsed() < Duration::from_secs(90), "not every subscription receives");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Events so far are not the failover's.
    for bot in &bots {
        while bot.try_next_event().is_some() {}
    }

    let bots = Arc::new(bots);
    let gaps = Arc::new(Mutex::new(Gaps::default()));
    let sampler = {
        let (bots, gaps) = (bots.clone(), gaps.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                let now = Instant::now();
                gaps.lock().unwrap_or_else(|p| p.into_inner()).sample(&bots, now);
            }
        })
    };
    const WINDOW: Duration = Duration::from_secs(6);
    tokio::time::sleep(WINDOW).await;
    let before = gaps.lock().unwrap_or_else(|p| p.into_inner()).take();

    // kill -9 one master; each bot on it re-binds by itself.
    cluster.masters[0].kill();
    let killed = Instant::now();
    let rebinds: Vec<_> = bots
        .iter()
        .cloned()
        .map(|bot| {
            tokio::spawn(async move {
                let deadline = killed + WINDOW;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, bot.next_event()).await {
                        Ok(Some(ParticipantEvent::Reconnected)) => return Some(killed.elapsed()),
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => return None,
                    }
                }
            })
        })
        .collect();
    // New participants join session 0 during the failover.
    let session0 = {
        let mut s = None;
        while s.is_none() && killed.elapsed() < WINDOW {
            if rest.fetch().await.is_ok() {
                s = rest.active_sessions().into_iter().find(|x| x.id().as_str() == "failover0");
            }
        }
        s.expect("session failover0 is still there")
    };
    let mut joins = Vec::new();
    for _ in 0..a.joins {
        let session0 = session0.clone();
        joins.push(tokio::spawn(async move {
            let started = Instant::now();
            let c = session0.create_connection(Default::default()).await.ok()?;
            let bot = Participant::join(&c.token?, JoinOptions::new()).await.ok()?;
            bot.subscribe_all().await.ok()?;
            while started.elapsed() < WINDOW {
                if bot.stats().iter().any(|s| s.packets() > 0) {
                    return Some((started.elapsed(), bot));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            None
        }));
    }
    tokio::time::sleep(WINDOW.saturating_sub(killed.elapsed())).await;
    let during = gaps.lock().unwrap_or_else(|p| p.into_inner()).take();
    sampler.abort();

    let mut rebound: Vec<Duration> = Vec::new();
    for r in rebinds {
        if let Ok(Some(t)) = r.await {
            rebound.push(t);
        }
    }
    rebound.sort();
    let mut joined: Vec<Duration> = Vec::new();
    let mut newcomers = Vec::new();
    for j in joins {
        if let Ok(Some((t, bot))) = j.await {
            joined.push(t);
            newcomers.push(bot);
        }
    }
    joined.sort();

    println!(
        "re-bound sockets (bots on the killed master): {} of {} bots; from the kill: p50 {}, p99 {}, max {}",
        rebound.len(),
        bots.len(),
        ms(pct(&rebound, 0.5)),
        ms(pct(&rebound, 0.99)),
        ms(rebound.last().copied().unwrap_or_default())
    );
    let over = |v: &[Duration]| v.iter().filter(|d| **d > Duration::from_millis(200)).count();
    println!(
        "media gap per subscription, {} s before the kill: p50 {}, p99 {}, max {}; above 200 ms: {}",
        WINDOW.as_secs(),
        ms(pct(&before, 0.5)),
        ms(pct(&before, 0.99)),
        ms(before.last().copied().unwrap_or_default()),
        over(&before)
    );
    println!(
        "media gap per subscription, {} s from the kill:   p50 {}, p99 {}, max {}; above 200 ms: {}",
        WINDOW.as_secs(),
        ms(pct(&during, 0.5)),
        ms(pct(&during, 0.99)),
        ms(during.last().copied().unwrap_or_default()),
        over(&during)
    );
    let gap_ratio = during.last().copied().unwrap_or_default().as_secs_f64()
        / before.last().copied().unwrap_or_default().as_secs_f64().max(1e-3);
    println!("media gap ratio (max from the kill / max before): {gap_ratio:.2}");
    println!(
        "new joins during the failover: {} of {} got media; join → first packet p50 {}, max {}",
        joined.len(),
        a.joins,
        ms(pct(&joined, 0.5)),
        ms(joined.last().copied().unwrap_or_default())
    );
    let kept = sessions_kept(&rest, &a).await;
    println!("sessions and connections kept: {}", if kept { "yes" } else { "NO" });
    println!(
        "goal: re-bind p99 <= 1.5 s: {}; media gap 0 (no subscription silent above 200 ms): {}",
        if pct(&rebound, 0.99) <= Duration::from_millis(1500) && !rebound.is_empty() { "MET" } else { "NOT MET" },
        if over(&during) == 0 { "MET" } else { "NOT MET" }
    );
    drop(newcomers);

    // kill -9 one media node: its sessions are rebuilt on the other one.
    const GRACE: Duration = Duration::from_secs(1); // OPENVIDU_MEDIA_NODE_GRACE of tests/ha/cluster.rs
    const REBUILD_GOAL: Duration = Duration::from_secs(3);
    let drops0 = support::udp_receive_buffer_drops();
    let mut resumes = Resumes::default();
    resumes.sample(&bots, Instant::now());
    cluster.nodes[1].kill();
    let crashed = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    loop {
        tick.tick().await;
        let now = Instant::now();
        resumes.sample(&bots, now);
        let settled = now.duration_since(crashed) > Duration::from_secs(3) && resumes.silent(now) == 0;
        if settled || now.duration_since(crashed) > Duration::from_secs(20) {
            break;
        }
    }
    let mut back: Vec<Duration> = resumes.resumed.values().map(|t| t.duration_since(crashed)).collect();
    back.sort();
    // The subscriptions that came back last, by name, to find them in the logs.
    let mut latest: Vec<(&Key, &Instant)> = resumes.resumed.iter().collect();
    latest.sort_by_key(|(_, at)| std::cmp::Reverse(**at));
    for ((bot, stream), at) in
        latest.into_iter().take(3).filter(|(_, at)| at.duration_since(crashed) > GRACE + REBUILD_GOAL)
    {
        println!(
            "note: media again {} after the kill: {} subscribing to {stream}",
            ms(at.duration_since(crashed)),
            bots[*bot].connection_id()
        );
    }
    if let (Some(d0), Some(d1)) = (drops0, support::udp_receive_buffer_drops()) {
        println!(
            "UDP datagrams the kernel dropped on full receive buffers (whole machine) since the media-node kill: {}",
            d1.saturating_sub(d0)
        );
    }
    let still = resumes.silent(Instant::now());
    let total = resumes.last.len();
    println!(
        "media node killed: {} of {total} subscriptions went silent; media again from the kill: p50 {}, p99 {}, \
         max {}; still silent after 20 s: {still}",
        back.len() + still,
        ms(pct(&back, 0.5)),
        ms(pct(&back, 0.99)),
        ms(back.last().copied().unwrap_or_default())
    );
    let rebuild = back.last().copied().unwrap_or_default().saturating_sub(GRACE);
    println!(
        "media-node rebuild (from the kill minus the {} s grace, i.e. from nodeCrashed): p50 {}, max {}",
        GRACE.as_secs(),
        ms(pct(&back, 0.5).saturating_sub(GRACE)),
        ms(rebuild)
    );
    let kept = sessions_kept(&rest, &a).await;
    println!("sessions and connections kept after the media-node kill: {}", if kept { "yes" } else { "NO" });
    println!(
        "goal: media-node rebuild <= 3 s: {}",
        if !back.is_empty() && still == 0 && rebuild <= REBUILD_GOAL { "MET" } else { "NOT MET" }
    );
}

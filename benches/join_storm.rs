//! Join → first frame with many participants joining one session at once: a release
//! `openvidu-server` process, one synthetic publisher, then `--joiners` bots (100 by default)
//! started together, each joining with its token and subscribing to the publisher. For each, the
//! time from the start of its join to the first video packet and to the first VP8 keyframe (the
//! first frame a decoder can show: the bots do not decode, a keyframe is what a decoder needs
//! first), p50/p99/max; and the same for one participant joining alone, as the baseline of the
//! same run. The storm is repeated (`--storms`, 3 by default; each storm's bots leave before the
//! next) and the goal is read on the median of the storms' p99: on a shared 2-core machine one
//! storm's p99 ranged over 137–213 ms with the same build.
//!
//! Run with `cargo bench --bench join_storm --features participant` (add `-- --joiners 100
//! --storms 3 --fps 30 --packet-size 1000`). The bots run in this process and compete with the
//! server for the machine's cores.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions, percentile};
use openvidu::client::{OpenVidu, Session, SessionProperties};
use openvidu::core::id::StreamId;
use support::{SECRET, ServerProcess, server_binary};

/// The bots share the machine's two cores with the server: mimalloc (the server's allocator)
/// keeps their share small (with the system allocator, a quarter of their CPU in a storm was
/// `malloc` and `free`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the synthetic publisher streams before the first join: past its first two seconds,
/// in which every frame is a keyframe, so that each joiner's first keyframe is one the server
/// asked the publisher for (as with a browser's encoder), not one that happened to come next.
const PUBLISHER_WARM_UP: Duration = Duration::from_millis(2500);

struct Args {
    joiners: usize,
    /// Storms in a row; the goal is read on the median of their p99s (the machine is shared).
    storms: usize,
    fps: u32,
    packet_size: usize,
}

fn args() -> Args {
    let mut a = Args { joiners: 100, storms: 3, fps: 30, packet_size: 1000 };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--joiners" => a.joiners = w[1].parse().unwrap_or(a.joiners),
            "--storms" => a.storms = w[1].parse().unwrap_or(a.storms).max(1),
            "--fps" => a.fps = w[1].parse().unwrap_or(a.fps),
            "--packet-size" => a.packet_size = w[1].parse().unwrap_or(a.packet_size),
            _ => {}
        }
    }
    a
}

/// When one joiner got its first video packet and its first keyframe (from its join's start).
struct Joined {
    /// The join RPC answered (WebSocket open, `joinRoom`).
    joined: Duration,
    /// The subscription's SDP answered (`receiveVideoFrom`).
    subscribed: Duration,
    /// The subscription's peer connection connected (ICE and DTLS).
    connected: Duration,
    packet: Duration,
    keyframe: Duration,
    bot: Participant,
}

/// How often a joiner looks at its stats for its first keyframe. The stats carry the instants
/// themselves (connected, first packet, first keyframe), so this only bounds how late the joiner
/// notices: it costs the bots' share of the cores, not precision (polling every 2 ms cost 100
/// joiners 50,000 wake-ups a second).
const WATCH_INTERVAL: Duration = Duration::from_millis(20);

async fn join_and_watch(token: String, stream: StreamId) -> Option<Joined> {
    let start = Instant::now();
    let bot = Participant::join(&token, JoinOptions::new()).await.ok()?;
    let joined = start.elapsed();
    bot.subscribe(&stream).await.ok()?;
    let subscribed = start.elapsed();
    let since_start = |at: Instant| at.saturating_duration_since(start);
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(s) = bot.stats().first()
            && let Some(keyframe) = s.video.first_keyframe_at.map(since_start)
        {
            let packet = s.video.first_packet_at.map_or(keyframe, since_start);
            let connected = s.connected_at.map_or(packet, since_start);
            return Some(Joined { joined, subscribed, connected, packet, keyframe, bot });
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
    None
}

async fn tokens(session: &Session, n: usize) -> Vec<String> {
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        let c = session.create_connection(Default::default()).await.expect("a connection");
        tokens.push(c.token.expect("a token"));
    }
    tokens
}

fn line(what: &str, all: &mut [Duration], n: usize) {
    all.sort();
    let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3));
    println!(
        "{what}: {} of {n}; p50 {}, p99 {}, max {}",
        all.len(),
        ms(percentile(all, 0.5)),
        ms(percentile(all, 0.99)),
        ms(all.last().copied())
    );
}

/// The lines of one group of joiners: each phase's p50/p99/max, from the join's start.
fn phases(group: &str, joins: &[Joined], n: usize) {
    let phase = |f: fn(&Joined) -> Duration| joins.iter().map(f).collect::<Vec<_>>();
    line(&format!("{group}: join → joinRoom answered"), &mut phase(|j| j.joined), n);
    line(&format!("{group}: join → subscription answered"), &mut phase(|j| j.subscribed), n);
    line(&format!("{group}: join → peer connection connected"), &mut phase(|j| j.connected), n);
    line(&format!("{group}: join → first video packet"), &mut phase(|j| j.packet), n);
    line(&format!("{group}: join → first keyframe"), &mut phase(|j| j.keyframe), n);
}

async fn run(bin: &Path, a: &Args) {
    let server = ServerProcess::start(bin, &[]);
    let rest = OpenVidu::new(&server.url, SECRET).expect("a REST client");
    let session =
        rest.create_session(SessionProperties::builder().custom_session_id("storm").build()).await.expect("a session");
    let publisher_token = tokens(&session, 1).await.remove(0);
    let publisher = Participant::join(&publisher_token, JoinOptions::new()).await.expect("the publisher joins");
    let source = MediaSource::Synthetic { fps: a.fps, packet_size: a.packet_size };
    let stream = publisher.publish(PublishOptions::new(source)).await.expect("the publisher publishes");
    tokio::time::sleep(PUBLISHER_WARM_UP).await;

    // Baseline: one joiner alone, three times.
    let mut alone = Vec::new();
    for token in tokens(&session, 3).await {
        if let Some(j) = join_and_watch(token, stream.clone()).await {
            let _ = j.bot.leave().await;
            alone.push(j);
        }
    }

    phases("alone", &alone, 3);

    // The storms: every joiner at once, `--storms` times (each leaves before the next).
    let mut p99s = Vec::new();
    let mut complete = true;
    for round in 1..=a.storms {
        let label = format!("storm {round}/{}: {} at once", a.storms, a.joiners);
        let (p99, all) = storm(&server, &session, &stream, a, &label).await;
        p99s.push(p99);
        complete &= all;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    p99s.sort();
    let median = p99s[p99s.len() / 2];
    let ms = |d: &Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    println!(
        "join → first keyframe p99 of each storm: {} ms; median {} ms",
        p99s.iter().map(ms).collect::<Vec<_>>().join(", "),
        ms(&median)
    );
    println!(
        "goal: join → first frame p99 <= 150 ms with {} joining at once (median of {} storms): {}",
        a.joiners,
        a.storms,
        if complete && median <= Duration::from_millis(150) { "MET" } else { "NOT MET" }
    );
    let _ = publisher.leave().await;
}

/// One storm: `a.joiners` bots join at once; prints its phases and CPU; returns the p99 of join
/// → first keyframe and whether every joiner got one.
async fn storm(
    server: &ServerProcess,
    session: &Session,
    stream: &StreamId,
    a: &Args,
    label: &str,
) -> (Duration, bool) {
    let storm_tokens = tokens(session, a.joiners).await;
    let (server_cpu, bots_cpu) = (server.cpu_time(), support::cpu_time(std::process::id()));
    let started = Instant::now();
    let tasks: Vec<_> = storm_tokens.into_iter().map(|t| tokio::spawn(join_and_watch(t, stream.clone()))).collect();
    let mut stormed = Vec::new();
    for t in tasks {
        if let Ok(Some(j)) = t.await {
            stormed.push(j);
        }
    }
    let storm = started.elapsed();
    let server_cpu = server.cpu_time().saturating_sub(server_cpu);
    let bots_cpu = support::cpu_time(std::process::id()).saturating_sub(bots_cpu);

    phases(label, &stormed, a.joiners);
    let mut key: Vec<Duration> = stormed.iter().map(|j| j.keyframe).collect();
    key.sort();
    let bots: Vec<Participant> = stormed.into_iter().map(|j| j.bot).collect();
    println!(
        "{label}: all {} had their first keyframe {:.0} ms after the storm began",
        bots.len(),
        storm.as_secs_f64() * 1e3
    );
    let per_join = |cpu: Duration| cpu.as_secs_f64() * 1e3 / a.joiners.max(1) as f64;
    println!(
        "{label}: CPU during the storm: server {:.0} ms ({:.2} ms per join), bots {:.0} ms ({:.2} ms per join), {} cores",
        server_cpu.as_secs_f64() * 1e3,
        per_join(server_cpu),
        bots_cpu.as_secs_f64() * 1e3,
        per_join(bots_cpu),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let p99 = percentile(&key, 0.99).unwrap_or(Duration::MAX);
    for b in &bots {
        let _ = b.leave().await;
    }
    (p99, key.len() == a.joiners)
}

fn main() {
    let a = args();
    let bin = server_binary(None);
    println!(
        "join storm: {} joiners subscribing to one publisher ({} fps x {} B), server {}, {} cores",
        a.joiners,
        a.fps,
        a.packet_size,
        bin.display(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    rt.block_on(run(&bin, &a));
}

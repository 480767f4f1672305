//! Memory of a release `openvidu-server` process (resident set, `VmRSS` of `/proc/<pid>/status`):
//! bytes per idle session (`--sessions` sessions created through REST, each with a pending
//! connection), bytes per subscriber (one synthetic publisher, then `--subscribers` subscriber
//! bots), then a steady run of `--minutes` minutes with that load, the RSS sampled every 10 s,
//! printed with its growth from the first minute's samples to the last ones.
//!
//! Run with `cargo bench --bench memory --features participant` (add `-- --sessions 1000
//! --subscribers 50 --minutes 10`; the default steady run is 1 minute). The figures are deltas
//! measured in the same process (allocator caches and thread stacks count; mimalloc keeps freed
//! pages for reuse).

mod support;

use std::time::{Duration, Instant};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};
use openvidu::client::{OpenVidu, SessionProperties};
use support::{SECRET, ServerProcess, server_binary, subscribers_of};

struct Args {
    sessions: usize,
    subscribers: usize,
    minutes: f64,
}

fn args() -> Args {
    let mut a = Args { sessions: 1000, subscribers: 50, minutes: 1.0 };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--sessions" => a.sessions = w[1].parse().unwrap_or(a.sessions),
            "--subscribers" => a.subscribers = w[1].parse().unwrap_or(a.subscribers),
            "--minutes" => a.minutes = w[1].parse().unwrap_or(a.minutes),
            _ => {}
        }
    }
    a
}

/// Resident set of process `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The RSS once it settles (three samples 200 ms apart, the median).
async fn settled_rss(pid: u32) -> u64 {
    let mut s = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.push(rss(pid));
    }
    s.sort_unstable();
    s[1]
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

async fn run(a: &Args) {
    let bin = server_binary(None);
    let server = ServerProcess::start(&bin, &[]);
    let pid = server.child.id();
    let rest = OpenVidu::new(&server.url, SECRET).expect("a REST client");
    // Warm the REST path once, then measure from there.
    let warm = rest.create_session(SessionProperties::default()).await.expect("a session");
    warm.create_connection(Default::default()).await.expect("a connection");
    let start = settled_rss(pid).await;

    for i in 0..a.sessions {
        let s = rest
            .create_session(SessionProperties::builder().custom_session_id(format!("idle{i}")).build())
            .await
            .expect("a session");
        s.create_connection(Default::default()).await.expect("a connection");
    }
    let idle = settled_rss(pid).await;
    let per_session = idle.saturating_sub(start) / a.sessions.max(1) as u64;
    println!(
        "idle sessions: RSS {} → {} with {} sessions (each with a pending connection): {} bytes per idle session",
        mib(start),
        mib(idle),
        a.sessions,
        per_session
    );

    let session =
        rest.create_session(SessionProperties::builder().custom_session_id("media").build()).await.expect("a session");
    let mut tokens = Vec::new();
    for _ in 0..=a.subscribers {
        tokens.push(session.create_connection(Default::default()).await.expect("a connection").token.expect("a token"));
    }
    let publisher = Participant::join(&tokens.remove(0), JoinOptions::new()).await.expect("the publisher joins");
    let stream = publisher
        .publish(PublishOptions::new(MediaSource::Synthetic { fps: 30, packet_size: 1000 }))
        .await
        .expect("the publisher publishes");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let one_publisher = settled_rss(pid).await;
    let subscribers = subscribers_of(tokens, stream, JoinOptions::new()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_subscribers = settled_rss(pid).await;
    let per_subscriber = with_subscribers.saturating_sub(one_publisher) / a.subscribers.max(1) as u64;
    println!(
        "subscribers: RSS {} with the publisher → {} with {} subscribers: {} bytes per subscriber",
        mib(one_publisher),
        mib(with_subscribers),
        a.subscribers,
        per_subscriber
    );

    // Steady run: the same load, RSS every 10 s.
    let length = Duration::from_secs_f64(a.minutes * 60.0);
    let began = Instant::now();
    let mut samples = Vec::new();
    while began.elapsed() < length {
        tokio::time::sleep(Duration::from_secs(10).min(length)).await;
        samples.push((began.elapsed(), rss(pid)));
    }
    let receiving = subscribers.iter().filter(|s| s.stats().first().is_some_and(|x| x.packets() > 0)).count();
    // Growth: the mean of the last quarter of the samples against the mean of the first quarter.
    let quarter = (samples.len() / 4).max(1);
    let mean = |s: &[(Duration, u64)]| s.iter().map(|x| x.1).sum::<u64>() / s.len().max(1) as u64;
    let first = mean(&samples[..quarter.min(samples.len())]);
    let last = mean(&samples[samples.len().saturating_sub(quarter)..]);
    let growth = last as f64 / first.max(1) as f64 - 1.0;
    println!(
        "steady run: {:.1} min, {} of {} subscribers receiving, RSS samples: {}",
        a.minutes,
        receiving,
        a.subscribers,
        samples.iter().map(|(t, b)| format!("{}s {}", t.as_secs(), mib(*b))).collect::<Vec<_>>().join(", ")
    );
    println!(
        "steady run growth (last quarter / first quarter of the samples): {:+.1}% ({} → {})",
        growth * 100.0,
        mib(first),
        mib(last)
    );
    println!("goal: no growth over the steady run (< 5%): {}", if growth < 0.05 { "MET" } else { "NOT MET" });
    for s in subscribers.iter().chain(std::iter::once(&publisher)) {
        let _ = s.leave().await;
    }
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    rt.block_on(run(&a));
}

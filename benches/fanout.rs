//! SFU fan-out harness: one synthetic publisher and N subscriber bots against a real
//! `openvidu-server` process, measuring the forwarded RTP packets per CPU-second of the server
//! (user + system time from `/proc/<pid>/stat`, not wall time) and the send-to-receive latency
//! read from the send timestamps the synthetic packets carry.
//!
//! Run with `cargo bench --bench fanout --features participant` (add
//! `-- --subscribers 1,10,50,100 --seconds 5 --warmup 3 --fps 30 --packet-size 1000` to change
//! the load; the window opens `--warmup` seconds after every subscriber receives).
//! It uses `target/release/openvidu-server`, building it with
//! `cargo build --release -p openvidu-server` when missing (or pass `--server-bin PATH`). Each N
//! gets a fresh server on plain HTTP (`OPENVIDU_HTTPS=false`, `HTTPS_PORT=0`). The bots share
//! one tokio runtime in this process and decode nothing, but they still compete with the server
//! for this machine's cores (their own CPU time is the last column): compare the rows with each
//! other, not with other machines. Expect one line per N; `vs N=1` is the server's CPU per
//! forwarded packet relative to the first N of the list.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions, percentile};
use openvidu::client::{OpenVidu, SessionProperties};

mod support;

use support::{SECRET, ServerProcess, cpu_time, server_binary};

struct Args {
    subscribers: Vec<usize>,
    seconds: u64,
    warmup: u64,
    fps: u32,
    packet_size: usize,
    server_bin: Option<PathBuf>,
}

fn args() -> Args {
    let mut a =
        Args { subscribers: vec![1, 10, 50, 100], seconds: 5, warmup: 3, fps: 30, packet_size: 1000, server_bin: None };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--subscribers" => {
                let list: Vec<usize> = w[1].split(',').filter_map(|n| n.trim().parse().ok()).collect();
                if !list.is_empty() {
                    a.subscribers = list;
                }
            }
            "--seconds" => a.seconds = w[1].parse().unwrap_or(a.seconds),
            "--warmup" => a.warmup = w[1].parse().unwrap_or(a.warmup),
            "--fps" => a.fps = w[1].parse().unwrap_or(a.fps),
            "--packet-size" => a.packet_size = w[1].parse().unwrap_or(a.packet_size),
            "--server-bin" => a.server_bin = Some(PathBuf::from(&w[1])),
            _ => {}
        }
    }
    a
}

struct Row {
    subscribers: usize,
    forwarded: u64,
    lost: u64,
    seconds: f64,
    cpu: Duration,
    bots_cpu: Duration,
    p50: Option<Duration>,
    p99: Option<Duration>,
}

impl Row {
    fn cpu_per_packet(&self) -> f64 {
        self.cpu.as_secs_f64() / self.forwarded.max(1) as f64
    }
}

/// Runs `f` on each item, `concurrency` at a time.
async fn in_batches<T, F, Fut, R>(items: Vec<T>, concurrency: usize, f: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let batch: Vec<_> = items.by_ref().take(concurrency).map(|t| tokio::spawn(f(t))).collect();
        for task in batch {
            out.push(task.await.expect("a bot task"));
        }
    }
    out
}

async fn measure(bin: &Path, n: usize, a: &Args) -> Row {
    let server = ServerProcess::start(bin, &[]);
    let rest = OpenVidu::new(&server.url, SECRET).expect("a REST client");
    let session = rest
        .create_session(SessionProperties::builder().custom_session_id(format!("fanout{n}")).build())
        .await
        .expect("a session");
    let mut tokens = Vec::new();
    for _ in 0..=n {
        let c = session.create_connection(Default::default()).await.expect("a connection");
        tokens.push(c.token.expect("a token"));
    }
    let publisher_token = tokens.remove(0);
    let publisher = Participant::join(&publisher_token, JoinOptions::new()).await.expect("the publisher joins");
    let source = MediaSource::Synthetic { fps: a.fps, packet_size: a.packet_size };
    let stream = publisher.publish(PublishOptions::new(source)).await.expect("the publisher publishes");
    let stream = Arc::new(stream);
    let subscribers: Vec<Participant> = in_batches(tokens, 10, |token| {
        let stream = stream.clone();
        async move {
            let bot = Participant::join(&token, JoinOptions::new()).await.expect("a subscriber joins");
            bot.subscribe(&stream).await.expect("a subscriber subscribes");
            bot
        }
    })
    .await;

    // Everyone receives before the window opens.
    let start = Instant::now();
    while !subscribers.iter().all(|s| s.stats().first().is_some_and(|st| st.video.packets > 0 && st.audio.packets > 0))
    {
        assert!(start.elapsed() < Duration::from_secs(60), "not every subscriber receives after 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;

    for s in &subscribers {
        s.reset_stats();
    }
    let (cpu0, bots0, t0) = (server.cpu_time(), cpu_time(std::process::id()), Instant::now());
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let (cpu1, bots1, seconds) = (server.cpu_time(), cpu_time(std::process::id()), t0.elapsed().as_secs_f64());
    let mut forwarded = 0;
    let mut lost = 0;
    let mut latency = Vec::new();
    for s in &subscribers {
        for st in s.stats() {
            forwarded += st.audio.packets + st.video.packets;
            lost += st.audio.lost + st.video.lost;
            latency.extend(st.video.latency.iter().chain(&st.audio.latency).copied());
        }
    }
    for s in subscribers.iter().chain(std::iter::once(&publisher)) {
        let _ = s.leave().await;
    }
    drop(server);
    Row {
        subscribers: n,
        forwarded,
        lost,
        seconds,
        cpu: cpu1.saturating_sub(cpu0),
        bots_cpu: bots1.saturating_sub(bots0),
        p50: percentile(&latency, 0.5),
        p99: percentile(&latency, 0.99),
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}", d.as_secs_f64() * 1e3)).unwrap_or_else(|| "-".into())
}

fn main() {
    let a = args();
    let bin = server_binary(a.server_bin.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    println!(
        "fan-out of one publisher ({} fps x {} B video + 50 pps audio), {} s windows, server {}",
        a.fps,
        a.packet_size,
        a.seconds,
        bin.display()
    );
    println!(
        "{:>5} {:>10} {:>9} {:>6} {:>10} {:>12} {:>10} {:>8} {:>8} {:>8} {:>9}",
        "N",
        "forwarded",
        "pkts/s",
        "lost",
        "server CPU",
        "pkts/CPU-s",
        "µs/pkt",
        "vs N=1",
        "p50 ms",
        "p99 ms",
        "bots CPU"
    );
    let mut base: Option<f64> = None;
    for &n in &a.subscribers {
        let row = rt.block_on(measure(&bin, n, &a));
        let per_packet = row.cpu_per_packet();
        let base = *base.get_or_insert(per_packet);
        println!(
            "{:>5} {:>10} {:>9.0} {:>6} {:>9.2}s {:>12.0} {:>10.1} {:>8.2} {:>8} {:>8} {:>8.2}s",
            row.subscribers,
            row.forwarded,
            row.forwarded as f64 / row.seconds,
            row.lost,
            row.cpu.as_secs_f64(),
            row.forwarded as f64 / row.cpu.as_secs_f64().max(1e-9),
            per_packet * 1e6,
            per_packet / base,
            ms(row.p50),
            ms(row.p99),
            row.bots_cpu.as_secs_f64(),
        );
    }
}

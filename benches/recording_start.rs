//! Recording start latency and cost: REST start → first media frame written to disk, for the
//! first recording on a fresh server process and for the next nine, INDIVIDUAL and COMPOSED, with
//! the ratio of the first to the median of the others (one later start alone is too noisy a
//! reference: an INDIVIDUAL start waits for the publisher's next keyframe); and the CPU cost of
//! INDIVIDUAL recording per stream beside the cost of forwarding it.
//!
//! A start waits for the publisher's next frame (up to 33 ms at 30 fps), so one first start
//! against the median of nine others swung between 0.66 and 1.63 with the same build. The
//! first-start figure is therefore the median of the first starts of `--servers` fresh server
//! processes (5 by default), against the median of all their later starts.
//!
//! Run with `cargo bench --bench recording_start --features participant` (options:
//! `-- --recordings 10 --servers 5 --seconds 5`). Uses `target/release/openvidu-server` (built when
//! missing) and the media of `scripts/test-media` (real VP8 320x240 + Opus, made with ffmpeg).
//! "First frame written" is seen from outside, as a user would: the folder is polled every
//! millisecond until a media file holds a frame (INDIVIDUAL: a `.webm` file past its header;
//! COMPOSED: the encoder's output file has bytes).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions, percentile};
use openvidu::client::{OpenVidu, OutputMode, RecordingProperties, Session, SessionProperties};
use support::{SECRET, ServerProcess, cpu_time, server_binary};

/// WebM files smaller than this hold only their header (EBML header, Info, Tracks).
const WEBM_HEADER_BYTES: u64 = 400;

struct Args {
    recordings: usize,
    /// Fresh server processes per mode, each giving one first start.
    servers: usize,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args { recordings: 10, servers: 5, seconds: 5 };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--recordings" => a.recordings = w[1].parse().unwrap_or(a.recordings).max(2),
            "--servers" => a.servers = w[1].parse().unwrap_or(a.servers).max(1),
            "--seconds" => a.seconds = w[1].parse().unwrap_or(a.seconds),
            _ => {}
        }
    }
    a
}

fn media() -> PublishOptions {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash").arg(root.join("scripts/test-media")).output().expect("scripts/test-media runs");
    assert!(out.status.success(), "scripts/test-media: {}", String::from_utf8_lossy(&out.stderr));
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    PublishOptions::new(MediaSource::Files { video: Some(dir.join("video.ivf")), audio: Some(dir.join("audio.ogg")) })
}

/// A fresh server with recording on and `publishers` bots publishing real media.
struct Bench {
    server: ServerProcess,
    rest: OpenVidu,
    session: Session,
    folder: tempfile::TempDir,
    bots: Vec<Participant>,
}

impl Bench {
    async fn start(bin: &Path, publishers: usize) -> Self {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let path = folder.path().to_string_lossy().into_owned();
        let server = ServerProcess::start(bin, &[("OPENVIDU_RECORDING", "true"), ("OPENVIDU_RECORDING_PATH", &path)]);
        let rest = OpenVidu::new(&server.url, SECRET).expect("a REST client");
        let session = rest.create_session(SessionProperties::default()).await.expect("a session");
        let mut bots = Vec::new();
        for i in 0..publishers {
            let c = session
                .create_connection(openvidu::client::ConnectionProperties::builder().record(true).build())
                .await
                .expect("a connection");
            let p =
                Participant::join(&c.token.expect("a token"), JoinOptions::new().with_client_data(format!("bot{i}")))
                    .await
                    .expect("a bot joins");
            p.publish(media()).await.expect("a bot publishes");
            bots.push(p);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !bots.iter().all(Participant::is_publisher_connected) {
            assert!(Instant::now() < deadline, "publishers did not connect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        Self { server, rest, session, folder, bots }
    }

    /// REST start → first frame on disk, then stop.
    async fn start_latency(&self, mode: OutputMode) -> Duration {
        let props = RecordingProperties::builder().output_mode(mode).build();
        let t0 = Instant::now();
        let r = self.rest.start_recording(self.session.id(), props).await.expect("the recording starts");
        let dir = self.folder.path().join(r.id.as_str());
        let latency = loop {
            if first_frame_written(&dir, mode) {
                break t0.elapsed();
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "no frame written in {}", dir.display());
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        self.rest.stop_recording(&r.id).await.expect("the recording stops");
        latency
    }
}

/// Whether a recording folder holds a media frame.
fn first_frame_written(dir: &Path, mode: OutputMode) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.filter_map(Result::ok).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let size = e.metadata().map(|m| m.len()).unwrap_or(0);
        match mode {
            OutputMode::Individual => name.ends_with(".webm") && size > WEBM_HEADER_BYTES,
            _ => !name.starts_with(".recording.") && size > 0,
        }
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The pause after start `k`: 300 ms and a part of a frame period that differs from one start to
/// the next. A start waits for the publisher's next frame, and 300 ms is nine frames at 30 fps:
/// with a fixed pause, the starts of one server all met the publisher's frames at the same phase
/// (one server's nine later starts: 24.4–28.1 ms, another's 33.2–37.4 ms), so its nine starts
/// counted as one draw. Steps of 13 ms modulo 33 spread them over the frame period.
fn between_starts(k: usize) -> Duration {
    Duration::from_millis(300 + (k as u64 * 13) % 33)
}

async fn latency_row(bin: &Path, mode: OutputMode, recordings: usize, servers: usize) {
    let (mut firsts, mut lasts, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for server in 1..=servers {
        let bench = Bench::start(bin, 2).await;
        let mut all = Vec::new();
        for k in 0..recordings {
            all.push(bench.start_latency(mode).await);
            tokio::time::sleep(between_starts(k)).await;
        }
        drop(bench);
        println!(
            "  {mode:?} server {server}/{servers}: first {:.1} ms, then {}",
            ms(all[0]),
            all[1..].iter().map(|d| format!("{:.1}", ms(*d))).collect::<Vec<_>>().join(" / ")
        );
        firsts.push(all[0]);
        lasts.push(all[recordings - 1]);
        others.extend_from_slice(&all[1..]);
    }
    let median = |v: &[Duration]| percentile(v, 0.5).unwrap_or_default();
    let (first, last, median_others) = (median(&firsts), median(&lasts), median(&others));
    let goal = match mode {
        OutputMode::Individual => "≤ 50 ms",
        _ => "≤ 1000 ms",
    };
    println!(
        "{:<12} first {:>7.1} ms   #{recordings} {:>7.1} ms   median(2..{recordings}) {:>7.1} ms   first/median(2..{recordings}) {:>5.2} (goal ≤ 1.1, start {goal}; first and #{recordings}: medians of {servers} fresh servers)",
        format!("{mode:?}"),
        ms(first),
        ms(last),
        ms(median_others),
        first.as_secs_f64() / median_others.as_secs_f64().max(1e-6),
    );
}

/// Server CPU per second per stream: forwarding 4 streams to one subscriber, then the same
/// while INDIVIDUAL records them.
async fn cost_row(bin: &Path, seconds: u64) {
    let bench = Bench::start(bin, 4).await;
    let c = bench.session.create_connection(Default::default()).await.expect("a connection");
    let viewer = Participant::join(&c.token.expect("a token"), JoinOptions::new()).await.expect("a viewer joins");
    viewer.subscribe_all().await.expect("the viewer subscribes");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(seconds);
    let measure = || async {
        let (cpu0, t0) = (bench.server.cpu_time(), Instant::now());
        tokio::time::sleep(window).await;
        (bench.server.cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64()
    };
    let forwarding = measure().await;
    let props = RecordingProperties::builder().output_mode(OutputMode::Individual).build();
    let r = bench.rest.start_recording(bench.session.id(), props).await.expect("the recording starts");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recording = measure().await;
    bench.rest.stop_recording(&r.id).await.expect("the recording stops");
    let streams = bench.bots.len() as f64;
    let per_forward = forwarding / streams * 1000.0;
    let per_record = (recording - forwarding).max(0.0) / streams * 1000.0;
    println!(
        "INDIVIDUAL cost per stream: recording {per_record:.2} CPU-ms/s beside forwarding {per_forward:.2} CPU-ms/s \
         (ratio {:.2}; server total {:.1}% → {:.1}% of a core; bots' process {:.1} CPU-s)",
        per_record / per_forward.max(1e-9),
        forwarding * 100.0,
        recording * 100.0,
        cpu_time(std::process::id()).as_secs_f64(),
    );
    drop(viewer);
}

fn main() {
    let a = args();
    let bin = server_binary(None);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    rt.block_on(async {
        println!(
            "recording start latency: REST start → first frame on disk, {} fresh server processes per mode",
            a.servers
        );
        latency_row(&bin, OutputMode::Individual, a.recordings, a.servers).await;
        latency_row(&bin, OutputMode::Composed, a.recordings, a.servers).await;
        cost_row(&bin, a.seconds).await;
    });
}

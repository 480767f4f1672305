//! Recording end to end: participant bots publish real VP8 + Opus (files made by
//! `scripts/test-media`) through the in-process server, which records them; every output is
//! checked with Debian's `ffprobe`/`ffmpeg` (spec §3).
//!
//! Run with `cargo test --features participant --test recording`.

mod composed;
mod individual;
mod lifecycle;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};
use openvidu::client::{ConnectionProperties, OpenVidu, OpenViduRole, Session, SessionProperties};
use openvidu::server::{RunningServer, Server};
use serde_json::Value;

/// How long a test waits for something that should happen.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A server with recording on, writing into its own temporary folder.
pub struct Harness {
    /// The server; dropping it stops it.
    pub server: RunningServer,
    /// A REST client.
    pub rest: OpenVidu,
    /// `OPENVIDU_RECORDING_PATH`.
    pub recordings: tempfile::TempDir,
}

impl Harness {
    /// Recording on, autostop after `autostop` seconds.
    pub async fn start(autostop: u64) -> Self {
        init_logs();
        let recordings = tempfile::tempdir().expect("a temporary folder");
        let server = Server::builder()
            .https(false)
            .recording(true)
            .recording_path(recordings.path())
            .configure(|c| c.recording_autostop_timeout = Duration::from_secs(autostop))
            .start()
            .await
            .expect("the server starts");
        let rest = OpenVidu::new(server.url(), server.secret()).expect("a REST client");
        Self { server, rest, recordings }
    }

    /// A new session.
    pub async fn session(&self, properties: SessionProperties) -> Session {
        self.rest.create_session(properties).await.expect("the session is created")
    }

    /// Joins `session` with `data` as server data, recorded (`record=true`) or not.
    pub async fn join(&self, session: &Session, data: &str, record: bool) -> Participant {
        let connection = session
            .create_connection(
                ConnectionProperties::builder().role(OpenViduRole::Publisher).data(data).record(record).build(),
            )
            .await
            .expect("a connection");
        let token = connection.token.expect("a token");
        Participant::join(&token, JoinOptions::new().with_client_data(format!("client-{data}")))
            .await
            .unwrap_or_else(|e| panic!("{data} joins: {e}"))
    }

    /// Joins and publishes real media; returns when the publisher is connected.
    pub async fn publisher(&self, session: &Session, data: &str, record: bool) -> Participant {
        let p = self.join(session, data, record).await;
        p.publish(real_media()).await.unwrap_or_else(|e| panic!("{data} publishes: {e}"));
        eventually("the publisher connects", || p.is_publisher_connected()).await;
        p
    }

    /// The folder of a recording.
    pub fn folder(&self, id: &str) -> PathBuf {
        self.recordings.path().join(id)
    }
}

fn init_logs() {
    // Logs go to the test output when RUST_LOG is set.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// `target/test-media/{video.ivf,audio.ogg}`, made once by `scripts/test-media`.
pub fn test_media() -> &'static (PathBuf, PathBuf) {
    static MEDIA: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    MEDIA.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash").arg(root.join("scripts/test-media")).output().expect("scripts/test-media runs");
        assert!(out.status.success(), "scripts/test-media: {}", String::from_utf8_lossy(&out.stderr));
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        (dir.join("video.ivf"), dir.join("audio.ogg"))
    })
}

/// Real VP8 320x240 video and Opus audio, looped.
pub fn real_media() -> PublishOptions {
    let (video, audio) = test_media().clone();
    PublishOptions::new(MediaSource::Files { video: Some(video), audio: Some(audio) })
}

/// Waits until `check` holds, polling every 50 ms; fails the test after [`DEADLINE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ffprobe -show_streams -show_format` of a file, as JSON.
pub fn probe(file: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(file)
        .output()
        .expect("ffprobe runs (Debian package ffmpeg)");
    assert!(out.status.success(), "ffprobe {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe prints JSON")
}

/// The streams of a probe with this `codec_type`.
pub fn streams<'a>(probe: &'a Value, kind: &str) -> Vec<&'a Value> {
    probe["streams"].as_array().map(|s| s.iter().filter(|s| s["codec_type"] == kind).collect()).unwrap_or_default()
}

/// The container duration of a probe, in seconds.
pub fn duration(probe: &Value) -> f64 {
    probe["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0)
}

/// Fails unless `ffmpeg -v error -i FILE -f null -` decodes the whole file without a word.
pub fn decodes_cleanly(file: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && errors.trim().is_empty(), "{} does not decode cleanly: {errors}", file.display());
}

/// Asserts a recording's duration `actual` (seconds) fits what the test saw of it: at most
/// `fraction` under `inner` (from the start call's answer to the stop call) and at most `fraction`
/// over `outer` (from the start call to the stop call's answer). On a loaded machine the server
/// may begin before the start's answer arrives and end well after the stop request left.
pub fn assert_duration(what: &str, actual: f64, inner: f64, outer: f64, fraction: f64) {
    assert!(
        actual >= inner * (1.0 - fraction) && actual <= outer * (1.0 + fraction),
        "{what}: {actual:.3} s is not within {:.0}% of {inner:.3}..{outer:.3} s",
        fraction * 100.0
    );
}

/// Asserts `actual` is within `fraction` of `expected`.
pub fn assert_close(what: &str, actual: f64, expected: f64, fraction: f64) {
    assert!(
        (actual - expected).abs() <= expected * fraction,
        "{what}: {actual:.3} is not within {:.0}% of {expected:.3}",
        fraction * 100.0
    );
}

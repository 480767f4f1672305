//! Integration tests of `openvidu_client::participant` against the real openvidu-rs server,
//! started in-process per test on plain HTTP (127.0.0.1, free port). Tokens come from the REST
//! client; media goes through the server's SFU over loopback UDP.
//!
//! Run with `cargo test -p openvidu-client --features participant --test participant`.

mod files;
mod media;
mod media_reconnection;
mod reconnection;
mod session_events;
mod signals;
mod tls;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openvidu_client::participant::{JoinOptions, MediaSource, Participant, ParticipantEvent, PublishOptions};
use openvidu_client::{ConnectionProperties, OpenVidu, OpenViduRole, Session, SessionProperties};
use openvidu_server::{RunningServer, Server};

/// How long a test waits for something that should happen.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running server and a REST client of it.
pub struct Harness {
    /// The server; dropping it stops it.
    pub server: RunningServer,
    /// A REST client.
    pub rest: OpenVidu,
}

impl Harness {
    /// A plain-HTTP server. Logs go to the test output (`RUST_LOG`, default `warn`).
    pub async fn start() -> Self {
        Self::start_with(Server::builder()).await
    }

    /// A plain-HTTP server from `builder` (a store of the test's, say).
    pub async fn start_with(builder: openvidu_server::ServerBuilder) -> Self {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
        let server = builder.https(false).start().await.expect("the server starts");
        let rest = OpenVidu::new(server.url(), server.secret()).expect("a REST client");
        Self { server, rest }
    }

    /// A new session with this custom id.
    pub async fn session(&self, id: &str) -> Session {
        self.rest
            .create_session(SessionProperties::builder().custom_session_id(id).build())
            .await
            .expect("the session is created")
    }

    /// Joins `session` as a new connection with `role` and server data `data`.
    pub async fn join(&self, session: &Session, role: OpenViduRole, data: &str) -> Participant {
        let connection = session
            .create_connection(ConnectionProperties::builder().role(role).data(data).build())
            .await
            .expect("a connection");
        let token = connection.token.expect("a token");
        Participant::join(&token, JoinOptions::new().with_client_data(format!("{{\"bot\":\"{data}\"}}")))
            .await
            .unwrap_or_else(|e| panic!("{data} joins: {e}"))
    }
}

/// A light synthetic stream: audio and video.
pub fn light() -> PublishOptions {
    PublishOptions::new(MediaSource::Synthetic { fps: 10, packet_size: 200 })
}

/// Waits until `check` holds, polling every 50 ms; fails the test after [`DEADLINE`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads events until one matches, failing the test after [`DEADLINE`] or when the events end.
pub async fn expect_event(
    p: &Participant,
    what: &str,
    mut matches: impl FnMut(&ParticipantEvent) -> bool,
) -> ParticipantEvent {
    let wait = async {
        while let Some(event) = p.next_event().await {
            if matches(&event) {
                return Some(event);
            }
        }
        None
    };
    match tokio::time::timeout(DEADLINE, wait).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("{}: the events ended before {what}", p.connection_id()),
        Err(_) => panic!("{}: timed out waiting for {what}", p.connection_id()),
    }
}

/// Packets received so far by `p` from `publisher` (audio, video).
pub fn received_from(p: &Participant, publisher: &Participant) -> (u64, u64) {
    p.stats()
        .iter()
        .find(|s| &s.publisher == publisher.connection_id())
        .map(|s| (s.audio.packets, s.video.packets))
        .unwrap_or((0, 0))
}

/// Waits until `p` received audio and video from `publisher`, then until both grew again.
pub async fn receives(p: &Participant, publisher: &Participant) {
    let who = format!("{} receiving {}", p.connection_id(), publisher.connection_id());
    eventually(&format!("{who}: first audio and video"), || {
        let (a, v) = received_from(p, publisher);
        a > 0 && v > 0
    })
    .await;
    let (a0, v0) = received_from(p, publisher);
    eventually(&format!("{who}: more audio and video"), || {
        let (a, v) = received_from(p, publisher);
        a > a0 && v > v0
    })
    .await;
}

/// The media files of `scripts/test-media` in `target/test-media`, `(video.ivf, audio.ogg)`:
/// 10 s of VP8 (320x240, 15 fps) and of Opus (48 kHz stereo, 20 ms packets). Generated here with
/// ffmpeg as the script does when missing (into a temporary file renamed into place, so that
/// concurrent tests and the script never see half a file).
pub fn test_media() -> (PathBuf, PathBuf) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-media");
    std::fs::create_dir_all(&dir).expect("target/test-media can be created");
    let make = |name: &str, format: &str, args: &str| -> PathBuf {
        let out = dir.join(name);
        if std::fs::metadata(&out).is_ok_and(|m| m.len() > 0) {
            return out;
        }
        let tmp = dir.join(format!("{name}.tmp.{}", std::process::id()));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y"])
            .args(args.split_whitespace())
            .args(["-f", format])
            .arg(&tmp)
            .status()
            .unwrap_or_else(|e| panic!("ffmpeg runs (install it with scripts/install-deps): {e}"));
        assert!(status.success(), "ffmpeg made {name}: {status}");
        std::fs::rename(&tmp, &out).expect("the generated file is renamed into place");
        out
    };
    let video = make(
        "video.ivf",
        "ivf",
        "-f lavfi -i testsrc=size=320x240:rate=15 -t 10 -c:v libvpx -deadline realtime -g 15 -b:v 300k",
    );
    let audio =
        make("audio.ogg", "ogg", "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 10 -ac 2 -c:a libopus -b:a 32k");
    (video, audio)
}

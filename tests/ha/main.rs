//! High availability with real parts on loopback: a `redis-server`, two `openvidu-media-node`
//! processes, three `openvidu-server` masters sharing state in Redis, and HAProxy in front of
//! the masters with health checks on `/openvidu/api/health`. Participant bots join through
//! HAProxy (so their sockets spread over the masters), publish and subscribe; then one master
//! is killed with SIGKILL and every bot re-binds its socket through HAProxy to a live master
//! while media keeps flowing through the untouched media nodes; then Redis restarts under load.
//!
//! Run with `cargo build -p openvidu-server -p openvidu-media-node && cargo test --features
//! participant --test ha` (the binaries are taken from `target/debug`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};
use openvidu::client::{OpenVidu, OutputMode, RecordingProperties, RecordingStatus, SessionProperties};

const SECRET: &str = "HA_SECRET";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port()
}

fn binary(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug").join(name);
    assert!(bin.exists(), "{} is missing: cargo build -p openvidu-server -p openvidu-media-node", bin.display());
    bin
}

/// A child process, killed (SIGKILL) and reaped on drop.
struct Proc {
    name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` and waits for a stdout line starting with `ready` (returns its rest).
    fn start(name: &str, mut cmd: Command, ready: &str) -> (Self, String) {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        let prefix = ready.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(&prefix) {
                    let _ = tx.send(rest.trim().to_owned());
                }
            }
        });
        let rest = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("{name} did not get ready"));
        (Self { name: name.to_owned(), child }, rest)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        let _ = &self.name;
    }
}

fn redis(port: u16) -> Proc {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    let child = cmd.stdout(Stdio::null()).spawn().expect("redis-server runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc { name: "redis".into(), child }
}

fn media_node() -> (Proc, String) {
    let mut cmd = Command::new(binary("openvidu-media-node"));
    cmd.env("OPENVIDU_SECRET", SECRET).env("MEDIA_NODE_PORT", "0").env("MEDIA_NODE_ADDRESS", "127.0.0.1");
    Proc::start("media node", cmd, "openvidu-media-node listening on ")
}

fn master(redis_url: &str, nodes: &[String], public_url: &str, recordings: &std::path::Path) -> (Proc, String) {
    let mut cmd = Command::new(binary("openvidu-server"));
    cmd.env("OPENVIDU_SECRET", SECRET)
        .env("OPENVIDU_HTTPS", "false")
        .env("HTTPS_PORT", "0")
        .env("SERVER_ADDRESS", "127.0.0.1")
        .env("OPENVIDU_PUBLICURL", public_url)
        .env("OPENVIDU_HA_REDIS_URL", redis_url)
        .env("KMS_URIS", serde_json::to_string(nodes).expect("JSON"))
        .env("OPENVIDU_MEDIA_NODE_GRACE", "1")
        .env("OPENVIDU_RECORDING", "true")
        .env("OPENVIDU_RECORDING_PATH", recordings)
        .env("RUST_LOG", "warn");
    Proc::start("master", cmd, "openvidu-server listening on ")
}

fn haproxy(dir: &std::path::Path, port: u16, masters: &[String]) -> Proc {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{SECRET}"));
    let servers: String = masters
        .iter()
        .enumerate()
        .map(|(i, url)| format!("  server m{i} {} check\n", url.trim_start_matches("http://")))
        .collect();
    let cfg = format!(
        "global\n  maxconn 2000\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  \
         timeout server 60s\n  timeout tunnel 1h\n  retries 3\n  option redispatch\nfrontend fe\n  bind 127.0.0.1:{port}\n  default_backend masters\n\
         backend masters\n  balance roundrobin\n  option httpchk\n  \
         http-check send meth GET uri /openvidu/api/health hdr Authorization \"Basic {auth}\"\n  \
         default-server inter 300ms fall 2 rise 1\n{servers}"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("the HAProxy config");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy (Debian package haproxy) runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Proc { name: "haproxy".into(), child }
}

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
    let dir = tempfile::tempdir().expect("a temporary folder");
    let redis_port = free_port();
    let mut redis_proc = redis(redis_port);
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let (_n1, node1) = media_node();
    let (mut n2, node2) = media_node();
    let nodes = vec![node1, node2];
    let lb_port = free_port();
    let public = format!("http://127.0.0.1:{lb_port}");
    let mut masters = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..3 {
        let (p, url) = master(&redis_url, &nodes, &public, &dir.path().join("recordings"));
        masters.push(p);
        urls.push(url);
    }
    let _lb = haproxy(dir.path(), lb_port, &urls);
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
    masters[0].kill();
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

    // Kill -9 a media node: as OpenVidu does (nodeCrashed), the sessions it held are closed and
    // their participants evicted; the sessions on the other node go on.
    n2.kill();
    let mut survivors = 0;
    eventually("the crashed node's sessions are closed", Duration::from_secs(10), async || {
        let _ = rest.fetch().await;
        survivors = rest.active_sessions().len();
        survivors < SESSIONS
    })
    .await;
    println!("media node killed: {survivors} of {SESSIONS} sessions remain");
    eventually("evicted participants learn it", Duration::from_secs(10), async || {
        bots.iter().filter(|b| b.is_closed()).count() == (SESSIONS - survivors) * BOTS
    })
    .await;
    let alive: Vec<&Participant> = bots.iter().filter(|b| !b.is_closed()).collect();
    for bot in &alive {
        bot.reset_stats();
    }
    eventually("the other node's sessions still carry media", Duration::from_secs(10), async || {
        alive.iter().all(|b| b.stats().iter().filter(|s| s.packets() > 0).count() >= BOTS - 1)
    })
    .await;

    // Redis restarts: 503 meanwhile, full service afterwards, no master dies.
    redis_proc.kill();
    let refused = rest.create_session(SessionProperties::default()).await.expect_err("no store");
    assert_eq!(refused.status(), Some(503), "{refused}");
    redis_proc = redis(redis_port);
    eventually("service is back after Redis restarted", Duration::from_secs(15), async || {
        rest.create_session(SessionProperties::default()).await.is_ok()
    })
    .await;
    for m in masters.iter_mut().skip(1) {
        assert!(m.child.try_wait().expect("status").is_none(), "a master died");
    }
    drop(redis_proc);
}

//! A cluster of real processes on loopback for the HA test and the failover benchmark: a
//! `redis-server`, `openvidu-media-node`s, `openvidu-server` masters sharing state in Redis, and
//! HAProxy in front of the masters with health checks on `/openvidu/api/health`. Every process
//! is killed (SIGKILL) and reaped on drop.
//!
//! The masters' and media nodes' logs are dropped, unless `OPENVIDU_HA_LOG_DIR` names a folder:
//! then each writes its log to a file there (`media-node-<n>.log`, `master-<n>.log`, `n` counting
//! the processes started) with the filter `OPENVIDU_HA_CHILD_LOG` (default
//! `info,rtc=warn,rtc_ice=warn,webrtc=warn`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const SECRET: &str = "HA_SECRET";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port()
}

/// Which build of the binaries to run.
#[derive(Clone, Copy, Debug)]
pub enum Profile {
    /// `target/debug` (the test).
    Debug,
    /// `target/release` (the benchmark).
    Release,
}

fn binary(profile: Profile, name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let (dir, flag) = match profile {
        Profile::Debug => ("debug", ""),
        Profile::Release => ("release", " --release"),
    };
    let bin = target.join(dir).join(name);
    assert!(bin.exists(), "{} is missing: cargo build{flag} -p openvidu-server -p openvidu-media-node", bin.display());
    bin
}

/// Where a child's log goes: a new file in `OPENVIDU_HA_LOG_DIR` (with the filter
/// `OPENVIDU_HA_CHILD_LOG` set on `cmd`), or nowhere.
fn log_sink(name: &str, cmd: &mut Command) -> Stdio {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let Some(dir) = std::env::var_os("OPENVIDU_HA_LOG_DIR").map(PathBuf::from) else {
        return Stdio::null();
    };
    let filter =
        std::env::var("OPENVIDU_HA_CHILD_LOG").unwrap_or_else(|_| "info,rtc=warn,rtc_ice=warn,webrtc=warn".to_owned());
    cmd.env("RUST_LOG", filter);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}.log", name.replace(' ', "-")));
    let file = std::fs::create_dir_all(&dir).and_then(|()| std::fs::File::create(&path));
    match file {
        Ok(file) => Stdio::from(file),
        Err(e) => panic!("cannot write {}: {e}", path.display()),
    }
}

/// A child process, killed (SIGKILL) and reaped on drop.
pub struct Proc {
    name: String,
    pub child: Child,
}

impl Proc {
    /// Starts `cmd` and waits for a stdout line starting with `ready` (returns its rest).
    fn start(name: &str, mut cmd: Command, ready: &str) -> (Self, String) {
        let log = log_sink(name, &mut cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
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

    /// Kills it (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
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

/// A `redis-server` without persistence on `port`.
pub fn redis(port: u16) -> Proc {
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

/// An `openvidu-media-node` on a free port; returns its control URL.
pub fn media_node(profile: Profile) -> (Proc, String) {
    let mut cmd = Command::new(binary(profile, "openvidu-media-node"));
    cmd.env("OPENVIDU_SECRET", SECRET).env("MEDIA_NODE_PORT", "0").env("MEDIA_NODE_ADDRESS", "127.0.0.1");
    Proc::start("media node", cmd, "openvidu-media-node listening on ")
}

/// An `openvidu-server` master on a free port; returns its URL.
pub fn master(
    profile: Profile,
    redis_url: &str,
    nodes: &[String],
    public_url: &str,
    recordings: &std::path::Path,
) -> (Proc, String) {
    let mut cmd = Command::new(binary(profile, "openvidu-server"));
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

/// HAProxy on `port` in front of `masters` (health checks every 300 ms, down after 2).
pub fn haproxy(dir: &std::path::Path, port: u16, masters: &[String]) -> Proc {
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

/// The whole cluster.
pub struct Cluster {
    /// Its folder (HAProxy's configuration, the recordings).
    pub dir: tempfile::TempDir,
    /// The Redis and its port.
    pub redis: Proc,
    /// The Redis port.
    pub redis_port: u16,
    /// The media nodes.
    pub nodes: Vec<Proc>,
    /// The masters.
    pub masters: Vec<Proc>,
    /// The masters' URLs.
    pub urls: Vec<String>,
    /// The load balancer.
    pub lb: Proc,
    /// The load balancer's URL (the public URL of every master).
    pub public: String,
}

impl Cluster {
    /// Starts Redis, `nodes` media nodes, `masters` masters and HAProxy.
    pub fn start(profile: Profile, masters: usize, nodes: usize) -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let redis_port = free_port();
        let redis = redis(redis_port);
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        let (nodes, node_urls): (Vec<Proc>, Vec<String>) = (0..nodes).map(|_| media_node(profile)).unzip();
        let lb_port = free_port();
        let public = format!("http://127.0.0.1:{lb_port}");
        let recordings = dir.path().join("recordings");
        let (masters, urls): (Vec<Proc>, Vec<String>) =
            (0..masters).map(|_| master(profile, &redis_url, &node_urls, &public, &recordings)).unzip();
        let lb = haproxy(dir.path(), lb_port, &urls);
        Self { dir, redis, redis_port, nodes, masters, urls, lb, public }
    }
}

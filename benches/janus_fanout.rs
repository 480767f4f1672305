//! The peer, side by side: the fan-out of `benches/fanout.rs` against Janus 1.1.2's VideoRoom
//! plugin instead of `openvidu-server`: one synthetic publisher and N subscriber bots (the same
//! bot engine, `openvidu_client::participant::raw`, signalled through Janus's own JSON API over
//! its HTTP transport), the forwarded RTP packets per CPU-second of the `janus` process (user +
//! system time from `/proc/<pid>/stat`) and the send-to-receive latency the synthetic packets
//! carry, measured exactly as `fanout` measures.
//!
//! Run with `cargo bench --bench janus_fanout --features participant` (same options as
//! `fanout`: `-- --subscribers 1,10,100 --seconds 5 --warmup 3 --fps 30 --packet-size 1000`,
//! and `--janus-bin PATH`, `--event-loops K`). Needs `janus` (Debian: `apt-get install janus`);
//! without it the harness prints `janus: not measured` and exits successfully.
//!
//! Janus runs tuned for this load: `event_loops` = the cores it runs on (handles share a pool
//! of event-loop threads; `janus.jcfg`'s option to limit threads), which halved its CPU per
//! packet at N = 100 on 2 cores. With `--pin` (as `fanout`'s) Janus runs on one CPU of its own,
//! with one event loop, and the bots on the others. `--event-loops 0` gives Janus's default
//! instead, one loop (thread) per handle; `--event-loops K` any other pool.
//!
//! Each N gets a fresh `janus` with a generated configuration in a temporary folder: only the
//! VideoRoom plugin and the HTTP transport (on a free loopback port), no event handlers or
//! loggers, warnings only. Janus never gathers candidates on a loopback interface, so ICE runs
//! on this machine's first non-loopback IPv4 address (`ice_enforce_list` = that address; the
//! bots bind it too), which the kernel still delivers locally. The room has no bitrate cap and
//! no joining notifications; every bot has its own Janus handle (all in one Janus session,
//! whose events a long poll reads; a keepalive every 20 s). No trickle ICE: each SDP carries
//! its candidates. Rows are `fanout`'s, prefixed with `janus`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openvidu::client::participant::raw::{RawOptions, RawPublisher, RawSubscriber};
use openvidu::client::participant::{IceLiveness, MediaSource, PublishOptions};
use serde_json::{Value, json};
use tokio::sync::oneshot;

mod support;

use support::{
    FanoutArgs, FanoutRow, FanoutSubscriber, Pinning, Tally, fanout_args, in_batches, measure_window,
    print_fanout_header, print_fanout_row,
};

/// The room every N uses (each N has its own Janus).
const ROOM: u64 = 1234;
/// How long a Janus request waits for its event.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Janus's VideoRoom error "no such feed": the publisher's media is not up yet.
const NO_SUCH_FEED: i64 = 428;

impl FanoutSubscriber for RawSubscriber {
    fn receiving(&self) -> bool {
        let st = self.stats();
        st.video.packets > 0 && st.audio.packets > 0
    }

    fn reset(&self) {
        self.reset_stats();
    }

    fn tally(&self, tally: &mut Tally) {
        let st = self.stats();
        tally.add(&st.audio);
        tally.add(&st.video);
    }
}

/// `janus` from `--janus-bin` or the `PATH`.
fn janus_binary() -> Option<PathBuf> {
    let v: Vec<String> = std::env::args().collect();
    if let Some(w) = v.windows(2).find(|w| w[0] == "--janus-bin") {
        return Some(PathBuf::from(&w[1]));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("janus")).find(|p| p.is_file())
}

/// Janus's shared event loops: `--event-loops K` (0: none, one loop per handle), else one per
/// core it runs on (`cores`).
fn event_loops(cores: u32) -> Option<u32> {
    let v: Vec<String> = std::env::args().collect();
    let k = v.windows(2).find(|w| w[0] == "--event-loops").and_then(|w| w[1].parse().ok()).unwrap_or(cores);
    (k > 0).then_some(k)
}

/// Janus's library folder (with `plugins/` and `transports/`): `<prefix>/lib/janus` of the
/// binary's prefix, or Debian's `/usr/lib/<triplet>/janus`.
fn janus_lib_dir(bin: &Path) -> Option<PathBuf> {
    let prefix = bin.parent().and_then(Path::parent);
    let mut candidates: Vec<PathBuf> = prefix.map(|p| p.join("lib").join("janus")).into_iter().collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        candidates.extend(entries.filter_map(Result::ok).map(|e| e.path().join("janus")));
    }
    candidates.into_iter().find(|d| d.join("plugins").join("libjanus_videoroom.so").exists())
}

/// The first IPv4 address of an interface that is up, running and not loopback: Janus never
/// gathers loopback candidates (its `ice.c` skips `IFF_LOOPBACK` interfaces whatever
/// `ice_enforce_list` says), so Janus and the bots use this address instead of 127.0.0.1.
/// Packets to a local address still go through the kernel's loopback path.
fn local_ipv4() -> Option<Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs releases below; every
    // node and address is read only while the list is alive, and null pointers are checked.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut found = None;
        let mut node = list;
        while let Some(ifa) = node.as_ref() {
            node = ifa.ifa_next;
            let flags = ifa.ifa_flags as libc::c_int;
            let wanted = libc::IFF_UP | libc::IFF_RUNNING;
            if flags & wanted != wanted || flags & libc::IFF_LOOPBACK != 0 {
                continue;
            }
            let Some(addr) = ifa.ifa_addr.as_ref() else { continue };
            if libc::c_int::from(addr.sa_family) != libc::AF_INET {
                continue;
            }
            let v4 = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            found = Some(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)));
            break;
        }
        libc::freeifaddrs(list);
        found
    }
}

fn free_port() -> u16 {
    // Released before Janus binds it: a small race, as redis-test admits.
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A `janus` process with its configuration folder; killed and reaped on drop.
struct JanusProcess {
    child: Child,
    url: String,
    folder: tempfile::TempDir,
}

impl JanusProcess {
    fn start(bin: &Path, ip: Ipv4Addr, event_loops: Option<u32>, pinning: Option<&Pinning>) -> Self {
        let folder = tempfile::tempdir().expect("a temporary folder");
        let dir = folder.path();
        let lib = janus_lib_dir(bin).expect("Janus's library folder, with plugins/libjanus_videoroom.so");
        // Only what is needed is loaded: folders holding just the VideoRoom plugin and the HTTP
        // transport, and empty ones for event handlers and loggers.
        for (sub, so) in [("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")] {
            std::fs::create_dir(dir.join(sub)).expect("a folder");
            std::os::unix::fs::symlink(lib.join(sub).join(so), dir.join(sub).join(so)).expect("a plugin link");
        }
        for sub in ["events", "loggers"] {
            std::fs::create_dir(dir.join(sub)).expect("a folder");
        }
        let port = free_port();
        let d = dir.display();
        let loops = event_loops.map(|k| format!("\tevent_loops = {k}\n")).unwrap_or_default();
        let janus = format!(
            "general: {{\n\tconfigs_folder = \"{d}\"\n\tplugins_folder = \"{d}/plugins\"\n\
             \ttransports_folder = \"{d}/transports\"\n\tevents_folder = \"{d}/events\"\n\
             \tloggers_folder = \"{d}/loggers\"\n\tdebug_level = 3\n\tinterface = \"{ip}\"\n\
             \tsession_timeout = 60\n{loops}}}\n\
             media: {{\n\tipv6 = false\n}}\n\
             nat: {{\n\tice_enforce_list = \"{ip}\"\n\tignore_mdns = true\n}}\n\
             plugins: {{\n}}\ntransports: {{\n}}\nloggers: {{\n}}\nevents: {{\n\tbroadcast = false\n}}\n"
        );
        let http = format!(
            "general: {{\n\tjson = \"compact\"\n\tbase_path = \"/janus\"\n\thttp = true\n\tport = {port}\n\
             \tip = \"127.0.0.1\"\n\thttps = false\n}}\nadmin: {{\n\tadmin_http = false\n\tadmin_https = false\n}}\n\
             cors: {{\n}}\n"
        );
        std::fs::write(dir.join("janus.jcfg"), janus).expect("janus.jcfg");
        std::fs::write(dir.join("janus.transport.http.jcfg"), http).expect("the HTTP transport's configuration");
        std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n").expect("the plugin's configuration");
        let log = std::fs::File::create(dir.join("janus.log")).expect("a log file");
        let mut command = Command::new(bin);
        if let Some(p) = pinning {
            p.pin_server(&mut command);
        }
        let child = command
            .arg("-F")
            .arg(dir)
            .arg("-C")
            .arg(dir.join("janus.jcfg"))
            .arg("--disable-colors")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Self { child, url: format!("http://127.0.0.1:{port}/janus"), folder }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.folder.path().join("janus.log")).unwrap_or_default()
    }

    /// Polls `info` until Janus answers (20 s at most).
    async fn ready(&self, http: &reqwest::Client) {
        let start = Instant::now();
        loop {
            let info = http.post(&self.url).json(&json!({"janus": "info", "transaction": "ready"})).send().await;
            if info.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "janus did not start:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for JanusProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One Janus session over the HTTP transport: requests, a long poll that hands each event to
/// the request waiting on its transaction, and keepalives.
struct JanusSession {
    http: reqwest::Client,
    /// `<base>/<session id>`.
    url: String,
    next: AtomicU64,
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for JanusSession {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The `data.id` of a Janus `success` answer.
fn data_id(answer: &Value) -> u64 {
    answer["data"]["id"].as_u64().unwrap_or_else(|| panic!("no data.id in {answer}"))
}

impl JanusSession {
    async fn create(http: reqwest::Client, base: &str) -> Self {
        let created = post(&http, base, json!({"janus": "create", "transaction": "create"})).await;
        let url = format!("{base}/{}", data_id(&created));
        let waiting: Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>> = Arc::default();
        let poll = {
            let (http, url, waiting) = (http.clone(), url.clone(), waiting.clone());
            tokio::spawn(async move {
                loop {
                    let events = match http.get(format!("{url}?maxev=10")).send().await {
                        Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let events = match events {
                        Value::Array(events) => events,
                        event => vec![event],
                    };
                    for event in events {
                        let Some(tx) = event["transaction"].as_str().and_then(|t| waiting.lock().ok()?.remove(t))
                        else {
                            continue;
                        };
                        let _ = tx.send(event);
                    }
                }
            })
        };
        let keepalive = {
            let (http, url) = (http.clone(), url.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(20));
                loop {
                    tick.tick().await;
                    let _ =
                        http.post(&url).json(&json!({"janus": "keepalive", "transaction": "keepalive"})).send().await;
                }
            })
        };
        Self { http, url, next: AtomicU64::new(0), waiting, tasks: vec![poll.abort_handle(), keepalive.abort_handle()] }
    }

    /// A new VideoRoom handle.
    async fn attach(&self) -> u64 {
        let attached = post(
            &self.http,
            &self.url,
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": "a"}),
        )
        .await;
        data_id(&attached)
    }

    /// Sends `body` (and `jsep`) to the plugin on `handle` and returns the plugin's answer:
    /// the `success` answer of a synchronous request, else the event of its transaction.
    async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Value {
        let transaction = format!("t{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("the waiting map").insert(transaction.clone(), tx);
        let mut request = json!({"janus": "message", "transaction": transaction, "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        let answer = post(&self.http, &format!("{}/{handle}", self.url), request).await;
        match answer["janus"].as_str() {
            Some("ack") => tokio::time::timeout(REQUEST_TIMEOUT, rx)
                .await
                .unwrap_or_else(|_| panic!("no Janus event for {transaction} in {REQUEST_TIMEOUT:?}"))
                .expect("the long poll runs"),
            _ => {
                self.waiting.lock().expect("the waiting map").remove(&transaction);
                answer
            }
        }
    }
}

/// POSTs a Janus request and returns its answer; a Janus error panics with the request.
async fn post(http: &reqwest::Client, url: &str, request: Value) -> Value {
    let answer: Value = http
        .post(url)
        .json(&request)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_ne!(answer["janus"], "error", "Janus refused {request}: {answer}");
    answer
}

/// The VideoRoom part of a plugin answer, its `error_code` checked unless `allowed`.
fn videoroom(answer: &Value, allowed: Option<i64>) -> &Value {
    let data = &answer["plugindata"]["data"];
    if let Some(code) = data["error_code"].as_i64()
        && Some(code) != allowed
    {
        panic!("the VideoRoom plugin refused: {answer}");
    }
    data
}

fn jsep_sdp(answer: &Value) -> String {
    answer["jsep"]["sdp"].as_str().unwrap_or_else(|| panic!("no jsep in {answer}")).to_owned()
}

fn raw_options(ip: Ipv4Addr, ice: IceLiveness) -> RawOptions {
    RawOptions::new().with_ice_addresses(vec![IpAddr::V4(ip)]).with_ice_liveness(ice)
}

/// Joins a subscriber to `feed`, retrying while the feed's media is not up.
async fn subscribe(janus: &JanusSession, feed: u64, ip: Ipv4Addr, ice: IceLiveness) -> RawSubscriber {
    let handle = janus.attach().await;
    let start = Instant::now();
    let attached = loop {
        let join = json!({"request": "join", "room": ROOM, "ptype": "subscriber", "streams": [{"feed": feed}]});
        let answer = janus.message(handle, join, None).await;
        if videoroom(&answer, Some(NO_SUCH_FEED))["error_code"].is_null() {
            break answer;
        }
        assert!(start.elapsed() < REQUEST_TIMEOUT, "feed {feed} never became available: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let subscriber =
        RawSubscriber::from_offer(&jsep_sdp(&attached), raw_options(ip, ice)).await.expect("a subscriber answers");
    let jsep = json!({"type": "answer", "sdp": subscriber.answer(), "trickle": false});
    let started = janus.message(handle, json!({"request": "start", "room": ROOM}), Some(jsep)).await;
    videoroom(&started, None);
    subscriber
}

async fn measure(
    bin: &Path,
    ip: Ipv4Addr,
    n: usize,
    a: &FanoutArgs,
    loops: Option<u32>,
    pinning: Option<&Pinning>,
) -> FanoutRow {
    let process = JanusProcess::start(bin, ip, loops, pinning);
    // reqwest is built without a default TLS provider; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    process.ready(&http).await;
    let janus = Arc::new(JanusSession::create(http, &process.url).await);
    let admin = janus.attach().await;
    let create = json!({
        "request": "create", "room": ROOM, "publishers": n + 1, "bitrate": 0, "notify_joining": false,
        "audiocodec": "opus", "videocodec": "vp8",
    });
    videoroom(&janus.message(admin, create, None).await, None);

    let handle = janus.attach().await;
    let source = MediaSource::Synthetic { fps: a.fps, packet_size: a.packet_size };
    let mut publisher =
        RawPublisher::new(PublishOptions::new(source), raw_options(ip, a.bot_ice)).await.expect("a publisher offers");
    let join = json!({"request": "joinandconfigure", "room": ROOM, "ptype": "publisher", "display": "publisher"});
    let jsep = json!({"type": "offer", "sdp": publisher.offer(), "trickle": false});
    let joined = janus.message(handle, join, Some(jsep)).await;
    let feed = videoroom(&joined, None)["id"].as_u64().unwrap_or_else(|| panic!("no publisher id in {joined}"));
    publisher.apply_answer(&jsep_sdp(&joined)).await.expect("the publisher applies Janus's answer");
    let start = Instant::now();
    while !publisher.is_connected() {
        assert!(start.elapsed() < REQUEST_TIMEOUT, "the publisher does not connect to Janus:\n{}", process.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let subscribers: Vec<RawSubscriber> = in_batches(vec![feed; n], 10, |feed| {
        let janus = janus.clone();
        let ice = a.bot_ice;
        async move { subscribe(&janus, feed, ip, ice).await }
    })
    .await;

    let row = measure_window(process.child.id(), &subscribers, a).await;
    for s in &subscribers {
        s.close().await;
    }
    publisher.close().await;
    let _ = janus.http.post(&janus.url).json(&json!({"janus": "destroy", "transaction": "destroy"})).send().await;
    drop(process);
    row
}

fn main() {
    let a = fanout_args();
    let Some(bin) = janus_binary() else {
        println!("janus is not installed (Debian: apt-get install janus)");
        println!("janus: not measured");
        return;
    };
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let Some(ip) = local_ipv4() else {
        println!("janus needs a non-loopback IPv4 interface (it never gathers loopback candidates)");
        println!("janus: not measured");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let pinning = Pinning::from_args(&a);
    // Pinned, Janus has one core: one event loop, as openvidu-server has one media thread.
    let cores = match &pinning {
        Some(_) => 1,
        None => std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(2),
    };
    let loops = event_loops(cores);
    println!(
        "janus fan-out of one publisher ({} fps x {} B video + 50 pps audio), {} s windows, {} ({version}), ICE on {ip}, {}{}, {}",
        a.fps,
        a.packet_size,
        a.seconds,
        bin.display(),
        loops.map(|k| format!("{k} event loops")).unwrap_or_else(|| "one event loop per handle".into()),
        Pinning::heading(pinning.as_ref()),
        a.bot_ice_heading(),
    );
    print_fanout_header("janus");
    let mut base = None;
    for &n in &a.subscribers {
        let row = rt.block_on(measure(&bin, ip, n, &a, loops, pinning.as_ref()));
        print_fanout_row("janus", &row, &mut base);
    }
}

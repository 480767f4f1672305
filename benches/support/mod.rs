//! What the benches share: the release server binary, a server process, CPU time from `/proc`,
//! and the measuring window, options and rows of the fan-out harnesses (`fanout`, `janus_fanout`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openvidu::client::participant::{IceLiveness, percentile};

/// The secret of the servers the benches start.
pub const SECRET: &str = "BENCH_SECRET";

/// `target/release/openvidu-server`, built if missing.
pub fn server_binary(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("openvidu-server");
    if !bin.exists() {
        eprintln!("{} is missing: cargo build --release -p openvidu-server", bin.display());
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "-p", "openvidu-server"])
            .current_dir(root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building openvidu-server failed");
    }
    bin
}

/// Builds `target/release/{openvidu-server,openvidu-media-node}` when one of them is missing.
pub fn release_cluster_binaries() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let release = target.join("release");
    if ["openvidu-server", "openvidu-media-node"].iter().all(|b| release.join(b).exists()) {
        return;
    }
    eprintln!("building the release binaries: cargo build --release -p openvidu-server -p openvidu-media-node");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "openvidu-server", "-p", "openvidu-media-node"])
        .current_dir(root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the release binaries failed");
}

/// A server process; killed and reaped on drop.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// Its base URL.
    pub url: String,
    _logs: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Starts `bin` on plain HTTP, port 0, with `env` on top of the defaults.
    pub fn start(bin: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_pinned(bin, env, None)
    }

    /// [`start`](Self::start), on the server's CPU of `pinning` if given.
    pub fn start_pinned(bin: &Path, env: &[(&str, &str)], pinning: Option<&Pinning>) -> Self {
        let logs = tempfile::NamedTempFile::new().expect("a log file");
        let mut command = Command::new(bin);
        if let Some(p) = pinning {
            p.pin_server(&mut command);
        }
        let mut child = command
            .env("OPENVIDU_SECRET", SECRET)
            .env("OPENVIDU_HTTPS", "false")
            .env("HTTPS_PORT", "0")
            .env("SERVER_ADDRESS", "127.0.0.1")
            .env("DOMAIN_OR_PUBLIC_IP", "127.0.0.1")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logs.reopen().expect("the log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("openvidu-server listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(logs.path()).unwrap_or_default();
                panic!("openvidu-server did not start:\n{log}");
            }
        };
        Self { child, url, _logs: logs }
    }

    /// User + system CPU time of the process so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id())
    }
}

/// UDP datagrams the kernel has dropped so far because a socket's receive buffer was full
/// (`RcvbufErrors` in `/proc/net/snmp`, the whole machine), if readable.
pub fn udp_receive_buffer_drops() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// User + system CPU time of process `pid` so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, i.e. 12 and 13 after the name.
    let ticks: u64 = fields.get(11..13).map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum()).unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The options of the fan-out harnesses: `--subscribers 1,10,50,100 --seconds 5 --warmup 3
/// --fps 30 --packet-size 1000 --server-bin PATH`.
pub struct FanoutArgs {
    /// The N to measure, in order.
    pub subscribers: Vec<usize>,
    /// The measuring window.
    pub seconds: u64,
    /// Seconds between "every subscriber receives" and the window.
    pub warmup: u64,
    /// Synthetic video frames (= packets) per second.
    pub fps: u32,
    /// Synthetic video payload size.
    pub packet_size: usize,
    /// The media server's binary, when given.
    pub server_bin: Option<PathBuf>,
    /// `--rooms MxK`: also M sessions of K participants, each publishing and subscribing to the
    /// others (fanout only).
    pub rooms: Option<(usize, usize)>,
    /// `--pin`: the server on a CPU of its own and the bots on the others ([`Pinning`]), for
    /// the 1 → N rows.
    pub pin: bool,
    /// `--bot-ice browser|fast`: the bots' ICE consent checks. Default `browser`
    /// ([`IceLiveness::BROWSER`], every 2.5 s as Chrome on a stable connection): every subscriber
    /// of the fan-out costs the server its consent checks, and the participant client's default
    /// ([`IceLiveness::FAST`], every 500 ms, to notice a dead media node at once) sends five
    /// times as many as the browsers a server serves.
    pub bot_ice: IceLiveness,
}

impl FanoutArgs {
    /// The bots' consent checks, for a heading.
    pub fn bot_ice_heading(&self) -> String {
        let pace = if self.bot_ice == IceLiveness::BROWSER { "a browser's pace" } else { "--bot-ice fast" };
        format!("bots' ICE consent checks every {} ms ({pace})", self.bot_ice.keepalive.as_millis())
    }
}

/// The fan-out options from the command line.
pub fn fanout_args() -> FanoutArgs {
    let mut a = FanoutArgs {
        subscribers: vec![1, 10, 50, 100],
        seconds: 5,
        warmup: 3,
        fps: 30,
        packet_size: 1000,
        server_bin: None,
        rooms: None,
        pin: false,
        bot_ice: IceLiveness::BROWSER,
    };
    let v: Vec<String> = std::env::args().collect();
    a.pin = v.iter().any(|arg| arg == "--pin");
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
            "--rooms" => {
                a.rooms = w[1].split_once('x').and_then(|(m, k)| Some((m.parse().ok()?, k.parse().ok()?)));
            }
            "--bot-ice" => {
                a.bot_ice = match w[1].as_str() {
                    "fast" => IceLiveness::FAST,
                    "browser" => IceLiveness::BROWSER,
                    other => {
                        eprintln!("--bot-ice {other}: expected browser or fast; the bots keep a browser's pace");
                        IceLiveness::BROWSER
                    }
                }
            }
            _ => {}
        }
    }
    a
}

/// The server under test on one CPU of its own, the bots (this process) on the others.
///
/// Unpinned, the server's threads and the bots' share every core: a copy of a packet waits
/// while a bot's thread runs on the core the server's media thread was on, and the latency
/// and CPU measured are those of two programs preempting each other. Pinned, the two sides
/// run as they would on separate machines, with this machine's cores split between them.
#[derive(Clone, Debug)]
pub struct Pinning {
    /// The server's CPU: the last one this process may run on.
    pub server: usize,
    /// The bots' CPUs: the others.
    pub bots: Vec<usize>,
    all: Vec<usize>,
}

impl Pinning {
    /// Splits the CPUs this process may run on; `None` with fewer than two.
    pub fn split() -> Option<Self> {
        // SAFETY: `cpu_set_t` is plain old data; all-zero is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable `cpu_set_t` of the size given.
        if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
            return None;
        }
        // SAFETY: `set` was filled in by the kernel; the index is below CPU_SETSIZE.
        let all: Vec<usize> =
            (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect();
        let (&server, bots) = all.split_last()?;
        let bots = bots.to_vec();
        (!bots.is_empty()).then_some(Self { server, bots, all })
    }

    /// The pinning `--pin` asks for, with this process's threads already on the bots' CPUs;
    /// `None` without `--pin`, or (with a note) on fewer than two CPUs.
    pub fn from_args(a: &FanoutArgs) -> Option<Self> {
        if !a.pin {
            return None;
        }
        let pinning = Self::split();
        match &pinning {
            Some(p) => p.pin_bots(),
            None => println!("note: --pin needs two CPUs or more: not pinned"),
        }
        pinning
    }

    /// Pins every thread of this process to the bots' CPUs (threads it starts later inherit it).
    pub fn pin_bots(&self) {
        set_process_affinity(&self.bots);
    }

    /// Lets every thread of this process run on any of its CPUs again.
    pub fn unpin(&self) {
        set_process_affinity(&self.all);
    }

    /// Makes the process `command` starts run on the server's CPU only.
    pub fn pin_server(&self, command: &mut Command) {
        use std::os::unix::process::CommandExt;
        let set = cpu_set(&[self.server]);
        // SAFETY: the closure runs in the child between fork and exec, and only makes one
        // system call on a set copied into it.
        unsafe {
            command.pre_exec(move || {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// ", server pinned to CPU 1, bots to CPU 0" of `pinning`, or nothing: the end of the
    /// harnesses' headings.
    pub fn heading(pinning: Option<&Self>) -> String {
        let Some(p) = pinning else { return String::new() };
        let bots: Vec<String> = p.bots.iter().map(usize::to_string).collect();
        format!(", server pinned to CPU {}, bots to CPU {}", p.server, bots.join(","))
    }
}

fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `c` is below CPU_SETSIZE, inside `set`.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    set
}

/// Sets the affinity of every thread of this process (`sched_setaffinity` is per thread).
fn set_process_affinity(cpus: &[usize]) {
    let set = cpu_set(cpus);
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    for tid in tasks.filter_map(Result::ok).filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok()) {
        // SAFETY: `set` is a valid `cpu_set_t` of the size given; a thread that has exited
        // meanwhile makes the call fail, which is fine.
        unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    }
}

/// What the subscribers of a window received.
#[derive(Default)]
pub struct Tally {
    /// Packets received.
    pub forwarded: u64,
    /// Packets lost.
    pub lost: u64,
    /// Send-to-receive delays: to the bot's track reader.
    pub latency: Vec<Duration>,
    /// Send-to-socket delays: to the kernel's receive timestamp at the bot's socket.
    pub socket_latency: Vec<Duration>,
}

impl Tally {
    /// Adds one received track.
    pub fn add(&mut self, track: &openvidu::client::participant::TrackStats) {
        self.forwarded += track.packets;
        self.lost += track.lost;
        self.latency.extend_from_slice(&track.latency);
        self.socket_latency.extend_from_slice(&track.socket_latency);
    }
}

/// A subscriber bot of a fan-out harness.
pub trait FanoutSubscriber {
    /// Whether both its tracks have received packets.
    fn receiving(&self) -> bool;
    /// Forgets what it counted so far.
    fn reset(&self);
    /// Adds what it counted to `tally`.
    fn tally(&self, tally: &mut Tally);
}

/// One measured N.
pub struct FanoutRow {
    /// N.
    pub subscribers: usize,
    /// Packets received by all subscribers in the window.
    pub forwarded: u64,
    /// Packets lost.
    pub lost: u64,
    /// The window's wall time.
    pub seconds: f64,
    /// The media server's CPU time in the window.
    pub cpu: Duration,
    /// This process's (the bots') CPU time in the window.
    pub bots_cpu: Duration,
    /// Latency percentiles, send to the bots' track readers (the wait in the bots' process
    /// included).
    pub p50: Option<Duration>,
    /// See [`p50`](Self::p50).
    pub p99: Option<Duration>,
    /// Latency percentiles, send to the bots' sockets (kernel receive timestamps): what the
    /// server and loopback added, the bots' own wait left out.
    pub socket_p50: Option<Duration>,
    /// See [`socket_p50`](Self::socket_p50).
    pub socket_p99: Option<Duration>,
}

impl FanoutRow {
    fn cpu_per_packet(&self) -> f64 {
        self.cpu.as_secs_f64() / self.forwarded.max(1) as f64
    }
}

/// Runs `f` on each item, `concurrency` at a time.
pub async fn in_batches<T, F, Fut, R>(items: Vec<T>, concurrency: usize, f: F) -> Vec<R>
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

/// Joins a participant with each token (with `options`) and subscribes it to `stream`, ten at a
/// time.
pub async fn subscribers_of(
    tokens: Vec<String>,
    stream: openvidu::core::id::StreamId,
    options: openvidu::client::participant::JoinOptions,
) -> Vec<openvidu::client::participant::Participant> {
    use openvidu::client::participant::Participant;
    let stream = std::sync::Arc::new(stream);
    in_batches(tokens, 10, |token| {
        let (stream, options) = (stream.clone(), options.clone());
        async move {
            let bot = Participant::join(&token, options).await.expect("a subscriber joins");
            bot.subscribe(&stream).await.expect("a subscriber subscribes");
            bot
        }
    })
    .await
}

/// Waits until every subscriber receives (60 s at most; past that, says how many do not and
/// goes on), then `warmup` seconds, then measures a window of `seconds`: what the subscribers
/// received and the CPU time of process `server_pid` and of this one.
pub async fn measure_window<S: FanoutSubscriber>(server_pid: u32, subscribers: &[S], a: &FanoutArgs) -> FanoutRow {
    let start = Instant::now();
    while !subscribers.iter().all(S::receiving) {
        if start.elapsed() > Duration::from_secs(60) {
            // An overloaded machine: measured all the same, the row shows what was lost.
            let silent = subscribers.iter().filter(|s| !s.receiving()).count();
            println!("note: {silent} of {} subscribers not receiving after 60 s; measuring anyway", subscribers.len());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;

    for s in subscribers {
        s.reset();
    }
    let drops0 = udp_receive_buffer_drops();
    let (cpu0, bots0, t0) = (cpu_time(server_pid), cpu_time(std::process::id()), Instant::now());
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let (cpu1, bots1, seconds) = (cpu_time(server_pid), cpu_time(std::process::id()), t0.elapsed().as_secs_f64());
    if let (Some(d0), Some(d1)) = (drops0, udp_receive_buffer_drops())
        && d1 > d0
    {
        println!("note: the kernel dropped {} UDP datagrams on full receive buffers in the window", d1 - d0);
    }
    let mut tally = Tally::default();
    for s in subscribers {
        s.tally(&mut tally);
    }
    FanoutRow {
        subscribers: subscribers.len(),
        forwarded: tally.forwarded,
        lost: tally.lost,
        seconds,
        cpu: cpu1.saturating_sub(cpu0),
        bots_cpu: bots1.saturating_sub(bots0),
        p50: percentile(&tally.latency, 0.5),
        p99: percentile(&tally.latency, 0.99),
        socket_p50: percentile(&tally.socket_latency, 0.5),
        socket_p99: percentile(&tally.socket_latency, 0.99),
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.2}", d.as_secs_f64() * 1e3)).unwrap_or_else(|| "-".into())
}

/// Prints `line`, after `prefix` and a space unless `prefix` is empty.
fn print_prefixed(prefix: &str, line: &str) {
    if prefix.is_empty() {
        println!("{line}");
    } else {
        println!("{prefix} {line}");
    }
}

/// Prints the column names of the fan-out rows.
pub fn print_fanout_header(prefix: &str) {
    let line = format!(
        "{:>5} {:>10} {:>9} {:>6} {:>10} {:>12} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
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
        "sock p50",
        "sock p99",
        "bots CPU"
    );
    print_prefixed(prefix, &line);
}

/// Prints one fan-out row; `base` is the CPU per packet of the first row, set by it.
pub fn print_fanout_row(prefix: &str, row: &FanoutRow, base: &mut Option<f64>) {
    let per_packet = row.cpu_per_packet();
    let base = *base.get_or_insert(per_packet);
    let line = format!(
        "{:>5} {:>10} {:>9.0} {:>6} {:>9.2}s {:>12.0} {:>10.1} {:>8.2} {:>8} {:>8} {:>9} {:>9} {:>8.2}s",
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
        ms(row.socket_p50),
        ms(row.socket_p99),
        row.bots_cpu.as_secs_f64(),
    );
    print_prefixed(prefix, &line);
}

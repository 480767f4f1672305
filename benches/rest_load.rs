//! REST load harness: concurrent clients creating connections (and sessions) against an
//! in-process server over loopback HTTP/1.1 keep-alive, printing requests/s and p50/p99 latency.
//!
//! Run with `cargo bench --bench rest_load` (add `-- --seconds 10 --clients 64` to change the
//! load). The baseline is a trivial axum route on the same stack, measured in the same run with
//! the same client, so the ratio says what the OpenVidu logic costs over bare HTTP on this
//! (noisy, shared) machine. Connection creation is measured twice: with the in-memory store and
//! with the Redis store of high availability (a `redis-server` this harness starts on a free
//! loopback port), printed with their ratio, at the chosen concurrency and at 4 and 16 times it:
//! the Redis store answers each call after a round trip to Redis, so at low concurrency it is
//! bound by that latency rather than by CPU; its peak throughput (the best of the three) is
//! compared with the in-memory store's peak. The levels run in `--rounds` rounds (3 by default),
//! the two stores back to back in each, and every row is the median of its rounds. Last, the two
//! stores alone, called directly by as
//! many tasks as the 4x level has clients: what the Redis store's group commit sustains without
//! HTTP in front of it. `--only-redis` skips the in-memory levels, to profile the Redis ones.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openvidu::core::id::{IdGenerator, RandomIds, SessionId};
use openvidu::core::model::{Connection, ConnectionProperties, Session, SessionProperties};
use openvidu::server::Server;
use openvidu::server::store::{MemoryStore, RedisStore, Store};

/// The same allocator as the `openvidu-server` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    seconds: u64,
    clients: usize,
    sessions: usize,
    /// Rounds of the connection-creation levels; each row is the median of its rounds.
    rounds: usize,
    /// Only the Redis store's connection-creation levels (`--only-redis`), to profile them.
    only_redis: bool,
}

fn args() -> Args {
    let mut a = Args { seconds: 5, clients: 32, sessions: 16, rounds: 3, only_redis: false };
    let v: Vec<String> = std::env::args().collect();
    a.only_redis = v.iter().any(|x| x == "--only-redis");
    for w in v.windows(2) {
        match w[0].as_str() {
            "--seconds" => a.seconds = w[1].parse().unwrap_or(a.seconds),
            "--clients" => a.clients = w[1].parse().unwrap_or(a.clients),
            "--sessions" => a.sessions = w[1].parse().unwrap_or(a.sessions),
            "--rounds" => a.rounds = w[1].parse().unwrap_or(a.rounds).max(1),
            _ => {}
        }
    }
    a
}

struct Report {
    name: &'static str,
    requests: usize,
    errors: usize,
    rps: f64,
    p50: Duration,
    p99: Duration,
}

impl Report {
    fn print(&self, baseline: Option<f64>) {
        let ratio = baseline.map(|b| format!("{:.2}", self.rps / b)).unwrap_or_else(|| "1.00".into());
        println!(
            "{:<28} {:>9} req {:>6} err {:>10.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ratio-to-baseline {ratio}",
            self.name,
            self.requests,
            self.errors,
            self.rps,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
        );
    }
}

/// Runs `clients` loops for `seconds`, each calling `make` for its next request.
async fn load<F>(name: &'static str, a: &Args, clients: usize, client: reqwest::Client, make: F) -> Report
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let (client, make) = (client.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0usize;
            let mut n = i;
            while Instant::now() < until {
                let t = Instant::now();
                match make(&client, n).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    Report { name, requests: all.len(), errors, rps: all.len() as f64 / elapsed, p50: pct(0.50), p99: pct(0.99) }
}

/// The run of median throughput (the upper one of an even number); `None` when there is none.
fn median(mut runs: Vec<Report>) -> Option<Report> {
    runs.sort_by(|x, y| x.rps.total_cmp(&y.rps));
    let middle = runs.len() / 2;
    runs.into_iter().nth(middle)
}

/// A `redis-server` of this run on a free loopback port, stopped on drop.
struct RedisProcess {
    child: std::process::Child,
    url: String,
}

impl RedisProcess {
    /// Starts one without persistence; `None` (with a message) when `redis-server` is missing.
    fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            println!("redis-server not found (apt-get install redis-server): the Redis rows are not measured");
            return None;
        };
        let redis = Self { child, url: format!("redis://127.0.0.1:{port}/") };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                println!("redis-server did not start: the Redis rows are not measured");
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the load goes: the two servers (in-memory store, Redis store) and the bare baseline.
struct Targets {
    memory: (String, String),
    redis: Option<(String, String)>,
    baseline: String,
}

fn main() {
    let a = args();
    let redis = RedisProcess::start();
    let redis_url = redis.as_ref().map(|r| r.url.clone());
    // The servers get their own runtime and threads, like a separate process would.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let memory = Server::builder().https(false).configure(|c| c.garbage_interval = None).start().await.unwrap();
            let with_redis = match redis_url {
                Some(url) => Some(
                    Server::builder()
                        .https(false)
                        .configure(|c| {
                            c.garbage_interval = None;
                            c.ha_redis_url = Some(url);
                        })
                        .start()
                        .await
                        .unwrap(),
                ),
                None => None,
            };
            // The baseline: the same HTTP stack with no OpenVidu logic behind it.
            let baseline = axum::Router::new().route("/baseline", axum::routing::post(|| async { "{\"ok\":true}" }));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let baseline_url = format!("http://{}/baseline", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, baseline).await });
            let of = |s: &openvidu::server::RunningServer| (s.url().to_owned(), s.secret().to_owned());
            tx.send(Targets { memory: of(&memory), redis: with_redis.as_ref().map(of), baseline: baseline_url })
                .unwrap();
            std::future::pending::<()>().await;
            drop((memory, with_redis));
        });
    });
    let targets = rx.recv().unwrap();
    let store_redis_url = redis.as_ref().map(|r| r.url.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(16 * a.clients).build().unwrap();
        println!(
            "REST load: {} clients, {} s per scenario, {} sessions; {} cores",
            a.clients,
            a.seconds,
            a.sessions,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        let baseline_url: reqwest::Url = targets.baseline.parse().unwrap();
        let base = load("baseline (bare axum POST)", &a, a.clients, client.clone(), move |c, _| {
            c.post(baseline_url.clone()).header("content-type", "application/json").body("{}")
        })
        .await;
        base.print(None);

        let (url, secret) = &targets.memory;
        let api: reqwest::Url = format!("{url}/openvidu/api/sessions").parse().unwrap();
        let s = format!("Basic {}", base64_auth(secret));
        let sess = load("session creation", &a, a.clients, client.clone(), move |c, _| {
            c.post(api.clone()).header("authorization", &s).header("content-type", "application/json").body("{}")
        })
        .await;

        // Connection creation at 1x, 4x and 16x the clients, each store (each on sessions of its
        // own), in `a.rounds` rounds; in each level the two stores run back to back, the first
        // one alternating from round to round, so that both see the machine as it is then. Each
        // row is the run of median throughput: one run of a few seconds on this shared machine
        // can be off by a third either way.
        let levels = [
            (1, "connection creation", "connection creation (Redis)"),
            (4, "connection creation, 4x clients", "connection creation (Redis), 4x clients"),
            (16, "connection creation, 16x clients", "connection creation (Redis), 16x clients"),
        ];
        let mut memory_runs: Vec<Vec<Report>> = levels.iter().map(|_| Vec::new()).collect();
        let mut redis_runs: Vec<Vec<Report>> = levels.iter().map(|_| Vec::new()).collect();
        for round in 0..a.rounds {
            let mut line = format!("round {}:", round + 1);
            for (level, &(times, memory_name, redis_name)) in levels.iter().enumerate() {
                let busy = times * a.clients;
                let redis_first = round % 2 == 1;
                for redis_turn in [redis_first, !redis_first] {
                    match (redis_turn, &targets.redis) {
                        (true, Some((redis_url, redis_secret))) => {
                            let r = connections(redis_name, &a, busy, &client, redis_url, redis_secret).await;
                            line += &format!(" Redis@{busy} {:.0}", r.rps);
                            redis_runs[level].push(r);
                        }
                        (true, None) => {}
                        (false, _) if a.only_redis => {}
                        (false, _) => {
                            let r = connections(memory_name, &a, busy, &client, url, secret).await;
                            line += &format!(" memory@{busy} {:.0}", r.rps);
                            memory_runs[level].push(r);
                        }
                    }
                }
            }
            println!("{line}");
        }
        let memory_rows: Vec<Report> = memory_runs.into_iter().filter_map(median).collect();
        let redis_rows: Vec<Report> = redis_runs.into_iter().filter_map(median).collect();

        if let Some(conn) = memory_rows.first() {
            conn.print(Some(base.rps));
        }
        sess.print(Some(base.rps));
        // A store's capacity is the best of its levels: the Redis store answers after a round trip,
        // so its peak needs more calls in flight than the in-memory store's.
        let peak = |rows: &[Report]| rows.iter().map(|r| r.rps).fold(0.0, f64::max);
        let conn_rps = peak(&memory_rows);
        // Without in-memory levels (`--only-redis`) there is no goal to read and no ratio to give.
        let with_memory = !memory_rows.is_empty();
        if with_memory {
            println!(
                "goal: >= 20000 connection creations/s on this machine (peak of the levels, {conn_rps:.0}): {}",
                if conn_rps >= 20_000.0 { "MET" } else { "NOT MET" }
            );
        }
        for (i, &(times, ..)) in levels.iter().enumerate() {
            let memory = memory_rows.get(i);
            if i > 0
                && let Some(memory) = memory
            {
                memory.print(Some(base.rps));
            }
            // Without Redis, the in-memory rows alone; without in-memory, the Redis rows alone.
            let Some(in_redis) = redis_rows.get(i) else { continue };
            in_redis.print(Some(base.rps));
            let Some(memory) = memory else { continue };
            println!(
                "redis/in-memory connection creation, {} clients: {:.2} ({:.0} / {:.0} req/s)",
                times * a.clients,
                in_redis.rps / memory.rps.max(1.0),
                in_redis.rps,
                memory.rps
            );
        }
        if !redis_rows.is_empty() && with_memory {
            let (peak_redis, peak_memory) = (peak(&redis_rows), conn_rps);
            let ratio = peak_redis / peak_memory.max(1.0);
            println!(
                "redis/in-memory peak connection creation: {ratio:.2} ({peak_redis:.0} / {peak_memory:.0} req/s, \
                 medians of {} rounds); goal >= 0.6: {}",
                a.rounds,
                if ratio >= 0.6 { "MET" } else { "NOT MET" }
            );
        }
        if let Some(url) = &store_redis_url {
            // The stores alone, without HTTP: what the group commit itself sustains.
            let callers = 4 * a.clients;
            let memory = store_load(&a, callers, Arc::new(MemoryStore::new())).await;
            match RedisStore::connect(url, "store-bench:").await {
                Ok(store) => {
                    let in_redis = store_load(&a, callers, Arc::new(store)).await;
                    println!(
                        "store alone, {callers} callers: memory {memory:.0} / Redis {in_redis:.0} connection creations/s \
                         (ratio {:.2})",
                        in_redis / memory.max(1.0)
                    );
                }
                Err(e) => println!("store alone: cannot connect to Redis: {e}"),
            }
        }
    });
    drop(redis);
}

/// Connection creations per second by `callers` tasks calling `store` directly, on `a.sessions`
/// sessions, for `a.seconds`.
async fn store_load(a: &Args, callers: usize, store: Arc<dyn Store>) -> f64 {
    let sessions: Vec<SessionId> = (0..a.sessions).map(|_| RandomIds.session_id()).collect();
    for id in &sessions {
        store.create_session(Session::new(id.clone(), 0, SessionProperties::default())).await.unwrap();
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for i in 0..callers {
        let (store, session) = (store.clone(), sessions[i % sessions.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let c = Connection::pending(
                    RandomIds.connection_id(),
                    session.clone(),
                    0,
                    ConnectionProperties::default(),
                    None,
                );
                if store.create_connection(c, RandomIds.token_id()).await.is_ok() {
                    n += 1;
                }
            }
            n
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t.await.unwrap_or(0);
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    for id in &sessions {
        let _ = store.remove_session(id).await;
    }
    rate
}

/// Creates `a.sessions` sessions on the server at `url`, then loads connection creation on them.
async fn connections(
    name: &'static str,
    a: &Args,
    clients: usize,
    client: &reqwest::Client,
    url: &str,
    secret: &str,
) -> Report {
    let api = format!("{url}/openvidu/api/sessions");
    for i in 0..a.sessions {
        client
            .post(&api)
            .basic_auth("OPENVIDUAPP", Some(secret))
            .json(&serde_json::json!({"customSessionId": format!("bench{clients}x{i}")}))
            .send()
            .await
            .unwrap();
    }
    // Per-request work in the generator is kept to the minimum: URLs and the auth header
    // are made once.
    let auth = format!("Basic {}", base64_auth(secret));
    let urls: Vec<reqwest::Url> =
        (0..a.sessions).map(|i| format!("{api}/bench{clients}x{i}/connection").parse().unwrap()).collect();
    let sessions = a.sessions;
    let report = load(name, a, clients, client.clone(), move |c, n| {
        c.post(urls[n % sessions].clone())
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body("{\"role\":\"PUBLISHER\",\"data\":\"bench\"}")
    })
    .await;
    // Closed, so that every run starts on empty sessions, whatever ran before it.
    for i in 0..a.sessions {
        let _ = client.delete(format!("{api}/bench{clients}x{i}")).basic_auth("OPENVIDUAPP", Some(secret)).send().await;
    }
    report
}

/// `base64("OPENVIDUAPP:<secret>")`.
fn base64_auth(secret: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{secret}"))
}

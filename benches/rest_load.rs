//! REST load harness: concurrent clients creating connections (and sessions) against an
//! in-process server over loopback HTTP/1.1 keep-alive, printing requests/s and p50/p99 latency.
//!
//! Run with `cargo bench --bench rest_load` (add `-- --seconds 10 --clients 64` to change the
//! load). The baseline is a trivial axum route on the same stack, measured in the same run with
//! the same client, so the ratio says what the OpenVidu logic costs over bare HTTP on this
//! (noisy, shared) machine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openvidu::server::Server;

/// The same allocator as the `openvidu-server` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    seconds: u64,
    clients: usize,
    sessions: usize,
}

fn args() -> Args {
    let mut a = Args { seconds: 5, clients: 32, sessions: 16 };
    let v: Vec<String> = std::env::args().collect();
    for w in v.windows(2) {
        match w[0].as_str() {
            "--seconds" => a.seconds = w[1].parse().unwrap_or(a.seconds),
            "--clients" => a.clients = w[1].parse().unwrap_or(a.clients),
            "--sessions" => a.sessions = w[1].parse().unwrap_or(a.sessions),
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
async fn load<F>(name: &'static str, a: &Args, client: reqwest::Client, make: F) -> Report
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..a.clients {
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

fn main() {
    let a = args();
    // The server gets its own runtime and threads, like a separate process would.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let server = Server::builder().https(false).configure(|c| c.garbage_interval = None).start().await.unwrap();
            // The baseline: the same HTTP stack with no OpenVidu logic behind it.
            let baseline = axum::Router::new().route("/baseline", axum::routing::post(|| async { "{\"ok\":true}" }));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let baseline_url = format!("http://{}/baseline", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, baseline).await });
            tx.send((server.url().to_owned(), server.secret().to_owned(), baseline_url)).unwrap();
            std::future::pending::<()>().await;
            drop(server);
        });
    });
    let (url, secret, baseline_url) = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(a.clients).build().unwrap();
        println!(
            "REST load: {} clients, {} s per scenario, {} sessions; {} cores",
            a.clients,
            a.seconds,
            a.sessions,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        let baseline_url: reqwest::Url = baseline_url.parse().unwrap();
        let base = load("baseline (bare axum POST)", &a, client.clone(), move |c, _| {
            c.post(baseline_url.clone()).header("content-type", "application/json").body("{}")
        })
        .await;
        base.print(None);

        let api = format!("{url}/openvidu/api/sessions");
        for i in 0..a.sessions {
            client
                .post(&api)
                .basic_auth("OPENVIDUAPP", Some(&secret))
                .json(&serde_json::json!({"customSessionId": format!("bench{i}")}))
                .send()
                .await
                .unwrap();
        }
        // Per-request work in the generator is kept to the minimum: URLs and the auth header
        // are made once.
        let auth = format!("Basic {}", base64_auth(&secret));
        let urls: Vec<reqwest::Url> =
            (0..a.sessions).map(|i| format!("{api}/bench{i}/connection").parse().unwrap()).collect();
        let (s, sessions) = (auth.clone(), a.sessions);
        let conn = load("connection creation", &a, client.clone(), move |c, n| {
            c.post(urls[n % sessions].clone())
                .header("authorization", &s)
                .header("content-type", "application/json")
                .body("{\"role\":\"PUBLISHER\",\"data\":\"bench\"}")
        })
        .await;
        conn.print(Some(base.rps));

        let api: reqwest::Url = format!("{url}/openvidu/api/sessions").parse().unwrap();
        let s = auth.clone();
        let sess = load("session creation", &a, client.clone(), move |c, _| {
            c.post(api.clone()).header("authorization", &s).header("content-type", "application/json").body("{}")
        })
        .await;
        sess.print(Some(base.rps));
        println!(
            "goal: >= 20000 connection creations/s on this machine: {}",
            if conn.rps >= 20_000.0 { "MET" } else { "NOT MET" }
        );
    });
}

/// `base64("OPENVIDUAPP:<secret>")`.
fn base64_auth(secret: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("OPENVIDUAPP:{secret}"))
}

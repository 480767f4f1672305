//! `create_connection` throughput of the in-memory store and of the Redis store: 32 concurrent
//! tasks for 3 s each, each task filling its own sessions of 50 connections.
//!
//! ```text
//! cargo run --release -p openvidu-server --example store_throughput
//! ```
//!
//! Starts its own `redis-server` (no persistence) on a free loopback port, or uses `REDIS_URL`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openvidu_core::id::{IdGenerator, RandomIds};
use openvidu_core::model::{Connection, ConnectionProperties, Session, SessionProperties};
use openvidu_server::store::{MemoryStore, RedisStore, Store, StoreError};

const TASKS: usize = 32;
const RUN: Duration = Duration::from_secs(3);
const CONNECTIONS_PER_SESSION: usize = 50;

/// A `redis-server` child, killed on drop.
struct RedisChild(Child);

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<(RedisChild, String), String> {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run redis-server: {e}"))?;
    let child = RedisChild(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if Instant::now() > deadline {
            return Err(format!("redis-server did not listen on {addr}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, format!("redis://{addr}")))
}

/// `create_connection` calls per second over [`RUN`] with [`TASKS`] tasks.
async fn measure(store: Arc<dyn Store>) -> Result<f64, StoreError> {
    let ids: Arc<dyn IdGenerator> = Arc::new(RandomIds);
    let ops = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, ids, ops) = (store.clone(), ids.clone(), ops.clone());
            tokio::spawn(async move {
                while started.elapsed() < RUN {
                    let sid = ids.session_id();
                    store.create_session(Session::new(sid.clone(), 1, SessionProperties::default())).await?;
                    for _ in 0..CONNECTIONS_PER_SESSION {
                        let conn = Connection::pending(
                            ids.connection_id(),
                            sid.clone(),
                            2,
                            ConnectionProperties::default(),
                            Some(format!("wss://localhost:4443?sessionId={sid}&token={}", ids.token_id())),
                        );
                        store.create_connection(conn, ids.token_id()).await?;
                        ops.fetch_add(1, Ordering::Relaxed);
                        if started.elapsed() >= RUN {
                            break;
                        }
                    }
                }
                Ok::<(), StoreError>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| StoreError::Unavailable(e.to_string()))??;
    }
    Ok(ops.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> ExitCode {
    let (_redis, url) = match std::env::var("REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) => match start_redis() {
            Ok((child, url)) => (Some(child), url),
            Err(e) => {
                eprintln!("store_throughput: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let memory = match measure(Arc::new(MemoryStore::new())).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("store_throughput: memory store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let redis = match RedisStore::connect(&url, "bench:").await {
        Ok(store) => measure(Arc::new(store)).await,
        Err(e) => Err(e),
    };
    let redis = match redis {
        Ok(v) => v,
        Err(e) => {
            eprintln!("store_throughput: redis store: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("create_connection, {TASKS} tasks, {} s each, sessions of {CONNECTIONS_PER_SESSION}:", RUN.as_secs());
    println!("  MemoryStore: {memory:>12.0} ops/s");
    println!("  RedisStore:  {redis:>12.0} ops/s");
    println!("  memory / redis: {:.1}x", memory / redis);
    ExitCode::SUCCESS
}

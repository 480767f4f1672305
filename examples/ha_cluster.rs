//! A small high-availability cluster on one machine: a `redis-server` (Debian's, started on a
//! free port), two media nodes and three masters in this process, all sharing the Redis; six
//! participant bots join one session through different masters, publish and subscribe to each
//! other; the example prints which master holds each participant's socket and how the media
//! nodes are loaded, then checks everyone receives everyone.
//!
//! Run with `cargo run --example ha_cluster --features participant`. Expect:
//!
//! ```text
//! redis-server on 127.0.0.1:PORT
//! media node media_… at http://127.0.0.1:PORT
//! media node media_… at http://127.0.0.1:PORT
//! master 0 at http://127.0.0.1:PORT
//! …
//! con_… joined through master 0 (http://127.0.0.1:PORT)
//! …
//! media node media_…: 1 session(s), 6 publisher(s), 30 subscriber(s)
//! media node media_…: 0 session(s), 0 publisher(s), 0 subscriber(s)
//! every participant receives the 5 others: yes
//! ```

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openvidu::client::participant::{JoinOptions, MediaSource, Participant, PublishOptions};
use openvidu::client::{OpenVidu, SessionProperties};
use openvidu::server::Server;
use openvidu_media::{LocalMediaNode, MediaConfig, MediaNode};

const SECRET: &str = "CLUSTER_SECRET";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server (Debian package redis-server) is needed: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = redis.kill();
            return Err("redis-server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("redis-server on 127.0.0.1:{port}");
    let result = run(&format!("redis://127.0.0.1:{port}")).await;
    let _ = redis.kill();
    let _ = redis.wait();
    result
}

async fn run(redis_url: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Two media nodes, each serving its control API on a free port.
    let mut nodes = Vec::new();
    let mut node_urls = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let node = Arc::new(LocalMediaNode::new(MediaConfig::default(), tx)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let server = openvidu_media_node::serve(node.clone(), rx, listener, SECRET.into())?;
        println!("media node {} at {}", node.id(), server.url());
        node_urls.push(server.url());
        nodes.push((node, server));
    }
    // Three masters on the same Redis and media nodes.
    let mut masters = Vec::new();
    for i in 0..3 {
        let (redis, media) = (redis_url.to_owned(), node_urls.clone());
        let master = Server::builder()
            .https(false)
            .secret(SECRET)
            .configure(move |c| {
                c.ha_redis_url = Some(redis);
                c.media_nodes = media;
            })
            .start()
            .await?;
        println!("master {i} at {}", master.url());
        masters.push(master);
    }
    // Six participants of one session, joining through masters 0, 1, 2, 0, 1, 2.
    let session_id = "cluster-demo";
    OpenVidu::new(masters[0].url(), SECRET)?
        .create_session(SessionProperties::builder().custom_session_id(session_id).build())
        .await?;
    let mut bots = Vec::new();
    for i in 0..6 {
        let master = &masters[i % masters.len()];
        let rest = OpenVidu::new(master.url(), SECRET)?;
        rest.fetch().await?;
        let session = rest.active_sessions().into_iter().find(|s| s.id().as_str() == session_id).ok_or("no session")?;
        let token = session.create_connection(Default::default()).await?.token.ok_or("no token")?;
        let bot = Participant::join(&token, JoinOptions::new()).await?;
        bot.publish(PublishOptions::new(MediaSource::Synthetic { fps: 10, packet_size: 200 })).await?;
        println!("{} joined through master {} ({})", bot.connection_id(), i % masters.len(), master.url());
        bots.push(bot);
    }
    for bot in &bots {
        bot.subscribe_all().await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let everyone = |bots: &[Participant]| {
        bots.iter().all(|b| b.stats().iter().filter(|s| s.packets() > 0).count() == bots.len() - 1)
    };
    while !everyone(&bots) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (node, _) in &nodes {
        let load = node.load().await;
        println!(
            "media node {}: {} session(s), {} publisher(s), {} subscriber(s)",
            node.id(),
            load.routers,
            load.publishers,
            load.subscribers
        );
    }
    let ok = everyone(&bots);
    println!("every participant receives the {} others: {}", bots.len() - 1, if ok { "yes" } else { "no" });
    for bot in &bots {
        let _ = bot.leave().await;
    }
    if ok { Ok(()) } else { Err("media did not reach everyone".into()) }
}

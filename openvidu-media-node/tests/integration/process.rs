//! The `openvidu-media-node` binary as a process.

use std::process::Stdio;

use openvidu_core::id::SessionId;
use openvidu_media::{MediaNode, RemoteMediaNode};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::control::http_get;
use crate::support::*;

/// The child process, killed and reaped on drop.
struct Child(tokio::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_address_serves_and_stops_on_sigterm() {
    let mut child = Child(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_openvidu-media-node"))
            .env("OPENVIDU_SECRET", SECRET)
            .env("MEDIA_NODE_PORT", "0")
            .env("MEDIA_NODE_ADDRESS", "127.0.0.1")
            .env("MEDIA_NODE_ID", "media_Proc")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line =
        tokio::time::timeout(DEADLINE, lines.next_line()).await.expect("readiness line in time").unwrap().unwrap();
    let url = line.strip_prefix("openvidu-media-node listening on ").unwrap_or_else(|| panic!("{line:?}"));
    let addr: std::net::SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    assert_ne!(addr.port(), 0);

    let (status, body) = http_get(addr, "/media-node/health", &[]).await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["id"], "media_Proc");

    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let remote = RemoteMediaNode::connect(url, SECRET, tx).await.unwrap();
    assert_eq!(remote.id().as_str(), "media_Proc");
    remote.create_router(&SessionId::parse("ses_P").unwrap()).await.unwrap();
    assert_eq!(remote.load().await.routers, 1);

    let pid = child.0.id().unwrap().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(DEADLINE, child.0.wait()).await.expect("stops on SIGTERM").unwrap();
    assert!(status.success(), "{status:?}");
    assert!(tokio::time::timeout(DEADLINE, lines.next_line()).await.unwrap().unwrap().is_none(), "one line only");
    // The master sees the node go.
    eventually("the remote node notices", || !remote.is_connected()).await;
}

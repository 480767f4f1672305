//! `openvidu-media-node`: a media node process. Settings come from environment variables or the
//! same as flags (`openvidu-media-node --help`, see `openvidu_media_node::config`).
//!
//! Prints exactly one line to stdout, `openvidu-media-node listening on http://ADDR:PORT`, once
//! the control API accepts connections; logs go to stderr (`RUST_LOG`, default `info`). Stops on
//! SIGTERM or Ctrl-C.

use std::sync::Arc;

use clap::Parser;
use openvidu_media::MediaWorker;
use openvidu_media_node::config::{Args, NodeConfig};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(openvidu_media::DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match NodeConfig::try_from(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("openvidu-media-node: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let (events, events_rx) = tokio::sync::mpsc::unbounded_channel();
    // The media plane on a thread of its own; the control API on the main runtime.
    let node = match MediaWorker::start(config.media.clone(), events) {
        Ok(node) => node,
        Err(e) => {
            eprintln!("openvidu-media-node: cannot start the media engine: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let node = Arc::new(match config.id.clone() {
        Some(id) => node.with_id(id),
        None => node,
    });
    let listener = match tokio::net::TcpListener::bind((config.address, config.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("openvidu-media-node: cannot listen on {}:{}: {e}", config.address, config.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    let server = match openvidu_media_node::serve(node.clone(), events_rx, listener, config.secret.clone()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openvidu-media-node: cannot serve: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(node_id = %openvidu_media::MediaNode::id(&*node), udp_port = ?node.udp_port(), "media node ready");
    // The one line scripts wait for (the port may have been chosen by the OS).
    println!("openvidu-media-node listening on {}", server.url());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
        _ = wait_sigterm() => tracing::info!("stopping (SIGTERM)"),
    }
    server.shutdown().await;
    std::process::ExitCode::SUCCESS
}

async fn wait_sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

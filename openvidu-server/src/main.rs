//! `openvidu-server`: the single-process master node. Settings come from OpenVidu's environment
//! variables or the same as flags (`openvidu-server --help`).

use clap::Parser;
use openvidu_server::{Args, Config, Server};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(openvidu_media::DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::try_from(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("openvidu-server: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let server = match Server::builder().config(config).start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("openvidu-server: cannot start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The one line scripts wait for (the port may have been chosen by the OS).
    println!("openvidu-server listening on {}", server.url());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("stopping");
            server.shutdown(std::time::Duration::from_secs(5)).await;
        }
        _ = wait_sigterm() => {
            tracing::info!("stopping (SIGTERM)");
            server.shutdown(std::time::Duration::from_secs(5)).await;
        }
    }
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

//! # openvidu
//!
//! openvidu-rs: an OpenVidu 2.20-compatible videoconference platform as an embeddable Rust SDK.
//! This facade re-exports the member crates behind features:
//!
//! - `openvidu::core` — ids, model, wire formats and rules (always on).
//! - `openvidu::client` — the REST client, the Rust twin of openvidu-java-client
//!   (feature `client`, enabled by default).
//! - `openvidu::server` — the master node, to run or embed (feature `server`, enabled by default).
//! - `openvidu::client::participant` — a participant bot that joins sessions and publishes and
//!   subscribes WebRTC media (feature `participant`, off by default).
//!
//! ```no_run
//! # #[cfg(feature = "server")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = openvidu::server::Server::builder().https(false).start().await?;
//! println!("{} (secret {})", server.url(), server.secret());
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use openvidu_core as core;

#[cfg(feature = "client")]
pub use openvidu_client as client;

#[cfg(feature = "server")]
pub use openvidu_server as server;

//! # openvidu-server
//!
//! The openvidu-rs master node: OpenVidu 2.20's REST API, webhooks, CDR and session state, as a
//! library first. The `openvidu-server` binary is a thin `main` over [`Server::builder`].
//! It is not the media engine (that is `openvidu-media`) and holds no state another master
//! could not rebuild from its [`store::Store`].
//!
//! ## How to start
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let server = openvidu_server::Server::builder().secret("MY_SECRET").https(false).start().await?;
//! println!("REST API at {}/openvidu/api with secret {}", server.url(), server.secret());
//! drop(server); // stops it
//! # Ok(()) }
//! ```
//!
//! ## Where we differ from OpenVidu on purpose
//!
//! - `PATCH …/connection/{id}` and `GET /openvidu/api/health` (Pro routes) are served.
//! - Webhook posts that fail with a transport error or a 5xx are retried (5 attempts in all).
//! - The 401 challenge realm is `OpenVidu`.
#![deny(missing_docs)]

pub mod cdr;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod events;
pub mod media_watch;
pub mod participants;
pub mod recordings;
pub mod rest;
pub mod server;
pub mod service;
pub mod signalling;
pub mod store;
pub mod tls;
pub mod webhook;

pub use config::{Args, Config, ConfigError};
pub use server::{RunningServer, Server, ServerBuilder, ServerError};

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<service::OpenViduService>();
    is::<store::MemoryStore>();
    is::<ServerError>();
}

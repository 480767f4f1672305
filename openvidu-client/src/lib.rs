//! # openvidu-client
//!
//! An async client of the REST API of OpenVidu 2.20 servers — openvidu-rs's own server or the
//! original Java one: the Rust twin of `openvidu-java-client` 2.20. It creates sessions and
//! connections, records, signals and evicts, and keeps a local cache of the sessions it knows,
//! refreshed by `fetch`. It is not a participant: it never joins a session or handles media
//! (the optional `participant` module, feature `participant`, does).
//!
//! - [`OpenVidu`]: the entry point for one server; sessions, recordings, signals, config.
//! - [`Session`]: a cached session; its connections, tokens, evictions.
//! - [`Connection`], [`Recording`], [`Publisher`]: what the server reports, as openvidu-core's
//!   model (a connection's client address is [`Connection::ip`]).
//! - Properties with builders: [`SessionProperties`], [`ConnectionProperties`],
//!   [`RecordingProperties`], [`KurentoOptions`], [`TokenOptions`], and [`SignalOptions`].
//! - [`Error`]: an unexpected HTTP status ([`Error::status`]) or a transport failure.
//!
//! ## How to start
//!
//! Make one [`OpenVidu`] per server and reuse it (it pools connections; clones are cheap). Then,
//! in the domain's order: create a [`Session`], create a [`Connection`] in it for each
//! participant and hand its token to that participant's browser; record the session once people
//! have joined; close it when done.
//!
//! ```no_run
//! use openvidu_client::{ConnectionProperties, OpenVidu, OpenViduRole, SessionProperties};
//!
//! # async fn run() -> Result<(), openvidu_client::Error> {
//! let openvidu = OpenVidu::new("https://localhost:4443", "MY_SECRET")?;
//!
//! let session = openvidu
//!     .create_session(SessionProperties::builder().custom_session_id("daily-standup").build())
//!     .await?;
//! let connection = session
//!     .create_connection(
//!         ConnectionProperties::builder().role(OpenViduRole::Publisher).data("alice").build(),
//!     )
//!     .await?;
//! println!("token for alice: {}", connection.token.as_deref().unwrap_or_default());
//!
//! // Later: who joined?
//! session.fetch().await?;
//! for c in session.active_connections() {
//!     println!("{} joined from {:?}", c.id, c.ip());
//! }
//! session.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ### TLS
//!
//! Certificates are verified against the system's roots. For a server with a self-signed
//! certificate or a private CA, trust it with [`OpenViduBuilder::root_certificate_pem`]; during
//! development [`OpenViduBuilder::danger_accept_invalid_certs`] turns verification off.
//!
//! ```no_run
//! # fn run() -> Result<(), openvidu_client::Error> {
//! let pem = std::fs::read("openvidu.pem").expect("the server's certificate");
//! let openvidu = openvidu_client::OpenVidu::builder("https://10.0.0.5:4443", "MY_SECRET")
//!     .root_certificate_pem(&pem)
//!     .timeout(std::time::Duration::from_secs(10))
//!     .build()?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Optional features
//!
//! None. TLS is always rustls with the `ring` crypto provider, which the client installs as the
//! process default when it is built unless another provider was installed first.
//!
//! ## Where this client differs from the Java client on purpose
//!
//! - Ids are types ([`SessionId`], [`ConnectionId`], [`StreamId`], [`RecordingId`]), not strings.
//! - Certificates are verified unless [`OpenViduBuilder::danger_accept_invalid_certs`] is set
//!   (the Java client trusts any certificate).
//! - Basic authentication is sent with every request, as the Node client does (the Java client
//!   waits for a 401 challenge).
//! - Only `scheme://host[:port]` of the URL is kept, as the Node client does.
//! - A 409 on [`OpenVidu::create_session`] fetches the existing session, so its real creation
//!   time and properties are cached (the Java client adopts the id only).
//! - `fetch` compares connections and streams regardless of the order the server lists them in.
//! - [`Session::update_connection`] takes the role and record flag directly (the only
//!   properties the PATCH route changes).
//!
//! ## Errors, panics, unwraps
//!
//! Every call returns `Result<_, Error>`. Nothing the server sends can make the client panic:
//! malformed answers become [`Error::Decode`]. Neither errors nor `Debug` output contain the
//! secret.
#![deny(missing_docs)]

mod cache;
mod client;
mod error;
mod options;
#[cfg(feature = "participant")]
pub mod participant;
mod session;

pub use client::{DEFAULT_TIMEOUT, OpenVidu, OpenViduBuilder};
pub use error::Error;
pub use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId, TypeOfVideo};
pub use openvidu_core::model::{
    ActiveInfo, Connection, ConnectionProperties, ConnectionPropertiesBuilder, ConnectionStatus, ConnectionType,
    KurentoOptions, KurentoOptionsBuilder, MediaMode, MediaOptions, Millis, OpenViduRole, OutputMode, Publisher,
    Recording, RecordingLayout, RecordingMode, RecordingProperties, RecordingPropertiesBuilder, RecordingStatus,
    SessionProperties, SessionPropertiesBuilder, Subscriber, VideoCodec,
};
pub use options::{SignalOptions, TokenOptions, TokenOptionsBuilder};
pub use session::Session;

/// Compile-time promises: a client can be shared across tasks and threads, and its errors can
/// cross them too.
#[allow(dead_code)]
fn _assert_send_sync() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync_clone::<OpenVidu>();
    send_sync_clone::<Session>();
    send_sync::<Error>();
}

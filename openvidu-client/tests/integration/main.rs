//! Integration tests of openvidu-client against the real openvidu-rs server, started in-process
//! per test on 127.0.0.1 with a free port and its own recordings folder.
//!
//! The server cannot activate connections yet (no participant joins), so sessions are never
//! active: the tests cover every route with the answers a session without participants gets.

mod connections;
mod errors;
mod recordings;
mod sessions;
mod signals;
mod tls;

use openvidu_client::OpenVidu;
use openvidu_server::{RunningServer, Server};
use tempfile::TempDir;

/// The secret every test server uses.
pub const SECRET: &str = "MY_SECRET";

/// A running server, its recordings folder and a client of it.
pub struct Harness {
    /// The server; dropping it stops it.
    pub server: RunningServer,
    /// `OPENVIDU_RECORDING_PATH`.
    pub recordings: TempDir,
    /// A client with the right secret.
    pub client: OpenVidu,
}

/// How to start a test server.
#[derive(Clone, Copy, Default)]
pub struct Setup {
    /// Serve HTTPS with a self-signed certificate.
    pub https: bool,
    /// Enable recording (`OPENVIDU_RECORDING`).
    pub recording: bool,
}

impl Harness {
    /// A plain-HTTP server with recording enabled.
    pub async fn start() -> Self {
        Self::with(Setup { https: false, recording: true }).await
    }

    /// A server set up as asked, and a client trusting its certificate.
    pub async fn with(setup: Setup) -> Self {
        let recordings = tempfile::tempdir().expect("a temporary folder");
        let server = Server::builder()
            .secret(SECRET)
            .https(setup.https)
            .recording(setup.recording)
            .recording_path(recordings.path())
            .start()
            .await
            .expect("the server starts");
        let mut builder = OpenVidu::builder(server.url(), server.secret());
        if let Some(pem) = server.certificate_pem() {
            builder = builder.root_certificate_pem(pem.as_bytes());
        }
        let client = builder.build().expect("a client");
        Self { server, recordings, client }
    }

    /// Another client of the same server (its own cache).
    pub fn another_client(&self) -> OpenVidu {
        let mut builder = OpenVidu::builder(self.server.url(), SECRET);
        if let Some(pem) = self.server.certificate_pem() {
            builder = builder.root_certificate_pem(pem.as_bytes());
        }
        builder.build().expect("a client")
    }
}

/// The HTTP status of a failed call, failing the test if the call succeeded or failed otherwise.
#[track_caller]
pub fn status_of<T: std::fmt::Debug>(result: Result<T, openvidu_client::Error>) -> u16 {
    match result {
        Ok(v) => panic!("expected an HTTP error, got {v:?}"),
        Err(e) => e.status().unwrap_or_else(|| panic!("expected an HTTP error, got {e:?}")),
    }
}

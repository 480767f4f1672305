//! [`OpenVidu`], the entry point, its [`OpenViduBuilder`], and the HTTP plumbing every call uses.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openvidu_core::id::{RecordingId, SessionId};
use openvidu_core::model::{Recording, RecordingProperties, SessionProperties};
use openvidu_core::wire::rest::{
    CreateSessionRequest, HealthJson, Page, RecordingJson, RecordingList, SessionJson, StartRecordingRequest,
};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::{self, Registry, SessionState, lock};
use crate::error::Error;
use crate::options::SignalOptions;
use crate::session::Session;

/// The user name of OpenVidu's HTTP Basic authentication.
const USER: &str = "OPENVIDUAPP";

/// The default request timeout, as in the Java client.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one OpenVidu server: creates sessions, records them, and keeps a local cache of
/// the sessions it knows (Java's `io.openvidu.java.client.OpenVidu`).
///
/// Cheap to clone: clones share the HTTP connection pool and the session cache. Build one per
/// server and reuse it.
#[derive(Clone)]
pub struct OpenVidu {
    inner: Arc<Inner>,
}

/// What the [`OpenVidu`] handle and its [`Session`]s share.
pub(crate) struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]`, no trailing slash.
    base: String,
    /// Never printed or logged.
    secret: String,
    /// The cached sessions.
    pub(crate) sessions: Mutex<Registry>,
}

/// Configures an [`OpenVidu`] client; start with [`OpenVidu::builder`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct OpenViduBuilder {
    url: String,
    secret: String,
    root_certificates: Vec<Vec<u8>>,
    accept_invalid_certs: bool,
    timeout: Duration,
}

impl OpenVidu {
    /// A client of the server at `url` (e.g. `https://openvidu.example.com:4443`) authenticating
    /// with `secret` (`OPENVIDU_SECRET`), with default settings: certificates verified against the
    /// system's roots, 30 s timeout. Only the scheme, host and port of `url` are kept.
    pub fn new(url: &str, secret: &str) -> Result<Self, Error> {
        Self::builder(url, secret).build()
    }

    /// A builder for a client of `url` with `secret`, to set TLS options and the timeout.
    pub fn builder(url: &str, secret: &str) -> OpenViduBuilder {
        OpenViduBuilder {
            url: url.to_owned(),
            secret: secret.to_owned(),
            root_certificates: Vec::new(),
            accept_invalid_certs: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The server's `scheme://host[:port]` this client talks to.
    pub fn url(&self) -> &str {
        &self.inner.base
    }

    /// Creates a session (`POST /openvidu/api/sessions`) and adds it to the cache.
    ///
    /// If a custom session id is given and a session with that id already exists (HTTP 409),
    /// the existing session is fetched and adopted instead, as the Java and Node clients treat a
    /// 409 as success.
    pub async fn create_session(&self, properties: SessionProperties) -> Result<Session, Error> {
        let body = CreateSessionRequest::from(&properties);
        let answer = self.inner.send_json(Method::POST, "sessions", &body).await?;
        let state = match answer.status {
            200 => SessionState::from_json(answer.json()?),
            409 if !properties.custom_session_id.is_empty() => {
                let id = SessionId::parse(&properties.custom_session_id).map_err(|_| answer.unexpected())?;
                tracing::debug!(session = %id, "session exists; adopting it");
                self.inner.get_session(&id).await?
            }
            _ => return Err(answer.unexpected()),
        };
        let shared = cache::upsert(&mut lock(&self.inner.sessions), state);
        Ok(Session::new(Arc::clone(&self.inner), shared))
    }

    /// The sessions in the local cache (no request), oldest first. [`OpenVidu::fetch`] refreshes
    /// it.
    pub fn active_sessions(&self) -> Vec<Session> {
        let mut sessions: Vec<Session> = lock(&self.inner.sessions)
            .values()
            .map(|shared| Session::new(Arc::clone(&self.inner), Arc::clone(shared)))
            .collect();
        sessions.sort_by_cached_key(|s| (s.created_at(), s.id().clone()));
        sessions
    }

    /// Refreshes the cache from the server
    /// (`GET /openvidu/api/sessions?pendingConnections=true`). Returns true iff anything changed:
    /// a new or vanished session, or any change in a session or its connections.
    ///
    /// Sessions already cached are updated in place, so existing [`Session`] handles see the
    /// new state.
    pub async fn fetch(&self) -> Result<bool, Error> {
        let page: Page<SessionJson> =
            self.inner.send(Method::GET, "sessions?pendingConnections=true").await?.require_status(200)?.json()?;
        let fresh = page.content.into_iter().map(SessionState::from_json).collect();
        let changed = cache::apply_fetch(&mut lock(&self.inner.sessions), fresh);
        tracing::debug!(changed, "fetched sessions");
        Ok(changed)
    }

    /// Starts recording `session` (`POST /openvidu/api/recordings/start`) with `properties`.
    ///
    /// Every property is sent, as the Java client does, so the session's
    /// `defaultRecordingProperties` do not apply. Typical errors: 404 unknown session, 406 the
    /// session has no participant, 409 already being recorded (or not ROUTED), 422 bad
    /// properties, 501 recording is disabled on the server.
    pub async fn start_recording(
        &self,
        session: &SessionId,
        properties: RecordingProperties,
    ) -> Result<Recording, Error> {
        let body = StartRecordingRequest::new(session.clone(), (&properties).into());
        let recording = self
            .inner
            .send_json(Method::POST, "recordings/start", &body)
            .await?
            .require_status(200)?
            .json::<RecordingJson>()?
            .into_model();
        self.inner.set_recording(session, true);
        Ok(recording)
    }

    /// Starts recording `session` with default properties and this file `name` (Java's
    /// `startRecording(sessionId, name)`).
    pub async fn start_recording_with_name(&self, session: &SessionId, name: &str) -> Result<Recording, Error> {
        self.start_recording(session, RecordingProperties::builder().name(name).build()).await
    }

    /// Stops a recording (`POST /openvidu/api/recordings/stop/{id}`). Typical errors: 404 unknown,
    /// 406 still starting.
    pub async fn stop_recording(&self, recording: &RecordingId) -> Result<Recording, Error> {
        let path = format!("recordings/stop/{recording}");
        let recording =
            self.inner.send(Method::POST, &path).await?.require_status(200)?.json::<RecordingJson>()?.into_model();
        self.inner.set_recording(&recording.session_id, false);
        Ok(recording)
    }

    /// One recording (`GET /openvidu/api/recordings/{id}`); 404 when unknown.
    pub async fn get_recording(&self, recording: &RecordingId) -> Result<Recording, Error> {
        let path = format!("recordings/{recording}");
        Ok(self.inner.send(Method::GET, &path).await?.require_status(200)?.json::<RecordingJson>()?.into_model())
    }

    /// Every recording (`GET /openvidu/api/recordings`), newest first.
    pub async fn list_recordings(&self) -> Result<Vec<Recording>, Error> {
        let list: RecordingList = self.inner.send(Method::GET, "recordings").await?.require_status(200)?.json()?;
        let mut recordings: Vec<Recording> = list.items.into_iter().map(RecordingJson::into_model).collect();
        recordings.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(recordings)
    }

    /// Deletes a stopped recording and its files (`DELETE /openvidu/api/recordings/{id}`).
    /// Typical errors: 404 unknown, 409 still recording.
    pub async fn delete_recording(&self, recording: &RecordingId) -> Result<(), Error> {
        let path = format!("recordings/{recording}");
        self.inner.send(Method::DELETE, &path).await?.require_status(204)?;
        Ok(())
    }

    /// Sends a signal to participants of `session` (`POST /openvidu/api/signal`). Typical errors:
    /// 404 unknown session, 406 no participant or a receiver that is not in the session.
    pub async fn signal(&self, session: &SessionId, signal: SignalOptions) -> Result<(), Error> {
        let body = signal.to_request(session.as_str());
        self.inner.send_json(Method::POST, "signal", &body).await?.require_status(200)?;
        Ok(())
    }

    /// The server's configuration (`GET /openvidu/api/config`), a JSON object whose keys are the
    /// configuration properties (`VERSION`, `OPENVIDU_RECORDING`, …).
    pub async fn config(&self) -> Result<serde_json::Value, Error> {
        self.inner.send(Method::GET, "config").await?.require_status(200)?.json()
    }

    /// Whether the server reports itself healthy (`GET /openvidu/api/health`): true for
    /// `{"status":"UP"}`, false for a 503 or any other status text. OpenVidu CE 2.20 has no such
    /// route (PRO only) and answers 404, which is returned as an error.
    pub async fn health(&self) -> Result<bool, Error> {
        let answer = self.inner.send(Method::GET, "health").await?;
        match answer.status {
            200 => Ok(answer.json::<HealthJson>()?.status == "UP"),
            503 => Ok(false),
            _ => Err(answer.unexpected()),
        }
    }
}

impl fmt::Debug for OpenVidu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenVidu")
            .field("url", &self.inner.base)
            .field("cached_sessions", &lock(&self.inner.sessions).len())
            .finish_non_exhaustive()
    }
}

impl OpenViduBuilder {
    /// Trusts the certificate(s) in this PEM (a custom CA, or a server's self-signed
    /// certificate) in addition to the system's roots. May be called several times.
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Self {
        self.root_certificates.push(pem.to_vec());
        self
    }

    /// Accepts any server certificate, valid or not. **For development only**: anyone on the
    /// path can then read the secret. (The Java client always does this; this client does not
    /// unless asked.)
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// The timeout of each request, from connecting to reading the whole answer (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The client. Fails on a URL that is not `http(s)://host[:port]…` or an unreadable
    /// certificate.
    pub fn build(self) -> Result<OpenVidu, Error> {
        let base = base_url(&self.url)?;
        // reqwest is built with `rustls-no-provider`: pick ring unless the process already did.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder =
            reqwest::Client::builder().timeout(self.timeout).tls_danger_accept_invalid_certs(self.accept_invalid_certs);
        for pem in &self.root_certificates {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("unreadable root certificate PEM: {e}")))?;
            if certs.is_empty() {
                return Err(Error::Config("root certificate PEM holds no certificate".into()));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(OpenVidu {
            inner: Arc::new(Inner { http, base, secret: self.secret, sessions: Mutex::new(Registry::new()) }),
        })
    }
}

impl fmt::Debug for OpenViduBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenViduBuilder")
            .field("url", &redacted(&self.url))
            .field("root_certificates", &self.root_certificates.len())
            .field("accept_invalid_certs", &self.accept_invalid_certs)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Keeps only `scheme://host[:port]` of `url`, as the Node client does (any path, query, or
/// user info is dropped; a default port is omitted).
pub(crate) fn base_url(url: &str) -> Result<String, Error> {
    // The URL's own text is never put in an error: it might carry credentials.
    let parsed = url::Url::parse(url.trim()).map_err(|e| Error::Config(format!("invalid OpenVidu URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Config(format!("invalid OpenVidu URL: scheme {:?} is not http or https", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config("invalid OpenVidu URL: no host".into()));
    }
    Ok(parsed.origin().ascii_serialization())
}

/// `url` without its password, for debug output.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable>".to_owned(),
    }
}

/// An HTTP answer, read whole.
pub(crate) struct Answer {
    /// `GET /openvidu/api/…`, for error messages.
    route: String,
    /// The status code.
    pub(crate) status: u16,
    body: Vec<u8>,
}

impl Answer {
    /// This answer if its status is `expected`, else the [`Error::Http`] it stands for.
    pub(crate) fn require_status(self, expected: u16) -> Result<Self, Error> {
        if self.status == expected { Ok(self) } else { Err(self.unexpected()) }
    }

    /// The [`Error::Http`] this answer stands for.
    pub(crate) fn unexpected(&self) -> Error {
        Error::from_status(self.status, &self.body)
    }

    /// The body as JSON.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode { route: self.route.clone(), source })
    }
}

impl Inner {
    /// Sends a request without a body to `/openvidu/api/{path}`.
    pub(crate) async fn send(&self, method: Method, path: &str) -> Result<Answer, Error> {
        self.execute(method, path, None::<&()>).await
    }

    /// Sends `body` as JSON to `/openvidu/api/{path}`.
    pub(crate) async fn send_json<B: Serialize>(&self, method: Method, path: &str, body: &B) -> Result<Answer, Error> {
        self.execute(method, path, Some(body)).await
    }

    async fn execute<B: Serialize>(&self, method: Method, path: &str, body: Option<&B>) -> Result<Answer, Error> {
        let route = format!("{method} /openvidu/api/{path}");
        let url = format!("{}/openvidu/api/{path}", self.base);
        let mut request = self.http.request(method, url).basic_auth(USER, Some(&self.secret));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.inspect_err(|e| tracing::debug!(%route, error = %e, "request failed"))?;
        let status = response.status().as_u16();
        let body = response.bytes().await?.to_vec();
        tracing::debug!(%route, status, "OpenVidu answered");
        Ok(Answer { route, status, body })
    }

    /// `GET /openvidu/api/sessions/{id}?pendingConnections=true` as a cache state.
    pub(crate) async fn get_session(&self, id: &SessionId) -> Result<SessionState, Error> {
        let path = format!("sessions/{id}?pendingConnections=true");
        Ok(SessionState::from_json(self.send(Method::GET, &path).await?.require_status(200)?.json()?))
    }

    /// Sets the cached recording flag of `session`, if cached.
    fn set_recording(&self, session: &SessionId, recording: bool) {
        if let Some(shared) = lock(&self.sessions).get(session) {
            lock(shared).session.recording = recording;
        }
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner").field("url", &self.base).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;

//! The operations of a master node, shared by the REST API and (with the media issue) the
//! signalling: each one is a core rule plus one store operation plus the events it causes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openvidu_core::RequestError;
use openvidu_core::id::{ConnectionId, IdGenerator, RecordingId, SessionId, StreamId, Token};
use openvidu_core::model::{
    Connection, ConnectionProperties, ConnectionType, EndReason, Millis, OpenViduRole, Session, SessionProperties,
};
use openvidu_core::wire::rest::RequestDefaults;
use openvidu_core::wire::webhook::{ParticipantInfo, SessionRef, WebhookEvent};
use thiserror::Error;

use openvidu_core::model::ActiveInfo;
use openvidu_media::{MediaError, MediaNode};

mod rebuild;
mod recording;
mod streams;
use openvidu_core::wire::rpc::Notification;
pub use streams::PublishRequest;

use crate::config::Config;
use crate::events::Events;
use crate::participants::Participants;
use crate::recordings::{RecordingFolder, RecordingStoreError};

use crate::store::{ConnectionUpdate, SessionSnapshot, Store, StoreError};

/// The channel media nodes send their [`MediaEvent`](openvidu_media::MediaEvent)s into.
pub type MediaEventSender = tokio::sync::mpsc::UnboundedSender<openvidu_media::MediaEvent>;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}

/// Why an operation failed, before a transport decides how to say it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// Bad parameters.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// Unknown session.
    #[error("session {0} not found")]
    SessionNotFound(SessionId),
    /// Custom session id taken.
    #[error("session {0} already exists")]
    SessionExists(SessionId),
    /// Unknown connection.
    #[error("connection {0} not found")]
    ConnectionNotFound(ConnectionId),
    /// Unknown stream.
    #[error("stream {0} not found")]
    StreamNotFound(StreamId),
    /// The stream belongs to an IP camera: delete the connection instead.
    #[error("stream {0} belongs to an IPCAM connection")]
    IpcamStream(StreamId),
    /// Nobody joined the session yet.
    #[error("session {0} is not active")]
    SessionNotActive(SessionId),
    /// A signal names connections that are not in the session.
    #[error("signal recipients not in the session: {0:?}")]
    UnknownRecipients(Vec<String>),
    /// Recording is disabled (OPENVIDU_RECORDING=false).
    #[error("recording is disabled")]
    RecordingDisabled,
    /// Recording cannot start now (HTTP status of spec §1.4).
    #[error("recording cannot start in session {session}")]
    RecordingRefused {
        /// The session.
        session: SessionId,
        /// 406 or 409.
        status: u16,
    },
    /// Unknown recording.
    #[error("recording {0} not found")]
    RecordingNotFound(RecordingId),
    /// The recording is in progress.
    #[error("recording {0} is in progress")]
    RecordingInProgress(RecordingId),
    /// The recording is still starting (stop answers 406).
    #[error("recording {0} is starting")]
    RecordingStarting(RecordingId),
    /// The recording is not in progress (stop answers 409).
    #[error("recording {0} is not in progress")]
    RecordingNotInProgress(RecordingId),
    /// The media engine refused or failed.
    #[error("media: {0}")]
    Media(MediaError),
    /// The connection already publishes this stream.
    #[error("already publishing {0}")]
    AlreadyPublishing(StreamId),
    /// The connection publishes nothing.
    #[error("connection {0} is not publishing")]
    NotPublishing(ConnectionId),
    /// Media is not available on this node.
    #[error("{0}")]
    MediaUnavailable(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// File system failure.
    #[error("storage: {0}")]
    Io(String),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SessionNotFound(s) => Self::SessionNotFound(s),
            StoreError::SessionExists(s) => Self::SessionExists(s),
            StoreError::ConnectionNotFound(c) => Self::ConnectionNotFound(c),
            StoreError::StreamNotFound(s) => Self::StreamNotFound(s),
            other => Self::Store(other),
        }
    }
}

impl From<RecordingStoreError> for ServiceError {
    fn from(e: RecordingStoreError) -> Self {
        match e {
            RecordingStoreError::NotFound(id) => Self::RecordingNotFound(id),
            RecordingStoreError::InProgress(id) => Self::RecordingInProgress(id),
            RecordingStoreError::Io(e) => Self::Io(e.to_string()),
        }
    }
}

struct Inner {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    ids: Arc<dyn IdGenerator>,
    events: Events,
    recordings: RecordingFolder,
    public_url: String,
    ws_url: String,
    participants: Arc<Participants>,
    media: Arc<dyn MediaNode>,
    recording: recording::RecordingState,
    cluster: std::sync::OnceLock<crate::cluster::Cluster>,
    media_pool: std::sync::OnceLock<(Arc<openvidu_media::MediaNodePool>, MediaEventSender)>,
    started_at: Millis,
}

/// The master node's operations. Cheap to clone.
#[derive(Clone)]
pub struct OpenViduService {
    inner: Arc<Inner>,
}

impl OpenViduService {
    /// Services over `store`, minting ids with `ids`, emitting into `events`.
    pub fn new(
        config: Arc<Config>,
        public_url: String,
        store: Arc<dyn Store>,
        ids: Arc<dyn IdGenerator>,
        events: Events,
        media: Arc<dyn MediaNode>,
    ) -> Self {
        let ws_url = Token::ws_url_from_public_url(&public_url);
        let recordings = RecordingFolder::new(config.recording_path.clone(), public_url.clone());
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                ids,
                events,
                recordings,
                public_url,
                ws_url,
                participants: Arc::new(Participants::default()),
                media,
                recording: recording::RecordingState::default(),
                cluster: std::sync::OnceLock::new(),
                media_pool: std::sync::OnceLock::new(),
                started_at: now_ms(),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Joins this master to a cluster (once, before serving): notifications for sockets held by
    /// other masters go through its bus, and participant sockets are registered in it.
    pub fn join_cluster(&self, cluster: crate::cluster::Cluster) {
        let participants: Arc<Participants> = self.inner.participants.clone();
        self.inner.participants.set_remote(cluster.bus.clone());
        cluster.bus.attach(participants);
        let _ = self.inner.cluster.set(cluster);
    }

    /// The `life` of the JSON-RPC API: the incarnation of the service a participant joined. A
    /// master alone restarts with a new life (its participants are gone: openvidu-browser says
    /// `nodeCrashed`); a cluster keeps its life while any master lives.
    pub fn life(&self) -> u64 {
        self.cluster().map_or(self.inner.started_at, |c| c.life)
    }

    /// The cluster this master belongs to, if any.
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.inner.cluster.get()
    }

    /// The media engine this master drives (the pool of remote nodes, or the in-process node).
    pub fn media(&self) -> &Arc<dyn MediaNode> {
        &self.inner.media
    }

    /// Registers the pool of remote media nodes (`KMS_URIS`) that [`media`](Self::media) is, and
    /// the channel its nodes send their events into, so that the media-node API and the crash
    /// watcher can change it. Once, before serving.
    pub fn set_media_pool(&self, pool: Arc<openvidu_media::MediaNodePool>, events: MediaEventSender) {
        let _ = self.inner.media_pool.set((pool, events));
    }

    /// The pool of remote media nodes, when this master uses them.
    pub fn media_pool(&self) -> Option<&Arc<openvidu_media::MediaNodePool>> {
        self.inner.media_pool.get().map(|(p, _)| p)
    }

    /// The channel new remote media nodes must send their events into.
    pub fn media_events(&self) -> Option<&MediaEventSender> {
        self.inner.media_pool.get().map(|(_, tx)| tx)
    }

    /// Where this master's webhook and CDR events go.
    pub fn events(&self) -> &Events {
        &self.inner.events
    }

    /// The participants whose sockets this master holds.
    pub fn participants(&self) -> &Participants {
        &self.inner.participants
    }

    /// The public URL (`OPENVIDU_PUBLICURL` or derived).
    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// Defaults request bodies fall back to.
    pub fn request_defaults(&self) -> RequestDefaults {
        let mut d = RequestDefaults::default();
        d.forced_video_codec = self.config().forced_video_codec;
        d.allow_transcoding = self.config().allow_transcoding;
        d
    }

    /// Creates a session (POST /sessions).
    pub async fn create_session(
        &self,
        custom_id: Option<SessionId>,
        properties: SessionProperties,
    ) -> Result<Session, ServiceError> {
        let id = custom_id.unwrap_or_else(|| self.inner.ids.session_id());
        let session = Session::new(id, now_ms(), properties);
        self.inner.store.create_session(session.clone()).await?;
        tracing::info!(session_id = %session.id, "session created");
        self.inner
            .events
            .emit(WebhookEvent::SessionCreated { session: SessionRef::from(&session), timestamp: session.created_at });
        Ok(session)
    }

    /// A session and its connections.
    pub async fn session(&self, id: &SessionId) -> Result<SessionSnapshot, ServiceError> {
        self.inner.store.session(id).await?.ok_or_else(|| ServiceError::SessionNotFound(id.clone()))
    }

    /// Every session.
    pub async fn sessions(&self) -> Result<Vec<SessionSnapshot>, ServiceError> {
        Ok(self.inner.store.sessions().await?)
    }

    /// Closes a session (DELETE /sessions/{id}): evicts everyone, emits the end events.
    pub async fn close_session(&self, id: &SessionId, reason: EndReason) -> Result<(), ServiceError> {
        let snapshot =
            self.inner.store.remove_session(id).await?.ok_or_else(|| ServiceError::SessionNotFound(id.clone()))?;
        let now = now_ms();
        let session_ref = SessionRef::from(&snapshot.session);
        for c in snapshot.active_connections() {
            let evicted = Notification::ParticipantEvicted { connection_id: c.id.clone(), reason };
            self.inner.participants.notify(&c.id, &evicted);
            self.inner.participants.remove(&c.id);
            self.emit_participant_left(&session_ref, c, now, reason);
        }
        self.end_recording(id, reason, &snapshot.connections).await;
        self.session_closed(id);
        if let Err(e) = self.inner.media.close_router(id).await {
            tracing::debug!(session_id = %id, error = %e, "closing the media router");
        }
        self.inner.events.emit(WebhookEvent::SessionDestroyed {
            session: session_ref,
            timestamp: now,
            start_time: snapshot.session.created_at,
            reason,
        });
        tracing::info!(session_id = %id, ?reason, "session closed");
        Ok(())
    }

    fn emit_participant_left(&self, session: &SessionRef, c: &Connection, now: Millis, reason: EndReason) {
        if let Some(a) = &c.active {
            self.inner.events.emit(WebhookEvent::ParticipantLeft {
                session: session.clone(),
                timestamp: now,
                start_time: a.active_at,
                reason,
                participant: participant_info(c),
            });
        }
    }

    /// Creates a pending connection with its token (POST …/connection and POST /tokens).
    pub async fn create_connection(
        &self,
        session: &SessionId,
        properties: ConnectionProperties,
    ) -> Result<Connection, ServiceError> {
        if properties.connection_type == ConnectionType::Ipcam {
            return Err(ServiceError::MediaUnavailable(
                "IP cameras need a media node, which this node does not run yet".into(),
            ));
        }
        let ids = &self.inner.ids;
        let token_id = ids.token_id();
        let token =
            Token { ws_url: self.inner.ws_url.clone(), session_id: session.clone(), token_id: token_id.clone() };
        let connection =
            Connection::pending(ids.connection_id(), session.clone(), now_ms(), properties, Some(token.to_string()));
        self.inner.store.create_connection(connection.clone(), token_id).await?;
        tracing::debug!(session_id = %session, connection_id = %connection.id, "connection created");
        Ok(connection)
    }

    /// Changes a connection's role/record (PATCH …/connection/{id}).
    pub async fn update_connection(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        role: Option<OpenViduRole>,
        record: Option<bool>,
    ) -> Result<ConnectionUpdate, ServiceError> {
        Ok(self.inner.store.update_connection(session, connection, role, record).await?)
    }

    /// Force-disconnects a connection: evicts an active one, invalidates a pending one.
    pub async fn force_disconnect(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        reason: EndReason,
    ) -> Result<(), ServiceError> {
        self.remove_participant(session, connection, reason).await?;
        tracing::info!(session_id = %session, connection_id = %connection, ?reason, "connection force-disconnected");
        Ok(())
    }

    /// Uses a token (or the secret) to make a participant active: `joinRoom`.
    ///
    /// Returns the active connection and the session as the joiner finds it.
    pub async fn join(
        &self,
        session: &SessionId,
        token: Option<&str>,
        secret: Option<&str>,
        info: ActiveInfo,
    ) -> Result<(Connection, SessionSnapshot), JoinError> {
        // A session that does not exist is told before a bad token.
        self.inner.store.session(session).await?.ok_or(JoinError::SessionNotFound)?;
        let by_secret = secret.is_some_and(|s| !s.is_empty() && s == self.config().secret);
        let token_id = if by_secret {
            let mut props = ConnectionProperties::default();
            props.role = OpenViduRole::Moderator;
            let c = self.create_connection(session, props).await.map_err(|_| JoinError::SessionNotFound)?;
            c.token.as_deref().and_then(|t| Token::parse(t).ok()).map(|t| t.token_id)
        } else {
            token.and_then(|t| Token::parse(t).ok()).filter(|t| &t.session_id == session).map(|t| t.token_id)
        };
        let token_id = token_id.ok_or(JoinError::InvalidToken)?;
        let connection = match self.inner.store.activate_connection(session, &token_id, info).await {
            Ok(c) => c,
            Err(StoreError::TokenNotFound) => return Err(JoinError::InvalidToken),
            Err(StoreError::SessionNotFound(_)) => return Err(JoinError::SessionNotFound),
            Err(e) => return Err(e.into()),
        };
        // The others as they are once this connection is active, not as they were before: one
        // that joined meanwhile is told of this one here, or this one's answer lists it (it reads
        // the session after its own activation, like this).
        let snapshot = self.inner.store.session(session).await?.ok_or(JoinError::SessionNotFound)?;
        let others: Vec<ConnectionId> =
            snapshot.active_connections().map(|c| c.id.clone()).filter(|c| c != &connection.id).collect();
        if let Some(a) = &connection.active {
            let metadata = openvidu_core::wire::rpc::full_metadata(&a.client_data, &connection.properties.data);
            self.inner.participants.notify_all(
                &others,
                &Notification::ParticipantJoined { id: connection.id.clone(), created_at: a.active_at, metadata },
            );
            self.inner.events.emit(WebhookEvent::ParticipantJoined {
                session: SessionRef::from(&snapshot.session),
                timestamp: a.active_at,
                participant: participant_info(&connection),
            });
        }
        tracing::info!(session_id = %session, connection_id = %connection.id, ip = ?connection.ip(), "participant joined");
        Ok((connection, snapshot))
    }

    /// Removes a connection for `reason`: a participant leaving (`disconnect`) or evicted (any
    /// other reason), with the notifications, webhooks and the session closing when the last one
    /// goes. A pending connection is just invalidated.
    pub async fn remove_participant(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        reason: EndReason,
    ) -> Result<(), ServiceError> {
        self.release_media(session, connection, reason).await;
        let removed = self.inner.store.remove_connection(session, connection).await?;
        let participants = &self.inner.participants;
        if removed.active.is_none() {
            return Ok(());
        }
        let snapshot = self.inner.store.session(session).await?;
        let remaining: Vec<ConnectionId> =
            snapshot.iter().flat_map(|s| s.active_connections().map(|c| c.id.clone())).collect();
        participants.notify_all(
            &remaining,
            &Notification::ParticipantLeft { connection_id: removed.id.clone(), reason: Some(reason) },
        );
        if reason != EndReason::Disconnect {
            let evicted = Notification::ParticipantEvicted { connection_id: removed.id.clone(), reason };
            participants.notify(&removed.id, &evicted);
            participants.notify_all(&remaining, &evicted);
        }
        if reason == EndReason::Disconnect {
            participants.forget(&removed.id);
        } else {
            participants.remove(&removed.id);
        }
        if let Some(snap) = &snapshot {
            self.emit_participant_left(&SessionRef::from(&snap.session), &removed, now_ms(), reason);
        }
        tracing::info!(session_id = %session, connection_id = %connection, ?reason, "participant left");
        if remaining.is_empty() && self.is_recording(session) {
            // A recording keeps the session until the autostop countdown ends (spec §3.5).
            self.start_countdown(session);
        } else if remaining.is_empty() {
            // Without a recording, the last participant leaving closes the session.
            match self.close_session(session, EndReason::LastParticipantLeft).await {
                Ok(()) | Err(ServiceError::SessionNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Delivers a signal from a participant (`from`) or from the server (`None`), checking the
    /// recipients are active connections of the session.
    pub async fn send_signal(
        &self,
        session: &SessionId,
        from: Option<&ConnectionId>,
        to: &[String],
        signal_type: Option<String>,
        data: Option<String>,
    ) -> Result<(), ServiceError> {
        let snapshot = self.session(session).await?;
        if !snapshot.session.active {
            return Err(ServiceError::SessionNotActive(session.clone()));
        }
        let active: Vec<ConnectionId> = snapshot.active_connections().map(|c| c.id.clone()).collect();
        let recipients: Vec<ConnectionId> = if to.is_empty() {
            active.clone()
        } else {
            let unknown: Vec<String> =
                to.iter().filter(|t| !active.iter().any(|c| c.as_str() == t.as_str())).cloned().collect();
            if !unknown.is_empty() {
                return Err(ServiceError::UnknownRecipients(unknown));
            }
            to.iter().filter_map(|t| ConnectionId::parse(t).ok()).collect()
        };
        self.inner.participants.notify_all(
            &recipients,
            &Notification::SendMessage { data: data.clone(), signal_type: signal_type.clone(), from: from.cloned() },
        );
        let webhook_type = match (from, signal_type) {
            (Some(_), Some(t)) => t.strip_prefix("signal:").map(str::to_owned).unwrap_or(t),
            (_, t) => t.unwrap_or_default(),
        };
        self.inner.events.emit(WebhookEvent::SignalSent {
            session: SessionRef::from(&snapshot.session),
            timestamp: now_ms(),
            from: from.cloned(),
            to: recipients,
            signal_type: webhook_type,
            data: data.unwrap_or_default(),
        });
        Ok(())
    }

    /// Force-unpublishes a stream (DELETE …/stream/{id} and RPC `forceUnpublish`).
    pub async fn force_unpublish(
        &self,
        session: &SessionId,
        stream: &StreamId,
        reason: EndReason,
    ) -> Result<(), ServiceError> {
        let snapshot = self.session(session).await?;
        if !snapshot.session.active {
            return Err(ServiceError::SessionNotActive(session.clone()));
        }
        let owner = snapshot
            .connections
            .iter()
            .find(|c| c.publishers.iter().any(|p| &p.stream_id == stream))
            .ok_or_else(|| ServiceError::StreamNotFound(stream.clone()))?;
        if owner.properties.connection_type == ConnectionType::Ipcam {
            return Err(ServiceError::IpcamStream(stream.clone()));
        }
        self.unpublish(session, stream, reason).await
    }

    /// Removes never-joined sessions older than the garbage threshold. OpenVidu CE emits no
    /// webhook for them, and neither do we.
    pub async fn collect_garbage(&self) -> Result<Vec<Session>, ServiceError> {
        let threshold = self.config().garbage_threshold.as_millis() as Millis;
        let removed = self.inner.store.remove_inactive_sessions(now_ms().saturating_sub(threshold)).await?;
        for s in &removed {
            tracing::info!(session_id = %s.id, "garbage collector removed a never-joined session");
        }
        Ok(removed)
    }
}

fn participant_info(c: &Connection) -> ParticipantInfo {
    let a = c.active.clone().unwrap_or_else(|| ActiveInfo::new(0, None, String::new(), String::new()));
    ParticipantInfo {
        connection_id: c.id.clone(),
        location: a.location,
        ip: a.ip,
        platform: a.platform,
        client_data: a.client_data,
        server_data: c.properties.data.clone(),
    }
}

/// Why `joinRoom` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JoinError {
    /// No such session (RPC 202).
    #[error("session not found")]
    SessionNotFound,
    /// Token invalid, of another session, or already used (RPC 401).
    #[error("token invalid or already used")]
    InvalidToken,
    /// The store failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for JoinError {
    fn from(e: StoreError) -> Self {
        Self::Service(e.into())
    }
}

//! [`Session`]: a handle on one cached session.

use std::fmt;
use std::sync::Arc;

use openvidu_core::id::{ConnectionId, SessionId, StreamId};
use openvidu_core::model::{
    Connection, ConnectionProperties, ConnectionStatus, Millis, OpenViduRole, SessionProperties,
};
use openvidu_core::wire::rest::{ConnectionJson, CreateConnectionRequest, TokenJson, UpdateConnectionRequest};
use reqwest::Method;

use crate::cache::{self, SharedState, lock};
use crate::client::Inner;
use crate::error::Error;
use crate::options::TokenOptions;

/// A session of the server as this client last saw it (Java's `Session`): its properties and
/// connections, plus the calls that act on it.
///
/// Handles are cheap clones that share one cached state with [`crate::OpenVidu`]'s cache:
/// [`crate::OpenVidu::fetch`], [`Session::fetch`] and every mutating call update what all
/// handles of this session see. The getters read the cache and never send a request.
#[derive(Clone)]
pub struct Session {
    id: SessionId,
    inner: Arc<Inner>,
    state: SharedState,
}

impl Session {
    pub(crate) fn new(inner: Arc<Inner>, state: SharedState) -> Self {
        let id = lock(&state).session.id.clone();
        Self { id, inner, state }
    }

    /// The session id.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// When the session was created (ms since the Unix epoch).
    pub fn created_at(&self) -> Millis {
        lock(&self.state).session.created_at
    }

    /// The properties the session was created with.
    pub fn properties(&self) -> SessionProperties {
        lock(&self.state).session.properties.clone()
    }

    /// Whether a recording of the session is starting or started.
    pub fn is_being_recorded(&self) -> bool {
        lock(&self.state).session.recording
    }

    /// The cached connection `id`, pending or active.
    pub fn connection(&self, id: &ConnectionId) -> Option<Connection> {
        lock(&self.state).connection(id).cloned()
    }

    /// Every cached connection, pending and active, oldest first.
    pub fn connections(&self) -> Vec<Connection> {
        lock(&self.state).connections.clone()
    }

    /// The cached connections whose token has been used (`status` active), oldest first.
    pub fn active_connections(&self) -> Vec<Connection> {
        lock(&self.state).connections.iter().filter(|c| c.status() == ConnectionStatus::Active).cloned().collect()
    }

    /// Creates a connection (`POST /openvidu/api/sessions/{id}/connection`) and caches it.
    ///
    /// A WEBRTC connection is pending: give its [`Connection::token`] to the participant. An
    /// IPCAM connection is active at once. Typical errors: 404 unknown session, 400 bad
    /// properties.
    pub async fn create_connection(&self, properties: ConnectionProperties) -> Result<Connection, Error> {
        let body = CreateConnectionRequest::from(&properties);
        let path = format!("sessions/{}/connection", self.id);
        let connection = self
            .inner
            .send_json(Method::POST, &path, &body)
            .await?
            .require_status(200)?
            .json::<ConnectionJson>()?
            .into_model();
        lock(&self.state).upsert_connection(connection.clone());
        Ok(connection)
    }

    /// Creates a pending connection through the deprecated `POST /openvidu/api/tokens` and returns
    /// its token. Prefer [`Session::create_connection`]; this exists for servers and code that
    /// still use the token flow.
    pub async fn generate_token(&self, options: TokenOptions) -> Result<String, Error> {
        let body = options.to_request(self.id.as_str());
        let token: TokenJson =
            self.inner.send_json(Method::POST, "tokens", &body).await?.require_status(200)?.json()?;
        let mut properties = ConnectionProperties::default();
        properties.role = token.role;
        properties.data = token.data.clone();
        properties.kurento_options = token.kurento_options.clone();
        let connection = Connection::pending(
            token.connection_id,
            token.session,
            token.created_at,
            properties,
            Some(token.token.clone()),
        );
        lock(&self.state).upsert_connection(connection);
        Ok(token.token)
    }

    /// Closes the session (`DELETE /openvidu/api/sessions/{id}`): every participant is evicted
    /// and any recording stopped. Removes it from the cache. 404 when already closed.
    pub async fn close(&self) -> Result<(), Error> {
        let path = format!("sessions/{}", self.id);
        self.inner.send(Method::DELETE, &path).await?.require_status(204)?;
        cache::remove_if_same(&mut lock(&self.inner.sessions), &self.id, &self.state);
        Ok(())
    }

    /// Refreshes this session from the server
    /// (`GET /openvidu/api/sessions/{id}?pendingConnections=true`); true iff anything changed.
    ///
    /// When the server answers 404 the session is gone: it is removed from the cache and the
    /// 404 is returned.
    pub async fn fetch(&self) -> Result<bool, Error> {
        match self.inner.get_session(&self.id).await {
            Ok(fresh) => Ok(lock(&self.state).replace(fresh)),
            Err(e) => {
                if e.status() == Some(404) {
                    cache::remove_if_same(&mut lock(&self.inner.sessions), &self.id, &self.state);
                }
                Err(e)
            }
        }
    }

    /// Evicts a participant, or invalidates a pending connection's token
    /// (`DELETE /openvidu/api/sessions/{id}/connection/{connectionId}`). Typical errors: 404
    /// unknown connection, 400 unknown session.
    pub async fn force_disconnect(&self, connection: &ConnectionId) -> Result<(), Error> {
        let path = format!("sessions/{}/connection/{connection}", self.id);
        self.inner.send(Method::DELETE, &path).await?.require_status(204)?;
        lock(&self.state).remove_connection(connection);
        Ok(())
    }

    /// Stops a published stream (`DELETE /openvidu/api/sessions/{id}/stream/{streamId}`).
    /// Typical errors: 404 unknown stream or session not active, 400 unknown session, 405 an IP
    /// camera's stream.
    pub async fn force_unpublish(&self, stream: &StreamId) -> Result<(), Error> {
        let path = format!("sessions/{}/stream/{stream}", self.id);
        self.inner.send(Method::DELETE, &path).await?.require_status(204)?;
        lock(&self.state).remove_stream(stream);
        Ok(())
    }

    /// Changes a connection's role and/or record flag
    /// (`PATCH /openvidu/api/sessions/{id}/connection/{connectionId}`; an OpenVidu PRO feature,
    /// CE answers 405). `None` leaves a property as it is. Returns the connection as updated; a
    /// 204 ("nothing changed") returns the cached connection, fetching it if not cached.
    pub async fn update_connection(
        &self,
        connection: &ConnectionId,
        role: Option<OpenViduRole>,
        record: Option<bool>,
    ) -> Result<Connection, Error> {
        let path = format!("sessions/{}/connection/{connection}", self.id);
        let body = UpdateConnectionRequest::new(role, record);
        let answer = self.inner.send_json(Method::PATCH, &path, &body).await?;
        let updated = match answer.status {
            200 => answer.json::<ConnectionJson>()?.into_model(),
            204 => {
                if let Some(cached) = lock(&self.state).connection(connection) {
                    return Ok(cached.clone());
                }
                self.inner.send(Method::GET, &path).await?.require_status(200)?.json::<ConnectionJson>()?.into_model()
            }
            _ => return Err(answer.unexpected()),
        };
        lock(&self.state).upsert_connection(updated.clone());
        Ok(updated)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("created_at", &state.session.created_at)
            .field("recording", &state.session.recording)
            .field("connections", &state.connections.len())
            .finish_non_exhaustive()
    }
}

//! Sessions, connections and streams: `/openvidu/api/sessions/**`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use openvidu_core::id::{ConnectionId, SessionId, StreamId};
use openvidu_core::model::EndReason;
use openvidu_core::wire::rest::{
    ConnectionJson, CreateConnectionRequest, CreateSessionRequest, Page, SessionJson, UpdateConnectionRequest,
};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::{OpenViduService, ServiceError};
use crate::store::SessionSnapshot;

/// `?pendingConnections=&webRtcStats=`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    pending_connections: Option<bool>,
    #[allow(dead_code)]
    web_rtc_stats: Option<bool>,
}

fn session_json(s: &SessionSnapshot, pending: bool) -> SessionJson {
    let active = s.connections.iter().filter(|c| c.active.is_some());
    let pending_ones = s.connections.iter().filter(|c| pending && c.active.is_none());
    SessionJson::new(&s.session, active.chain(pending_ones))
}

/// A path segment as a session id; text that cannot be an id names no session.
fn session_id(s: &str, unknown: StatusCode) -> Result<SessionId, ApiError> {
    SessionId::parse(s).map_err(|_| ApiError::empty(unknown))
}

fn connection_id(s: &str) -> Result<ConnectionId, ApiError> {
    ConnectionId::parse(s).map_err(|_| ApiError::empty(StatusCode::NOT_FOUND))
}

/// Maps "unknown session" to the status this route answers for it.
fn unknown_session_is(status: StatusCode) -> impl Fn(ServiceError) -> ApiError {
    move |e| match e {
        ServiceError::SessionNotFound(_) => ApiError::empty(status),
        other => other.into(),
    }
}

/// POST /openvidu/api/sessions
pub async fn create(
    State(svc): State<OpenViduService>,
    body: ApiJson<CreateSessionRequest>,
) -> Result<Json<SessionJson>, ApiError> {
    let request = body.0.unwrap_or_default();
    let (custom, properties) = request.into_properties(&svc.request_defaults()).map_err(ServiceError::from)?;
    let session = svc.create_session(custom, properties).await?;
    Ok(Json(SessionJson::new(&session, [])))
}

/// GET /openvidu/api/sessions/{id}
pub async fn get(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<SessionJson>, ApiError> {
    let snapshot = svc.session(&session_id(&id, StatusCode::NOT_FOUND)?).await?;
    Ok(Json(session_json(&snapshot, q.pending_connections.unwrap_or(false))))
}

/// GET /openvidu/api/sessions
pub async fn list(
    State(svc): State<OpenViduService>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<SessionJson>>, ApiError> {
    let pending = q.pending_connections.unwrap_or(false);
    let all = svc.sessions().await?;
    Ok(Json(Page::new(all.iter().map(|s| session_json(s, pending)).collect())))
}

/// DELETE /openvidu/api/sessions/{id}
pub async fn close(State(svc): State<OpenViduService>, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    svc.close_session(&session_id(&id, StatusCode::NOT_FOUND)?, EndReason::SessionClosedByServer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /openvidu/api/sessions/{id}/connection
pub async fn create_connection(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
    body: ApiJson<CreateConnectionRequest>,
) -> Result<Json<ConnectionJson>, ApiError> {
    let sid = session_id(&id, StatusCode::NOT_FOUND)?;
    let properties = body.required()?.into_properties().map_err(ServiceError::from)?;
    let connection = svc.create_connection(&sid, properties).await?;
    Ok(Json(ConnectionJson::from(&connection)))
}

/// GET /openvidu/api/sessions/{id}/connection
pub async fn list_connections(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Page<ConnectionJson>>, ApiError> {
    let snapshot = svc.session(&session_id(&id, StatusCode::NOT_FOUND)?).await?;
    let pending = q.pending_connections.unwrap_or(true);
    let json = session_json(&snapshot, pending);
    Ok(Json(json.connections))
}

/// GET /openvidu/api/sessions/{id}/connection/{connectionId}
pub async fn get_connection(
    State(svc): State<OpenViduService>,
    ApiPath((id, cid)): ApiPath<(String, String)>,
) -> Result<Json<ConnectionJson>, ApiError> {
    let snapshot = svc
        .session(&session_id(&id, StatusCode::BAD_REQUEST)?)
        .await
        .map_err(unknown_session_is(StatusCode::BAD_REQUEST))?;
    let c = snapshot.connection(&connection_id(&cid)?).ok_or_else(|| ApiError::empty(StatusCode::NOT_FOUND))?;
    Ok(Json(ConnectionJson::from(c)))
}

/// PATCH /openvidu/api/sessions/{id}/connection/{connectionId} (OpenVidu Pro)
pub async fn update_connection(
    State(svc): State<OpenViduService>,
    ApiPath((id, cid)): ApiPath<(String, String)>,
    body: ApiJson<UpdateConnectionRequest>,
) -> Result<Response, ApiError> {
    let sid = session_id(&id, StatusCode::NOT_FOUND)?;
    let cid = connection_id(&cid)?;
    let request = body.required()?;
    let update = svc.update_connection(&sid, &cid, request.role, request.record).await?;
    if update.changed {
        Ok(Json(ConnectionJson::from(&update.connection)).into_response())
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

/// DELETE /openvidu/api/sessions/{id}/connection/{connectionId}
pub async fn force_disconnect(
    State(svc): State<OpenViduService>,
    ApiPath((id, cid)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = session_id(&id, StatusCode::BAD_REQUEST)?;
    svc.force_disconnect(&sid, &connection_id(&cid)?, EndReason::ForceDisconnectByServer)
        .await
        .map_err(unknown_session_is(StatusCode::BAD_REQUEST))?;
    Ok(StatusCode::NO_CONTENT)
}

/// DELETE /openvidu/api/sessions/{id}/stream/{streamId}
pub async fn force_unpublish(
    State(svc): State<OpenViduService>,
    ApiPath((id, stream)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sid = session_id(&id, StatusCode::BAD_REQUEST)?;
    let stream = StreamId::parse(&stream).map_err(|_| ApiError::empty(StatusCode::NOT_FOUND))?;
    svc.force_unpublish(&sid, &stream, EndReason::ForceUnpublishByServer).await.map_err(|e| match e {
        ServiceError::SessionNotFound(_) => ApiError::empty(StatusCode::BAD_REQUEST),
        ServiceError::SessionNotActive(_) => ApiError::empty(StatusCode::NOT_FOUND),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

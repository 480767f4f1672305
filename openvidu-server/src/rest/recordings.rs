//! Recordings: `/openvidu/api/recordings/**`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use openvidu_core::id::{RecordingId, SessionId};
use openvidu_core::wire::rest::{RecordingJson, RecordingList, RecordingPropertiesJson};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath};
use crate::service::{OpenViduService, ServiceError};

fn recording_id(s: &str) -> Result<RecordingId, ApiError> {
    RecordingId::parse(s).map_err(|_| ApiError::empty(StatusCode::NOT_FOUND))
}

/// POST /openvidu/api/recordings/start — checks in OpenVidu's order: body, module enabled,
/// `session`, session state, then the properties.
pub async fn start(
    State(svc): State<OpenViduService>,
    body: ApiJson<serde_json::Map<String, serde_json::Value>>,
) -> Result<Json<RecordingJson>, ApiError> {
    let mut body = body.required()?;
    if !svc.config().recording {
        return Err(ApiError::empty(StatusCode::NOT_IMPLEMENTED));
    }
    let session = match body.remove("session") {
        Some(serde_json::Value::String(s)) => s,
        _ => {
            return Err(ApiError::bad_request("\"session\" parameter is mandatory and must be a string"));
        }
    };
    let sid = SessionId::parse(&session).map_err(|_| ApiError::empty(StatusCode::NOT_FOUND))?;
    // Session state before parameter types, as OpenVidu checks.
    svc.session(&sid).await?;
    let properties: RecordingPropertiesJson = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| ApiError::bad_request(format!("Type error in parameters: {e}")))?;
    let recording = svc.start_recording(&sid, &properties).await?;
    Ok(Json(RecordingJson::rest(&recording)))
}

/// POST /openvidu/api/recordings/stop/{id}
pub async fn stop(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RecordingJson>, ApiError> {
    if !svc.config().recording {
        return Err(ApiError::empty(StatusCode::NOT_IMPLEMENTED));
    }
    let r = svc.stop_recording(&recording_id(&id)?).await?;
    Ok(Json(RecordingJson::rest(&r)))
}

/// GET /openvidu/api/recordings/{id}
pub async fn get(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RecordingJson>, ApiError> {
    if !svc.config().recording {
        return Err(ApiError::empty(StatusCode::NOT_IMPLEMENTED));
    }
    let r = svc.recording(&recording_id(&id)?).await?;
    Ok(Json(RecordingJson::rest(&r)))
}

/// GET /openvidu/api/recordings
pub async fn list(State(svc): State<OpenViduService>) -> Result<Json<RecordingList>, ApiError> {
    let items: Vec<RecordingJson> = svc.recordings().await?.iter().map(RecordingJson::rest).collect();
    Ok(Json(RecordingList { count: items.len(), items }))
}

/// DELETE /openvidu/api/recordings/{id}
pub async fn delete(State(svc): State<OpenViduService>, ApiPath(id): ApiPath<String>) -> Result<StatusCode, ApiError> {
    if !svc.config().recording {
        return Err(ApiError::empty(StatusCode::NOT_IMPLEMENTED));
    }
    svc.delete_recording(&recording_id(&id)?).await.map_err(|e| match e {
        ServiceError::Io(m) => ApiError::with_message(StatusCode::INTERNAL_SERVER_ERROR, m),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

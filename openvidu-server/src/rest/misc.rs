//! Tokens, signals, configuration, health and CDR listing.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use openvidu_core::id::SessionId;
use openvidu_core::wire::rest::{HealthJson, SignalRequest, TokenJson, TokenRequest};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::extract::ApiJson;
use crate::config::OPENVIDU_VERSION;
use crate::service::{OpenViduService, ServiceError};

/// POST /openvidu/api/tokens (deprecated, still used by `Session.generateToken`).
pub async fn create_token(
    State(svc): State<OpenViduService>,
    body: ApiJson<TokenRequest>,
) -> Result<Json<TokenJson>, ApiError> {
    let request = body.required()?;
    let session =
        request.session.as_deref().ok_or_else(|| ApiError::bad_request("\"session\" parameter is mandatory"))?;
    let not_found = || ApiError::with_message(StatusCode::NOT_FOUND, format!("Session {session} not found"));
    let sid = SessionId::parse(session).map_err(|_| not_found())?;
    let connection = svc.create_connection(&sid, request.connection_properties()).await.map_err(|e| match e {
        ServiceError::SessionNotFound(_) => not_found(),
        other => other.into(),
    })?;
    Ok(Json(TokenJson::new(&connection)))
}

/// POST /openvidu/api/signal
pub async fn signal(State(svc): State<OpenViduService>, body: ApiJson<SignalRequest>) -> Result<StatusCode, ApiError> {
    let request = body.required()?;
    let session =
        request.session.as_deref().ok_or_else(|| ApiError::bad_request("\"session\" parameter is mandatory"))?;
    let sid = SessionId::parse(session).map_err(|_| ApiError::empty(StatusCode::NOT_FOUND))?;
    svc.send_signal(&sid, None, request.to.as_deref().unwrap_or_default(), request.signal_type, request.data).await?;
    Ok(StatusCode::OK)
}

/// GET /openvidu/api/config, members in OpenVidu CE's order.
pub async fn config(State(svc): State<OpenViduService>) -> Json<Value> {
    let c = svc.config();
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("VERSION", json!(OPENVIDU_VERSION));
    put("DOMAIN_OR_PUBLIC_IP", json!(c.domain_or_public_ip.clone().unwrap_or_default()));
    put("HTTPS_PORT", json!(c.port));
    put("OPENVIDU_PUBLICURL", json!(svc.public_url()));
    put("OPENVIDU_CDR", json!(c.cdr_path.is_some()));
    put("OPENVIDU_STREAMS_VIDEO_MAX_RECV_BANDWIDTH", json!(c.video_bandwidth[0]));
    put("OPENVIDU_STREAMS_VIDEO_MIN_RECV_BANDWIDTH", json!(c.video_bandwidth[1]));
    put("OPENVIDU_STREAMS_VIDEO_MAX_SEND_BANDWIDTH", json!(c.video_bandwidth[2]));
    put("OPENVIDU_STREAMS_VIDEO_MIN_SEND_BANDWIDTH", json!(c.video_bandwidth[3]));
    put("OPENVIDU_STREAMS_FORCED_VIDEO_CODEC", json!(c.forced_video_codec));
    put("OPENVIDU_STREAMS_ALLOW_TRANSCODING", json!(c.allow_transcoding));
    put("OPENVIDU_SESSIONS_GARBAGE_INTERVAL", json!(c.garbage_interval.map(|d| d.as_secs()).unwrap_or(0)));
    put("OPENVIDU_SESSIONS_GARBAGE_THRESHOLD", json!(c.garbage_threshold.as_secs()));
    put("OPENVIDU_RECORDING", json!(c.recording));
    if c.recording {
        put("OPENVIDU_RECORDING_VERSION", json!(c.recording_version));
        put("OPENVIDU_RECORDING_PATH", json!(c.recording_path.display().to_string()));
        put("OPENVIDU_RECORDING_PUBLIC_ACCESS", json!(c.recording_public_access));
        put("OPENVIDU_RECORDING_NOTIFICATION", json!(c.recording_notification.as_str()));
        put("OPENVIDU_RECORDING_CUSTOM_LAYOUT", json!(c.recording_custom_layout.display().to_string()));
        put("OPENVIDU_RECORDING_AUTOSTOP_TIMEOUT", json!(c.recording_autostop_timeout.as_secs()));
        if !c.recording_composed_url.is_empty() {
            put("OPENVIDU_RECORDING_COMPOSED_URL", json!(c.recording_composed_url));
        }
    }
    put("OPENVIDU_WEBHOOK", json!(c.webhook.is_some()));
    if let Some(w) = &c.webhook {
        put("OPENVIDU_WEBHOOK_ENDPOINT", json!(w.endpoint.as_str()));
        put("OPENVIDU_WEBHOOK_HEADERS", json!(w.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>()));
        put("OPENVIDU_WEBHOOK_EVENTS", json!(w.events.iter().map(|e| e.name()).collect::<Vec<_>>()));
    }
    Json(Value::Object(m))
}

/// GET /openvidu/api/config/openvidu-version
pub async fn config_version() -> &'static str {
    OPENVIDU_VERSION
}

/// GET /openvidu/api/config/openvidu-publicurl (no auth)
pub async fn config_public_url(State(svc): State<OpenViduService>) -> String {
    svc.public_url().to_owned()
}

/// GET /openvidu/api/config/openvidu-recording
pub async fn config_recording(State(svc): State<OpenViduService>) -> Json<bool> {
    Json(svc.config().recording)
}

/// GET /openvidu/api/config/openvidu-recording-path
pub async fn config_recording_path(State(svc): State<OpenViduService>) -> String {
    svc.config().recording_path.display().to_string()
}

/// GET /openvidu/api/config/openvidu-cdr
pub async fn config_cdr(State(svc): State<OpenViduService>) -> Json<bool> {
    Json(svc.config().cdr_path.is_some())
}

/// GET /openvidu/api/health (OpenVidu Pro): UP when the store answers.
pub async fn health(State(svc): State<OpenViduService>) -> (StatusCode, Json<HealthJson>) {
    match svc.sessions().await {
        Ok(_) => (StatusCode::OK, Json(HealthJson { status: "UP".into() })),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(HealthJson { status: "DOWN".into() }))
        }
    }
}

/// GET /openvidu/cdr: the CDR file names.
pub async fn cdr_files(State(svc): State<OpenViduService>) -> Json<Vec<String>> {
    let mut names = Vec::new();
    if let Some(dir) = &svc.config().cdr_path
        && let Ok(mut entries) = tokio::fs::read_dir(dir).await
    {
        while let Ok(Some(e)) = entries.next_entry().await {
            if let Some(n) = e.file_name().to_str().filter(|n| n.starts_with("CDR.")) {
                names.push(n.to_owned());
            }
        }
    }
    names.sort();
    Json(names)
}

/// GET /openvidu/cdr/{file}: one CDR file.
pub async fn cdr_file(
    State(svc): State<OpenViduService>,
    super::extract::ApiPath(file): super::extract::ApiPath<String>,
) -> Result<String, ApiError> {
    let not_found = || ApiError::empty(StatusCode::NOT_FOUND);
    let dir = svc.config().cdr_path.as_ref().ok_or_else(not_found)?;
    let safe =
        file.starts_with("CDR.") && file.ends_with(".log") && !file.contains(['/', '\\']) && !file.contains("..");
    if !safe {
        return Err(not_found());
    }
    tokio::fs::read_to_string(dir.join(&file)).await.map_err(|_| not_found())
}

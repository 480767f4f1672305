//! The demo page at `/` (like OpenVidu's own test page): join a session with the camera and see
//! the others, using the real openvidu-browser 2.20.0 bundle. Its tokens come from
//! `POST /demo/token`, which exists only when `OPENVIDU_DEMO=true`: anyone who can reach it can
//! join any session, so it is for development.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use openvidu_core::id::SessionId;
use openvidu_core::model::{ConnectionProperties, SessionProperties};
use serde::Deserialize;
use serde_json::json;

use crate::rest::error::ApiError;
use crate::rest::extract::ApiJson;
use crate::service::{OpenViduService, ServiceError};

const INDEX: &str = include_str!("../assets/demo/index.html");
const APP: &str = include_str!("../assets/demo/app.js");
const BUNDLE: &str = include_str!("../assets/openvidu-browser-2.20.0.js");

/// The page, its script and the bundle; the token route when the demo is enabled.
pub fn router(svc: OpenViduService) -> Router {
    let enabled = svc.config().demo;
    let mut r = Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX) }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], APP) }))
        .route(
            "/openvidu-browser-2.20.0.js",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "max-age=86400")], BUNDLE)
            }),
        );
    if enabled {
        r = r.route("/demo/token", post(token));
    }
    r.with_state(svc)
}

#[derive(Deserialize)]
struct TokenRequest {
    session: String,
}

/// `POST /demo/token {"session": "<name>"}` → `{"token": "..."}`, creating the session if needed.
async fn token(State(svc): State<OpenViduService>, body: ApiJson<TokenRequest>) -> Result<impl IntoResponse, ApiError> {
    let request = body.required()?;
    let sid = SessionId::parse(&request.session)
        .map_err(|_| ApiError::bad_request("The session name must match [a-zA-Z0-9_-]+"))?;
    match svc.create_session(Some(sid.clone()), SessionProperties::default()).await {
        Ok(_) | Err(ServiceError::SessionExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let connection = svc.create_connection(&sid, ConnectionProperties::default()).await?;
    Ok((StatusCode::OK, axum::Json(json!({"token": connection.token}))))
}

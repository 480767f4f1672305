//! The REST API of OpenVidu 2.20 (spec §1.4) as an axum [`Router`].
//!
//! Layers, outermost first: CORS (any origin, as OpenVidu), error bodies, body limit; then per
//! group: Basic auth on everything but the public config URL (and recordings when public).
//! Deprecated path aliases are rewritten before routing by [`rewrite_deprecated_path`].

pub mod auth;
pub mod error;
pub mod extract;
mod media_nodes;
mod misc;
mod recordings;
mod sessions;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::routing::{get, post};
use tower_http::cors::CorsLayer;
use tower_http::services::ServeDir;

use crate::service::OpenViduService;
use auth::{Credentials, require_basic_auth};

/// The whole HTTP app of a master node.
pub fn router(svc: OpenViduService) -> Router {
    let config = svc.config().clone();
    let credentials = Credentials::new(&config.secret);
    let auth = middleware::from_fn_with_state(credentials, require_basic_auth);

    let api = Router::new()
        .route("/sessions", post(sessions::create).get(sessions::list))
        .route("/sessions/{id}", get(sessions::get).delete(sessions::close))
        .route("/sessions/{id}/connection", post(sessions::create_connection).get(sessions::list_connections))
        .route(
            "/sessions/{id}/connection/{cid}",
            get(sessions::get_connection).patch(sessions::update_connection).delete(sessions::force_disconnect),
        )
        .route("/sessions/{id}/stream/{stream}", axum::routing::delete(sessions::force_unpublish))
        .route("/recordings/start", post(recordings::start))
        .route("/recordings/stop/{id}", post(recordings::stop))
        .route("/recordings", get(recordings::list))
        .route("/recordings/{id}", get(recordings::get).delete(recordings::delete))
        .route("/tokens", post(misc::create_token))
        .route("/signal", post(misc::signal))
        .route("/config", get(misc::config))
        .route("/config/openvidu-version", get(misc::config_version))
        .route("/config/openvidu-recording", get(misc::config_recording))
        .route("/config/openvidu-recording-path", get(misc::config_recording_path))
        .route("/config/openvidu-cdr", get(misc::config_cdr))
        .route("/health", get(misc::health))
        .route("/media-nodes", get(media_nodes::list).post(media_nodes::add))
        .route("/media-nodes/{id}", get(media_nodes::get).delete(media_nodes::remove).patch(media_nodes::update))
        .route_layer(auth.clone());

    let public_api = Router::new().route("/config/openvidu-publicurl", get(misc::config_public_url));

    let protected_files = Router::new()
        .route("/openvidu/cdr", get(misc::cdr_files))
        .route("/openvidu/cdr/{file}", get(misc::cdr_file))
        .nest_service("/openvidu/layouts", ServeDir::new(&config.recording_custom_layout));
    let recordings_files = Router::new().nest_service("/openvidu/recordings", ServeDir::new(&config.recording_path));
    let (protected_files, public_files) = if config.recording_public_access {
        (protected_files, recordings_files)
    } else {
        (protected_files.merge(recordings_files), Router::new())
    };
    let protected_files = protected_files.route_layer(auth);

    Router::new()
        .nest("/openvidu/api", api.merge(public_api))
        .merge(protected_files)
        .merge(public_files)
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(svc)
        .layer(DefaultBodyLimit::max(config.max_request_body))
        .layer(middleware::from_fn(error::error_body))
        .layer(CorsLayer::very_permissive())
}

/// Rewrites OpenVidu's deprecated paths (spec §1.1) to their current form; applied to the whole
/// app before routing when `SUPPORT_DEPRECATED_API` is on.
pub async fn rewrite_deprecated_path(mut req: Request) -> Request {
    let path = req.uri().path();
    let rewritten = [
        ("/api/", "/openvidu/api/"),
        ("/config", "/openvidu/api/config"),
        ("/cdr", "/openvidu/cdr"),
        ("/recordings/", "/openvidu/recordings/"),
        ("/layouts/custom/", "/openvidu/layouts/"),
        ("/info", "/openvidu/info"),
        ("/accept-certificate", "/openvidu/accept-certificate"),
    ]
    .iter()
    .find_map(|(old, new)| {
        let rest = path.strip_prefix(old)?;
        let exact_or_sub = old.ends_with('/') || rest.is_empty() || rest.starts_with('/');
        exact_or_sub.then(|| format!("{new}{rest}"))
    });
    if let Some(new_path) = rewritten {
        let pq = match req.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = pq.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

#[cfg(test)]
mod tests;

//! The media-node API of OpenVidu PRO (spec §6.3): `/openvidu/api/media-nodes/**`.
//!
//! With remote media nodes (`KMS_URIS`) the routes read and change the master's
//! [`MediaNodePool`]; with the in-process media node there is one node, `uri: "local"`, that
//! can be read but not added, removed or changed (501).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use openvidu_core::id::MediaNodeId;
use openvidu_core::wire::rest::{Page, SessionJson};
use openvidu_core::wire::webhook::MediaNodeStatus;
use openvidu_media::{MediaNode, MediaNodePool, RemoteMediaNode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::media_watch::{begin_terminating, emit_status_changed, finish_terminating, host_of, node_ref};
use crate::service::{OpenViduService, ServiceError};
use openvidu_core::model::EndReason;

/// The URI the in-process media node is listed with.
const LOCAL_URI: &str = "local";

/// `?sessions=&recordings=&extra-info=`.
#[derive(Debug, Default, Deserialize)]
pub struct NodeQuery {
    sessions: Option<bool>,
    #[allow(dead_code)]
    recordings: Option<bool>,
    #[allow(dead_code)]
    #[serde(rename = "extra-info")]
    extra_info: Option<bool>,
}

/// `?deletion-strategy=`.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteQuery {
    #[serde(rename = "deletion-strategy")]
    deletion_strategy: Option<String>,
}

/// Body of `POST /media-nodes`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddNodeRequest {
    uri: Option<String>,
    #[allow(dead_code)]
    environment_id: Option<String>,
}

/// Body of `PATCH /media-nodes/{id}`.
#[derive(Debug, Deserialize)]
pub struct PatchNodeRequest {
    status: Option<String>,
}

/// The Media Node object of spec §6.3.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaNodeJson {
    id: MediaNodeId,
    object: &'static str,
    environment_id: Option<String>,
    ip: Option<String>,
    uri: String,
    launching_time: u64,
    connected: bool,
    connection_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnection_time: Option<u64>,
    load: f64,
    status: MediaNodeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    sessions: Option<Vec<SessionJson>>,
}

/// What a listed node is, before its load and sessions are read.
struct NodeView {
    node: Arc<dyn MediaNode>,
    uri: String,
    status: MediaNodeStatus,
    connected: bool,
    launching_time: u64,
    connection_time: u64,
    disconnection_time: Option<u64>,
}

/// The nodes of this master (all, or the one with id `only`).
fn views(svc: &OpenViduService, only: Option<&MediaNodeId>) -> Vec<NodeView> {
    let Some(pool) = svc.media_pool() else {
        let node = svc.media().clone();
        if only.is_some_and(|id| id != node.id()) {
            return Vec::new();
        }
        return vec![NodeView {
            node,
            uri: LOCAL_URI.to_owned(),
            status: MediaNodeStatus::Running,
            connected: true,
            launching_time: svc.life(),
            connection_time: svc.life(),
            disconnection_time: None,
        }];
    };
    pool.infos()
        .into_iter()
        .filter(|i| only.is_none_or(|id| &i.id == id))
        .filter_map(|i| {
            Some(NodeView {
                node: pool.node(&i.id)?,
                uri: i.uri.unwrap_or_default(),
                status: i.status,
                connected: i.connected,
                launching_time: i.launching_time,
                connection_time: i.connection_time,
                disconnection_time: if i.connected { None } else { i.disconnection_time.or(Some(i.connection_time)) },
            })
        })
        .collect()
}

/// The JSON of a node, with its sessions when asked.
async fn node_json(svc: &OpenViduService, view: NodeView, with_sessions: bool) -> Result<MediaNodeJson, ApiError> {
    let cpu = f64::from(view.node.load().await.cpu_load);
    let load = ((cpu * 100.0).clamp(0.0, 100.0) * 100.0).round() / 100.0;
    let sessions = if with_sessions { Some(sessions_on(svc, view.node.id()).await?) } else { None };
    Ok(MediaNodeJson {
        id: view.node.id().clone(),
        object: "mediaNode",
        environment_id: None,
        ip: if view.uri == LOCAL_URI { None } else { host_of(&view.uri) },
        uri: view.uri,
        launching_time: view.launching_time,
        connected: view.connected,
        connection_time: view.connection_time,
        disconnection_time: view.disconnection_time,
        load: if load.is_finite() { load } else { 0.0 },
        status: view.status,
        sessions,
    })
}

/// The sessions hosted by node `id` (every active session for the in-process node).
async fn sessions_on(svc: &OpenViduService, id: &MediaNodeId) -> Result<Vec<SessionJson>, ApiError> {
    let json = |s: &crate::store::SessionSnapshot| {
        SessionJson::new(&s.session, s.connections.iter().filter(|c| c.active.is_some()))
    };
    let Some(pool) = svc.media_pool() else {
        let all = svc.sessions().await?;
        return Ok(all.iter().filter(|s| s.connections.iter().any(|c| c.active.is_some())).map(json).collect());
    };
    let ids = pool.sessions_on(id).await.map_err(ServiceError::Media)?;
    let mut out = Vec::with_capacity(ids.len());
    for session in ids {
        match svc.session(&session).await {
            Ok(s) => out.push(json(&s)),
            Err(ServiceError::SessionNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// A path segment as a media node id; text that cannot be an id names no node (404).
fn node_id(s: &str) -> Result<MediaNodeId, ApiError> {
    MediaNodeId::parse(s).map_err(|_| ApiError::empty(StatusCode::NOT_FOUND))
}

/// The pool, or 501 for a master with the in-process media node.
fn pool_or_501<'a>(svc: &'a OpenViduService, what: &str) -> Result<&'a Arc<MediaNodePool>, ApiError> {
    svc.media_pool().ok_or_else(|| not_implemented(what))
}

/// 501: `what` needs remote media nodes.
fn not_implemented(what: &str) -> ApiError {
    ApiError::with_message(
        StatusCode::NOT_IMPLEMENTED,
        format!("{what} needs remote media nodes (KMS_URIS); this master runs its media node in-process"),
    )
}

/// GET /openvidu/api/media-nodes
pub async fn list(
    State(svc): State<OpenViduService>,
    ApiQuery(q): ApiQuery<NodeQuery>,
) -> Result<Json<Page<MediaNodeJson>>, ApiError> {
    let with_sessions = q.sessions.unwrap_or(false);
    let mut content = Vec::new();
    for view in views(&svc, None) {
        content.push(node_json(&svc, view, with_sessions).await?);
    }
    Ok(Json(Page::new(content)))
}

/// GET /openvidu/api/media-nodes/{id}
pub async fn get(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<NodeQuery>,
) -> Result<Json<MediaNodeJson>, ApiError> {
    let id = node_id(&id)?;
    let view = views(&svc, Some(&id)).pop().ok_or_else(|| ApiError::empty(StatusCode::NOT_FOUND))?;
    Ok(Json(node_json(&svc, view, q.sessions.unwrap_or(false)).await?))
}

/// One node's JSON, or 404 when it is gone.
async fn one(svc: &OpenViduService, id: &MediaNodeId) -> Result<Json<MediaNodeJson>, ApiError> {
    let view = views(svc, Some(id)).pop().ok_or_else(|| ApiError::empty(StatusCode::NOT_FOUND))?;
    Ok(Json(node_json(svc, view, false).await?))
}

/// POST /openvidu/api/media-nodes: connects the media node at `uri` and adds it, `running`.
pub async fn add(
    State(svc): State<OpenViduService>,
    body: ApiJson<AddNodeRequest>,
) -> Result<Json<MediaNodeJson>, ApiError> {
    let pool = pool_or_501(&svc, "adding a media node")?.clone();
    let request = body.required()?;
    let Some(uri) = request.uri.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()) else {
        return Err(ApiError::with_message(
            StatusCode::NOT_IMPLEMENTED,
            "on-premises media nodes are added by \"uri\"; launching machines is not supported",
        ));
    };
    let scheme_ok = ["ws://", "wss://", "http://", "https://"].iter().any(|s| uri.starts_with(s));
    if !scheme_ok || host_of(&uri).is_none() {
        return Err(ApiError::bad_request(format!("\"uri\" {uri:?} is not a ws:// or http:// URL")));
    }
    if let Some(id) = pool.node_with_uri(&uri) {
        return Err(ApiError::with_message(
            StatusCode::CONFLICT,
            format!("media node {id} is registered at {uri} already"),
        ));
    }
    let events = svc.media_events().cloned().ok_or_else(|| ApiError::empty(StatusCode::NOT_IMPLEMENTED))?;
    let node = match RemoteMediaNode::connect(&uri, &svc.config().secret, events).await {
        Ok(node) => Arc::new(node),
        Err(openvidu_media::MediaError::Config(m)) if m.contains("URL") || m.contains("host") => {
            return Err(ApiError::bad_request(m));
        }
        Err(e) => {
            tracing::warn!(%uri, error = %e, "media node unreachable");
            return Err(ApiError::with_message(StatusCode::NOT_FOUND, format!("media node {uri} unreachable: {e}")));
        }
    };
    let id = node.id().clone();
    if pool.node(&id).is_some() {
        return Err(ApiError::with_message(StatusCode::CONFLICT, format!("media node {id} is registered already")));
    }
    pool.add_remote(node, uri.clone()).map_err(|e| ApiError::with_message(StatusCode::CONFLICT, e.to_string()))?;
    tracing::info!(node_id = %id, %uri, "media node added");
    emit_status_changed(&svc, node_ref(&pool, &id), MediaNodeStatus::Launching, MediaNodeStatus::Running);
    one(&svc, &id).await
}

/// DELETE /openvidu/api/media-nodes/{id}?deletion-strategy=now|if-no-sessions|when-no-sessions
pub async fn remove(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let pool = pool_or_501(&svc, "removing a media node")?.clone();
    let id = node_id(&id)?;
    let strategy = q.deletion_strategy.as_deref().unwrap_or("if-no-sessions");
    if !matches!(strategy, "now" | "if-no-sessions" | "when-no-sessions") {
        return Err(ApiError::bad_request(format!(
            "\"deletion-strategy\" must be now, if-no-sessions or when-no-sessions, not {strategy:?}"
        )));
    }
    let status = pool.status(&id).ok_or_else(|| ApiError::empty(StatusCode::NOT_FOUND))?;
    if matches!(status, MediaNodeStatus::Terminating | MediaNodeStatus::Terminated) {
        return Ok(StatusCode::ACCEPTED);
    }
    let sessions = pool.sessions_on(&id).await.map_err(ServiceError::Media)?;
    match strategy {
        "when-no-sessions" => {
            if pool.change_status(&id, MediaNodeStatus::Running, MediaNodeStatus::WaitingIdleToTerminate) {
                emit_status_changed(
                    &svc,
                    node_ref(&pool, &id),
                    MediaNodeStatus::Running,
                    MediaNodeStatus::WaitingIdleToTerminate,
                );
            }
            tracing::info!(node_id = %id, sessions = sessions.len(), "media node to terminate when idle");
            Ok(StatusCode::ACCEPTED)
        }
        "if-no-sessions" if !sessions.is_empty() => Err(ApiError::with_message(
            StatusCode::CONFLICT,
            format!("media node {id} hosts {} session(s)", sessions.len()),
        )),
        _ => {
            if begin_terminating(&svc, &pool, &id).is_some() {
                finish_terminating(&svc, &pool, &id, EndReason::MediaServerDisconnect).await;
            }
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

/// Whether spec §6.3 allows a PATCH from `from` to `to`.
fn allowed(from: MediaNodeStatus, to: MediaNodeStatus) -> bool {
    use MediaNodeStatus as S;
    matches!(
        (from, to),
        (S::Launching, S::Canceled)
            | (S::Canceled, S::Launching)
            | (S::Running, S::WaitingIdleToTerminate)
            | (S::WaitingIdleToTerminate, S::Running)
            | (S::Running | S::WaitingIdleToTerminate, S::Terminating)
    )
}

/// PATCH /openvidu/api/media-nodes/{id} with `{"status": …}`.
pub async fn update(
    State(svc): State<OpenViduService>,
    ApiPath(id): ApiPath<String>,
    body: ApiJson<PatchNodeRequest>,
) -> Result<Response, ApiError> {
    let id = node_id(&id)?;
    let pool = match svc.media_pool() {
        Some(pool) => pool.clone(),
        None if views(&svc, Some(&id)).is_empty() => return Err(ApiError::empty(StatusCode::NOT_FOUND)),
        None => return Err(not_implemented("changing the status of a media node")),
    };
    let text = body.required()?.status.ok_or_else(|| ApiError::bad_request("\"status\" is required"))?;
    let to: MediaNodeStatus = serde_json::from_value(serde_json::Value::String(text.clone()))
        .map_err(|_| ApiError::bad_request(format!("unknown media node status {text:?}")))?;
    let from = pool.status(&id).ok_or_else(|| ApiError::empty(StatusCode::NOT_FOUND))?;
    if from == to {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if !allowed(from, to) {
        return Err(ApiError::bad_request(format!("a media node cannot go from {from} to {to}")));
    }
    if to == MediaNodeStatus::Terminating {
        if begin_terminating(&svc, &pool, &id).is_none() {
            return Err(ApiError::bad_request(format!("media node {id} is not running")));
        }
        let response = one(&svc, &id).await?.into_response();
        let (svc, pool, id) = (svc.clone(), pool.clone(), id.clone());
        tokio::spawn(async move { finish_terminating(&svc, &pool, &id, EndReason::MediaServerDisconnect).await });
        return Ok(response);
    }
    if !pool.change_status(&id, from, to) {
        return Err(ApiError::with_message(StatusCode::CONFLICT, format!("media node {id} changed status meanwhile")));
    }
    emit_status_changed(&svc, node_ref(&pool, &id), from, to);
    Ok(one(&svc, &id).await?.into_response())
}

//! Media-node crash detection (spec §6.7) and the termination of media nodes shared with the
//! media-node REST API (spec §6.3).
//!
//! [`run`] looks at every remote media node of the pool every 500 ms. A node whose control
//! connection stays down for `OPENVIDU_MEDIA_NODE_GRACE` is crashed: `nodeCrashed`
//! is emitted, it goes `terminating` → `terminated` and leaves the pool, and its sessions are
//! rebuilt on the other nodes (see [`crate::service`]'s rebuild; closed with reason
//! `nodeCrashed` when no node is left; their recordings end `failed`). The same loop terminates
//! idle `waiting-idle-to-terminate` nodes.

use std::sync::Arc;
use std::time::Duration;

use openvidu_core::id::{MediaNodeId, RecordingId, SessionId};
use openvidu_core::model::{EndReason, RecordingStatus};
use openvidu_core::wire::webhook::{MediaNodeRef, MediaNodeStatus, WebhookEvent};
use openvidu_media::MediaNodePool;

use crate::service::{OpenViduService, ServiceError, now_ms};

/// How often the nodes are looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Watches the media nodes of `svc`'s pool until the task is aborted; returns at once when the
/// master has no pool of remote nodes (in-process media node).
pub async fn run(svc: OpenViduService) {
    let Some(pool) = svc.media_pool().cloned() else {
        return;
    };
    let grace = svc.config().media_node_grace;
    let mut tick = openvidu_media::timer_grid::aligned_interval(WATCH_INTERVAL);
    loop {
        tick.tick().await;
        watch_once(&svc, &pool, grace).await;
    }
}

/// One look at every node: crashes the nodes down for longer than `grace`, terminates the idle
/// `waiting-idle-to-terminate` ones.
pub async fn watch_once(svc: &OpenViduService, pool: &Arc<MediaNodePool>, grace: Duration) {
    for down in pool.observe_connections() {
        if down.for_how_long >= grace {
            node_crashed(svc, pool, &down.id).await;
        }
    }
    let waiting = pool.infos().into_iter().filter(|i| i.status == MediaNodeStatus::WaitingIdleToTerminate);
    for id in waiting.map(|i| i.id).collect::<Vec<_>>() {
        match pool.sessions_on(&id).await {
            Ok(sessions) if sessions.is_empty() => {
                if begin_terminating(svc, pool, &id).is_some() {
                    finish_terminating(svc, pool, &id, EndReason::MediaServerDisconnect).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(node_id = %id, error = %e, "reading the sessions of a media node"),
        }
    }
}

/// What node events say about the node `id`.
pub fn node_ref(pool: &MediaNodePool, id: &MediaNodeId) -> MediaNodeRef {
    let uri = pool.info(id).and_then(|i| i.uri).unwrap_or_default();
    MediaNodeRef { id: id.clone(), environment_id: None, ip: host_of(&uri), uri }
}

/// The host part of a URI (`ws://10.0.0.5:3000/x` → `10.0.0.5`), if it has one.
pub fn host_of(uri: &str) -> Option<String> {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Emits `mediaNodeStatusChanged` for a transition of node `node`.
pub fn emit_status_changed(
    svc: &OpenViduService,
    node: MediaNodeRef,
    old_status: MediaNodeStatus,
    new_status: MediaNodeStatus,
) {
    svc.events().emit(WebhookEvent::MediaNodeStatusChanged {
        timestamp: now_ms(),
        node,
        new_status,
        old_status: (new_status != MediaNodeStatus::Launching).then_some(old_status),
    });
}

/// Moves node `id` from `running` or `waiting-idle-to-terminate` to `terminating` (with its
/// webhook); returns the former status, or `None` when the node is not there or is
/// terminating already (someone else finishes the job).
pub fn begin_terminating(svc: &OpenViduService, pool: &MediaNodePool, id: &MediaNodeId) -> Option<MediaNodeStatus> {
    for from in [MediaNodeStatus::Running, MediaNodeStatus::WaitingIdleToTerminate] {
        if pool.change_status(id, from, MediaNodeStatus::Terminating) {
            emit_status_changed(svc, node_ref(pool, id), from, MediaNodeStatus::Terminating);
            return Some(from);
        }
    }
    None
}

/// Ends a `terminating` node: closes the sessions still on it with `reason`, marks it
/// `terminated` (with its webhook) and removes it from the pool.
pub async fn finish_terminating(svc: &OpenViduService, pool: &MediaNodePool, id: &MediaNodeId, reason: EndReason) {
    close_sessions(svc, pool, id, reason).await;
    let node = node_ref(pool, id);
    if pool.change_status(id, MediaNodeStatus::Terminating, MediaNodeStatus::Terminated) {
        emit_status_changed(svc, node, MediaNodeStatus::Terminating, MediaNodeStatus::Terminated);
    }
    match pool.remove(id).await {
        Ok(_) => tracing::info!(node_id = %id, "media node terminated"),
        Err(e) => tracing::warn!(node_id = %id, error = %e, "forgetting the placements of a terminated media node"),
    }
}

/// Closes, through the service, every session placed on node `id`.
async fn close_sessions(svc: &OpenViduService, pool: &MediaNodePool, id: &MediaNodeId, reason: EndReason) {
    let sessions = match pool.sessions_on(id).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(node_id = %id, error = %e, "reading the sessions of a media node");
            return;
        }
    };
    for session in sessions {
        match svc.close_session(&session, reason).await {
            Ok(()) | Err(ServiceError::SessionNotFound(_)) => {}
            Err(e) => tracing::warn!(node_id = %id, session_id = %session, error = %e, "closing a session"),
        }
    }
}

/// The recordings in progress in `sessions` (empty when recording is off or the folder cannot
/// be read).
async fn recordings_of(svc: &OpenViduService, sessions: &[SessionId]) -> Vec<RecordingId> {
    if !svc.config().recording {
        return Vec::new();
    }
    match svc.recordings().await {
        Ok(all) => all
            .into_iter()
            .filter(|r| matches!(r.status, RecordingStatus::Starting | RecordingStatus::Started))
            .filter(|r| sessions.contains(&r.session_id))
            .map(|r| r.id)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "listing the recordings of a crashed media node");
            Vec::new()
        }
    }
}

/// Node `id` did not come back in time (spec §6.7): `nodeCrashed`, then `terminating` →
/// `terminated` and out of the pool; its sessions are rebuilt on the other running nodes
/// ([`OpenViduService::rebuild_session`]; OpenVidu closes them), or closed with reason
/// `nodeCrashed` when no other node can take them. Their recordings end `failed` with reason
/// `nodeCrashed`.
async fn node_crashed(svc: &OpenViduService, pool: &MediaNodePool, id: &MediaNodeId) {
    let Some(status) = pool.status(id) else {
        return;
    };
    if matches!(status, MediaNodeStatus::Terminating | MediaNodeStatus::Terminated) {
        // A termination in progress (REST) finishes the job.
        return;
    }
    let session_ids = pool.sessions_on(id).await.unwrap_or_else(|e| {
        tracing::warn!(node_id = %id, error = %e, "reading the sessions of a crashed media node");
        Vec::new()
    });
    // Each master ends the recordings it runs there (every master sees the node go).
    let recording_ids = recordings_of(svc, &session_ids).await;
    svc.end_recordings_of_crashed_node(&session_ids).await;
    // In a cluster every master watches every node: one of them reports the crash and rebuilds
    // the sessions; the others only stop placing sessions there.
    if let Some(cluster) = svc.cluster() {
        match cluster.placement.claim_crash(id).await {
            Ok(true) => {}
            Ok(false) => {
                pool.set_status(id, MediaNodeStatus::Terminated);
                tracing::info!(node_id = %id, "media node crash handled by another master");
                return;
            }
            Err(e) => tracing::warn!(node_id = %id, error = %e, "cannot coordinate the crash; handling it here"),
        }
    }
    tracing::warn!(node_id = %id, sessions = session_ids.len(), recordings = recording_ids.len(), "media node crashed");
    svc.events().emit(WebhookEvent::NodeCrashed {
        timestamp: now_ms(),
        node: node_ref(pool, id),
        session_ids: session_ids.clone(),
        recording_ids,
    });
    if begin_terminating(svc, pool, id).is_none() {
        return;
    }
    // Out of the pool first: that forgets the sessions' placements, so they can go elsewhere.
    let node = node_ref(pool, id);
    if pool.change_status(id, MediaNodeStatus::Terminating, MediaNodeStatus::Terminated) {
        emit_status_changed(svc, node, MediaNodeStatus::Terminating, MediaNodeStatus::Terminated);
    }
    if let Err(e) = pool.remove(id).await {
        tracing::warn!(node_id = %id, error = %e, "forgetting the placements of a crashed media node");
    }
    for session in &session_ids {
        match svc.rebuild_session(session).await {
            Ok(()) | Err(ServiceError::SessionNotFound(_)) => {}
            Err(e) => {
                tracing::warn!(node_id = %id, session_id = %session, error = %e, "cannot rebuild a session; closing it");
                match svc.close_session(session, EndReason::NodeCrashed).await {
                    Ok(()) | Err(ServiceError::SessionNotFound(_)) => {}
                    Err(e) => tracing::warn!(node_id = %id, session_id = %session, error = %e, "closing a session"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> MediaNodeRef {
        MediaNodeRef {
            id: MediaNodeId::parse("media_A").unwrap(),
            environment_id: None,
            ip: Some("10.0.0.5".into()),
            uri: "ws://10.0.0.5:3000".into(),
        }
    }

    #[test]
    fn node_events_have_openvidus_members() {
        let changed = WebhookEvent::MediaNodeStatusChanged {
            timestamp: 7,
            node: node(),
            new_status: MediaNodeStatus::WaitingIdleToTerminate,
            old_status: Some(MediaNodeStatus::Running),
        };
        assert_eq!(
            serde_json::to_string(&changed.webhook_json()).unwrap(),
            r#"{"timestamp":7,"id":"media_A","environmentId":null,"ip":"10.0.0.5","uri":"ws://10.0.0.5:3000","newStatus":"waiting-idle-to-terminate","oldStatus":"running","event":"mediaNodeStatusChanged"}"#
        );
        let crashed = WebhookEvent::NodeCrashed {
            timestamp: 8,
            node: node(),
            session_ids: vec![SessionId::parse("ses_A").unwrap()],
            recording_ids: vec![],
        };
        assert_eq!(
            serde_json::to_string(&crashed.webhook_json()).unwrap(),
            r#"{"timestamp":8,"id":"media_A","environmentId":null,"ip":"10.0.0.5","uri":"ws://10.0.0.5:3000","nodeRole":"medianode","sessionIds":["ses_A"],"recordingIds":[],"event":"nodeCrashed"}"#
        );
        assert_eq!(crashed.session_id(), None);
    }

    #[test]
    fn hosts_of_uris() {
        assert_eq!(host_of("ws://10.0.0.5:8888/kurento").as_deref(), Some("10.0.0.5"));
        assert_eq!(host_of("ws://[::1]:3000").as_deref(), Some("::1"));
        assert_eq!(host_of("http://media.example.com").as_deref(), Some("media.example.com"));
        assert_eq!(host_of("local"), Some("local".to_owned()));
        assert_eq!(host_of("ws://"), None);
    }
}

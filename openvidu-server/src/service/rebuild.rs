//! Rebuilding the media of sessions whose media node died (beyond OpenVidu 2.20, which closes
//! them): the session gets a router on another node and keeps its participants, streams and
//! REST state; the clients renegotiate with the reconnection RPCs openvidu-browser 2.20 already
//! has. Publishers notice their ICE failing and send `reconnectStream` with a new offer (the
//! protocol has no push for them); once a publisher is back, each of its subscribers gets
//! `forciblyReconnectSubscriber` with a fresh server offer and answers with
//! `reconnectStream{forciblyReconnect: true}`.
//!
//! Recordings of such a session end `failed` with reason `nodeCrashed` (their files were on the
//! dead node); a new recording can be started at once.

use openvidu_core::id::{ConnectionId, SessionId, StreamId};
use openvidu_core::model::EndReason;
use openvidu_core::wire::rpc::Notification;

use super::{OpenViduService, ServiceError};

impl OpenViduService {
    /// Gives a session whose media node died a router on another running node (placed as at a
    /// first join). Its participants stay; their media comes back as they reconnect.
    pub async fn rebuild_session(&self, session: &SessionId) -> Result<(), ServiceError> {
        // Still there? (closed meanwhile: nothing to rebuild)
        self.session(session).await?;
        self.inner.media.create_router(session).await?;
        tracing::info!(session_id = %session, "session rebuilt on another media node");
        Ok(())
    }

    /// Ends with reason `nodeCrashed` the recordings this master runs in `sessions`, whose
    /// media node died.
    pub async fn end_recordings_of_crashed_node(&self, sessions: &[SessionId]) {
        for session in sessions {
            let recipients = match self.inner.store.session(session).await {
                Ok(Some(s)) => s.connections,
                _ => Default::default(),
            };
            self.end_recording(session, EndReason::NodeCrashed, &recipients).await;
        }
    }

    /// Offers every subscriber of `stream` a new connection to it (`forciblyReconnectSubscriber`),
    /// after its publisher reconnected: their endpoints were fed by the old publisher endpoint
    /// (or lived on a dead node).
    pub(super) async fn reconnect_subscribers(&self, session: &SessionId, owner: &ConnectionId, stream: &StreamId) {
        let Ok(snapshot) = self.session(session).await else { return };
        let subscribers: Vec<ConnectionId> = snapshot
            .active_connections()
            .filter(|c| c.subscribers.iter().any(|s| &s.stream_id == stream))
            .map(|c| c.id.clone())
            .collect();
        for subscriber in subscribers {
            match self.inner.media.prepare_subscribe(session, &subscriber, stream).await {
                Ok(sdp_offer) => {
                    tracing::debug!(session_id = %session, connection_id = %subscriber, stream_id = %stream,
                        "asking a subscriber to reconnect");
                    self.inner.participants.notify(
                        &subscriber,
                        &Notification::ForciblyReconnectSubscriber {
                            connection_id: owner.clone(),
                            stream_id: stream.clone(),
                            sdp_offer,
                        },
                    );
                }
                Err(e) => tracing::warn!(session_id = %session, connection_id = %subscriber, stream_id = %stream,
                    error = %e, "cannot offer a subscriber a new connection"),
            }
        }
    }
}

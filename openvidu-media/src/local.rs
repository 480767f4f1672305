//! [`LocalMediaNode`]: the media engine in the master's process, behind the [`MediaNode`] trait.

use std::collections::HashMap;
use std::sync::Mutex;

use openvidu_core::id::{ConnectionId, MediaNodeId, SessionId, StreamId};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::MediaConfig;
use crate::endpoint::lock;
use crate::engine::MediaEngine;
use crate::node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaEvent, MediaNode, PublishOptions};
use crate::router::Router;

/// A media node running in-process: a [`MediaEngine`] and one [`Router`] per session, addressed
/// by id through [`MediaNode`].
///
/// Each call runs to completion in its own task, so a caller that gives up half-way (a closed
/// WebSocket) never leaves an endpoint half-registered, and a bug in the WebRTC stack surfaces
/// as [`MediaError::Internal`] instead of a panic in the caller.
pub struct LocalMediaNode {
    id: MediaNodeId,
    engine: MediaEngine,
    routers: Mutex<HashMap<SessionId, Router>>,
}

impl LocalMediaNode {
    /// Starts a node with `config`; its endpoints report on `events`. Must be called inside a
    /// tokio runtime. The node id is `media_` plus random characters (see [`with_id`](Self::with_id)).
    pub fn new(config: MediaConfig, events: UnboundedSender<MediaEvent>) -> Result<Self, MediaError> {
        let engine = MediaEngine::new(config, events)?;
        let suffix: String =
            rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric).take(10).map(char::from).collect();
        let id = MediaNodeId::parse(&format!("media_{suffix}")).map_err(|e| MediaError::Config(e.to_string()))?;
        Ok(Self { id, engine, routers: Mutex::default() })
    }

    /// The same node under another id.
    pub fn with_id(mut self, id: MediaNodeId) -> Self {
        self.id = id;
        self
    }

    /// The engine (settings, UDP port).
    pub fn engine(&self) -> &MediaEngine {
        &self.engine
    }

    /// The shared UDP port, in mux mode.
    pub fn udp_port(&self) -> Option<u16> {
        self.engine.udp_port()
    }

    /// The router of `session`, if created.
    pub fn router(&self, session: &SessionId) -> Option<Router> {
        lock(&self.routers).get(session).cloned()
    }

    fn existing(&self, session: &SessionId) -> Result<Router, MediaError> {
        self.router(session).ok_or_else(|| MediaError::NoRouter(session.clone()))
    }
}

/// Runs `work` in its own task: it finishes even if the caller's future is dropped, and a panic
/// becomes an error.
async fn detached<T: Send + 'static>(
    work: impl Future<Output = Result<T, MediaError>> + Send + 'static,
) -> Result<T, MediaError> {
    match tokio::spawn(work).await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(error = %e, "media task failed");
            Err(MediaError::Internal(e.to_string()))
        }
    }
}

#[async_trait::async_trait]
impl MediaNode for LocalMediaNode {
    fn id(&self) -> &MediaNodeId {
        &self.id
    }

    async fn create_router(&self, session: &SessionId) -> Result<(), MediaError> {
        let mut routers = lock(&self.routers);
        if !routers.contains_key(session) {
            routers.insert(session.clone(), self.engine.create_router(session.clone()));
        }
        Ok(())
    }

    async fn close_router(&self, session: &SessionId) -> Result<(), MediaError> {
        let router = lock(&self.routers).remove(session);
        if let Some(router) = router {
            detached(async move {
                router.close().await;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    async fn publish(
        &self,
        session: &SessionId,
        stream: &StreamId,
        options: PublishOptions,
    ) -> Result<String, MediaError> {
        let router = self.existing(session)?;
        let stream = stream.clone();
        detached(async move {
            let (_publisher, answer) = router.publish(&stream, options).await?;
            Ok(answer)
        })
        .await
    }

    async fn unpublish(&self, session: &SessionId, stream: &StreamId) -> Result<(), MediaError> {
        let router = self.existing(session)?;
        let stream = stream.clone();
        detached(async move { router.unpublish(&stream).await }).await
    }

    async fn subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, MediaError> {
        let router = self.existing(session)?;
        let (subscriber, stream) = (subscriber.clone(), stream.clone());
        detached(async move {
            let (_subscriber, answer) = router.subscribe(&subscriber, &stream, sdp_offer).await?;
            Ok(answer)
        })
        .await
    }

    async fn prepare_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<String, MediaError> {
        let router = self.existing(session)?;
        let (subscriber, stream) = (subscriber.clone(), stream.clone());
        detached(async move {
            let (_subscriber, offer) = router.prepare_subscribe(&subscriber, &stream).await?;
            Ok(offer)
        })
        .await
    }

    async fn complete_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), MediaError> {
        let router = self.existing(session)?;
        let (subscriber, stream) = (subscriber.clone(), stream.clone());
        detached(async move { router.complete_subscribe(&subscriber, &stream, sdp_answer).await }).await
    }

    async fn unsubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        let router = self.existing(session)?;
        let (subscriber, stream) = (subscriber.clone(), stream.clone());
        detached(async move { router.unsubscribe(&subscriber, &stream).await }).await
    }

    async fn add_ice_candidate(
        &self,
        session: &SessionId,
        endpoint: EndpointId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        let router = self.existing(session)?;
        detached(async move { router.add_ice_candidate(endpoint, candidate).await }).await
    }

    async fn load(&self) -> LoadReport {
        let routers: Vec<Router> = lock(&self.routers).values().cloned().collect();
        let (publishers, subscribers) =
            routers.iter().map(Router::endpoint_counts).fold((0, 0), |(p, s), (rp, rs)| (p + rp, s + rs));
        LoadReport { routers: routers.len(), publishers, subscribers, cpu_load: cpu_load() }
    }
}

/// The 1-minute load average per core, clamped to 0–1 (0 where `/proc/loadavg` is missing).
fn cpu_load() -> f32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| parse_loadavg(&s))
        .map_or(0.0, |load| (load / cores).clamp(0.0, 1.0))
}

fn parse_loadavg(text: &str) -> Option<f32> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests;

//! [`LocalMediaNode`]: the media engine in the master's process, behind the [`MediaNode`] trait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};
use tokio::sync::mpsc::UnboundedSender;

use crate::config::MediaConfig;
use crate::endpoint::lock;
use crate::engine::MediaEngine;
use crate::node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaEvent, MediaNode, PublishOptions};
use crate::recording::tap::StreamTap;
use crate::recording::{ActiveRecording, ComposerPool, RecordedStream, RecordingReport, RecordingSpec};
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
    composer: ComposerPool,
    recordings: Mutex<HashMap<RecordingId, RunningRecording>>,
}

/// A recording and the session it records.
#[derive(Clone)]
struct RunningRecording {
    session: SessionId,
    recorder: Arc<ActiveRecording>,
}

impl LocalMediaNode {
    /// Starts a node with `config`; its endpoints report on `events`. Must be called inside a
    /// tokio runtime. The node id is `media_` plus random characters (see [`with_id`](Self::with_id)).
    pub fn new(config: MediaConfig, events: UnboundedSender<MediaEvent>) -> Result<Self, MediaError> {
        let composer = ComposerPool::new(&config.recording);
        let engine = MediaEngine::new(config, events)?;
        let suffix: String =
            rand::Rng::sample_iter(rand::rng(), rand::distr::Alphanumeric).take(10).map(char::from).collect();
        let id = MediaNodeId::parse(&format!("media_{suffix}")).map_err(|e| MediaError::Config(e.to_string()))?;
        Ok(Self { id, engine, routers: Mutex::default(), composer, recordings: Mutex::default() })
    }

    /// The same node under another id.
    pub fn with_id(mut self, id: MediaNodeId) -> Self {
        self.id = id;
        self
    }

    /// Closes every router and its endpoints. The node stays usable: a router created later
    /// starts empty.
    pub async fn close_all(&self) {
        let routers: Vec<Router> = lock(&self.routers).drain().map(|(_, router)| router).collect();
        for router in routers {
            router.close().await;
        }
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

    fn recording(&self, session: &SessionId, id: &RecordingId) -> Result<Arc<ActiveRecording>, MediaError> {
        match lock(&self.recordings).get(id) {
            Some(r) if &r.session == session => Ok(r.recorder.clone()),
            _ => Err(MediaError::RecordingNotFound(id.clone())),
        }
    }

    /// Taps the publisher of `stream` for a recorder.
    fn tap(&self, session: &SessionId, stream: RecordedStream) -> Result<StreamTap, MediaError> {
        let router = self.existing(session)?;
        let publisher =
            router.publisher(&stream.stream).ok_or_else(|| MediaError::StreamNotFound(stream.stream.clone()))?;
        Ok(StreamTap::new(stream, &publisher))
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

    async fn start_recording(&self, spec: RecordingSpec, streams: Vec<RecordedStream>) -> Result<(), MediaError> {
        let (session, id) = (spec.session.clone(), spec.id.clone());
        let _router = self.existing(&session)?;
        if lock(&self.recordings).contains_key(&id) {
            return Err(MediaError::RecordingExists(id));
        }
        let taps = streams.into_iter().map(|s| self.tap(&session, s)).collect::<Result<Vec<_>, _>>()?;
        let recorder = Arc::new(ActiveRecording::start(spec, &self.composer, self.engine.events()).await?);
        for tap in taps {
            let stream = tap.info.stream.clone();
            if let Err(e) = recorder.add_stream(tap) {
                tracing::warn!(%session, recording_id = %id, %stream, error = %e, "stream not recorded");
            }
        }
        let previous = lock(&self.recordings)
            .insert(id.clone(), RunningRecording { session: session.clone(), recorder: recorder.clone() });
        if let Some(previous) = previous {
            // Started twice concurrently: keep the first one.
            lock(&self.recordings).insert(id.clone(), previous);
            let _ = recorder.stop().await;
            return Err(MediaError::RecordingExists(id));
        }
        tracing::info!(%session, recording_id = %id, "recording started");
        Ok(())
    }

    async fn record_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: RecordedStream,
    ) -> Result<(), MediaError> {
        let recorder = self.recording(session, recording)?;
        recorder.add_stream(self.tap(session, stream)?)
    }

    async fn stop_recording_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        let recorder = self.recording(session, recording)?;
        let stream = stream.clone();
        detached(async move {
            recorder.remove_stream(&stream).await;
            Ok(())
        })
        .await
    }

    async fn stop_recording(
        &self,
        session: &SessionId,
        recording: &RecordingId,
    ) -> Result<RecordingReport, MediaError> {
        self.recording(session, recording)?;
        let Some(running) = lock(&self.recordings).remove(recording) else {
            return Err(MediaError::RecordingNotFound(recording.clone()));
        };
        let report = detached(async move { running.recorder.stop().await }).await;
        tracing::info!(%session, recording_id = %recording, ok = report.is_ok(), "recording stopped");
        report
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

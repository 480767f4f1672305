//! A media node on a thread of its own: [`MediaWorker`].
//!
//! Every peer connection, fan-out and recorder of the node runs on one single-threaded tokio
//! runtime, as a mediasoup worker runs on one libuv loop. A forwarded packet then goes from the
//! socket to the subscribers' sockets without waking another thread, and the fan-out's writes
//! through the connections' cores never meet a driver holding one on the other core. Measured
//! with the fan-out bench on the 2-core machine of `BENCHMARKS.md`, the same node on a
//! two-thread runtime spent 1.7–2× the CPU per forwarded packet, most of it in waking threads
//! and in contended locks. The process's other work (REST, signalling, the store) stays on the
//! caller's runtime, and so do SDP negotiation and the subscribers' peer connections (see
//! [`MediaEngine::set_negotiation_runtime`]): the media thread keeps the publishers' connections
//! and the fan-out. A node uses one core for media: a machine with more cores runs one media
//! node per core (`openvidu-media-node` behind the master's pool), as mediasoup runs a worker
//! per core.

use std::future::Future;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use async_trait::async_trait;
use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use crate::local::LocalMediaNode;
use crate::node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaEvent, MediaNode, PublishOptions};
use crate::recording::{RecordedStream, RecordingReport, RecordingSpec};
use crate::{MediaConfig, MediaEngine};

/// A [`LocalMediaNode`] running on a thread of its own (see the module docs). Each call is run
/// on that thread and awaited from the caller's runtime; events come back on the channel given
/// to [`start`](Self::start). Dropping the last handle stops the thread and closes every
/// endpoint.
pub struct MediaWorker {
    node: Arc<LocalMediaNode>,
    id: MediaNodeId,
    runtime: tokio::runtime::Handle,
    /// Dropped with the worker: ends the thread's runtime.
    _stop: oneshot::Sender<()>,
}

impl MediaWorker {
    /// Starts the thread and a [`LocalMediaNode`] with `config` on it.
    pub fn start(config: MediaConfig, events: UnboundedSender<MediaEvent>) -> Result<Self, MediaError> {
        // SDP negotiation runs on the caller's runtime (`MediaEngine::set_negotiation_runtime`).
        let caller = tokio::runtime::Handle::try_current().ok();
        let (started_tx, started) = std_mpsc::sync_channel(1);
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("openvidu-media".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = started_tx.send(Err(MediaError::Internal(format!("media runtime: {e}"))));
                        return;
                    }
                };
                let node = match runtime.block_on(async { LocalMediaNode::new(config, events) }) {
                    Ok(node) => {
                        if let Some(caller) = caller {
                            node.engine().set_negotiation_runtime(caller);
                        }
                        Arc::new(node)
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        return;
                    }
                };
                let _ = started_tx.send(Ok((node.clone(), runtime.handle().clone())));
                // Runs every task of the node until the worker is dropped; then its endpoints
                // close here. They must be closed, not only dropped with this runtime: the
                // drivers of subscribers' connections run on the caller's runtime.
                runtime.block_on(async move {
                    let _ = stopped.await;
                    node.close_all().await;
                    drop(node);
                });
            })
            .map_err(|e| MediaError::Internal(format!("media thread: {e}")))?;
        let (node, runtime) =
            started.recv().map_err(|_| MediaError::Internal("the media thread stopped while starting".into()))??;
        let id = node.id().clone();
        Ok(Self { node, id, runtime, _stop: stop })
    }

    /// The same worker under another id.
    pub fn with_id(mut self, id: MediaNodeId) -> Self {
        self.id = id;
        self
    }

    /// The engine (settings, UDP port).
    pub fn engine(&self) -> &MediaEngine {
        self.node.engine()
    }

    /// The shared UDP port, in mux mode.
    pub fn udp_port(&self) -> Option<u16> {
        self.node.udp_port()
    }

    /// Runs `call` with the node on the worker's thread.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, MediaError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<LocalMediaNode>) -> Fut,
        Fut: Future<Output = Result<T, MediaError>> + Send + 'static,
    {
        self.runtime
            .spawn(call(self.node.clone()))
            .await
            .map_err(|e| MediaError::Internal(format!("media worker call ended: {e}")))?
    }
}

#[async_trait]
impl MediaNode for MediaWorker {
    fn id(&self) -> &MediaNodeId {
        &self.id
    }

    async fn create_router(&self, session: &SessionId) -> Result<(), MediaError> {
        let session = session.clone();
        self.run(|n| async move { n.create_router(&session).await }).await
    }

    async fn close_router(&self, session: &SessionId) -> Result<(), MediaError> {
        let session = session.clone();
        self.run(|n| async move { n.close_router(&session).await }).await
    }

    async fn publish(
        &self,
        session: &SessionId,
        stream: &StreamId,
        options: PublishOptions,
    ) -> Result<String, MediaError> {
        let (session, stream) = (session.clone(), stream.clone());
        self.run(|n| async move { n.publish(&session, &stream, options).await }).await
    }

    async fn unpublish(&self, session: &SessionId, stream: &StreamId) -> Result<(), MediaError> {
        let (session, stream) = (session.clone(), stream.clone());
        self.run(|n| async move { n.unpublish(&session, &stream).await }).await
    }

    async fn subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, MediaError> {
        let (session, subscriber, stream) = (session.clone(), subscriber.clone(), stream.clone());
        self.run(|n| async move { n.subscribe(&session, &subscriber, &stream, sdp_offer).await }).await
    }

    async fn prepare_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<String, MediaError> {
        let (session, subscriber, stream) = (session.clone(), subscriber.clone(), stream.clone());
        self.run(|n| async move { n.prepare_subscribe(&session, &subscriber, &stream).await }).await
    }

    async fn complete_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), MediaError> {
        let (session, subscriber, stream) = (session.clone(), subscriber.clone(), stream.clone());
        self.run(|n| async move { n.complete_subscribe(&session, &subscriber, &stream, sdp_answer).await }).await
    }

    async fn unsubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        let (session, subscriber, stream) = (session.clone(), subscriber.clone(), stream.clone());
        self.run(|n| async move { n.unsubscribe(&session, &subscriber, &stream).await }).await
    }

    async fn add_ice_candidate(
        &self,
        session: &SessionId,
        endpoint: EndpointId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        let session = session.clone();
        self.run(|n| async move { n.add_ice_candidate(&session, endpoint, candidate).await }).await
    }

    async fn load(&self) -> LoadReport {
        self.run(|n| async move { Ok(n.load().await) }).await.unwrap_or_default()
    }

    async fn start_recording(&self, spec: RecordingSpec, streams: Vec<RecordedStream>) -> Result<(), MediaError> {
        self.run(|n| async move { n.start_recording(spec, streams).await }).await
    }

    async fn record_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: RecordedStream,
    ) -> Result<(), MediaError> {
        let (session, recording) = (session.clone(), recording.clone());
        self.run(|n| async move { n.record_stream(&session, &recording, stream).await }).await
    }

    async fn stop_recording_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        let (session, recording, stream) = (session.clone(), recording.clone(), stream.clone());
        self.run(|n| async move { n.stop_recording_stream(&session, &recording, &stream).await }).await
    }

    async fn stop_recording(
        &self,
        session: &SessionId,
        recording: &RecordingId,
    ) -> Result<RecordingReport, MediaError> {
        let (session, recording) = (session.clone(), recording.clone());
        self.run(|n| async move { n.stop_recording(&session, &recording).await }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_run_on_the_worker_thread_and_dropping_it_stops_the_thread() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let worker = MediaWorker::start(MediaConfig::default(), tx).expect("a worker");
        let session = SessionId::parse("worker").expect("an id");
        worker.create_router(&session).await.expect("a router");
        let thread = worker.run(|_| async { Ok(std::thread::current().name().map(str::to_owned)) }).await;
        assert_eq!(thread.expect("ran").as_deref(), Some("openvidu-media"));
        assert_eq!(worker.load().await.routers, 1);
        let runtime = worker.runtime.clone();
        drop(worker);
        // The thread's runtime shuts down: spawning on it fails (or is dropped) from then on.
        let mut ended = false;
        for _ in 0..200 {
            if runtime.spawn(async {}).await.is_err() {
                ended = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(ended, "the media thread's runtime shut down");
    }
}

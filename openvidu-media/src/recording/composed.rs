//! COMPOSED recording: every stream decoded, laid out, mixed and encoded by FFmpeg.

use openvidu_core::id::StreamId;

use super::tap::StreamTap;
use super::{RecordingReport, RecordingSpec};
use crate::node::{MediaError, MediaEvent};

/// What the composer keeps ready from the node's start (warm start).
#[derive(Clone, Debug)]
pub struct ComposerPool {}

impl ComposerPool {
    /// Prepares the composer. Must be called inside a tokio runtime.
    pub fn new(config: &crate::config::RecordingConfig) -> Self {
        let _ = config;
        Self {}
    }
}

/// A running COMPOSED recording.
pub(crate) struct ComposedRecorder {
    spec: RecordingSpec,
}

impl ComposedRecorder {
    /// Starts composing into `spec.folder`.
    pub(crate) async fn start(
        spec: RecordingSpec,
        pool: &ComposerPool,
        events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        let _ = (pool, events);
        Err(MediaError::Unsupported(format!("COMPOSED recording of {} is not built yet", spec.id)))
    }

    /// Adds a stream to the layout and the mix.
    pub(crate) fn add_stream(&self, tap: StreamTap) -> Result<(), MediaError> {
        let _ = tap;
        Err(MediaError::Unsupported(format!("COMPOSED recording of {} is not built yet", self.spec.id)))
    }

    /// Removes a stream from the layout and the mix.
    pub(crate) async fn remove_stream(&self, stream: &StreamId) {
        let _ = stream;
    }

    /// Stops, finishes `<name>.mp4` (or `.webm`) and the thumbnail.
    pub(crate) async fn stop(&self) -> Result<RecordingReport, MediaError> {
        Err(MediaError::Unsupported(format!("COMPOSED recording of {} is not built yet", self.spec.id)))
    }
}

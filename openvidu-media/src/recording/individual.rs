//! INDIVIDUAL recording: one WebM per recorded stream, zipped with the sync file at stop.

use openvidu_core::id::StreamId;

use super::tap::StreamTap;
use super::{RecordingReport, RecordingSpec};
use crate::node::{MediaError, MediaEvent};

/// A running INDIVIDUAL recording.
pub(crate) struct IndividualRecorder {
    spec: RecordingSpec,
}

impl IndividualRecorder {
    /// Starts recording into `spec.folder`; failures later on are reported on `events` as
    /// [`MediaEvent::RecordingFailed`].
    pub(crate) fn start(
        spec: RecordingSpec,
        events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<Self, MediaError> {
        let _ = events;
        Ok(Self { spec })
    }

    /// Adds a stream (at start, or when it publishes during the recording).
    pub(crate) fn add_stream(&self, tap: StreamTap) -> Result<(), MediaError> {
        let _ = tap;
        Err(MediaError::Unsupported(format!("INDIVIDUAL recording of {} is not built yet", self.spec.id)))
    }

    /// Ends the file of a stream that stopped publishing.
    pub(crate) async fn remove_stream(&self, stream: &StreamId) {
        let _ = stream;
    }

    /// Ends every file, writes `<name>.json` and `<name>.zip`.
    pub(crate) async fn stop(&self) -> Result<RecordingReport, MediaError> {
        Err(MediaError::Unsupported(format!("INDIVIDUAL recording of {} is not built yet", self.spec.id)))
    }
}

//! Recording on the media node (spec §3): INDIVIDUAL (one WebM per stream, zipped with the sync
//! file of §3.4) and COMPOSED (every stream decoded, laid out, mixed and encoded by FFmpeg into
//! one MP4, or one Opus WebM when audio-only).
//!
//! A master drives recordings through [`MediaNode`](crate::MediaNode):
//! `start_recording` → `record_stream` for every stream that publishes during it →
//! `stop_recording_stream` when one unpublishes → `stop_recording`, which finishes the files
//! and returns a [`RecordingReport`]. The master owns the entity file `.recording.<id>`; the
//! node writes everything else in [`RecordingSpec::folder`].
//!
//! Recorders read the same packets the subscribers get (a tap on the publisher's fan-out), so
//! recording never re-encodes or slows forwarding down for INDIVIDUAL.

pub(crate) mod composed;
pub(crate) mod depacketize;
pub(crate) mod individual;
pub(crate) mod tap;
pub(crate) mod webm;

use std::path::PathBuf;

use openvidu_core::id::{ConnectionId, RecordingId, SessionId, StreamId, TypeOfVideo};
use openvidu_core::model::{Millis, RecordingLayout};

pub use composed::ComposerPool;

/// What to record and where.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RecordingSpec {
    /// The recorded session.
    pub session: SessionId,
    /// The recording id.
    pub id: RecordingId,
    /// The final name: base name of `<name>.zip`, `<name>.json`, `<name>.mp4`, `<name>.webm`.
    pub name: String,
    /// `<OPENVIDU_RECORDING_PATH>/<id>`: the folder the files go to (it exists already).
    pub folder: PathBuf,
    /// Recording start (`createdAt`), ms since the epoch: the origin of the sync offsets.
    pub created_at: Millis,
    /// Record audio.
    pub has_audio: bool,
    /// Record video.
    pub has_video: bool,
    /// INDIVIDUAL or COMPOSED.
    pub kind: RecordingKind,
}

impl RecordingSpec {
    /// A spec; `folder` must exist.
    pub fn new(
        session: SessionId,
        id: RecordingId,
        name: impl Into<String>,
        folder: PathBuf,
        created_at: Millis,
        kind: RecordingKind,
    ) -> Self {
        Self { session, id, name: name.into(), folder, created_at, has_audio: true, has_video: true, kind }
    }
}

/// The output mode, with what COMPOSED needs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordingKind {
    /// One WebM per stream, zipped at stop.
    Individual,
    /// One file for the whole session.
    Composed {
        /// BEST_FIT, PICTURE_IN_PICTURE, VERTICAL_PRESENTATION or HORIZONTAL_PRESENTATION
        /// (CUSTOM is refused with [`MediaError::Unsupported`](crate::MediaError::Unsupported)).
        layout: RecordingLayout,
        /// Output width in pixels (even).
        width: u32,
        /// Output height in pixels (even).
        height: u32,
        /// Output frames per second.
        frame_rate: u32,
    },
}

/// A stream to record, with the metadata the sync file carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedStream {
    /// The published stream.
    pub stream: StreamId,
    /// Its publisher's connection.
    pub connection: ConnectionId,
    /// The publisher's client data.
    pub client_data: String,
    /// The publisher's server data.
    pub server_data: String,
    /// Whether the stream has audio.
    pub has_audio: bool,
    /// Whether the stream has video.
    pub has_video: bool,
    /// Its kind of video, if it has video.
    pub type_of_video: Option<TypeOfVideo>,
    /// The video's width and height as the publisher announced them (`videoDimensions`):
    /// lets an INDIVIDUAL file start with the first audio instead of waiting for a keyframe.
    pub video_dimensions: Option<(u16, u16)>,
}

impl RecordedStream {
    /// A stream with audio and camera video and empty metadata.
    pub fn new(stream: StreamId, connection: ConnectionId) -> Self {
        Self {
            stream,
            connection,
            client_data: String::new(),
            server_data: String::new(),
            has_audio: true,
            has_video: true,
            type_of_video: Some(TypeOfVideo::Camera),
            video_dimensions: None,
        }
    }
}

/// What a finished recording holds, for the entity file (spec §3.2).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct RecordingReport {
    /// Size in bytes of the final file (INDIVIDUAL: the sum of the WebM files).
    pub size: u64,
    /// Duration in seconds (INDIVIDUAL: last end − first start over all files).
    pub duration: f64,
    /// Whether the output holds audio.
    pub has_audio: bool,
    /// Whether the output holds video.
    pub has_video: bool,
    /// The files written in the folder, final names (`<name>.zip`, `<name>.mp4`, `<id>.jpg`, …).
    pub files: Vec<String>,
}

/// A recording running on this node.
pub(crate) enum ActiveRecording {
    Individual(individual::IndividualRecorder),
    Composed(composed::ComposedRecorder),
}

impl ActiveRecording {
    /// Starts a recorder for `spec`.
    pub(crate) async fn start(
        spec: RecordingSpec,
        pool: &ComposerPool,
        events: tokio::sync::mpsc::UnboundedSender<crate::MediaEvent>,
    ) -> Result<Self, crate::MediaError> {
        match spec.kind {
            RecordingKind::Individual => Ok(Self::Individual(individual::IndividualRecorder::start(spec, events)?)),
            RecordingKind::Composed { layout: RecordingLayout::Custom, .. } => {
                Err(crate::MediaError::Unsupported("CUSTOM recording layouts are not supported".into()))
            }
            RecordingKind::Composed { .. } => {
                Ok(Self::Composed(composed::ComposedRecorder::start(spec, pool, events).await?))
            }
        }
    }

    pub(crate) fn add_stream(&self, tap: tap::StreamTap) -> Result<(), crate::MediaError> {
        match self {
            Self::Individual(r) => r.add_stream(tap),
            Self::Composed(r) => r.add_stream(tap),
        }
    }

    pub(crate) async fn remove_stream(&self, stream: &StreamId) {
        match self {
            Self::Individual(r) => r.remove_stream(stream).await,
            Self::Composed(r) => r.remove_stream(stream).await,
        }
    }

    pub(crate) async fn stop(&self) -> Result<RecordingReport, crate::MediaError> {
        match self {
            Self::Individual(r) => r.stop().await,
            Self::Composed(r) => r.stop().await,
        }
    }
}

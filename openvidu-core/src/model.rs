//! The domain: sessions, connections, publishers, subscribers, recordings and their properties.
//!
//! These are plain data. How they look on the wire is `crate::wire`; how they may change is
//! `crate::rules`.

use serde::{Deserialize, Serialize};

use crate::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId, TypeOfVideo};

mod builder;
pub use builder::{
    ConnectionPropertiesBuilder, KurentoOptionsBuilder, RecordingPropertiesBuilder, SessionPropertiesBuilder,
};

/// Milliseconds since the Unix epoch, as OpenVidu stamps every object.
pub type Millis = u64;

/// The role of a participant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OpenViduRole {
    /// May only subscribe.
    Subscriber,
    /// May publish and subscribe (the default).
    #[default]
    Publisher,
    /// May publish, subscribe, force-disconnect and force-unpublish others.
    Moderator,
}

/// How media flows in a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MediaMode {
    /// Through the media server (the only mode that is implemented, as in OpenVidu).
    #[default]
    Routed,
    /// Peer to peer (accepted, not implemented, as in OpenVidu).
    Relayed,
}

/// Whether a session records on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RecordingMode {
    /// Record as soon as the first participant publishes.
    Always,
    /// Record only when asked through the REST API (the default).
    #[default]
    Manual,
}

/// How a recording is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutputMode {
    /// One file mixing every stream (the default).
    #[default]
    Composed,
    /// COMPOSED with the composer kept warm for the session's whole life.
    ComposedQuickStart,
    /// One file per stream.
    Individual,
}

impl OutputMode {
    /// COMPOSED or COMPOSED_QUICK_START.
    pub fn is_composed(self) -> bool {
        matches!(self, Self::Composed | Self::ComposedQuickStart)
    }
}

/// The layout of a COMPOSED recording.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordingLayout {
    /// A grid (the default).
    #[default]
    BestFit,
    /// One large stream with a small one in a corner.
    PictureInPicture,
    /// A presentation with the participants in a column.
    VerticalPresentation,
    /// A presentation with the participants in a row.
    HorizontalPresentation,
    /// A layout page of the user's own.
    Custom,
}

/// The lifecycle status of a recording (spec §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingStatus {
    /// Being started.
    Starting,
    /// Recording.
    Started,
    /// Stopped, being processed.
    Stopped,
    /// Available for download.
    Ready,
    /// Failed; see the logs and webhooks.
    Failed,
}

/// The kind of connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConnectionType {
    /// A WebRTC participant (the default).
    #[default]
    Webrtc,
    /// An IP camera published by the server.
    Ipcam,
}

/// Whether a connection's token has been used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    /// Created, token not yet used.
    Pending,
    /// Joined.
    Active,
}

/// A video codec a session may force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VideoCodec {
    /// VP8 (the default).
    #[default]
    #[serde(rename = "VP8")]
    Vp8,
    /// VP9.
    #[serde(rename = "VP9")]
    Vp9,
    /// H.264.
    #[serde(rename = "H264")]
    H264,
    /// No forced codec.
    #[serde(rename = "NONE")]
    None,
}

/// Why something ended (spec §4.4), as sent in RPC `reason` params and webhooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub enum EndReason {
    Unsubscribe,
    Unpublish,
    Disconnect,
    ForceUnpublishByUser,
    ForceUnpublishByServer,
    ForceDisconnectByUser,
    ForceDisconnectByServer,
    LastParticipantLeft,
    RecordingStoppedByServer,
    SessionClosedByServer,
    NetworkDisconnect,
    MediaServerDisconnect,
    MediaServerReconnect,
    NodeCrashed,
    OpenviduServerStopped,
    AutomaticStop,
}

/// Per-connection bandwidth limits and allowed filters (spec §1.3.6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct KurentoOptions {
    /// Max kbps the server receives from this connection's publisher (0 = unconstrained).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_max_recv_bandwidth: Option<u32>,
    /// Min kbps the server receives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_min_recv_bandwidth: Option<u32>,
    /// Max kbps the server sends to this connection's subscribers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_max_send_bandwidth: Option<u32>,
    /// Min kbps the server sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_min_send_bandwidth: Option<u32>,
    /// Filter types this connection may apply to its own stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_filters: Option<Vec<String>>,
}

/// How a recording is made (spec §1.3.5 and recording start).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RecordingProperties {
    /// File base name; empty means "the recording id".
    pub name: String,
    /// Record audio.
    pub has_audio: bool,
    /// Record video.
    pub has_video: bool,
    /// COMPOSED, COMPOSED_QUICK_START or INDIVIDUAL.
    pub output_mode: OutputMode,
    /// Layout of a composed recording.
    pub recording_layout: RecordingLayout,
    /// `WxH` of a composed recording.
    pub resolution: String,
    /// Frames per second of a composed recording.
    pub frame_rate: u32,
    /// Shared memory for the composer, in bytes (accepted for compatibility).
    pub shm_size: u64,
    /// Path or URL of a CUSTOM layout.
    pub custom_layout: String,
    /// INDIVIDUAL: start even if some streams fail to record.
    pub ignore_failed_streams: bool,
    /// The media node that records (PRO).
    pub media_node: Option<MediaNodeId>,
}

impl Default for RecordingProperties {
    fn default() -> Self {
        Self {
            name: String::new(),
            has_audio: true,
            has_video: true,
            output_mode: OutputMode::Composed,
            recording_layout: RecordingLayout::BestFit,
            resolution: "1280x720".to_owned(),
            frame_rate: 25,
            shm_size: 536_870_912,
            custom_layout: String::new(),
            ignore_failed_streams: false,
            media_node: None,
        }
    }
}

/// How a session behaves, fixed at creation.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SessionProperties {
    /// ROUTED or RELAYED.
    pub media_mode: MediaMode,
    /// ALWAYS or MANUAL.
    pub recording_mode: RecordingMode,
    /// Defaults for recordings of this session.
    pub default_recording_properties: RecordingProperties,
    /// The custom id asked for, or `""`.
    pub custom_session_id: String,
    /// The codec every publisher must use.
    pub forced_video_codec: VideoCodec,
    /// Whether the media server may transcode.
    pub allow_transcoding: bool,
    /// The media node the session must live on (PRO).
    pub media_node: Option<MediaNodeId>,
}

/// What a connection may do, fixed at creation (role and record may be updated).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ConnectionProperties {
    /// WEBRTC or IPCAM.
    pub connection_type: ConnectionType,
    /// Server data, visible to everyone in the session.
    pub data: String,
    /// Whether INDIVIDUAL recordings include this connection's streams.
    pub record: bool,
    /// The participant's role.
    pub role: OpenViduRole,
    /// Bandwidth limits and allowed filters.
    pub kurento_options: Option<KurentoOptions>,
    /// IPCAM: the camera URI.
    pub rtsp_uri: Option<String>,
    /// IPCAM: adapt the bitrate.
    pub adaptative_bitrate: Option<bool>,
    /// IPCAM: only pull the camera while someone watches.
    pub only_play_with_subscribers: Option<bool>,
    /// IPCAM: network cache in ms.
    pub network_cache: Option<u32>,
}

impl Default for ConnectionProperties {
    fn default() -> Self {
        Self {
            connection_type: ConnectionType::Webrtc,
            data: String::new(),
            record: true,
            role: OpenViduRole::Publisher,
            kurento_options: None,
            rtsp_uri: None,
            adaptative_bitrate: None,
            only_play_with_subscribers: None,
            network_cache: None,
        }
    }
}

/// A session: a room whose participants can see each other.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Session {
    /// The session id.
    pub id: SessionId,
    /// Creation time.
    pub created_at: Millis,
    /// The properties it was created with.
    pub properties: SessionProperties,
    /// True once someone joined (a media pipeline exists).
    pub active: bool,
    /// True while a recording is starting or started.
    pub recording: bool,
    /// The media node hosting it, once allocated.
    pub media_node_id: Option<MediaNodeId>,
}

impl Session {
    /// A session created now with these properties.
    pub fn new(id: SessionId, created_at: Millis, properties: SessionProperties) -> Self {
        Self { id, created_at, properties, active: false, recording: false, media_node_id: None }
    }

    /// `<sessionId>_<createdAt>`, the id of this incarnation of the session in CDR and webhooks.
    pub fn unique_session_id(&self) -> String {
        format!("{}_{}", self.id, self.created_at)
    }
}

/// What a connection learned when its token was used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveInfo {
    /// When the token was used.
    pub active_at: Millis,
    /// Geolocation (`"unknown"` in CE).
    pub location: String,
    /// The client's address as seen by the server.
    pub ip: Option<String>,
    /// The platform the client described.
    pub platform: String,
    /// The metadata the client sent.
    pub client_data: String,
}

impl ActiveInfo {
    /// What a participant that joined `at` from `ip` told about itself.
    pub fn new(active_at: Millis, ip: Option<String>, platform: String, client_data: String) -> Self {
        Self { active_at, location: "unknown".to_owned(), ip, platform, client_data }
    }
}

/// The media options of a published stream.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MediaOptions {
    /// The stream has audio.
    pub has_audio: bool,
    /// Audio is unmuted.
    pub audio_active: bool,
    /// The stream has video.
    pub has_video: bool,
    /// Video is unmuted.
    pub video_active: bool,
    /// Kind of video.
    pub type_of_video: Option<TypeOfVideo>,
    /// Frames per second, if known.
    pub frame_rate: Option<u32>,
    /// `{"width":W,"height":H}` as a string, as OpenVidu stores it.
    pub video_dimensions: Option<String>,
    /// The applied filter, `{}` when none.
    pub filter: serde_json::Value,
}

impl MediaOptions {
    /// Options of a stream with these tracks, unmuted, no filter.
    pub fn new(has_audio: bool, has_video: bool, type_of_video: Option<TypeOfVideo>) -> Self {
        Self {
            has_audio,
            audio_active: has_audio,
            has_video,
            video_active: has_video,
            type_of_video: if has_video { type_of_video } else { None },
            frame_rate: None,
            video_dimensions: None,
            filter: serde_json::Value::Object(Default::default()),
        }
    }
}

/// A stream a connection publishes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Publisher {
    /// The stream id.
    pub stream_id: StreamId,
    /// When publishing started.
    pub created_at: Millis,
    /// What the stream carries.
    pub media_options: MediaOptions,
}

impl Publisher {
    /// A stream published at `created_at`.
    pub fn new(stream_id: StreamId, created_at: Millis, media_options: MediaOptions) -> Self {
        Self { stream_id, created_at, media_options }
    }
}

/// A stream a connection receives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subscriber {
    /// The publisher's stream id.
    pub stream_id: StreamId,
    /// When the subscription started.
    pub created_at: Millis,
}

impl Subscriber {
    /// A subscription to `stream_id` made at `created_at`.
    pub fn new(stream_id: StreamId, created_at: Millis) -> Self {
        Self { stream_id, created_at }
    }
}

/// A connection: one participant's seat in a session, pending until its token is used.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Connection {
    /// The connection id.
    pub id: ConnectionId,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// Creation time.
    pub created_at: Millis,
    /// Its properties.
    pub properties: ConnectionProperties,
    /// The full token URL (None for IP cameras).
    pub token: Option<String>,
    /// Set once the token was used.
    pub active: Option<ActiveInfo>,
    /// Streams it publishes.
    pub publishers: Vec<Publisher>,
    /// Streams it receives.
    pub subscribers: Vec<Subscriber>,
}

impl Connection {
    /// A pending connection.
    pub fn pending(
        id: ConnectionId,
        session_id: SessionId,
        created_at: Millis,
        properties: ConnectionProperties,
        token: Option<String>,
    ) -> Self {
        Self {
            id,
            session_id,
            created_at,
            properties,
            token,
            active: None,
            publishers: Vec::new(),
            subscribers: Vec::new(),
        }
    }

    /// Pending or active.
    pub fn status(&self) -> ConnectionStatus {
        if self.active.is_some() { ConnectionStatus::Active } else { ConnectionStatus::Pending }
    }

    /// The address the client connected from (`Connection.ip`), once active.
    pub fn ip(&self) -> Option<&str> {
        self.active.as_ref().and_then(|a| a.ip.as_deref())
    }
}

/// A recording and its outcome.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Recording {
    /// The recording id.
    pub id: RecordingId,
    /// The recorded session.
    pub session_id: SessionId,
    /// `<sessionId>_<createdAt>` of the recorded session.
    pub unique_session_id: Option<String>,
    /// Start time.
    pub created_at: Millis,
    /// Size in bytes (0 until ready).
    pub size: u64,
    /// Duration in seconds (0 until ready).
    pub duration: f64,
    /// Download URL once ready or failed.
    pub url: Option<String>,
    /// Lifecycle status.
    pub status: RecordingStatus,
    /// How it is recorded; `name` is the final name (the id when none was given).
    pub properties: RecordingProperties,
}

impl Recording {
    /// A recording of `session` starting at `created_at`: status `starting`, nothing written
    /// yet. An empty `properties.name` becomes the id.
    pub fn starting(
        id: RecordingId,
        session: &Session,
        created_at: Millis,
        mut properties: RecordingProperties,
    ) -> Self {
        if properties.name.is_empty() {
            properties.name = id.to_string();
        }
        Self {
            id,
            session_id: session.id.clone(),
            unique_session_id: Some(session.unique_session_id()),
            created_at,
            size: 0,
            duration: 0.0,
            url: None,
            status: RecordingStatus::Starting,
            properties,
        }
    }
}

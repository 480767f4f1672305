//! The REST API's JSON (spec §1.3, §1.4): response objects in OpenVidu's field order with explicit
//! nulls, and request bodies with their defaults and type checks.
//!
//! Response types serialize (server) and deserialize (client); conversions to and from
//! [`crate::model`] live here too, so the two sides cannot drift apart.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::RequestError;
use crate::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId, TypeOfVideo};
use crate::model::{
    ActiveInfo, Connection, ConnectionProperties, ConnectionStatus, ConnectionType, KurentoOptions, MediaMode,
    MediaOptions, Millis, OpenViduRole, OutputMode, Publisher, Recording, RecordingLayout, RecordingMode,
    RecordingProperties, RecordingStatus, Session, SessionProperties, Subscriber, VideoCodec,
};

/// `{"numberOfElements": n, "content": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// Number of items in `content`.
    pub number_of_elements: usize,
    /// The items.
    pub content: Vec<T>,
}

impl<T> Page<T> {
    /// A page holding `content`.
    pub fn new(content: Vec<T>) -> Self {
        Self { number_of_elements: content.len(), content }
    }
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// `{"count": n, "items": [...]}` of GET /recordings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingList {
    /// Number of recordings.
    pub count: usize,
    /// The recordings.
    pub items: Vec<RecordingJson>,
}

// ---------------------------------------------------------------------------------------------
// RecordingProperties

/// RecordingProperties JSON (spec §1.3.5): conditional members, as OpenVidu emits them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingPropertiesJson {
    /// Name (`""` = the recording id).
    #[serde(default)]
    pub name: Option<String>,
    /// Record audio.
    #[serde(default)]
    pub has_audio: Option<bool>,
    /// Record video.
    #[serde(default)]
    pub has_video: Option<bool>,
    /// Output mode.
    #[serde(default)]
    pub output_mode: Option<OutputMode>,
    /// Layout (composed with video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_layout: Option<RecordingLayout>,
    /// Resolution (composed with video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Frame rate (composed with video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<u32>,
    /// Shared memory size (composed with video only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    /// Custom layout (only with CUSTOM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_layout: Option<String>,
    /// INDIVIDUAL only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_failed_streams: Option<bool>,
    /// PRO: the media node, as a string or `{"id": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_node: Option<MediaNodeRef>,
}

/// A media node given as `"media_…"` or `{"id": "media_…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MediaNodeRef {
    /// A plain id.
    Id(MediaNodeId),
    /// `{"id": …}`.
    Object {
        /// The id.
        id: MediaNodeId,
    },
}

impl MediaNodeRef {
    /// The referenced id.
    pub fn id(&self) -> &MediaNodeId {
        match self {
            Self::Id(id) | Self::Object { id } => id,
        }
    }
}

impl From<&RecordingProperties> for RecordingPropertiesJson {
    fn from(p: &RecordingProperties) -> Self {
        let composed_video = p.output_mode.is_composed() && p.has_video;
        Self {
            name: Some(p.name.clone()),
            has_audio: Some(p.has_audio),
            has_video: Some(p.has_video),
            output_mode: Some(p.output_mode),
            recording_layout: composed_video.then_some(p.recording_layout),
            resolution: composed_video.then(|| p.resolution.clone()),
            frame_rate: composed_video.then_some(p.frame_rate),
            shm_size: composed_video.then_some(p.shm_size),
            custom_layout: (composed_video && p.recording_layout == RecordingLayout::Custom)
                .then(|| p.custom_layout.clone()),
            ignore_failed_streams: (p.output_mode == OutputMode::Individual).then_some(p.ignore_failed_streams),
            media_node: p.media_node.clone().map(MediaNodeRef::Id),
        }
    }
}

impl RecordingPropertiesJson {
    /// These properties over `defaults`: each member given replaces the default's.
    ///
    /// A session default of COMPOSED_QUICK_START turns a requested COMPOSED into
    /// COMPOSED_QUICK_START and vice versa, as OpenVidu does.
    pub fn over(&self, defaults: &RecordingProperties) -> RecordingProperties {
        let mut output_mode = self.output_mode.unwrap_or(defaults.output_mode);
        if defaults.output_mode == OutputMode::ComposedQuickStart && output_mode == OutputMode::Composed {
            output_mode = OutputMode::ComposedQuickStart;
        }
        RecordingProperties {
            name: self.name.clone().unwrap_or_else(|| defaults.name.clone()),
            has_audio: self.has_audio.unwrap_or(defaults.has_audio),
            has_video: self.has_video.unwrap_or(defaults.has_video),
            output_mode,
            recording_layout: self.recording_layout.unwrap_or(defaults.recording_layout),
            resolution: self.resolution.clone().unwrap_or_else(|| defaults.resolution.clone()),
            frame_rate: self.frame_rate.unwrap_or(defaults.frame_rate),
            shm_size: self.shm_size.unwrap_or(defaults.shm_size),
            custom_layout: self.custom_layout.clone().unwrap_or_else(|| defaults.custom_layout.clone()),
            ignore_failed_streams: self.ignore_failed_streams.unwrap_or(defaults.ignore_failed_streams),
            media_node: self.media_node.as_ref().map(|m| m.id().clone()).or_else(|| defaults.media_node.clone()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Session

/// The Session object (spec §1.3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionJson {
    /// Session id.
    pub id: SessionId,
    /// `"session"`.
    pub object: String,
    /// Deprecated duplicate of `id`, read by the Java and Node clients.
    pub session_id: SessionId,
    /// Creation time.
    pub created_at: Millis,
    /// Media mode.
    pub media_mode: MediaMode,
    /// Recording mode.
    pub recording_mode: RecordingMode,
    /// Default recording properties.
    pub default_recording_properties: RecordingPropertiesJson,
    /// The custom id, or `""`.
    #[serde(default)]
    pub custom_session_id: String,
    /// Connections.
    pub connections: Page<ConnectionJson>,
    /// Being recorded.
    pub recording: bool,
    /// Forced codec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_video_codec: Option<VideoCodec>,
    /// Transcoding allowed.
    #[serde(default)]
    pub allow_transcoding: bool,
    /// Media node hosting the session (PRO), once allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_node_id: Option<MediaNodeId>,
}

impl SessionJson {
    /// The JSON of `session` listing `connections` (already filtered by the caller).
    pub fn new<'a>(session: &Session, connections: impl IntoIterator<Item = &'a Connection>) -> Self {
        let p = &session.properties;
        Self {
            id: session.id.clone(),
            object: "session".into(),
            session_id: session.id.clone(),
            created_at: session.created_at,
            media_mode: p.media_mode,
            recording_mode: p.recording_mode,
            default_recording_properties: (&p.default_recording_properties).into(),
            custom_session_id: p.custom_session_id.clone(),
            connections: Page::new(connections.into_iter().map(ConnectionJson::from).collect()),
            recording: session.recording,
            forced_video_codec: Some(p.forced_video_codec),
            allow_transcoding: p.allow_transcoding,
            media_node_id: session.media_node_id.clone(),
        }
    }

    /// The model session and its connections.
    pub fn into_model(self) -> (Session, Vec<Connection>) {
        let properties = SessionProperties {
            media_mode: self.media_mode,
            recording_mode: self.recording_mode,
            default_recording_properties: self.default_recording_properties.over(&RecordingProperties::default()),
            custom_session_id: self.custom_session_id,
            forced_video_codec: self.forced_video_codec.unwrap_or_default(),
            allow_transcoding: self.allow_transcoding,
            media_node: None,
        };
        let mut session = Session::new(self.session_id, self.created_at, properties);
        session.recording = self.recording;
        session.media_node_id = self.media_node_id;
        let connections: Vec<Connection> =
            self.connections.content.into_iter().map(ConnectionJson::into_model).collect();
        session.active = connections.iter().any(|c| c.active.is_some());
        (session, connections)
    }
}

// ---------------------------------------------------------------------------------------------
// Connection

/// `mediaOptions` of a publisher entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaOptionsJson {
    /// Has audio.
    pub has_audio: bool,
    /// Audio unmuted (only with audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_active: Option<bool>,
    /// Has video.
    pub has_video: bool,
    /// Video unmuted (only with video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_active: Option<bool>,
    /// Kind of video (only with video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_of_video: Option<TypeOfVideo>,
    /// Frame rate (only with video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<u32>,
    /// `{"width":W,"height":H}` as a JSON string (only with video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_dimensions: Option<String>,
    /// The filter, `{}` when none.
    #[serde(default = "empty_object")]
    pub filter: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A publisher entry of a Connection object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublisherJson {
    /// When it started publishing.
    pub created_at: Millis,
    /// Stream id.
    pub stream_id: StreamId,
    /// Media options.
    pub media_options: MediaOptionsJson,
}

/// A subscriber entry of a Connection object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriberJson {
    /// When it subscribed.
    pub created_at: Millis,
    /// The publisher's stream id.
    pub stream_id: StreamId,
}

impl From<&Publisher> for PublisherJson {
    fn from(p: &Publisher) -> Self {
        let m = &p.media_options;
        Self {
            created_at: p.created_at,
            stream_id: p.stream_id.clone(),
            media_options: MediaOptionsJson {
                has_audio: m.has_audio,
                audio_active: m.has_audio.then_some(m.audio_active),
                has_video: m.has_video,
                video_active: m.has_video.then_some(m.video_active),
                type_of_video: if m.has_video { m.type_of_video } else { None },
                frame_rate: if m.has_video { m.frame_rate } else { None },
                video_dimensions: if m.has_video { m.video_dimensions.clone() } else { None },
                filter: m.filter.clone(),
            },
        }
    }
}

impl PublisherJson {
    /// The model publisher.
    pub fn into_model(self) -> Publisher {
        let m = self.media_options;
        Publisher {
            stream_id: self.stream_id,
            created_at: self.created_at,
            media_options: MediaOptions {
                has_audio: m.has_audio,
                audio_active: m.audio_active.unwrap_or(false),
                has_video: m.has_video,
                video_active: m.video_active.unwrap_or(false),
                type_of_video: m.type_of_video,
                frame_rate: m.frame_rate,
                video_dimensions: m.video_dimensions,
                filter: m.filter,
            },
        }
    }
}

/// The Connection object (spec §1.3.2). Every member is always present (the Java client
/// dereferences them); the member order depends on the status, as in OpenVidu.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionJson {
    /// Connection id.
    pub id: ConnectionId,
    /// `"connection"`.
    pub object: String,
    /// `pending` or `active`.
    pub status: ConnectionStatus,
    /// Deprecated duplicate of `id`, read by the Java and Node clients.
    pub connection_id: ConnectionId,
    /// Session id.
    pub session_id: SessionId,
    /// Creation time.
    pub created_at: Millis,
    /// When the token was used.
    #[serde(default)]
    pub active_at: Option<Millis>,
    /// Geolocation.
    #[serde(default)]
    pub location: Option<String>,
    /// Client address.
    #[serde(default)]
    pub ip: Option<String>,
    /// Client platform.
    #[serde(default)]
    pub platform: Option<String>,
    /// Token URL.
    #[serde(default)]
    pub token: Option<String>,
    /// WEBRTC or IPCAM.
    #[serde(default, rename = "type")]
    pub connection_type: Option<ConnectionType>,
    /// Record in INDIVIDUAL recordings.
    #[serde(default)]
    pub record: Option<bool>,
    /// Role.
    #[serde(default)]
    pub role: Option<OpenViduRole>,
    /// Kurento options.
    #[serde(default)]
    pub kurento_options: Option<KurentoOptions>,
    /// IPCAM URI.
    #[serde(default)]
    pub rtsp_uri: Option<String>,
    /// IPCAM.
    #[serde(default)]
    pub adaptative_bitrate: Option<bool>,
    /// IPCAM.
    #[serde(default)]
    pub only_play_with_subscribers: Option<bool>,
    /// IPCAM.
    #[serde(default)]
    pub network_cache: Option<u32>,
    /// Server data.
    #[serde(default)]
    pub server_data: Option<String>,
    /// Client data.
    #[serde(default)]
    pub client_data: Option<String>,
    /// Published streams (null while pending).
    #[serde(default)]
    pub publishers: Option<Vec<PublisherJson>>,
    /// Received streams (null while pending).
    #[serde(default)]
    pub subscribers: Option<Vec<SubscriberJson>>,
}

impl Serialize for ConnectionJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Connection", 23)?;
        macro_rules! f {
            ($($k:literal => $v:expr),* $(,)?) => { $( st.serialize_field($k, &$v)?; )* };
        }
        f!("id" => self.id, "object" => self.object, "status" => self.status,
           "connectionId" => self.connection_id, "sessionId" => self.session_id,
           "createdAt" => self.created_at);
        let head_active = self.status == ConnectionStatus::Active;
        if head_active {
            f!("activeAt" => self.active_at, "location" => self.location, "ip" => self.ip,
               "platform" => self.platform, "token" => self.token);
        }
        f!("type" => self.connection_type, "record" => self.record, "role" => self.role,
           "kurentoOptions" => self.kurento_options, "rtspUri" => self.rtsp_uri,
           "adaptativeBitrate" => self.adaptative_bitrate,
           "onlyPlayWithSubscribers" => self.only_play_with_subscribers,
           "networkCache" => self.network_cache, "serverData" => self.server_data);
        if head_active {
            f!("clientData" => self.client_data);
        } else {
            f!("token" => self.token, "activeAt" => self.active_at, "location" => self.location,
               "ip" => self.ip, "platform" => self.platform, "clientData" => self.client_data);
        }
        f!("publishers" => self.publishers, "subscribers" => self.subscribers);
        st.end()
    }
}

impl From<&Connection> for ConnectionJson {
    fn from(c: &Connection) -> Self {
        let p = &c.properties;
        let ipcam = p.connection_type == ConnectionType::Ipcam;
        let active = c.active.as_ref();
        Self {
            id: c.id.clone(),
            object: "connection".into(),
            status: c.status(),
            connection_id: c.id.clone(),
            session_id: c.session_id.clone(),
            created_at: c.created_at,
            active_at: active.map(|a| a.active_at),
            location: active.map(|a| a.location.clone()),
            ip: active.and_then(|a| a.ip.clone()),
            platform: active.map(|a| a.platform.clone()),
            token: c.token.clone(),
            connection_type: Some(p.connection_type),
            record: Some(p.record),
            role: (!ipcam).then_some(p.role),
            kurento_options: p.kurento_options.clone(),
            rtsp_uri: p.rtsp_uri.clone(),
            adaptative_bitrate: p.adaptative_bitrate,
            only_play_with_subscribers: p.only_play_with_subscribers,
            network_cache: p.network_cache,
            server_data: Some(p.data.clone()),
            client_data: active.map(|a| a.client_data.clone()),
            publishers: active.map(|_| c.publishers.iter().map(PublisherJson::from).collect()),
            subscribers: active.map(|_| {
                c.subscribers
                    .iter()
                    .map(|s| SubscriberJson { created_at: s.created_at, stream_id: s.stream_id.clone() })
                    .collect()
            }),
        }
    }
}

impl ConnectionJson {
    /// The model connection.
    pub fn into_model(self) -> Connection {
        let properties = ConnectionProperties {
            connection_type: self.connection_type.unwrap_or_default(),
            data: self.server_data.unwrap_or_default(),
            record: self.record.unwrap_or(true),
            role: self.role.unwrap_or_default(),
            kurento_options: self.kurento_options,
            rtsp_uri: self.rtsp_uri,
            adaptative_bitrate: self.adaptative_bitrate,
            only_play_with_subscribers: self.only_play_with_subscribers,
            network_cache: self.network_cache,
        };
        let active = (self.status == ConnectionStatus::Active).then(|| ActiveInfo {
            active_at: self.active_at.unwrap_or_default(),
            location: self.location.unwrap_or_default(),
            ip: self.ip,
            platform: self.platform.unwrap_or_default(),
            client_data: self.client_data.unwrap_or_default(),
        });
        Connection {
            id: self.connection_id,
            session_id: self.session_id,
            created_at: self.created_at,
            properties,
            token: self.token,
            active,
            publishers: self.publishers.unwrap_or_default().into_iter().map(PublisherJson::into_model).collect(),
            subscribers: self
                .subscribers
                .unwrap_or_default()
                .into_iter()
                .map(|s| Subscriber { stream_id: s.stream_id, created_at: s.created_at })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recording

/// The Recording object (spec §1.3.3); with `unique_session_id` set it is the on-disk entity file
/// `.recording.<id>` (spec §3.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingJson {
    /// Recording id.
    pub id: RecordingId,
    /// `"recording"`.
    pub object: String,
    /// Name.
    pub name: String,
    /// Output mode.
    pub output_mode: OutputMode,
    /// Composed with video only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Composed with video only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<u32>,
    /// Composed with video only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_layout: Option<RecordingLayout>,
    /// Only with CUSTOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_layout: Option<String>,
    /// Recorded session.
    pub session_id: SessionId,
    /// Entity file only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_session_id: Option<String>,
    /// PRO: recording media node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_node: Option<MediaNodeId>,
    /// Start time.
    pub created_at: Millis,
    /// Bytes.
    #[serde(default)]
    pub size: u64,
    /// Seconds.
    #[serde(default)]
    pub duration: f64,
    /// Download URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Has audio.
    pub has_audio: bool,
    /// Has video.
    pub has_video: bool,
    /// Status.
    pub status: RecordingStatus,
}

impl RecordingJson {
    /// The REST JSON of `r` (no `uniqueSessionId`).
    pub fn rest(r: &Recording) -> Self {
        let mut j = Self::entity(r);
        j.unique_session_id = None;
        j
    }

    /// The entity-file JSON of `r` (with `uniqueSessionId`).
    pub fn entity(r: &Recording) -> Self {
        let p = &r.properties;
        let composed_video = p.output_mode.is_composed() && p.has_video;
        Self {
            id: r.id.clone(),
            object: "recording".into(),
            name: p.name.clone(),
            output_mode: p.output_mode,
            resolution: composed_video.then(|| p.resolution.clone()),
            frame_rate: composed_video.then_some(p.frame_rate),
            recording_layout: composed_video.then_some(p.recording_layout),
            custom_layout: (composed_video && p.recording_layout == RecordingLayout::Custom)
                .then(|| p.custom_layout.clone()),
            session_id: r.session_id.clone(),
            unique_session_id: r.unique_session_id.clone(),
            media_node: p.media_node.clone(),
            created_at: r.created_at,
            size: r.size,
            duration: r.duration,
            url: r.url.clone(),
            has_audio: p.has_audio,
            has_video: p.has_video,
            status: r.status,
        }
    }

    /// The model recording.
    pub fn into_model(self) -> Recording {
        let defaults = RecordingProperties::default();
        Recording {
            properties: RecordingProperties {
                name: self.name,
                has_audio: self.has_audio,
                has_video: self.has_video,
                output_mode: self.output_mode,
                recording_layout: self.recording_layout.unwrap_or(defaults.recording_layout),
                resolution: self.resolution.unwrap_or(defaults.resolution),
                frame_rate: self.frame_rate.unwrap_or(defaults.frame_rate),
                custom_layout: self.custom_layout.unwrap_or_default(),
                media_node: self.media_node,
                ..defaults
            },
            id: self.id,
            session_id: self.session_id,
            unique_session_id: self.unique_session_id,
            created_at: self.created_at,
            size: self.size,
            duration: self.duration,
            url: self.url,
            status: self.status,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Token

/// The Token object of the deprecated POST /tokens (spec §1.3.4).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenJson {
    /// The token URL.
    pub id: String,
    /// The token URL again.
    pub token: String,
    /// Creation time.
    pub created_at: Millis,
    /// The connection the token activates.
    pub connection_id: ConnectionId,
    /// Session id.
    pub session: SessionId,
    /// Role.
    pub role: OpenViduRole,
    /// Server data.
    pub data: String,
    /// Kurento options, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kurento_options: Option<KurentoOptions>,
}

impl TokenJson {
    /// The token object of a pending connection.
    pub fn new(c: &Connection) -> Self {
        let token = c.token.clone().unwrap_or_default();
        Self {
            id: token.clone(),
            token,
            created_at: c.created_at,
            connection_id: c.id.clone(),
            session: c.session_id.clone(),
            role: c.properties.role,
            data: c.properties.data.clone(),
            kurento_options: c.properties.kurento_options.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Server-side defaults that requests fall back to.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RequestDefaults {
    /// `OPENVIDU_STREAMS_FORCED_VIDEO_CODEC`.
    pub forced_video_codec: VideoCodec,
    /// `OPENVIDU_STREAMS_ALLOW_TRANSCODING`.
    pub allow_transcoding: bool,
}

/// Body of POST /sessions. Nulls mean "absent".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreateSessionRequest {
    /// ROUTED or RELAYED.
    #[serde(default)]
    pub media_mode: Option<MediaMode>,
    /// ALWAYS or MANUAL.
    #[serde(default)]
    pub recording_mode: Option<RecordingMode>,
    /// Custom id; empty = generated.
    #[serde(default)]
    pub custom_session_id: Option<String>,
    /// Forced codec.
    #[serde(default)]
    pub forced_video_codec: Option<VideoCodec>,
    /// Allow transcoding.
    #[serde(default)]
    pub allow_transcoding: Option<bool>,
    /// Defaults for recordings.
    #[serde(default)]
    pub default_recording_properties: Option<RecordingPropertiesJson>,
    /// PRO: media node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_node: Option<MediaNodeRef>,
}

impl From<&SessionProperties> for CreateSessionRequest {
    fn from(p: &SessionProperties) -> Self {
        Self {
            media_mode: Some(p.media_mode),
            recording_mode: Some(p.recording_mode),
            custom_session_id: Some(p.custom_session_id.clone()),
            forced_video_codec: Some(p.forced_video_codec),
            allow_transcoding: Some(p.allow_transcoding),
            default_recording_properties: Some((&p.default_recording_properties).into()),
            media_node: p.media_node.clone().map(|id| MediaNodeRef::Object { id }),
        }
    }
}

impl CreateSessionRequest {
    /// The session properties this request asks for, and the custom id if one was given.
    pub fn into_properties(
        self,
        defaults: &RequestDefaults,
    ) -> Result<(Option<SessionId>, SessionProperties), RequestError> {
        let custom = match self.custom_session_id.as_deref() {
            None | Some("") => None,
            Some(s) => Some(SessionId::parse(s).map_err(|_| {
                RequestError::BadRequest(format!(
                    "Parameter 'customSessionId' is wrong. Must be an alphanumeric string [a-zA-Z0-9_-]: {s}"
                ))
            })?),
        };
        let default_recording_properties =
            self.default_recording_properties.map(|r| r.over(&RecordingProperties::default())).unwrap_or_default();
        if !default_recording_properties.name.is_empty()
            && !crate::id::is_valid_custom_id(&default_recording_properties.name)
        {
            return Err(RequestError::BadRequest("Parameter 'defaultRecordingProperties.name' is wrong".into()));
        }
        let properties = SessionProperties {
            media_mode: self.media_mode.unwrap_or_default(),
            recording_mode: self.recording_mode.unwrap_or_default(),
            default_recording_properties,
            custom_session_id: custom.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            forced_video_codec: self.forced_video_codec.unwrap_or(defaults.forced_video_codec),
            allow_transcoding: self.allow_transcoding.unwrap_or(defaults.allow_transcoding),
            media_node: self.media_node.map(|m| m.id().clone()),
        };
        Ok((custom, properties))
    }
}

/// Body of POST /sessions/{id}/connection (and, with `session`, the JSON the Java client sends).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CreateConnectionRequest {
    /// WEBRTC or IPCAM.
    #[serde(default, rename = "type")]
    pub connection_type: Option<ConnectionType>,
    /// Server data.
    #[serde(default)]
    pub data: Option<String>,
    /// Record (PRO).
    #[serde(default)]
    pub record: Option<bool>,
    /// Role.
    #[serde(default)]
    pub role: Option<OpenViduRole>,
    /// Kurento options.
    #[serde(default)]
    pub kurento_options: Option<KurentoOptions>,
    /// IPCAM URI.
    #[serde(default)]
    pub rtsp_uri: Option<String>,
    /// IPCAM.
    #[serde(default)]
    pub adaptative_bitrate: Option<bool>,
    /// IPCAM.
    #[serde(default)]
    pub only_play_with_subscribers: Option<bool>,
    /// IPCAM.
    #[serde(default)]
    pub network_cache: Option<u32>,
}

impl From<&ConnectionProperties> for CreateConnectionRequest {
    fn from(p: &ConnectionProperties) -> Self {
        Self {
            connection_type: Some(p.connection_type),
            data: Some(p.data.clone()),
            record: Some(p.record),
            role: Some(p.role),
            kurento_options: p.kurento_options.clone(),
            rtsp_uri: p.rtsp_uri.clone(),
            adaptative_bitrate: p.adaptative_bitrate,
            only_play_with_subscribers: p.only_play_with_subscribers,
            network_cache: p.network_cache,
        }
    }
}

impl CreateConnectionRequest {
    /// The connection properties, with OpenVidu's defaults and checks.
    pub fn into_properties(self) -> Result<ConnectionProperties, RequestError> {
        let connection_type = self.connection_type.unwrap_or_default();
        let mut p = ConnectionProperties {
            connection_type,
            data: self.data.unwrap_or_default(),
            record: self.record.unwrap_or(true),
            role: self.role.unwrap_or_default(),
            kurento_options: self.kurento_options,
            ..ConnectionProperties::default()
        };
        if connection_type == ConnectionType::Ipcam {
            let uri = self
                .rtsp_uri
                .ok_or_else(|| RequestError::BadRequest("\"rtspUri\" is mandatory for IPCAM connections".into()))?;
            if !(uri.starts_with("rtsp://") || uri.starts_with("file://")) {
                return Err(RequestError::BadRequest(format!(
                    "Error in parameter \"rtspUri\". It must start with rtsp:// or file://: {uri}"
                )));
            }
            p.rtsp_uri = Some(uri);
            p.adaptative_bitrate = Some(self.adaptative_bitrate.unwrap_or(true));
            p.only_play_with_subscribers = Some(self.only_play_with_subscribers.unwrap_or(true));
            p.network_cache = Some(self.network_cache.unwrap_or(2000));
        }
        Ok(p)
    }
}

/// Body of PATCH /sessions/{id}/connection/{id} (PRO): role and record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UpdateConnectionRequest {
    /// New role.
    #[serde(default)]
    pub role: Option<OpenViduRole>,
    /// New record flag.
    #[serde(default)]
    pub record: Option<bool>,
}

impl UpdateConnectionRequest {
    /// An update of `role` and/or `record`.
    pub fn new(role: Option<OpenViduRole>, record: Option<bool>) -> Self {
        Self { role, record }
    }
}

/// Body of the deprecated POST /tokens.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct TokenRequest {
    /// Session id (mandatory).
    #[serde(default)]
    pub session: Option<String>,
    /// Role.
    #[serde(default)]
    pub role: Option<OpenViduRole>,
    /// Server data.
    #[serde(default)]
    pub data: Option<String>,
    /// Kurento options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kurento_options: Option<KurentoOptions>,
}

impl TokenRequest {
    /// The connection properties the token gets.
    pub fn connection_properties(&self) -> ConnectionProperties {
        ConnectionProperties {
            role: self.role.unwrap_or_default(),
            data: self.data.clone().unwrap_or_default(),
            kurento_options: self.kurento_options.clone(),
            ..ConnectionProperties::default()
        }
    }
}

/// Body of POST /recordings/start: the session and RecordingProperties members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StartRecordingRequest {
    /// Session id (mandatory).
    pub session: SessionId,
    /// The properties; absent members fall back to the session's defaults.
    #[serde(flatten)]
    pub properties: RecordingPropertiesJson,
}

impl StartRecordingRequest {
    /// A request to record `session` with `properties` (members left `None` fall back to the
    /// session's defaults on the server).
    pub fn new(session: SessionId, properties: RecordingPropertiesJson) -> Self {
        Self { session, properties }
    }
}

/// Body of POST /signal. Unset members are omitted when serialized (clients never send nulls).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SignalRequest {
    /// Session id (mandatory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Target connection ids; absent or empty = everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<String>>,
    /// Signal type, forwarded verbatim.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub signal_type: Option<String>,
    /// Payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// Body of GET /health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthJson {
    /// `UP` or `DOWN`.
    pub status: String,
}

#[cfg(test)]
mod tests;

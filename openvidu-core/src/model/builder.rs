//! Builders for the `#[non_exhaustive]` properties structs, in the style of the Java client's
//! `XxxProperties.Builder`: `SessionProperties::builder().custom_session_id("room").build()`.
//!
//! Every setter is optional; what is not set keeps OpenVidu's default (the `Default` impl of the
//! built type).

use super::{
    ConnectionProperties, ConnectionType, KurentoOptions, MediaMode, OpenViduRole, OutputMode, RecordingLayout,
    RecordingMode, RecordingProperties, SessionProperties, VideoCodec,
};
use crate::id::MediaNodeId;

/// Generates chainable setters `fn name(mut self, v: T) -> Self { self.0.field = conv(v); self }`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ty) => |$v:ident| $field:ident = $value:expr;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $v: $arg) -> Self {
                self.0.$field = $value;
                self
            }
        )*
    };
}

/// Builds [`SessionProperties`]; start with [`SessionProperties::builder`].
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SessionPropertiesBuilder(SessionProperties);

impl SessionProperties {
    /// A builder starting from OpenVidu's defaults.
    pub fn builder() -> SessionPropertiesBuilder {
        SessionPropertiesBuilder::default()
    }
}

impl SessionPropertiesBuilder {
    setters! {
        /// ROUTED (default) or RELAYED.
        media_mode(MediaMode) => |v| media_mode = v;
        /// MANUAL (default) or ALWAYS.
        recording_mode(RecordingMode) => |v| recording_mode = v;
        /// Defaults for the recordings of the session.
        default_recording_properties(RecordingProperties) => |v| default_recording_properties = v;
        /// A custom id (`^[a-zA-Z0-9_-]+$`); empty (default) lets the server generate one.
        custom_session_id(impl Into<String>) => |v| custom_session_id = v.into();
        /// The codec every publisher must use (default VP8).
        forced_video_codec(VideoCodec) => |v| forced_video_codec = v;
        /// Whether the media server may transcode (default false).
        allow_transcoding(bool) => |v| allow_transcoding = v;
        /// PRO: the media node the session must be created on.
        media_node(MediaNodeId) => |v| media_node = Some(v);
    }

    /// The properties.
    pub fn build(self) -> SessionProperties {
        self.0
    }
}

/// Builds [`ConnectionProperties`]; start with [`ConnectionProperties::builder`].
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ConnectionPropertiesBuilder(ConnectionProperties);

impl ConnectionProperties {
    /// A builder starting from OpenVidu's defaults (WEBRTC, PUBLISHER, data `""`, record true).
    pub fn builder() -> ConnectionPropertiesBuilder {
        ConnectionPropertiesBuilder::default()
    }
}

impl ConnectionPropertiesBuilder {
    setters! {
        /// WEBRTC (default) or IPCAM.
        connection_type(ConnectionType) => |v| connection_type = v;
        /// Server data, visible to every participant (default `""`).
        data(impl Into<String>) => |v| data = v.into();
        /// Whether INDIVIDUAL recordings include this connection (PRO; default true).
        record(bool) => |v| record = v;
        /// The participant's role (default PUBLISHER).
        role(OpenViduRole) => |v| role = v;
        /// Bandwidth limits and allowed filters.
        kurento_options(KurentoOptions) => |v| kurento_options = Some(v);
        /// IPCAM: the camera URI (`rtsp://…` or `file://…`).
        rtsp_uri(impl Into<String>) => |v| rtsp_uri = Some(v.into());
        /// IPCAM: adapt the bitrate (server default true).
        adaptative_bitrate(bool) => |v| adaptative_bitrate = Some(v);
        /// IPCAM: only pull the camera while someone watches (server default true).
        only_play_with_subscribers(bool) => |v| only_play_with_subscribers = Some(v);
        /// IPCAM: network cache in ms (server default 2000).
        network_cache(u32) => |v| network_cache = Some(v);
    }

    /// The properties.
    pub fn build(self) -> ConnectionProperties {
        self.0
    }
}

/// Builds [`RecordingProperties`]; start with [`RecordingProperties::builder`].
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RecordingPropertiesBuilder(RecordingProperties);

impl RecordingProperties {
    /// A builder starting from OpenVidu's defaults (spec §1.3.5).
    pub fn builder() -> RecordingPropertiesBuilder {
        RecordingPropertiesBuilder::default()
    }
}

impl RecordingPropertiesBuilder {
    setters! {
        /// File base name (`[a-zA-Z0-9_-]+`); empty (default) means "the recording id".
        name(impl Into<String>) => |v| name = v.into();
        /// Record audio (default true).
        has_audio(bool) => |v| has_audio = v;
        /// Record video (default true).
        has_video(bool) => |v| has_video = v;
        /// COMPOSED (default), COMPOSED_QUICK_START or INDIVIDUAL.
        output_mode(OutputMode) => |v| output_mode = v;
        /// Layout of a composed recording (default BEST_FIT).
        recording_layout(RecordingLayout) => |v| recording_layout = v;
        /// `WxH` of a composed recording, each 100–1999 (default `1280x720`).
        resolution(impl Into<String>) => |v| resolution = v.into();
        /// Frames per second of a composed recording, 1–120 (default 25).
        frame_rate(u32) => |v| frame_rate = v;
        /// Shared memory for the composer in bytes, at least 134217728 (default 536870912).
        shm_size(u64) => |v| shm_size = v;
        /// Path or URL of a CUSTOM layout.
        custom_layout(impl Into<String>) => |v| custom_layout = v.into();
        /// INDIVIDUAL: start even if some streams fail to record (default false).
        ignore_failed_streams(bool) => |v| ignore_failed_streams = v;
        /// PRO: the media node that records.
        media_node(MediaNodeId) => |v| media_node = Some(v);
    }

    /// The properties.
    pub fn build(self) -> RecordingProperties {
        self.0
    }
}

/// Builds [`KurentoOptions`]; start with [`KurentoOptions::builder`].
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct KurentoOptionsBuilder(KurentoOptions);

impl KurentoOptions {
    /// A builder with nothing set.
    pub fn builder() -> KurentoOptionsBuilder {
        KurentoOptionsBuilder::default()
    }

    /// Whether this connection may apply a filter of type `filter_type` (Java's
    /// `isFilterAllowed`).
    pub fn is_filter_allowed(&self, filter_type: &str) -> bool {
        self.allowed_filters.as_ref().is_some_and(|f| f.iter().any(|a| a == filter_type))
    }
}

impl KurentoOptionsBuilder {
    setters! {
        /// Max kbps the server receives from this connection (0 = unconstrained).
        video_max_recv_bandwidth(u32) => |v| video_max_recv_bandwidth = Some(v);
        /// Min kbps the server receives from this connection.
        video_min_recv_bandwidth(u32) => |v| video_min_recv_bandwidth = Some(v);
        /// Max kbps the server sends to this connection (0 = unconstrained).
        video_max_send_bandwidth(u32) => |v| video_max_send_bandwidth = Some(v);
        /// Min kbps the server sends to this connection.
        video_min_send_bandwidth(u32) => |v| video_min_send_bandwidth = Some(v);
        /// Filter types this connection may apply to its own stream.
        allowed_filters(impl IntoIterator<Item = impl Into<String>>) =>
            |v| allowed_filters = Some(v.into_iter().map(Into::into).collect());
    }

    /// The options.
    pub fn build(self) -> KurentoOptions {
        self.0
    }
}

#[cfg(test)]
mod tests;

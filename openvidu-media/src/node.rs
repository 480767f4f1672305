//! The contract between a master node and a media node: the [`MediaNode`] trait, the events a
//! media node reports and the errors it returns.
//!
//! A master talks to a media node only through these types, whether the node runs in-process
//! ([`LocalMediaNode`](crate::LocalMediaNode)) or in another process.

use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};
use openvidu_core::model::VideoCodec;

use crate::recording::{RecordedStream, RecordingReport, RecordingSpec};

/// Which media endpoint an ICE candidate or event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EndpointId {
    /// The receiving endpoint of a published stream.
    Publisher(StreamId),
    /// The sending endpoint that feeds `stream` to `subscriber`.
    Subscriber {
        /// The connection that receives the stream.
        subscriber: ConnectionId,
        /// The published stream it receives.
        stream: StreamId,
    },
}

impl EndpointId {
    /// The published stream this endpoint carries.
    pub fn stream(&self) -> &StreamId {
        match self {
            Self::Publisher(stream) | Self::Subscriber { stream, .. } => stream,
        }
    }
}

impl std::fmt::Display for EndpointId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Publisher(stream) => write!(f, "publisher {stream}"),
            Self::Subscriber { subscriber, stream } => {
                write!(f, "subscriber {subscriber} of {stream}")
            }
        }
    }
}

/// An ICE candidate as the browser's `RTCIceCandidateInit` carries it (and as the
/// `onIceCandidate` / `iceCandidate` JSON-RPC messages do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IceCandidate {
    /// The `candidate:…` attribute line, e.g.
    /// `candidate:1234 1 udp 2130706431 127.0.0.1 50000 typ host`. Empty = end of candidates.
    pub candidate: String,
    /// The media stream identification tag of the m-section it belongs to.
    pub sdp_mid: Option<String>,
    /// The index of the m-section it belongs to.
    pub sdp_m_line_index: Option<u16>,
}

impl IceCandidate {
    /// A candidate for the first (bundled) m-section.
    pub fn new(candidate: impl Into<String>, sdp_mid: Option<String>, index: Option<u16>) -> Self {
        Self { candidate: candidate.into(), sdp_mid, sdp_m_line_index: index }
    }
}

/// What [`MediaNode::publish`] needs besides the ids.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PublishOptions {
    /// The client's SDP offer (`publishVideo{sdpOffer}`).
    pub sdp_offer: String,
    /// Whether the stream carries audio (`hasAudio`): the offer must then have an audio section.
    pub has_audio: bool,
    /// Whether the stream carries video (`hasVideo`): the offer must then have a video section.
    pub has_video: bool,
    /// The session's forced video codec; [`VideoCodec::None`] accepts any of VP8, VP9 and H264.
    pub forced_video_codec: VideoCodec,
    /// `OPENVIDU_STREAMS_VIDEO_MAX_RECV_BANDWIDTH`: the most the publisher may send, in kbps
    /// (0 = unconstrained). Announced as `b=AS` in the answer and as REMB.
    pub max_recv_bandwidth_kbps: u32,
    /// `OPENVIDU_STREAMS_VIDEO_MIN_RECV_BANDWIDTH` in kbps. Recorded; a forwarding SFU cannot
    /// make a publisher send more than its network allows.
    pub min_recv_bandwidth_kbps: u32,
}

impl PublishOptions {
    /// Options for `sdp_offer` with OpenVidu's defaults: audio and video, any codec,
    /// 1000/300 kbps.
    pub fn new(sdp_offer: impl Into<String>) -> Self {
        Self {
            sdp_offer: sdp_offer.into(),
            has_audio: true,
            has_video: true,
            forced_video_codec: VideoCodec::None,
            max_recv_bandwidth_kbps: 1000,
            min_recv_bandwidth_kbps: 300,
        }
    }
}

/// Something a media node reports on its own, outside of any call.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum MediaEvent {
    /// A local ICE candidate to trickle to the client (server → client `iceCandidate`).
    IceCandidate {
        /// The session of the endpoint.
        session: SessionId,
        /// The endpoint that gathered the candidate.
        endpoint: EndpointId,
        /// The candidate.
        candidate: IceCandidate,
    },
    /// The endpoint's ICE/DTLS connected (media flows).
    Connected {
        /// The session of the endpoint.
        session: SessionId,
        /// The endpoint that connected.
        endpoint: EndpointId,
    },
    /// The endpoint failed or closed on its own (peer gone).
    Failed {
        /// The session of the endpoint.
        session: SessionId,
        /// The endpoint that failed.
        endpoint: EndpointId,
        /// What happened, for logs.
        reason: String,
    },
    /// A recording cannot go on (disk full, unwritable folder, composer died). Its files are
    /// closed cleanly; the master marks it `failed` and should call
    /// [`MediaNode::stop_recording`] to release it.
    RecordingFailed {
        /// The recorded session.
        session: SessionId,
        /// The recording.
        recording: RecordingId,
        /// What happened.
        reason: String,
    },
}

/// How busy a media node is, for choosing the least loaded one.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    /// Open routers (sessions).
    pub routers: usize,
    /// Publisher endpoints.
    pub publishers: usize,
    /// Subscriber endpoints.
    pub subscribers: usize,
    /// CPU load, 0.0–1.0 (1-minute load average per core; 0 where unknown).
    pub cpu_load: f32,
}

/// Why a media node call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The session has no router on this node.
    #[error("no media router for session {0}")]
    NoRouter(SessionId),
    /// No such published stream in the session.
    #[error("stream {0} is not published")]
    StreamNotFound(StreamId),
    /// No such subscription in the session.
    #[error("connection {subscriber} is not subscribed to {stream}")]
    SubscriptionNotFound {
        /// The subscribing connection.
        subscriber: ConnectionId,
        /// The stream.
        stream: StreamId,
    },
    /// The stream is already being published.
    #[error("stream {0} is already published")]
    AlreadyPublishing(StreamId),
    /// The SDP could not be used: garbage, wrong kind, missing sections or codecs.
    #[error("SDP error: {0}")]
    Sdp(String),
    /// The session forces a video codec the offer does not contain.
    #[error("the SDP offer does not contain the forced video codec {}", codec_name(*.0))]
    ForcedCodecNotFound(VideoCodec),
    /// A remote ICE candidate could not be parsed or applied.
    #[error("invalid ICE candidate: {0}")]
    IceCandidate(String),
    /// The WebRTC stack failed.
    #[error("WebRTC error: {0}")]
    Webrtc(String),
    /// The node's configuration cannot be used (e.g. a port cannot be bound).
    #[error("media node configuration error: {0}")]
    Config(String),
    /// No such recording runs on this node.
    #[error("recording {0} is not running on this node")]
    RecordingNotFound(RecordingId),
    /// The recording is already running.
    #[error("recording {0} is already running")]
    RecordingExists(RecordingId),
    /// Writing or processing the recording failed (disk full, unwritable path, encoder error).
    #[error("recording error: {0}")]
    Recording(String),
    /// Something this node does not do (e.g. CUSTOM recording layouts).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A bug in the node or the WebRTC stack (a task panicked); the call had no effect.
    #[error("internal media node error: {0}")]
    Internal(String),
}

impl MediaError {
    /// The OpenVidu JSON-RPC error code for this error: 302 SDP/media, 202 no router
    /// (session not found), 105 stream not published, 102 subscription not found, 106 already
    /// publishing, 800 forced codec missing, 999 generic (configuration, internal).
    pub fn rpc_code(&self) -> i32 {
        match self {
            Self::NoRouter(_) => 202,
            Self::StreamNotFound(_) => 105,
            Self::SubscriptionNotFound { .. } => 102,
            Self::AlreadyPublishing(_) => 106,
            Self::Sdp(_) | Self::IceCandidate(_) | Self::Webrtc(_) => 302,
            Self::ForcedCodecNotFound(_) => 800,
            Self::RecordingNotFound(_) => 203,
            Self::RecordingExists(_)
            | Self::Recording(_)
            | Self::Unsupported(_)
            | Self::Config(_)
            | Self::Internal(_) => 999,
        }
    }

    pub(crate) fn webrtc(err: impl std::fmt::Display) -> Self {
        Self::Webrtc(err.to_string())
    }
}

/// The name OpenVidu uses for a video codec (`VP8`, `VP9`, `H264`, `NONE`).
pub(crate) fn codec_name(codec: VideoCodec) -> &'static str {
    match codec {
        VideoCodec::Vp8 => "VP8",
        VideoCodec::Vp9 => "VP9",
        VideoCodec::H264 => "H264",
        VideoCodec::None => "NONE",
    }
}

/// The API a master node uses to drive one media node.
///
/// Every method names the session first; a session's endpoints all live in the router created
/// by [`create_router`](Self::create_router). Local ICE candidates and connection state come
/// back as [`MediaEvent`]s on the channel the node was built with.
#[async_trait::async_trait]
pub trait MediaNode: Send + Sync + 'static {
    /// The node's id.
    fn id(&self) -> &MediaNodeId;

    /// Creates the session's router. Idempotent.
    async fn create_router(&self, session: &SessionId) -> Result<(), MediaError>;

    /// Closes the session's router and every endpoint in it. Idempotent.
    async fn close_router(&self, session: &SessionId) -> Result<(), MediaError>;

    /// Publishes `stream` from the client's offer; returns the SDP answer.
    async fn publish(
        &self,
        session: &SessionId,
        stream: &StreamId,
        options: PublishOptions,
    ) -> Result<String, MediaError>;

    /// Unpublishes `stream`, closing its publisher endpoint and every subscriber endpoint fed
    /// by it.
    async fn unpublish(&self, session: &SessionId, stream: &StreamId) -> Result<(), MediaError>;

    /// Client offers (`receiveVideoFrom{sdpOffer}`): returns the answer.
    async fn subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, MediaError>;

    /// Server offers (`prepareReceiveVideoFrom`): returns the server's offer…
    async fn prepare_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<String, MediaError>;

    /// …and `receiveVideoFrom{sdpAnswer}` completes it.
    async fn complete_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), MediaError>;

    /// Closes the subscriber endpoint of `subscriber` for `stream`.
    async fn unsubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<(), MediaError>;

    /// A remote candidate from the client; candidates that arrive before the endpoint exists are
    /// queued and applied when it does.
    async fn add_ice_candidate(
        &self,
        session: &SessionId,
        endpoint: EndpointId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError>;

    /// Counts and CPU load.
    async fn load(&self) -> LoadReport;

    /// Starts recording `session` as `spec` says, with `streams` (those published now whose
    /// connection records). The folder must exist. Fails with [`MediaError::Recording`] when
    /// the folder cannot be written, [`MediaError::Unsupported`] for a CUSTOM layout.
    async fn start_recording(&self, spec: RecordingSpec, streams: Vec<RecordedStream>) -> Result<(), MediaError>;

    /// Adds a stream that started publishing during the recording.
    async fn record_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: RecordedStream,
    ) -> Result<(), MediaError>;

    /// Ends the part of a stream that stopped publishing (its file is closed cleanly; the
    /// same stream recorded again later gets a new file).
    async fn stop_recording_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: &StreamId,
    ) -> Result<(), MediaError>;

    /// Stops the recording, finishes its files and reports them. Always releases the
    /// recording, even when finishing fails (then the error says why).
    async fn stop_recording(&self, session: &SessionId, recording: &RecordingId)
    -> Result<RecordingReport, MediaError>;
}

#[allow(dead_code)]
fn assert_object_safe_and_send(_: &dyn MediaNode) {}

#[allow(dead_code)]
const fn assert_send_sync<T: Send + Sync>() {}
const _: () = {
    assert_send_sync::<MediaError>();
    assert_send_sync::<MediaEvent>();
};

//! The control protocol between a master node and a media node (openvidu-rs's own; OpenVidu PRO's
//! master ⇄ Kurento protocol is not reproduced).
//!
//! One WebSocket per master ⇄ media node pair, at [`WS_PATH`] on the media node, authenticated
//! with HTTP Basic `OPENVIDUAPP:<secret>`. Every frame is one JSON text message:
//!
//! - master → node: a [`Request`] `{"id": 7, "method": "publish", "params": {…}}`, one method per
//!   `MediaNode` call ([`Call`]);
//! - node → master: a [`NodeMessage`], either a [`Response`] with the request's id,
//!   `{"id": 7, "result": {…}}` or `{"id": 7, "error": {"code", "kind", "message", …}}`, or a
//!   [`NodeEvent`] pushed on its own, `{"event": "iceCandidate", …}`. The first frame of every
//!   connection is the [`NodeEvent::Hello`] that names the node.
//!
//! Requests are answered by id, in any order. [`HEALTH_PATH`] answers `GET` without
//! authentication with a [`HealthJson`].

use serde::{Deserialize, Serialize};

use crate::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId, TypeOfVideo};
use crate::model::{Millis, RecordingLayout, VideoCodec};

/// The protocol version a node announces in [`NodeEvent::Hello`] and [`HealthJson`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket endpoint of the control API on a media node.
pub const WS_PATH: &str = "/media-node/ws";

/// The unauthenticated health endpoint of a media node.
pub const HEALTH_PATH: &str = "/media-node/health";

/// A call from the master: `{"id": 7, "method": "…", "params": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the master, unique among its calls in flight; the response carries it back.
    pub id: u64,
    /// The method and its parameters.
    #[serde(flatten)]
    pub call: Call,
}

/// One variant per `MediaNode` method, serialized as `"method"` + `"params"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "params", rename_all = "camelCase")]
pub enum Call {
    /// `create_router`; result [`Empty`].
    CreateRouter(SessionParams),
    /// `close_router`; result [`Empty`].
    CloseRouter(SessionParams),
    /// `publish`; result [`SdpAnswerResult`].
    Publish(PublishParams),
    /// `unpublish`; result [`Empty`].
    Unpublish(StreamParams),
    /// `subscribe` (the client offers); result [`SdpAnswerResult`].
    Subscribe(SubscribeParams),
    /// `prepare_subscribe` (the node offers); result [`SdpOfferResult`].
    PrepareSubscribe(SubscriptionParams),
    /// `complete_subscribe`; result [`Empty`].
    CompleteSubscribe(CompleteSubscribeParams),
    /// `unsubscribe`; result [`Empty`].
    Unsubscribe(SubscriptionParams),
    /// `add_ice_candidate`; result [`Empty`].
    AddIceCandidate(AddIceCandidateParams),
    /// `load`; result [`LoadJson`].
    Load(Empty),
    /// `start_recording`; result [`Empty`].
    StartRecording(StartRecordingParams),
    /// `record_stream`; result [`Empty`].
    RecordStream(RecordStreamParams),
    /// `stop_recording_stream`; result [`Empty`].
    StopRecordingStream(StopRecordingStreamParams),
    /// `stop_recording`; result [`RecordingReportJson`].
    StopRecording(RecordingParams),
}

impl Call {
    /// The method name as it appears on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Self::CreateRouter(_) => "createRouter",
            Self::CloseRouter(_) => "closeRouter",
            Self::Publish(_) => "publish",
            Self::Unpublish(_) => "unpublish",
            Self::Subscribe(_) => "subscribe",
            Self::PrepareSubscribe(_) => "prepareSubscribe",
            Self::CompleteSubscribe(_) => "completeSubscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::AddIceCandidate(_) => "addIceCandidate",
            Self::Load(_) => "load",
            Self::StartRecording(_) => "startRecording",
            Self::RecordStream(_) => "recordStream",
            Self::StopRecordingStream(_) => "stopRecordingStream",
            Self::StopRecording(_) => "stopRecording",
        }
    }

    /// The session the call is about (`None` for `load`).
    pub fn session(&self) -> Option<&SessionId> {
        Some(match self {
            Self::CreateRouter(p) | Self::CloseRouter(p) => &p.session_id,
            Self::Publish(p) => &p.session_id,
            Self::Unpublish(p) => &p.session_id,
            Self::Subscribe(p) => &p.session_id,
            Self::PrepareSubscribe(p) | Self::Unsubscribe(p) => &p.session_id,
            Self::CompleteSubscribe(p) => &p.session_id,
            Self::AddIceCandidate(p) => &p.session_id,
            Self::Load(_) => return None,
            Self::StartRecording(p) => &p.recording.session_id,
            Self::RecordStream(p) => &p.session_id,
            Self::StopRecordingStream(p) => &p.session_id,
            Self::StopRecording(p) => &p.session_id,
        })
    }
}

/// No parameters / no result: `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionParams {
    /// The session.
    pub session_id: SessionId,
}

/// A published stream of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamParams {
    /// The session.
    pub session_id: SessionId,
    /// The stream.
    pub stream_id: StreamId,
}

/// `publish`: the ids and the fields of `PublishOptions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishParams {
    /// The session.
    pub session_id: SessionId,
    /// The stream to publish.
    pub stream_id: StreamId,
    /// The client's SDP offer.
    pub sdp_offer: String,
    /// The stream carries audio.
    pub has_audio: bool,
    /// The stream carries video.
    pub has_video: bool,
    /// The session's forced video codec (`NONE` = any).
    pub forced_video_codec: VideoCodec,
    /// The most the publisher may send, kbps (0 = unconstrained).
    pub max_recv_bandwidth: u32,
    /// `OPENVIDU_STREAMS_VIDEO_MIN_RECV_BANDWIDTH`, kbps.
    pub min_recv_bandwidth: u32,
}

/// `subscribe`: the client offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeParams {
    /// The session.
    pub session_id: SessionId,
    /// The subscribing connection.
    pub subscriber_id: ConnectionId,
    /// The stream it receives.
    pub stream_id: StreamId,
    /// The client's SDP offer.
    pub sdp_offer: String,
}

/// A subscription: (subscriber, stream) in a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionParams {
    /// The session.
    pub session_id: SessionId,
    /// The subscribing connection.
    pub subscriber_id: ConnectionId,
    /// The stream it receives.
    pub stream_id: StreamId,
}

/// `complete_subscribe`: the client's answer to the node's offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompleteSubscribeParams {
    /// The session.
    pub session_id: SessionId,
    /// The subscribing connection.
    pub subscriber_id: ConnectionId,
    /// The stream it receives.
    pub stream_id: StreamId,
    /// The client's SDP answer.
    pub sdp_answer: String,
}

/// The endpoint an ICE candidate or event belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum EndpointJson {
    /// `{"type": "publisher", "streamId"}`: the receiving endpoint of a published stream.
    Publisher {
        /// The stream.
        stream_id: StreamId,
    },
    /// `{"type": "subscriber", "subscriberId", "streamId"}`: the endpoint feeding a stream to a
    /// subscriber.
    Subscriber {
        /// The subscribing connection.
        subscriber_id: ConnectionId,
        /// The stream.
        stream_id: StreamId,
    },
}

/// An ICE candidate as `RTCIceCandidateInit` carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidateJson {
    /// The `candidate:…` line (empty = end of candidates).
    pub candidate: String,
    /// The m-section's mid.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// The m-section's index.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u16>,
}

/// `add_ice_candidate`: a remote candidate from the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddIceCandidateParams {
    /// The session.
    pub session_id: SessionId,
    /// The endpoint the candidate is for.
    pub endpoint: EndpointJson,
    /// The candidate.
    pub candidate: IceCandidateJson,
}

/// How a recording is written, flattened into [`RecordingSpecJson`] under `"outputMode"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outputMode", rename_all = "SCREAMING_SNAKE_CASE", rename_all_fields = "camelCase")]
pub enum RecordingKindJson {
    /// One WebM per stream, zipped at stop.
    Individual,
    /// One file for the whole session.
    Composed {
        /// The layout.
        layout: RecordingLayout,
        /// Output width in pixels.
        width: u32,
        /// Output height in pixels.
        height: u32,
        /// Output frames per second.
        frame_rate: u32,
    },
}

/// What to record and where (the fields of `RecordingSpec`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingSpecJson {
    /// The recorded session.
    pub session_id: SessionId,
    /// The recording id.
    pub id: RecordingId,
    /// The final base name of the files.
    pub name: String,
    /// The folder the files go to, on the media node's file system (it must exist there).
    pub folder: String,
    /// Recording start, ms since the epoch.
    pub created_at: Millis,
    /// Record audio.
    pub has_audio: bool,
    /// Record video.
    pub has_video: bool,
    /// INDIVIDUAL or COMPOSED with its format.
    #[serde(flatten)]
    pub kind: RecordingKindJson,
}

/// A stream to record (the fields of `RecordedStream`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedStreamJson {
    /// The published stream.
    pub stream_id: StreamId,
    /// Its publisher's connection.
    pub connection_id: ConnectionId,
    /// The publisher's client data.
    #[serde(default)]
    pub client_data: String,
    /// The publisher's server data.
    #[serde(default)]
    pub server_data: String,
    /// The stream has audio.
    pub has_audio: bool,
    /// The stream has video.
    pub has_video: bool,
    /// Its kind of video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_of_video: Option<TypeOfVideo>,
    /// The announced video `[width, height]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_dimensions: Option<(u16, u16)>,
}

/// `start_recording`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecordingParams {
    /// What to record.
    pub recording: RecordingSpecJson,
    /// The streams published now whose connection records.
    pub streams: Vec<RecordedStreamJson>,
}

/// `record_stream`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordStreamParams {
    /// The session.
    pub session_id: SessionId,
    /// The recording.
    pub recording_id: RecordingId,
    /// The stream to add.
    pub stream: RecordedStreamJson,
}

/// `stop_recording_stream`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRecordingStreamParams {
    /// The session.
    pub session_id: SessionId,
    /// The recording.
    pub recording_id: RecordingId,
    /// The stream that stopped.
    pub stream_id: StreamId,
}

/// A recording of a session (`stop_recording`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingParams {
    /// The session.
    pub session_id: SessionId,
    /// The recording.
    pub recording_id: RecordingId,
}

/// The result of `publish` and `subscribe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SdpAnswerResult {
    /// The node's SDP answer.
    pub sdp_answer: String,
}

/// The result of `prepareSubscribe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SdpOfferResult {
    /// The node's SDP offer.
    pub sdp_offer: String,
}

/// How busy a node is (the result of `load`, and part of [`HealthJson`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadJson {
    /// Open routers (sessions).
    pub routers: u64,
    /// Publisher endpoints.
    pub publishers: u64,
    /// Subscriber endpoints.
    pub subscribers: u64,
    /// CPU load, 0.0–1.0.
    pub cpu_load: f32,
}

/// What a finished recording holds (the result of `stopRecording`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingReportJson {
    /// Size in bytes.
    pub size: u64,
    /// Duration in seconds.
    pub duration: f64,
    /// The output holds audio.
    pub has_audio: bool,
    /// The output holds video.
    pub has_video: bool,
    /// The files written in the folder.
    pub files: Vec<String>,
}

/// The answer to one [`Request`]: `{"id", "result"}` or `{"id", "error"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The result or the error.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl Response {
    /// A success.
    pub fn result(id: u64, result: serde_json::Value) -> Self {
        Self { id, outcome: Outcome::Result(result) }
    }

    /// A failure.
    pub fn error(id: u64, error: ErrorJson) -> Self {
        Self { id, outcome: Outcome::Error(error) }
    }
}

/// The `"result"` or `"error"` member of a [`Response`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The method's result (its type depends on the method, see [`Call`]).
    Result(serde_json::Value),
    /// Why the call failed.
    Error(ErrorJson),
}

/// A failed call: `{"code", "kind", "message", …the kind's fields}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    /// The OpenVidu JSON-RPC error code of the error (`MediaError::rpc_code`).
    pub code: i32,
    /// Which error, with what is needed to rebuild it.
    #[serde(flatten)]
    pub kind: ErrorKind,
    /// The error's text, for logs.
    pub message: String,
}

/// The kinds of `MediaError`, plus the protocol's own [`BadRequest`](Self::BadRequest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ErrorKind {
    /// The session has no router on this node.
    NoRouter {
        /// The session.
        session_id: SessionId,
    },
    /// No such published stream.
    StreamNotFound {
        /// The stream.
        stream_id: StreamId,
    },
    /// No such subscription.
    SubscriptionNotFound {
        /// The subscriber.
        subscriber_id: ConnectionId,
        /// The stream.
        stream_id: StreamId,
    },
    /// The stream is already published.
    AlreadyPublishing {
        /// The stream.
        stream_id: StreamId,
    },
    /// Unusable SDP.
    Sdp {
        /// What is wrong.
        detail: String,
    },
    /// The offer lacks the forced codec.
    ForcedCodecNotFound {
        /// The forced codec.
        codec: VideoCodec,
    },
    /// Unusable ICE candidate.
    IceCandidate {
        /// What is wrong.
        detail: String,
    },
    /// The WebRTC stack failed.
    Webrtc {
        /// What happened.
        detail: String,
    },
    /// The node's configuration cannot be used.
    Config {
        /// What is wrong.
        detail: String,
    },
    /// No such recording on the node.
    RecordingNotFound {
        /// The recording.
        recording_id: RecordingId,
    },
    /// The recording already runs.
    RecordingExists {
        /// The recording.
        recording_id: RecordingId,
    },
    /// Recording failed.
    Recording {
        /// What happened.
        detail: String,
    },
    /// Not supported by the node.
    Unsupported {
        /// What.
        detail: String,
    },
    /// A bug in the node.
    Internal {
        /// What happened.
        detail: String,
    },
    /// The node could not read the request (malformed JSON, unknown method, bad params).
    BadRequest {
        /// What is wrong.
        detail: String,
    },
    /// A kind this side does not know (a newer peer); read `message`.
    #[serde(other)]
    Unknown,
}

/// Something the node reports on its own: `{"event": "…", …}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum NodeEvent {
    /// The first frame of every connection: who the node is.
    Hello {
        /// The node's id.
        node_id: MediaNodeId,
        /// The node's software version.
        version: String,
        /// [`PROTOCOL_VERSION`] of the node.
        protocol: u32,
    },
    /// A local ICE candidate to trickle to the client.
    IceCandidate {
        /// The session of the endpoint.
        session_id: SessionId,
        /// The endpoint.
        endpoint: EndpointJson,
        /// The candidate.
        candidate: IceCandidateJson,
    },
    /// The endpoint connected.
    Connected {
        /// The session of the endpoint.
        session_id: SessionId,
        /// The endpoint.
        endpoint: EndpointJson,
    },
    /// The endpoint failed or closed on its own.
    Failed {
        /// The session of the endpoint.
        session_id: SessionId,
        /// The endpoint.
        endpoint: EndpointJson,
        /// What happened.
        reason: String,
    },
    /// A recording cannot go on.
    RecordingFailed {
        /// The recorded session.
        session_id: SessionId,
        /// The recording.
        recording_id: RecordingId,
        /// What happened.
        reason: String,
    },
}

/// Any frame a node sends: an event (it has `"event"`) or a response (it has `"id"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeMessage {
    /// A pushed event.
    Event(NodeEvent),
    /// The answer to a request.
    Response(Response),
}

/// `GET /media-node/health`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthJson {
    /// The node's id.
    pub id: MediaNodeId,
    /// The node's software version.
    pub version: String,
    /// [`PROTOCOL_VERSION`] of the node.
    pub protocol: u32,
    /// Its load.
    pub load: LoadJson,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn session() -> SessionId {
        SessionId::parse("ses_A").unwrap()
    }
    fn stream() -> StreamId {
        StreamId::parse("str_CAM_AbCd_con_X").unwrap()
    }

    #[test]
    fn publish_request_golden() {
        let request = Request {
            id: 7,
            call: Call::Publish(PublishParams {
                session_id: session(),
                stream_id: stream(),
                sdp_offer: "v=0\r\n".into(),
                has_audio: true,
                has_video: false,
                forced_video_codec: VideoCodec::Vp8,
                max_recv_bandwidth: 1000,
                min_recv_bandwidth: 300,
            }),
        };
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            text,
            r#"{"id":7,"method":"publish","params":{"sessionId":"ses_A","streamId":"str_CAM_AbCd_con_X","sdpOffer":"v=0\r\n","hasAudio":true,"hasVideo":false,"forcedVideoCodec":"VP8","maxRecvBandwidth":1000,"minRecvBandwidth":300}}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
        assert_eq!(request.call.method(), "publish");
        assert_eq!(request.call.session(), Some(&session()));
    }

    #[test]
    fn ice_candidate_request_and_load_request() {
        let v = json!({"id": 1, "method": "addIceCandidate", "params": {
            "sessionId": "ses_A",
            "endpoint": {"type": "subscriber", "subscriberId": "con_Y", "streamId": "str_CAM_AbCd_con_X"},
            "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
        }});
        let request: Request = serde_json::from_value(v.clone()).unwrap();
        let Call::AddIceCandidate(p) = &request.call else { panic!("{request:?}") };
        assert_eq!(
            p.endpoint,
            EndpointJson::Subscriber { subscriber_id: ConnectionId::parse("con_Y").unwrap(), stream_id: stream() }
        );
        assert_eq!(p.candidate.sdp_m_line_index, Some(0));
        assert_eq!(serde_json::to_value(&request).unwrap(), v);

        let load: Request = serde_json::from_str(r#"{"id":2,"method":"load","params":{}}"#).unwrap();
        assert_eq!(load.call, Call::Load(Empty {}));
        assert_eq!(load.call.session(), None);
    }

    #[test]
    fn start_recording_request_flattens_the_output_mode() {
        let spec = RecordingSpecJson {
            session_id: session(),
            id: RecordingId::parse("ses_A-1").unwrap(),
            name: "rec".into(),
            folder: "/rec/ses_A-1".into(),
            created_at: 1_632_400_000_000,
            has_audio: true,
            has_video: true,
            kind: RecordingKindJson::Composed {
                layout: RecordingLayout::BestFit,
                width: 1280,
                height: 720,
                frame_rate: 25,
            },
        };
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            v,
            json!({"sessionId": "ses_A", "id": "ses_A-1", "name": "rec", "folder": "/rec/ses_A-1",
                "createdAt": 1_632_400_000_000u64, "hasAudio": true, "hasVideo": true,
                "outputMode": "COMPOSED", "layout": "BEST_FIT", "width": 1280, "height": 720, "frameRate": 25})
        );
        assert_eq!(serde_json::from_value::<RecordingSpecJson>(v).unwrap(), spec);
        let individual = json!({"sessionId": "ses_A", "id": "ses_A", "name": "n", "folder": "/f",
            "createdAt": 1, "hasAudio": true, "hasVideo": false, "outputMode": "INDIVIDUAL"});
        let spec: RecordingSpecJson = serde_json::from_value(individual).unwrap();
        assert_eq!(spec.kind, RecordingKindJson::Individual);
    }

    #[test]
    fn responses_golden() {
        let ok = Response::result(3, json!({"sdpAnswer": "v=0"}));
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"id":3,"result":{"sdpAnswer":"v=0"}}"#);
        let err = Response::error(
            4,
            ErrorJson {
                code: 202,
                kind: ErrorKind::NoRouter { session_id: session() },
                message: "no media router for session ses_A".into(),
            },
        );
        let text = serde_json::to_string(&err).unwrap();
        assert_eq!(
            text,
            r#"{"id":4,"error":{"code":202,"kind":"noRouter","sessionId":"ses_A","message":"no media router for session ses_A"}}"#
        );
        assert_eq!(serde_json::from_str::<NodeMessage>(&text).unwrap(), NodeMessage::Response(err));
        assert_eq!(serde_json::from_str::<NodeMessage>(r#"{"id":3,"result":{"sdpAnswer":"v=0"}}"#).unwrap(), {
            NodeMessage::Response(ok)
        });
    }

    #[test]
    fn unknown_error_kinds_are_kept_readable() {
        let text = r#"{"id":4,"error":{"code":999,"kind":"quotaExceeded","limit":3,"message":"too many"}}"#;
        let NodeMessage::Response(Response { outcome: Outcome::Error(e), .. }) = serde_json::from_str(text).unwrap()
        else {
            panic!("not an error response")
        };
        assert_eq!(e.kind, ErrorKind::Unknown);
        assert_eq!(e.message, "too many");
    }

    #[test]
    fn events_golden() {
        let event = NodeEvent::IceCandidate {
            session_id: session(),
            endpoint: EndpointJson::Publisher { stream_id: stream() },
            candidate: IceCandidateJson {
                candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
            },
        };
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            text,
            r#"{"event":"iceCandidate","sessionId":"ses_A","endpoint":{"type":"publisher","streamId":"str_CAM_AbCd_con_X"},"candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#
        );
        assert_eq!(serde_json::from_str::<NodeMessage>(&text).unwrap(), NodeMessage::Event(event));
        let hello = r#"{"event":"hello","nodeId":"media_1","version":"0.1.0","protocol":1}"#;
        assert!(matches!(
            serde_json::from_str::<NodeMessage>(hello).unwrap(),
            NodeMessage::Event(NodeEvent::Hello { protocol: 1, .. })
        ));
        let failed = NodeEvent::RecordingFailed {
            session_id: session(),
            recording_id: RecordingId::parse("ses_A").unwrap(),
            reason: "disk full".into(),
        };
        assert_eq!(
            serde_json::to_value(&failed).unwrap(),
            json!({"event": "recordingFailed", "sessionId": "ses_A", "recordingId": "ses_A", "reason": "disk full"})
        );
    }

    #[test]
    fn bad_requests_do_not_parse() {
        for text in [
            r#"{"id":1,"method":"explode","params":{}}"#,
            r#"{"id":1,"method":"createRouter","params":{"sessionId":"bad id!"}}"#,
            r#"{"id":1,"method":"publish"}"#,
            r#"[1,2,3]"#,
        ] {
            assert!(serde_json::from_str::<Request>(text).is_err(), "{text}");
        }
    }
}

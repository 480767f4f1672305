//! Conversions between the [`MediaNode`] API and its wire form
//! ([`openvidu_core::wire::media_node`]), used by both ends of the control connection:
//! [`RemoteMediaNode`](crate::RemoteMediaNode) on the master and [`dispatch`] on the media node.
//!
//! Every [`MediaError`] survives the trip: [`error_to_wire`] then [`error_from_wire`] gives back
//! the same variant with the same ids and text.

use std::path::PathBuf;

use openvidu_core::id::SessionId;
use openvidu_core::wire::media_node::{
    AddIceCandidateParams, Call, CompleteSubscribeParams, Empty, EndpointJson, ErrorJson, ErrorKind, IceCandidateJson,
    LoadJson, NodeEvent, PublishParams, RecordStreamParams, RecordedStreamJson, RecordingKindJson, RecordingParams,
    RecordingReportJson, RecordingSpecJson, SdpAnswerResult, SdpOfferResult, SessionParams, StartRecordingParams,
    StopRecordingStreamParams, StreamParams, SubscribeParams, SubscriptionParams,
};
use serde::Serialize;

use crate::node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaEvent, MediaNode, PublishOptions};
use crate::recording::{RecordedStream, RecordingKind, RecordingReport, RecordingSpec};

/// A [`MediaError`] as the node sends it.
pub fn error_to_wire(error: &MediaError) -> ErrorJson {
    let kind = match error {
        MediaError::NoRouter(s) => ErrorKind::NoRouter { session_id: s.clone() },
        MediaError::StreamNotFound(s) => ErrorKind::StreamNotFound { stream_id: s.clone() },
        MediaError::SubscriptionNotFound { subscriber, stream } => {
            ErrorKind::SubscriptionNotFound { subscriber_id: subscriber.clone(), stream_id: stream.clone() }
        }
        MediaError::AlreadyPublishing(s) => ErrorKind::AlreadyPublishing { stream_id: s.clone() },
        MediaError::Sdp(d) => ErrorKind::Sdp { detail: d.clone() },
        MediaError::ForcedCodecNotFound(c) => ErrorKind::ForcedCodecNotFound { codec: *c },
        MediaError::IceCandidate(d) => ErrorKind::IceCandidate { detail: d.clone() },
        MediaError::Webrtc(d) => ErrorKind::Webrtc { detail: d.clone() },
        MediaError::Config(d) => ErrorKind::Config { detail: d.clone() },
        MediaError::RecordingNotFound(r) => ErrorKind::RecordingNotFound { recording_id: r.clone() },
        MediaError::RecordingExists(r) => ErrorKind::RecordingExists { recording_id: r.clone() },
        MediaError::Recording(d) => ErrorKind::Recording { detail: d.clone() },
        MediaError::Unsupported(d) => ErrorKind::Unsupported { detail: d.clone() },
        MediaError::Internal(d) => ErrorKind::Internal { detail: d.clone() },
    };
    ErrorJson { code: error.rpc_code(), kind, message: error.to_string() }
}

/// The [`MediaError`] a node's error stands for. A request the node could not read, and kinds
/// this version does not know, become [`MediaError::Internal`].
pub fn error_from_wire(error: ErrorJson) -> MediaError {
    match error.kind {
        ErrorKind::NoRouter { session_id } => MediaError::NoRouter(session_id),
        ErrorKind::StreamNotFound { stream_id } => MediaError::StreamNotFound(stream_id),
        ErrorKind::SubscriptionNotFound { subscriber_id, stream_id } => {
            MediaError::SubscriptionNotFound { subscriber: subscriber_id, stream: stream_id }
        }
        ErrorKind::AlreadyPublishing { stream_id } => MediaError::AlreadyPublishing(stream_id),
        ErrorKind::Sdp { detail } => MediaError::Sdp(detail),
        ErrorKind::ForcedCodecNotFound { codec } => MediaError::ForcedCodecNotFound(codec),
        ErrorKind::IceCandidate { detail } => MediaError::IceCandidate(detail),
        ErrorKind::Webrtc { detail } => MediaError::Webrtc(detail),
        ErrorKind::Config { detail } => MediaError::Config(detail),
        ErrorKind::RecordingNotFound { recording_id } => MediaError::RecordingNotFound(recording_id),
        ErrorKind::RecordingExists { recording_id } => MediaError::RecordingExists(recording_id),
        ErrorKind::Recording { detail } => MediaError::Recording(detail),
        ErrorKind::Unsupported { detail } => MediaError::Unsupported(detail),
        ErrorKind::Internal { detail } => MediaError::Internal(detail),
        ErrorKind::BadRequest { detail } => {
            MediaError::Internal(format!("the media node rejected the request: {detail}"))
        }
        ErrorKind::Unknown => MediaError::Internal(error.message),
    }
}

/// An endpoint id on the wire.
pub fn endpoint_to_wire(endpoint: &EndpointId) -> EndpointJson {
    match endpoint {
        EndpointId::Publisher(stream) => EndpointJson::Publisher { stream_id: stream.clone() },
        EndpointId::Subscriber { subscriber, stream } => {
            EndpointJson::Subscriber { subscriber_id: subscriber.clone(), stream_id: stream.clone() }
        }
    }
}

/// An endpoint id from the wire.
pub fn endpoint_from_wire(endpoint: EndpointJson) -> EndpointId {
    match endpoint {
        EndpointJson::Publisher { stream_id } => EndpointId::Publisher(stream_id),
        EndpointJson::Subscriber { subscriber_id, stream_id } => {
            EndpointId::Subscriber { subscriber: subscriber_id, stream: stream_id }
        }
    }
}

/// An ICE candidate on the wire.
pub fn candidate_to_wire(candidate: IceCandidate) -> IceCandidateJson {
    IceCandidateJson {
        candidate: candidate.candidate,
        sdp_mid: candidate.sdp_mid,
        sdp_m_line_index: candidate.sdp_m_line_index,
    }
}

/// An ICE candidate from the wire.
pub fn candidate_from_wire(candidate: IceCandidateJson) -> IceCandidate {
    IceCandidate::new(candidate.candidate, candidate.sdp_mid, candidate.sdp_m_line_index)
}

/// A node's event on the wire.
pub fn event_to_wire(event: MediaEvent) -> NodeEvent {
    match event {
        MediaEvent::IceCandidate { session, endpoint, candidate } => NodeEvent::IceCandidate {
            session_id: session,
            endpoint: endpoint_to_wire(&endpoint),
            candidate: candidate_to_wire(candidate),
        },
        MediaEvent::Connected { session, endpoint } => {
            NodeEvent::Connected { session_id: session, endpoint: endpoint_to_wire(&endpoint) }
        }
        MediaEvent::Failed { session, endpoint, reason } => {
            NodeEvent::Failed { session_id: session, endpoint: endpoint_to_wire(&endpoint), reason }
        }
        MediaEvent::RecordingFailed { session, recording, reason } => {
            NodeEvent::RecordingFailed { session_id: session, recording_id: recording, reason }
        }
    }
}

/// The [`MediaEvent`] a node's event stands for (`None` for [`NodeEvent::Hello`]).
pub fn event_from_wire(event: NodeEvent) -> Option<MediaEvent> {
    Some(match event {
        NodeEvent::Hello { .. } => return None,
        NodeEvent::IceCandidate { session_id, endpoint, candidate } => MediaEvent::IceCandidate {
            session: session_id,
            endpoint: endpoint_from_wire(endpoint),
            candidate: candidate_from_wire(candidate),
        },
        NodeEvent::Connected { session_id, endpoint } => {
            MediaEvent::Connected { session: session_id, endpoint: endpoint_from_wire(endpoint) }
        }
        NodeEvent::Failed { session_id, endpoint, reason } => {
            MediaEvent::Failed { session: session_id, endpoint: endpoint_from_wire(endpoint), reason }
        }
        NodeEvent::RecordingFailed { session_id, recording_id, reason } => {
            MediaEvent::RecordingFailed { session: session_id, recording: recording_id, reason }
        }
    })
}

/// A load report on the wire.
pub fn load_to_wire(load: &LoadReport) -> LoadJson {
    LoadJson {
        routers: load.routers as u64,
        publishers: load.publishers as u64,
        subscribers: load.subscribers as u64,
        cpu_load: load.cpu_load,
    }
}

/// A load report from the wire.
pub fn load_from_wire(load: LoadJson) -> LoadReport {
    let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    LoadReport {
        routers: count(load.routers),
        publishers: count(load.publishers),
        subscribers: count(load.subscribers),
        cpu_load: load.cpu_load,
    }
}

/// A recording spec on the wire.
pub fn spec_to_wire(spec: &RecordingSpec) -> RecordingSpecJson {
    RecordingSpecJson {
        session_id: spec.session.clone(),
        id: spec.id.clone(),
        name: spec.name.clone(),
        folder: spec.folder.to_string_lossy().into_owned(),
        created_at: spec.created_at,
        has_audio: spec.has_audio,
        has_video: spec.has_video,
        kind: match &spec.kind {
            RecordingKind::Individual => RecordingKindJson::Individual,
            RecordingKind::Composed { layout, width, height, frame_rate } => {
                RecordingKindJson::Composed { layout: *layout, width: *width, height: *height, frame_rate: *frame_rate }
            }
        },
    }
}

/// A recording spec from the wire.
pub fn spec_from_wire(spec: RecordingSpecJson) -> RecordingSpec {
    RecordingSpec {
        session: spec.session_id,
        id: spec.id,
        name: spec.name,
        folder: PathBuf::from(spec.folder),
        created_at: spec.created_at,
        has_audio: spec.has_audio,
        has_video: spec.has_video,
        kind: match spec.kind {
            RecordingKindJson::Individual => RecordingKind::Individual,
            RecordingKindJson::Composed { layout, width, height, frame_rate } => {
                RecordingKind::Composed { layout, width, height, frame_rate }
            }
        },
    }
}

/// A recorded stream on the wire.
pub fn recorded_stream_to_wire(stream: RecordedStream) -> RecordedStreamJson {
    RecordedStreamJson {
        stream_id: stream.stream,
        connection_id: stream.connection,
        client_data: stream.client_data,
        server_data: stream.server_data,
        has_audio: stream.has_audio,
        has_video: stream.has_video,
        type_of_video: stream.type_of_video,
        video_dimensions: stream.video_dimensions,
    }
}

/// A recorded stream from the wire.
pub fn recorded_stream_from_wire(stream: RecordedStreamJson) -> RecordedStream {
    RecordedStream {
        stream: stream.stream_id,
        connection: stream.connection_id,
        client_data: stream.client_data,
        server_data: stream.server_data,
        has_audio: stream.has_audio,
        has_video: stream.has_video,
        type_of_video: stream.type_of_video,
        video_dimensions: stream.video_dimensions,
    }
}

/// A recording report on the wire.
pub fn report_to_wire(report: RecordingReport) -> RecordingReportJson {
    RecordingReportJson {
        size: report.size,
        duration: report.duration,
        has_audio: report.has_audio,
        has_video: report.has_video,
        files: report.files,
    }
}

/// A recording report from the wire.
pub fn report_from_wire(report: RecordingReportJson) -> RecordingReport {
    RecordingReport {
        size: report.size,
        duration: report.duration,
        has_audio: report.has_audio,
        has_video: report.has_video,
        files: report.files,
    }
}

/// `publish`'s parameters.
pub(crate) fn publish_to_wire(
    session: &SessionId,
    stream: &openvidu_core::id::StreamId,
    options: PublishOptions,
) -> PublishParams {
    PublishParams {
        session_id: session.clone(),
        stream_id: stream.clone(),
        sdp_offer: options.sdp_offer,
        has_audio: options.has_audio,
        has_video: options.has_video,
        forced_video_codec: options.forced_video_codec,
        max_recv_bandwidth: options.max_recv_bandwidth_kbps,
        min_recv_bandwidth: options.min_recv_bandwidth_kbps,
    }
}

fn publish_options_from_wire(p: &mut PublishParams) -> PublishOptions {
    PublishOptions {
        sdp_offer: std::mem::take(&mut p.sdp_offer),
        has_audio: p.has_audio,
        has_video: p.has_video,
        forced_video_codec: p.forced_video_codec,
        max_recv_bandwidth_kbps: p.max_recv_bandwidth,
        min_recv_bandwidth_kbps: p.min_recv_bandwidth,
    }
}

fn to_value(result: impl Serialize) -> Result<serde_json::Value, MediaError> {
    serde_json::to_value(result).map_err(|e| MediaError::Internal(format!("cannot encode a result: {e}")))
}

/// Runs one call on `node` (the media node's side of the protocol) and encodes its result as
/// the method's result type (see [`Call`]).
pub async fn dispatch(node: &dyn MediaNode, call: Call) -> Result<serde_json::Value, MediaError> {
    match call {
        Call::CreateRouter(SessionParams { session_id }) => {
            node.create_router(&session_id).await?;
            to_value(Empty {})
        }
        Call::CloseRouter(SessionParams { session_id }) => {
            node.close_router(&session_id).await?;
            to_value(Empty {})
        }
        Call::Publish(mut p) => {
            let options = publish_options_from_wire(&mut p);
            let sdp_answer = node.publish(&p.session_id, &p.stream_id, options).await?;
            to_value(SdpAnswerResult { sdp_answer })
        }
        Call::Unpublish(StreamParams { session_id, stream_id }) => {
            node.unpublish(&session_id, &stream_id).await?;
            to_value(Empty {})
        }
        Call::Subscribe(SubscribeParams { session_id, subscriber_id, stream_id, sdp_offer }) => {
            let sdp_answer = node.subscribe(&session_id, &subscriber_id, &stream_id, sdp_offer).await?;
            to_value(SdpAnswerResult { sdp_answer })
        }
        Call::PrepareSubscribe(SubscriptionParams { session_id, subscriber_id, stream_id }) => {
            let sdp_offer = node.prepare_subscribe(&session_id, &subscriber_id, &stream_id).await?;
            to_value(SdpOfferResult { sdp_offer })
        }
        Call::CompleteSubscribe(CompleteSubscribeParams { session_id, subscriber_id, stream_id, sdp_answer }) => {
            node.complete_subscribe(&session_id, &subscriber_id, &stream_id, sdp_answer).await?;
            to_value(Empty {})
        }
        Call::Unsubscribe(SubscriptionParams { session_id, subscriber_id, stream_id }) => {
            node.unsubscribe(&session_id, &subscriber_id, &stream_id).await?;
            to_value(Empty {})
        }
        Call::AddIceCandidate(AddIceCandidateParams { session_id, endpoint, candidate }) => {
            node.add_ice_candidate(&session_id, endpoint_from_wire(endpoint), candidate_from_wire(candidate)).await?;
            to_value(Empty {})
        }
        Call::Load(Empty {}) => to_value(load_to_wire(&node.load().await)),
        Call::StartRecording(StartRecordingParams { recording, streams }) => {
            let streams = streams.into_iter().map(recorded_stream_from_wire).collect();
            node.start_recording(spec_from_wire(recording), streams).await?;
            to_value(Empty {})
        }
        Call::RecordStream(RecordStreamParams { session_id, recording_id, stream }) => {
            node.record_stream(&session_id, &recording_id, recorded_stream_from_wire(stream)).await?;
            to_value(Empty {})
        }
        Call::StopRecordingStream(StopRecordingStreamParams { session_id, recording_id, stream_id }) => {
            node.stop_recording_stream(&session_id, &recording_id, &stream_id).await?;
            to_value(Empty {})
        }
        Call::StopRecording(RecordingParams { session_id, recording_id }) => {
            let report = node.stop_recording(&session_id, &recording_id).await?;
            to_value(report_to_wire(report))
        }
    }
}

#[cfg(test)]
mod tests {
    use openvidu_core::id::{ConnectionId, RecordingId, StreamId};
    use openvidu_core::model::{RecordingLayout, VideoCodec};

    use super::*;

    fn all_errors() -> Vec<MediaError> {
        let session = SessionId::parse("ses_A").unwrap();
        let stream = StreamId::parse("str_CAM_AbCd_con_X").unwrap();
        let recording = RecordingId::parse("ses_A-2").unwrap();
        vec![
            MediaError::NoRouter(session),
            MediaError::StreamNotFound(stream.clone()),
            MediaError::SubscriptionNotFound {
                subscriber: ConnectionId::parse("con_Y").unwrap(),
                stream: stream.clone(),
            },
            MediaError::AlreadyPublishing(stream),
            MediaError::Sdp("garbage".into()),
            MediaError::ForcedCodecNotFound(VideoCodec::H264),
            MediaError::IceCandidate("bad".into()),
            MediaError::Webrtc("dtls".into()),
            MediaError::Config("port".into()),
            MediaError::RecordingNotFound(recording.clone()),
            MediaError::RecordingExists(recording),
            MediaError::Recording("disk full".into()),
            MediaError::Unsupported("CUSTOM".into()),
            MediaError::Internal("panic".into()),
        ]
    }

    #[test]
    fn every_error_survives_the_wire() {
        for error in all_errors() {
            let wire = error_to_wire(&error);
            assert_eq!(wire.code, error.rpc_code());
            assert_eq!(wire.message, error.to_string());
            let text = serde_json::to_string(&wire).unwrap();
            let back = error_from_wire(serde_json::from_str(&text).unwrap());
            assert_eq!(format!("{back:?}"), format!("{error:?}"), "{text}");
        }
    }

    #[test]
    fn spec_and_report_survive_the_wire() {
        let mut spec = RecordingSpec::new(
            SessionId::parse("ses_A").unwrap(),
            RecordingId::parse("ses_A").unwrap(),
            "name",
            PathBuf::from("/tmp/rec/ses_A"),
            1234,
            RecordingKind::Composed {
                layout: RecordingLayout::PictureInPicture,
                width: 640,
                height: 480,
                frame_rate: 30,
            },
        );
        spec.has_audio = false;
        let back = spec_from_wire(serde_json::from_value(serde_json::to_value(spec_to_wire(&spec)).unwrap()).unwrap());
        assert_eq!(format!("{back:?}"), format!("{spec:?}"));
        let report =
            RecordingReport { size: 10, duration: 1.5, has_audio: true, has_video: false, files: vec!["a".into()] };
        assert_eq!(report_from_wire(report_to_wire(report.clone())), report);
        let stream =
            RecordedStream::new(StreamId::parse("str_CAM_AbCd_con_X").unwrap(), ConnectionId::parse("con_X").unwrap());
        assert_eq!(recorded_stream_from_wire(recorded_stream_to_wire(stream.clone())), stream);
    }
}

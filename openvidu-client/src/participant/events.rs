//! What a participant learns from the server: the other participants, their streams, and the
//! notifications of spec §2.5 as [`ParticipantEvent`]s. Parsing is lenient: a notification this
//! client cannot read is skipped (and logged), never a panic.

use openvidu_core::id::{ConnectionId, StreamId};
use openvidu_core::model::{EndReason, Millis};
use serde_json::{Map, Value};

/// Another participant of the session.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RemoteParticipant {
    /// Its connection id.
    pub connection_id: ConnectionId,
    /// When it joined (ms since the epoch).
    pub created_at: Millis,
    /// Its "full metadata": client data, server data, or both joined by `%/%`.
    pub metadata: String,
    /// What it publishes (at most one stream with OpenVidu 2.20 clients).
    pub streams: Vec<StreamInfo>,
}

/// A published stream, as `joinRoom` and `participantPublished` describe it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StreamInfo {
    /// The stream id (`str_<TYPE>_<4 chars>_<owner connection id>`).
    pub id: StreamId,
    /// When it was published (ms since the epoch).
    pub created_at: Millis,
    /// Whether it has an audio track.
    pub has_audio: bool,
    /// Whether it has a video track.
    pub has_video: bool,
    /// Whether its audio is enabled.
    pub audio_active: bool,
    /// Whether its video is enabled.
    pub video_active: bool,
    /// `CAMERA`, `SCREEN`, `CUSTOM` or `IPCAM`, if it has video.
    pub type_of_video: Option<String>,
    /// The announced frame rate, if any.
    pub frame_rate: Option<i64>,
    /// The announced dimensions, as the JSON text the publisher sent.
    pub video_dimensions: Option<String>,
}

/// Something that happened in the session, in the order the server said so.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ParticipantEvent {
    /// Someone joined (`participantJoined`).
    ParticipantJoined {
        /// Who.
        connection_id: ConnectionId,
        /// When it joined (ms since the epoch).
        created_at: Millis,
        /// Its full metadata.
        metadata: String,
    },
    /// Someone left or was removed (`participantLeft`).
    ParticipantLeft {
        /// Who.
        connection_id: ConnectionId,
        /// Why (`None` when the server gave no or an unknown reason).
        reason: Option<EndReason>,
    },
    /// A participant was evicted (`participantEvicted`): this participant itself when
    /// `connection_id` is [`Participant::connection_id`](super::Participant::connection_id) (the
    /// participant is then closed), or another one (after its `ParticipantLeft`).
    ParticipantEvicted {
        /// Who.
        connection_id: ConnectionId,
        /// Why, e.g. [`EndReason::ForceDisconnectByServer`].
        reason: Option<EndReason>,
    },
    /// Someone published a stream (`participantPublished`).
    StreamPublished {
        /// The publisher.
        connection_id: ConnectionId,
        /// The stream.
        stream: StreamInfo,
    },
    /// Someone stopped publishing (`participantUnpublished`); this participant's own stream
    /// when it was force-unpublished.
    StreamUnpublished {
        /// The publisher.
        connection_id: ConnectionId,
        /// Why.
        reason: Option<EndReason>,
    },
    /// A signal (`sendMessage`).
    Signal {
        /// The sender; `None` for signals sent through the REST API.
        from: Option<ConnectionId>,
        /// The type as received: openvidu-browser and [`Participant::signal`](super::Participant::signal)
        /// send `signal:<type>`; REST signals carry their type verbatim.
        signal_type: Option<String>,
        /// The data.
        data: Option<String>,
    },
    /// A publisher changed a property of its stream (`streamPropertyChanged`).
    StreamPropertyChanged {
        /// The publisher.
        connection_id: ConnectionId,
        /// The stream.
        stream_id: StreamId,
        /// `audioActive`, `videoActive`, `videoDimensions` or `filter`.
        property: String,
        /// The new value as sent (text for the first three, see spec §2.5).
        new_value: Value,
        /// Why, e.g. `publishVideo`.
        reason: String,
    },
    /// A recording of the session started (`recordingStarted`).
    RecordingStarted {
        /// The recording id.
        id: String,
        /// Its name.
        name: String,
    },
    /// A recording of the session stopped (`recordingStopped`).
    RecordingStopped {
        /// The recording id.
        id: String,
        /// Its name.
        name: String,
        /// Why.
        reason: Option<EndReason>,
    },
    /// A subscription made in the background by [`Participant::subscribe_all`](super::Participant::subscribe_all)
    /// failed.
    SubscriptionFailed {
        /// The stream.
        stream_id: StreamId,
        /// What went wrong.
        error: String,
    },
    /// The signalling socket dropped and a new one was bound to this participant (`connect`).
    Reconnected,
    /// A peer connection was replaced by a new one for the same stream (`reconnectStream`,
    /// spec §2.4.6): this participant's own stream after its ICE failed or
    /// [`reconnect_publisher`](super::Participant::reconnect_publisher) (`publisher: true`), or
    /// a subscription after its ICE failed, a `forciblyReconnectSubscriber` from the server or
    /// [`reconnect_subscription`](super::Participant::reconnect_subscription)
    /// (`publisher: false`). Media flows again once the new connection is up.
    MediaReconnected {
        /// The stream: this participant's own or the subscribed one (the id does not change).
        stream_id: StreamId,
        /// Whether it is this participant's own stream.
        publisher: bool,
    },
    /// The signalling socket dropped and could not be re-established: the participant is closed.
    Disconnected {
        /// What went wrong.
        error: String,
    },
    /// Any other notification, as received.
    Other {
        /// The method.
        method: String,
        /// Its params.
        params: Value,
    },
}

fn text(params: &Map<String, Value>, key: &str) -> Option<String> {
    params.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn connection(params: &Map<String, Value>, key: &str) -> Option<ConnectionId> {
    params.get(key).and_then(Value::as_str).and_then(|s| ConnectionId::parse(s).ok())
}

fn reason(params: &Map<String, Value>) -> Option<EndReason> {
    params.get("reason").and_then(|r| serde_json::from_value(r.clone()).ok())
}

/// A stream entry of `joinRoom` or `participantPublished`.
pub(crate) fn parse_stream(v: &Value) -> Option<StreamInfo> {
    let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    Some(StreamInfo {
        id: StreamId::parse(v.get("id")?.as_str()?).ok()?,
        created_at: v.get("createdAt").and_then(Value::as_u64).unwrap_or(0),
        has_audio: flag("hasAudio"),
        has_video: flag("hasVideo"),
        audio_active: flag("audioActive"),
        video_active: flag("videoActive"),
        type_of_video: v.get("typeOfVideo").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned),
        frame_rate: v.get("frameRate").and_then(Value::as_i64),
        video_dimensions: v.get("videoDimensions").and_then(Value::as_str).map(str::to_owned),
    })
}

/// A participant of the `joinRoom` result's `value`.
pub(crate) fn parse_participant(v: &Value) -> Option<RemoteParticipant> {
    Some(RemoteParticipant {
        connection_id: ConnectionId::parse(v.get("id")?.as_str()?).ok()?,
        created_at: v.get("createdAt").and_then(Value::as_u64).unwrap_or(0),
        metadata: v.get("metadata").and_then(Value::as_str).unwrap_or_default().to_owned(),
        streams: v
            .get("streams")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(parse_stream).collect())
            .unwrap_or_default(),
    })
}

/// A remote ICE candidate: the `iceCandidate` notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteCandidate {
    pub(crate) candidate: String,
    pub(crate) sdp_mid: Option<String>,
    pub(crate) sdp_m_line_index: Option<u16>,
}

/// `iceCandidate` params: the connection the candidate is for (`senderConnectionId`: this
/// participant for its publisher, the publisher for a subscription) and the candidate.
pub(crate) fn parse_ice_candidate(params: &Map<String, Value>) -> Option<(ConnectionId, RemoteCandidate)> {
    let sender = connection(params, "senderConnectionId").or_else(|| connection(params, "endpointName"))?;
    let candidate = RemoteCandidate {
        candidate: text(params, "candidate")?,
        sdp_mid: text(params, "sdpMid"),
        sdp_m_line_index: params.get("sdpMLineIndex").and_then(Value::as_u64).and_then(|i| u16::try_from(i).ok()),
    };
    Some((sender, candidate))
}

/// The server's push of a new connection to a subscribed stream: the
/// `forciblyReconnectSubscriber` notification (spec §2.4.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ForcedReconnect {
    /// The stream's publisher (`connectionId`; the stream id's owner when absent).
    pub(crate) publisher: ConnectionId,
    /// The stream.
    pub(crate) stream_id: StreamId,
    /// The server's SDP offer.
    pub(crate) sdp_offer: String,
}

/// `forciblyReconnectSubscriber` params, `None` when unreadable (no stream id with an owner,
/// no offer, or a `connectionId` that is not the stream's owner).
pub(crate) fn parse_forced_reconnect(params: &Map<String, Value>) -> Option<ForcedReconnect> {
    let stream_id = StreamId::parse(params.get("streamId")?.as_str()?).ok()?;
    let sdp_offer = text(params, "sdpOffer").filter(|s| !s.trim().is_empty())?;
    // Subscriptions are known by the owner of the stream, which `connectionId` names.
    let publisher = stream_id.owner()?;
    match params.get("connectionId") {
        None | Some(Value::Null) => {}
        Some(_) if connection(params, "connectionId").as_ref() == Some(&publisher) => {}
        Some(_) => return None,
    }
    Some(ForcedReconnect { publisher, stream_id, sdp_offer })
}

/// The event a notification means, `None` when its params cannot be read.
pub(crate) fn parse_event(method: &str, params: &Map<String, Value>) -> Option<ParticipantEvent> {
    Some(match method {
        "participantJoined" => ParticipantEvent::ParticipantJoined {
            connection_id: connection(params, "id")?,
            created_at: params.get("createdAt").and_then(Value::as_u64).unwrap_or(0),
            metadata: text(params, "metadata").unwrap_or_default(),
        },
        "participantLeft" => ParticipantEvent::ParticipantLeft {
            connection_id: connection(params, "connectionId")?,
            reason: reason(params),
        },
        "participantEvicted" => ParticipantEvent::ParticipantEvicted {
            connection_id: connection(params, "connectionId")?,
            reason: reason(params),
        },
        "participantPublished" => ParticipantEvent::StreamPublished {
            connection_id: connection(params, "id")?,
            stream: params.get("streams")?.as_array()?.iter().find_map(parse_stream)?,
        },
        "participantUnpublished" => ParticipantEvent::StreamUnpublished {
            connection_id: connection(params, "connectionId")?,
            reason: reason(params),
        },
        "sendMessage" => ParticipantEvent::Signal {
            from: connection(params, "from"),
            signal_type: text(params, "type"),
            data: text(params, "data"),
        },
        "streamPropertyChanged" => ParticipantEvent::StreamPropertyChanged {
            connection_id: connection(params, "connectionId")?,
            stream_id: StreamId::parse(params.get("streamId")?.as_str()?).ok()?,
            property: text(params, "property")?,
            new_value: params.get("newValue").cloned().unwrap_or(Value::Null),
            reason: text(params, "reason").unwrap_or_default(),
        },
        "recordingStarted" => ParticipantEvent::RecordingStarted {
            id: text(params, "id")?,
            name: text(params, "name").unwrap_or_default(),
        },
        "recordingStopped" => ParticipantEvent::RecordingStopped {
            id: text(params, "id")?,
            name: text(params, "name").unwrap_or_default(),
            reason: reason(params),
        },
        other => ParticipantEvent::Other { method: other.to_owned(), params: Value::Object(params.clone()) },
    })
}

/// Applies a `streamPropertyChanged` to the stream it names.
pub(crate) fn apply_property(stream: &mut StreamInfo, property: &str, value: &Value) {
    // The server relays the publisher's value as JSON text ("true"), older ones as a bool.
    let as_bool = || match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    match property {
        "audioActive" => stream.audio_active = as_bool().unwrap_or(stream.audio_active),
        "videoActive" => stream.video_active = as_bool().unwrap_or(stream.video_active),
        "videoDimensions" => {
            if let Some(s) = value.as_str() {
                // Double-encoded: a JSON string holding the dimensions' JSON text.
                let inner = serde_json::from_str::<String>(s).unwrap_or_else(|_| s.to_owned());
                stream.video_dimensions = Some(inner);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn forced_reconnections_are_read_leniently() {
        let stream = "str_CAM_AbCd_con_P";
        let full = map(json!({"connectionId": "con_P", "streamId": stream, "sdpOffer": "v=0\r\n"}));
        let parsed = parse_forced_reconnect(&full).expect("readable");
        assert_eq!(parsed.publisher.as_str(), "con_P");
        assert_eq!(parsed.stream_id.as_str(), stream);
        assert_eq!(parsed.sdp_offer, "v=0\r\n");
        // Without connectionId the stream's owner is the publisher.
        let no_connection = map(json!({"streamId": stream, "sdpOffer": "v=0"}));
        assert_eq!(parse_forced_reconnect(&no_connection).map(|f| f.publisher.to_string()), Some("con_P".into()));

        for bad in [
            json!({}),
            json!({"connectionId": "con_P", "streamId": stream}),
            json!({"connectionId": "con_P", "streamId": stream, "sdpOffer": ""}),
            json!({"connectionId": "con_P", "streamId": stream, "sdpOffer": 42}),
            json!({"connectionId": "con_P", "streamId": 7, "sdpOffer": "v=0"}),
            json!({"connectionId": "con_P", "streamId": "nonsense", "sdpOffer": "v=0"}),
            json!({"connectionId": "con_Q", "streamId": stream, "sdpOffer": "v=0"}),
            json!({"connectionId": ["con_P"], "streamId": stream, "sdpOffer": "v=0"}),
            json!({"connectionId": "con_P", "streamId": null, "sdpOffer": null}),
        ] {
            assert_eq!(parse_forced_reconnect(&map(bad.clone())), None, "{bad}");
        }
    }
}

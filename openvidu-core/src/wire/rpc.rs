//! The WebSocket JSON-RPC 2.0 signalling of openvidu-browser 2.20 (spec §2): envelopes with the
//! kurento-jsonrpc quirks (a `sessionId` injected into every result), every method's params and
//! results, every server notification, and OpenVidu's error codes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::id::{ConnectionId, StreamId};
use crate::model::{EndReason, Millis, OpenViduRole, Publisher};

/// The version `joinRoom` reports.
pub const SERVER_VERSION: &str = "2.20.0";

/// OpenVidu's JSON-RPC error codes (spec §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum ErrorCode {
    Generic = 999,
    TransportError = 803,
    ForcedCodecNotFound = 800,
    SignalToInvalid = 601,
    SignalFormatInvalid = 600,
    UserMetadataFormatInvalid = 500,
    UserUnauthorized = 401,
    TokenCannotBeCreated = 404,
    ExistingFilterAlreadyApplied = 405,
    FilterNotApplied = 406,
    MediaSdp = 302,
    MediaGeneric = 301,
    RoomCannotBeCreated = 204,
    RoomClosed = 203,
    RoomNotFound = 202,
    UserAlreadyStreaming = 106,
    ExistingUserInRoom = 104,
    UserNotStreaming = 105,
    UserNotFound = 102,
    UserGeneric = 10,
    ReconnectionError = 40007,
    /// JSON-RPC: no such method.
    MethodNotFound = -32601,
    /// JSON-RPC: invalid JSON.
    ParseError = -32700,
    /// JSON-RPC: not a request object.
    InvalidRequest = -32600,
    /// JSON-RPC: bad params.
    InvalidParams = -32602,
}

/// An error to answer a request with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// The code.
    pub code: ErrorCode,
    /// Human-readable text.
    pub message: String,
}

impl RpcError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A request from the client, as parsed from a text frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The id to answer with (`None` for notifications, which get no answer).
    pub id: Option<Value>,
    /// The method.
    pub method: String,
    /// The params object (empty when absent).
    pub params: Map<String, Value>,
}

impl Request {
    /// Parses a frame. A frame that is not a JSON-RPC request gives the error response to send
    /// (with `id: null` when no id could be read).
    pub fn parse(frame: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(frame).map_err(|e| {
            error_frame(&Value::Null, &RpcError::new(ErrorCode::ParseError, format!("Parse error: {e}")), None)
        })?;
        let Value::Object(mut obj) = value else {
            return Err(error_frame(&Value::Null, &RpcError::new(ErrorCode::InvalidRequest, "Invalid request"), None));
        };
        let id = obj.remove("id").filter(|v| !v.is_null());
        let invalid = |id: &Option<Value>, why: &str| {
            error_frame(id.as_ref().unwrap_or(&Value::Null), &RpcError::new(ErrorCode::InvalidRequest, why), None)
        };
        let method = match obj.remove("method") {
            Some(Value::String(m)) => m,
            _ => return Err(invalid(&id, "Invalid request: no method")),
        };
        let params = match obj.remove("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(invalid(&id, "Invalid request: params must be an object")),
        };
        Ok(Self { id, method, params })
    }

    /// The params parsed into a method's param type; wrong types give `InvalidParams`.
    pub fn params<T: for<'de> Deserialize<'de>>(&self) -> Result<T, RpcError> {
        serde_json::from_value(Value::Object(self.params.clone()))
            .map_err(|e| RpcError::new(ErrorCode::InvalidParams, format!("Invalid params for {}: {e}", self.method)))
    }
}

/// A success response, with `sessionId` injected as kurento-jsonrpc does: into an object result,
/// or wrapping a non-object one as `{"value": …, "sessionId": …}`.
pub fn result_frame(id: &Value, result: Value, rpc_session_id: Option<&str>) -> String {
    let mut obj = match result {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            let mut m = Map::new();
            m.insert("value".into(), other);
            m
        }
    };
    if let Some(s) = rpc_session_id {
        obj.insert("sessionId".into(), json!(s));
    }
    json!({"id": id, "result": obj, "jsonrpc": "2.0"}).to_string()
}

/// An error response.
pub fn error_frame(id: &Value, error: &RpcError, rpc_session_id: Option<&str>) -> String {
    let mut e = json!({"code": error.code as i32, "message": error.message});
    if let Some(s) = rpc_session_id {
        e["data"] = json!(s);
    }
    json!({"id": id, "error": e, "jsonrpc": "2.0"}).to_string()
}

/// A server → client notification.
pub fn notification_frame(n: &Notification) -> String {
    json!({"method": n.method(), "params": n.params(), "jsonrpc": "2.0"}).to_string()
}

// ---------------------------------------------------------------------------------------------
// Params (the server parses them; clients, like openvidu-client's participant, send them)

/// `joinRoom` params.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct JoinRoomParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub session: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder: Option<bool>,
}

/// `sendMessage` params: `message` is a JSON string.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[allow(missing_docs)]
pub struct SendMessageParams {
    pub message: String,
}

/// The JSON inside `sendMessage.message`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[allow(missing_docs)]
pub struct SignalMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<Option<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub signal_type: Option<String>,
}

/// `forceDisconnect` params.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ForceDisconnectParams {
    pub connection_id: String,
}

/// `forceUnpublish` params.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ForceUnpublishParams {
    pub stream_id: String,
}

/// `connect` params (reconnection).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ConnectParams {
    pub session_id: String,
}

/// `publishVideo` params.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PublishVideoParams {
    pub sdp_offer: String,
    pub do_loopback: bool,
    pub has_audio: bool,
    pub has_video: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_of_video: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_dimensions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

/// `receiveVideoFrom` params: `sdpOffer` (client offers) or `sdpAnswer` (answer to the server's offer).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ReceiveVideoFromParams {
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_offer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_answer: Option<String>,
}

/// `prepareReceiveVideoFrom` params.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct PrepareReceiveVideoFromParams {
    pub sender: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<bool>,
}

/// `unsubscribeFromVideo` params: `sender` is the publisher's connection id.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[allow(missing_docs)]
pub struct UnsubscribeFromVideoParams {
    pub sender: String,
}

/// `onIceCandidate` params.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct OnIceCandidateParams {
    pub endpoint_name: String,
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
}

/// `reconnectStream` params.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ReconnectStreamParams {
    pub stream: String,
    #[serde(default)]
    pub sdp_string: Option<String>,
    #[serde(default)]
    pub sdp_offer: Option<String>,
    #[serde(default)]
    pub forcibly_reconnect: Option<bool>,
}

/// `streamPropertyChanged` params.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StreamPropertyChangedParams {
    pub stream_id: String,
    pub property: String,
    pub new_value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Results and notifications

/// A stream as `joinRoom` and `participantPublished` describe it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct StreamEntry {
    pub id: StreamId,
    pub created_at: Millis,
    pub has_audio: bool,
    pub has_video: bool,
    pub audio_active: bool,
    pub video_active: bool,
    pub type_of_video: Option<crate::id::TypeOfVideo>,
    pub frame_rate: Option<u32>,
    pub video_dimensions: Option<String>,
    pub filter: Value,
}

impl From<&Publisher> for StreamEntry {
    fn from(p: &Publisher) -> Self {
        let m = &p.media_options;
        Self {
            id: p.stream_id.clone(),
            created_at: p.created_at,
            has_audio: m.has_audio,
            has_video: m.has_video,
            audio_active: m.audio_active,
            video_active: m.video_active,
            type_of_video: m.type_of_video,
            frame_rate: m.frame_rate,
            video_dimensions: m.video_dimensions.clone(),
            filter: m.filter.clone(),
        }
    }
}

/// A participant already in the room, in the `joinRoom` result's `value`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct ExistingParticipant {
    pub id: ConnectionId,
    pub created_at: Millis,
    pub metadata: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streams: Option<Vec<StreamEntry>>,
}

/// The `joinRoom` result (spec §2.3), without the injected `sessionId`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub struct JoinRoomResult {
    pub id: ConnectionId,
    pub final_user_id: String,
    pub created_at: Millis,
    pub metadata: String,
    pub value: Vec<ExistingParticipant>,
    pub session: String,
    pub version: String,
    pub media_server: String,
    pub record: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<OpenViduRole>,
    pub coturn_ip: String,
    /// Incarnation counter of the master (PRO/HA `life`), compared after reconnections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub life: Option<u64>,
}

/// The "full metadata" OpenVidu shows other participants: client data, server data, or both
/// joined by `%/%`.
pub fn full_metadata(client_data: &str, server_data: &str) -> String {
    match (client_data.is_empty(), server_data.is_empty()) {
        (false, false) => format!("{client_data}%/%{server_data}"),
        (false, true) => client_data.to_owned(),
        _ => server_data.to_owned(),
    }
}

/// A server → client notification (spec §2.5).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Notification {
    ParticipantJoined {
        id: ConnectionId,
        created_at: Millis,
        metadata: String,
    },
    ParticipantLeft {
        connection_id: ConnectionId,
        reason: Option<EndReason>,
    },
    ParticipantEvicted {
        connection_id: ConnectionId,
        reason: EndReason,
    },
    ParticipantPublished {
        id: ConnectionId,
        streams: Vec<StreamEntry>,
    },
    ParticipantUnpublished {
        connection_id: ConnectionId,
        reason: EndReason,
    },
    SendMessage {
        data: Option<String>,
        signal_type: Option<String>,
        from: Option<ConnectionId>,
    },
    StreamPropertyChanged {
        connection_id: ConnectionId,
        stream_id: StreamId,
        property: String,
        new_value: Value,
        reason: String,
    },
    IceCandidate {
        sender_connection_id: ConnectionId,
        endpoint_name: String,
        sdp_m_line_index: Option<u16>,
        sdp_mid: Option<String>,
        candidate: String,
    },
    RecordingStarted {
        id: String,
        name: String,
    },
    RecordingStopped {
        id: String,
        name: String,
        reason: EndReason,
    },
    ConnectionPropertyChanged {
        property: String,
        new_value: String,
    },
    MediaError {
        error: String,
    },
    /// PRO/ENTERPRISE (spec §2.4.6): the server offers a subscriber a new connection to a
    /// stream (`connectionId` is the publisher's); the client answers with
    /// `reconnectStream{stream, sdpString, forciblyReconnect: true}`.
    ForciblyReconnectSubscriber {
        connection_id: ConnectionId,
        stream_id: StreamId,
        sdp_offer: String,
    },
}

impl Notification {
    /// The method name.
    pub fn method(&self) -> &'static str {
        match self {
            Self::ParticipantJoined { .. } => "participantJoined",
            Self::ParticipantLeft { .. } => "participantLeft",
            Self::ParticipantEvicted { .. } => "participantEvicted",
            Self::ParticipantPublished { .. } => "participantPublished",
            Self::ParticipantUnpublished { .. } => "participantUnpublished",
            Self::SendMessage { .. } => "sendMessage",
            Self::StreamPropertyChanged { .. } => "streamPropertyChanged",
            Self::IceCandidate { .. } => "iceCandidate",
            Self::RecordingStarted { .. } => "recordingStarted",
            Self::RecordingStopped { .. } => "recordingStopped",
            Self::ConnectionPropertyChanged { .. } => "connectionPropertyChanged",
            Self::MediaError { .. } => "mediaError",
            Self::ForciblyReconnectSubscriber { .. } => "forciblyReconnectSubscriber",
        }
    }

    /// The params object.
    pub fn params(&self) -> Value {
        match self {
            Self::ParticipantJoined { id, created_at, metadata } => {
                json!({"id": id, "createdAt": created_at, "metadata": metadata})
            }
            Self::ParticipantLeft { connection_id, reason } => {
                json!({"connectionId": connection_id, "reason": reason.map(|r| json!(r)).unwrap_or(json!(""))})
            }
            Self::ParticipantEvicted { connection_id, reason } => {
                json!({"connectionId": connection_id, "reason": reason})
            }
            Self::ParticipantPublished { id, streams } => json!({"id": id, "streams": streams}),
            Self::ParticipantUnpublished { connection_id, reason } => {
                json!({"connectionId": connection_id, "reason": reason})
            }
            Self::SendMessage { data, signal_type, from } => {
                let mut m = Map::new();
                if let Some(d) = data {
                    m.insert("data".into(), json!(d));
                }
                if let Some(t) = signal_type {
                    m.insert("type".into(), json!(t));
                }
                if let Some(f) = from {
                    m.insert("from".into(), json!(f));
                }
                Value::Object(m)
            }
            Self::StreamPropertyChanged { connection_id, stream_id, property, new_value, reason } => json!({
                "connectionId": connection_id, "streamId": stream_id, "property": property,
                "newValue": new_value, "reason": reason
            }),
            Self::IceCandidate { sender_connection_id, endpoint_name, sdp_m_line_index, sdp_mid, candidate } => json!({
                "senderConnectionId": sender_connection_id, "endpointName": endpoint_name,
                "sdpMLineIndex": sdp_m_line_index, "sdpMid": sdp_mid, "candidate": candidate
            }),
            Self::RecordingStarted { id, name } => json!({"id": id, "name": name}),
            Self::RecordingStopped { id, name, reason } => {
                json!({"id": id, "name": name, "reason": reason})
            }
            Self::ConnectionPropertyChanged { property, new_value } => {
                json!({"property": property, "newValue": new_value})
            }
            Self::MediaError { error } => json!({"error": error}),
            Self::ForciblyReconnectSubscriber { connection_id, stream_id, sdp_offer } => {
                json!({"connectionId": connection_id, "streamId": stream_id, "sdpOffer": sdp_offer})
            }
        }
    }
}

#[cfg(test)]
mod tests;

//! Webhook and CDR events (spec §4): each event's JSON in OpenVidu's member order, with
//! `"event": "<name>"` appended last for the webhook, or wrapped as `{"<name>": {...}}` for the CDR.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};
use crate::model::{EndReason, Millis, Recording, RecordingLayout, RecordingStatus, Session};

/// The names of every webhook event of OpenVidu 2.20, for `OPENVIDU_WEBHOOK_EVENTS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)]
pub enum EventType {
    SessionCreated,
    SessionDestroyed,
    ParticipantJoined,
    ParticipantLeft,
    WebrtcConnectionCreated,
    WebrtcConnectionDestroyed,
    RecordingStatusChanged,
    FilterEventDispatched,
    SignalSent,
    MediaNodeStatusChanged,
    Autoscaling,
    NodeCrashed,
}

impl EventType {
    /// Every event type, the default of `OPENVIDU_WEBHOOK_EVENTS`.
    pub const ALL: [EventType; 12] = [
        Self::SessionCreated,
        Self::SessionDestroyed,
        Self::ParticipantJoined,
        Self::ParticipantLeft,
        Self::WebrtcConnectionCreated,
        Self::WebrtcConnectionDestroyed,
        Self::RecordingStatusChanged,
        Self::FilterEventDispatched,
        Self::SignalSent,
        Self::MediaNodeStatusChanged,
        Self::Autoscaling,
        Self::NodeCrashed,
    ];

    /// The event's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionCreated => "sessionCreated",
            Self::SessionDestroyed => "sessionDestroyed",
            Self::ParticipantJoined => "participantJoined",
            Self::ParticipantLeft => "participantLeft",
            Self::WebrtcConnectionCreated => "webrtcConnectionCreated",
            Self::WebrtcConnectionDestroyed => "webrtcConnectionDestroyed",
            Self::RecordingStatusChanged => "recordingStatusChanged",
            Self::FilterEventDispatched => "filterEventDispatched",
            Self::SignalSent => "signalSent",
            Self::MediaNodeStatusChanged => "mediaNodeStatusChanged",
            Self::Autoscaling => "autoscaling",
            Self::NodeCrashed => "nodeCrashed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|e| e.name() == s).ok_or_else(|| format!("unknown webhook event {s:?}"))
    }
}

/// The session an event belongs to: its id and `<id>_<createdAt>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRef {
    /// Session id.
    pub session_id: SessionId,
    /// `<sessionId>_<createdAt>`.
    pub unique_session_id: String,
}

impl From<&Session> for SessionRef {
    fn from(s: &Session) -> Self {
        Self { session_id: s.id.clone(), unique_session_id: s.unique_session_id() }
    }
}

/// What participant events tell about a participant.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ParticipantInfo {
    pub connection_id: ConnectionId,
    pub location: String,
    pub ip: Option<String>,
    pub platform: String,
    pub client_data: String,
    pub server_data: String,
}

/// What WebRTC connection events tell about a media endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct WebrtcInfo {
    pub stream_id: StreamId,
    pub connection_id: ConnectionId,
    /// `None` for OUTBOUND (publishing); the publisher for INBOUND (subscribing).
    pub receiving_from: Option<ConnectionId>,
    pub video_source: Option<String>,
    pub video_framerate: Option<u32>,
    pub video_dimensions: Option<String>,
    pub audio_enabled: bool,
    pub video_enabled: bool,
}

/// The status of a media node (spec §6.3), as the REST API and `mediaNodeStatusChanged` say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaNodeStatus {
    /// Being launched (entry state).
    Launching,
    /// Launch canceled: terminates right after launch completes.
    Canceled,
    /// Launch failed.
    Failed,
    /// Accepts new sessions.
    Running,
    /// Accepts no new sessions; terminates when its last session closes.
    WaitingIdleToTerminate,
    /// Being terminated.
    Terminating,
    /// Terminated: safe to shut down.
    Terminated,
}

impl MediaNodeStatus {
    /// The status's name on the wire (`waiting-idle-to-terminate`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Launching => "launching",
            Self::Canceled => "canceled",
            Self::Failed => "failed",
            Self::Running => "running",
            Self::WaitingIdleToTerminate => "waiting-idle-to-terminate",
            Self::Terminating => "terminating",
            Self::Terminated => "terminated",
        }
    }
}

impl fmt::Display for MediaNodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The media node a node event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaNodeRef {
    /// The node's id.
    pub id: MediaNodeId,
    /// The environment id (e.g. an EC2 instance id), when known.
    pub environment_id: Option<String>,
    /// The node's IP address or host name.
    pub ip: Option<String>,
    /// The URI the master reaches it at.
    pub uri: String,
}

/// One event, as the server generates it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WebhookEvent {
    /// A session was created.
    SessionCreated {
        /// The session.
        session: SessionRef,
        /// Its creation time.
        timestamp: Millis,
    },
    /// A session was closed.
    SessionDestroyed {
        /// The session.
        session: SessionRef,
        /// Now.
        timestamp: Millis,
        /// Its creation time.
        start_time: Millis,
        /// Why.
        reason: EndReason,
    },
    /// A participant joined.
    ParticipantJoined {
        /// The session.
        session: SessionRef,
        /// `activeAt`.
        timestamp: Millis,
        /// Who.
        participant: ParticipantInfo,
    },
    /// A participant left.
    ParticipantLeft {
        /// The session.
        session: SessionRef,
        /// Now.
        timestamp: Millis,
        /// When it joined.
        start_time: Millis,
        /// Why.
        reason: EndReason,
        /// Who.
        participant: ParticipantInfo,
    },
    /// A publisher or subscriber endpoint was established.
    WebrtcConnectionCreated {
        /// The session.
        session: SessionRef,
        /// Now.
        timestamp: Millis,
        /// Which endpoint.
        webrtc: WebrtcInfo,
    },
    /// A publisher or subscriber endpoint was released.
    WebrtcConnectionDestroyed {
        /// The session.
        session: SessionRef,
        /// Now.
        timestamp: Millis,
        /// When it was created.
        start_time: Millis,
        /// Why.
        reason: EndReason,
        /// Which endpoint.
        webrtc: WebrtcInfo,
    },
    /// A recording changed status.
    RecordingStatusChanged {
        /// Now.
        timestamp: Millis,
        /// Why (absent for `started`).
        reason: Option<EndReason>,
        /// The recording, with its new status.
        recording: Box<Recording>,
    },
    /// A signal was sent.
    SignalSent {
        /// The session.
        session: SessionRef,
        /// Now.
        timestamp: Millis,
        /// Sender (`None` for REST).
        from: Option<ConnectionId>,
        /// Recipients.
        to: Vec<ConnectionId>,
        /// Type (without the `signal:` prefix for client signals).
        signal_type: String,
        /// Payload.
        data: String,
    },
    /// A media node changed status (PRO).
    MediaNodeStatusChanged {
        /// Now.
        timestamp: Millis,
        /// The node.
        node: MediaNodeRef,
        /// Its new status.
        new_status: MediaNodeStatus,
        /// Its former status (`None` when the new one is `launching`).
        old_status: Option<MediaNodeStatus>,
    },
    /// The master lost a media node for good (PRO).
    NodeCrashed {
        /// Now.
        timestamp: Millis,
        /// The node.
        node: MediaNodeRef,
        /// The sessions it hosted.
        session_ids: Vec<SessionId>,
        /// The recordings of those sessions that were in progress.
        recording_ids: Vec<RecordingId>,
    },
}

fn insert(m: &mut Map<String, Value>, k: &str, v: impl Serialize) {
    m.insert(k.to_owned(), serde_json::to_value(v).unwrap_or(Value::Null));
}

fn common(m: &mut Map<String, Value>, session: Option<&SessionRef>, timestamp: Millis) {
    if let Some(s) = session {
        insert(m, "sessionId", &s.session_id);
        insert(m, "uniqueSessionId", &s.unique_session_id);
    }
    insert(m, "timestamp", timestamp);
}

fn end(m: &mut Map<String, Value>, timestamp: Millis, start_time: Millis, reason: Option<EndReason>) {
    insert(m, "startTime", start_time);
    insert(m, "duration", timestamp.saturating_sub(start_time) / 1000);
    if let Some(r) = reason {
        insert(m, "reason", r);
    }
}

fn participant(m: &mut Map<String, Value>, p: &ParticipantInfo) {
    insert(m, "participantId", &p.connection_id);
    insert(m, "connectionId", &p.connection_id);
    insert(m, "location", &p.location);
    insert(m, "ip", &p.ip);
    insert(m, "platform", &p.platform);
    insert(m, "clientData", &p.client_data);
    insert(m, "serverData", &p.server_data);
}

fn webrtc(m: &mut Map<String, Value>, w: &WebrtcInfo) {
    insert(m, "streamId", &w.stream_id);
    insert(m, "participantId", &w.connection_id);
    insert(m, "connectionId", &w.connection_id);
    insert(m, "connection", if w.receiving_from.is_some() { "INBOUND" } else { "OUTBOUND" });
    if let Some(from) = &w.receiving_from {
        insert(m, "receivingFrom", from);
    }
    if let Some(v) = &w.video_source {
        insert(m, "videoSource", v);
        insert(m, "videoFramerate", w.video_framerate);
        insert(m, "videoDimensions", &w.video_dimensions);
    }
    insert(m, "audioEnabled", w.audio_enabled);
    insert(m, "videoEnabled", w.video_enabled);
}

fn media_node(m: &mut Map<String, Value>, n: &MediaNodeRef) {
    insert(m, "id", &n.id);
    insert(m, "environmentId", &n.environment_id);
    insert(m, "ip", &n.ip);
    insert(m, "uri", &n.uri);
}

impl WebhookEvent {
    /// The event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            Self::SessionCreated { .. } => EventType::SessionCreated,
            Self::SessionDestroyed { .. } => EventType::SessionDestroyed,
            Self::ParticipantJoined { .. } => EventType::ParticipantJoined,
            Self::ParticipantLeft { .. } => EventType::ParticipantLeft,
            Self::WebrtcConnectionCreated { .. } => EventType::WebrtcConnectionCreated,
            Self::WebrtcConnectionDestroyed { .. } => EventType::WebrtcConnectionDestroyed,
            Self::RecordingStatusChanged { .. } => EventType::RecordingStatusChanged,
            Self::SignalSent { .. } => EventType::SignalSent,
            Self::MediaNodeStatusChanged { .. } => EventType::MediaNodeStatusChanged,
            Self::NodeCrashed { .. } => EventType::NodeCrashed,
        }
    }

    /// The session id the event belongs to, if any (used to keep per-session order).
    pub fn session_id(&self) -> Option<&SessionId> {
        match self {
            Self::SessionCreated { session, .. }
            | Self::SessionDestroyed { session, .. }
            | Self::ParticipantJoined { session, .. }
            | Self::ParticipantLeft { session, .. }
            | Self::WebrtcConnectionCreated { session, .. }
            | Self::WebrtcConnectionDestroyed { session, .. }
            | Self::SignalSent { session, .. } => Some(&session.session_id),
            Self::RecordingStatusChanged { recording, .. } => Some(&recording.session_id),
            Self::MediaNodeStatusChanged { .. } | Self::NodeCrashed { .. } => None,
        }
    }

    /// The event's members, without `event`.
    pub fn body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            Self::SessionCreated { session, timestamp } => common(&mut m, Some(session), *timestamp),
            Self::SessionDestroyed { session, timestamp, start_time, reason } => {
                common(&mut m, Some(session), *timestamp);
                end(&mut m, *timestamp, *start_time, Some(*reason));
            }
            Self::ParticipantJoined { session, timestamp, participant: p } => {
                common(&mut m, Some(session), *timestamp);
                participant(&mut m, p);
            }
            Self::ParticipantLeft { session, timestamp, start_time, reason, participant: p } => {
                common(&mut m, Some(session), *timestamp);
                end(&mut m, *timestamp, *start_time, Some(*reason));
                participant(&mut m, p);
            }
            Self::WebrtcConnectionCreated { session, timestamp, webrtc: w } => {
                common(&mut m, Some(session), *timestamp);
                webrtc(&mut m, w);
            }
            Self::WebrtcConnectionDestroyed { session, timestamp, start_time, reason, webrtc: w } => {
                common(&mut m, Some(session), *timestamp);
                end(&mut m, *timestamp, *start_time, Some(*reason));
                webrtc(&mut m, w);
            }
            Self::RecordingStatusChanged { timestamp, reason, recording: r } => {
                let session = r
                    .unique_session_id
                    .as_ref()
                    .map(|u| SessionRef { session_id: r.session_id.clone(), unique_session_id: u.clone() });
                if session.is_none() {
                    insert(&mut m, "sessionId", &r.session_id);
                }
                common(&mut m, session.as_ref(), *timestamp);
                end(&mut m, *timestamp, r.created_at, *reason);
                let p = &r.properties;
                insert(&mut m, "id", &r.id);
                insert(&mut m, "name", &p.name);
                insert(&mut m, "outputMode", p.output_mode);
                if p.output_mode.is_composed() && p.has_video {
                    insert(&mut m, "resolution", &p.resolution);
                    insert(&mut m, "frameRate", p.frame_rate);
                    insert(&mut m, "recordingLayout", p.recording_layout);
                    if p.recording_layout == RecordingLayout::Custom && !p.custom_layout.is_empty() {
                        insert(&mut m, "customLayout", &p.custom_layout);
                    }
                }
                insert(&mut m, "hasAudio", p.has_audio);
                insert(&mut m, "hasVideo", p.has_video);
                insert(&mut m, "size", r.size);
                insert(&mut m, "duration", r.duration);
                insert(&mut m, "status", r.status);
            }
            Self::SignalSent { session, timestamp, from, to, signal_type, data } => {
                common(&mut m, Some(session), *timestamp);
                insert(&mut m, "from", from);
                insert(&mut m, "to", to);
                insert(&mut m, "type", signal_type);
                insert(&mut m, "data", data);
            }
            Self::MediaNodeStatusChanged { timestamp, node: n, new_status, old_status } => {
                common(&mut m, None, *timestamp);
                media_node(&mut m, n);
                insert(&mut m, "newStatus", new_status);
                insert(&mut m, "oldStatus", old_status);
            }
            Self::NodeCrashed { timestamp, node: n, session_ids, recording_ids } => {
                common(&mut m, None, *timestamp);
                media_node(&mut m, n);
                insert(&mut m, "nodeRole", "medianode");
                insert(&mut m, "sessionIds", session_ids);
                insert(&mut m, "recordingIds", recording_ids);
            }
        }
        m
    }

    /// The webhook body: the members and `"event"` last.
    pub fn webhook_json(&self) -> Value {
        let mut m = self.body();
        m.insert("event".into(), json!(self.event_type().name()));
        Value::Object(m)
    }

    /// The CDR line: `{"<event>": {members}}`.
    pub fn cdr_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(self.event_type().name().into(), Value::Object(self.body()));
        Value::Object(m)
    }

    /// A `recordingStatusChanged` for `recording` in its current status.
    pub fn recording(timestamp: Millis, recording: &Recording, reason: Option<EndReason>) -> Self {
        let reason = if recording.status == RecordingStatus::Started { None } else { reason };
        Self::RecordingStatusChanged { timestamp, reason, recording: Box::new(recording.clone()) }
    }
}

#[cfg(test)]
mod tests;

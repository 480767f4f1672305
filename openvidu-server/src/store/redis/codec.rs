//! The Redis form of a [`SessionDoc`]: one hash per session whose fields are its parts, so that a
//! transition rewrites only the parts it changed (a connection created in a session of a thousand
//! connections writes one field, not the whole session). JSON through private mirror structs, so
//! that the core's model types need no serde of their own (their wire JSON is
//! `openvidu_core::wire`'s business).
//!
//! Fields: [`VERSION`] (a counter every write increments), [`WRITER`] (the tag of the last write,
//! unique to it: see [`super::commit`]), [`SESSION`] (the session without its connections) and
//! one `c:<connectionId>` per connection (the connection, its usable token and its creation
//! sequence number, which keeps the creation order a hash does not).
//!
//! A connection's JSON leaves out what is absent (no token, not active, no publishers or
//! subscribers, unset optional properties), and reading takes both forms: a pending connection
//! is about half the bytes it would be with every `null` spelled out, and each write's cost in
//! Redis (the write script's arguments, the hash, the network) follows its bytes.

use std::collections::HashMap;

use openvidu_core::id::{ConnectionId, MediaNodeId, SessionId, StreamId, TokenId, TypeOfVideo};
use openvidu_core::model::{
    ActiveInfo, Connection, ConnectionProperties, ConnectionType, KurentoOptions, MediaMode, MediaOptions, Millis,
    OpenViduRole, OutputMode, Publisher, RecordingLayout, RecordingMode, RecordingProperties, Session,
    SessionProperties, Subscriber, VideoCodec,
};
use serde::{Deserialize, Serialize};

use crate::store::transitions::SessionDoc;
use crate::store::{SessionSnapshot, StoreError};

/// The field of the version counter.
pub(super) const VERSION: &str = "v";
/// The field of the last write's tag (absent until the first write after creation).
pub(super) const WRITER: &str = "w";
/// The field of the session itself.
pub(super) const SESSION: &str = "s";
/// The prefix of the connections' fields.
const CONNECTION: &str = "c:";

/// The field of a connection.
pub(super) fn connection_field(id: &ConnectionId) -> String {
    format!("{CONNECTION}{id}")
}

/// Serializes the session part.
pub(super) fn encode_session(session: &Session) -> Result<String, StoreError> {
    serde_json::to_string(&SessionRepr::from(session))
        .map_err(|e| StoreError::Unavailable(format!("session {}: cannot encode it: {e}", session.id)))
}

/// Serializes a connection part: the connection, its usable token and its sequence number.
pub(super) fn encode_connection(c: &Connection, token: Option<&TokenId>, seq: u64) -> Result<String, StoreError> {
    let part = ConnectionPart { seq, token: token.cloned(), connection: c.into() };
    serde_json::to_string(&part)
        .map_err(|e| StoreError::Unavailable(format!("connection {}: cannot encode it: {e}", c.id)))
}

/// A session's hash as read.
#[derive(Debug)]
pub(super) struct Decoded {
    /// The version counter.
    pub version: u64,
    /// The tag of the write that made this version (empty when none did: a new session).
    pub writer: String,
    /// The session, its connections in creation order and their usable tokens.
    pub doc: SessionDoc,
    /// Each connection's creation sequence number (kept when the connection is rewritten).
    pub seqs: HashMap<ConnectionId, u64>,
    /// The highest of `seqs` (a new connection gets a higher one).
    pub last_seq: u64,
}

impl Decoded {
    /// A session as the create script writes it: version 1, no write yet, no connections.
    pub fn new(doc: SessionDoc) -> Self {
        Self { version: 1, writer: String::new(), doc, seqs: HashMap::new(), last_seq: 0 }
    }
}

/// Parses the hash fields stored for session `id` (`HGETALL`); no fields is no session, and
/// anything else than a well-formed hash of that session is an error.
pub(super) fn decode(id: &SessionId, fields: Vec<(String, String)>) -> Result<Option<Decoded>, StoreError> {
    if fields.is_empty() {
        return Ok(None);
    }
    let bad = |what: String| StoreError::Unavailable(format!("session {id}: malformed hash in Redis: {what}"));
    let (mut version, mut session, mut writer) = (None, None, String::new());
    let mut parts = Vec::new();
    for (field, value) in fields {
        match field.as_str() {
            VERSION => {
                let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                version = Some(
                    value.parse::<u64>().ok().filter(|_| digits).ok_or_else(|| bad(format!("version {value:?}")))?,
                );
            }
            WRITER => writer = value,
            SESSION => {
                let repr: SessionRepr =
                    serde_json::from_str(&value).map_err(|e| bad(format!("unreadable session: {e}")))?;
                session = Some(Session::from(repr));
            }
            f if f.starts_with(CONNECTION) => {
                let part: ConnectionPart =
                    serde_json::from_str(&value).map_err(|e| bad(format!("unreadable field {f}: {e}")))?;
                if f[CONNECTION.len()..] != *part.connection.id.as_str() || part.connection.session_id != *id {
                    return Err(bad(format!(
                        "field {f} holds connection {} of {}",
                        part.connection.id, part.connection.session_id
                    )));
                }
                parts.push(part);
            }
            other => return Err(bad(format!("unknown field {other:?}"))),
        }
    }
    let version = version.ok_or_else(|| bad("no version".into()))?;
    let session = session.ok_or_else(|| bad("no session".into()))?;
    if &session.id != id {
        return Err(bad(format!("it holds session {}", session.id)));
    }
    parts.sort_by(|a, b| (a.seq, &a.connection.id).cmp(&(b.seq, &b.connection.id)));
    let last_seq = parts.last().map_or(0, |p| p.seq);
    let mut seqs = HashMap::with_capacity(parts.len());
    let mut tokens = Vec::new();
    let mut connections = Vec::with_capacity(parts.len());
    for part in parts {
        seqs.insert(part.connection.id.clone(), part.seq);
        if let Some(token) = part.token {
            tokens.push((token, part.connection.id.clone()));
        }
        connections.push(Connection::from(part.connection));
    }
    Ok(Some(Decoded {
        version,
        writer,
        doc: SessionDoc::from_parts(SessionSnapshot { session, connections: connections.into() }, tokens),
        seqs,
        last_seq,
    }))
}

/// A connection's field.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionPart {
    seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<TokenId>,
    connection: ConnectionRepr,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRepr {
    id: SessionId,
    created_at: Millis,
    properties: SessionPropertiesRepr,
    active: bool,
    recording: bool,
    media_node_id: Option<MediaNodeId>,
}

impl From<&Session> for SessionRepr {
    fn from(s: &Session) -> Self {
        Self {
            id: s.id.clone(),
            created_at: s.created_at,
            properties: (&s.properties).into(),
            active: s.active,
            recording: s.recording,
            media_node_id: s.media_node_id.clone(),
        }
    }
}

impl From<SessionRepr> for Session {
    fn from(r: SessionRepr) -> Self {
        let mut s = Session::new(r.id, r.created_at, r.properties.into());
        s.active = r.active;
        s.recording = r.recording;
        s.media_node_id = r.media_node_id;
        s
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionPropertiesRepr {
    media_mode: MediaMode,
    recording_mode: RecordingMode,
    default_recording_properties: RecordingPropertiesRepr,
    custom_session_id: String,
    forced_video_codec: VideoCodec,
    allow_transcoding: bool,
    media_node: Option<MediaNodeId>,
}

impl From<&SessionProperties> for SessionPropertiesRepr {
    fn from(p: &SessionProperties) -> Self {
        Self {
            media_mode: p.media_mode,
            recording_mode: p.recording_mode,
            default_recording_properties: (&p.default_recording_properties).into(),
            custom_session_id: p.custom_session_id.clone(),
            forced_video_codec: p.forced_video_codec,
            allow_transcoding: p.allow_transcoding,
            media_node: p.media_node.clone(),
        }
    }
}

impl From<SessionPropertiesRepr> for SessionProperties {
    fn from(r: SessionPropertiesRepr) -> Self {
        let mut p = SessionProperties::default();
        p.media_mode = r.media_mode;
        p.recording_mode = r.recording_mode;
        p.default_recording_properties = r.default_recording_properties.into();
        p.custom_session_id = r.custom_session_id;
        p.forced_video_codec = r.forced_video_codec;
        p.allow_transcoding = r.allow_transcoding;
        p.media_node = r.media_node;
        p
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingPropertiesRepr {
    name: String,
    has_audio: bool,
    has_video: bool,
    output_mode: OutputMode,
    recording_layout: RecordingLayout,
    resolution: String,
    frame_rate: u32,
    shm_size: u64,
    custom_layout: String,
    ignore_failed_streams: bool,
    media_node: Option<MediaNodeId>,
}

impl From<&RecordingProperties> for RecordingPropertiesRepr {
    fn from(p: &RecordingProperties) -> Self {
        Self {
            name: p.name.clone(),
            has_audio: p.has_audio,
            has_video: p.has_video,
            output_mode: p.output_mode,
            recording_layout: p.recording_layout,
            resolution: p.resolution.clone(),
            frame_rate: p.frame_rate,
            shm_size: p.shm_size,
            custom_layout: p.custom_layout.clone(),
            ignore_failed_streams: p.ignore_failed_streams,
            media_node: p.media_node.clone(),
        }
    }
}

impl From<RecordingPropertiesRepr> for RecordingProperties {
    fn from(r: RecordingPropertiesRepr) -> Self {
        let mut p = RecordingProperties::default();
        p.name = r.name;
        p.has_audio = r.has_audio;
        p.has_video = r.has_video;
        p.output_mode = r.output_mode;
        p.recording_layout = r.recording_layout;
        p.resolution = r.resolution;
        p.frame_rate = r.frame_rate;
        p.shm_size = r.shm_size;
        p.custom_layout = r.custom_layout;
        p.ignore_failed_streams = r.ignore_failed_streams;
        p.media_node = r.media_node;
        p
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionRepr {
    id: ConnectionId,
    session_id: SessionId,
    created_at: Millis,
    properties: ConnectionPropertiesRepr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<ActiveInfoRepr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    publishers: Vec<PublisherRepr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    subscribers: Vec<SubscriberRepr>,
}

impl From<&Connection> for ConnectionRepr {
    fn from(c: &Connection) -> Self {
        Self {
            id: c.id.clone(),
            session_id: c.session_id.clone(),
            created_at: c.created_at,
            properties: (&c.properties).into(),
            token: c.token.clone(),
            active: c.active.as_ref().map(Into::into),
            publishers: c.publishers.iter().map(Into::into).collect(),
            subscribers: c.subscribers.iter().map(Into::into).collect(),
        }
    }
}

impl From<ConnectionRepr> for Connection {
    fn from(r: ConnectionRepr) -> Self {
        let mut c = Connection::pending(r.id, r.session_id, r.created_at, r.properties.into(), r.token);
        c.active = r.active.map(Into::into);
        c.publishers = r.publishers.into_iter().map(Into::into).collect();
        c.subscribers = r.subscribers.into_iter().map(Into::into).collect();
        c
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionPropertiesRepr {
    connection_type: ConnectionType,
    data: String,
    record: bool,
    role: OpenViduRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kurento_options: Option<KurentoOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rtsp_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    adaptative_bitrate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    only_play_with_subscribers: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    network_cache: Option<u32>,
}

impl From<&ConnectionProperties> for ConnectionPropertiesRepr {
    fn from(p: &ConnectionProperties) -> Self {
        Self {
            connection_type: p.connection_type,
            data: p.data.clone(),
            record: p.record,
            role: p.role,
            kurento_options: p.kurento_options.clone(),
            rtsp_uri: p.rtsp_uri.clone(),
            adaptative_bitrate: p.adaptative_bitrate,
            only_play_with_subscribers: p.only_play_with_subscribers,
            network_cache: p.network_cache,
        }
    }
}

impl From<ConnectionPropertiesRepr> for ConnectionProperties {
    fn from(r: ConnectionPropertiesRepr) -> Self {
        let mut p = ConnectionProperties::default();
        p.connection_type = r.connection_type;
        p.data = r.data;
        p.record = r.record;
        p.role = r.role;
        p.kurento_options = r.kurento_options;
        p.rtsp_uri = r.rtsp_uri;
        p.adaptative_bitrate = r.adaptative_bitrate;
        p.only_play_with_subscribers = r.only_play_with_subscribers;
        p.network_cache = r.network_cache;
        p
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveInfoRepr {
    active_at: Millis,
    location: String,
    ip: Option<String>,
    platform: String,
    client_data: String,
}

impl From<&ActiveInfo> for ActiveInfoRepr {
    fn from(a: &ActiveInfo) -> Self {
        Self {
            active_at: a.active_at,
            location: a.location.clone(),
            ip: a.ip.clone(),
            platform: a.platform.clone(),
            client_data: a.client_data.clone(),
        }
    }
}

impl From<ActiveInfoRepr> for ActiveInfo {
    fn from(r: ActiveInfoRepr) -> Self {
        let mut a = ActiveInfo::new(r.active_at, r.ip, r.platform, r.client_data);
        a.location = r.location;
        a
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherRepr {
    stream_id: StreamId,
    created_at: Millis,
    media_options: MediaOptionsRepr,
}

impl From<&Publisher> for PublisherRepr {
    fn from(p: &Publisher) -> Self {
        Self { stream_id: p.stream_id.clone(), created_at: p.created_at, media_options: (&p.media_options).into() }
    }
}

impl From<PublisherRepr> for Publisher {
    fn from(r: PublisherRepr) -> Self {
        Publisher::new(r.stream_id, r.created_at, r.media_options.into())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaOptionsRepr {
    has_audio: bool,
    audio_active: bool,
    has_video: bool,
    video_active: bool,
    type_of_video: Option<TypeOfVideo>,
    frame_rate: Option<u32>,
    video_dimensions: Option<String>,
    filter: serde_json::Value,
}

impl From<&MediaOptions> for MediaOptionsRepr {
    fn from(m: &MediaOptions) -> Self {
        Self {
            has_audio: m.has_audio,
            audio_active: m.audio_active,
            has_video: m.has_video,
            video_active: m.video_active,
            type_of_video: m.type_of_video,
            frame_rate: m.frame_rate,
            video_dimensions: m.video_dimensions.clone(),
            filter: m.filter.clone(),
        }
    }
}

impl From<MediaOptionsRepr> for MediaOptions {
    fn from(r: MediaOptionsRepr) -> Self {
        let mut m = MediaOptions::new(r.has_audio, r.has_video, r.type_of_video);
        m.audio_active = r.audio_active;
        m.video_active = r.video_active;
        m.type_of_video = r.type_of_video;
        m.frame_rate = r.frame_rate;
        m.video_dimensions = r.video_dimensions;
        m.filter = r.filter;
        m
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriberRepr {
    stream_id: StreamId,
    created_at: Millis,
}

impl From<&Subscriber> for SubscriberRepr {
    fn from(s: &Subscriber) -> Self {
        Self { stream_id: s.stream_id.clone(), created_at: s.created_at }
    }
}

impl From<SubscriberRepr> for Subscriber {
    fn from(r: SubscriberRepr) -> Self {
        Subscriber::new(r.stream_id, r.created_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openvidu_core::id::{IdGenerator, SequentialIds};

    /// A hash's fields as `HGETALL` gives them.
    type Fields = Vec<(String, String)>;

    /// The fields of a document as the store writes them.
    fn fields(doc: &SessionDoc, version: u64) -> Fields {
        let mut f = vec![
            (VERSION.to_owned(), version.to_string()),
            (SESSION.to_owned(), encode_session(&doc.snapshot.session).unwrap()),
        ];
        // Reversed: the order of a hash's fields is not the creation order.
        for (seq, c) in doc.snapshot.connections.iter().enumerate().rev() {
            f.push((connection_field(&c.id), encode_connection(c, doc.token_of(&c.id), seq as u64 + 1).unwrap()));
        }
        f
    }

    /// A document with every field set to a non-default value survives encode → decode, in
    /// creation order, with its tokens.
    #[test]
    fn documents_round_trip() {
        let ids = SequentialIds::default();
        let sid = ids.session_id();
        let mut props = SessionProperties::default();
        props.media_mode = MediaMode::Relayed;
        props.recording_mode = RecordingMode::Always;
        props.custom_session_id = "custom".into();
        props.forced_video_codec = VideoCodec::H264;
        props.allow_transcoding = true;
        props.media_node = Some(MediaNodeId::parse("media_1").unwrap());
        props.default_recording_properties.name = "rec".into();
        props.default_recording_properties.output_mode = OutputMode::Individual;
        props.default_recording_properties.recording_layout = RecordingLayout::Custom;
        props.default_recording_properties.ignore_failed_streams = true;
        props.default_recording_properties.media_node = Some(MediaNodeId::parse("media_2").unwrap());
        let mut session = Session::new(sid.clone(), 7, props);
        session.active = true;
        session.recording = true;
        session.media_node_id = Some(MediaNodeId::parse("media_3").unwrap());

        let cid = ids.connection_id();
        let mut cprops = ConnectionProperties::default();
        cprops.connection_type = ConnectionType::Ipcam;
        cprops.data = "d\"ata".into();
        cprops.record = false;
        cprops.role = OpenViduRole::Moderator;
        cprops.kurento_options = Some(KurentoOptions::default());
        cprops.rtsp_uri = Some("rtsp://cam".into());
        cprops.adaptative_bitrate = Some(true);
        cprops.only_play_with_subscribers = Some(false);
        cprops.network_cache = Some(300);
        let mut conn = Connection::pending(cid.clone(), sid.clone(), 8, cprops, Some("wss://x?token=t".into()));
        let mut info = ActiveInfo::new(9, Some("10.0.0.1".into()), "Chrome".into(), "{}".into());
        info.location = "Madrid".into();
        conn.active = Some(info);
        let stream = ids.stream_id(Some(TypeOfVideo::Screen), &cid);
        let mut media = MediaOptions::new(true, true, Some(TypeOfVideo::Screen));
        media.audio_active = false;
        media.frame_rate = Some(30);
        media.video_dimensions = Some("{\"width\":640,\"height\":480}".into());
        media.filter = serde_json::json!({"type": "GStreamerFilter", "options": {"b": 1, "a": 2}});
        conn.publishers.push(Publisher::new(stream.clone(), 10, media));
        conn.subscribers.push(Subscriber::new(stream, 11));
        let mut connections = vec![conn];
        let mut tokens = Vec::new();
        for i in 0..5 {
            let c = ids.connection_id();
            tokens.push((ids.token_id(), c.clone()));
            connections.push(Connection::pending(c, sid.clone(), 20 + i, ConnectionProperties::default(), None));
        }
        let doc = SessionDoc::from_parts(SessionSnapshot { session, connections: connections.into() }, tokens);

        let back = decode(&sid, fields(&doc, 42)).unwrap().unwrap();
        assert_eq!(back.doc, doc);
        assert_eq!(back.version, 42);
        assert_eq!(back.seqs[&cid], 1);
        assert_eq!(fields(&back.doc, 42), fields(&doc, 42), "encoding is deterministic");
        assert!(decode(&sid, Vec::new()).unwrap().is_none(), "no fields, no session");
    }

    /// A pending connection is written without its absent parts, and the form with every
    /// `null` and empty list spelled out (as written before) reads the same.
    #[test]
    fn absent_parts_are_left_out_and_read_back_either_way() {
        let ids = SequentialIds::default();
        let sid = ids.session_id();
        let cid = ids.connection_id();
        let pending = Connection::pending(cid.clone(), sid.clone(), 2, ConnectionProperties::default(), None);
        let session = Session::new(sid.clone(), 1, SessionProperties::default());
        let doc = SessionDoc::from_parts(SessionSnapshot { session, connections: vec![pending.clone()].into() }, []);
        let compact = fields(&doc, 1);
        assert_eq!(
            compact[2].1,
            format!(
                "{{\"seq\":1,\"connection\":{{\"id\":\"{cid}\",\"session_id\":\"{sid}\",\"created_at\":2,\
                 \"properties\":{{\"connection_type\":\"WEBRTC\",\"data\":\"\",\"record\":true,\"role\":\"PUBLISHER\"}}}}}}"
            )
        );
        let mut spelled_out = compact.clone();
        spelled_out[2].1 = format!(
            "{{\"seq\":1,\"token\":null,\"connection\":{{\"id\":\"{cid}\",\"session_id\":\"{sid}\",\"created_at\":2,\
             \"properties\":{{\"connection_type\":\"WEBRTC\",\"data\":\"\",\"record\":true,\"role\":\"PUBLISHER\",\
             \"kurento_options\":null,\"rtsp_uri\":null,\"adaptative_bitrate\":null,\"only_play_with_subscribers\":null,\
             \"network_cache\":null}},\"token\":null,\"active\":null,\"publishers\":[],\"subscribers\":[]}}}}"
        );
        let a = decode(&sid, compact).unwrap().unwrap();
        let b = decode(&sid, spelled_out).unwrap().unwrap();
        assert_eq!(a.doc, doc);
        assert_eq!(b.doc, doc);
        assert_eq!(a.doc.snapshot.connections[0], pending);
        assert_eq!((a.seqs[&cid], b.seqs[&cid]), (1, 1));
    }

    #[test]
    fn foreign_or_broken_documents_are_errors() {
        let ids = SequentialIds::default();
        let sid = ids.session_id();
        let session = Session::new(sid.clone(), 1, SessionProperties::default());
        let pending = Connection::pending(ids.connection_id(), sid.clone(), 2, ConnectionProperties::default(), None);
        let doc = SessionDoc::from_parts(SessionSnapshot { session, connections: vec![pending].into() }, []);
        let good = fields(&doc, 1);
        assert!(decode(&sid, good.clone()).is_ok());
        let broken = |f: &dyn Fn(&mut Fields)| {
            let mut v = good.clone();
            f(&mut v);
            matches!(decode(&sid, v), Err(StoreError::Unavailable(_)))
        };
        assert!(matches!(decode(&ids.session_id(), good.clone()), Err(StoreError::Unavailable(_))), "another session");
        assert!(broken(&|v| v[0].1 = "one".into()), "bad version");
        assert!(broken(&|v| v[0].1 = String::new()), "empty version");
        assert!(
            broken(&|v| {
                v.remove(0);
            }),
            "no version"
        );
        assert!(
            broken(&|v| {
                v.remove(1);
            }),
            "no session"
        );
        assert!(broken(&|v| v[1].1 = "not json".into()), "session not JSON");
        assert!(broken(&|v| v[1].1 = "{\"session\":1}".into()), "session of the wrong shape");
        assert!(broken(&|v| v[1].1 = v[1].1.replacen(sid.as_str(), "bad id!", 1)), "bad session id");
        assert!(broken(&|v| v[2].1 = "[]".into()), "connection of the wrong shape");
        assert!(broken(&|v| v[2].0 = "c:con_other".into()), "connection under another id");
        assert!(broken(&|v| v.push(("x".into(), "1".into()))), "unknown field");
    }
}

//! One JSON-RPC request in, one answer (or, for unknown and notification frames, none) out.

use openvidu_core::id::{ConnectionId, SessionId, StreamId, TypeOfVideo};
use openvidu_core::model::{ActiveInfo, EndReason, MediaOptions};
use openvidu_core::wire::rpc::{
    ConnectParams, ErrorCode, ExistingParticipant, ForceDisconnectParams, JoinRoomParams, JoinRoomResult, Request,
    RpcError, SERVER_VERSION, SendMessageParams, SignalMessage, StreamEntry, error_frame, full_metadata, result_frame,
};
use openvidu_core::wire::rpc::{
    ForceUnpublishParams, OnIceCandidateParams, PrepareReceiveVideoFromParams, PublishVideoParams,
    ReceiveVideoFromParams, ReconnectStreamParams, StreamPropertyChangedParams, UnsubscribeFromVideoParams,
};
use openvidu_media::IceCandidate;
use serde_json::{Value, json};

use super::SocketState;
use crate::participants::{Outgoing, Participant};
use crate::service::{JoinError, OpenViduService, PublishRequest, ServiceError, now_ms};

type RpcResult = Result<Value, RpcError>;

/// The notifications a participant received between its registration in `joinRoom` and the
/// answer, and what that answer told it (those notifications are then not sent again).
pub(crate) struct Held {
    rx: tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
    known: Known,
}

/// The connections and streams a `joinRoom` answer listed.
struct Known {
    connections: std::collections::HashSet<String>,
    streams: std::collections::HashSet<String>,
}

impl Known {
    /// Whether `out` is a `participantJoined` of a connection, or a `participantPublished` of
    /// streams, that the `joinRoom` answer already listed.
    fn told(&self, out: &Outgoing) -> bool {
        let Some(frame) = out.text() else { return false };
        let Ok(v) = serde_json::from_str::<Value>(frame) else { return false };
        let params = &v["params"];
        match v["method"].as_str() {
            Some("participantJoined") => params["id"].as_str().is_some_and(|c| self.connections.contains(c)),
            Some("participantPublished") => params["streams"].as_array().is_some_and(|streams| {
                streams.iter().all(|st| st["id"].as_str().is_some_and(|id| self.streams.contains(id)))
            }),
            _ => false,
        }
    }
}

/// Handles one text frame.
pub(crate) async fn handle(svc: &OpenViduService, state: &mut SocketState, frame: &str) {
    let request = match Request::parse(frame) {
        Ok(r) => r,
        Err(error_frame) => {
            let _ = state.tx.send(Outgoing::Frame(error_frame));
            return;
        }
    };
    let outcome = dispatch(svc, state, &request).await;
    let Some(id) = &request.id else { return };
    let frame = match outcome {
        Ok(result) => result_frame(id, result, Some(&state.rpc_id)),
        Err(e) => {
            tracing::debug!(rpc_id = %state.rpc_id, method = %request.method, code = e.code as i32, message = %e.message, "rpc error");
            error_frame(id, &e, Some(&state.rpc_id))
        }
    };
    let _ = state.tx.send(Outgoing::Frame(frame));
    if let Some(Held { mut rx, known }) = state.held.take() {
        svc.participants().release(&state.rpc_id, state.tx.clone(), &mut rx, |out| known.told(out));
    }
}

fn not_joined() -> RpcError {
    RpcError::new(ErrorCode::TransportError, "No connection found for this socket: call joinRoom first")
}

async fn dispatch(svc: &OpenViduService, state: &mut SocketState, req: &Request) -> RpcResult {
    match req.method.as_str() {
        "ping" => {
            if let Some(ms) = req.params.get("interval").and_then(Value::as_u64) {
                state.ping_interval = Some(std::time::Duration::from_millis(ms.clamp(1000, 20_000)));
            } else if state.ping_interval.is_none() {
                state.ping_interval = Some(std::time::Duration::from_secs(5));
            }
            state.last_ping = std::time::Instant::now();
            Ok(json!("pong"))
        }
        "connect" => connect(svc, state, req.params()?).await,
        "joinRoom" => join_room(svc, state, req.params()?).await,
        "echo" | "videoData" => Ok(json!({})),
        // openvidu-browser asks after a failed `connect`: a different life means the master crashed.
        "sessionStatus" => Ok(json!({"life": svc.life()})),
        method => {
            let me = svc.participants().get(&state.rpc_id).filter(|_| state.joined).ok_or_else(not_joined)?;
            match method {
                "leaveRoom" => {
                    state.left = true;
                    svc.remove_participant(&me.session, &me.connection, EndReason::Disconnect)
                        .await
                        .map_err(media_or_generic)?;
                    // The client closes its socket (4102); if it does not, we do after 10 s. The
                    // timer holds the queue weakly: a socket the client closed ends at once, not
                    // 10 s later (a strong sender kept its writer, and the socket, in CLOSE-WAIT).
                    let tx = state.tx.downgrade();
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                        if let Some(tx) = tx.upgrade() {
                            let _ = tx.send(Outgoing::Close);
                        }
                    });
                    Ok(json!({}))
                }
                "sendMessage" => send_message(svc, &me, req.params()?).await,
                "forceDisconnect" => force_disconnect(svc, &me, req.params()?).await,
                "applyFilter"
                | "removeFilter"
                | "execFilterMethod"
                | "addFilterEventListener"
                | "removeFilterEventListener" => {
                    Err(RpcError::new(ErrorCode::FilterNotApplied, "Kurento filters are not supported by openvidu-rs"))
                }
                "publishVideo" => publish_video(svc, state, &me, req.params()?).await,
                "unpublishVideo" => {
                    let stream = my_stream(svc, &me).await?;
                    svc.unpublish(&me.session, &stream, EndReason::Unpublish).await.map_err(media_error)?;
                    Ok(json!({}))
                }
                "prepareReceiveVideoFrom" => {
                    let p: PrepareReceiveVideoFromParams = req.params()?;
                    let stream = stream_id(&p.sender)?;
                    let offer =
                        svc.prepare_subscribe(&me.session, &me.connection, &stream).await.map_err(media_error)?;
                    Ok(json!({"sdpOffer": offer}))
                }
                "receiveVideoFrom" => {
                    let p: ReceiveVideoFromParams = req.params()?;
                    let stream = stream_id(&p.sender)?;
                    match (p.sdp_offer, p.sdp_answer) {
                        (Some(offer), _) => {
                            let answer = svc
                                .subscribe(&me.session, &me.connection, &stream, offer)
                                .await
                                .map_err(media_error)?;
                            Ok(json!({"sdpAnswer": answer}))
                        }
                        (None, Some(answer)) => {
                            svc.complete_subscribe(&me.session, &me.connection, &stream, answer)
                                .await
                                .map_err(media_error)?;
                            Ok(json!({}))
                        }
                        (None, None) => {
                            Err(RpcError::new(ErrorCode::InvalidParams, "sdpOffer or sdpAnswer is required"))
                        }
                    }
                }
                "unsubscribeFromVideo" => {
                    let p: UnsubscribeFromVideoParams = req.params()?;
                    let sender = ConnectionId::parse(&p.sender).map_err(|_| {
                        RpcError::new(ErrorCode::UserNotFound, format!("Connection {} not found", p.sender))
                    })?;
                    svc.unsubscribe(&me.session, &me.connection, &sender).await.map_err(media_error)?;
                    Ok(json!({}))
                }
                "onIceCandidate" => {
                    let p: OnIceCandidateParams = req.params()?;
                    let candidate = IceCandidate::new(p.candidate, p.sdp_mid, p.sdp_m_line_index);
                    if p.endpoint_name == me.connection.as_str() && my_stream(svc, &me).await.is_err() {
                        // Our own publisher is not there yet: keep it for after publishVideo.
                        if state.pending_candidates.len() < MAX_PENDING_CANDIDATES {
                            state.pending_candidates.push(candidate);
                        }
                        return Ok(json!({}));
                    }
                    svc.add_ice_candidate(&me.session, &me.connection, &p.endpoint_name, candidate)
                        .await
                        .map_err(media_error)?;
                    Ok(json!({}))
                }
                "streamPropertyChanged" => {
                    let p: StreamPropertyChangedParams = req.params()?;
                    let stream = stream_id(&p.stream_id)?;
                    if stream.owner().as_ref() != Some(&me.connection) {
                        return Err(RpcError::new(ErrorCode::UserUnauthorized, "Only the owner may change a stream"));
                    }
                    svc.change_stream_property(
                        &me.session,
                        &stream,
                        &p.property,
                        p.new_value,
                        p.reason.unwrap_or_default(),
                    )
                    .await
                    .map_err(media_error)?;
                    Ok(json!({}))
                }
                "forceUnpublish" => {
                    let p: ForceUnpublishParams = req.params()?;
                    if !me.may_moderate() {
                        return Err(RpcError::new(
                            ErrorCode::UserUnauthorized,
                            "Only moderators may force an unpublish",
                        ));
                    }
                    let stream = stream_id(&p.stream_id)?;
                    svc.force_unpublish(&me.session, &stream, EndReason::ForceUnpublishByUser).await.map_err(|e| {
                        match e {
                            ServiceError::IpcamStream(_) => {
                                RpcError::new(ErrorCode::UserGeneric, "The stream belongs to an IP camera")
                            }
                            other => media_error(other),
                        }
                    })?;
                    Ok(json!({}))
                }
                "reconnectStream" => reconnect_stream(svc, &me, req.params()?).await,
                other => Err(RpcError::new(ErrorCode::MethodNotFound, format!("Method not found: {other}"))),
            }
        }
    }
}

/// At most this many candidates wait for a publisher that does not exist yet.
const MAX_PENDING_CANDIDATES: usize = 64;

fn stream_id(s: &str) -> Result<StreamId, RpcError> {
    StreamId::parse(s).map_err(|_| RpcError::new(ErrorCode::UserNotFound, format!("Stream {s} not found")))
}

async fn my_stream(svc: &OpenViduService, me: &Participant) -> Result<StreamId, RpcError> {
    let snapshot = svc.session(&me.session).await.map_err(media_or_generic)?;
    snapshot
        .connection(&me.connection)
        .and_then(|c| c.publishers.first())
        .map(|p| p.stream_id.clone())
        .ok_or_else(|| RpcError::new(ErrorCode::UserNotStreaming, "This connection is not publishing"))
}

/// RPC errors of media operations, with OpenVidu's codes.
fn media_error(e: ServiceError) -> RpcError {
    match e {
        ServiceError::Media(m) => RpcError::new(rpc_code(m.rpc_code()), m.to_string()),
        ServiceError::AlreadyPublishing(s) => {
            RpcError::new(ErrorCode::UserAlreadyStreaming, format!("Already publishing stream {s}"))
        }
        ServiceError::StreamNotFound(s) => RpcError::new(ErrorCode::UserNotStreaming, format!("Stream {s} not found")),
        ServiceError::NotPublishing(c) => {
            RpcError::new(ErrorCode::UserNotStreaming, format!("Connection {c} is not publishing"))
        }
        other => media_or_generic(other),
    }
}

fn rpc_code(code: i32) -> ErrorCode {
    match code {
        800 => ErrorCode::ForcedCodecNotFound,
        102 => ErrorCode::UserNotFound,
        105 => ErrorCode::UserNotStreaming,
        106 => ErrorCode::UserAlreadyStreaming,
        301 => ErrorCode::MediaGeneric,
        _ => ErrorCode::MediaSdp,
    }
}

/// `reconnectStream` (spec §2.2): a publisher sends a new offer (`sdpString`, legacy
/// `sdpOffer`); a subscriber offers again (`sdpOffer`) or answers a server offer made by
/// `prepareReceiveVideoFrom{reconnect:true}` or pushed by `forciblyReconnectSubscriber`
/// (`sdpString`, with `forciblyReconnect: true` for the latter).
async fn reconnect_stream(svc: &OpenViduService, me: &Participant, p: ReconnectStreamParams) -> RpcResult {
    let stream = stream_id(&p.stream)?;
    if stream.owner().as_ref() == Some(&me.connection) {
        let offer = p
            .sdp_string
            .or(p.sdp_offer)
            .ok_or_else(|| RpcError::new(ErrorCode::InvalidParams, "sdpString is required"))?;
        let answer = svc.republish(&me.session, &me.connection, &stream, offer).await.map_err(media_error)?;
        let snapshot = svc.session(&me.session).await.map_err(media_or_generic)?;
        let created_at = snapshot
            .connection(&me.connection)
            .and_then(|c| c.publishers.iter().find(|x| x.stream_id == stream))
            .map(|x| x.created_at)
            .unwrap_or_default();
        return Ok(json!({"sdpAnswer": answer, "id": stream, "createdAt": created_at}));
    }
    match (p.sdp_offer, p.sdp_string) {
        (Some(offer), _) => {
            let answer = svc.resubscribe(&me.session, &me.connection, &stream, offer).await.map_err(media_error)?;
            Ok(json!({"sdpAnswer": answer}))
        }
        (None, Some(answer)) => {
            svc.complete_resubscribe(&me.session, &me.connection, &stream, answer).await.map_err(media_error)?;
            Ok(json!({}))
        }
        (None, None) => Err(RpcError::new(ErrorCode::InvalidParams, "sdpOffer or sdpString is required")),
    }
}

async fn publish_video(
    svc: &OpenViduService,
    state: &mut SocketState,
    me: &Participant,
    p: PublishVideoParams,
) -> RpcResult {
    if !me.may_publish() {
        return Err(RpcError::new(ErrorCode::UserUnauthorized, "This role may not publish"));
    }
    let type_of_video = match p.type_of_video.as_deref() {
        Some("SCREEN") => Some(TypeOfVideo::Screen),
        Some("CUSTOM") => Some(TypeOfVideo::Custom),
        Some("IPCAM") => Some(TypeOfVideo::Ipcam),
        _ if p.has_video => Some(TypeOfVideo::Camera),
        _ => None,
    };
    let mut options = MediaOptions::new(p.has_audio, p.has_video, type_of_video);
    options.audio_active = p.has_audio && p.audio_active.unwrap_or(true);
    options.video_active = p.has_video && p.video_active.unwrap_or(true);
    options.frame_rate = p.frame_rate.and_then(|f| u32::try_from(f).ok());
    options.video_dimensions = p.video_dimensions.filter(|d| !d.is_empty());
    if let Some(f) = p.filter.filter(|f| f.as_object().is_some_and(|o| !o.is_empty())) {
        options.filter = f;
    }
    let (answer, publisher) = svc
        .publish(&me.session, &me.connection, PublishRequest::new(p.sdp_offer, options))
        .await
        .map_err(media_error)?;
    for c in std::mem::take(&mut state.pending_candidates) {
        if let Err(e) = svc.add_ice_candidate(&me.session, &me.connection, me.connection.as_str(), c).await {
            tracing::debug!(connection_id = %me.connection, error = %e, "early ICE candidate refused");
        }
    }
    Ok(json!({"sdpAnswer": answer, "id": publisher.stream_id, "createdAt": publisher.created_at}))
}

fn media_or_generic(e: ServiceError) -> RpcError {
    match e {
        ServiceError::ConnectionNotFound(c) => {
            RpcError::new(ErrorCode::UserNotFound, format!("Connection {c} not found"))
        }
        ServiceError::SessionNotFound(s) => RpcError::new(ErrorCode::RoomNotFound, format!("Session {s} not found")),
        other => RpcError::new(ErrorCode::Generic, other.to_string()),
    }
}

async fn connect(svc: &OpenViduService, state: &mut SocketState, params: ConnectParams) -> RpcResult {
    let rebound = match svc.participants().reattach(&params.session_id, state.tx.clone()) {
        Some(p) => Some(p.connection),
        None => take_over(svc, state, &params.session_id).await,
    };
    match rebound {
        Some(connection) => {
            tracing::info!(rpc_id = %params.session_id, connection_id = %connection, "socket re-bound");
            state.rpc_id = params.session_id;
            state.joined = true;
            Ok(json!("reconnection successful"))
        }
        None => Err(RpcError::new(ErrorCode::ReconnectionError, "reconnection error")),
    }
}

/// In a cluster: a participant another master held (it died, or the load balancer moved the
/// socket) reconnects here. It is taken over when the registry knows it and its connection is
/// still active; the other masters are told to let it go.
async fn take_over(svc: &OpenViduService, state: &SocketState, rpc_id: &str) -> Option<ConnectionId> {
    let cluster = svc.cluster()?;
    let entry = match cluster.sockets.lookup(rpc_id).await {
        Ok(Some(e)) => e,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(rpc_id, error = %e, "socket registry unavailable");
            return None;
        }
    };
    let snapshot = svc.session(&entry.session).await.ok()?;
    snapshot.connection(&entry.connection).filter(|c| c.active.is_some())?;
    let epoch =
        match cluster.sockets.claim(rpc_id, &entry.session, &entry.connection, entry.role, &cluster.master_id).await {
            Ok(epoch) => epoch,
            Err(e) => {
                tracing::warn!(rpc_id, error = %e, "socket registry unavailable");
                return None;
            }
        };
    svc.participants().insert(rpc_id, entry.session.clone(), entry.connection.clone(), entry.role, state.tx.clone());
    svc.participants().set_epoch(rpc_id, epoch);
    svc.participants().announce_takeover(&entry.connection, epoch);
    tracing::info!(rpc_id, connection_id = %entry.connection, from = %entry.master, epoch,
        "participant taken over from another master");
    Some(entry.connection)
}

async fn join_room(svc: &OpenViduService, state: &mut SocketState, params: JoinRoomParams) -> RpcResult {
    if state.joined {
        return Err(RpcError::new(ErrorCode::ExistingUserInRoom, "This socket already joined a session"));
    }
    let session = SessionId::parse(&params.session)
        .map_err(|_| RpcError::new(ErrorCode::RoomNotFound, format!("Session {} not found", params.session)))?;
    let info = ActiveInfo::new(
        now_ms(),
        Some(state.ip.to_string()),
        params.platform.clone().unwrap_or_default(),
        params.metadata.clone().unwrap_or_default(),
    );
    let (connection, snapshot) =
        svc.join(&session, params.token.as_deref(), params.secret.as_deref(), info).await.map_err(|e| match e {
            JoinError::SessionNotFound => {
                RpcError::new(ErrorCode::RoomNotFound, format!("Session {session} not found"))
            }
            JoinError::InvalidToken => {
                RpcError::new(ErrorCode::UserUnauthorized, format!("Token is not valid for session {session}"))
            }
            other => RpcError::new(ErrorCode::Generic, other.to_string()),
        })?;
    let role = connection.properties.role;
    // Notifications reach the participant from now on, but are held until the answer is sent
    // (`handle` releases them): openvidu-browser drops a notification about a connection its
    // answer has not introduced yet. The answer then describes the session as read after this
    // point, so nothing published meanwhile is lost.
    let (held_tx, held_rx) = tokio::sync::mpsc::unbounded_channel();
    svc.participants().insert(&state.rpc_id, session.clone(), connection.id.clone(), Some(role), held_tx);
    let snapshot = svc.session(&session).await.unwrap_or(snapshot);
    if let Some(cluster) = svc.cluster() {
        match cluster.sockets.claim(&state.rpc_id, &session, &connection.id, Some(role), &cluster.master_id).await {
            Ok(epoch) => svc.participants().set_epoch(&state.rpc_id, epoch),
            Err(e) => tracing::warn!(rpc_id = %state.rpc_id, error = %e, "socket registry unavailable"),
        }
    }
    state.joined = true;
    let active = connection.active.clone().unwrap_or_else(|| ActiveInfo::new(0, None, String::new(), String::new()));
    let value = snapshot
        .active_connections()
        .filter(|c| c.id != connection.id)
        .map(|c| {
            let client = c.active.as_ref().map(|a| a.client_data.as_str()).unwrap_or("");
            ExistingParticipant {
                id: c.id.clone(),
                created_at: c.active.as_ref().map(|a| a.active_at).unwrap_or(c.created_at),
                metadata: full_metadata(client, &c.properties.data),
                streams: (!c.publishers.is_empty()).then(|| c.publishers.iter().map(StreamEntry::from).collect()),
            }
        })
        .collect::<Vec<ExistingParticipant>>();
    state.held = Some(Held {
        rx: held_rx,
        known: Known {
            connections: value.iter().map(|p| p.id.to_string()).collect(),
            streams: value.iter().flat_map(|p| p.streams.iter().flatten().map(|st| st.id.to_string())).collect(),
        },
    });
    let coturn_ip =
        url::Url::parse(svc.public_url()).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    let result = JoinRoomResult {
        id: connection.id.clone(),
        final_user_id: state.rpc_id.chars().take(16).collect(),
        created_at: active.active_at,
        metadata: full_metadata(&active.client_data, &connection.properties.data),
        value,
        session: session.to_string(),
        version: SERVER_VERSION.into(),
        media_server: "kurento".into(),
        record: Some(connection.properties.record),
        role: Some(role),
        coturn_ip,
        life: Some(svc.life()),
    };
    serde_json::to_value(result).map_err(|e| RpcError::new(ErrorCode::Generic, e.to_string()))
}

async fn send_message(svc: &OpenViduService, me: &Participant, params: SendMessageParams) -> RpcResult {
    let message: SignalMessage = serde_json::from_str(&params.message)
        .map_err(|e| RpcError::new(ErrorCode::SignalFormatInvalid, format!("Signal message is not valid JSON: {e}")))?;
    let to: Vec<String> = match message.to {
        None => Vec::new(),
        Some(ids) => ids
            .into_iter()
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| RpcError::new(ErrorCode::SignalToInvalid, "Signal \"to\" contains null"))?,
    };
    svc.send_signal(&me.session, Some(&me.connection), &to, message.signal_type, message.data).await.map_err(|e| {
        match e {
            ServiceError::UnknownRecipients(ids) => RpcError::new(
                ErrorCode::SignalToInvalid,
                format!("Signal \"to\" field has connectionIds that are not part of the session: {ids:?}"),
            ),
            other => media_or_generic(other),
        }
    })?;
    Ok(json!({}))
}

async fn force_disconnect(svc: &OpenViduService, me: &Participant, params: ForceDisconnectParams) -> RpcResult {
    if !me.may_moderate() {
        return Err(RpcError::new(ErrorCode::UserUnauthorized, "Only moderators may force a disconnection"));
    }
    let target = ConnectionId::parse(&params.connection_id).map_err(|_| {
        RpcError::new(ErrorCode::UserNotFound, format!("Connection {} not found", params.connection_id))
    })?;
    svc.force_disconnect(&me.session, &target, EndReason::ForceDisconnectByUser).await.map_err(media_or_generic)?;
    Ok(json!({}))
}

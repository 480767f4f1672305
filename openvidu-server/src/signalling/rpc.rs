//! One JSON-RPC request in, one answer (or, for unknown and notification frames, none) out.

use openvidu_core::id::{ConnectionId, SessionId};
use openvidu_core::model::{ActiveInfo, EndReason};
use openvidu_core::wire::rpc::{
    ConnectParams, ErrorCode, ExistingParticipant, ForceDisconnectParams, JoinRoomParams,
    JoinRoomResult, Request, RpcError, SERVER_VERSION, SendMessageParams, SignalMessage,
    StreamEntry, error_frame, full_metadata, result_frame,
};
use serde_json::{Value, json};

use super::SocketState;
use crate::participants::{Outgoing, Participant};
use crate::service::{JoinError, OpenViduService, ServiceError, now_ms};

type RpcResult = Result<Value, RpcError>;

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
}

fn not_joined() -> RpcError {
    RpcError::new(
        ErrorCode::TransportError,
        "No connection found for this socket: call joinRoom first",
    )
}

async fn dispatch(svc: &OpenViduService, state: &mut SocketState, req: &Request) -> RpcResult {
    match req.method.as_str() {
        "ping" => {
            if let Some(ms) = req.params.get("interval").and_then(Value::as_u64) {
                state.ping_interval =
                    Some(std::time::Duration::from_millis(ms.clamp(1000, 20_000)));
            } else if state.ping_interval.is_none() {
                state.ping_interval = Some(std::time::Duration::from_secs(5));
            }
            state.last_ping = std::time::Instant::now();
            Ok(json!("pong"))
        }
        "connect" => connect(svc, state, req.params()?),
        "joinRoom" => join_room(svc, state, req.params()?).await,
        "echo" | "videoData" => Ok(json!({})),
        method => {
            let me = svc
                .participants()
                .get(&state.rpc_id)
                .filter(|_| state.joined)
                .ok_or_else(not_joined)?;
            match method {
                "leaveRoom" => {
                    state.left = true;
                    svc.remove_participant(&me.session, &me.connection, EndReason::Disconnect)
                        .await
                        .map_err(media_or_generic)?;
                    // The client closes its socket (4102); if it does not, we do after 10 s.
                    let tx = state.tx.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                        let _ = tx.send(Outgoing::Close);
                    });
                    Ok(json!({}))
                }
                "sendMessage" => send_message(svc, &me, req.params()?).await,
                "forceDisconnect" => force_disconnect(svc, &me, req.params()?).await,
                "applyFilter"
                | "removeFilter"
                | "execFilterMethod"
                | "addFilterEventListener"
                | "removeFilterEventListener" => Err(RpcError::new(
                    ErrorCode::FilterNotApplied,
                    "Kurento filters are not supported by openvidu-rs",
                )),
                "publishVideo"
                | "unpublishVideo"
                | "prepareReceiveVideoFrom"
                | "receiveVideoFrom"
                | "unsubscribeFromVideo"
                | "onIceCandidate"
                | "streamPropertyChanged"
                | "forceUnpublish"
                | "reconnectStream" => Err(RpcError::new(
                    ErrorCode::MediaGeneric,
                    "No media node is available on this master node",
                )),
                other => Err(RpcError::new(
                    ErrorCode::MethodNotFound,
                    format!("Method not found: {other}"),
                )),
            }
        }
    }
}

fn media_or_generic(e: ServiceError) -> RpcError {
    match e {
        ServiceError::ConnectionNotFound(c) => {
            RpcError::new(ErrorCode::UserNotFound, format!("Connection {c} not found"))
        }
        ServiceError::SessionNotFound(s) => {
            RpcError::new(ErrorCode::RoomNotFound, format!("Session {s} not found"))
        }
        other => RpcError::new(ErrorCode::Generic, other.to_string()),
    }
}

fn connect(svc: &OpenViduService, state: &mut SocketState, params: ConnectParams) -> RpcResult {
    match svc
        .participants()
        .reattach(&params.session_id, state.tx.clone())
    {
        Some(p) => {
            tracing::info!(rpc_id = %params.session_id, connection_id = %p.connection, "socket re-bound");
            state.rpc_id = params.session_id;
            state.joined = true;
            Ok(json!("reconnection successful"))
        }
        None => Err(RpcError::new(
            ErrorCode::ReconnectionError,
            "reconnection error",
        )),
    }
}

async fn join_room(
    svc: &OpenViduService,
    state: &mut SocketState,
    params: JoinRoomParams,
) -> RpcResult {
    if state.joined {
        return Err(RpcError::new(
            ErrorCode::ExistingUserInRoom,
            "This socket already joined a session",
        ));
    }
    let session = SessionId::parse(&params.session).map_err(|_| {
        RpcError::new(
            ErrorCode::RoomNotFound,
            format!("Session {} not found", params.session),
        )
    })?;
    let info = ActiveInfo::new(
        now_ms(),
        Some(state.ip.to_string()),
        params.platform.clone().unwrap_or_default(),
        params.metadata.clone().unwrap_or_default(),
    );
    let (connection, snapshot) = svc
        .join(
            &session,
            params.token.as_deref(),
            params.secret.as_deref(),
            info,
        )
        .await
        .map_err(|e| match e {
            JoinError::SessionNotFound => RpcError::new(
                ErrorCode::RoomNotFound,
                format!("Session {session} not found"),
            ),
            JoinError::InvalidToken => RpcError::new(
                ErrorCode::UserUnauthorized,
                format!(
                    "Token {} is not valid for session {session}",
                    params.token.as_deref().unwrap_or("")
                ),
            ),
            other => RpcError::new(ErrorCode::Generic, other.to_string()),
        })?;
    let role = connection.properties.role;
    svc.participants().insert(
        &state.rpc_id,
        session.clone(),
        connection.id.clone(),
        Some(role),
        state.tx.clone(),
    );
    state.joined = true;
    let active = connection
        .active
        .clone()
        .unwrap_or_else(|| ActiveInfo::new(0, None, String::new(), String::new()));
    let value = snapshot
        .active_connections()
        .filter(|c| c.id != connection.id)
        .map(|c| {
            let client = c
                .active
                .as_ref()
                .map(|a| a.client_data.as_str())
                .unwrap_or("");
            ExistingParticipant {
                id: c.id.clone(),
                created_at: c
                    .active
                    .as_ref()
                    .map(|a| a.active_at)
                    .unwrap_or(c.created_at),
                metadata: full_metadata(client, &c.properties.data),
                streams: (!c.publishers.is_empty())
                    .then(|| c.publishers.iter().map(StreamEntry::from).collect()),
            }
        })
        .collect();
    let coturn_ip = url::Url::parse(svc.public_url())
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
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
        life: None,
    };
    serde_json::to_value(result).map_err(|e| RpcError::new(ErrorCode::Generic, e.to_string()))
}

async fn send_message(
    svc: &OpenViduService,
    me: &Participant,
    params: SendMessageParams,
) -> RpcResult {
    let message: SignalMessage = serde_json::from_str(&params.message).map_err(|e| {
        RpcError::new(
            ErrorCode::SignalFormatInvalid,
            format!("Signal message is not valid JSON: {e}"),
        )
    })?;
    let to: Vec<String> = match message.to {
        None => Vec::new(),
        Some(ids) => ids
            .into_iter()
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| {
                RpcError::new(ErrorCode::SignalToInvalid, "Signal \"to\" contains null")
            })?,
    };
    svc.send_signal(
        &me.session,
        Some(&me.connection),
        &to,
        message.signal_type,
        message.data,
    )
    .await
    .map_err(|e| match e {
        ServiceError::UnknownRecipients(ids) => RpcError::new(
            ErrorCode::SignalToInvalid,
            format!(
                "Signal \"to\" field has connectionIds that are not part of the session: {ids:?}"
            ),
        ),
        other => media_or_generic(other),
    })?;
    Ok(json!({}))
}

async fn force_disconnect(
    svc: &OpenViduService,
    me: &Participant,
    params: ForceDisconnectParams,
) -> RpcResult {
    if !me.may_moderate() {
        return Err(RpcError::new(
            ErrorCode::UserUnauthorized,
            "Only moderators may force a disconnection",
        ));
    }
    let target = ConnectionId::parse(&params.connection_id).map_err(|_| {
        RpcError::new(
            ErrorCode::UserNotFound,
            format!("Connection {} not found", params.connection_id),
        )
    })?;
    svc.force_disconnect(&me.session, &target, EndReason::ForceDisconnectByUser)
        .await
        .map_err(media_or_generic)?;
    Ok(json!({}))
}

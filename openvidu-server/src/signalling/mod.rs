//! The WebSocket JSON-RPC endpoint `/openvidu` that openvidu-browser 2.20 speaks (spec §2).
//!
//! One task per socket reads frames in order and answers each request; a writer task drains the
//! socket's outgoing queue (answers and notifications from anywhere in the node). A socket that
//! drops leaves its participant detached for the reconnection window, during which `connect`
//! re-binds a new socket to it; afterwards the participant is evicted (`networkDisconnect`).

mod rpc;
mod writer;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use openvidu_core::id::IdGenerator;
use openvidu_core::model::EndReason;
use tokio::sync::mpsc;

use crate::config::IpNet;
use crate::participants::Outgoing;
use crate::service::OpenViduService;

/// Largest accepted frame.
const MAX_FRAME: usize = 1 << 20;
/// How much a WebSocket read asks for. tungstenite zeroes that much before every read (its
/// default is 128 KiB): 7% of the server's CPU in a storm of joins, for RPC messages of a few
/// hundred bytes (an SDP, the largest, is a few kB; a bigger message takes a few reads).
const READ_BUFFER: usize = 16 * 1024;

/// The `/openvidu` route.
pub fn router(svc: OpenViduService) -> Router {
    Router::new().route("/openvidu", get(upgrade)).with_state(svc)
}

/// The client's address: the socket peer, or the forwarding headers when the peer is a trusted
/// proxy (OpenVidu 2.20 believed `X-Real-IP` from anyone; we do not).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    };
    if !trusted.iter().any(|n| n.contains(peer)) {
        return peer;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    header("x-real-ip")
        .and_then(|v| v.trim().parse().ok())
        .or_else(|| header("x-forwarded-for").and_then(|v| v.split(',').next().and_then(|f| f.trim().parse().ok())))
        .unwrap_or(peer)
}

async fn upgrade(
    State(svc): State<OpenViduService>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let ip = client_ip(peer.ip(), &headers, &svc.config().trusted_proxies);
    ws.max_message_size(MAX_FRAME).read_buffer_size(READ_BUFFER).on_upgrade(move |socket| run(svc, socket, ip))
}

/// What one socket knows about itself.
pub(crate) struct SocketState {
    /// The JSON-RPC session id this socket answers as (`participantPrivateId`).
    pub rpc_id: String,
    /// Whether a participant was bound (joinRoom or connect).
    pub joined: bool,
    /// Whether the participant left on purpose (no reconnection window then).
    pub left: bool,
    /// The client's address.
    pub ip: IpAddr,
    /// Ping watchdog: the interval the client announced and when it last pinged.
    pub ping_interval: Option<Duration>,
    /// Last ping.
    pub last_ping: Instant,
    /// This socket's outgoing queue.
    pub tx: mpsc::UnboundedSender<Outgoing>,
    /// Candidates for our own publisher that arrived before `publishVideo`.
    pub pending_candidates: Vec<openvidu_media::IceCandidate>,
    /// After `joinRoom`: the notifications that reached the participant before its answer was
    /// sent, held so that none precedes the answer (see `rpc::join_room`).
    pub held: Option<rpc::Held>,
}

/// A new JSON-RPC session id: 26 characters like kurento-jsonrpc's, from the CSPRNG, since it is
/// also the credential `connect` re-binds a participant with.
fn rpc_session_id() -> String {
    openvidu_core::id::RandomIds.random_suffix(25).to_ascii_lowercase()
}

async fn run(svc: OpenViduService, socket: WebSocket, ip: IpAddr) {
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::unbounded_channel::<Outgoing>();
    let writer = tokio::spawn(writer::write_queue(rx, sink, writer::DEFERRABLE_WINDOW));
    let mut state = SocketState {
        rpc_id: rpc_session_id(),
        joined: false,
        left: false,
        ip,
        ping_interval: None,
        last_ping: Instant::now(),
        tx,
        pending_candidates: Vec::new(),
        held: None,
    };
    // On the media node's timer grid: every socket's watchdog ticks in the same wake-up.
    let mut watchdog = openvidu_media::timer_grid::aligned_interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => rpc::handle(&svc, &mut state, text.as_str()).await,
                Some(Ok(Message::Binary(_))) | Some(Ok(Message::Ping(_))) | Some(Ok(Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            _ = watchdog.tick() => {
                if let Some(interval) = state.ping_interval
                    && state.last_ping.elapsed() > interval * 3
                {
                    tracing::info!(rpc_id = %state.rpc_id, "no ping for 3 intervals; closing the socket");
                    break;
                }
                if state.tx.is_closed() {
                    break;
                }
            }
        }
    }
    if state.joined && !state.left {
        svc.participants().detach(&state.rpc_id, &state.tx, Instant::now());
        tracing::info!(rpc_id = %state.rpc_id, "socket lost; waiting for a reconnection");
    }
    drop(state);
    let _ = writer.await;
}

/// Evicts participants whose socket stayed away longer than the reconnection window.
pub async fn sweep_detached(svc: &OpenViduService) {
    let window = svc.config().reconnection_window;
    for (rpc_id, p) in svc.participants().expired(Instant::now(), window) {
        // In a cluster, a participant another master took over is only forgotten here.
        if let Some(cluster) = svc.cluster()
            && let Ok(false) = cluster.sockets.holds(&rpc_id, &cluster.master_id, p.epoch).await
        {
            tracing::info!(connection_id = %p.connection, "held by another master now; forgetting it");
            svc.participants().forget(&p.connection);
            continue;
        }
        if let Err(e) = svc.remove_participant(&p.session, &p.connection, EndReason::NetworkDisconnect).await {
            tracing::debug!(connection_id = %p.connection, error = %e, "evicting a lost participant");
            svc.participants().remove(&p.connection);
        }
    }
}

/// In a cluster: renews this master's lease, and evicts (reason `networkDisconnect`) the
/// participants of masters dead for longer than the reconnection window that no master took
/// over. `dead_since` remembers when each dead master was first seen dead. Runs every
/// [`RENEW_EVERY`](crate::cluster::RENEW_EVERY).
pub async fn watch_masters(svc: &OpenViduService, dead_since: &mut HashMap<String, Instant>) {
    let Some(cluster) = svc.cluster() else { return };
    if let Err(e) = cluster.leases.renew(&cluster.master_id).await {
        tracing::warn!(error = %e, "cannot renew this master's lease");
        return;
    }
    let dead = match cluster.leases.dead().await {
        Ok(dead) => dead,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the masters' leases");
            return;
        }
    };
    let now = Instant::now();
    dead_since.retain(|m, _| dead.contains(m));
    let window = svc.config().reconnection_window;
    for master in dead.into_iter().filter(|m| m != &cluster.master_id) {
        let since = *dead_since.entry(master.clone()).or_insert_with(|| {
            tracing::warn!(%master, "a master's lease ran out: it is dead");
            now
        });
        if now.duration_since(since) < window {
            continue;
        }
        match cluster.leases.claim_cleanup(&master, &cluster.master_id).await {
            Ok(true) => evict_participants_of(svc, &master).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(%master, error = %e, "cannot claim the clean-up of a dead master"),
        }
    }
}

/// Evicts the participants dead master `master` still holds in the registry.
async fn evict_participants_of(svc: &OpenViduService, master: &str) {
    let Some(cluster) = svc.cluster() else { return };
    let rpc_ids = match cluster.sockets.claimed_by(master).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(%master, error = %e, "cannot list a dead master's participants");
            return;
        }
    };
    let mut evicted = 0usize;
    for rpc_id in rpc_ids {
        let entry = match cluster.sockets.lookup(&rpc_id).await {
            Ok(Some(entry)) if entry.master == master => entry,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(%master, rpc_id, error = %e, "cannot read a socket entry");
                return;
            }
        };
        match svc.remove_participant(&entry.session, &entry.connection, EndReason::NetworkDisconnect).await {
            Ok(()) => evicted += 1,
            Err(e) => tracing::debug!(connection_id = %entry.connection, error = %e, "already gone"),
        }
    }
    tracing::info!(%master, evicted, "the participants of a dead master that did not come back are evicted");
    if let Err(e) = cluster.sockets.forget_master(master).await {
        tracing::warn!(%master, error = %e, "cannot forget a dead master's sockets");
    }
    if let Err(e) = cluster.leases.forget(master).await {
        tracing::warn!(%master, error = %e, "cannot unlist a dead master");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers_only_from_trusted_proxies() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_ip(proxy, &h, &[]), proxy, "untrusted peer: headers ignored");
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(client_ip(proxy, &h, &trusted), "203.0.113.7".parse::<IpAddr>().unwrap());
        h.insert("x-real-ip", "198.51.100.2".parse().unwrap());
        assert_eq!(client_ip(proxy, &h, &trusted), "198.51.100.2".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(client_ip(mapped, &HeaderMap::new(), &[]), "127.0.0.1".parse::<IpAddr>().unwrap());
    }
}

//! The participants whose sockets this master holds, and delivery of notifications to them.
//!
//! Keyed by the JSON-RPC session id (`participantPrivateId`) the client uses to reconnect. A
//! participant whose socket dropped stays here, detached, for the reconnection window; `connect`
//! re-attaches a new socket to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use openvidu_core::id::{ConnectionId, SessionId};
use openvidu_core::model::OpenViduRole;
use openvidu_core::wire::rpc::{Notification, notification_frame};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::cluster::{Delivery, RemoteDelivery};

/// What a socket task is told to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing {
    /// Send this text frame now.
    Frame(String),
    /// Send this text frame, which may wait a little (the socket writer's window, a few
    /// milliseconds) for the frames queued after it, to go out in the same write. For the
    /// notifications a storm of joins or leaves sends to everyone (`participantJoined`,
    /// `participantLeft`): one per participant per joiner, quadratic in all. An urgent frame queued
    /// behind it ends the wait; the order of the frames is kept.
    Deferrable(String),
    /// Close the socket (after the frames queued before).
    Close,
}

impl Outgoing {
    /// The text frame to send, if this is one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Outgoing::Frame(f) | Outgoing::Deferrable(f) => Some(f),
            Outgoing::Close => None,
        }
    }
}

/// Whether a notification may wait for the ones after it (see [`Outgoing::Deferrable`]): those
/// that every participant gets when another comes or goes, and whose delivery a few milliseconds
/// later changes nothing for a client. Anything a negotiation waits for (ICE candidates, streams
/// to subscribe to, answers) goes out at once.
fn may_wait(n: &Notification) -> bool {
    matches!(n, Notification::ParticipantJoined { .. } | Notification::ParticipantLeft { .. })
}

/// A participant bound to (or waiting for) a socket of this master.
#[derive(Clone, Debug)]
pub struct Participant {
    /// Its session.
    pub session: SessionId,
    /// Its connection.
    pub connection: ConnectionId,
    /// Its role (`None` for secret joins, which may do everything).
    pub role: Option<OpenViduRole>,
    /// The fencing epoch of this master's hold on the socket (0 for a master alone).
    pub epoch: u64,
    tx: Option<UnboundedSender<Outgoing>>,
    detached_at: Option<Instant>,
}

impl Participant {
    /// Whether it may publish.
    pub fn may_publish(&self) -> bool {
        self.role.map(openvidu_core::rules::can_publish).unwrap_or(true)
    }
    /// Whether it may force others out.
    pub fn may_moderate(&self) -> bool {
        self.role.map(openvidu_core::rules::can_moderate).unwrap_or(true)
    }
}

#[derive(Default)]
struct State {
    by_rpc: HashMap<String, Participant>,
    by_connection: HashMap<ConnectionId, String>,
}

/// The registry of this master's participants.
#[derive(Default)]
pub struct Participants {
    state: Mutex<State>,
    /// The other masters, in a cluster: notifications for connections not held here go there.
    remote: OnceLock<Arc<dyn RemoteDelivery>>,
}

impl Participants {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Binds a joined participant to its socket.
    pub fn insert(
        &self,
        rpc_id: &str,
        session: SessionId,
        connection: ConnectionId,
        role: Option<OpenViduRole>,
        tx: UnboundedSender<Outgoing>,
    ) {
        self.with(|s| {
            s.by_connection.insert(connection.clone(), rpc_id.to_owned());
            s.by_rpc.insert(
                rpc_id.to_owned(),
                Participant { session, connection, role, epoch: 0, tx: Some(tx), detached_at: None },
            );
        });
    }

    /// Points a participant registered with a holding channel (see `joinRoom`) at its socket:
    /// what the holding channel received goes to the socket first, except the frames `told`
    /// says the client already knows, then everything else goes straight to the socket. Done
    /// under the registry's lock, which every sender takes, so the order is kept.
    pub fn release(
        &self,
        rpc_id: &str,
        tx: UnboundedSender<Outgoing>,
        held: &mut UnboundedReceiver<Outgoing>,
        told: impl Fn(&Outgoing) -> bool,
    ) {
        self.with(|s| {
            // Also when it was removed meanwhile: its `Close` is among the held frames.
            while let Ok(out) = held.try_recv() {
                if !told(&out) {
                    let _ = tx.send(out);
                }
            }
            if let Some(p) = s.by_rpc.get_mut(rpc_id) {
                p.tx = Some(tx);
            }
        });
    }

    /// Sends what this master cannot deliver to the other masters (once, at start).
    pub fn set_remote(&self, remote: Arc<dyn RemoteDelivery>) {
        let _ = self.remote.set(remote);
    }

    /// Records the epoch of this master's hold on a participant's socket.
    pub fn set_epoch(&self, rpc_id: &str, epoch: u64) {
        self.with(|s| {
            if let Some(p) = s.by_rpc.get_mut(rpc_id) {
                p.epoch = epoch;
            }
        });
    }

    /// The participant of a JSON-RPC session.
    pub fn get(&self, rpc_id: &str) -> Option<Participant> {
        self.with(|s| s.by_rpc.get(rpc_id).cloned())
    }

    /// The participant holding a connection.
    pub fn by_connection(&self, connection: &ConnectionId) -> Option<Participant> {
        self.with(|s| s.by_connection.get(connection).and_then(|r| s.by_rpc.get(r)).cloned())
    }

    /// Changes a participant's role (after a REST update).
    pub fn set_role(&self, connection: &ConnectionId, role: OpenViduRole) {
        self.with(|s| {
            if let Some(p) = s.by_connection.get(connection).cloned().and_then(|r| s.by_rpc.get_mut(&r)) {
                p.role = Some(role);
            }
        });
    }

    /// Removes a participant; its socket, if any, is closed after the frames already queued.
    pub fn remove(&self, connection: &ConnectionId) -> Option<Participant> {
        let Some(p) = self.forget(connection) else {
            if let Some(remote) = self.remote.get() {
                remote.deliver(Delivery::Close { to: vec![connection.clone()] });
            }
            return None;
        };
        if let Some(tx) = &p.tx {
            let _ = tx.send(Outgoing::Close);
        }
        Some(p)
    }

    /// Removes a participant that left on its own, leaving its socket for the client to close.
    pub fn forget(&self, connection: &ConnectionId) -> Option<Participant> {
        self.with(|s| {
            let rpc = s.by_connection.remove(connection)?;
            s.by_rpc.remove(&rpc)
        })
    }

    /// Marks a participant's socket as gone; it waits for `connect` within the window. Only the
    /// socket currently bound may do this: an old socket ending after `connect` re-bound the
    /// participant to a new one changes nothing.
    pub fn detach(&self, rpc_id: &str, socket: &UnboundedSender<Outgoing>, now: Instant) {
        self.with(|s| {
            if let Some(p) = s.by_rpc.get_mut(rpc_id).filter(|p| p.tx.as_ref().is_some_and(|t| t.same_channel(socket)))
            {
                p.tx = None;
                p.detached_at = Some(now);
            }
        });
    }

    /// Binds a new socket to a known participant (`connect`); `None` if unknown.
    pub fn reattach(&self, rpc_id: &str, tx: UnboundedSender<Outgoing>) -> Option<Participant> {
        self.with(|s| {
            let p = s.by_rpc.get_mut(rpc_id)?;
            if let Some(old) = p.tx.replace(tx) {
                let _ = old.send(Outgoing::Close);
            }
            p.detached_at = None;
            Some(p.clone())
        })
    }

    /// Participants detached for longer than `window`, with their JSON-RPC session ids.
    pub fn expired(&self, now: Instant, window: Duration) -> Vec<(String, Participant)> {
        self.with(|s| {
            s.by_rpc
                .iter()
                .filter(|(_, p)| p.detached_at.is_some_and(|t| now.duration_since(t) >= window))
                .map(|(r, p)| (r.clone(), p.clone()))
                .collect()
        })
    }

    /// Sends a notification to one connection (here, or through the other masters).
    pub fn notify(&self, connection: &ConnectionId, n: &Notification) {
        self.notify_all(std::iter::once(connection), n);
    }

    /// Sends a notification to these connections: to the sockets held here, and, in a
    /// cluster, to the other masters for the rest.
    pub fn notify_all<'a>(&self, connections: impl IntoIterator<Item = &'a ConnectionId>, n: &Notification) {
        let frame = notification_frame(n);
        let elsewhere = self.send_local(connections, &frame, may_wait(n));
        if !elsewhere.is_empty()
            && let Some(remote) = self.remote.get()
        {
            remote.deliver(Delivery::Frame { to: elsewhere, frame });
        }
    }

    /// Sends a notification to one connection if its socket is held here (never to the other
    /// masters: for events every master hears, like a media node's).
    pub fn notify_local(&self, connection: &ConnectionId, n: &Notification) {
        self.send_local(std::iter::once(connection), &notification_frame(n), may_wait(n));
    }

    /// Sends `frame` to the sockets held here ([`Outgoing::Deferrable`] if it `may_wait`);
    /// returns the connections not held here.
    fn send_local<'a>(
        &self,
        connections: impl IntoIterator<Item = &'a ConnectionId>,
        frame: &str,
        may_wait: bool,
    ) -> Vec<ConnectionId> {
        self.with(|s| {
            let mut elsewhere = Vec::new();
            for c in connections {
                match s.by_connection.get(c).and_then(|r| s.by_rpc.get(r)) {
                    Some(p) => {
                        if let Some(tx) = &p.tx {
                            let frame = frame.to_owned();
                            let _ =
                                tx.send(if may_wait { Outgoing::Deferrable(frame) } else { Outgoing::Frame(frame) });
                        }
                    }
                    None => elsewhere.push(c.clone()),
                }
            }
            elsewhere
        })
    }

    /// Tells the other masters that this one holds `connection` now, at `epoch`.
    pub fn announce_takeover(&self, connection: &ConnectionId, epoch: u64) {
        if let Some(remote) = self.remote.get() {
            remote.deliver(Delivery::Forget { connection: connection.clone(), epoch });
        }
    }

    /// Number of participants held (attached or waiting).
    pub fn len(&self) -> usize {
        self.with(|s| s.by_rpc.len())
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl crate::cluster::LocalDelivery for Participants {
    fn deliver_local(&self, delivery: Delivery) {
        match delivery {
            // From another master, which does not say what the frame is: sent at once.
            Delivery::Frame { to, frame } => {
                self.send_local(to.iter(), &frame, false);
            }
            Delivery::Close { to } => {
                for c in &to {
                    if let Some(p) = self.forget(c)
                        && let Some(tx) = &p.tx
                    {
                        let _ = tx.send(Outgoing::Close);
                    }
                }
            }
            Delivery::Forget { connection, epoch } => {
                let older = self.by_connection(&connection).is_some_and(|p| p.epoch < epoch);
                if older && let Some(p) = self.forget(&connection) {
                    tracing::info!(connection_id = %connection, epoch, "another master took this participant over");
                    if let Some(tx) = &p.tx {
                        let _ = tx.send(Outgoing::Close);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_window_and_reattach() {
        let reg = Participants::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let tx_keep = tx.clone();
        let c = ConnectionId::parse("con_A").unwrap();
        reg.insert("rpc1", SessionId::parse("s").unwrap(), c.clone(), Some(OpenViduRole::Publisher), tx);
        let t0 = Instant::now();
        let (stranger, _) = tokio::sync::mpsc::unbounded_channel();
        reg.detach("rpc1", &stranger, t0);
        assert!(reg.expired(t0 + Duration::from_secs(60), Duration::from_secs(10)).is_empty(), "not its socket");
        reg.detach("rpc1", &tx_keep, t0);
        assert!(reg.expired(t0 + Duration::from_secs(5), Duration::from_secs(10)).is_empty());
        assert_eq!(reg.expired(t0 + Duration::from_secs(10), Duration::from_secs(10)).len(), 1);
        let (tx2, mut rx2) = tokio::sync::mpsc::unbounded_channel();
        assert!(reg.reattach("rpc1", tx2).is_some());
        assert!(reg.expired(t0 + Duration::from_secs(60), Duration::from_secs(10)).is_empty());
        reg.notify(&c, &Notification::MediaError { error: "x".into() });
        assert!(matches!(rx2.try_recv(), Ok(Outgoing::Frame(f)) if f.contains("mediaError")));
        assert!(rx.try_recv().is_err(), "the old socket gets nothing");
        assert!(reg.reattach("nope", tokio::sync::mpsc::unbounded_channel().0).is_none());
        reg.remove(&c);
        assert_eq!(rx2.try_recv(), Ok(Outgoing::Close));
        assert!(reg.is_empty());
    }

    /// Notifications held during `joinRoom` reach the socket after the answer, in order, without
    /// those the answer already told; later ones go straight to the socket.
    #[test]
    fn held_notifications_are_released_in_order() {
        let reg = Participants::default();
        let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
        let c = ConnectionId::parse("con_A").unwrap();
        reg.insert("rpc1", SessionId::parse("s").unwrap(), c.clone(), None, held_tx);
        for error in ["one", "told", "two"] {
            reg.notify(&c, &Notification::MediaError { error: error.into() });
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _ = tx.send(Outgoing::Frame("the answer".into()));
        reg.release("rpc1", tx, &mut held_rx, |out| matches!(out, Outgoing::Frame(f) if f.contains("told")));
        reg.notify(&c, &Notification::MediaError { error: "three".into() });
        let frames: Vec<String> =
            std::iter::from_fn(|| rx.try_recv().ok()).map(|o| o.text().unwrap_or("close").to_owned()).collect();
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert_eq!(frames[0], "the answer");
        for (frame, word) in frames[1..].iter().zip(["one", "two", "three"]) {
            assert!(frame.contains(word), "{frames:?}");
        }
    }
}

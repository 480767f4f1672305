//! [`MediaNodePool`]: several media nodes behind one [`MediaNode`], one session per node.
//!
//! A session is placed on the least loaded node when its router is created (spec §6.2: "at the
//! moment its first user connects") and stays there for its whole life; every later call about
//! the session goes to that node. Where placements live is a [`Placement`]: in memory
//! ([`MemoryPlacement`]) for one master, in the shared store for several.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};
pub use openvidu_core::wire::webhook::MediaNodeStatus;

use crate::node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaNode, PublishOptions};
use crate::recording::{RecordedStream, RecordingReport, RecordingSpec};
use crate::remote::RemoteMediaNode;

/// Where sessions are placed: session → media node id. Each method is one atomic transition,
/// so that several masters sharing one placement (e.g. in Redis) never place a session twice.
#[async_trait::async_trait]
pub trait Placement: Send + Sync + 'static {
    /// The node hosting `session`, if it is placed.
    async fn node_of(&self, session: &SessionId) -> Result<Option<MediaNodeId>, MediaError>;

    /// Places `session` on `node` unless it is placed already; returns the node that hosts it
    /// (the earlier placement wins).
    async fn claim(&self, session: &SessionId, node: &MediaNodeId) -> Result<MediaNodeId, MediaError>;

    /// Forgets the placement of `session` if it is on `node`; returns whether it was.
    async fn release(&self, session: &SessionId, node: &MediaNodeId) -> Result<bool, MediaError>;

    /// The sessions placed on `node` (to close them when the node is lost).
    async fn sessions_on(&self, node: &MediaNodeId) -> Result<Vec<SessionId>, MediaError>;
}

/// Placements in this process's memory: right for a single master.
#[derive(Debug, Default)]
pub struct MemoryPlacement {
    sessions: Mutex<HashMap<SessionId, MediaNodeId>>,
}

impl MemoryPlacement {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, MediaNodeId>> {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Placement for MemoryPlacement {
    async fn node_of(&self, session: &SessionId) -> Result<Option<MediaNodeId>, MediaError> {
        Ok(self.map().get(session).cloned())
    }

    async fn claim(&self, session: &SessionId, node: &MediaNodeId) -> Result<MediaNodeId, MediaError> {
        Ok(self.map().entry(session.clone()).or_insert_with(|| node.clone()).clone())
    }

    async fn release(&self, session: &SessionId, node: &MediaNodeId) -> Result<bool, MediaError> {
        let mut map = self.map();
        if map.get(session) == Some(node) {
            map.remove(session);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    async fn sessions_on(&self, node: &MediaNodeId) -> Result<Vec<SessionId>, MediaError> {
        Ok(self.map().iter().filter(|(_, n)| *n == node).map(|(s, _)| s.clone()).collect())
    }
}

/// The order in which to try nodes for a new session: fewest endpoints (publishers +
/// subscribers) first, then fewest routers, then lowest CPU load; ties keep the given order.
pub fn placement_order(loads: &[LoadReport]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..loads.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&loads[a], &loads[b]);
        (a.publishers + a.subscribers)
            .cmp(&(b.publishers + b.subscribers))
            .then(a.routers.cmp(&b.routers))
            .then(a.cpu_load.total_cmp(&b.cpu_load))
    });
    order
}

/// Several media nodes behind one [`MediaNode`]: [`create_router`](MediaNode::create_router)
/// places a new session on the least loaded `running` node that accepts it (see
/// [`placement_order`]); a node whose `create_router` fails (e.g. a disconnected
/// [`RemoteMediaNode`]) is skipped. Every other call goes to the session's node, and fails with
/// [`MediaError::NoRouter`] for a session that is not placed.
///
/// The node list changes at runtime ([`add`](Self::add), [`add_remote`](Self::add_remote),
/// [`remove`](Self::remove)); each node has a [`MediaNodeStatus`] and only `running` nodes get
/// new sessions, while sessions already placed keep using their node whatever its status.
///
/// The pool forwards no events: give every node the same event channel.
pub struct MediaNodePool {
    id: MediaNodeId,
    nodes: RwLock<Vec<PoolEntry>>,
    placement: Arc<dyn Placement>,
}

/// One node of the pool with what the pool knows about it.
struct PoolEntry {
    node: Arc<dyn MediaNode>,
    remote: Option<Arc<RemoteMediaNode>>,
    uri: Option<String>,
    status: MediaNodeStatus,
    launching_time: u64,
    connection_time: u64,
    /// When the node was first seen disconnected (wall clock ms, monotonic instant).
    disconnected: Option<(u64, Instant)>,
}

impl PoolEntry {
    fn new(node: Arc<dyn MediaNode>, remote: Option<Arc<RemoteMediaNode>>, uri: Option<String>) -> Self {
        let now = now_ms();
        Self {
            node,
            remote,
            uri,
            status: MediaNodeStatus::Running,
            launching_time: now,
            connection_time: now,
            disconnected: None,
        }
    }

    fn connected(&self) -> bool {
        self.remote.as_ref().is_none_or(|r| r.is_connected())
    }

    fn info(&self) -> MediaNodeInfo {
        MediaNodeInfo {
            id: self.node.id().clone(),
            uri: self.uri.clone().or_else(|| self.remote.as_ref().map(|r| r.url().to_owned())),
            status: self.status,
            connected: self.connected(),
            launching_time: self.launching_time,
            connection_time: self.connection_time,
            disconnection_time: self.disconnected.map(|(ms, _)| ms),
            remote: self.remote.is_some(),
        }
    }
}

/// What the pool knows about one of its nodes (for the media-node REST API).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct MediaNodeInfo {
    /// The node's id.
    pub id: MediaNodeId,
    /// The URI it was added with (for a remote node without one: its control URL).
    pub uri: Option<String>,
    /// Its status.
    pub status: MediaNodeStatus,
    /// Whether its control connection is up (always for in-process nodes).
    pub connected: bool,
    /// When it was added (ms since the epoch).
    pub launching_time: u64,
    /// When its connection was (last) established (ms since the epoch).
    pub connection_time: u64,
    /// Since when it has been disconnected, as last observed by
    /// [`observe_connections`](MediaNodePool::observe_connections).
    pub disconnection_time: Option<u64>,
    /// Whether it is a [`RemoteMediaNode`].
    pub remote: bool,
}

/// A connection state change seen by [`MediaNodePool::observe_connections`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnection {
    /// The node.
    pub id: MediaNodeId,
    /// How long it has been disconnected.
    pub for_how_long: Duration,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl MediaNodePool {
    /// A pool of `nodes` with in-memory placements; its own id is `media_pool`. Every node starts
    /// `running`.
    pub fn new(nodes: Vec<Arc<dyn MediaNode>>) -> Self {
        let nodes = nodes.into_iter().map(|n| PoolEntry::new(n, None, None)).collect();
        Self { id: pool_id(), nodes: RwLock::new(nodes), placement: Arc::new(MemoryPlacement::default()) }
    }

    /// The same pool keeping its placements in `placement` (e.g. a store shared by masters).
    pub fn with_placement(mut self, placement: Arc<dyn Placement>) -> Self {
        self.placement = placement;
        self
    }

    /// The same pool under another id.
    pub fn with_id(mut self, id: MediaNodeId) -> Self {
        self.id = id;
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<PoolEntry>> {
        self.nodes.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<PoolEntry>> {
        self.nodes.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The nodes, in the order they were added.
    pub fn nodes(&self) -> Vec<Arc<dyn MediaNode>> {
        self.read().iter().map(|e| e.node.clone()).collect()
    }

    /// The node with this id.
    pub fn node(&self, id: &MediaNodeId) -> Option<Arc<dyn MediaNode>> {
        self.read().iter().find(|e| e.node.id() == id).map(|e| e.node.clone())
    }

    /// The node with this id, when it is a [`RemoteMediaNode`].
    pub fn remote(&self, id: &MediaNodeId) -> Option<Arc<RemoteMediaNode>> {
        self.read().iter().find(|e| e.node.id() == id).and_then(|e| e.remote.clone())
    }

    /// What the pool knows about each node, in the order they were added.
    pub fn infos(&self) -> Vec<MediaNodeInfo> {
        self.read().iter().map(PoolEntry::info).collect()
    }

    /// What the pool knows about the node with this id.
    pub fn info(&self, id: &MediaNodeId) -> Option<MediaNodeInfo> {
        self.read().iter().find(|e| e.node.id() == id).map(PoolEntry::info)
    }

    /// Adds a node, `running`. Fails with [`MediaError::Config`] when a node with its id is in
    /// the pool already.
    pub fn add(&self, node: Arc<dyn MediaNode>) -> Result<MediaNodeInfo, MediaError> {
        self.insert(PoolEntry::new(node, None, None))
    }

    /// Adds a remote node reached at `uri`, `running`; its connection state is tracked by
    /// [`observe_connections`](Self::observe_connections). Fails with [`MediaError::Config`]
    /// when a node with its id or this URI is in the pool already.
    pub fn add_remote(&self, node: Arc<RemoteMediaNode>, uri: impl Into<String>) -> Result<MediaNodeInfo, MediaError> {
        let uri = uri.into();
        if let Some(id) = self.node_with_uri(&uri).or_else(|| self.node_with_uri(node.url())) {
            return Err(MediaError::Config(format!("media node {id} is registered at {uri} already")));
        }
        self.insert(PoolEntry::new(node.clone(), Some(node), Some(uri)))
    }

    /// The node added with this URI (or whose control URL it is), if any.
    pub fn node_with_uri(&self, uri: &str) -> Option<MediaNodeId> {
        self.read()
            .iter()
            .find(|e| e.uri.as_deref() == Some(uri) || e.remote.as_ref().is_some_and(|r| r.url() == uri))
            .map(|e| e.node.id().clone())
    }

    fn insert(&self, entry: PoolEntry) -> Result<MediaNodeInfo, MediaError> {
        let mut nodes = self.write();
        if nodes.iter().any(|e| e.node.id() == entry.node.id()) {
            return Err(MediaError::Config(format!("media node {} is in the pool already", entry.node.id())));
        }
        let info = entry.info();
        tracing::info!(node_id = %info.id, uri = ?info.uri, "media node added to the pool");
        nodes.push(entry);
        Ok(info)
    }

    /// Removes a node and forgets the placements of the sessions still placed on it (their
    /// routers are not closed: close the sessions first). Returns the node, if it was there.
    pub async fn remove(&self, id: &MediaNodeId) -> Result<Option<Arc<dyn MediaNode>>, MediaError> {
        let removed = {
            let mut nodes = self.write();
            nodes.iter().position(|e| e.node.id() == id).map(|i| nodes.remove(i).node)
        };
        if removed.is_some() {
            for session in self.placement.sessions_on(id).await? {
                self.placement.release(&session, id).await?;
            }
            tracing::info!(node_id = %id, "media node removed from the pool");
        }
        Ok(removed)
    }

    /// The status of a node.
    pub fn status(&self, id: &MediaNodeId) -> Option<MediaNodeStatus> {
        self.read().iter().find(|e| e.node.id() == id).map(|e| e.status)
    }

    /// Sets the status of a node; returns its former status (`None`: no such node). Whether the
    /// transition is allowed is the caller's business.
    pub fn set_status(&self, id: &MediaNodeId, status: MediaNodeStatus) -> Option<MediaNodeStatus> {
        let mut nodes = self.write();
        let entry = nodes.iter_mut().find(|e| e.node.id() == id)?;
        let old = std::mem::replace(&mut entry.status, status);
        if old != status {
            tracing::info!(node_id = %id, old_status = %old, new_status = %status, "media node status changed");
        }
        Some(old)
    }

    /// Sets the status of a node only when it is `from` now; returns whether it was.
    pub fn change_status(&self, id: &MediaNodeId, from: MediaNodeStatus, to: MediaNodeStatus) -> bool {
        let mut nodes = self.write();
        match nodes.iter_mut().find(|e| e.node.id() == id) {
            Some(e) if e.status == from => {
                e.status = to;
                tracing::info!(node_id = %id, old_status = %from, new_status = %to, "media node status changed");
                true
            }
            _ => false,
        }
    }

    /// Looks at every remote node's connection: records when it went down or came back, and
    /// returns the nodes that are down with how long they have been.
    pub fn observe_connections(&self) -> Vec<Disconnection> {
        let now = Instant::now();
        let mut down = Vec::new();
        for e in self.write().iter_mut() {
            if e.connected() {
                if e.disconnected.take().is_some() {
                    e.connection_time = now_ms();
                    tracing::info!(node_id = %e.node.id(), "media node reconnected");
                }
            } else {
                let (_, since) = *e.disconnected.get_or_insert_with(|| {
                    tracing::warn!(node_id = %e.node.id(), "media node disconnected");
                    (now_ms(), now)
                });
                down.push(Disconnection { id: e.node.id().clone(), for_how_long: now.duration_since(since) });
            }
        }
        down
    }

    /// The sessions placed on a node.
    pub async fn sessions_on(&self, node: &MediaNodeId) -> Result<Vec<SessionId>, MediaError> {
        self.placement.sessions_on(node).await
    }

    /// The node hosting `session` (the session's `mediaNodeId`), if it is placed.
    pub async fn node_of(&self, session: &SessionId) -> Result<Option<MediaNodeId>, MediaError> {
        self.placement.node_of(session).await
    }

    /// Creates the session's router on a chosen node (`mediaNode` of `POST /sessions`), unless
    /// the session is placed already: then on its node, whatever `node` says. A node that is
    /// not `running` takes no new session.
    pub async fn create_router_on(&self, session: &SessionId, node: &MediaNodeId) -> Result<(), MediaError> {
        let chosen = self.known(node)?;
        if let Some(owner) = self.placement.node_of(session).await? {
            return self.known(&owner)?.create_router(session).await;
        }
        if self.status(node) != Some(MediaNodeStatus::Running) {
            return Err(MediaError::Internal(format!("media node {node} is not running")));
        }
        let owner = self.placement.claim(session, node).await?;
        let target = if &owner == node { chosen } else { self.known(&owner)? };
        let result = target.create_router(session).await;
        if result.is_err() && &owner == node {
            self.placement.release(session, node).await?;
        }
        result
    }

    fn known(&self, id: &MediaNodeId) -> Result<Arc<dyn MediaNode>, MediaError> {
        self.node(id).ok_or_else(|| MediaError::Internal(format!("media node {id} is not in this pool")))
    }

    /// The node of a placed session.
    async fn route(&self, session: &SessionId) -> Result<Arc<dyn MediaNode>, MediaError> {
        match self.placement.node_of(session).await? {
            Some(id) => self.known(&id),
            None => Err(MediaError::NoRouter(session.clone())),
        }
    }
}

fn pool_id() -> MediaNodeId {
    MediaNodeId::parse("media_pool").unwrap_or_else(|_| unreachable!("a valid id"))
}

#[async_trait::async_trait]
impl MediaNode for MediaNodePool {
    fn id(&self) -> &MediaNodeId {
        &self.id
    }

    async fn create_router(&self, session: &SessionId) -> Result<(), MediaError> {
        if let Some(id) = self.placement.node_of(session).await? {
            return self.known(&id)?.create_router(session).await;
        }
        let running: Vec<Arc<dyn MediaNode>> = self
            .read()
            .iter()
            .filter(|e| e.status == MediaNodeStatus::Running && e.connected())
            .map(|e| e.node.clone())
            .collect();
        let loads = futures_util::future::join_all(running.iter().map(|n| n.load())).await;
        let mut last_error = None;
        for i in placement_order(&loads) {
            let node = &running[i];
            let owner = self.placement.claim(session, node.id()).await?;
            if &owner != node.id() {
                // Placed meanwhile (another call, another master).
                return self.known(&owner)?.create_router(session).await;
            }
            match node.create_router(session).await {
                Ok(()) => {
                    tracing::info!(session_id = %session, node_id = %node.id(), "session placed on media node");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(session_id = %session, node_id = %node.id(), error = %e, "media node refused the session");
                    self.placement.release(session, node.id()).await?;
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| MediaError::Internal("no media node available".into())))
    }

    async fn close_router(&self, session: &SessionId) -> Result<(), MediaError> {
        let Some(id) = self.placement.node_of(session).await? else {
            return Ok(());
        };
        let result = match self.node(&id) {
            Some(node) => node.close_router(session).await,
            None => Ok(()),
        };
        self.placement.release(session, &id).await?;
        result
    }

    async fn publish(
        &self,
        session: &SessionId,
        stream: &StreamId,
        options: PublishOptions,
    ) -> Result<String, MediaError> {
        self.route(session).await?.publish(session, stream, options).await
    }

    async fn unpublish(&self, session: &SessionId, stream: &StreamId) -> Result<(), MediaError> {
        self.route(session).await?.unpublish(session, stream).await
    }

    async fn subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, MediaError> {
        self.route(session).await?.subscribe(session, subscriber, stream, sdp_offer).await
    }

    async fn prepare_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<String, MediaError> {
        self.route(session).await?.prepare_subscribe(session, subscriber, stream).await
    }

    async fn complete_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), MediaError> {
        self.route(session).await?.complete_subscribe(session, subscriber, stream, sdp_answer).await
    }

    async fn unsubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        self.route(session).await?.unsubscribe(session, subscriber, stream).await
    }

    async fn add_ice_candidate(
        &self,
        session: &SessionId,
        endpoint: EndpointId,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        self.route(session).await?.add_ice_candidate(session, endpoint, candidate).await
    }

    /// The sums of the nodes' counts; the CPU load is their average.
    async fn load(&self) -> LoadReport {
        let nodes = self.nodes();
        let loads = futures_util::future::join_all(nodes.iter().map(|n| n.load())).await;
        let mut total = loads.iter().fold(LoadReport::default(), |mut t, l| {
            t.routers += l.routers;
            t.publishers += l.publishers;
            t.subscribers += l.subscribers;
            t.cpu_load += l.cpu_load;
            t
        });
        if !loads.is_empty() {
            total.cpu_load /= loads.len() as f32;
        }
        total
    }

    async fn start_recording(&self, spec: RecordingSpec, streams: Vec<RecordedStream>) -> Result<(), MediaError> {
        let session = spec.session.clone();
        self.route(&session).await?.start_recording(spec, streams).await
    }

    async fn record_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: RecordedStream,
    ) -> Result<(), MediaError> {
        self.route(session).await?.record_stream(session, recording, stream).await
    }

    async fn stop_recording_stream(
        &self,
        session: &SessionId,
        recording: &RecordingId,
        stream: &StreamId,
    ) -> Result<(), MediaError> {
        self.route(session).await?.stop_recording_stream(session, recording, stream).await
    }

    async fn stop_recording(
        &self,
        session: &SessionId,
        recording: &RecordingId,
    ) -> Result<RecordingReport, MediaError> {
        self.route(session).await?.stop_recording(session, recording).await
    }
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<MediaNodePool>();
    is::<MemoryPlacement>();
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A node that keeps routers in a set and counts what it is asked.
    struct FakeNode {
        id: MediaNodeId,
        base: LoadReport,
        routers: Mutex<HashSet<SessionId>>,
        refuse: AtomicBool,
        published: Mutex<Vec<StreamId>>,
    }

    impl FakeNode {
        fn new(id: &str, publishers: usize, subscribers: usize, routers: usize) -> Arc<Self> {
            Arc::new(Self {
                id: MediaNodeId::parse(id).unwrap(),
                base: LoadReport { routers, publishers, subscribers, cpu_load: 0.0 },
                routers: Mutex::default(),
                refuse: AtomicBool::new(false),
                published: Mutex::default(),
            })
        }
        fn has(&self, s: &SessionId) -> bool {
            self.routers.lock().unwrap().contains(s)
        }
    }

    #[async_trait::async_trait]
    impl MediaNode for FakeNode {
        fn id(&self) -> &MediaNodeId {
            &self.id
        }
        async fn create_router(&self, session: &SessionId) -> Result<(), MediaError> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(MediaError::Internal(format!("media node {} is not connected", self.id)));
            }
            self.routers.lock().unwrap().insert(session.clone());
            Ok(())
        }
        async fn close_router(&self, session: &SessionId) -> Result<(), MediaError> {
            self.routers.lock().unwrap().remove(session);
            Ok(())
        }
        async fn publish(&self, s: &SessionId, stream: &StreamId, _: PublishOptions) -> Result<String, MediaError> {
            if !self.has(s) {
                return Err(MediaError::NoRouter(s.clone()));
            }
            self.published.lock().unwrap().push(stream.clone());
            Ok(format!("answer from {}", self.id))
        }
        async fn unpublish(&self, _: &SessionId, _: &StreamId) -> Result<(), MediaError> {
            Ok(())
        }
        async fn subscribe(
            &self,
            _: &SessionId,
            _: &ConnectionId,
            _: &StreamId,
            _: String,
        ) -> Result<String, MediaError> {
            Ok(String::new())
        }
        async fn prepare_subscribe(&self, _: &SessionId, _: &ConnectionId, _: &StreamId) -> Result<String, MediaError> {
            Ok(String::new())
        }
        async fn complete_subscribe(
            &self,
            _: &SessionId,
            _: &ConnectionId,
            _: &StreamId,
            _: String,
        ) -> Result<(), MediaError> {
            Ok(())
        }
        async fn unsubscribe(&self, _: &SessionId, _: &ConnectionId, _: &StreamId) -> Result<(), MediaError> {
            Ok(())
        }
        async fn add_ice_candidate(&self, _: &SessionId, _: EndpointId, _: IceCandidate) -> Result<(), MediaError> {
            Ok(())
        }
        async fn load(&self) -> LoadReport {
            let mut load = self.base.clone();
            load.routers += self.routers.lock().unwrap().len();
            load.publishers += self.published.lock().unwrap().len();
            load
        }
        async fn start_recording(&self, _: RecordingSpec, _: Vec<RecordedStream>) -> Result<(), MediaError> {
            Ok(())
        }
        async fn record_stream(&self, _: &SessionId, _: &RecordingId, _: RecordedStream) -> Result<(), MediaError> {
            Ok(())
        }
        async fn stop_recording_stream(&self, _: &SessionId, _: &RecordingId, _: &StreamId) -> Result<(), MediaError> {
            Ok(())
        }
        async fn stop_recording(&self, _: &SessionId, r: &RecordingId) -> Result<RecordingReport, MediaError> {
            Err(MediaError::RecordingNotFound(r.clone()))
        }
    }

    fn session(s: &str) -> SessionId {
        SessionId::parse(s).unwrap()
    }
    fn stream(s: &str) -> StreamId {
        StreamId::parse(s).unwrap()
    }

    fn pool(nodes: &[Arc<FakeNode>]) -> MediaNodePool {
        MediaNodePool::new(nodes.iter().map(|n| n.clone() as Arc<dyn MediaNode>).collect())
    }

    #[test]
    fn order_is_endpoints_then_routers_then_cpu() {
        let l = |p, s, r, c| LoadReport { routers: r, publishers: p, subscribers: s, cpu_load: c };
        assert_eq!(
            placement_order(&[l(1, 1, 0, 0.0), l(0, 1, 5, 0.0), l(0, 1, 1, 0.9), l(0, 1, 1, 0.1)]),
            [3, 2, 1, 0]
        );
        assert_eq!(placement_order(&[l(0, 0, 0, 0.0), l(0, 0, 0, 0.0)]), [0, 1]);
        assert!(placement_order(&[]).is_empty());
    }

    #[tokio::test]
    async fn sessions_go_to_the_least_loaded_node_and_stay_there() {
        let a = FakeNode::new("media_a", 3, 4, 1);
        let b = FakeNode::new("media_b", 1, 1, 1);
        let pool = pool(&[a.clone(), b.clone()]);
        let s1 = session("ses_1");
        pool.create_router(&s1).await.unwrap();
        assert!(b.has(&s1) && !a.has(&s1));
        assert_eq!(pool.node_of(&s1).await.unwrap(), Some(b.id.clone()));
        // Idempotent: stays on b even when b becomes the busier node.
        for i in 0..10 {
            pool.publish(&s1, &stream(&format!("str_CAM_X{i}_con_A")), PublishOptions::new("o")).await.unwrap();
        }
        pool.create_router(&s1).await.unwrap();
        assert_eq!(pool.node_of(&s1).await.unwrap(), Some(b.id.clone()));
        assert_eq!(
            pool.publish(&s1, &stream("str_CAM_Y_con_A"), PublishOptions::new("o")).await.unwrap(),
            "answer from media_b"
        );
        // b now has 12 endpoints, a has 7: the next session goes to a.
        let s2 = session("ses_2");
        pool.create_router(&s2).await.unwrap();
        assert!(a.has(&s2));
        let load = pool.load().await;
        assert_eq!((load.routers, load.publishers, load.subscribers), (4, 15, 5));
    }

    #[tokio::test]
    async fn unplaced_sessions_have_no_router_and_close_forgets() {
        let a = FakeNode::new("media_a", 0, 0, 0);
        let pool = pool(std::slice::from_ref(&a));
        let s = session("ses_X");
        let err = pool.publish(&s, &stream("str_CAM_Y_con_A"), PublishOptions::new("o")).await.unwrap_err();
        assert!(matches!(err, MediaError::NoRouter(ref id) if id == &s), "{err:?}");
        pool.close_router(&s).await.unwrap();
        pool.create_router(&s).await.unwrap();
        pool.close_router(&s).await.unwrap();
        assert!(!a.has(&s));
        assert_eq!(pool.node_of(&s).await.unwrap(), None);
        assert!(matches!(pool.unpublish(&s, &stream("str_CAM_Y_con_A")).await, Err(MediaError::NoRouter(_))));
    }

    #[tokio::test]
    async fn a_refusing_node_is_skipped() {
        let down = FakeNode::new("media_down", 0, 0, 0);
        down.refuse.store(true, Ordering::SeqCst);
        let up = FakeNode::new("media_up", 9, 9, 9);
        let pool = pool(&[down.clone(), up.clone()]);
        let s = session("ses_S");
        pool.create_router(&s).await.unwrap();
        assert!(up.has(&s));
        assert_eq!(pool.node_of(&s).await.unwrap(), Some(up.id.clone()));
        up.refuse.store(true, Ordering::SeqCst);
        let err = pool.create_router(&session("ses_T")).await.unwrap_err();
        assert!(matches!(err, MediaError::Internal(_)), "{err:?}");
        assert_eq!(pool.node_of(&session("ses_T")).await.unwrap(), None);
        let empty = MediaNodePool::new(Vec::new());
        assert!(matches!(empty.create_router(&s).await, Err(MediaError::Internal(_))));
    }

    #[tokio::test]
    async fn concurrent_creates_place_a_session_once() {
        let nodes: Vec<_> = (0..4).map(|i| FakeNode::new(&format!("media_{i}"), 0, 0, 0)).collect();
        let pool = Arc::new(pool(&nodes));
        let s = session("ses_C");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, s) = (pool.clone(), s.clone());
                tokio::spawn(async move { pool.create_router(&s).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(nodes.iter().filter(|n| n.has(&s)).count(), 1);
    }

    #[tokio::test]
    async fn manual_placement_and_shared_placement() {
        let a = FakeNode::new("media_a", 0, 0, 0);
        let b = FakeNode::new("media_b", 5, 5, 5);
        let placement = Arc::new(MemoryPlacement::default());
        let p1 = pool(&[a.clone(), b.clone()]).with_placement(placement.clone());
        let p2 = pool(&[a.clone(), b.clone()]).with_placement(placement.clone());
        let s = session("ses_M");
        p1.create_router_on(&s, &b.id).await.unwrap();
        assert!(b.has(&s));
        // Another master sharing the placement routes to the same node.
        p2.create_router(&s).await.unwrap();
        assert!(!a.has(&s));
        assert_eq!(placement.sessions_on(&b.id).await.unwrap(), vec![s.clone()]);
        let unknown = MediaNodeId::parse("media_zz").unwrap();
        assert!(matches!(p1.create_router_on(&session("ses_N"), &unknown).await, Err(MediaError::Internal(_))));
    }

    #[tokio::test]
    async fn nodes_come_and_go_and_only_running_ones_take_sessions() {
        let a = FakeNode::new("media_a", 0, 0, 0);
        let b = FakeNode::new("media_b", 5, 5, 5);
        let pool = pool(std::slice::from_ref(&a));
        pool.add(b.clone()).unwrap();
        assert!(matches!(pool.add(b.clone()), Err(MediaError::Config(_))), "same id twice");
        assert_eq!(pool.nodes().len(), 2);
        let info = pool.info(&b.id).unwrap();
        assert_eq!((info.status, info.connected, info.remote, info.uri), (MediaNodeStatus::Running, true, false, None));
        assert!(pool.observe_connections().is_empty());

        // a is the least loaded, but not running: new sessions go to b.
        assert_eq!(pool.set_status(&a.id, MediaNodeStatus::WaitingIdleToTerminate), Some(MediaNodeStatus::Running));
        let s = session("ses_W");
        pool.create_router(&s).await.unwrap();
        assert!(b.has(&s) && !a.has(&s));
        assert!(pool.create_router_on(&session("ses_V"), &a.id).await.is_err(), "a takes no new session");
        assert!(!pool.change_status(&a.id, MediaNodeStatus::Running, MediaNodeStatus::Terminating));
        assert!(pool.change_status(&a.id, MediaNodeStatus::WaitingIdleToTerminate, MediaNodeStatus::Running));
        assert_eq!(pool.status(&a.id), Some(MediaNodeStatus::Running));

        // Removing b forgets its placements.
        assert_eq!(pool.sessions_on(&b.id).await.unwrap(), vec![s.clone()]);
        assert!(pool.remove(&b.id).await.unwrap().is_some());
        assert!(pool.remove(&b.id).await.unwrap().is_none());
        assert_eq!(pool.node_of(&s).await.unwrap(), None);
        assert!(matches!(
            pool.publish(&s, &stream("str_CAM_Y_con_A"), PublishOptions::new("o")).await,
            Err(MediaError::NoRouter(_))
        ));
        assert_eq!(pool.set_status(&b.id, MediaNodeStatus::Running), None);
        pool.create_router(&s).await.unwrap();
        assert!(a.has(&s));
    }
}

//! [`MediaNodePool`]: several media nodes behind one [`MediaNode`], one session per node.
//!
//! A session is placed on the least loaded node when its router is created (spec §6.2: "at the
//! moment its first user connects") and stays there for its whole life; every later call about
//! the session goes to that node. Where placements live is a [`Placement`]: in memory
//! ([`MemoryPlacement`]) for one master, in the shared store for several.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openvidu_core::id::{ConnectionId, MediaNodeId, RecordingId, SessionId, StreamId};

use crate::node::{EndpointId, IceCandidate, LoadReport, MediaError, MediaNode, PublishOptions};
use crate::recording::{RecordedStream, RecordingReport, RecordingSpec};

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
/// places a new session on the least loaded node that accepts it (see [`placement_order`]); a
/// node whose `create_router` fails (e.g. a disconnected
/// [`RemoteMediaNode`](crate::RemoteMediaNode)) is skipped. Every other call goes to the
/// session's node, and fails with [`MediaError::NoRouter`] for a session that is not placed.
///
/// The pool forwards no events: give every node the same event channel.
pub struct MediaNodePool {
    id: MediaNodeId,
    nodes: Vec<Arc<dyn MediaNode>>,
    placement: Arc<dyn Placement>,
}

impl MediaNodePool {
    /// A pool of `nodes` with in-memory placements; its own id is `media_pool`.
    pub fn new(nodes: Vec<Arc<dyn MediaNode>>) -> Self {
        Self { id: pool_id(), nodes, placement: Arc::new(MemoryPlacement::default()) }
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

    /// The nodes.
    pub fn nodes(&self) -> &[Arc<dyn MediaNode>] {
        &self.nodes
    }

    /// The node with this id.
    pub fn node(&self, id: &MediaNodeId) -> Option<&Arc<dyn MediaNode>> {
        self.nodes.iter().find(|n| n.id() == id)
    }

    /// The node hosting `session` (the session's `mediaNodeId`), if it is placed.
    pub async fn node_of(&self, session: &SessionId) -> Result<Option<MediaNodeId>, MediaError> {
        self.placement.node_of(session).await
    }

    /// Creates the session's router on a chosen node (`mediaNode` of `POST /sessions`), unless
    /// the session is placed already: then on its node, whatever `node` says.
    pub async fn create_router_on(&self, session: &SessionId, node: &MediaNodeId) -> Result<(), MediaError> {
        let chosen = self.known(node)?;
        let owner = self.placement.claim(session, node).await?;
        let target = if &owner == node { chosen } else { self.known(&owner)? };
        let result = target.create_router(session).await;
        if result.is_err() && &owner == node {
            self.placement.release(session, node).await?;
        }
        result
    }

    fn known(&self, id: &MediaNodeId) -> Result<&Arc<dyn MediaNode>, MediaError> {
        self.node(id).ok_or_else(|| MediaError::Internal(format!("media node {id} is not in this pool")))
    }

    /// The node of a placed session.
    async fn route(&self, session: &SessionId) -> Result<&Arc<dyn MediaNode>, MediaError> {
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
        let loads = futures_util::future::join_all(self.nodes.iter().map(|n| n.load())).await;
        let mut last_error = None;
        for i in placement_order(&loads) {
            let node = &self.nodes[i];
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
        let loads = futures_util::future::join_all(self.nodes.iter().map(|n| n.load())).await;
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
}

//! Routers: one per session, owning the session's publisher and subscriber endpoints.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openvidu_core::id::{ConnectionId, SessionId, StreamId};

use crate::endpoint::{MAX_QUEUED_CANDIDATES, check_candidate, lock};
use crate::engine::MediaEngine;
use crate::node::{EndpointId, IceCandidate, MediaError, PublishOptions};
use crate::publisher::Publisher;
use crate::subscriber::Subscriber;

/// Endpoints with early candidates a router keeps at most.
const MAX_EARLY_ENDPOINTS: usize = 1024;

type SubscriptionKey = (ConnectionId, StreamId);

/// A registry entry: reserved while the endpoint negotiates, then ready.
enum Entry<T> {
    Reserved(u64),
    Ready(T),
}

impl<T: Clone> Entry<T> {
    fn ready(&self) -> Option<T> {
        match self {
            Self::Ready(t) => Some(t.clone()),
            Self::Reserved(_) => None,
        }
    }
}

#[derive(Default)]
struct RouterState {
    publishers: HashMap<StreamId, Entry<Publisher>>,
    subscribers: HashMap<SubscriptionKey, Entry<Subscriber>>,
    /// Remote candidates for endpoints that do not exist yet.
    early: HashMap<EndpointId, Vec<IceCandidate>>,
}

/// The media of one session: its publishers and subscribers, shaped like a mediasoup router.
///
/// A cheap handle. [`close`](Self::close) closes every endpoint; dropping the last handle
/// closes them too.
#[derive(Clone)]
#[must_use = "the router's endpoints are closed when the last handle is dropped"]
pub struct Router {
    inner: Arc<RouterInner>,
}

struct RouterInner {
    engine: MediaEngine,
    session: SessionId,
    state: Mutex<RouterState>,
    next_token: AtomicU64,
    closed: AtomicBool,
}

/// Removes a reservation if the negotiation that made it does not finish (error, panic or a
/// dropped future).
struct Reservation<'a> {
    router: &'a RouterInner,
    endpoint: EndpointId,
    token: u64,
    armed: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = lock(&self.router.state);
        match &self.endpoint {
            EndpointId::Publisher(stream) => {
                if matches!(state.publishers.get(stream), Some(Entry::Reserved(t)) if *t == self.token) {
                    state.publishers.remove(stream);
                }
            }
            EndpointId::Subscriber { subscriber, stream } => {
                let key = (subscriber.clone(), stream.clone());
                if matches!(state.subscribers.get(&key), Some(Entry::Reserved(t)) if *t == self.token) {
                    state.subscribers.remove(&key);
                }
            }
        }
    }
}

impl Router {
    pub(crate) fn new(engine: MediaEngine, session: SessionId) -> Self {
        tracing::info!(%session, "router created");
        Self {
            inner: Arc::new(RouterInner {
                engine,
                session,
                state: Mutex::default(),
                next_token: AtomicU64::new(1),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The session.
    pub fn session(&self) -> &SessionId {
        &self.inner.session
    }

    fn check_open(&self) -> Result<(), MediaError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(MediaError::NoRouter(self.inner.session.clone()))
        } else {
            Ok(())
        }
    }

    fn reserve(&self, endpoint: EndpointId) -> Reservation<'_> {
        Reservation {
            router: &self.inner,
            endpoint,
            token: self.inner.next_token.fetch_add(1, Ordering::Relaxed),
            armed: true,
        }
    }

    /// Publishes `stream` from the client's offer (client offers, spec §2.4.2); returns the
    /// endpoint and the SDP answer.
    pub async fn publish(&self, stream: &StreamId, options: PublishOptions) -> Result<(Publisher, String), MediaError> {
        self.check_open()?;
        let mut reservation = self.reserve(EndpointId::Publisher(stream.clone()));
        {
            let mut state = lock(&self.inner.state);
            if state.publishers.contains_key(stream) {
                reservation.armed = false;
                return Err(MediaError::AlreadyPublishing(stream.clone()));
            }
            state.publishers.insert(stream.clone(), Entry::Reserved(reservation.token));
        }
        let (publisher, answer) = Publisher::create(&self.inner.engine, &self.inner.session, stream, options).await?;
        let early = {
            let mut state = lock(&self.inner.state);
            let ours = matches!(state.publishers.get(stream),
                Some(Entry::Reserved(t)) if *t == reservation.token);
            if !ours || self.inner.closed.load(Ordering::Acquire) {
                None
            } else {
                state.publishers.insert(stream.clone(), Entry::Ready(publisher.clone()));
                reservation.armed = false;
                Some(state.early.remove(&EndpointId::Publisher(stream.clone())))
            }
        };
        let Some(early) = early else {
            // Unpublished or closed while negotiating.
            publisher.close().await;
            return Err(MediaError::StreamNotFound(stream.clone()));
        };
        for candidate in early.into_iter().flatten() {
            if let Err(e) = publisher.add_ice_candidate(candidate).await {
                tracing::warn!(session = %self.inner.session, %stream, error = %e,
                    "early ICE candidate rejected");
            }
        }
        Ok((publisher, answer))
    }

    /// Closes the publisher of `stream` and every subscriber fed by it.
    pub async fn unpublish(&self, stream: &StreamId) -> Result<(), MediaError> {
        self.check_open()?;
        let (publisher, subscribers) = {
            let mut state = lock(&self.inner.state);
            let Some(entry) = state.publishers.remove(stream) else {
                return Err(MediaError::StreamNotFound(stream.clone()));
            };
            let keys: Vec<_> = state.subscribers.keys().filter(|(_, s)| s == stream).cloned().collect();
            let subscribers: Vec<_> =
                keys.iter().filter_map(|k| state.subscribers.remove(k)).filter_map(|e| e.ready()).collect();
            state.early.retain(|endpoint, _| endpoint.stream() != stream);
            (entry.ready(), subscribers)
        };
        for subscriber in subscribers {
            subscriber.close().await;
        }
        if let Some(publisher) = publisher {
            publisher.close().await;
        }
        tracing::info!(session = %self.inner.session, %stream, "stream unpublished");
        Ok(())
    }

    /// Client offers (spec §2.4.3, `receiveVideoFrom{sdpOffer}`): returns the subscriber and the
    /// answer. Subscribing again replaces the previous endpoint (media reconnection).
    pub async fn subscribe(
        &self,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<(Subscriber, String), MediaError> {
        let id = subscriber.clone();
        self.subscribe_with(subscriber, stream, |engine, session, publisher| async move {
            // Parsing the offer and building the connection are negotiation work too.
            engine
                .clone()
                .negotiate(
                    async move { Subscriber::create_answering(&engine, &session, &id, &publisher, sdp_offer).await },
                )
                .await
        })
        .await
    }

    /// Server offers (spec §2.4.3, `prepareReceiveVideoFrom`): returns the subscriber and the
    /// node's offer; the client's answer goes to [`complete_subscribe`](Self::complete_subscribe).
    pub async fn prepare_subscribe(
        &self,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<(Subscriber, String), MediaError> {
        let id = subscriber.clone();
        self.subscribe_with(subscriber, stream, |engine, session, publisher| async move {
            engine
                .clone()
                .negotiate(async move { Subscriber::create_offering(&engine, &session, &id, &publisher).await })
                .await
        })
        .await
    }

    /// Applies the client's answer to a [`prepare_subscribe`](Self::prepare_subscribe) offer.
    pub async fn complete_subscribe(
        &self,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), MediaError> {
        self.check_open()?;
        let found =
            lock(&self.inner.state).subscribers.get(&(subscriber.clone(), stream.clone())).and_then(Entry::ready);
        match found {
            Some(s) => s.complete(sdp_answer).await,
            None => Err(MediaError::SubscriptionNotFound { subscriber: subscriber.clone(), stream: stream.clone() }),
        }
    }

    async fn subscribe_with<F, Fut>(
        &self,
        subscriber: &ConnectionId,
        stream: &StreamId,
        create: F,
    ) -> Result<(Subscriber, String), MediaError>
    where
        F: FnOnce(MediaEngine, SessionId, Publisher) -> Fut,
        Fut: Future<Output = Result<(Subscriber, String), MediaError>>,
    {
        self.check_open()?;
        let endpoint = EndpointId::Subscriber { subscriber: subscriber.clone(), stream: stream.clone() };
        let key = (subscriber.clone(), stream.clone());
        let mut reservation = self.reserve(endpoint.clone());
        let (publisher, previous) = {
            let mut state = lock(&self.inner.state);
            let Some(publisher) = state.publishers.get(stream).and_then(Entry::ready) else {
                reservation.armed = false;
                return Err(MediaError::StreamNotFound(stream.clone()));
            };
            let previous = state.subscribers.insert(key.clone(), Entry::Reserved(reservation.token));
            (publisher, previous.and_then(|e| e.ready()))
        };
        if let Some(previous) = previous {
            tracing::info!(session = %self.inner.session, %subscriber, %stream,
                "replacing the previous subscription");
            previous.close().await;
        }
        let (created, sdp) = create(self.inner.engine.clone(), self.inner.session.clone(), publisher).await?;
        let early = {
            let mut state = lock(&self.inner.state);
            let ours = matches!(state.subscribers.get(&key),
                Some(Entry::Reserved(t)) if *t == reservation.token);
            if !ours || self.inner.closed.load(Ordering::Acquire) {
                None
            } else {
                state.subscribers.insert(key, Entry::Ready(created.clone()));
                reservation.armed = false;
                Some(state.early.remove(&endpoint))
            }
        };
        let Some(early) = early else {
            created.close().await;
            return Err(MediaError::StreamNotFound(stream.clone()));
        };
        for candidate in early.into_iter().flatten() {
            if let Err(e) = created.add_ice_candidate(candidate).await {
                tracing::warn!(session = %self.inner.session, %subscriber, %stream, error = %e,
                    "early ICE candidate rejected");
            }
        }
        Ok((created, sdp))
    }

    /// Closes the subscriber endpoint of `subscriber` for `stream`.
    pub async fn unsubscribe(&self, subscriber: &ConnectionId, stream: &StreamId) -> Result<(), MediaError> {
        self.check_open()?;
        let removed = {
            let mut state = lock(&self.inner.state);
            let endpoint = EndpointId::Subscriber { subscriber: subscriber.clone(), stream: stream.clone() };
            state.early.remove(&endpoint);
            state.subscribers.remove(&(subscriber.clone(), stream.clone()))
        };
        match removed {
            Some(entry) => {
                if let Some(s) = entry.ready() {
                    s.close().await;
                }
                Ok(())
            }
            None => Err(MediaError::SubscriptionNotFound { subscriber: subscriber.clone(), stream: stream.clone() }),
        }
    }

    /// A remote candidate for `endpoint`; queued if the endpoint does not exist yet.
    pub async fn add_ice_candidate(&self, endpoint: EndpointId, candidate: IceCandidate) -> Result<(), MediaError> {
        self.check_open()?;
        if !check_candidate(&candidate)? {
            return Ok(());
        }
        enum Target {
            Publisher(Publisher),
            Subscriber(Subscriber),
        }
        let target = {
            let mut state = lock(&self.inner.state);
            let target = match &endpoint {
                EndpointId::Publisher(stream) => {
                    state.publishers.get(stream).and_then(Entry::ready).map(Target::Publisher)
                }
                EndpointId::Subscriber { subscriber, stream } => state
                    .subscribers
                    .get(&(subscriber.clone(), stream.clone()))
                    .and_then(Entry::ready)
                    .map(Target::Subscriber),
            };
            if target.is_none() {
                let endpoints = state.early.len();
                match state.early.get_mut(&endpoint) {
                    Some(queue) if queue.len() < MAX_QUEUED_CANDIDATES => queue.push(candidate),
                    None if endpoints < MAX_EARLY_ENDPOINTS => {
                        state.early.insert(endpoint.clone(), vec![candidate]);
                    }
                    _ => tracing::warn!(session = %self.inner.session, %endpoint,
                        "too many early ICE candidates; dropping one"),
                }
                tracing::debug!(session = %self.inner.session, %endpoint,
                    "ICE candidate queued until the endpoint exists");
                return Ok(());
            }
            target
        };
        match target {
            Some(Target::Publisher(p)) => p.add_ice_candidate(candidate).await,
            Some(Target::Subscriber(s)) => s.add_ice_candidate(candidate).await,
            None => Ok(()),
        }
    }

    /// The publisher of `stream`, once negotiated.
    pub fn publisher(&self, stream: &StreamId) -> Option<Publisher> {
        lock(&self.inner.state).publishers.get(stream).and_then(Entry::ready)
    }

    /// The subscriber endpoint of `subscriber` for `stream`, once created.
    pub fn subscriber(&self, subscriber: &ConnectionId, stream: &StreamId) -> Option<Subscriber> {
        lock(&self.inner.state).subscribers.get(&(subscriber.clone(), stream.clone())).and_then(Entry::ready)
    }

    /// Publisher and subscriber endpoints (negotiating ones included).
    pub fn endpoint_counts(&self) -> (usize, usize) {
        let state = lock(&self.inner.state);
        (state.publishers.len(), state.subscribers.len())
    }

    /// Closes every endpoint; the router refuses further work. Idempotent.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let (publishers, subscribers) = {
            let mut state = lock(&self.inner.state);
            state.early.clear();
            let subscribers: Vec<_> = state.subscribers.drain().filter_map(|(_, e)| e.ready()).collect();
            let publishers: Vec<_> = state.publishers.drain().filter_map(|(_, e)| e.ready()).collect();
            (publishers, subscribers)
        };
        for subscriber in subscribers {
            subscriber.close().await;
        }
        for publisher in publishers {
            publisher.close().await;
        }
        tracing::info!(session = %self.inner.session, "router closed");
    }
}

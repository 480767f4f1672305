//! Media reconnection (spec §2.4.6): republishing a publisher whose peer connection broke,
//! renegotiating a broken subscription, answering the server's `forciblyReconnectSubscriber`,
//! and the watchdogs that notice broken peer connections. See the module documentation of
//! [`participant`](super).

use super::*;

/// Media reconnection (spec §2.4.6): see the module documentation.
impl Participant {
    /// Republishes this participant's stream on a new peer connection, as openvidu-browser does
    /// when the publisher's ICE fails (and this participant does by itself then): the same
    /// stream id, tracks and media source, a new offer sent with `reconnectStream{stream,
    /// sdpString}`, then media on the new connection and the old one closed. Pushes
    /// [`ParticipantEvent::MediaReconnected`] on success. Fails with
    /// [`ParticipantError::NotPublishing`] without a published stream; on any failure the old
    /// connection stays.
    pub async fn reconnect_publisher(&self) -> Result<(), ParticipantError> {
        self.republish(None).await.map(drop)
    }

    /// Renegotiates the subscription to `publisher`'s stream on a new peer connection, as
    /// openvidu-browser does when a subscriber's ICE fails (and this participant does by
    /// itself then), per [`JoinOptions::negotiation`]: the client offers with
    /// `reconnectStream{stream, sdpOffer}`, or the server offers through
    /// `prepareReceiveVideoFrom{sender, reconnect: true}` and the answer goes back with
    /// `reconnectStream{stream, sdpString}`. The statistics go on. Pushes
    /// [`ParticipantEvent::MediaReconnected`] on success; fails with
    /// [`ParticipantError::NotSubscribed`] without such a subscription.
    pub async fn reconnect_subscription(&self, publisher: &ConnectionId) -> Result<(), ParticipantError> {
        self.check_open()?;
        let reconnection = lock(&self.inner.state)
            .subscriptions
            .get(publisher)
            .map(|s| s.reconnection.clone())
            .ok_or_else(|| ParticipantError::NotSubscribed(publisher.clone()))?;
        let _one_at_a_time = reconnection.lock.lock().await;
        self.renegotiate_subscription(publisher, &reconnection, self.self_renegotiation()).await
    }

    /// How this client renegotiates a subscription by itself.
    fn self_renegotiation(&self) -> Renegotiation {
        match self.inner.negotiation {
            Negotiation::ServerOffers => Renegotiation::ServerOffers,
            _ => Renegotiation::ClientOffers,
        }
    }

    /// Republishes; with `failed`, only while that endpoint is still the publisher's and not
    /// connected (`Ok(false)` otherwise: nothing to do).
    async fn republish(&self, failed: Option<u64>) -> Result<bool, ParticipantError> {
        self.check_open()?;
        let _one_at_a_time = self.inner.republishing.lock().await;
        let (stream_id, options, media, old_id) = {
            let state = lock(&self.inner.state);
            let p = state.publisher.as_ref().ok_or(ParticipantError::NotPublishing)?;
            let stream_id = p.stream_id.clone().ok_or(ParticipantError::NotPublishing)?;
            if failed.is_some_and(|id| p.endpoint.id() != id || p.endpoint.is_connected()) {
                return Ok(false);
            }
            (stream_id, p.options.clone(), copy_media(&p.media), p.endpoint.id())
        };
        let me = &self.inner.me;
        tracing::info!(connection_id = %me, %stream_id, "republishing on a new peer connection");
        let endpoint =
            Endpoint::new(me.to_string(), self.inner.rpc.clone(), &self.inner.ice, Direction::Send, None).await?;
        let installed = match lock(&self.inner.state).publisher.as_mut().filter(|p| p.endpoint.id() == old_id) {
            Some(p) => {
                p.pending = Some(endpoint.clone());
                true
            }
            None => false,
        };
        if !installed {
            endpoint.close().await;
            return Err(ParticipantError::NotPublishing);
        }
        let result = self.negotiate_publisher(&endpoint, &options, media, Some(&stream_id)).await;
        let old = {
            let mut state = lock(&self.inner.state);
            match state.publisher.as_mut().filter(|p| p.endpoint.id() == old_id) {
                Some(p) => {
                    if p.pending.as_ref().is_some_and(|e| e.same(&endpoint)) {
                        p.pending = None;
                    }
                    result.is_ok().then(|| std::mem::replace(&mut p.endpoint, endpoint.clone()))
                }
                None => None,
            }
        };
        match (result, old) {
            (Ok(_), Some(old)) => {
                old.close().await;
                self.watch_media(&endpoint, Watched::Publisher);
                tracing::info!(connection_id = %me, %stream_id, "publisher reconnected");
                self.inner.events.push(ParticipantEvent::MediaReconnected { stream_id, publisher: true });
                Ok(true)
            }
            (Ok(_), None) => {
                // Unpublished meanwhile.
                endpoint.close().await;
                Err(ParticipantError::NotPublishing)
            }
            (Err(e), _) => {
                endpoint.close().await;
                Err(e)
            }
        }
    }

    /// One renegotiation of the subscription to `publisher` (the caller holds its lock).
    async fn renegotiate_subscription(
        &self,
        publisher: &ConnectionId,
        reconnection: &Arc<SubscriptionReconnection>,
        how: Renegotiation,
    ) -> Result<(), ParticipantError> {
        self.check_open()?;
        let same = |s: &&mut Subscription| Arc::ptr_eq(&s.reconnection, reconnection);
        let not_subscribed = || ParticipantError::NotSubscribed(publisher.clone());
        let (stream_id, stats, audio, video) = {
            let mut state = lock(&self.inner.state);
            let s = state.subscriptions.get_mut(publisher).filter(same).ok_or_else(not_subscribed)?;
            (s.stream_id.clone(), s.stats.clone(), s.audio, s.video)
        };
        let forced = matches!(how, Renegotiation::Forced(_));
        tracing::info!(connection_id = %self.inner.me, %stream_id, forced, "renegotiating a subscription");
        let endpoint = Endpoint::new(
            publisher.to_string(),
            self.inner.rpc.clone(),
            &self.inner.ice,
            Direction::Receive,
            Some(stats),
        )
        .await;
        let endpoint = match endpoint {
            Ok(e) => e,
            Err(e) => {
                if let Some(s) = lock(&self.inner.state).subscriptions.get_mut(publisher).filter(same)
                    && s.forced_offer.is_none()
                {
                    s.forced_candidates = None;
                }
                return Err(e);
            }
        };
        let buffered = {
            let mut state = lock(&self.inner.state);
            state.subscriptions.get_mut(publisher).filter(same).map(|s| {
                s.pending = Some(endpoint.clone());
                // The candidates buffered since the push being answered (unless a later push
                // came: they are for that one).
                if s.forced_offer.is_none() { s.forced_candidates.take().unwrap_or_default() } else { Vec::new() }
            })
        };
        let result = match buffered {
            None => Err(not_subscribed()),
            Some(buffered) => {
                for c in buffered {
                    endpoint.add_remote_candidate(c).await;
                }
                match how {
                    Renegotiation::Forced(offer) => self.answer_reconnection(&endpoint, &stream_id, offer, true).await,
                    Renegotiation::ServerOffers => {
                        let params =
                            PrepareReceiveVideoFromParams { sender: stream_id.to_string(), reconnect: Some(true) };
                        match self.call_with("prepareReceiveVideoFrom", &params).await {
                            Ok(result) => match text_field(&result, "sdpOffer", "prepareReceiveVideoFrom") {
                                Ok(offer) => self.answer_reconnection(&endpoint, &stream_id, offer, false).await,
                                Err(e) => Err(e),
                            },
                            Err(e) => Err(e),
                        }
                    }
                    Renegotiation::ClientOffers => self.offer_reconnection(&endpoint, &stream_id, audio, video).await,
                }
            }
        };
        let old = {
            let mut state = lock(&self.inner.state);
            match state.subscriptions.get_mut(publisher).filter(same) {
                Some(s) => {
                    if s.pending.as_ref().is_some_and(|e| e.same(&endpoint)) {
                        s.pending = None;
                    }
                    if s.forced_offer.is_none() {
                        s.forced_candidates = None;
                    }
                    result.is_ok().then(|| std::mem::replace(&mut s.endpoint, endpoint.clone()))
                }
                None => None,
            }
        };
        match (result, old) {
            (Ok(()), Some(old)) => {
                old.close().await;
                self.watch_media(
                    &endpoint,
                    Watched::Subscription { publisher: publisher.clone(), reconnection: reconnection.clone() },
                );
                tracing::info!(connection_id = %self.inner.me, %stream_id, forced, "subscription reconnected");
                self.inner.events.push(ParticipantEvent::MediaReconnected { stream_id, publisher: false });
                Ok(())
            }
            (Ok(()), None) => {
                endpoint.close().await;
                Err(not_subscribed())
            }
            (Err(e), _) => {
                endpoint.close().await;
                Err(e)
            }
        }
    }

    /// Answers a server offer for a subscription: `reconnectStream{stream, sdpString,
    /// forciblyReconnect}`.
    async fn answer_reconnection(
        &self,
        endpoint: &Endpoint,
        stream_id: &StreamId,
        offer: String,
        forced: bool,
    ) -> Result<(), ParticipantError> {
        let pc = endpoint.pc();
        endpoint.set_remote(RTCSessionDescription::offer(offer).map_err(ParticipantError::webrtc)?).await?;
        let answer = pc.create_answer(None).await.map_err(ParticipantError::webrtc)?;
        let sdp = answer.sdp.clone();
        pc.set_local_description(answer).await.map_err(ParticipantError::webrtc)?;
        let params = json!({"stream": stream_id, "sdpString": sdp, "forciblyReconnect": forced});
        self.call_with("reconnectStream", &params).await?;
        endpoint.release_candidates(&sdp);
        Ok(())
    }

    /// Offers a subscription again: `reconnectStream{stream, sdpOffer}` answers `sdpAnswer`.
    async fn offer_reconnection(
        &self,
        endpoint: &Endpoint,
        stream_id: &StreamId,
        audio: bool,
        video: bool,
    ) -> Result<(), ParticipantError> {
        self.offer_to_receive(
            endpoint,
            audio,
            video,
            "reconnectStream",
            |sdp| json!({"stream": stream_id, "sdpOffer": sdp, "forciblyReconnect": false}),
        )
        .await
    }

    /// `forciblyReconnectSubscriber`: records the offer (the last push wins) and answers it in
    /// the background.
    pub(super) fn on_forced_reconnect(&self, params: &Map<String, Value>) {
        let Some(forced) = events::parse_forced_reconnect(params) else {
            tracing::warn!(connection_id = %self.inner.me, "unreadable forciblyReconnectSubscriber skipped");
            return;
        };
        let events::ForcedReconnect { publisher, stream_id, sdp_offer } = forced;
        let reconnection = {
            let mut state = lock(&self.inner.state);
            match state.subscriptions.get_mut(&publisher).filter(|s| s.stream_id == stream_id) {
                Some(s) => {
                    s.forced_offer = Some(sdp_offer);
                    s.forced_candidates = Some(Vec::new());
                    s.reconnection.clone()
                }
                None => {
                    tracing::debug!(connection_id = %self.inner.me, %stream_id, "forciblyReconnectSubscriber for no subscription");
                    return;
                }
            }
        };
        tracing::info!(connection_id = %self.inner.me, %stream_id, "the server reconnects a subscription");
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let Some(inner) = weak.upgrade() else { return };
            Participant { inner }.answer_forced_reconnect(publisher, stream_id, reconnection).await;
        });
    }

    async fn answer_forced_reconnect(
        &self,
        publisher: ConnectionId,
        stream_id: StreamId,
        reconnection: Arc<SubscriptionReconnection>,
    ) {
        let failed = {
            let _one_at_a_time = reconnection.lock.lock().await;
            let offer = lock(&self.inner.state)
                .subscriptions
                .get_mut(&publisher)
                .filter(|s| Arc::ptr_eq(&s.reconnection, &reconnection))
                .and_then(|s| s.forced_offer.take());
            // None: gone, or a later push was answered already.
            let Some(offer) = offer else { return };
            match self.renegotiate_subscription(&publisher, &reconnection, Renegotiation::Forced(offer)).await {
                Ok(()) => return,
                Err(e) => e,
            }
        };
        if self.is_closed() {
            return;
        }
        tracing::warn!(connection_id = %self.inner.me, %stream_id, error = %failed, "forced subscriber reconnection failed");
        // Unless another push is coming, retry as after an ICE failure.
        let current = lock(&self.inner.state)
            .subscriptions
            .get(&publisher)
            .filter(|s| Arc::ptr_eq(&s.reconnection, &reconnection) && s.forced_offer.is_none())
            .filter(|s| !s.endpoint.is_connected())
            .map(|s| s.endpoint.id());
        if let Some(id) = current {
            self.retry_subscription_in_background(publisher, reconnection, id);
        }
    }

    /// Watches `endpoint`'s connection state and reconnects it when it breaks, until it
    /// closes.
    pub(super) fn watch_media(&self, endpoint: &Endpoint, watched: Watched) {
        let task =
            tokio::spawn(media_watchdog(Arc::downgrade(&self.inner), endpoint.state_changes(), endpoint.id(), watched));
        endpoint.add_task(task.abort_handle());
    }

    /// A watched connection is broken: starts its retry loop unless one runs. False when the
    /// endpoint is no longer in use (the watchdog stops).
    fn media_broken(&self, watched: &Watched, endpoint_id: u64) -> bool {
        match watched {
            Watched::Publisher => {
                let current =
                    lock(&self.inner.state).publisher.as_ref().is_some_and(|p| p.endpoint.id() == endpoint_id);
                if current {
                    self.retry_publisher_in_background(endpoint_id);
                }
                current
            }
            Watched::Subscription { publisher, reconnection } => {
                let current = lock(&self.inner.state)
                    .subscriptions
                    .get(publisher)
                    .is_some_and(|s| s.endpoint.id() == endpoint_id);
                if current {
                    self.retry_subscription_in_background(publisher.clone(), reconnection.clone(), endpoint_id);
                }
                current
            }
        }
    }

    fn retry_publisher_in_background(&self, failed: u64) {
        if self.inner.publisher_retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            for attempt in 0u64.. {
                if attempt > 0 {
                    tokio::time::sleep(MEDIA_RETRY_INTERVAL).await;
                }
                let Some(inner) = weak.upgrade() else { return };
                let p = Participant { inner };
                if p.is_closed() {
                    break;
                }
                match p.republish(Some(failed)).await {
                    Ok(_) | Err(ParticipantError::Closed | ParticipantError::NotPublishing) => break,
                    Err(e) => {
                        tracing::info!(connection_id = %p.inner.me, attempt, error = %e, "publisher reconnection failed; retrying");
                    }
                }
            }
            if let Some(inner) = weak.upgrade() {
                inner.publisher_retrying.store(false, Ordering::Release);
            }
        });
    }

    fn retry_subscription_in_background(
        &self,
        publisher: ConnectionId,
        reconnection: Arc<SubscriptionReconnection>,
        failed: u64,
    ) {
        if reconnection.retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            for attempt in 0u64.. {
                if attempt > 0 {
                    tokio::time::sleep(MEDIA_RETRY_INTERVAL).await;
                }
                let Some(inner) = weak.upgrade() else { break };
                let p = Participant { inner };
                let result = {
                    let _one_at_a_time = reconnection.lock.lock().await;
                    // Still broken, and not replaced by a pushed reconnection meanwhile?
                    let wanted = !p.is_closed()
                        && lock(&p.inner.state).subscriptions.get(&publisher).is_some_and(|s| {
                            Arc::ptr_eq(&s.reconnection, &reconnection)
                                && s.endpoint.id() == failed
                                && !s.endpoint.is_connected()
                                && s.forced_offer.is_none()
                        });
                    if !wanted {
                        break;
                    }
                    p.renegotiate_subscription(&publisher, &reconnection, p.self_renegotiation()).await
                };
                match result {
                    Ok(()) | Err(ParticipantError::Closed | ParticipantError::NotSubscribed(_)) => break,
                    Err(e) => {
                        tracing::info!(connection_id = %p.inner.me, %publisher, attempt, error = %e, "subscription reconnection failed; retrying");
                    }
                }
            }
            reconnection.retrying.store(false, Ordering::Release);
        });
    }
}

/// Reconnects a peer connection that is `Failed`, `Disconnected` longer than its grace period, or
/// not yet connected [`CONNECT_DEADLINE`] after the watch began; looks again while it stays broken
/// (the retry loops run one at a time).
async fn media_watchdog(
    weak: Weak<Inner>,
    mut states: tokio::sync::watch::Receiver<RTCPeerConnectionState>,
    endpoint_id: u64,
    watched: Watched,
) {
    let grace = match watched {
        Watched::Publisher => PUBLISHER_DISCONNECTED_GRACE,
        Watched::Subscription { .. } => SUBSCRIBER_DISCONNECTED_GRACE,
    };
    let mut disconnected_since: Option<tokio::time::Instant> = None;
    // Until it first connects: when the watch began.
    let mut connecting_since = Some(tokio::time::Instant::now());
    loop {
        let state = *states.borrow_and_update();
        let broken = match state {
            RTCPeerConnectionState::Closed => return,
            RTCPeerConnectionState::Failed => true,
            RTCPeerConnectionState::Disconnected => {
                disconnected_since.get_or_insert_with(tokio::time::Instant::now).elapsed() >= grace
            }
            RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting => {
                disconnected_since = None;
                connecting_since.is_some_and(|since| since.elapsed() >= CONNECT_DEADLINE)
            }
            _ => {
                disconnected_since = None;
                connecting_since = None;
                false
            }
        };
        if broken {
            let Some(inner) = weak.upgrade() else { return };
            let p = Participant { inner };
            if p.is_closed() {
                return;
            }
            tracing::debug!(connection_id = %p.inner.me, %state, "peer connection broken");
            if !p.media_broken(&watched, endpoint_id) {
                return;
            }
        }
        let waiting = matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Disconnected)
            || connecting_since.is_some();
        if waiting {
            if let Ok(Err(_)) = tokio::time::timeout(WATCHDOG_POLL, states.changed()).await {
                return;
            }
        } else if states.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A watchdog of a participant that is gone: it returns when it finds its connection broken
    /// (there is nobody left to reconnect), and waits while the connection is fine.
    fn watch(
        state: RTCPeerConnectionState,
    ) -> (tokio::sync::watch::Sender<RTCPeerConnectionState>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = tokio::sync::watch::channel(state);
        (tx, tokio::spawn(media_watchdog(Weak::new(), rx, 1, Watched::Publisher)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_does_not_connect_in_time_is_broken() {
        let (_tx, watchdog) = watch(RTCPeerConnectionState::Connecting);
        tokio::time::sleep(CONNECT_DEADLINE - Duration::from_millis(500)).await;
        assert!(!watchdog.is_finished(), "broken before the deadline");
        tokio::time::sleep(Duration::from_millis(500) + WATCHDOG_POLL * 2).await;
        assert!(watchdog.is_finished(), "still waiting after the deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_connected_has_no_deadline() {
        let (tx, watchdog) = watch(RTCPeerConnectionState::Connecting);
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(RTCPeerConnectionState::Connected).unwrap();
        tokio::time::sleep(CONNECT_DEADLINE * 3).await;
        assert!(!watchdog.is_finished(), "a connected connection counted as broken");
        // Disconnected past its grace: broken.
        tx.send(RTCPeerConnectionState::Disconnected).unwrap();
        tokio::time::sleep(PUBLISHER_DISCONNECTED_GRACE + WATCHDOG_POLL * 2).await;
        assert!(watchdog.is_finished());
    }
}

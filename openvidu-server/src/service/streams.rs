//! Publishing and subscribing: the media half of the operations, over the session's
//! [`MediaNode`](openvidu_media::MediaNode).

use openvidu_core::id::{ConnectionId, SessionId, StreamId, TypeOfVideo};
use openvidu_core::model::{Connection, EndReason, MediaOptions, Publisher, Subscriber};
use openvidu_core::wire::rpc::{Notification, StreamEntry};
use openvidu_core::wire::webhook::{SessionRef, WebhookEvent, WebrtcInfo};
use openvidu_media::{EndpointId, IceCandidate, MediaError, MediaEvent, PublishOptions};

use super::{OpenViduService, ServiceError, now_ms};
use crate::store::{SessionSnapshot, StreamProperty, Unpublished};

/// What a participant asks to publish.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PublishRequest {
    /// The client's SDP offer.
    pub sdp_offer: String,
    /// Tracks and their state.
    pub options: MediaOptions,
}

impl PublishRequest {
    /// A request to publish with this offer and these options.
    pub fn new(sdp_offer: String, options: MediaOptions) -> Self {
        Self { sdp_offer, options }
    }
}

impl From<MediaError> for ServiceError {
    fn from(e: MediaError) -> Self {
        ServiceError::Media(e)
    }
}

fn webrtc_info(stream: &StreamId, connection: &ConnectionId, from: Option<ConnectionId>, p: &Publisher) -> WebrtcInfo {
    let m = &p.media_options;
    WebrtcInfo {
        stream_id: stream.clone(),
        connection_id: connection.clone(),
        receiving_from: from,
        video_source: m.has_video.then(|| m.type_of_video.map(|t| format!("{t:?}").to_uppercase()).unwrap_or_default()),
        video_framerate: m.frame_rate,
        video_dimensions: m.video_dimensions.clone(),
        audio_enabled: m.audio_active,
        video_enabled: m.video_active,
    }
}

/// The owner and the publisher of a stream published in `snapshot`.
fn publisher_in(snapshot: &SessionSnapshot, stream: &StreamId) -> Result<(ConnectionId, Publisher), ServiceError> {
    let owner = stream.owner().ok_or_else(|| ServiceError::StreamNotFound(stream.clone()))?;
    let c = snapshot.connection(&owner).ok_or_else(|| ServiceError::ConnectionNotFound(owner.clone()))?;
    let p = c
        .publishers
        .iter()
        .find(|p| &p.stream_id == stream)
        .ok_or_else(|| ServiceError::StreamNotFound(stream.clone()))?;
    Ok((owner, p.clone()))
}

impl OpenViduService {
    /// `publishVideo`: creates the session's router if needed, publishes, tells the others.
    /// Returns the SDP answer and the new publisher.
    pub async fn publish(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        request: PublishRequest,
    ) -> Result<(String, Publisher), ServiceError> {
        let snapshot = self.session(session).await?;
        let me = snapshot.connection(connection).ok_or_else(|| ServiceError::ConnectionNotFound(connection.clone()))?;
        if let Some(p) = me.publishers.first() {
            return Err(ServiceError::AlreadyPublishing(p.stream_id.clone()));
        }
        let kind = request.options.has_video.then(|| request.options.type_of_video.unwrap_or(TypeOfVideo::Camera));
        let stream = self.inner.ids.stream_id(kind, connection);
        let options = self.publish_options(&snapshot, me, request.sdp_offer, &request.options);
        self.inner.media.create_router(session).await?;
        let answer = self.inner.media.publish(session, &stream, options).await?;
        let publisher = Publisher::new(stream.clone(), now_ms(), request.options);
        if let Err(e) = self.inner.store.add_publisher(session, connection, publisher.clone()).await {
            let _ = self.inner.media.unpublish(session, &stream).await;
            return Err(e.into());
        }
        // Told: whoever is in the session once the stream is stored. One that joined while the
        // media node negotiated is not in `snapshot`, and its `joinRoom` answer, read before the
        // stream was stored, did not list it. The recording goes on from the same read.
        let now = self.inner.store.session(session).await.ok().flatten();
        let others: Vec<ConnectionId> = now
            .as_ref()
            .unwrap_or(&snapshot)
            .active_connections()
            .map(|c| c.id.clone())
            .filter(|c| c != connection)
            .collect();
        self.inner.participants.notify_all(
            &others,
            &Notification::ParticipantPublished {
                id: connection.clone(),
                streams: vec![StreamEntry::from(&publisher)],
            },
        );
        self.inner.events.emit(WebhookEvent::WebrtcConnectionCreated {
            session: SessionRef::from(&snapshot.session),
            timestamp: publisher.created_at,
            webrtc: webrtc_info(&stream, connection, None, &publisher),
        });
        tracing::info!(session_id = %session, connection_id = %connection, stream_id = %stream, "published");
        if let Some(now) = now {
            self.stream_published(now, connection, &publisher).await;
        }
        Ok((answer, publisher))
    }

    /// What the media node needs to publish for `me`: tracks, the session's forced codec, and the
    /// connection's `kurentoOptions` bandwidth over the node's defaults.
    fn publish_options(
        &self,
        snapshot: &SessionSnapshot,
        me: &Connection,
        sdp_offer: String,
        media: &MediaOptions,
    ) -> PublishOptions {
        let mut options = PublishOptions::new(sdp_offer);
        options.has_audio = media.has_audio;
        options.has_video = media.has_video;
        options.forced_video_codec = snapshot.session.properties.forced_video_codec;
        let ko = me.properties.kurento_options.as_ref();
        let [max_recv, min_recv, ..] = self.config().video_bandwidth;
        options.max_recv_bandwidth_kbps = ko.and_then(|k| k.video_max_recv_bandwidth).unwrap_or(max_recv);
        options.min_recv_bandwidth_kbps = ko.and_then(|k| k.video_min_recv_bandwidth).unwrap_or(min_recv);
        options
    }

    /// Finds a published stream and checks it is being published.
    async fn published(
        &self,
        session: &SessionId,
        stream: &StreamId,
    ) -> Result<(ConnectionId, Publisher), ServiceError> {
        publisher_in(&self.session(session).await?, stream)
    }

    /// `receiveVideoFrom{sdpOffer}` (client offers): returns the answer.
    pub async fn subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, ServiceError> {
        let (owner, publisher) = self.published(session, stream).await?;
        let answer = self.inner.media.subscribe(session, subscriber, stream, sdp_offer).await?;
        self.subscribed(session, subscriber, &owner, &publisher).await?;
        Ok(answer)
    }

    /// `prepareReceiveVideoFrom` (server offers): returns the server's offer.
    pub async fn prepare_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
    ) -> Result<String, ServiceError> {
        self.published(session, stream).await?;
        Ok(self.inner.media.prepare_subscribe(session, subscriber, stream).await?)
    }

    /// `receiveVideoFrom{sdpAnswer}`: completes a server-offered subscription.
    pub async fn complete_subscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), ServiceError> {
        let (owner, publisher) = self.published(session, stream).await?;
        self.inner.media.complete_subscribe(session, subscriber, stream, sdp_answer).await?;
        self.subscribed(session, subscriber, &owner, &publisher).await
    }

    async fn subscribed(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        owner: &ConnectionId,
        publisher: &Publisher,
    ) -> Result<(), ServiceError> {
        let now = now_ms();
        self.inner.store.add_subscriber(session, subscriber, Subscriber::new(publisher.stream_id.clone(), now)).await?;
        if let Some(snapshot) = self.inner.store.session(session).await? {
            self.inner.events.emit(WebhookEvent::WebrtcConnectionCreated {
                session: SessionRef::from(&snapshot.session),
                timestamp: now,
                webrtc: webrtc_info(&publisher.stream_id, subscriber, Some(owner.clone()), publisher),
            });
        }
        tracing::info!(session_id = %session, connection_id = %subscriber, stream_id = %publisher.stream_id, "subscribed");
        Ok(())
    }

    /// `unsubscribeFromVideo`: `sender` is the publisher's connection id.
    pub async fn unsubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        sender: &ConnectionId,
    ) -> Result<(), ServiceError> {
        let snapshot = self.session(session).await?;
        let me = snapshot.connection(subscriber).ok_or_else(|| ServiceError::ConnectionNotFound(subscriber.clone()))?;
        let sub = me
            .subscribers
            .iter()
            .find(|s| s.stream_id.owner().as_ref() == Some(sender))
            .ok_or_else(|| ServiceError::ConnectionNotFound(sender.clone()))?;
        let stream = sub.stream_id.clone();
        self.inner.media.unsubscribe(session, subscriber, &stream).await?;
        self.inner.store.remove_subscriber(session, subscriber, &stream).await?;
        Ok(())
    }

    /// Stops a published stream for `reason`, telling the others (and, when forced, the owner).
    pub async fn unpublish(
        &self,
        session: &SessionId,
        stream: &StreamId,
        reason: EndReason,
    ) -> Result<(), ServiceError> {
        let Unpublished { owner, publisher, subscribers } = self.inner.store.remove_publisher(session, stream).await?;
        self.stream_unpublished(session, stream).await;
        if let Err(e) = self.inner.media.unpublish(session, stream).await {
            tracing::warn!(session_id = %session, stream_id = %stream, error = %e, "media unpublish failed");
        }
        let snapshot = self.inner.store.session(session).await?;
        let everyone: Vec<ConnectionId> =
            snapshot.iter().flat_map(|s| s.active_connections().map(|c| c.id.clone())).collect();
        let targets: Vec<&ConnectionId> =
            everyone.iter().filter(|c| reason != EndReason::Unpublish || **c != owner).collect();
        self.inner
            .participants
            .notify_all(targets, &Notification::ParticipantUnpublished { connection_id: owner.clone(), reason });
        if let Some(snap) = &snapshot {
            let now = now_ms();
            let sref = SessionRef::from(&snap.session);
            for sub in subscribers {
                self.inner.events.emit(WebhookEvent::WebrtcConnectionDestroyed {
                    session: sref.clone(),
                    timestamp: now,
                    start_time: publisher.created_at,
                    reason,
                    webrtc: webrtc_info(stream, &sub, Some(owner.clone()), &publisher),
                });
            }
            self.inner.events.emit(WebhookEvent::WebrtcConnectionDestroyed {
                session: sref,
                timestamp: now,
                start_time: publisher.created_at,
                reason,
                webrtc: webrtc_info(stream, &owner, None, &publisher),
            });
        }
        tracing::info!(session_id = %session, stream_id = %stream, ?reason, "unpublished");
        Ok(())
    }

    /// A remote ICE candidate from a participant. `endpoint_name` is the participant's own
    /// connection id (its publisher) or a publisher's connection id (a subscription).
    pub async fn add_ice_candidate(
        &self,
        session: &SessionId,
        me: &ConnectionId,
        endpoint_name: &str,
        candidate: IceCandidate,
    ) -> Result<(), ServiceError> {
        let target = ConnectionId::parse(endpoint_name).map_err(|_| ServiceError::ConnectionNotFound(me.clone()))?;
        let snapshot = self.session(session).await?;
        let owner = snapshot.connection(&target).ok_or_else(|| ServiceError::ConnectionNotFound(target.clone()))?;
        let stream = owner.publishers.first().map(|p| p.stream_id.clone());
        let endpoint = match stream {
            Some(stream) if &target == me => EndpointId::Publisher(stream),
            Some(stream) => EndpointId::Subscriber { subscriber: me.clone(), stream },
            None => return Err(ServiceError::NotPublishing(target)),
        };
        Ok(self.inner.media.add_ice_candidate(session, endpoint, candidate).await?)
    }

    /// `streamPropertyChanged`: stores the change and tells everyone.
    pub async fn change_stream_property(
        &self,
        session: &SessionId,
        stream: &StreamId,
        property: &str,
        new_value: serde_json::Value,
        reason: String,
    ) -> Result<(), ServiceError> {
        let change = match (property, &new_value) {
            ("audioActive", serde_json::Value::Bool(b)) => Some(StreamProperty::AudioActive(*b)),
            ("videoActive", serde_json::Value::Bool(b)) => Some(StreamProperty::VideoActive(*b)),
            ("videoDimensions", serde_json::Value::String(d)) => Some(StreamProperty::VideoDimensions(d.clone())),
            _ => None,
        };
        let owner = match change {
            Some(c) => self.inner.store.set_stream_property(session, stream, c).await?,
            None => self.published(session, stream).await?.0,
        };
        let snapshot = self.session(session).await?;
        let everyone: Vec<ConnectionId> = snapshot.active_connections().map(|c| c.id.clone()).collect();
        self.inner.participants.notify_all(
            &everyone,
            &Notification::StreamPropertyChanged {
                connection_id: owner,
                stream_id: stream.clone(),
                property: property.to_owned(),
                new_value: serde_json::Value::String(new_value.to_string()),
                reason,
            },
        );
        Ok(())
    }

    /// `reconnectStream` of a publisher: renegotiates its stream with a new offer, keeping the
    /// stream id and the REST state, on the session's media node (another one when its node
    /// died: the router is created there if needed). Its subscribers are then offered a new
    /// connection to it (`forciblyReconnectSubscriber`).
    pub async fn republish(
        &self,
        session: &SessionId,
        connection: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, ServiceError> {
        let snapshot = self.session(session).await?;
        let me = snapshot.connection(connection).ok_or_else(|| ServiceError::ConnectionNotFound(connection.clone()))?;
        let publisher = me
            .publishers
            .iter()
            .find(|p| &p.stream_id == stream)
            .ok_or_else(|| ServiceError::StreamNotFound(stream.clone()))?;
        let options = self.publish_options(&snapshot, me, sdp_offer, &publisher.media_options);
        let publisher = publisher.clone();
        self.stream_unpublished(session, stream).await;
        if let Err(e) = self.inner.media.unpublish(session, stream).await {
            tracing::debug!(session_id = %session, stream_id = %stream, error = %e, "republish: old endpoint");
        }
        self.inner.media.create_router(session).await?;
        let answer = self.inner.media.publish(session, stream, options).await?;
        tracing::info!(session_id = %session, stream_id = %stream, "publisher reconnected");
        // The stream's recording goes on in a new file (`<streamId>-1.webm`).
        self.stream_published(snapshot, connection, &publisher).await;
        let service = self.clone();
        let (session, connection, stream) = (session.clone(), connection.clone(), stream.clone());
        // After the answer is sent: the subscribers' new endpoints need the publisher's.
        tokio::spawn(async move { service.reconnect_subscribers(&session, &connection, &stream).await });
        Ok(answer)
    }

    /// `reconnectStream{sdpString}` of a subscriber: completes a server-offered reconnection
    /// (`prepareReceiveVideoFrom{reconnect: true}` or `forciblyReconnectSubscriber`). The
    /// subscription is recorded (and announced) only if it was not already.
    pub async fn complete_resubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_answer: String,
    ) -> Result<(), ServiceError> {
        let snapshot = self.session(session).await?;
        let known =
            snapshot.connection(subscriber).is_some_and(|c| c.subscribers.iter().any(|s| &s.stream_id == stream));
        if !known {
            return self.complete_subscribe(session, subscriber, stream, sdp_answer).await;
        }
        publisher_in(&snapshot, stream)?;
        self.inner.media.complete_subscribe(session, subscriber, stream, sdp_answer).await?;
        tracing::info!(session_id = %session, connection_id = %subscriber, stream_id = %stream, "subscriber reconnected");
        Ok(())
    }

    /// `reconnectStream` of a subscriber that offers again: replaces its endpoint.
    pub async fn resubscribe(
        &self,
        session: &SessionId,
        subscriber: &ConnectionId,
        stream: &StreamId,
        sdp_offer: String,
    ) -> Result<String, ServiceError> {
        self.published(session, stream).await?;
        Ok(self.inner.media.subscribe(session, subscriber, stream, sdp_offer).await?)
    }

    /// Releases a leaving connection's media without telling anyone (others learn from
    /// `participantLeft`): its streams and its subscriptions.
    pub(super) async fn release_media(&self, session: &SessionId, connection: &ConnectionId, reason: EndReason) {
        let Ok(Some(snapshot)) = self.inner.store.session(session).await else { return };
        let Some(c) = snapshot.connection(connection) else { return };
        for sub in &c.subscribers {
            if let Err(e) = self.inner.media.unsubscribe(session, connection, &sub.stream_id).await {
                tracing::debug!(session_id = %session, connection_id = %connection, error = %e, "media unsubscribe");
            }
        }
        for p in &c.publishers {
            if let Ok(Unpublished { owner, publisher, subscribers }) =
                self.inner.store.remove_publisher(session, &p.stream_id).await
            {
                self.stream_unpublished(session, &p.stream_id).await;
                if let Err(e) = self.inner.media.unpublish(session, &p.stream_id).await {
                    tracing::debug!(session_id = %session, stream_id = %p.stream_id, error = %e, "media unpublish");
                }
                let now = now_ms();
                let sref = SessionRef::from(&snapshot.session);
                for sub in subscribers.iter().chain(std::iter::once(&owner)) {
                    let from = (sub != &owner).then(|| owner.clone());
                    self.inner.events.emit(WebhookEvent::WebrtcConnectionDestroyed {
                        session: sref.clone(),
                        timestamp: now,
                        start_time: publisher.created_at,
                        reason,
                        webrtc: webrtc_info(&p.stream_id, sub, from, &publisher),
                    });
                }
            }
        }
    }

    /// Routes a media engine event to the participant it concerns.
    pub fn deliver_media_event(&self, event: MediaEvent) {
        match event {
            MediaEvent::IceCandidate { endpoint, candidate, .. } => {
                let (to, sender) = match &endpoint {
                    EndpointId::Publisher(stream) => match stream.owner() {
                        Some(o) => (o.clone(), o),
                        None => return,
                    },
                    EndpointId::Subscriber { subscriber, stream } => match stream.owner() {
                        Some(o) => (subscriber.clone(), o),
                        None => return,
                    },
                };
                // Every master connected to a media node hears its events: only the one
                // holding the participant's socket delivers them.
                self.inner.participants.notify_local(
                    &to,
                    &Notification::IceCandidate {
                        sender_connection_id: sender.clone(),
                        endpoint_name: sender.to_string(),
                        sdp_m_line_index: candidate.sdp_m_line_index,
                        sdp_mid: candidate.sdp_mid,
                        candidate: candidate.candidate,
                    },
                );
            }
            MediaEvent::Connected { session, endpoint } => {
                tracing::debug!(session_id = %session, %endpoint, "media connected");
            }
            MediaEvent::Failed { session, endpoint, reason } => {
                tracing::info!(session_id = %session, %endpoint, %reason, "media endpoint failed");
            }
            MediaEvent::RecordingFailed { session, recording, reason } => {
                let service = self.clone();
                tokio::spawn(async move { service.recording_failed(&session, &recording, &reason).await });
            }
            _ => {}
        }
    }
}

//! Subscriber endpoints: one sending peer connection per (subscriber, stream), fed from the
//! publisher's fan-out without re-encoding.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openvidu_core::id::{ConnectionId, SessionId, StreamId};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::task::AbortHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::peer_connection::{PeerConnection, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

use crate::direct::{DirectLeg, DirectRtp};
use crate::endpoint::{EndpointHandler, EndpointShared, Role, build_peer_connection, close_in_background, lock};
use crate::engine::MediaEngine;
use crate::feedback::feedback;
use crate::forward::{Forwarder, ForwarderKey, RtpSink};
use crate::node::{EndpointId, IceCandidate, MediaError};
use crate::publisher::{Publisher, TrackFanout};
use crate::sdp;
use openvidu_core::wire::ice::sdp_ice_ufrag;

/// How often a subscriber's connection sends an RTCP sender report per track, when the fan-out
/// sends its RTP (as the `webrtc` crate's interceptor does).
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// One forwarded track: the publisher's fan-out and the local track that sends it on.
struct Output {
    source: Arc<TrackFanout>,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

/// Where the negotiation of a subscriber stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The node offered and waits for the client's answer.
    AwaitingAnswer,
    /// Negotiated: media is forwarded.
    Forwarding,
}

/// One subscription: the peer connection that sends a published stream to one subscriber.
///
/// A cheap handle; the endpoint closes on [`close`](Self::close) or when the last handle drops.
#[derive(Clone)]
#[must_use = "the subscriber endpoint is closed when the last handle is dropped"]
pub struct Subscriber {
    inner: Arc<SubscriberInner>,
}

struct SubscriberInner {
    subscriber: ConnectionId,
    stream: StreamId,
    pc: Arc<dyn PeerConnection>,
    shared: Arc<EndpointShared>,
    /// The connection's RTP as the fan-out sends it (mux mode), or `None`: its driver sends it.
    direct: Option<Arc<DirectRtp>>,
    outputs: Vec<Output>,
    phase: Mutex<Phase>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// The legs registered with the publisher's fan-outs while forwarding.
    legs: Mutex<Vec<Leg>>,
    closed: AtomicBool,
}

/// A registered leg, to unregister from its fan-out when the subscriber stops.
struct Leg {
    source: Arc<TrackFanout>,
    ssrc: u32,
    key: ForwarderKey,
    forwarder: Arc<Forwarder>,
}

impl Drop for SubscriberInner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.shared.mark_closing();
            self.abort_tasks();
            close_in_background(self.pc.clone());
        }
    }
}

impl SubscriberInner {
    /// Stops forwarding: unregisters the legs and stops the feedback readers.
    fn abort_tasks(&self) {
        for leg in lock(&self.legs).drain(..) {
            leg.source.forwarders.remove(leg.key);
            let dropped = leg.forwarder.dropped();
            if dropped > 0 {
                tracing::debug!(subscriber = %self.subscriber, stream = %self.stream, ssrc = leg.ssrc,
                    dropped, "packets this subscriber could not take in time");
            }
        }
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Subscriber {
    /// Client offers: negotiates from `sdp_offer`, returns the subscriber and the answer.
    pub(crate) async fn create_answering(
        engine: &MediaEngine,
        session: &SessionId,
        subscriber: &ConnectionId,
        publisher: &Publisher,
        sdp_offer: String,
    ) -> Result<(Self, String), MediaError> {
        let desc = sdp::parse(&sdp_offer)?;
        // Forward the tracks the client asked for; its offer must carry their codecs.
        let mut sources = Vec::new();
        for source in publisher.tracks() {
            if desc.section(source.kind).is_none() {
                continue;
            }
            let mime = &source.codec.rtp_codec.mime_type;
            if !desc.offers_mime(source.kind, mime) {
                return Err(MediaError::Sdp(format!(
                    "the subscriber's offer does not accept {mime}, which the publisher sends"
                )));
            }
            sources.push(source.clone());
        }
        if sources.is_empty() {
            return Err(MediaError::Sdp("the subscriber's offer has no section for the stream's tracks".into()));
        }
        // Only the codecs forwarded reach the negotiation (`sdp::only_codecs`).
        let sdp_offer = sdp::only_codecs(&sdp_offer, &desc, |kind, codec| {
            sources.iter().any(|s| s.kind == kind && codec.is(kind, &s.codec.rtp_codec.mime_type))
        });
        let remote_ufrag = sdp_ice_ufrag(&sdp_offer).map(str::to_owned);
        let offer = RTCSessionDescription::offer(sdp_offer).map_err(|e| MediaError::Sdp(e.to_string()))?;
        let (pc, shared, direct) = new_peer(engine, session, subscriber, publisher, &sources).await?;
        // Dropping `pc` on error is not enough: it must be closed.
        let result: Result<_, MediaError> = async {
            engine.apply_offer(&pc, offer).await?;
            shared.remote_description_set(pc.as_ref(), remote_ufrag).await;
            // The client's sections are recvonly: adding the tracks now turns the transceivers
            // it created into sendonly ones.
            let outputs = add_outputs(pc.as_ref(), publisher.stream(), &sources).await?;
            let answer_sdp = engine.answer(&pc).await?;
            Ok((outputs, answer_sdp))
        }
        .await;
        let (outputs, answer_sdp) = match result {
            Ok(ok) => ok,
            Err(e) => {
                shared.mark_closing();
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let this = Self::assemble(subscriber, publisher, (pc, shared, direct), outputs, Phase::Forwarding);
        this.start_forwarding().await?;
        this.inner.shared.release_candidates(sdp::first_mid(&answer_sdp));
        tracing::info!(%session, %subscriber, stream = %publisher.stream(), "subscribed (client offer)");
        Ok((this, answer_sdp))
    }

    /// Server offers: returns the subscriber and the node's offer; finish with
    /// [`complete`](Self::complete).
    pub(crate) async fn create_offering(
        engine: &MediaEngine,
        session: &SessionId,
        subscriber: &ConnectionId,
        publisher: &Publisher,
    ) -> Result<(Self, String), MediaError> {
        let sources = publisher.tracks().to_vec();
        let (pc, shared, direct) = new_peer(engine, session, subscriber, publisher, &sources).await?;
        let result: Result<_, MediaError> = async {
            let outputs = add_outputs(pc.as_ref(), publisher.stream(), &sources).await?;
            for transceiver in pc.get_transceivers().await {
                transceiver.set_direction(RTCRtpTransceiverDirection::Sendonly).await.map_err(MediaError::webrtc)?;
            }
            let offer = pc.create_offer(None).await.map_err(MediaError::webrtc)?;
            let offer_sdp = offer.sdp.clone();
            pc.set_local_description(offer).await.map_err(MediaError::webrtc)?;
            Ok((outputs, offer_sdp))
        }
        .await;
        let (outputs, offer_sdp) = match result {
            Ok(ok) => ok,
            Err(e) => {
                shared.mark_closing();
                let _ = pc.close().await;
                return Err(e);
            }
        };
        let this = Self::assemble(subscriber, publisher, (pc, shared, direct), outputs, Phase::AwaitingAnswer);
        this.inner.shared.release_candidates(sdp::first_mid(&offer_sdp));
        tracing::info!(%session, %subscriber, stream = %publisher.stream(), "subscription offered");
        Ok((this, offer_sdp))
    }

    /// Applies the client's answer to the node's offer and starts forwarding.
    pub async fn complete(&self, sdp_answer: String) -> Result<(), MediaError> {
        {
            let mut phase = lock(&self.inner.phase);
            if *phase != Phase::AwaitingAnswer {
                return Err(MediaError::Sdp("no offer is waiting for an answer".into()));
            }
            sdp::parse(&sdp_answer)?;
            // Claimed now so that a concurrent second answer is refused.
            *phase = Phase::Forwarding;
        }
        let remote_ufrag = sdp_ice_ufrag(&sdp_answer).map(str::to_owned);
        let result = async {
            let answer = RTCSessionDescription::answer(sdp_answer).map_err(|e| MediaError::Sdp(e.to_string()))?;
            self.inner.pc.set_remote_description(answer).await.map_err(|e| MediaError::Sdp(e.to_string()))
        }
        .await;
        if let Err(e) = result {
            *lock(&self.inner.phase) = Phase::AwaitingAnswer;
            return Err(e);
        }
        self.inner.shared.remote_description_set(self.inner.pc.as_ref(), remote_ufrag).await;
        self.start_forwarding().await?;
        tracing::info!(session = %self.inner.shared.session, subscriber = %self.inner.subscriber,
            stream = %self.inner.stream, "subscribed (server offer)");
        Ok(())
    }

    fn assemble(
        subscriber: &ConnectionId,
        publisher: &Publisher,
        (pc, shared, direct): Peer,
        outputs: Vec<Output>,
        phase: Phase,
    ) -> Self {
        Self {
            inner: Arc::new(SubscriberInner {
                subscriber: subscriber.clone(),
                stream: publisher.stream().clone(),
                pc,
                shared,
                direct,
                outputs,
                phase: Mutex::new(phase),
                tasks: Mutex::new(Vec::new()),
                legs: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Registers one leg with the publisher's fan-out and starts one feedback reader per
    /// negotiated track; when the fan-out sends the connection's RTP, starts what it needs
    /// ([`send_directly`]).
    async fn start_forwarding(&self) -> Result<(), MediaError> {
        let mut started = 0;
        let mut direct_legs = Vec::new();
        let mut starting = Vec::new();
        for output in &self.inner.outputs {
            let params = output.sender.get_parameters().await.map_err(MediaError::webrtc)?;
            let mime = &output.source.codec.rtp_codec.mime_type;
            let Some(payload_type) = params
                .rtp_parameters
                .codecs
                .iter()
                .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
                .map(|c| c.payload_type)
            else {
                tracing::warn!(subscriber = %self.inner.subscriber, stream = %self.inner.stream,
                    %mime, "track not negotiated with the subscriber; not forwarded");
                continue;
            };
            let sink: Arc<dyn RtpSink> = match &self.inner.direct {
                Some(direct) => {
                    let leg = Arc::new(DirectLeg::new(direct.clone(), output.source.codec.rtp_codec.clock_rate));
                    direct_legs.push(leg.clone());
                    leg
                }
                None => output.track.clone(),
            };
            let forwarder =
                Arc::new(Forwarder::new(sink, output.ssrc, payload_type, self.inner.shared.media_up.clone()));
            let retransmits = self.inner.direct.is_some();
            let feedback =
                tokio::spawn(feedback(output.source.clone(), output.track.clone(), forwarder.clone(), retransmits));
            lock(&self.inner.tasks).push(feedback.abort_handle());
            let key = output.source.forwarders.add(forwarder.clone());
            starting.push((output.source.clone(), forwarder.clone()));
            lock(&self.inner.legs).push(Leg { source: output.source.clone(), ssrc: output.ssrc, key, forwarder });
            started += 1;
        }
        // Any of the connection's tracks carries the reports of all (one compound packet).
        if let (Some(direct), Some(first)) = (&self.inner.direct, self.inner.outputs.first())
            && started > 0
        {
            let rtcp = first.track.clone();
            let task = tokio::spawn(send_directly(
                self.inner.pc.clone(),
                self.inner.shared.clone(),
                direct.clone(),
                starting,
                (direct_legs, rtcp),
            ));
            lock(&self.inner.tasks).push(task.abort_handle());
        }
        // Closed meanwhile: the close found no legs to unregister yet.
        if self.inner.closed.load(Ordering::Acquire) {
            self.inner.abort_tasks();
            return Err(MediaError::SubscriptionNotFound {
                subscriber: self.inner.subscriber.clone(),
                stream: self.inner.stream.clone(),
            });
        }
        if started == 0 {
            return Err(MediaError::Sdp("no track could be negotiated with the subscriber".into()));
        }
        // The keyframe a subscriber joining a running stream needs is sent or requested when
        // its connection comes up (in mux mode once `send_directly` can send, from the last
        // keyframe if it is recent; in range mode requested by
        // `EndpointHandler::on_connection_state_change`): one asked for now would be sent
        // before the subscriber can receive it, and would hold the
        // publisher's next keyframe back by the limiter's interval.
        Ok(())
    }

    /// The subscribing connection.
    pub fn subscriber(&self) -> &ConnectionId {
        &self.inner.subscriber
    }

    /// The stream it receives.
    pub fn stream(&self) -> &StreamId {
        &self.inner.stream
    }

    /// Adds a remote ICE candidate from the client.
    pub async fn add_ice_candidate(&self, candidate: IceCandidate) -> Result<(), MediaError> {
        self.inner.shared.add_remote_candidate(self.inner.pc.as_ref(), candidate).await
    }

    /// Closes the endpoint. Idempotent.
    pub async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.shared.mark_closing();
        self.inner.abort_tasks();
        if let Err(e) = self.inner.pc.close().await {
            tracing::debug!(error = %e, "closing subscriber peer connection");
        }
        tracing::info!(session = %self.inner.shared.session, subscriber = %self.inner.subscriber,
            stream = %self.inner.stream, "subscriber closed");
    }
}

/// A subscriber's peer connection, what its handler shares, and its RTP as the fan-out sends it
/// (mux mode).
type Peer = (Arc<dyn PeerConnection>, Arc<EndpointShared>, Option<Arc<DirectRtp>>);

async fn new_peer(
    engine: &MediaEngine,
    session: &SessionId,
    subscriber: &ConnectionId,
    publisher: &Publisher,
    sources: &[Arc<TrackFanout>],
) -> Result<Peer, MediaError> {
    let shared = EndpointShared::new(
        session.clone(),
        EndpointId::Subscriber { subscriber: subscriber.clone(), stream: publisher.stream().clone() },
        engine.events(),
    );
    // In mux mode the node's sockets are shared, and the fan-out sends on them itself.
    let direct = engine.transport().mux_port().map(|_| DirectRtp::new(shared.path.clone()));
    let role = Role::Subscriber { sources: sources.to_vec(), direct: direct.is_some() };
    let handler = Arc::new(EndpointHandler { shared: shared.clone(), role });
    let codecs: Vec<_> = sources.iter().map(|s| (s.kind, s.codec.clone())).collect();
    let pc = build_peer_connection(engine, &codecs, handler).await?;
    Ok((pc, shared, direct))
}

/// Adds one local track per source, in the publisher's stream (one `msid` for all of them).
async fn add_outputs(
    pc: &dyn PeerConnection,
    stream: &StreamId,
    sources: &[Arc<TrackFanout>],
) -> Result<Vec<Output>, MediaError> {
    let mut outputs = Vec::new();
    for source in sources {
        let ssrc = rand::random::<u32>() | 1;
        let kind = match source.kind {
            RtpCodecKind::Audio => "audio",
            _ => "video",
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            stream.to_string(),
            format!("{stream}_{kind}"),
            format!("{stream}_{kind}"),
            source.kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: source.codec.rtp_codec.clone(),
                ..Default::default()
            }],
        )));
        let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.map_err(MediaError::webrtc)?;
        outputs.push(Output { source: source.clone(), track, sender, ssrc });
    }
    Ok(outputs)
}

/// What the fan-out needs to send a connection's RTP itself, once the connection is up: its
/// SRTP context, then each leg's start (`legs`: from the last keyframe if it is recent, or with
/// a keyframe request, [`TrackFanout::start_leg`]; a keyframe sent before could not have been
/// decrypted), and the legs' sender reports, every [`SENDER_REPORT_INTERVAL`], in
/// one compound RTCP packet written through `rtcp` (one of the connection's tracks), as a
/// browser sends its reports. Runs until the subscriber stops.
async fn send_directly(
    pc: Arc<dyn PeerConnection>,
    shared: Arc<EndpointShared>,
    direct: Arc<DirectRtp>,
    legs: Vec<(Arc<TrackFanout>, Arc<Forwarder>)>,
    (reporting, rtcp): (Vec<Arc<DirectLeg>>, Arc<TrackLocalStaticRTP>),
) {
    shared.connected().await;
    match pc.new_local_srtp_context().await {
        Ok(Some(context)) => direct.install(context),
        Ok(None) => {
            tracing::warn!(session = %shared.session, endpoint = %shared.endpoint,
                "connected without SRTP keys: nothing is forwarded");
            return;
        }
        Err(e) => {
            tracing::warn!(session = %shared.session, endpoint = %shared.endpoint, error = %e,
                "no SRTP context: nothing is forwarded");
            return;
        }
    }
    for (source, leg) in &legs {
        source.start_leg(leg);
    }
    // On the timer grid: every subscriber's reports leave in the same wake-up.
    let mut ticks = crate::timer_grid::aligned_interval(SENDER_REPORT_INTERVAL);
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let reports: Vec<Box<dyn rtc::rtcp::Packet>> = reporting
            .iter()
            .filter_map(|leg| leg.sender_report(now))
            .map(|report| Box::new(report) as Box<dyn rtc::rtcp::Packet>)
            .collect();
        if !reports.is_empty()
            && let Err(e) = rtcp.write_rtcp(reports).await
        {
            tracing::trace!(error = %e, "sender reports not sent");
        }
    }
}

//! What publisher and subscriber endpoints share: building the peer connection, trickling
//! candidates both ways and reporting connection state as [`MediaEvent`]s.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use openvidu_core::id::SessionId;
use openvidu_core::wire::ice::candidate_ufrag;
use rand::Rng;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{NackResponderBuilder, ReceiverReportBuilder, SenderReportBuilder, Slot};
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::mpsc::UnboundedSender;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine as RtcMediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry,
    SettingEngineBuilder, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};

use crate::engine::MediaEngine;
use crate::feedback::FeedbackMarker;
use crate::forward::HISTORY_PACKETS;
use crate::keyframe::KeyframeNeed;
use crate::node::{EndpointId, IceCandidate, MediaError, MediaEvent};
use crate::publisher::{GapNackGenerator, InlineFanout, TrackFanout};
use crate::transport::{AdvertisedAddrs, EndpointRuntime, MediaPath};

/// Remote candidates kept per endpoint while its remote description is not set yet.
pub(crate) const MAX_QUEUED_CANDIDATES: usize = 64;

/// How often the ICE agent checks candidate pairs while connecting: RFC 8445's pacing, as
/// browsers use. The crate's 200 ms default makes a check or a nomination that misses a tick
/// wait 200 ms, which a join pays in its time to first frame.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Checks per candidate pair before it fails: the crate's default window (7 x 200 ms = 1.4 s)
/// at the faster pace.
const ICE_MAX_BINDING_REQUESTS: u16 = 28;
/// How long after its start the ICE agent, when it is the controlling one (the node offers:
/// `prepareReceiveVideoFrom`, a subscriber's reconnection, a media-node rebuild), waits before
/// nominating a pair whose remote candidate is peer-reflexive or server-reflexive. The crate
/// waits 1 s and 500 ms, in case a better pair turns up. A browser's host candidates are mDNS
/// names, which the node does not resolve, so its pair is almost always peer-reflexive (the
/// browser's check arrives before its trickled candidate): every such connection waited 1 s
/// before media. The node has only host candidates of its own; the first working pair is the
/// one to use, as a browser nominates it.
const ICE_REFLEXIVE_NOMINATION_WAIT: Duration = Duration::ZERO;

#[cfg(test)]
mod tests;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct EndpointState {
    /// Local candidates are held until the call that produced the local SDP returns it.
    released: bool,
    held: Vec<IceCandidate>,
    mid: Option<String>,
    remote_set: bool,
    /// The remote description's ICE ufrag: candidates naming another one are not for us.
    remote_ufrag: Option<String>,
    pending_remote: Vec<IceCandidate>,
    failed: bool,
}

/// The part of an endpoint its event handler and its handle share.
pub(crate) struct EndpointShared {
    pub(crate) session: SessionId,
    pub(crate) endpoint: EndpointId,
    events: UnboundedSender<MediaEvent>,
    pub(crate) advertised: Arc<AdvertisedAddrs>,
    /// Where the fan-out sends the connection's RTP itself (mux mode).
    pub(crate) path: Arc<MediaPath>,
    state: Mutex<EndpointState>,
    /// Set (under `state`'s lock) once the peer connection is connected, ICE and DTLS: SRTP keys
    /// exist. The legs forwarding to a subscriber send nothing before.
    pub(crate) media_up: Arc<AtomicBool>,
    /// Notified once when `media_up` is set.
    up: tokio::sync::Notify,
    closing: AtomicBool,
}

impl EndpointShared {
    pub(crate) fn new(session: SessionId, endpoint: EndpointId, events: UnboundedSender<MediaEvent>) -> Arc<Self> {
        Arc::new(Self {
            session,
            endpoint,
            events,
            advertised: Arc::default(),
            path: Arc::default(),
            state: Mutex::default(),
            media_up: Arc::default(),
            up: tokio::sync::Notify::new(),
            closing: AtomicBool::new(false),
        })
    }

    /// Returns once the peer connection is connected (ICE and DTLS).
    pub(crate) async fn connected(&self) {
        if !self.media_up.load(Ordering::Acquire) {
            // `notify_one` keeps a permit for a waiter that comes later.
            self.up.notified().await;
        }
    }

    /// From now on the endpoint reports nothing.
    pub(crate) fn mark_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    fn emit(&self, event: MediaEvent) {
        if !self.closing.load(Ordering::Acquire) {
            // The master may have dropped its receiver while shutting down; nothing to do then.
            let _ = self.events.send(event);
        }
    }

    fn emit_candidate(&self, candidate: IceCandidate) {
        tracing::trace!(session = %self.session, endpoint = %self.endpoint,
            candidate = %candidate.candidate, "local ICE candidate");
        self.emit(MediaEvent::IceCandidate {
            session: self.session.clone(),
            endpoint: self.endpoint.clone(),
            candidate,
        });
    }

    /// A local candidate gathered by the driver.
    fn local_candidate(&self, candidate: String) {
        let mut state = lock(&self.state);
        let candidate = IceCandidate { candidate, sdp_mid: state.mid.clone(), sdp_m_line_index: Some(0) };
        if state.released {
            drop(state);
            self.emit_candidate(candidate);
        } else {
            state.held.push(candidate);
        }
    }

    /// The local SDP is out (its first m-section is `mid`): trickle held and future candidates.
    pub(crate) fn release_candidates(&self, mid: Option<String>) {
        let held = {
            let mut state = lock(&self.state);
            state.released = true;
            state.mid = mid.clone();
            std::mem::take(&mut state.held)
        };
        for mut candidate in held {
            candidate.sdp_mid = mid.clone();
            self.emit_candidate(candidate);
        }
    }

    /// Adds a remote candidate, or queues it until the remote description is set.
    pub(crate) async fn add_remote_candidate(
        &self,
        pc: &dyn PeerConnection,
        candidate: IceCandidate,
    ) -> Result<(), MediaError> {
        if !check_candidate(&candidate)? {
            return Ok(());
        }
        {
            let mut state = lock(&self.state);
            if !state.remote_set {
                if state.pending_remote.len() < MAX_QUEUED_CANDIDATES {
                    state.pending_remote.push(candidate);
                } else {
                    tracing::warn!(session = %self.session, endpoint = %self.endpoint,
                        "too many early ICE candidates; dropping one");
                }
                return Ok(());
            }
        }
        self.apply_remote(pc, candidate).await
    }

    /// The remote description (whose ICE ufrag is `remote_ufrag`) is set: apply the queued
    /// remote candidates.
    pub(crate) async fn remote_description_set(&self, pc: &dyn PeerConnection, remote_ufrag: Option<String>) {
        let pending = {
            let mut state = lock(&self.state);
            state.remote_set = true;
            state.remote_ufrag = remote_ufrag;
            std::mem::take(&mut state.pending_remote)
        };
        for candidate in pending {
            if let Err(e) = self.apply_remote(pc, candidate).await {
                tracing::warn!(session = %self.session, endpoint = %self.endpoint,
                    error = %e, "queued ICE candidate rejected");
            }
        }
    }

    async fn apply_remote(&self, pc: &dyn PeerConnection, candidate: IceCandidate) -> Result<(), MediaError> {
        tracing::trace!(session = %self.session, endpoint = %self.endpoint,
            candidate = %candidate.candidate, "remote ICE candidate");
        let remote_ufrag = lock(&self.state).remote_ufrag.clone();
        if let Some(theirs) = foreign_ufrag(remote_ufrag.as_deref(), &candidate.candidate) {
            // A candidate of the client's previous peer connection for this endpoint name,
            // trickled after a renegotiation replaced it. Checks sent there would reach a peer
            // connection of another negotiation (and the webrtc crate lets a check that fails
            // authentication still flip the receiver's ICE role).
            tracing::debug!(session = %self.session, endpoint = %self.endpoint,
                candidate_ufrag = theirs, "ICE candidate of another negotiation ignored");
            return Ok(());
        }
        let mdns = candidate.candidate.contains(".local ");
        let init = RTCIceCandidateInit {
            candidate: candidate.candidate,
            sdp_mid: candidate.sdp_mid,
            sdp_mline_index: candidate.sdp_m_line_index,
            username_fragment: None,
            url: None,
        };
        match pc.add_ice_candidate(init).await {
            Ok(()) => Ok(()),
            // mDNS is off on the node: such candidates are useless to it, not an error of the
            // client (the peer-reflexive candidate takes their place).
            Err(e) if mdns => {
                tracing::debug!(error = %e, "mDNS ICE candidate ignored");
                Ok(())
            }
            Err(e) => Err(MediaError::IceCandidate(e.to_string())),
        }
    }

    fn connection_state(&self, state: RTCPeerConnectionState) -> Option<bool> {
        let mut s = lock(&self.state);
        match state {
            RTCPeerConnectionState::Connected if !self.media_up.load(Ordering::Acquire) => {
                self.media_up.store(true, Ordering::Release);
                self.up.notify_one();
                drop(s);
                tracing::info!(session = %self.session, endpoint = %self.endpoint, "media connected");
                self.emit(MediaEvent::Connected { session: self.session.clone(), endpoint: self.endpoint.clone() });
                Some(true)
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed if !s.failed => {
                s.failed = true;
                drop(s);
                if self.closing.load(Ordering::Acquire) {
                    return None;
                }
                tracing::info!(session = %self.session, endpoint = %self.endpoint,
                    %state, "media endpoint failed");
                self.emit(MediaEvent::Failed {
                    session: self.session.clone(),
                    endpoint: self.endpoint.clone(),
                    reason: format!("peer connection {state}"),
                });
                Some(false)
            }
            _ => None,
        }
    }
}

/// The ufrag of `candidate` if it names one other than `remote_ufrag` (the remote
/// description's): then it was gathered by another peer connection than the one negotiated.
pub(crate) fn foreign_ufrag<'a>(remote_ufrag: Option<&str>, candidate: &'a str) -> Option<&'a str> {
    let theirs = candidate_ufrag(candidate)?;
    (remote_ufrag? != theirs).then_some(theirs)
}

/// Validates a remote candidate. `Ok(false)`: the end-of-candidates marker, nothing to add.
pub(crate) fn check_candidate(candidate: &IceCandidate) -> Result<bool, MediaError> {
    let text = candidate.candidate.trim();
    let value = text.strip_prefix("candidate:").unwrap_or(text);
    if value.is_empty() {
        return Ok(false);
    }
    if text.len() > 1024 {
        return Err(MediaError::IceCandidate("candidate too long".into()));
    }
    rtc::ice::candidate::unmarshal_candidate(value).map_err(|e| MediaError::IceCandidate(format!("{e}: {text:?}")))?;
    Ok(true)
}

/// What an endpoint's event handler does besides the common part.
pub(crate) enum Role {
    /// Feeds each remote track into the fan-out of its kind.
    Publisher { tracks: Vec<Arc<TrackFanout>> },
    /// Sends these publisher tracks. With `direct`, the fan-out encrypts and sends the
    /// connection's RTP itself ([`crate::direct`]), which also asks for the first keyframes once
    /// it can send; otherwise the connection's driver sends it, and the handler asks for them
    /// once connected.
    Subscriber { sources: Vec<Arc<TrackFanout>>, direct: bool },
}

/// The [`PeerConnectionEventHandler`] of every endpoint.
pub(crate) struct EndpointHandler {
    pub(crate) shared: Arc<EndpointShared>,
    pub(crate) role: Role,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for EndpointHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let mut candidate = event.candidate;
        if candidate.address.is_empty() {
            return; // end of gathering
        }
        if let Ok(ip) = candidate.address.parse::<IpAddr>()
            && let Some(advertised) = self.shared.advertised.get(SocketAddr::new(ip, candidate.port))
        {
            candidate.address = advertised.ip().to_string();
            candidate.port = advertised.port();
        }
        match candidate.to_json() {
            Ok(init) => self.shared.local_candidate(init.candidate),
            Err(e) => tracing::warn!(error = %e, "unusable local ICE candidate"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(session = %self.shared.session, endpoint = %self.shared.endpoint,
            %state, "peer connection state");
        if self.shared.connection_state(state) == Some(true)
            && let Role::Subscriber { sources, direct: false } = &self.role
        {
            for source in sources {
                source.request_keyframe(KeyframeNeed::First);
            }
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Role::Publisher { tracks } = &self.role {
            let kind = track.kind().await;
            match tracks.iter().find(|t| t.kind == kind) {
                Some(fanout) => fanout.attach(track, &self.shared).await,
                None => tracing::warn!(session = %self.shared.session,
                    endpoint = %self.shared.endpoint, %kind, "unexpected remote track"),
            }
        }
    }
}

/// How often a publisher's connection asks again for the packets it is missing, while some are
/// (the crate's default).
const NACK_INTERVAL: Duration = Duration::from_millis(100);

/// The position of the last interceptor of every chain, after the crate's defaults.
const FEEDBACK_SLOT: Slot = Slot::Custom(14_000);

/// A random ICE credential of `len` alphanumerics.
fn ice_credential(len: usize) -> String {
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(len).map(char::from).collect()
}

/// The interceptors of an endpoint's peer connection, and the RTCP feedback they need
/// negotiated. Every interceptor sees every packet, in both directions: each one only a
/// receiving or only a sending endpoint uses is a per-packet cost for nothing on the other.
///
/// - A publisher receives: the receiving half of the crate's default chain (NACK generator, TWCC
///   receiver, receiver reports, and the header extensions they and simulcast need), without the
///   NACK responder and the sender reports, which only act on what an endpoint sends. The NACK
///   generator is the crate's, in a [`GapNackGenerator`], which keeps its timer off while
///   nothing is missing.
/// - A subscriber sends, with `nack` and `nack pli` negotiated so that it asks for both. When the
///   fan-out sends its RTP itself (`direct`), the fan-out answers NACKs from the track's history
///   and counts what its sender reports say, and the chain has nothing to do; otherwise the chain
///   has the NACK responder (with [`HISTORY_PACKETS`], as the track's history; the crate's 1024
///   was most of what a subscriber cost in memory) and the sender reports.
///
/// Both end with [`FeedbackMarker`], which hands inbound PLI, FIR and NACK to the application;
/// a publisher's, [`InlineFanout`], also forwards its tracks' packets there.
fn interceptors(role: &Role, media_engine: &mut RtcMediaEngine) -> Result<Registry, MediaError> {
    let registry = match role {
        Role::Publisher { .. } => {
            register_nack_feedback(media_engine);
            configure_simulcast_extension_headers(media_engine).map_err(MediaError::webrtc)?;
            configure_twcc_receiver_only(Registry::new(), media_engine)
                .map_err(MediaError::webrtc)?
                .with(Slot::NackGenerator, GapNackGenerator::new(NACK_INTERVAL))
                .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
        }
        Role::Subscriber { direct, .. } => {
            register_nack_feedback(media_engine);
            if *direct {
                Registry::new()
            } else {
                let history = u16::try_from(HISTORY_PACKETS).unwrap_or(u16::MAX);
                Registry::new()
                    .with(Slot::NackResponder, NackResponderBuilder::new().with_size(history).build())
                    .with(Slot::SenderReport, SenderReportBuilder::new().build())
            }
        }
    };
    // Last in the chain: every interceptor before it has seen the packet.
    Ok(match role {
        Role::Publisher { tracks } => registry.with(FEEDBACK_SLOT, InlineFanout::new(tracks.clone())),
        Role::Subscriber { .. } => registry.with(FEEDBACK_SLOT, FeedbackMarker::default()),
    })
}

/// Negotiates `nack` and `nack pli` for video.
fn register_nack_feedback(media_engine: &mut RtcMediaEngine) {
    for parameter in ["", "pli"] {
        media_engine.register_feedback(
            RTCPFeedback { typ: "nack".to_owned(), parameter: parameter.to_owned() },
            RtpCodecKind::Video,
        );
    }
}

/// Builds a peer connection for one endpoint: the given codecs only, the role's
/// [`interceptors`], mDNS off, node-chosen ICE credentials and the node's UDP transport.
pub(crate) async fn build_peer_connection(
    engine: &MediaEngine,
    codecs: &[(RtpCodecKind, RTCRtpCodecParameters)],
    handler: Arc<EndpointHandler>,
) -> Result<Arc<dyn PeerConnection>, MediaError> {
    let mut media_engine = RtcMediaEngine::default();
    for (kind, codec) in codecs {
        media_engine.register_codec(codec.clone(), *kind).map_err(MediaError::webrtc)?;
    }
    let registry = interceptors(&handler.role, &mut media_engine)?;
    let ufrag = ice_credential(16);
    let settings = SettingEngineBuilder::new()
        .with_ice_credentials(ufrag.clone(), ice_credential(32))
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(
            Some(engine.config().ice_disconnected_timeout),
            Some(engine.config().ice_failed_timeout),
            Some(engine.config().ice_consent_interval),
        )
        .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
        .with_prflx_acceptance_min_wait(Some(ICE_REFLEXIVE_NOMINATION_WAIT))
        .with_srflx_acceptance_min_wait(Some(ICE_REFLEXIVE_NOMINATION_WAIT))
        // Answering a client's offer, the node is the DTLS server (`a=setup:passive`): the
        // client, which nominated the ICE pair, sends the first flight once its ICE is up, by
        // which time the node's transport is. As DTLS client the node could send its
        // ClientHello before the client's transport had started (the webrtc crate drops such a
        // datagram), and the handshake waited for the 1 s retransmission.
        .with_answering_dtls_role(RTCDtlsRole::Server)
        .build();
    // A subscriber's driver runs on the negotiation runtime (`MediaEngine::set_negotiation_runtime`);
    // a publisher's stays here, where the fan-out reads its packets.
    let tasks = match handler.role {
        Role::Subscriber { .. } => engine.negotiation_runtime().cloned(),
        Role::Publisher { .. } => None,
    };
    let runtime = Arc::new(EndpointRuntime::new(
        engine.transport().clone(),
        ufrag,
        handler.shared.advertised.clone(),
        handler.shared.path.clone(),
        tasks,
    ));
    let pc = PeerConnectionBuilder::new()
        .with_configuration(
            RTCConfigurationBuilder::new().with_certificates(vec![engine.certificate().clone()]).build(),
        )
        .with_media_engine(media_engine)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_runtime(runtime)
        .with_udp_addrs(engine.transport().bind_addrs())
        .build()
        .await
        .map_err(MediaError::webrtc)?;
    Ok(Arc::new(pc))
}

/// Closes `pc` from a synchronous context (a `Drop`), if a tokio runtime is around.
pub(crate) fn close_in_background(pc: Arc<dyn PeerConnection>) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(async move {
            let _ = pc.close().await;
        });
    }
}

//! The participant's peer connections (webrtc 0.21): one send-only connection for its own
//! stream, one receive-only connection per subscription, trickle ICE both ways through the
//! signalling, and the tasks that feed and count media.

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openvidu_core::wire::ice::{candidate_ufrag, sdp_ice_ufrag};
use openvidu_core::wire::rpc::OnIceCandidateParams;
use rtc::crypto::{self, SignatureScheme};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::media::Sample;
use rtc::media::io::ivf_reader::IVFReader;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder, register_default_interceptors,
};
use webrtc::rtp_transceiver::RtpSender;

use super::arrival::{ArrivalRuntime, Arrivals};
use super::events::RemoteCandidate;
use super::files::{LoadedMedia, OpusPacket};
use super::rpc::{Rpc, lock};
use super::rtcp::{KeyframeRequestsToApplication, is_keyframe_request};
use super::stats::{Kind, StreamStats, TrackCounter};
use super::synthetic;
use super::{MediaSource, ParticipantError};

/// Remote candidates kept per peer connection until its remote description is set.
const MAX_QUEUED_CANDIDATES: usize = 64;
/// The payload types this client offers.
const VP8_PAYLOAD_TYPE: u8 = 96;
const OPUS_PAYLOAD_TYPE: u8 = 111;
/// How often a participant's ICE agent checks that its peer still answers (consent checks on the
/// selected pair, RFC 7675), and how long a silence takes to make the connection `Disconnected`
/// and `Failed` (spec §2.4.6, "Media reconnection": the client then renegotiates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IceLiveness {
    /// Time between two consent checks.
    pub keepalive: Duration,
    /// Silence after which the connection is `Disconnected`.
    pub disconnected: Duration,
    /// Silence after which it is `Failed`.
    pub failed: Duration,
}

impl IceLiveness {
    /// Other timings: a consent check every `keepalive`, `Disconnected` after `disconnected` of
    /// silence, `Failed` after `failed`. `None` unless `0 < keepalive < disconnected < failed`
    /// (a connection would be `Disconnected` between two checks of a peer that answers them all).
    pub fn new(keepalive: Duration, disconnected: Duration, failed: Duration) -> Option<Self> {
        (!keepalive.is_zero() && keepalive < disconnected && disconnected < failed).then_some(Self {
            keepalive,
            disconnected,
            failed,
        })
    }

    /// A check every 500 ms, `Disconnected` after 1.5 s of silence, `Failed` after 5 s: a
    /// media node that dies is noticed within two seconds (the failover tests and benchmarks
    /// count on it). The default. (The webrtc crate's own: 2 s, 5 s and 25 s.)
    pub const FAST: Self = Self {
        keepalive: Duration::from_millis(500),
        disconnected: Duration::from_millis(1500),
        failed: Duration::from_secs(5),
    };

    /// A browser's pace on a connection that works: Chrome checks a stable selected pair every
    /// 2.5 s (libwebrtc's `STABLE_WRITABLE_CONNECTION_PING_INTERVAL`), a fifth of the
    /// [`FAST`](Self::FAST) checks. `Disconnected` after three missed checks (7.5 s), `Failed`
    /// after 25 s. For load generators whose peers should see the consent traffic of browsers.
    pub const BROWSER: Self = Self {
        keepalive: Duration::from_millis(2500),
        disconnected: Duration::from_millis(7500),
        failed: Duration::from_secs(25),
    };
}

impl Default for IceLiveness {
    fn default() -> Self {
        Self::FAST
    }
}

/// Where and how a participant's peer connections do ICE.
#[derive(Debug)]
pub(crate) struct IceSetup {
    /// The local addresses they bind.
    pub(crate) udp_addrs: Vec<SocketAddr>,
    /// Their consent checks and timeouts.
    pub(crate) liveness: IceLiveness,
}

/// ICE checks every 10 ms while connecting (the crate's default is 200 ms), over the crate's
/// default 1.4 s per candidate pair: a bot joins as fast as its first working check. The node
/// gives one host candidate per address, so a bot has a pair or two to check: the pace costs a
/// few more STUN requests per join, no more. (This tick also used to pace the DTLS handshake's
/// start, sent at the connection's next timer; the vendored crate now sends a DTLS client's
/// first flight as soon as ICE connects, see `vendor/webrtc/OPENVIDU-PATCH.md`.)
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(10);
const ICE_MAX_BINDING_REQUESTS: u16 = 140;
/// Nominate the first working pair at once, as a browser does. The crate waits 1 s after the
/// agent's start before nominating a pair with a peer-reflexive remote candidate, which is
/// what the node's candidate becomes when its check arrives before its trickled candidate:
/// joins in a crowd waited a whole second for it.
const ICE_REFLEXIVE_NOMINATION_WAIT: Duration = Duration::ZERO;
/// Ids of endpoints, unique in the process.
static NEXT_ENDPOINT_ID: AtomicU64 = AtomicU64::new(1);
/// The DTLS certificate of every peer connection of the process, made on first use.
static DTLS_CERTIFICATE: OnceLock<RTCCertificate> = OnceLock::new();

/// The process's DTLS certificate: ECDSA P-256, self-signed, as the webrtc crate would make for
/// each peer connection. One for all, as the media node has one per engine: the peer checks it
/// against the fingerprint of the SDP it got, and each handshake's keys are ephemeral (ECDHE)
/// whatever the certificate. A key and a signature per peer connection were 2.6% of the bots'
/// CPU in a storm of joins.
fn dtls_certificate() -> Result<RTCCertificate, ParticipantError> {
    if let Some(certificate) = DTLS_CERTIFICATE.get() {
        return Ok(certificate.clone());
    }
    let provider = crypto::default_provider().map_err(ParticipantError::webrtc)?;
    let params =
        CertificateParams::new(vec!["openvidu-rs-participant".to_owned()]).map_err(ParticipantError::webrtc)?;
    let certificate = RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
        .map_err(ParticipantError::webrtc)?;
    // Two first connections at once may both make one; the first stored is everyone's from then on.
    Ok(DTLS_CERTIFICATE.get_or_init(|| certificate).clone())
}

/// What a peer connection is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// This participant's stream: VP8 and Opus only.
    Send,
    /// A subscription: every codec the webrtc crate knows (nothing is decoded).
    Receive,
}

/// Counters of one subscription's tracks.
#[derive(Debug)]
pub(crate) struct ReceiveStats {
    audio: Mutex<TrackCounter>,
    video: Mutex<TrackCounter>,
    /// When the subscription's packets reached its socket.
    arrivals: Arc<Arrivals>,
}

impl ReceiveStats {
    pub(crate) fn new() -> Self {
        Self {
            audio: Mutex::new(TrackCounter::new(Kind::Audio)),
            video: Mutex::new(TrackCounter::new(Kind::Video)),
            arrivals: Arc::default(),
        }
    }

    pub(crate) fn counter(&self, kind: Kind) -> &Mutex<TrackCounter> {
        match kind {
            Kind::Audio => &self.audio,
            Kind::Video => &self.video,
        }
    }

    pub(crate) fn snapshot(&self, mut into: StreamStats) -> StreamStats {
        into.audio = lock(&self.audio).snapshot();
        into.video = lock(&self.video).snapshot();
        into
    }

    pub(crate) fn reset(&self) {
        lock(&self.audio).reset();
        lock(&self.video).reset();
    }
}

#[derive(Default)]
struct CandidateState {
    /// Local candidates are held until the server knows the endpoint (its answer arrived).
    released: bool,
    held: Vec<String>,
    mid: Option<String>,
    /// The local description's ICE ufrag, written into each candidate sent (as Chrome does),
    /// so that the server can tell this peer connection's candidates from a replaced one's.
    ufrag: Option<String>,
    remote_set: bool,
    pending_remote: Vec<RemoteCandidate>,
}

/// What the event handler of a peer connection and its owner share.
pub(crate) struct EndpointShared {
    /// Unique in the process: tells endpoints apart after a reconnection replaced one.
    id: u64,
    /// The `endpointName` of this endpoint's `onIceCandidate` requests.
    name: String,
    rpc: Rpc,
    candidates: Mutex<CandidateState>,
    connected: AtomicBool,
    /// When the peer connection first reported `Connected`.
    connected_at: OnceLock<Instant>,
    /// The last peer connection state, for the watchers of [`Endpoint::state_changes`].
    state: watch::Sender<RTCPeerConnectionState>,
    stats: Option<Arc<ReceiveStats>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl EndpointShared {
    fn local_candidate(&self, candidate: String) {
        let mut state = lock(&self.candidates);
        if state.released {
            let (mid, candidate) = (state.mid.clone(), with_ufrag(candidate, state.ufrag.as_deref()));
            drop(state);
            self.send_candidate(candidate, mid);
        } else {
            state.held.push(candidate);
        }
    }

    fn send_candidate(&self, candidate: String, sdp_mid: Option<String>) {
        let rpc = self.rpc.clone();
        let params =
            OnIceCandidateParams { endpoint_name: self.name.clone(), candidate, sdp_mid, sdp_m_line_index: Some(0) };
        tokio::spawn(async move {
            if let Err(e) = rpc.call_with("onIceCandidate", &params).await {
                tracing::debug!(endpoint = %params.endpoint_name, error = %e, "onIceCandidate refused");
            }
        });
    }

    fn add_task(&self, task: AbortHandle) {
        lock(&self.tasks).push(task);
    }
}

struct Handler {
    shared: Arc<EndpointShared>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if event.candidate.address.is_empty() {
            return; // end of gathering
        }
        match event.candidate.to_json() {
            Ok(init) => self.shared.local_candidate(init.candidate),
            Err(e) => tracing::debug!(error = %e, "unusable local ICE candidate"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(endpoint = %self.shared.name, %state, "peer connection state");
        if state == RTCPeerConnectionState::Connected {
            let _ = self.shared.connected_at.set(Instant::now());
        }
        self.shared.connected.store(state == RTCPeerConnectionState::Connected, Ordering::Release);
        self.shared.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(stats) = self.shared.stats.clone() else { return };
        let kind = match track.kind().await {
            RtpCodecKind::Audio => Kind::Audio,
            RtpCodecKind::Video => Kind::Video,
            _ => return,
        };
        let task = tokio::spawn(async move {
            let mut first = true;
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(packet) => {
                        let h = &packet.header;
                        let mut counter = lock(stats.counter(kind));
                        if std::mem::take(&mut first) {
                            // A new track (e.g. after a media reconnection) numbers its packets
                            // afresh: the totals go on, the sequence tracking restarts.
                            counter.restart_sequence();
                        }
                        let arrived = stats.arrivals.arrived(h.ssrc, h.sequence_number);
                        counter.on_packet(
                            h.sequence_number,
                            h.marker,
                            &packet.payload,
                            (Instant::now(), synthetic::now_micros()),
                            arrived,
                        );
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
        self.shared.add_task(task.abort_handle());
    }
}

struct EndpointInner {
    shared: Arc<EndpointShared>,
    pc: Arc<dyn PeerConnection>,
    closed: AtomicBool,
}

impl Drop for EndpointInner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            for task in lock(&self.shared.tasks).drain(..) {
                task.abort();
            }
            let pc = self.pc.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = pc.close().await;
                });
            }
        }
    }
}

/// One peer connection and its candidate bookkeeping; cheap to clone, closed when the last clone
/// drops.
#[derive(Clone)]
pub(crate) struct Endpoint {
    inner: Arc<EndpointInner>,
}

fn codec(
    mime: &str,
    clock_rate: u32,
    channels: u16,
    fmtp: &str,
    pt: u8,
    feedback: &[(&str, &str)],
) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: feedback
                .iter()
                .map(|(typ, parameter)| RTCPFeedback { typ: (*typ).to_owned(), parameter: (*parameter).to_owned() })
                .collect(),
        },
        payload_type: pt,
    }
}

fn vp8() -> RTCRtpCodecParameters {
    let feedback = [("goog-remb", ""), ("ccm", "fir"), ("nack", ""), ("nack", "pli")];
    codec(MIME_TYPE_VP8, 90_000, 0, "", VP8_PAYLOAD_TYPE, &feedback)
}

fn opus() -> RTCRtpCodecParameters {
    codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1", OPUS_PAYLOAD_TYPE, &[])
}

/// `candidate` with a `ufrag` extension naming `ufrag`, unless it has one or `ufrag` is
/// unknown.
pub(crate) fn with_ufrag(candidate: String, ufrag: Option<&str>) -> String {
    match ufrag {
        Some(ufrag) if candidate_ufrag(&candidate).is_none() => format!("{candidate} ufrag {ufrag}"),
        _ => candidate,
    }
}

/// The `a=mid` of the first m-section of `sdp`.
pub(crate) fn first_mid(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=mid:")).map(str::to_owned)
}

impl Endpoint {
    /// A new peer connection whose local candidates are sent as `onIceCandidate{endpointName:
    /// name}`; `stats` counts the received tracks of a subscription.
    pub(crate) async fn new(
        name: String,
        rpc: Rpc,
        ice: &IceSetup,
        direction: Direction,
        stats: Option<Arc<ReceiveStats>>,
    ) -> Result<Self, ParticipantError> {
        let mut media_engine = MediaEngine::default();
        match direction {
            Direction::Send => {
                media_engine.register_codec(opus(), RtpCodecKind::Audio).map_err(ParticipantError::webrtc)?;
                media_engine.register_codec(vp8(), RtpCodecKind::Video).map_err(ParticipantError::webrtc)?;
            }
            Direction::Receive => media_engine.register_default_codecs().map_err(ParticipantError::webrtc)?,
        }
        let mut registry =
            register_default_interceptors(Registry::new(), &mut media_engine).map_err(ParticipantError::webrtc)?;
        if direction == Direction::Send {
            // Keyframe requests must reach the sources (`keyframe_requests`).
            registry = registry.with(rtc::interceptor::Slot::from(14_000), KeyframeRequestsToApplication::default());
        }
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_ice_timeouts(Some(ice.liveness.disconnected), Some(ice.liveness.failed), Some(ice.liveness.keepalive))
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(ICE_MAX_BINDING_REQUESTS))
            .with_prflx_acceptance_min_wait(Some(ICE_REFLEXIVE_NOMINATION_WAIT))
            .with_srflx_acceptance_min_wait(Some(ICE_REFLEXIVE_NOMINATION_WAIT))
            .build();
        let shared = Arc::new(EndpointShared {
            id: NEXT_ENDPOINT_ID.fetch_add(1, Ordering::Relaxed),
            name,
            rpc,
            candidates: Mutex::default(),
            connected: AtomicBool::new(false),
            connected_at: OnceLock::new(),
            state: watch::Sender::new(RTCPeerConnectionState::New),
            stats,
            tasks: Mutex::new(Vec::new()),
        });
        let handler = Arc::new(Handler { shared: shared.clone() });
        let mut builder = PeerConnectionBuilder::new();
        if let Some(stats) = &shared.stats {
            // A subscription's socket records when its packets arrive (`arrival`).
            builder = builder.with_runtime(Arc::new(ArrivalRuntime::new(stats.arrivals.clone())));
        }
        let pc = builder
            .with_configuration(RTCConfigurationBuilder::new().with_certificates(vec![dtls_certificate()?]).build())
            .with_media_engine(media_engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(ice.udp_addrs.clone())
            .build()
            .await
            .map_err(ParticipantError::webrtc)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        Ok(Self { inner: Arc::new(EndpointInner { shared, pc, closed: AtomicBool::new(false) }) })
    }

    pub(crate) fn pc(&self) -> &dyn PeerConnection {
        self.inner.pc.as_ref()
    }

    pub(crate) fn same(&self, other: &Endpoint) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.inner.shared.connected.load(Ordering::Acquire)
    }

    /// When the peer connection first reported `Connected`, if it has.
    pub(crate) fn connected_at(&self) -> Option<Instant> {
        self.inner.shared.connected_at.get().copied()
    }

    /// Unique in the process.
    pub(crate) fn id(&self) -> u64 {
        self.inner.shared.id
    }

    /// The peer connection's state and its changes; the sender goes away with the peer
    /// connection (holding the receiver does not keep the endpoint open).
    pub(crate) fn state_changes(&self) -> watch::Receiver<RTCPeerConnectionState> {
        self.inner.shared.state.subscribe()
    }

    /// Runs `task` until the endpoint closes.
    pub(crate) fn add_task(&self, task: AbortHandle) {
        self.inner.shared.add_task(task);
    }

    /// A remote candidate from the server, applied now or once the remote description is set.
    pub(crate) async fn add_remote_candidate(&self, candidate: RemoteCandidate) {
        if candidate.candidate.trim().trim_start_matches("candidate:").is_empty() {
            return; // end of candidates
        }
        {
            let mut state = lock(&self.inner.shared.candidates);
            if !state.remote_set {
                if state.pending_remote.len() < MAX_QUEUED_CANDIDATES {
                    state.pending_remote.push(candidate);
                }
                return;
            }
        }
        self.apply_remote(candidate).await;
    }

    async fn apply_remote(&self, c: RemoteCandidate) {
        let init = RTCIceCandidateInit {
            candidate: c.candidate,
            sdp_mid: c.sdp_mid,
            sdp_mline_index: c.sdp_m_line_index,
            username_fragment: None,
            url: None,
        };
        if let Err(e) = self.inner.pc.add_ice_candidate(init).await {
            tracing::debug!(endpoint = %self.inner.shared.name, error = %e, "remote ICE candidate rejected");
        }
    }

    /// Sets the remote description and applies the candidates that waited for it.
    pub(crate) async fn set_remote(&self, desc: RTCSessionDescription) -> Result<(), ParticipantError> {
        self.inner.pc.set_remote_description(desc).await.map_err(ParticipantError::webrtc)?;
        let pending = {
            let mut state = lock(&self.inner.shared.candidates);
            state.remote_set = true;
            std::mem::take(&mut state.pending_remote)
        };
        for c in pending {
            self.apply_remote(c).await;
        }
        Ok(())
    }

    /// The server knows the endpoint now: trickle the held local candidates and the next ones,
    /// with the first m-section of `local_sdp` as their `sdpMid`.
    pub(crate) fn release_candidates(&self, local_sdp: &str) {
        let (held, mid, ufrag) = {
            let mut state = lock(&self.inner.shared.candidates);
            state.released = true;
            state.mid = first_mid(local_sdp);
            state.ufrag = sdp_ice_ufrag(local_sdp).map(str::to_owned);
            (std::mem::take(&mut state.held), state.mid.clone(), state.ufrag.clone())
        };
        for c in held {
            self.inner.shared.send_candidate(with_ufrag(c, ufrag.as_deref()), mid.clone());
        }
    }

    /// Closes the peer connection and stops its tasks. Idempotent.
    pub(crate) async fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for task in lock(&self.inner.shared.tasks).drain(..) {
            task.abort();
        }
        if let Err(e) = self.inner.pc.close().await {
            tracing::debug!(endpoint = %self.inner.shared.name, error = %e, "closing a peer connection");
        }
    }
}

/// A track this participant sends and the sender that carries it.
pub(crate) enum SendTrack {
    /// Synthetic packets written as RTP.
    Rtp { track: Arc<TrackLocalStaticRTP>, sender: Arc<dyn RtpSender>, ssrc: u32 },
    /// Frames packetized by the track.
    Sample { track: Arc<TrackLocalStaticSample>, sender: Arc<dyn RtpSender>, ssrc: u32 },
}

impl SendTrack {
    fn sender(&self) -> &Arc<dyn RtpSender> {
        match self {
            Self::Rtp { sender, .. } | Self::Sample { sender, .. } => sender,
        }
    }
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(synthetic::now_micros());
    h.finish() as u32
}

/// Adds a send-only transceiver with a local track of `kind` to `pc`.
pub(crate) async fn add_send_track(
    pc: &dyn PeerConnection,
    kind: RtpCodecKind,
    stream_label: &str,
    packetized: bool,
) -> Result<SendTrack, ParticipantError> {
    let ssrc = random_u32() | 1;
    let (name, codec) = match kind {
        RtpCodecKind::Audio => ("audio", opus()),
        _ => ("video", vp8()),
    };
    let track = MediaStreamTrack::new(
        stream_label.to_owned(),
        format!("{stream_label}_{name}"),
        format!("{stream_label}_{name}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec: codec.rtp_codec.clone(),
            ..Default::default()
        }],
    );
    let init = || Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Sendonly, ..Default::default() });
    enum Concrete {
        Rtp(Arc<TrackLocalStaticRTP>),
        Sample(Arc<TrackLocalStaticSample>),
    }
    let (local, concrete): (Arc<dyn TrackLocal>, Concrete) = if packetized {
        let t = Arc::new(TrackLocalStaticSample::new(Instant::now(), track).map_err(ParticipantError::webrtc)?);
        (t.clone(), Concrete::Sample(t))
    } else {
        let t = Arc::new(TrackLocalStaticRTP::new(track));
        (t.clone(), Concrete::Rtp(t))
    };
    let transceiver = pc.add_transceiver_from_track(local, init()).await.map_err(ParticipantError::webrtc)?;
    let sender = transceiver
        .sender()
        .await
        .map_err(ParticipantError::webrtc)?
        .ok_or_else(|| ParticipantError::WebRtc("a send transceiver without a sender".into()))?;
    Ok(match concrete {
        Concrete::Sample(track) => SendTrack::Sample { track, sender, ssrc },
        Concrete::Rtp(track) => SendTrack::Rtp { track, sender, ssrc },
    })
}

/// The payload type negotiated for a sender's codec.
async fn payload_type(sender: &Arc<dyn RtpSender>) -> Result<u8, ParticipantError> {
    sender
        .get_parameters()
        .await
        .map_err(ParticipantError::webrtc)?
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
        .ok_or_else(|| ParticipantError::WebRtc("the sender has no negotiated codec".into()))
}

/// Starts feeding the tracks of a negotiated publisher from `source`; `files` holds what
/// [`files::load`](super::files::load) read for it (the IVF and Ogg files' contents). Tracks
/// added packetized play the files, the others synthetic media.
pub(crate) async fn start_sending(
    endpoint: &Endpoint,
    audio: Option<SendTrack>,
    video: Option<SendTrack>,
    source: &MediaSource,
    files: LoadedMedia,
) -> Result<(), ParticipantError> {
    if let Some(track) = audio {
        let pt = payload_type(track.sender()).await?;
        match (track, files.audio) {
            (SendTrack::Sample { track, ssrc, .. }, Some(ogg)) => {
                endpoint.add_task(tokio::spawn(ogg_audio(track, ssrc, pt, ogg.packets)).abort_handle());
            }
            (SendTrack::Rtp { track, ssrc, .. }, None) => {
                endpoint.add_task(tokio::spawn(synthetic_audio(track, ssrc, pt)).abort_handle());
            }
            _ => return Err(ParticipantError::MediaSource("no source for the audio track".into())),
        }
    }
    if let Some(track) = video {
        let pt = payload_type(track.sender()).await?;
        match (track, source, files.video.map(|(data, _)| data)) {
            (SendTrack::Sample { track, ssrc, .. }, _, Some(data)) => {
                endpoint.add_task(tokio::spawn(ivf_video(track, ssrc, pt, data)).abort_handle());
            }
            (SendTrack::Rtp { track, ssrc, .. }, MediaSource::Synthetic { fps, packet_size }, _) => {
                endpoint.add_task(tokio::spawn(synthetic_video(track, ssrc, pt, *fps, *packet_size)).abort_handle());
            }
            _ => return Err(ParticipantError::MediaSource("no source for the video track".into())),
        }
    }
    Ok(())
}

fn rtp_packet(pt: u8, seq: u16, timestamp: u32, ssrc: u32, marker: bool, payload: Vec<u8>) -> rtp::Packet {
    rtp::Packet {
        header: rtp::Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(period.max(Duration::from_millis(1)));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    t
}

/// Watches a local track's RTCP for keyframe requests (PLI or FIR): the flag is raised at each
/// one (the source lowers it when it sends a keyframe). The watch stops with the guard.
fn keyframe_requests<T>(track: Arc<T>) -> (Arc<AtomicBool>, TaskGuard)
where
    T: webrtc::media_stream::track_local::TrackLocal + Send + Sync + 'static,
{
    let wanted = Arc::new(AtomicBool::new(false));
    let flag = wanted.clone();
    let watcher = tokio::spawn(async move {
        use webrtc::media_stream::track_local::TrackLocalEvent;
        while let Some(event) = track.poll().await {
            let TrackLocalEvent::OnRtcpPacket(packets) = event else { continue };
            if packets.iter().any(|p| is_keyframe_request(p.as_ref())) {
                flag.store(true, Ordering::Relaxed);
            }
        }
    });
    (wanted, TaskGuard(watcher.abort_handle()))
}

/// Synthetic VP8: one packet per frame at `fps`; keyframes for the first two seconds (while the
/// connection comes up), then one every second and one at once for each keyframe request (PLI
/// or FIR from the SFU, as a browser's encoder answers).
async fn synthetic_video(track: Arc<TrackLocalStaticRTP>, ssrc: u32, pt: u8, fps: u32, packet_size: usize) {
    let fps = fps.clamp(1, 1000);
    let (wanted, _watcher) = keyframe_requests(track.clone());
    let mut tick = ticker(Duration::from_secs(1) / fps);
    let (mut seq, mut ts) = (random_u32() as u16, random_u32());
    let step = 90_000 / fps;
    for frame in 0u64.. {
        tick.tick().await;
        let requested = wanted.swap(false, Ordering::Relaxed);
        let keyframe = requested || frame < 2 * u64::from(fps) || frame % u64::from(fps) == 0;
        let payload = synthetic::vp8_payload(true, keyframe, packet_size, synthetic::now_micros());
        // Errors before the connection is up (track not bound yet) are expected: drop the packet.
        let _ = track.write_rtp(rtp_packet(pt, seq, ts, ssrc, true, payload)).await;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(step);
    }
}

/// Synthetic Opus: 20 ms packets.
async fn synthetic_audio(track: Arc<TrackLocalStaticRTP>, ssrc: u32, pt: u8) {
    let mut tick = ticker(Duration::from_secs(1) / synthetic::AUDIO_PACKETS_PER_SECOND);
    let (mut seq, mut ts) = (random_u32() as u16, random_u32());
    let step = 48_000 / synthetic::AUDIO_PACKETS_PER_SECOND;
    let mut first = true;
    loop {
        tick.tick().await;
        let payload = synthetic::opus_payload(synthetic::AUDIO_PAYLOAD, synthetic::now_micros());
        let _ = track.write_rtp(rtp_packet(pt, seq, ts, ssrc, first, payload)).await;
        first = false;
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(step);
    }
}

/// What [`check_ivf`] learnt about an IVF file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IvfInfo {
    pub(crate) period: Duration,
    pub(crate) width: u16,
    pub(crate) height: u16,
}

/// Checks that `data` is an IVF file of VP8 frames.
pub(crate) fn check_ivf(data: &Bytes) -> Result<IvfInfo, ParticipantError> {
    let (mut reader, header) =
        IVFReader::new(Cursor::new(data.clone())).map_err(|e| ParticipantError::MediaSource(format!("IVF: {e}")))?;
    if &header.four_cc != b"VP80" {
        return Err(ParticipantError::MediaSource(format!(
            "IVF codec {:?} is not VP8",
            String::from_utf8_lossy(&header.four_cc)
        )));
    }
    reader.parse_next_frame().map_err(|e| ParticipantError::MediaSource(format!("IVF has no frame: {e}")))?;
    let (num, den) = (u64::from(header.timebase_numerator), u64::from(header.timebase_denominator));
    let period =
        if num == 0 || den == 0 { Duration::from_millis(33) } else { Duration::from_micros(1_000_000 * num / den) };
    let period = period.clamp(Duration::from_millis(5), Duration::from_secs(1));
    Ok(IvfInfo { period, width: header.width, height: header.height })
}

/// Whether a VP8 frame is a keyframe (the P bit of its frame tag is 0).
fn vp8_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// Aborts a task when dropped.
struct TaskGuard(AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Real VP8 frames from an IVF file, paced by its timebase, looping at the end. A keyframe
/// request (PLI or FIR) from the SFU makes it jump to the file's next keyframe at once, as a
/// browser's encoder answers with a keyframe, so recordings and new subscribers start fast.
async fn ivf_video(track: Arc<TrackLocalStaticSample>, ssrc: u32, pt: u8, data: Bytes) {
    let Ok(IvfInfo { period, .. }) = check_ivf(&data) else { return };
    let Ok((mut reader, _)) = IVFReader::new(Cursor::new(data)) else { return };
    let mut frames = Vec::new();
    while let Ok((frame, _)) = reader.parse_next_frame() {
        frames.push(frame.freeze());
    }
    if frames.is_empty() {
        return;
    }
    let (wanted, _watcher) = keyframe_requests(track.clone());
    let mut tick = ticker(period);
    let mut i = 0;
    loop {
        tick.tick().await;
        if wanted.swap(false, Ordering::Relaxed)
            && let Some(k) = (0..frames.len()).map(|n| (i + n) % frames.len()).find(|&n| vp8_keyframe(&frames[n]))
        {
            i = k;
        }
        let sample = Sample { data: frames[i].clone(), duration: period, ..Sample::new(Instant::now()) };
        let _ = track.sample_writer(ssrc, pt).write_sample(&sample).await;
        i = (i + 1) % frames.len();
    }
}

/// How far a file's audio may fall behind its schedule (a stalled task) before the schedule
/// restarts from now instead of catching up in a burst.
const MAX_AUDIO_LAG: Duration = Duration::from_millis(200);

/// Real Opus packets from an Ogg file, each sent when the previous one's duration elapsed
/// (the packetizer advances the RTP timestamp by the same duration), looping at the end.
async fn ogg_audio(track: Arc<TrackLocalStaticSample>, ssrc: u32, pt: u8, packets: Arc<[OpusPacket]>) {
    if packets.is_empty() {
        return;
    }
    let mut next = tokio::time::Instant::now();
    loop {
        for packet in packets.iter() {
            tokio::time::sleep_until(next).await;
            let sample = Sample { data: packet.data.clone(), duration: packet.duration, ..Sample::new(Instant::now()) };
            // Errors before the connection is up (track not bound yet) are expected: drop it.
            let _ = track.sample_writer(ssrc, pt).write_sample(&sample).await;
            next += packet.duration;
            let now = tokio::time::Instant::now();
            if now > next + MAX_AUDIO_LAG {
                tracing::debug!(lag = ?(now - next), "Ogg audio fell behind; rescheduling from now");
                next = now;
            }
        }
    }
}

/// Adds the receive-only transceivers of a client-offered subscription.
pub(crate) async fn add_receive_transceivers(
    pc: &dyn PeerConnection,
    audio: bool,
    video: bool,
) -> Result<(), ParticipantError> {
    for (wanted, kind) in [(audio, RtpCodecKind::Audio), (video, RtpCodecKind::Video)] {
        if wanted {
            let init = RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() };
            pc.add_transceiver_from_kind(kind, Some(init)).await.map_err(ParticipantError::webrtc)?;
        }
    }
    Ok(())
}

//! Test peers shared by openvidu-media's and openvidu-media-node's integration tests: real
//! webrtc 0.21 peer connections over loopback, playing the browser's part (openvidu-media-node
//! includes this file with `#[path]`).
#![allow(unused_imports, dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openvidu_core::id::{ConnectionId, SessionId, StreamId};
use openvidu_media::{EndpointId, IceCandidate, LocalMediaNode, MediaConfig, MediaEvent, MediaNode, PublishOptions};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription, Registry,
    SettingEngineBuilder, register_default_interceptors,
};

/// The longest any wait in these tests may take; reaching it fails the test.
pub const DEADLINE: Duration = Duration::from_secs(15);

pub const VIDEO_SSRC: u32 = 0x1111_0001;
pub const AUDIO_SSRC: u32 = 0x2222_0002;

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

pub fn session(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}
pub fn stream(s: &str) -> StreamId {
    StreamId::parse(s).unwrap()
}
pub fn connection(s: &str) -> ConnectionId {
    ConnectionId::parse(s).unwrap()
}

/// Polls `cond` until it holds; panics with `what` after [`DEADLINE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The payload the test publisher sends in packet `seq` of `kind`: a VP8 payload descriptor (S
/// bit, partition 0) or an Opus TOC byte, then bytes derived from `seq`.
pub fn payload(kind: RtpCodecKind, seq: u16) -> Bytes {
    let mut p = Vec::with_capacity(120);
    match kind {
        RtpCodecKind::Video => {
            p.push(0x10); // VP8 payload descriptor: S=1, PID=0
            // VP8 payload header: keyframe every 30 packets (P bit 0), else interframe.
            p.push(if seq.is_multiple_of(30) { 0x00 } else { 0x01 });
        }
        _ => p.push(0xFC), // Opus TOC: CELT fullband 20 ms, one frame
    }
    let [hi, lo] = seq.to_be_bytes();
    p.extend_from_slice(&[hi, lo]);
    p.extend((0..100u16).map(|i| (i as u8).wrapping_mul(hi ^ lo).wrapping_add(lo)));
    Bytes::from(p)
}

pub(crate) fn vp8() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: ["goog-remb:", "ccm:fir", "nack:", "nack:pli"]
                .iter()
                .map(|f| {
                    let (typ, parameter) = f.split_once(':').unwrap();
                    RTCPFeedback { typ: typ.into(), parameter: parameter.into() }
                })
                .collect(),
        },
        payload_type: 96,
    }
}

pub(crate) fn opus() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// An interceptor that shows each inbound packet to `on_read` (which may change it, or drop it
/// by returning false) and passes everything else on.
struct ReadTap<F> {
    on_read: F,
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl<F: FnMut(&mut TaggedPacket) -> bool> ReadTap<F> {
    fn new(on_read: F) -> Self {
        Self { on_read, read: VecDeque::new(), write: VecDeque::new() }
    }
}

impl<F: FnMut(&mut TaggedPacket) -> bool> rtc::sansio::Protocol<TaggedPacket, TaggedPacket, ()> for ReadTap<F> {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if (self.on_read)(&mut msg) {
            self.read.push_back(msg);
        }
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl<F: FnMut(&mut TaggedPacket) -> bool + Send + Sync> Interceptor for ReadTap<F> {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Marks inbound PLI and REMB for the application (other RTCP stops at the end of the chain).
fn mark_pli_and_remb(msg: &mut TaggedPacket) -> bool {
    let Packet::Rtcp(packets) = &msg.message.packet else { return true };
    let wanted: Vec<Box<dyn rtc::rtcp::Packet>> = packets
        .iter()
        .filter(|p| p.as_any().is::<PictureLossIndication>() || p.as_any().is::<ReceiverEstimatedMaximumBitrate>())
        .cloned()
        .collect();
    if wanted.is_empty() {
        return false;
    }
    msg.message.packet = Packet::Rtcp(wanted);
    msg.message.add(Attribute::DeliverToApplication);
    true
}

/// What a test peer saw inbound, closest to the wire of its interceptors.
#[derive(Default)]
pub struct Wire {
    /// RTCP sender reports: (SSRC, packet count, RTP time), in order.
    pub sender_reports: Mutex<Vec<(u32, u32, u32)>>,
    /// The (SSRC, sequence number) pairs that NACKs asked for, in order.
    pub nacked: Mutex<Vec<(u32, u16)>>,
}

impl Wire {
    fn record(&self, msg: &mut TaggedPacket) -> bool {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for sr in packets.iter().filter_map(|p| p.as_any().downcast_ref::<SenderReport>()) {
                self.sender_reports.lock().unwrap().push((sr.ssrc, sr.packet_count, sr.rtp_time));
            }
            for nack in packets.iter().filter_map(|p| p.as_any().downcast_ref::<TransportLayerNack>()) {
                let asked = nack.nacks.iter().flat_map(|pair| pair.packet_list()).map(|seq| (nack.media_ssrc, seq));
                self.nacked.lock().unwrap().extend(asked);
            }
        }
        true
    }
}

/// What a test peer received on one remote track.
#[derive(Default)]
pub struct TrackStats {
    pub packets: AtomicU64,
    /// Video packets that start a keyframe (see [`payload`]).
    pub keyframes: AtomicU64,
    /// Packets whose payload differs from [`payload`] for their sequence number.
    pub corrupt: AtomicU64,
    pub payload_type: AtomicU32,
}

#[derive(Default)]
struct ClientState {
    remote_set: bool,
    pending: Vec<IceCandidate>,
}

/// A browser stand-in: one webrtc peer connection with its event log.
pub struct ClientPeer {
    pub pc: Arc<dyn PeerConnection>,
    state: Mutex<ClientState>,
    pub connected: AtomicBool,
    pub audio: Arc<TrackStats>,
    pub video: Arc<TrackStats>,
    remote_video: Mutex<Option<(Arc<dyn TrackRemote>, u32)>>,
    /// Local candidates, in gathering order (all of them, also those already sent).
    pub local_candidates: Mutex<Vec<IceCandidate>>,
    /// What crossed the wire inbound, and the loss the test asks for.
    pub wire: Arc<Wire>,
}

struct ClientHandler {
    peer: std::sync::OnceLock<std::sync::Weak<ClientPeer>>,
    candidates: mpsc::UnboundedSender<IceCandidate>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if event.candidate.address.is_empty() {
            return;
        }
        if let Ok(init) = event.candidate.to_json() {
            let candidate = IceCandidate::new(init.candidate, Some("0".into()), Some(0));
            if let Some(peer) = self.peer.get().and_then(|w| w.upgrade()) {
                peer.local_candidates.lock().unwrap().push(candidate.clone());
            }
            let _ = self.candidates.send(candidate);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if let Some(peer) = self.peer.get().and_then(|w| w.upgrade()) {
            peer.connected.store(state == RTCPeerConnectionState::Connected, Ordering::SeqCst);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(peer) = self.peer.get().and_then(|w| w.upgrade()) else {
            return;
        };
        let kind = track.kind().await;
        let ssrc = track.ssrcs().await.first().copied().unwrap_or_default();
        let stats = if kind == RtpCodecKind::Video {
            *peer.remote_video.lock().unwrap() = Some((track.clone(), ssrc));
            peer.video.clone()
        } else {
            peer.audio.clone()
        };
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(p) = event {
                    if p.payload != payload(kind, p.header.sequence_number) {
                        stats.corrupt.fetch_add(1, Ordering::SeqCst);
                    }
                    stats.payload_type.store(p.header.payload_type.into(), Ordering::SeqCst);
                    if kind == RtpCodecKind::Video && p.payload.get(1).is_some_and(|b| b & 0x01 == 0) {
                        stats.keyframes.fetch_add(1, Ordering::SeqCst);
                    }
                    stats.packets.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
}

impl ClientPeer {
    /// Builds a peer; its local candidates come out of the returned receiver.
    pub async fn new(with_pli_marker: bool) -> (Arc<Self>, mpsc::UnboundedReceiver<IceCandidate>) {
        let mut media_engine = MediaEngine::default();
        media_engine.register_codec(vp8(), RtpCodecKind::Video).unwrap();
        media_engine.register_codec(opus(), RtpCodecKind::Audio).unwrap();
        let mut registry = register_default_interceptors(Registry::new(), &mut media_engine).unwrap();
        if with_pli_marker {
            registry = registry.with(Slot::from(14_000), ReadTap::new(mark_pli_and_remb));
        }
        let wire = Arc::new(Wire::default());
        let tap = wire.clone();
        registry = registry.with(Slot::from(500), ReadTap::new(move |msg: &mut TaggedPacket| tap.record(msg)));
        let (tx, rx) = mpsc::unbounded_channel();
        let handler = Arc::new(ClientHandler { peer: std::sync::OnceLock::new(), candidates: tx });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(
                SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build(),
            )
            .with_handler(handler.clone())
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .unwrap();
        let peer = Arc::new(Self {
            pc: Arc::new(pc),
            state: Mutex::default(),
            connected: AtomicBool::new(false),
            audio: Arc::default(),
            video: Arc::default(),
            remote_video: Mutex::new(None),
            local_candidates: Mutex::new(Vec::new()),
            wire,
        });
        let _ = handler.peer.set(Arc::downgrade(&peer));
        (peer, rx)
    }

    /// A candidate from the node: added now or once the remote description is set.
    pub async fn add_node_candidate(&self, candidate: IceCandidate) {
        {
            let mut state = self.state.lock().unwrap();
            if !state.remote_set {
                state.pending.push(candidate);
                return;
            }
        }
        self.apply(candidate).await;
    }

    async fn apply(&self, c: IceCandidate) {
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_m_line_index,
                username_fragment: None,
                url: None,
            })
            .await
            .expect("node candidates are valid");
    }

    /// Applies the node's SDP and the candidates that waited for it.
    pub async fn set_remote(&self, desc: RTCSessionDescription) {
        self.pc.set_remote_description(desc).await.unwrap();
        let pending = {
            let mut state = self.state.lock().unwrap();
            state.remote_set = true;
            std::mem::take(&mut state.pending)
        };
        for c in pending {
            self.apply(c).await;
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Sends a PLI for the received video track.
    pub async fn send_pli(&self) {
        let video = self.remote_video.lock().unwrap().clone();
        let (track, ssrc) = video.expect("video track received");
        track.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })]).await.unwrap();
    }

    pub async fn close(&self) {
        let _ = self.pc.close().await;
    }
}

/// Routes the node's events: candidates to the peer of their endpoint, the rest to a log.
/// `N` is the node under test (a `LocalMediaNode`, or `dyn MediaNode` for a remote one); `X`
/// holds whatever must live as long as the harness.
pub struct Harness<N: MediaNode + ?Sized, X = ()> {
    pub node: Arc<N>,
    pub session: SessionId,
    peers: Mutex<HashMap<EndpointId, Arc<ClientPeer>>>,
    /// Every event, in order.
    pub events: Mutex<Vec<MediaEvent>>,
    /// Endpoints whose node candidates are withheld from the client.
    muted: Mutex<Vec<EndpointId>>,
    /// Kept alive with the harness (e.g. the server behind a remote node).
    pub extra: X,
}

impl<N: MediaNode + ?Sized, X: Send + Sync + 'static> Harness<N, X> {
    /// A harness over `node`, whose events come out of `rx`, with the router of `ses_Test`.
    pub async fn over(node: Arc<N>, mut rx: mpsc::UnboundedReceiver<MediaEvent>, extra: X) -> Arc<Self> {
        init_tracing();
        let session = session("ses_Test");
        node.create_router(&session).await.unwrap();
        let harness = Arc::new(Self {
            node,
            session,
            peers: Mutex::default(),
            events: Mutex::default(),
            muted: Mutex::default(),
            extra,
        });
        let weak = Arc::downgrade(&harness);
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let Some(h) = weak.upgrade() else { break };
                if let MediaEvent::IceCandidate { endpoint, candidate, .. } = &event {
                    let peer = h.peers.lock().unwrap().get(endpoint).cloned();
                    let muted = h.muted.lock().unwrap().contains(endpoint);
                    if let (Some(peer), false) = (peer, muted) {
                        peer.add_node_candidate(candidate.clone()).await;
                    }
                }
                h.events.lock().unwrap().push(event);
            }
        });
        harness
    }

    /// Registers a client peer for `endpoint` and forwards its candidates to the node.
    pub async fn peer(self: &Arc<Self>, endpoint: EndpointId, with_pli_marker: bool) -> Arc<ClientPeer> {
        let (peer, mut candidates) = ClientPeer::new(with_pli_marker).await;
        self.peers.lock().unwrap().insert(endpoint.clone(), peer.clone());
        let node = self.node.clone();
        let session = self.session.clone();
        tokio::spawn(async move {
            while let Some(c) = candidates.recv().await {
                node.add_ice_candidate(&session, endpoint.clone(), c).await.expect("client candidates are accepted");
            }
        });
        peer
    }

    /// Registers a peer whose candidates are NOT forwarded automatically, and which does not
    /// receive the node's candidates.
    pub async fn silent_peer(
        self: &Arc<Self>,
        endpoint: EndpointId,
    ) -> (Arc<ClientPeer>, mpsc::UnboundedReceiver<IceCandidate>) {
        let (peer, candidates) = ClientPeer::new(false).await;
        self.muted.lock().unwrap().push(endpoint.clone());
        self.peers.lock().unwrap().insert(endpoint, peer.clone());
        (peer, candidates)
    }

    /// Events for `endpoint` that are not candidates.
    pub fn state_events(&self, endpoint: &EndpointId) -> Vec<MediaEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| match e {
                MediaEvent::Connected { endpoint: ep, .. } | MediaEvent::Failed { endpoint: ep, .. } => ep == endpoint,
                _ => false,
            })
            .cloned()
            .collect()
    }

    pub fn connected(&self, endpoint: &EndpointId) -> bool {
        self.state_events(endpoint).iter().any(|e| matches!(e, MediaEvent::Connected { .. }))
    }

    /// How many events (of any kind) mention `stream`.
    pub fn events_for_stream(&self, stream: &StreamId) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| match e {
                MediaEvent::IceCandidate { endpoint, .. }
                | MediaEvent::Connected { endpoint, .. }
                | MediaEvent::Failed { endpoint, .. } => endpoint.stream() == stream,
                _ => false,
            })
            .count()
    }
}

/// A test publisher: VP8 + Opus tracks fed with synthetic RTP.
pub struct TestPublisher {
    pub peer: Arc<ClientPeer>,
    pub video: Arc<TrackLocalStaticRTP>,
    pub audio: Arc<TrackLocalStaticRTP>,
    /// PLIs the publisher received for its video track.
    pub plis: Arc<AtomicU32>,
    /// The last REMB bitrate (bps) the publisher received.
    pub remb_bps: Arc<AtomicU64>,
    pub sent_video: Arc<AtomicU64>,
    pub sent_audio: Arc<AtomicU64>,
    feeding: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

fn local_track(stream: &StreamId, kind: RtpCodecKind) -> Arc<TrackLocalStaticRTP> {
    let (name, ssrc, codec) = match kind {
        RtpCodecKind::Video => ("video", VIDEO_SSRC, vp8()),
        _ => ("audio", AUDIO_SSRC, opus()),
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream.to_string(),
        format!("{stream}-{name}"),
        name.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec: codec.rtp_codec,
            ..Default::default()
        }],
    )))
}

impl TestPublisher {
    /// A publisher peer with its offer ready (not yet sent to the node).
    pub async fn prepare<N: MediaNode + ?Sized, X: Send + Sync + 'static>(
        h: &Arc<Harness<N, X>>,
        stream: &StreamId,
    ) -> (Self, String) {
        let peer = h.peer(EndpointId::Publisher(stream.clone()), true).await;
        Self::prepare_with_peer(peer, stream).await
    }

    pub async fn prepare_with_peer(peer: Arc<ClientPeer>, stream: &StreamId) -> (Self, String) {
        Self::prepare_tracks(peer, stream, true).await
    }

    /// A publisher with video and, if `with_audio`, audio.
    pub async fn prepare_tracks(peer: Arc<ClientPeer>, stream: &StreamId, with_audio: bool) -> (Self, String) {
        let audio = local_track(stream, RtpCodecKind::Audio);
        let video = local_track(stream, RtpCodecKind::Video);
        if with_audio {
            peer.pc.add_track(audio.clone() as Arc<dyn TrackLocal>).await.unwrap();
        }
        peer.pc.add_track(video.clone() as Arc<dyn TrackLocal>).await.unwrap();
        // Like openvidu-browser: send-only.
        for t in peer.pc.get_transceivers().await {
            t.set_direction(RTCRtpTransceiverDirection::Sendonly).await.unwrap();
        }
        let offer = peer.pc.create_offer(None).await.unwrap();
        let sdp = offer.sdp.clone();
        peer.pc.set_local_description(offer).await.unwrap();
        let plis = Arc::new(AtomicU32::new(0));
        let remb_bps = Arc::new(AtomicU64::new(0));
        {
            let video = video.clone();
            let plis = plis.clone();
            let remb_bps = remb_bps.clone();
            tokio::spawn(async move {
                while let Some(event) = video.poll().await {
                    if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                        for p in &packets {
                            if p.as_any().is::<PictureLossIndication>() {
                                plis.fetch_add(1, Ordering::SeqCst);
                            } else if let Some(remb) = p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                                remb_bps.store(remb.bitrate as u64, Ordering::SeqCst);
                            }
                        }
                    }
                }
            });
        }
        let publisher = Self {
            peer,
            video,
            audio,
            plis,
            remb_bps,
            sent_video: Arc::default(),
            sent_audio: Arc::default(),
            feeding: Mutex::default(),
        };
        (publisher, sdp)
    }

    /// Publishes through the node and applies its answer.
    pub async fn publish<N: MediaNode + ?Sized, X: Send + Sync + 'static>(
        h: &Arc<Harness<N, X>>,
        stream: &StreamId,
    ) -> Self {
        let (publisher, offer) = Self::prepare(h, stream).await;
        let answer = h.node.publish(&h.session, stream, PublishOptions::new(offer)).await.expect("publish");
        publisher.peer.set_remote(RTCSessionDescription::answer(answer).unwrap()).await;
        publisher
    }

    /// Starts sending 30 video packets/s and 50 audio packets/s.
    pub fn start_media(&self) {
        let mut feeding = self.feeding.lock().unwrap();
        for (kind, track, sent, period, pt, ssrc, ts_step) in [
            (
                RtpCodecKind::Video,
                self.video.clone(),
                self.sent_video.clone(),
                Duration::from_millis(33),
                96u8,
                VIDEO_SSRC,
                3000u32,
            ),
            (
                RtpCodecKind::Audio,
                self.audio.clone(),
                self.sent_audio.clone(),
                Duration::from_millis(20),
                111,
                AUDIO_SSRC,
                960,
            ),
        ] {
            feeding.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                let mut seq: u16 = 1000;
                loop {
                    tick.tick().await;
                    let packet = rtp::Packet {
                        header: rtp::header::Header {
                            version: 2,
                            marker: true,
                            payload_type: pt,
                            sequence_number: seq,
                            timestamp: u32::from(seq).wrapping_mul(ts_step),
                            ssrc,
                            ..Default::default()
                        },
                        payload: payload(kind, seq),
                    };
                    if track.write_rtp(packet).await.is_ok() {
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                    seq = seq.wrapping_add(1);
                }
            }));
        }
    }

    pub fn stop_media(&self) {
        for task in self.feeding.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for TestPublisher {
    fn drop(&mut self) {
        self.stop_media();
    }
}

/// Subscribes a client-offering peer (`receiveVideoFrom{sdpOffer}`).
pub async fn subscribe_client_offer<N: MediaNode + ?Sized, X: Send + Sync + 'static>(
    h: &Arc<Harness<N, X>>,
    subscriber: &ConnectionId,
    stream: &StreamId,
) -> Arc<ClientPeer> {
    let endpoint = EndpointId::Subscriber { subscriber: subscriber.clone(), stream: stream.clone() };
    let peer = h.peer(endpoint, false).await;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        peer.pc
            .add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit { direction: RTCRtpTransceiverDirection::Recvonly, ..Default::default() }),
            )
            .await
            .unwrap();
    }
    let offer = peer.pc.create_offer(None).await.unwrap();
    let sdp = offer.sdp.clone();
    peer.pc.set_local_description(offer).await.unwrap();
    let answer = h.node.subscribe(&h.session, subscriber, stream, sdp).await.expect("subscribe");
    peer.set_remote(RTCSessionDescription::answer(answer).unwrap()).await;
    peer
}

/// Subscribes a peer through the node's offer (`prepareReceiveVideoFrom` + `receiveVideoFrom{sdpAnswer}`).
pub async fn subscribe_server_offer<N: MediaNode + ?Sized, X: Send + Sync + 'static>(
    h: &Arc<Harness<N, X>>,
    subscriber: &ConnectionId,
    stream: &StreamId,
) -> Arc<ClientPeer> {
    let endpoint = EndpointId::Subscriber { subscriber: subscriber.clone(), stream: stream.clone() };
    let peer = h.peer(endpoint, false).await;
    let offer = h.node.prepare_subscribe(&h.session, subscriber, stream).await.expect("prepare_subscribe");
    peer.set_remote(RTCSessionDescription::offer(offer).unwrap()).await;
    let answer = peer.pc.create_answer(None).await.unwrap();
    let sdp = answer.sdp.clone();
    peer.pc.set_local_description(answer).await.unwrap();
    h.node.complete_subscribe(&h.session, subscriber, stream, sdp).await.expect("complete_subscribe");
    peer
}

/// Waits until `peer` received at least `n` more packets on both tracks, all intact.
pub async fn assert_receives_both(peer: &ClientPeer, n: u64) {
    let (a0, v0) = (peer.audio.packets.load(Ordering::SeqCst), peer.video.packets.load(Ordering::SeqCst));
    eventually("packets on both tracks", || {
        peer.audio.packets.load(Ordering::SeqCst) >= a0 + n && peer.video.packets.load(Ordering::SeqCst) >= v0 + n
    })
    .await;
    assert_eq!(peer.audio.corrupt.load(Ordering::SeqCst), 0, "audio payloads intact");
    assert_eq!(peer.video.corrupt.load(Ordering::SeqCst), 0, "video payloads intact");
}

/// A UDP relay between one client peer and the node that loses packets on the way to the
/// client, as a network would (before SRTP: the client's NACK generator asks for them, and its
/// SRTP layer takes the retransmission). The client is told the node is at `to_client`'s
/// address, the node that the client is at `to_node`'s (see [`rewrite_candidate`]).
pub struct LossyRelay {
    to_node: Arc<tokio::net::UdpSocket>,
    to_client: Arc<tokio::net::UdpSocket>,
    /// The real addresses: (client, node), once known.
    ends: Mutex<(Option<std::net::SocketAddr>, Option<std::net::SocketAddr>)>,
    /// Lose each SRTP packet of this payload type whose sequence number is a multiple of
    /// `every`, once.
    pub lose: Mutex<Option<(u8, u16)>>,
    /// The sequence numbers lost, and how many of them came again.
    pub lost: Mutex<std::collections::HashSet<u16>>,
    pub recovered: AtomicU64,
}

impl LossyRelay {
    pub async fn start() -> Arc<Self> {
        let bind = || async { Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap()) };
        let relay = Arc::new(Self {
            to_node: bind().await,
            to_client: bind().await,
            ends: Mutex::default(),
            lose: Mutex::default(),
            lost: Mutex::default(),
            recovered: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&relay);
        let (from_client, from_node) = (relay.to_client.clone(), relay.to_node.clone());
        tokio::spawn(async move {
            let (mut a, mut b) = ([0u8; 2048], [0u8; 2048]);
            loop {
                tokio::select! {
                    Ok((n, _)) = from_client.recv_from(&mut a) => {
                        let Some(r) = weak.upgrade() else { break };
                        if let (_, Some(node)) = *r.ends.lock().unwrap() {
                            let _ = r.to_node.try_send_to(&a[..n], node);
                        }
                    }
                    Ok((n, _)) = from_node.recv_from(&mut b) => {
                        let Some(r) = weak.upgrade() else { break };
                        let client = r.ends.lock().unwrap().0;
                        if let Some(client) = client && !r.loses(&b[..n]) {
                            let _ = r.to_client.try_send_to(&b[..n], client);
                        }
                    }
                    else => break,
                }
            }
        });
        relay
    }

    /// Whether this datagram from the node is lost.
    fn loses(&self, d: &[u8]) -> bool {
        let Some((pt, every)) = *self.lose.lock().unwrap() else { return false };
        if d.len() < 12 || !(128..=191).contains(&d[0]) || d[1] & 0x7f != pt {
            return false;
        }
        let seq = u16::from_be_bytes([d[2], d[3]]);
        if !seq.is_multiple_of(every) {
            return false;
        }
        if self.lost.lock().unwrap().insert(seq) {
            return true;
        }
        self.recovered.fetch_add(1, Ordering::SeqCst);
        false
    }

    /// The client's candidate, for the node: the client is at the relay.
    pub fn client_candidate(&self, c: &IceCandidate) -> IceCandidate {
        let real = candidate_addr(&c.candidate);
        self.ends.lock().unwrap().0 = Some(real);
        IceCandidate { candidate: rewrite_candidate(&c.candidate, self.to_node.local_addr().unwrap()), ..c.clone() }
    }

    /// The node's candidate, for the client: the node is at the relay.
    pub fn node_candidate(&self, c: &IceCandidate) -> IceCandidate {
        let real = candidate_addr(&c.candidate);
        self.ends.lock().unwrap().1 = Some(real);
        IceCandidate { candidate: rewrite_candidate(&c.candidate, self.to_client.local_addr().unwrap()), ..c.clone() }
    }
}

/// The address of a host candidate (`candidate:<foundation> <component> udp <priority> <ip> <port> typ host ...`).
pub fn candidate_addr(candidate: &str) -> std::net::SocketAddr {
    let fields: Vec<&str> = candidate.split_whitespace().collect();
    format!("{}:{}", fields[4], fields[5]).parse().unwrap()
}

/// `candidate` with its address replaced by `to`.
pub fn rewrite_candidate(candidate: &str, to: std::net::SocketAddr) -> String {
    let mut fields: Vec<String> = candidate.split_whitespace().map(str::to_owned).collect();
    fields[4] = to.ip().to_string();
    fields[5] = to.port().to_string();
    fields.join(" ")
}

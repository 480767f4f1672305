//! Test peers: real webrtc 0.21 peer connections over loopback, playing the browser's part, and
//! a harness that trickles ICE candidates between them and a media node — here a
//! `RemoteMediaNode` talking to a media node server in the same process.
//!
//! The peers come from openvidu-media's `tests/integration/peers.rs`; the harness here is
//! generic over `dyn MediaNode`, with helpers to start and stop media node servers.

#![allow(unused_imports)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use openvidu_core::id::MediaNodeId;
use openvidu_core::id::{ConnectionId, SessionId, StreamId};
use openvidu_media::{
    EndpointId, IceCandidate, LocalMediaNode, MediaConfig, MediaEvent, MediaNode, PublishOptions, RemoteMediaNode,
    RemoteOptions,
};
use openvidu_media_node::MediaNodeServer;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
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

pub use crate::peers::*;

pub const SECRET: &str = "MY_SECRET";

/// A media node server on loopback with its in-process node.
pub struct NodeServer {
    pub server: MediaNodeServer,
    pub local: Arc<LocalMediaNode>,
}

/// Starts a media node server with `id` on `listener`.
pub async fn start_node_on(listener: tokio::net::TcpListener, id: &str) -> NodeServer {
    init_tracing();
    let (tx, rx) = mpsc::unbounded_channel();
    let local =
        Arc::new(LocalMediaNode::new(MediaConfig::default(), tx).unwrap().with_id(MediaNodeId::parse(id).unwrap()));
    let server = openvidu_media_node::serve(local.clone(), rx, listener, SECRET.into()).unwrap();
    NodeServer { server, local }
}

/// Starts a media node server with `id` on a free loopback port.
pub async fn start_node(id: &str) -> NodeServer {
    start_node_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), id).await
}

/// Routes the node's events: candidates to the peer of their endpoint, the rest to a log.
pub struct Harness {
    pub node: Arc<dyn MediaNode>,
    pub session: SessionId,
    peers: Mutex<HashMap<EndpointId, Arc<ClientPeer>>>,
    /// Every event, in order.
    pub events: Mutex<Vec<MediaEvent>>,
    /// Endpoints whose node candidates are withheld from the client.
    muted: Mutex<Vec<EndpointId>>,
    /// The server behind a remote node, kept alive with the harness.
    pub server: Mutex<Option<NodeServer>>,
    pub remote: Option<Arc<RemoteMediaNode>>,
}

impl Harness {
    /// A media node server and a `RemoteMediaNode` connected to it, with the router of
    /// `ses_Test` created through the remote node.
    pub async fn remote() -> Arc<Self> {
        let server = start_node("media_Test").await;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut options = RemoteOptions::default();
        options.reconnect_max = Duration::from_millis(200);
        let remote =
            Arc::new(RemoteMediaNode::connect_with(&server.server.url(), SECRET, tx, options).await.expect("connect"));
        Self::over(remote.clone() as Arc<dyn MediaNode>, rx, Some(server), Some(remote)).await
    }

    /// A harness over `node`, whose events come out of `rx`.
    pub async fn over(
        node: Arc<dyn MediaNode>,
        mut rx: mpsc::UnboundedReceiver<MediaEvent>,
        server: Option<NodeServer>,
        remote: Option<Arc<RemoteMediaNode>>,
    ) -> Arc<Self> {
        init_tracing();
        let session = session("ses_Test");
        node.create_router(&session).await.unwrap();
        let harness = Arc::new(Self {
            node,
            session,
            peers: Mutex::default(),
            events: Mutex::default(),
            muted: Mutex::default(),
            server: Mutex::new(server),
            remote,
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
    pub async fn prepare(h: &Arc<Harness>, stream: &StreamId) -> (Self, String) {
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
    pub async fn publish(h: &Arc<Harness>, stream: &StreamId) -> Self {
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
pub async fn subscribe_client_offer(h: &Arc<Harness>, subscriber: &ConnectionId, stream: &StreamId) -> Arc<ClientPeer> {
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
pub async fn subscribe_server_offer(h: &Arc<Harness>, subscriber: &ConnectionId, stream: &StreamId) -> Arc<ClientPeer> {
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

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

/// What a harness over a remote node keeps alive.
pub struct RemoteParts {
    /// The server behind the remote node (taken out to simulate a crash).
    pub server: Mutex<Option<NodeServer>>,
    /// The remote node itself.
    pub remote: Option<Arc<RemoteMediaNode>>,
}

/// The harness over a `RemoteMediaNode`.
pub type Harness = crate::peers::Harness<dyn MediaNode, RemoteParts>;

impl crate::peers::Harness<dyn MediaNode, RemoteParts> {
    /// A media node server and a `RemoteMediaNode` connected to it, with the router of
    /// `ses_Test` created through the remote node.
    pub async fn remote() -> Arc<Self> {
        let server = start_node("media_Test").await;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut options = RemoteOptions::default();
        options.reconnect_max = Duration::from_millis(200);
        let remote =
            Arc::new(RemoteMediaNode::connect_with(&server.server.url(), SECRET, tx, options).await.expect("connect"));
        let parts = RemoteParts { server: Mutex::new(Some(server)), remote: Some(remote.clone()) };
        Self::over(remote as Arc<dyn MediaNode>, rx, parts).await
    }
}

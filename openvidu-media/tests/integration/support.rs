//! The harness that trickles ICE candidates between test peers ([`peers`](crate::peers)) and a
//! [`LocalMediaNode`].

#![allow(unused_imports)]

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

/// The harness over an in-process node.
pub type Harness = crate::peers::Harness<LocalMediaNode>;

impl crate::peers::Harness<LocalMediaNode> {
    pub async fn new() -> Arc<Self> {
        Self::with_config(MediaConfig::default()).await
    }

    pub async fn with_config(config: MediaConfig) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let node = Arc::new(LocalMediaNode::new(config, tx).unwrap());
        Self::over(node, rx, ()).await
    }
}
